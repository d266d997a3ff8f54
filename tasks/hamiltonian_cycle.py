"""Hamiltonian cycle: a cycle through every vertex exactly once, or `No` when there is none
(official `hamiltonian_cycle`). The answer lists the vertices in order; repeating the first
vertex at the end is optional. State: the official adjacency dict `{'0': [1, 3], ...}`.
"""
from __future__ import annotations

from ._graph_walks import HamiltonianTask, ham_search
from ._graphs import Graph, is_walk

# level: (nodes, (min edges, max edges))
LEVELS = {1: (6, (7, 9)), 2: (9, (10, 14)), 3: (12, (14, 20)), 4: (14, (17, 24)), 5: (16, (20, 28))}


class HamiltonianCycle(HamiltonianTask):
    name = "hamiltonian_cycle"
    official = "hamiltonian_cycle"
    levels = LEVELS
    closed = True
    what = "Hamiltonian cycle"

    def _find(self, state, trace=None):
        return ham_search(Graph(state), cycle=True, trace=trace)

    def format_answer(self, solution):
        return "No" if solution is None else str(list(solution) + [solution[0]])

    def valid(self, g, seq, state):
        if len(seq) == g.n + 1 and seq[0] == seq[-1]:
            seq = seq[:-1]     # the closing repeat is optional
        return (g.n >= 3 and len(seq) == g.n and sorted(seq) == list(range(g.n))
                and is_walk(g, seq) and g.has_edge(seq[-1], seq[0]))

    def rule_text(self):
        return ("A Hamiltonian cycle visits every vertex exactly once along edges and returns to "
                "its first vertex. Any vertex can be the first, so fix vertex 0 and search for a "
                "path from 0 through all vertices whose last vertex is adjacent to 0.")

    def question(self, state, text_only=False):
        rules = ("Find a Hamiltonian cycle in an undirected graph: a cycle that moves only along "
                 "edges, visits every vertex exactly once, and returns to where it started. If "
                 "the graph has no Hamiltonian cycle, answer No.")
        where = self.text_graph(state) if text_only else self.image_graph(state)
        return (f"{rules}\n\n{where}\n\nAnswer with the vertices in cycle order as a list, for "
                f"example `[0, 2, 3, 1, 0]` (repeating the first vertex at the end is optional), "
                f"or with `No` if there is no Hamiltonian cycle.")


TASK = HamiltonianCycle()
