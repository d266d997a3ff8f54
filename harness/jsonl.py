"""JSONL files: reading them line by line with every bad line reported (file, line, column),
appending whole lines that survive a kill, and reading a records file.

    from harness.jsonl import jsonl_rows, open_append, read_records
    records, errors = read_records("data/bench/records.jsonl")   # errors: a RecordError per bad line
"""
from __future__ import annotations

import json
import os
import sys

from tasks.records import RecordError, check_record


def jsonl_rows(path: str):
    """(line number, value, problem) for each non-blank line of a JSONL file: the parsed value
    and None, or None and why the line is not JSON (with the column), so that readers report
    it, never skip it."""
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                yield i, None, f"not valid JSON at column {e.colno}: {e.msg}"
                continue
            except ValueError as e:
                yield i, None, f"not valid JSON ({e})"
                continue
            yield i, value, None


def open_append(path: str):
    """Open a JSONL file for appending whole lines. A last line without its newline is one a
    killed run was writing: it is cut off first (said on stderr), so that the next line written
    does not run into it and both become unreadable."""
    if os.path.isfile(path) and os.path.getsize(path):
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = f.seek(0) or f.read()
                keep = data.rfind(b"\n") + 1
                f.truncate(keep)
                print(f"note: {path}: cut a last line the previous run left half-written "
                      f"({len(data) - keep} bytes)", file=sys.stderr)
    return open(path, "a", encoding="utf-8")


def read_records(path: str, need_images: bool = False, answer_only_ok: bool = False):
    """Read a records JSONL. Returns (records, errors): errors are RecordErrors for lines
    that could not be used; nothing is dropped silently. `answer_only_ok`: keep official
    records without a usable state (see answer_only): evaluation scores them by their answer;
    stages that need a state (synth, elicit, ahpo) leave it False."""
    records, errors = [], []
    for i, rec, bad in jsonl_rows(path):
        try:
            if bad:
                raise RecordError(path, i, "-", bad)
            records.append(check_record(rec, path, i, need_images, answer_only_ok))
        except RecordError as e:
            errors.append(e)
    return records, errors
