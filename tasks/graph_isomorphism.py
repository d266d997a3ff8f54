"""Graph isomorphism: are two graphs, drawn in two images, the same graph up to renaming
the vertices? Answer `Yes` or `No` (official `graph_isomorphism`).

Yes and No are drawn half and half. A Yes pair is a random connected graph and a random
renaming of it. A No pair is a random connected graph and a copy changed by degree-preserving
edge swaps (a-b, c-d -> a-d, c-b), kept connected, so both graphs always have the same
numbers of vertices and edges and the same degree sequence; from level 3 on they also have
the same number of triangles, and at level 5 every vertex-degree/neighbour-degree profile
matches too (one round of colour refinement cannot tell them apart). The solver proves
non-isomorphism by exhaustive backtracking.

State: `{'G1': {'0': [1, 2], ...}, 'G2': {...}}`, two official-style adjacency dicts. Official
records whose `initial_state` cannot be read are read from the text question's `G1:` / `G2:`
adjacency blocks.
"""
from __future__ import annotations

from . import formats
from ._graphs import (Graph, GraphTask, adjacency_from_lines, adjacency_lines, cached,
                      is_connected,
                      make_state, normalise, random_connected, relabel, render_plain)
from .base import step, yes_no

NODES = {1: 6, 2: 7, 3: 8, 4: 9, 5: 10}


def profile(g: Graph):
    """Per vertex: (degree, sorted degrees of its neighbours): one colour-refinement round."""
    return [(g.degree(v), tuple(sorted(g.degree(u) for u in g.nb[v]))) for v in range(g.n)]


def triangles(g: Graph) -> int:
    return sum(1 for u, v in g.edges() for w in g.nb[u] if w > v and g.has_edge(v, w))


def iso_search(g1: Graph, g2: Graph, trace=None):
    """A mapping G1 -> G2 (list, index = G1 vertex) preserving edges and non-edges, or None.
    Vertices of G1 are placed in breadth-first order from a vertex of the rarest profile;
    a candidate image must have the same profile and agree on adjacency with every vertex
    already placed. trace receives ('map', v, w), ('reject', v, w, u, had_edge),
    ('dead', v), ('found', mapping)."""
    n = g1.n
    if n != g2.n or len(g1.edges()) != len(g2.edges()):
        return None
    p1, p2 = profile(g1), profile(g2)
    if sorted(p1) != sorted(p2):
        return None
    count = {}
    for p in p1:
        count[p] = count.get(p, 0) + 1
    order, seen = [], set()
    while len(order) < n:
        root = min((v for v in range(n) if v not in seen), key=lambda v: (count[p1[v]], -g1.degree(v), v))
        seen.add(root)
        queue = [root]
        while queue:
            v = queue.pop(0)
            order.append(v)
            for u in g1.nb[v]:
                if u not in seen:
                    seen.add(u)
                    queue.append(u)
    image = [None] * n
    used = [False] * n
    budget = [200_000]   # placements; far above what 10-vertex graphs need

    def place(i):
        budget[0] -= 1
        if budget[0] < 0:
            raise RuntimeError("isomorphism search budget exhausted")
        if i == n:
            if trace is not None:
                trace.append(("found", list(image)))
            return True
        v = order[i]
        for w in range(n):
            if used[w] or p2[w] != p1[v]:
                continue
            clash = next((u for u in order[:i] if g1.has_edge(v, u) != g2.has_edge(w, image[u])), None)
            if clash is not None:
                if trace is not None:
                    trace.append(("reject", v, w, clash, g1.has_edge(v, clash), image[clash]))
                continue
            image[v], used[w] = w, True
            if trace is not None:
                trace.append(("map", v, w))
            if place(i + 1):
                return True
            image[v], used[w] = None, False
        if trace is not None:
            trace.append(("dead", v))
        return False

    return list(image) if place(0) else None


def _swap(rng, n, edges):
    """One degree-preserving double-edge swap, or None if the random pick does not fit."""
    (a, b), (c, d) = rng.sample(sorted(edges), 2)
    if rng.random() < 0.5:
        c, d = d, c
    if len({a, b, c, d}) < 4:
        return None
    e1, e2 = (min(a, d), max(a, d)), (min(c, b), max(c, b))
    if e1 in edges or e2 in edges:
        return None
    new = (edges - {(min(a, b), max(a, b)), (min(c, d), max(c, d))}) | {e1, e2}
    return new if is_connected(n, new) else None


class GraphIsomorphism(GraphTask):
    name = "graph_isomorphism"
    official = "graph_isomorphism"
    n_images = 2
    answer_shape = formats.YES_NO

    def make(self, rng, level):
        n = NODES[level]
        iso = rng.random() < 0.5
        for attempt in range(600):
            strict = attempt < 500      # then give up the extra invariants, never the class
            m = n - 1 + rng.randint(2, n // 2 + 2)
            e1 = random_connected(rng, n, m)
            e2 = set(e1)
            if not iso:
                for _ in range(rng.randint(1, 3)):
                    e2 = _swap(rng, n, e2) or e2
            e2, _ = relabel(rng, n, e2)
            g1s, g2s = make_state(n, sorted(e1)), make_state(n, e2)
            if g1s == g2s:
                continue
            g1, g2 = Graph(g1s), Graph(g2s)
            if not iso and strict:
                if level >= 3 and triangles(g1) != triangles(g2):
                    continue
                if level >= 5 and sorted(profile(g1)) != sorted(profile(g2)):
                    continue
            if (iso_search(g1, g2) is not None) == iso:
                break
        iso = iso_search(g1, g2) is not None   # the verdict is the solver's, whatever happened
        state = {"G1": g1s, "G2": g2s}
        meta = {"nodes": n, "edges": len(g1.edges()), "isomorphic": iso,
                "same_triangles": triangles(g1) == triangles(g2),
                "same_profiles": sorted(profile(g1)) == sorted(profile(g2))}
        return state, iso, meta

    def state_from_obj(self, obj):
        if isinstance(obj, dict) and len(obj) == 2 and all(isinstance(v, dict) for v in obj.values()):
            pair = list(obj.values())
        elif isinstance(obj, (list, tuple)) and len(obj) == 2:
            pair = list(obj)
        else:
            raise ValueError("expected two adjacency dicts")
        return {"G1": normalise(pair[0])[0], "G2": normalise(pair[1])[0]}

    def state_from_record(self, record):
        try:
            return self.state_from_str(record["initial_state"])
        except (KeyError, ValueError, TypeError, AttributeError):
            for key in ("question_text", "question_language"):
                got = adjacency_from_lines(record.get(key) or "")
                if isinstance(got, list) and len(got) == 2:
                    return self.state_from_obj(got)
            raise

    def solve(self, state):
        return cached(self.name, state,
                      lambda: iso_search(Graph(state["G1"]), Graph(state["G2"])) is not None)

    def format_answer(self, solution):
        return "Yes" if solution else "No"

    def check(self, answer, state):
        v = yes_no(answer)
        return v is not None and v == self.solve(state)

    def render(self, state):
        return [render_plain(state["G1"], caption="Graph G1"),
                render_plain(state["G2"], caption="Graph G2")]

    def question(self, state, text_only=False):
        rules = ("Two undirected graphs G1 and G2 are isomorphic if the vertices of G1 can be "
                 "renamed, one-to-one, as the vertices of G2 so that two vertices are joined by an "
                 "edge in G1 exactly when their new names are joined by an edge in G2. The vertex "
                 "numbers themselves and the drawing do not matter. Are G1 and G2 isomorphic?")
        if text_only:
            where = (f"Adjacency lists (each line lists a vertex's neighbours):\nG1:\n"
                     f"{adjacency_lines(state['G1'])}\n\nG2:\n{adjacency_lines(state['G2'])}")
        else:
            where = ("The first image shows G1 and the second image shows G2: numbered circles are "
                     "vertices and lines are edges.")
        return f"{rules}\n\n{where}\n\nAnswer with `Yes` or `No`."

    def skeleton(self, state):
        g1, g2 = Graph(state["G1"]), Graph(state["G2"])
        e1, e2 = g1.edges(), g2.edges()
        steps = [step("rule", "Isomorphic graphs have equal vertex and edge counts and equal "
                              "degree sequences; when those agree, search for a renaming that "
                              "maps edges to edges and non-edges to non-edges, vertex by vertex, "
                              "undoing a choice when it clashes."),
                 step("read", "G1 edges: " + ", ".join(f"{u}-{v}" for u, v in e1) + ". G2 edges: "
                      + ", ".join(f"{u}-{v}" for u, v in e2) + ".")]
        d1 = sorted((g1.degree(v) for v in range(g1.n)), reverse=True)
        d2 = sorted((g2.degree(v) for v in range(g2.n)), reverse=True)
        steps.append(step("step", f"G1: {g1.n} vertices, {len(e1)} edges, degree sequence {d1}. "
                                  f"G2: {g2.n} vertices, {len(e2)} edges, degree sequence {d2}."))
        if (g1.n, len(e1), d1) != (g2.n, len(e2), d2):
            steps.append(step("check", "These counts differ, and a renaming preserves all of them, "
                                       "so the graphs are not isomorphic."))
            steps.append(step("answer", "No"))
            return steps
        p1, p2 = profile(g1), profile(g2)
        same = sorted(p1) == sorted(p2)
        steps.append(step("step", "The counts agree, so counting cannot decide. Refine: give each "
                                  "vertex its degree with its neighbours' degrees. G1: "
                          + ", ".join(f"{v}:{p[0]}{list(p[1])}" for v, p in enumerate(p1)) + ". G2: "
                          + ", ".join(f"{v}:{p[0]}{list(p[1])}" for v, p in enumerate(p2)) + "."
                          + (" The two collections of profiles are the same, so a vertex may only "
                             "map to a vertex with the same profile." if same else "")))
        if not same:
            steps.append(step("check", "The collections of profiles differ (a renaming would carry "
                                       "each profile over unchanged), so the graphs are not "
                                       "isomorphic."))
            steps.append(step("answer", "No"))
            return steps
        trace = []
        mapping = iso_search(g1, g2, trace)
        shown, hidden = 0, 0
        for ev in trace:
            if ev[0] == "found":
                continue
            if shown >= 110:
                hidden += ev[0] in ("reject", "dead")
                continue
            if ev[0] == "map":
                steps.append(step("step", f"Map {ev[1]} -> {ev[2]}."))
            elif ev[0] == "reject":
                _, v, w, u, had, wu = ev
                steps.append(step("backtrack", f"{v} -> {w} fails: {v}-{u} is {'' if had else 'not '}an "
                                               f"edge of G1 but {w}-{wu} is {'not ' if had else ''}an "
                                               f"edge of G2 ({u} is mapped to {wu})."))
            else:
                steps.append(step("backtrack", f"No remaining image works for {ev[1]}: undo and go back to the previous vertex."))
            shown += 1
        if hidden:
            steps.append(step("backtrack", f"... {hidden} further rejected choices of the same "
                                           f"search are not written out."))
        if mapping is None:
            steps.append(step("check", "Every possible renaming was tried and each one clashed, "
                                       "so the graphs are not isomorphic."))
            steps.append(step("answer", "No"))
            return steps
        steps.append(step("check", "Renaming " + ", ".join(f"{v}->{w}" for v, w in enumerate(mapping))
                          + f" sends each of the {len(e1)} edges of G1 to an edge of G2: "
                          + ", ".join(f"{u}-{v} -> {mapping[u]}-{mapping[v]}" for u, v in e1) + "."))
        steps.append(step("answer", "Yes"))
        return steps


TASK = GraphIsomorphism()
