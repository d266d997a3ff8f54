"""The reward: a reply scored against a record, one rule for every stage and engine.

    from tasks.scoring import score        # also `tasks.score`
    score("... \\boxed{(9 - 3) × 8 ÷ 2}", record)   # True / False; never raises

It lives in a module of its own (not the package's __init__) so that the platform's own
modules that call it, tasks/reward.py, import it without importing their package back.
"""
from __future__ import annotations

from .extract import extract_answer
from .formats import same_answer
from .records import answer_only, state_of
from .registry import task_of


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
