"""The MM-HELIX task platform: 42 procedurally generated reasoning tasks.

    from tasks import TASKS, get, score
    t = get("24points")                  # our name or the official `category` ("24Points")
    inst = t.generate(level=2, seed=0)
    score("... \\boxed{(9 - 3) × 8 ÷ 2}", record)   # record as synth.py writes, or official

Each task lives in its own module `tasks/<name>.py` that defines `TASK`; the registry below
finds them, so adding a task is adding a file. No torch here: verifiers run anywhere.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import GROUPS, LEVELS, Instance, Task, step  # noqa: F401
from .extract import extract_answer  # noqa: F401
from .formats import same_answer
from .records import (RecordError, answer_only, build_prompt, make_record,  # noqa: F401
                      messages_for, read_records, read_traces, record_images, state_of)

_INFRA = {"base", "extract", "draw", "records", "formats"}


def _discover() -> dict[str, Task]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _INFRA or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(mod, "TASK", None)
        if task is None:
            continue
        if task.group not in GROUPS:
            raise ValueError(f"tasks/{info.name}.py: group {task.group!r} is not one of {GROUPS}")
        found.append(task)
    found.sort(key=lambda t: (GROUPS.index(t.group), t.name))
    out = {}
    for t in found:
        if t.name in out:
            raise ValueError(f"two tasks are named {t.name!r}")
        out[t.name] = t
    return out


TASKS: dict[str, Task] = _discover()
BY_OFFICIAL: dict[str, Task] = {t.official: t for t in TASKS.values()}
_LOWER = {k.lower(): t for d in (TASKS, BY_OFFICIAL) for k, t in d.items()}


def get(name: str) -> Task:
    """A task by our name or its official `category` name (case-insensitive)."""
    t = TASKS.get(name) or BY_OFFICIAL.get(name) or _LOWER.get(str(name).lower())
    if t is None:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return t


def task_of(record: dict) -> Task:
    """The task of a record: our `task` field, else the official `category`."""
    for key in ("task", "category"):
        name = record.get(key)
        if name:
            try:
                return get(name)
            except KeyError:
                continue
    raise KeyError(f"record {record.get('id')!r}: unknown task "
                   f"(task={record.get('task')!r}, category={record.get('category')!r})")


def score(response, record: dict) -> bool:
    """Extract the answer from `response` and verify it against `record`. Never raises.

    An official record with no usable state (records.answer_only) is compared with its own
    answer, normalised: the only check left when there are no rules to check against."""
    try:
        task = task_of(record)
        if answer_only(record):
            return same_answer(extract_answer(response), record["answer"],
                               keep_dot=task.dot_is_cell, shape=task.answer_shape)
        state = state_of(record, task)
        return task.verify(extract_answer(response), state)
    except Exception:
        return False


def groups() -> dict[str, list[str]]:
    out = {g: [] for g in GROUPS}
    for t in TASKS.values():
        out[t.group].append(t.name)
    return out
