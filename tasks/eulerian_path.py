"""Eulerian path: a walk that uses every edge exactly once (vertices may repeat), or `No`
when there is none (official `eulerian_path`). A closed walk counts as well.
State: the official adjacency dict `{'0': [1, 3], ...}`.
"""
from __future__ import annotations

from ._graph_walks import EulerianTask

# level: (nodes, (min edges, max edges)) before the parity adjustment
LEVELS = {1: (6, (7, 9)), 2: (8, (9, 12)), 3: (10, (12, 16)), 4: (12, (15, 20)), 5: (16, (20, 27))}


class EulerianPath(EulerianTask):
    name = "eulerian_path"
    official = "eulerian_path"
    levels = LEVELS
    what = "Eulerian path"
    no_kinds = ("parity", "parity", "split")

    def rule_text(self):
        return ("An Eulerian path uses every edge exactly once. It exists exactly when all edges "
                "lie in one connected piece and 0 or 2 vertices have odd degree; with 2, it must "
                "start at one of them and end at the other.")

    def question(self, state, text_only=False):
        rules = ("Find an Eulerian path in an undirected graph: a walk that moves along edges and "
                 "uses every edge exactly once (vertices may be visited more than once; the walk "
                 "may end where it started or elsewhere). If no such walk exists, answer No.")
        where = self.text_graph(state) if text_only else self.image_graph(state)
        return (f"{rules}\n\n{where}\n\nAnswer with the vertices in walking order as a list, for "
                f"example `[2, 0, 1, 2, 3]`, or with `No` if there is no Eulerian path.")


TASK = EulerianPath()
