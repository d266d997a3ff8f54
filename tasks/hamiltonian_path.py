"""Hamiltonian path: a path that starts at the marked vertex and visits every vertex exactly
once, or `No` when there is none (official `hamiltonian_path`).

State: the official adjacency dict plus one key, the start vertex:
`{'0': [1, 3], '1': [0, 2], ..., 'start': 2}`. The official `initial_state` has no start (it
is only in the question text, "starting from vertex 2"), so for official records
`state_from_record` reads it from the question; when it cannot be found there either, the
state has no 'start' and any start vertex is accepted (and `No` means no Hamiltonian path
at all). The official verifier never checked the start vertex; this one does.
"""
from __future__ import annotations

import re

from ._graph_walks import HamiltonianTask, ham_search
from ._graphs import Graph, _node_id, is_walk, render_plain

# level: (nodes, (min edges, max edges))
LEVELS = {1: (4, (3, 5)), 2: (6, (7, 9)), 3: (8, (9, 12)), 4: (12, (14, 20)), 5: (16, (19, 26))}

_START = re.compile(r"start(?:ing|s)?\s+(?:from|at)\s+(?:vertex|node)\s+(\d{1,3})", re.I)


class HamiltonianPath(HamiltonianTask):
    name = "hamiltonian_path"
    official = "hamiltonian_path"
    levels = LEVELS
    what = "Hamiltonian path"
    extra_keys = ("start",)

    def attach_extras(self, state, extras):
        s = extras.get("start")
        if s is not None:
            s = _node_id(s)
            if s >= len(state):
                raise ValueError(f"start {s} is not a node")
            state["start"] = s
        return state

    def state_from_record(self, record):
        state = super().state_from_record(record)
        if "start" not in state:
            for key in ("question", "question_text", "question_language"):
                m = _START.search(str(record.get(key) or "")[:20_000])
                if m and int(m.group(1)) < len(state):
                    state["start"] = int(m.group(1))
                    break
        return state

    def place(self, rng, state):
        state["start"] = rng.randrange(len(state))
        return state

    def _find(self, state, trace=None):
        return ham_search(Graph(state), start=state.get("start"), trace=trace)

    def valid(self, g, seq, state):
        start = state.get("start")
        return (len(seq) == g.n and sorted(seq) == list(range(g.n))
                and (start is None or seq[0] == start) and is_walk(g, seq))

    def rule_text(self):
        return ("A Hamiltonian path visits every vertex exactly once, moving along edges; here "
                "it must start at the given vertex. Answer No only if no such path exists.")

    def render(self, state):
        s = state.get("start")
        return [render_plain(state, marked=() if s is None else (s,),
                             caption="Hamiltonian path from the red vertex?")]

    def question(self, state, text_only=False):
        s = state.get("start")
        rules = ("Find a Hamiltonian path in an undirected graph: a path that starts at the given "
                 "start vertex, moves only along edges, and visits every vertex exactly once (it "
                 "does not need to return to the start). If no such path exists, answer No.")
        if text_only:
            where = self.text_graph(state) + (f"\n\nThe path must start at vertex {s}." if s is not None
                                              else "\n\nThe path may start at any vertex.")
        else:
            where = (self.image_graph(state) + " The path must start at the vertex drawn in red."
                     if s is not None else self.image_graph(state))
        return (f"{rules}\n\n{where}\n\nAnswer with the vertices in visiting order as a list, for "
                f"example `[0, 3, 1, 2]`, or with `No` if there is no such path.")


TASK = HamiltonianPath()
