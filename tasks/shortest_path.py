"""Shortest path: the length of a shortest path from node 0 to node N-1 in a weighted,
undirected, connected graph (official `shortest_distance_weighted`).

Graphs are drawn on a grid (node i in row i // cols, column i % cols, as in the official
images) with edges only between grid neighbours and at most one diagonal per cell, so no
two edges cross and every weight label sits alone at its edge's midpoint. The graph is a
random spanning tree of those candidate edges plus each other candidate with a probability
that falls with the level (sparser as it grows). State: `{'0': [[1, 4], [3, 2]], ...}`,
each neighbour as [neighbour, weight]; a plain `{'0': [1, 3]}` reads as weight 1.
"""
from __future__ import annotations

import heapq
from fractions import Fraction

from ._graphs import (Graph, GraphTask, adjacency_lines, cached, grid_candidates, grid_cols,
                      grid_positions, is_grid_local, make_state, render_graph,
                      spanning_subgraph)
from . import draw, formats
from .base import parse_number, step

# level: (nodes, max weight, probability of each non-tree grid edge, least hops on the answer path)
LEVELS = {1: (6, 5, 0.7, 2), 2: (9, 5, 0.6, 3), 3: (12, 8, 0.5, 4), 4: (16, 10, 0.45, 5),
          5: (25, 10, 0.4, 6)}


def _num(x):
    return int(x) if Fraction(x).denominator == 1 else x


def dijkstra(g: Graph, src: int, dst: int):
    """(distance, predecessor map, settle log). The log has one entry per settled node:
    (node, distance, predecessor, [(neighbour, old, new), ...]). Stops at dst."""
    dist = {src: Fraction(0)}
    prev = {src: None}
    done = set()
    heap = [(Fraction(0), src)]
    log = []
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        updates = []
        if u != dst:
            for v in g.nb[u]:
                if v in done:
                    continue
                nd = d + Fraction(str(g.w[(u, v)]))
                if v not in dist or nd < dist[v]:
                    updates.append((v, dist.get(v), nd))
                    dist[v] = nd
                    prev[v] = u
                    heapq.heappush(heap, (nd, v))
        log.append((u, d, prev[u], updates))
        if u == dst:
            return d, prev, log
    return None, prev, log


class ShortestPath(GraphTask):
    name = "shortest_path"
    official = "shortest_distance_weighted"
    weighted = True
    answer_shape = formats.NUMBER

    def make(self, rng, level):
        n, wmax, p, min_hops = LEVELS[level]
        for _ in range(60):
            edges = spanning_subgraph(rng, n, grid_candidates(rng, n), p)
            weights = [rng.randint(1, wmax) for _ in edges]
            g_state = make_state(n, edges, weights=weights)
            dist, prev, _ = dijkstra(Graph(g_state), 0, n - 1)
            hops = len(self._path(prev, n - 1)) - 1
            if hops >= min_hops:
                break
        meta = {"nodes": n, "edges": len(edges), "max_weight": wmax, "hops": hops,
                "density": round(2 * len(edges) / (n * (n - 1)), 3)}
        return g_state, _num(dist), meta

    @staticmethod
    def _path(prev, t):
        path = [t]
        while prev.get(path[-1]) is not None:
            path.append(prev[path[-1]])
        return path[::-1]

    def solve(self, state):
        def run():
            g = Graph(state)
            d, _, _ = dijkstra(g, 0, g.n - 1)
            return None if d is None else _num(d)
        return cached(self.name, state, run)

    def format_answer(self, solution):
        return str(solution)

    def check(self, answer, state):
        v = parse_number(answer)
        if v is None:
            return False
        best = self.solve(state)
        return best is not None and v == Fraction(best)

    def render(self, state):
        g = Graph(state)
        edges = g.edges()
        weights = [g.w[e] for e in edges]
        cap = f"Shortest distance from node 0 to node {g.n - 1}?"
        if is_grid_local(g.n, edges):
            cols = grid_cols(g.n)
            rows = -(-g.n // cols)
            cell = 150 if g.n <= 16 else 135
            pos = grid_positions(g.n, cell, 70, 34)
            w, h = 140 + (cols - 1) * cell, 34 + 140 + (rows - 1) * cell
        else:   # a foreign (official) graph: nodes on a circle
            w = h = 560 if g.n <= 10 else 720 if g.n <= 16 else 860
            pos = draw.circle_layout(g.n, w / 2 - 60, w / 2, h / 2 + 17)
            h += 34
        return [render_graph(g.n, edges, pos, max(w, 420), h, weights=weights,
                             marked={0, g.n - 1}, caption=cap)]

    def question(self, state, text_only=False):
        n = Graph(state).n
        rules = ("Find the length of a shortest path between two nodes of a weighted undirected "
                 "graph. The length of a path is the sum of the weights of its edges; edges can "
                 "be travelled in either direction.")
        if text_only:
            where = (f"The graph has nodes 0 to {n - 1}. Its adjacency list, one line per node, "
                     f"lists each neighbour as (neighbour, weight):\n{adjacency_lines(state)}\n\n"
                     f"What is the shortest distance from node 0 to node {n - 1}?")
        else:
            where = ("The image shows the graph: numbered circles are nodes, a line is an edge, "
                     "and the number in the box on a line is that edge's weight. What is the "
                     "shortest distance from node 0 to the highest-numbered node (the two nodes "
                     "drawn in red)?")
        return f"{rules}\n\n{where}\n\nAnswer with a single number, for example `17`."

    def skeleton(self, state):
        g = Graph(state)
        t = g.n - 1
        d, prev, log = dijkstra(g, 0, t)
        edges = ", ".join(f"{u}-{v} ({g.w[(u, v)]})" for u, v in g.edges())
        steps = [step("rule", "Dijkstra's algorithm: repeatedly settle the unsettled node with the "
                              "smallest tentative distance, then relax its edges (a neighbour's "
                              "distance drops if going through the settled node is shorter). "
                              f"When node {t} is settled its distance is final."),
                 step("read", f"Nodes 0 to {t}; edges (weight): {edges}.")]
        tent = {0: Fraction(0)}
        settled = []
        for u, du, pu, updates in log:
            settled.append(u)
            tent.pop(u, None)
            via = "" if pu is None else f" via {pu}"
            if u == t:
                steps.append(step("step", f"Settle {u} at distance {_num(du)}{via}. It is the "
                                          f"target, so stop."))
                break
            rel = "; ".join(f"{v}: {'inf' if old is None else _num(old)} -> {_num(new)}"
                            for v, old, new in updates) or "no distance improves"
            for v, _, new in updates:
                tent[v] = new
            front = ", ".join(f"{v}={_num(x)}" for v, x in sorted(tent.items(), key=lambda kv: (kv[1], kv[0])))
            steps.append(step("step", f"Settle {u} at distance {_num(du)}{via}. Relax: {rel}. "
                                      f"Tentative: {front or 'none'}."))
        path = self._path(prev, t)
        steps.append(step("step", "Follow the predecessors back from the target: "
                                  + " -> ".join(map(str, path)) + "."))
        ws = [g.w[(a, b)] for a, b in zip(path, path[1:])]
        steps.append(step("check", f"Along that path the weights {' + '.join(map(str, ws))} = "
                                   f"{_num(sum(Fraction(str(x)) for x in ws))}, the settled "
                                   f"distance of {t}."))
        steps.append(step("answer", str(_num(d))))
        return steps


TASK = ShortestPath()
