"""A records folder in the data formats the RL engines load, written beside records.jsonl:
verl.parquet (verl), easyr1.parquet (EasyR1) and hf/ (a `datasets` folder for TRL).

    python synth.py --out data/train --split train --export verl,easyr1,hf   # generate, then export
    python synth.py --out data/train --export hf --export-only               # export what is there
    python synth.py --out data/text --no-images --export hf                  # text-only: question_text

    from harness.export import export
    export("data/train", ["verl", "hf"])          # {format: path written}; ExportError: one line

One row a record, in the file's order, each with the record's id. Every format carries the
same ground truth, tasks.reward.ground_truth(record): the whole record with a format version,
which the reward functions of tasks/reward.py read. What each engine reads:

- verl.parquet: data_source "mm-helix/<task>", prompt [{"role": "user", "content": "<image>" per
  image, then the prompt}] (verl's RLHFDataset splits the content at each "<image>" and puts the
  images there, in order), images [{"bytes": PNG, "path": null}], ability (the task's group),
  reward_model {"style": "rule", "ground_truth"}, extra_info {id, task, level, index, answer}.
- easyr1.parquet: problem ("<image>" per image, then the prompt; EasyR1 splits it the same
  way), answer (the ground truth: EasyR1 hands data.answer_key's column to the reward function
  as "ground_truth"), images, id, task, level.
- hf/: Dataset.save_to_disk of prompt [{"role": "user", "content": the prompt}] (TRL's
  conversational format; GRPOTrainer puts the `images` before the first user text), images (a
  list of datasets.Image), ground_truth, id, task, level.

Text-only (`text_only=True`, synth.py --no-images): the prompt is built from question_text, and
no format has an images column (EasyR1 treats any images column as a multimodal row).

The same records and images give the same bytes: rows in file order, JSON with sorted keys,
the hf folder's fingerprint a hash of the inputs. `datasets` and `pyarrow` are imported here
only, when an export runs. Bad input (a broken line, a missing image, a duplicate id) is one
line naming the file, line and field, and nothing is written: every output is built under a
temporary name and moved into place once all of them are done.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil

from harness.jsonl import jsonl_rows
from tasks.records import RecordError, build_prompt, check_record, record_images
from tasks.registry import task_of
from tasks.reward import DATA_SOURCE, FORMAT, ground_truth

FORMATS = ("verl", "easyr1", "hf")
OUTPUTS = {"verl": "verl.parquet", "easyr1": "easyr1.parquet", "hf": "hf"}
IMAGE = "<image>"
# the placeholders verl's and EasyR1's loaders split a prompt at: a question holding one would
# be cut there and handed an image it does not have
PLACEHOLDERS = ("<image>", "<video>", "<audio>")
ROW_GROUP = 100     # rows a parquet row group: with PNGs, a few MB that a reader decodes at once


class ExportError(Exception):
    """Why an export wrote nothing, in one line."""


def formats_arg(s: str) -> list[str]:
    """argparse type: 'verl,hf' -> ['verl', 'hf'] (once each, in the given order); an unknown
    name is refused with the known ones."""
    out = []
    for item in (x.strip() for x in s.split(",")):
        if not item:
            continue
        if item not in FORMATS:
            raise argparse.ArgumentTypeError(f"unknown export {item!r}; known: {', '.join(FORMATS)}")
        out.append(item)
    if not out:
        raise argparse.ArgumentTypeError(f"{s!r} names no export; known: {', '.join(FORMATS)}")
    return list(dict.fromkeys(out))


def _package(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(f"--export needs the '{name}' package, which is not installed "
                          f"(pip install {name})") from None


def require():
    """Import what an export needs (pyarrow, datasets), or ExportError naming the one missing:
    called before generation, so that a missing package costs nothing."""
    return _package("pyarrow"), _package("datasets")


# ---- reading: records and their images, every problem named ---------------------------------------
def _rows(path: str, text_only: bool):
    """(record, prompt text, PNG bytes list) per record, in file order; ExportError on the first
    problem, naming file, line and field."""
    root = os.path.dirname(os.path.abspath(path))
    out, seen = [], {}
    for line, rec, bad in jsonl_rows(path):
        try:
            if bad:
                raise RecordError(path, line, "-", bad)
            check_record(rec, path, line, need_images=not text_only)
            rid = rec["id"]
            if rid in seen:
                raise RecordError(path, line, "id", f"duplicate of line {seen[rid]} ({rid!r})")
            seen[rid] = line
            text = build_prompt(rec, text_only)
            for p in PLACEHOLDERS:
                if p in text:
                    raise RecordError(path, line, "question_text" if text_only else "question",
                                      f"holds {p!r}, which verl and EasyR1 read as a media placeholder")
            pngs = []
            if not text_only:
                files = record_images(rec, root)
                if not files:
                    raise RecordError(path, line, "images", "none (a records folder made with --no-images "
                                                            "exports text-only: add --no-images)")
                for f in files:
                    with open(f, "rb") as fh:
                        pngs.append(fh.read())
        except RecordError as e:
            raise ExportError(str(e)) from None
        out.append((rec, text, pngs))
    if not out:
        raise ExportError(f"{path}: no records")
    return out


def _level(rec) -> int:
    lvl = rec.get("difficulty")
    return int(lvl) if lvl is not None else 0     # check_record allows only integers or digit strings


def _answer(rec) -> str:
    a = rec.get("answer")
    return a if isinstance(a, str) else "" if a is None else str(a)


# ---- the three formats ----------------------------------------------------------------------------
def _columns(fmt: str, rows, text_only: bool):
    """The columns of one format (names in the order they are written) and its datasets.Features."""
    from datasets import Features, Image, List, Value
    s, i64 = Value("string"), Value("int64")
    msgs = List({"role": s, "content": s})
    cols, feats = {}, {}

    def col(name, feature, values):
        cols[name], feats[name] = values, feature

    recs = [r for r, _, _ in rows]
    tasks = [task_of(r) for r in recs]
    truths = [ground_truth(r) for r in recs]
    images = [[{"bytes": b, "path": None} for b in pngs] for _, _, pngs in rows]
    marked = [IMAGE * len(pngs) + text for _, text, pngs in rows]   # verl / EasyR1: placeholders first
    if fmt == "verl":
        col("data_source", s, [f"{DATA_SOURCE}/{t.name}" for t in tasks])
        col("prompt", msgs, [[{"role": "user", "content": m}] for m in marked])
        if not text_only:
            col("images", List(Image()), images)
        col("ability", s, [t.group for t in tasks])
        col("reward_model", {"style": s, "ground_truth": s}, [{"style": "rule", "ground_truth": g} for g in truths])
        col("extra_info", {"id": s, "task": s, "level": i64, "index": i64, "answer": s},
            [{"id": r["id"], "task": t.name, "level": _level(r), "index": k, "answer": _answer(r)}
             for k, (r, t) in enumerate(zip(recs, tasks))])
    elif fmt == "easyr1":
        col("problem", s, marked)
        col("answer", s, truths)
        if not text_only:
            col("images", List(Image()), images)
    else:  # hf: TRL's conversational prompt, images in their own column
        col("prompt", msgs, [[{"role": "user", "content": text}] for _, text, _ in rows])
        if not text_only:
            col("images", List(Image()), images)
        col("ground_truth", s, truths)
    if fmt in ("easyr1", "hf"):
        col("id", s, [r["id"] for r in recs])
        col("task", s, [t.name for t in tasks])
        col("level", i64, [_level(r) for r in recs])
    return cols, Features(feats)


def _table(cols, features):
    import pyarrow as pa
    return pa.Table.from_pydict(features.encode_batch(cols), schema=features.arrow_schema)


def _fingerprint(path: str, rows, text_only: bool, fmt: str) -> str:
    """The hf folder's fingerprint (datasets would draw a random one, or hash the whole table):
    a hash of what the export read, so that the same inputs write the same bytes."""
    h = hashlib.sha256(f"{FORMAT}|{fmt}|text_only={text_only}|".encode())
    with open(path, "rb") as f:
        h.update(f.read())
    for _, _, pngs in rows:
        for b in pngs:
            h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:16]


def _write(fmt: str, dest: str, rows, text_only: bool, records_path: str):
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetInfo
    cols, features = _columns(fmt, rows, text_only)
    table = _table(cols, features)
    if fmt == "hf":
        ds = Dataset(table, info=DatasetInfo(features=features),
                     fingerprint=_fingerprint(records_path, rows, text_only, fmt))
        ds.save_to_disk(dest)
    else:
        pq.write_table(table, dest, row_group_size=ROW_GROUP)


def export(folder: str, formats, text_only: bool = False) -> dict[str, str]:
    """Write `formats` (of FORMATS) for <folder>/records.jsonl beside it; returns {format: path}.
    ExportError (one line) when a package is missing or the records or images are not usable;
    then nothing in the folder has changed."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export {unknown[0]!r}; known: {', '.join(FORMATS)}")
    path = os.path.join(folder, "records.jsonl")
    if not os.path.isfile(path):
        raise ExportError(f"{path}: not found (make it with synth.py, or give the folder that holds it)")
    _, datasets = require()
    rows = _rows(path, text_only)
    tmp = {f: os.path.join(folder, f".{OUTPUTS[f]}.tmp") for f in formats}
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()            # save_to_disk's bar: one stage, one progress line
    try:
        for f in formats:
            _remove(tmp[f])
            _write(f, tmp[f], rows, text_only, path)
    except BaseException:
        for t in tmp.values():
            _remove(t)
        raise
    finally:
        if bars:
            datasets.enable_progress_bars()
    out = {}
    for f in formats:   # all built: now replace the old outputs
        dest = os.path.join(folder, OUTPUTS[f])
        _remove(dest)
        os.replace(tmp[f], dest)
        out[f] = dest
    return out


def _remove(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.remove(p)
