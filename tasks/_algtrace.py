"""Shared by the search tasks of the Algorithms group (24 points, crypto math): turning a
solver's search trace into a readable skeleton of bounded length.

A trace is a list of (kind, text, on_path) events in the order the search made them;
`on_path` marks the events that belong to the final successful branch. When the trace is
too long we keep its beginning, say honestly how much was left out, and then replay the
successful branch's events that fell in the omitted part, so the skeleton always reaches
the answer the way the solver did.
"""
from __future__ import annotations

from .base import step


def capped_steps(events, limit: int = 120, head: int = 80) -> list[dict]:
    if len(events) <= limit:
        return [step(k, t) for k, t, _ in events]
    out = [step(k, t) for k, t, _ in events[:head]]
    rest = events[head:]
    kept = [e for e in rest if e[2]]
    dropped = [e for e in rest if not e[2]]
    n_tries = sum(1 for e in dropped if e[0] == "step")
    n_dead = sum(1 for e in dropped if e[0] == "backtrack")
    out.append(step("backtrack" if n_dead else "step",
                    f"... the search went on: {n_tries} further tries and {n_dead} further dead "
                    f"ends are omitted here; below, the branch that finally works."))
    out.extend(step(k, t) for k, t, _ in kept)
    return out
