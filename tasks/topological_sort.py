"""Topological sort: order the nodes of a directed acyclic graph so that every arc points
forwards (official `topological_sort`). Any valid order is accepted.

The DAG is drawn on a grid (node i at row i // cols, column i % cols) with arcs only between
grid neighbours, so nothing crosses; arcs are oriented by a hidden random order of the
nodes, so the numbering and the layout say nothing about the answer. It is weakly connected:
a random spanning tree of the grid edges plus each other grid edge with probability 0.55.
State: the official out-adjacency dict, e.g. `{'0': [3], '1': [0, 4], ...}`.
"""
from __future__ import annotations

from . import formats
from ._graphs import (Graph, GraphTask, adjacency_lines, grid_candidates, make_state,
                      parse_vertex_list, render_plain, spanning_subgraph)
from .base import step

NODES = {1: 6, 2: 9, 3: 12, 4: 16, 5: 25}


def kahn(g: Graph, log=None):
    """Kahn's algorithm, always taking the smallest ready node. None if there is a cycle.
    log receives (node, [(successor, new in-degree)], ready list after the step)."""
    indeg = [0] * g.n
    for u, v in g.edges():
        indeg[v] += 1
    ready = sorted(i for i in range(g.n) if indeg[i] == 0)
    order = []
    while ready:
        u = ready.pop(0)
        order.append(u)
        drops = []
        for v in g.nb[u]:
            indeg[v] -= 1
            drops.append((v, indeg[v]))
            if indeg[v] == 0:
                ready.append(v)
        ready.sort()
        if log is not None:
            log.append((u, drops, list(ready)))
    return order if len(order) == g.n else None


class TopologicalSort(GraphTask):
    name = "topological_sort"
    official = "topological_sort"
    directed = True
    answer_shape = formats.VERTICES

    def make(self, rng, level):
        n = NODES[level]
        rank = list(range(n))
        rng.shuffle(rank)
        und = spanning_subgraph(rng, n, grid_candidates(rng, n), 0.55)
        arcs = sorted((u, v) if rank[u] < rank[v] else (v, u) for u, v in und)
        state = make_state(n, arcs, directed=True)
        sources = sum(1 for v in range(n) if not any(b == v for _, b in arcs))
        return state, self.solve(state), {"nodes": n, "arcs": len(arcs), "sources": sources}

    def solve(self, state):
        return kahn(Graph(state, directed=True))

    def format_answer(self, solution):
        return str(list(solution))

    def check(self, answer, state):
        g = Graph(state, directed=True)
        order = parse_vertex_list(answer, max_items=g.n)
        if order is None or len(order) != g.n or sorted(order) != list(range(g.n)):
            return False
        at = {v: i for i, v in enumerate(order)}
        return all(at[u] < at[v] for u, v in g.edges())

    def render(self, state):
        return [render_plain(state, directed=True, grid=True,
                             caption="Directed acyclic graph: order the nodes")]

    def question(self, state, text_only=False):
        n = Graph(state, True).n
        rules = ("Give a topological order of a directed acyclic graph: a list of all its nodes, "
                 "each exactly once, such that for every arc u -> v, node u comes before node v.")
        if text_only:
            where = (f"The graph has nodes 0 to {n - 1}. Out-neighbours of each node (an entry "
                     f"`u: [v, w]` means arcs u -> v and u -> w):\n{adjacency_lines(state)}")
        else:
            where = ("The image shows the graph: numbered circles are nodes and each arrow is an "
                     "arc pointing from its tail to the node at its arrowhead.")
        return (f"{rules}\n\n{where}\n\nAnswer with the order as a list of node numbers, for "
                f"example `[2, 0, 1, 3]`. Any valid order is accepted.")

    def skeleton(self, state):
        g = Graph(state, directed=True)
        arcs = g.edges()
        indeg = [0] * g.n
        for _, v in arcs:
            indeg[v] += 1
        steps = [step("rule", "Kahn's algorithm: a node can be placed once all arcs into it come "
                              "from placed nodes (in-degree 0 among the rest). Repeatedly place "
                              "the smallest such node and remove its out-arcs."),
                 step("read", "Arcs: " + ", ".join(f"{u}->{v}" for u, v in arcs) + "."),
                 step("step", "In-degrees: " + ", ".join(f"{i}:{d}" for i, d in enumerate(indeg))
                      + f". Ready (in-degree 0): {[i for i in range(g.n) if indeg[i] == 0]}.")]
        log = []
        order = kahn(g, log)
        placed = []
        for u, drops, ready in log:
            placed.append(u)
            dr = ", ".join(f"{v} to {d}" + (" (ready)" if d == 0 else "") for v, d in drops)
            dr = f"in-degree of {dr}" if drops else "it has no out-arcs"
            steps.append(step("step", f"Place {u}; remove its arcs: {dr}. Order so far: {placed}. "
                                      f"Ready: {ready}."))
        at = {v: i for i, v in enumerate(order)}
        assert all(at[u] < at[v] for u, v in arcs)
        steps.append(step("check", f"All {g.n} nodes placed once, and each of the {len(arcs)} arcs "
                                   f"goes from an earlier to a later node."))
        steps.append(step("answer", self.format_answer(order)))
        return steps


TASK = TopologicalSort()
