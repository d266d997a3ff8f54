"""The task registry: every module of tasks/ that defines `TASK` is a task, found by name.

    from tasks.registry import TASKS, get, task_of
    get("24points") is get("24Points")      # our name or the official `category`
    task_of(record)                         # a record's task: its `task` field, else `category`

Adding a task is adding a file; nothing here lists them. Modules that are not tasks (the shared
helpers `_*.py` and the platform's own modules, NOT_TASKS) are not imported by the discovery.
"""
from __future__ import annotations

import importlib
import os
import pkgutil

from .base import GROUPS, Task

PACKAGE = __name__.rsplit(".", 1)[0]        # "tasks"
NOT_TASKS = {"base", "draw", "extract", "formats", "records", "registry", "reward", "scoring"}


def _discover() -> dict[str, Task]:
    found = []
    for info in pkgutil.iter_modules([os.path.dirname(os.path.abspath(__file__))]):
        if info.name in NOT_TASKS or info.name.startswith("_"):
            continue
        task = getattr(importlib.import_module(f"{PACKAGE}.{info.name}"), "TASK", None)
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


def groups() -> dict[str, list[str]]:
    """Our task names per group, in the registry's order."""
    out = {g: [] for g in GROUPS}
    for t in TASKS.values():
        out[t.group].append(t.name)
    return out
