"""The MM-HELIX task platform: 42 procedurally generated reasoning tasks.

    from tasks import TASKS, get, score
    t = get("24points")                  # our name or the official `category` ("24Points")
    inst = t.generate(level=2, seed=0)
    score("... \\boxed{(9 - 3) × 8 ÷ 2}", record)   # record as synth.py writes, or official

Each task lives in its own module `tasks/<name>.py` that defines `TASK`; the registry
(tasks/registry.py) finds them, so adding a task is adding a file. This package is the
benchmark only: tasks, answer reading, the record format. It imports no torch, no HTTP, no
threads and no plotting (what runs around the stages is the harness/ package), so a verifier
can be used anywhere.
"""
from __future__ import annotations

from .base import GROUPS, LEVELS, Instance, Task, step  # noqa: F401
from .extract import extract_answer  # noqa: F401
from .records import (RecordError, answer_only, build_prompt, check_record, make_record,  # noqa: F401
                      messages_for, record_images, state_of)
from .registry import BY_OFFICIAL, TASKS, get, groups, task_of  # noqa: F401
from .scoring import score  # noqa: F401
