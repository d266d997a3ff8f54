"""Records: the JSONL contract between synth.py and the later stages.

A record has the official MM-HELIX fields (`id`, `category`, `question`, `question_text`,
`answer`, `difficulty`, `initial_state`, `metric_info`, `images`) plus ours (`task`, `group`,
`seed`, `meta`). Image paths are relative to the records file. Official records load as
they are. Reading a records file (JSONL, every bad line reported) is the harness's job:
harness.jsonl.read_records.
"""
from __future__ import annotations

import json
import os

from .registry import task_of

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
