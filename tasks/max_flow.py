"""Max flow: the maximum flow from the source (node 0) to the sink (the last node) of a
layered directed network with integer capacities (official `max_flow`).

Layers: the source alone, then `layers - 2` middle layers, then the sink alone; arcs go only
from one layer to the next. Every node gets at least one arc in and one out, and each other
pair of consecutive-layer nodes is joined with probability 0.45. From level 2 on the
generator prefers networks whose bottleneck is inside (the flow is below both the source's
total out-capacity and the sink's total in-capacity), so that summing one side is not enough.
State: `{'0': [[1, 7], [2, 4]], ..., '7': []}`, out-arcs as [head, capacity].
"""
from __future__ import annotations

from collections import deque

from PIL import ImageDraw

from . import draw, formats
from ._graphs import Graph, GraphTask, adjacency_lines, cached, make_state, render_graph
from .base import parse_int, step

# level: (layers, (min, max) width of a middle layer, max capacity)
LEVELS = {1: (3, (2, 2), 10), 2: (4, (2, 3), 10), 3: (5, (2, 3), 12), 4: (5, (3, 4), 15),
          5: (6, (3, 4), 15)}


def edmonds_karp(g: Graph, s: int, t: int):
    """(flow value, augmentations [(path, bottleneck, [residual caps], total)], source side of
    a minimum cut). Breadth-first search over residual arcs in increasing node order."""
    res = dict()
    nbrs = [set() for _ in range(g.n)]
    for (u, v), c in g.w.items():
        res[(u, v)] = res.get((u, v), 0) + c
        res.setdefault((v, u), 0)
        nbrs[u].add(v)
        nbrs[v].add(u)
    order = [sorted(x) for x in nbrs]
    total, augs = 0, []
    while True:
        prev = {s: None}
        q = deque([s])
        while q and t not in prev:
            u = q.popleft()
            for v in order[u]:
                if v not in prev and res[(u, v)] > 0:
                    prev[v] = u
                    q.append(v)
        if t not in prev:
            return total, augs, sorted(prev)
        path = [t]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        caps = [res[(a, b)] for a, b in zip(path, path[1:])]
        b = min(caps)
        for x, y in zip(path, path[1:]):
            res[(x, y)] -= b
            res[(y, x)] += b
        total += b
        augs.append((path, b, caps, total))


def layers_of(g: Graph) -> list[int]:
    """Layer of each node: the longest arc count from the source (the sink goes last)."""
    layer = [0] * g.n
    indeg = [0] * g.n
    for u, v in g.edges():
        indeg[v] += 1
    q = deque(i for i in range(g.n) if indeg[i] == 0)
    seen = 0
    while q:
        u = q.popleft()
        seen += 1
        for v in g.nb[u]:
            layer[v] = max(layer[v], layer[u] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                q.append(v)
    if seen < g.n:   # not acyclic (a foreign state): fall back to breadth-first depth
        layer = [0] * g.n
    last = max(layer)
    if g.n > 1 and any(layer[i] == last for i in range(g.n - 1)):
        layer[g.n - 1] = last + 1
    return layer


class MaxFlow(GraphTask):
    name = "max_flow"
    official = "max_flow"
    directed = True
    weighted = True
    answer_shape = formats.NUMBER

    def make(self, rng, level):
        nl, (wlo, whi), cmax = LEVELS[level]
        for attempt in range(30):
            widths = [1] + [rng.randint(wlo, whi) for _ in range(nl - 2)] + [1]
            ids, k = [], 0
            for w in widths:
                ids.append(list(range(k, k + w)))
                k += w
            n = k
            arcs = set()
            for a, b in zip(ids, ids[1:]):
                for v in b:                       # every node of the next layer gets an arc in
                    arcs.add((rng.choice(a), v))
                for u in a:                       # every node of this layer gets an arc out
                    if not any((u, v) in arcs for v in b):
                        arcs.add((u, rng.choice(b)))
                for u in a:
                    for v in b:
                        if rng.random() < 0.45:
                            arcs.add((u, v))
            arcs = sorted(arcs)
            caps = [rng.randint(1, cmax) for _ in arcs]
            state = make_state(n, arcs, directed=True, weights=caps)
            flow = self.solve(state)
            out_s = sum(c for (u, v), c in zip(arcs, caps) if u == 0)
            in_t = sum(c for (u, v), c in zip(arcs, caps) if v == n - 1)
            if level == 1 or flow < min(out_s, in_t):
                break
        meta = {"layers": nl, "widths": widths, "nodes": n, "arcs": len(arcs),
                "max_capacity": cmax, "augmentations": len(edmonds_karp(Graph(state, True), 0, n - 1)[1])}
        return state, flow, meta

    def solve(self, state):
        g = Graph(state, directed=True)
        return cached(self.name, state, lambda: edmonds_karp(g, 0, g.n - 1)[0])

    def format_answer(self, solution):
        return str(solution)

    def check(self, answer, state):
        v = parse_int(answer)
        return v is not None and v == self.solve(state)

    def render(self, state):
        g = Graph(state, directed=True)
        layer = layers_of(g)
        nl = max(layer) + 1
        cols = [[i for i in range(g.n) if layer[i] == L] for L in range(nl)]
        tallest = max(len(c) for c in cols)
        dx, dy, mx, top = 230, 125, 95, 34 + 40
        w = 2 * mx + (nl - 1) * dx
        h = top + 60 + (tallest - 1) * dy + 40
        pos = [None] * g.n
        for L, col in enumerate(cols):
            for j, i in enumerate(col):
                pos[i] = (mx + L * dx, top + 20 + (tallest - 1) * dy / 2 + (j - (len(col) - 1) / 2) * dy)
        arcs = g.edges()
        img = render_graph(g.n, arcs, pos, max(w, 420), h, weights=[g.w[a] for a in arcs],
                           directed=True, marked={0, g.n - 1}, colour_by="source",
                           caption=f"Maximum flow from source 0 to sink {g.n - 1}?")
        d = ImageDraw.Draw(img)
        for i, text in ((0, "source"), (g.n - 1, "sink")):
            x, y = pos[i]
            draw.center_text(d, (x, y + 36), text, size=15, fill=draw.RED)
        return [img]

    def question(self, state, text_only=False):
        n = Graph(state, True).n
        rules = ("A flow network is a directed graph in which every arc has a capacity. A flow "
                 "sends some amount along each arc, never more than its capacity, and at every "
                 "node other than the source and the sink the amount flowing in equals the amount "
                 "flowing out. The value of the flow is the total amount leaving the source. "
                 "Find the maximum possible value.")
        if text_only:
            where = (f"The network has nodes 0 to {n - 1}; the source is node 0 and the sink is "
                     f"node {n - 1}. Out-arcs of each node, written as (head, capacity):\n"
                     f"{adjacency_lines(state)}")
        else:
            where = ("The image shows the network: arrows are arcs and the number in the box on an "
                     "arrow is its capacity (box and arrow share a colour). The source is the "
                     "leftmost node and the sink the rightmost node, both drawn in red.")
        return (f"{rules}\n\n{where}\n\nWhat is the maximum flow from the source to the sink? "
                f"Answer with a single integer, for example `14`.")

    def skeleton(self, state):
        g = Graph(state, directed=True)
        s, t = 0, g.n - 1
        total, augs, side = edmonds_karp(g, s, t)
        arcs = ", ".join(f"{u}->{v} ({g.w[(u, v)]})" for u, v in g.edges())
        steps = [step("rule", "Edmonds-Karp: repeatedly find a shortest augmenting path from the "
                              "source to the sink in the residual network (unused capacity "
                              "forwards, flow already sent backwards), push its bottleneck "
                              "along it, and stop when none is left. Then a minimum cut proves "
                              "the flow is maximum."),
                 step("read", f"Source {s}, sink {t}; arcs (capacity): {arcs}.")]
        for k, (path, b, caps, tot) in enumerate(augs, 1):
            back = [f"{y}->{x}" for x, y in zip(path, path[1:]) if (x, y) not in g.w]
            note = f" (it cancels flow on {', '.join(back)})" if back else ""
            steps.append(step("step", f"Augmenting path {k}: {' -> '.join(map(str, path))}{note}; "
                                      f"residual capacities {', '.join(map(str, caps))}, bottleneck "
                                      f"{b}. Push {b}: total flow {tot}."))
        steps.append(step("step", f"No augmenting path is left: from the source the residual "
                                  f"network reaches only {side}."))
        cut = [(u, v) for u, v in g.edges() if u in side and v not in side]
        cut_txt = ", ".join(f"{u}->{v} ({g.w[(u, v)]})" for u, v in cut)
        steps.append(step("check", f"The arcs from that set to the rest form a cut: {cut_txt}. Their "
                                   f"capacities sum to {sum(g.w[a] for a in cut)}, equal to the flow "
                                   f"{total}, so no larger flow exists."))
        steps.append(step("answer", str(total)))
        return steps


TASK = MaxFlow()
