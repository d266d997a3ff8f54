"""Records: the JSONL contract between synth.py and the later stages.

A record has the official MM-HELIX fields (`id`, `category`, `question`, `question_text`,
`answer`, `difficulty`, `initial_state`, `metric_info`, `images`) plus ours (`task`, `group`,
`seed`, `meta`). Image paths are relative to the records file. Official records load as
they are.
"""
from __future__ import annotations

import json
import os
import sys

BOX_REQUEST = "Please put your final answer within \\boxed{}."


class RecordError(ValueError):
    """A record that cannot be used, with where it came from: file, line and field."""

    def __init__(self, path, line, field, message):
        self.path, self.line, self.field = path, line, field
        super().__init__(f"{path}:{line}: field '{field}': {message}")


def make_record(task, inst, images: list[str]) -> dict:
    state = inst.state
    return {
        "id": f"{task.name}-L{inst.level}-{inst.seed}",
        "category": task.official,
        "task": task.name,
        "group": task.group,
        "difficulty": inst.level,
        "seed": inst.seed,
        "question": task.question(state, text_only=False),
        "question_text": task.question(state, text_only=True),
        "answer": task.answer(inst),
        "initial_state": task.state_to_str(state),
        "metric_info": json.dumps({"task": task.name, "verifier": f"tasks.{task.name}",
                                   "scoring": "rule check of the extracted answer"}),
        "images": images,
        "meta": inst.meta,
    }


def state_of(record: dict, task=None):
    """The parsed public state of a record (ours or official)."""
    if task is None:
        from . import task_of
        task = task_of(record)
    return task.state_from_record(record)


_NO_STATE = ("", "{}", "[]", "null", "none", '""', "''")


def answer_only(record: dict) -> bool:
    """True for an official record with no usable `initial_state` (empty, as the official
    shortest-distance generator writes some at level 5) but with its own `answer`: such a
    record cannot be rule-checked, so it is scored against that answer, normalised
    (formats.same_answer). Our records (they carry `task`) always have a state."""
    if "task" in record:
        return False
    st = record.get("initial_state")
    empty = st is None or (isinstance(st, str) and st.strip().lower() in _NO_STATE) or st in ({}, [])
    ans = record.get("answer")
    return empty and isinstance(ans, str) and bool(ans.strip())


def build_prompt(record: dict, text_only: bool = False) -> str:
    """The evaluation prompt: the question, then the request to box the final answer."""
    q = record.get("question_text" if text_only else "question") or record.get("question") or ""
    return f"{q.rstrip()}\n\n{BOX_REQUEST}"


def record_images(record: dict, root: str = ".") -> list[str]:
    """Absolute paths of a record's images (root = the folder of its records file)."""
    imgs = record.get("images") or []
    if isinstance(imgs, str):
        imgs = [imgs]
    return [p if os.path.isabs(p) else os.path.join(root, p) for p in imgs]


def messages_for(record: dict, text_only: bool = False, root: str = ".") -> list[dict]:
    """The user turn of a record as chat messages (images first, by path)."""
    content = [] if text_only else [{"type": "image", "image": p} for p in record_images(record, root)]
    content.append({"type": "text", "text": build_prompt(record, text_only)})
    return [{"role": "user", "content": content}]


REQUIRED = ("id", "initial_state")


def check_record(record, path: str, line: int, need_images: bool = False,
                 answer_only_ok: bool = False) -> dict:
    """Raise RecordError (file, line, field) if `record` cannot be scored or prompted.
    With `answer_only_ok` (scoring only), an official record with no usable state passes."""
    from . import task_of
    if not isinstance(record, dict):
        raise RecordError(path, line, "-", f"expected a JSON object, got {type(record).__name__}")
    for f in REQUIRED:
        if f not in record:
            raise RecordError(path, line, f, "missing")
    if not (record.get("question") or record.get("question_text")):
        raise RecordError(path, line, "question", "missing (and no question_text)")
    try:
        task = task_of(record)
    except KeyError as e:
        raise RecordError(path, line, "category", str(e)) from None
    lvl = record.get("difficulty")
    if lvl is not None and not (isinstance(lvl, int) or str(lvl).isdigit()):
        raise RecordError(path, line, "difficulty", f"not an integer level: {lvl!r}")
    try:
        if not (answer_only_ok and answer_only(record)):
            state_of(record, task)
    except Exception as e:
        raise RecordError(path, line, "initial_state", f"cannot parse for {task.name}: {e}") from None
    if need_images:
        for p in record_images(record, os.path.dirname(os.path.abspath(path))):
            if not os.path.exists(p):
                raise RecordError(path, line, "images", f"missing image {p}")
    return record


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


# ---- chat messages and SERG traces (elicit.py's output; read by sft.py and ahpo.py) ----
def content_items(message):
    content = message.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise ValueError(f"message content must be a str or a list of items, got {type(content).__name__}")
    return content


def check_messages(messages):
    if not isinstance(messages, list) or not messages:
        raise ValueError("a conversation is a non-empty list of {'role', 'content'} dicts")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"bad message {m!r}: need role system|user|assistant and content")
        for item in content_items(m):
            if not isinstance(item, dict) or item.get("type") not in ("image", "text"):
                raise ValueError(f"bad content item {item!r}: type must be 'image' or 'text'")
            if item["type"] == "image" and "image" not in item:
                raise ValueError(f"image item without an 'image' (path or PIL image): {item!r}")


def read_traces(path):
    """Traces written by elicit.py -> (examples, problems). An example is the record with
    `prompt` (the messages before the last) and `completion` (the assistant text); image paths
    are resolved against the traces file's folder. Problems name file, line and field."""
    examples, problems = [], []
    root = os.path.dirname(os.path.abspath(path))
    for i, rec, bad in jsonl_rows(path):
        if bad:
            problems.append(f"{path}:{i}: field '-': {bad}")
            continue
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list) or len(msgs) < 2:
            problems.append(f"{path}:{i}: field 'messages': missing or shorter than 2 turns")
            continue
        last = msgs[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant" or not isinstance(last.get("content"), str):
            problems.append(f"{path}:{i}: field 'messages': the last turn must be an assistant string")
            continue
        try:
            check_messages(msgs[:-1])
        except ValueError as e:
            problems.append(f"{path}:{i}: field 'messages': {e}")
            continue
        prompt = [dict(m, content=m["content"] if isinstance(m["content"], str) else
                       [dict(it, image=it["image"] if not isinstance(it.get("image"), str)
                             or os.path.isabs(it["image"]) else os.path.join(root, it["image"]))
                        if it["type"] == "image" else it for it in m["content"]])
                  for m in msgs[:-1]]
        examples.append({**rec, "prompt": prompt, "completion": last["content"], "line": i})
    return examples, problems
