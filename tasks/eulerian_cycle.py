"""Eulerian cycle: a closed walk that uses every edge exactly once, or `No` when there is
none (official `eulerian_cycle`). The answer repeats the first vertex at the end (the
official format, e.g. `[0, 1, 2, 0]`); leaving the repeat out is accepted too.
State: the official adjacency dict `{'0': [1, 3], ...}`.
"""
from __future__ import annotations

from ._graph_walks import EulerianTask

# level: (nodes, (min edges, max edges)) before the parity adjustment
LEVELS = {1: (8, (9, 12)), 2: (10, (12, 16)), 3: (12, (15, 20)), 4: (14, (18, 24)), 5: (16, (21, 28))}


class EulerianCycle(EulerianTask):
    name = "eulerian_cycle"
    official = "eulerian_cycle"
    levels = LEVELS
    closed = True
    what = "Eulerian cycle"
    no_kinds = ("two_odd", "parity", "split")

    def rule_text(self):
        return ("An Eulerian cycle is a closed walk using every edge exactly once. It exists "
                "exactly when all edges lie in one connected piece and every vertex has even "
                "degree.")

    def question(self, state, text_only=False):
        rules = ("Find an Eulerian cycle in an undirected graph: a closed walk that moves along "
                 "edges, uses every edge exactly once (vertices may be visited more than once) and "
                 "ends at the vertex where it started. If no such walk exists, answer No.")
        where = self.text_graph(state) if text_only else self.image_graph(state)
        return (f"{rules}\n\n{where}\n\nAnswer with the vertices in walking order as a list that "
                f"ends with its first vertex, for example `[0, 1, 2, 0]`, or with `No` if there is "
                f"no Eulerian cycle.")


TASK = EulerianCycle()
