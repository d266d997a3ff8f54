"""Shared by the four walk tasks (Hamiltonian path and cycle, Eulerian path and cycle): the
searches, the generators with their balanced and genuine `No` instances, and the rule checks.

Answers are vertex lists (`[0, 3, 1, 2]`, arrows and plain spaces accepted too) or `No`.
A `No` is right only when the solver, run on the state at check time, finds no walk: the
state stores nothing about the answer. Solutions are cached per state, so a verifier called
many times on one instance solves it once.
"""
from __future__ import annotations

from . import formats
from ._graphs import (Graph, GraphTask, adjacency_lines, cached, components, is_connected,
                      make_state, parse_vertex_list, random_connected, render_plain, says_no)
from .base import step

# ---- Hamiltonian search ------------------------------------------------------------------
MAX_HAM_NODES = 20   # the benchmark has at most 16; a `No` on a larger graph is not verified


class SearchBudget(Exception):
    """The search ran past its node budget (only possible on large foreign graphs)."""


def ham_search(g: Graph, start=None, cycle: bool = False, trace=None, budget: int = 200_000):
    """A Hamiltonian path starting at `start` (None: any start), or a Hamiltonian cycle
    (then it starts at 0 and returns to it). Depth-first, neighbours with the fewest
    onward choices first (Warnsdorff), with three exact prunings: the unvisited nodes must
    stay connected to the path's end; every unvisited node needs two usable neighbours
    (one, for the single node that can end a path); and a (visited set, end) pair that
    already failed is not searched again. Returns the vertex list or None.

    `trace`, a list, receives the search events: ('go', path), ('dead', path, reason),
    ('memo', path), ('found', path)."""
    n = g.n
    adj = g.mask
    full = (1 << n) - 1
    failed = set()
    count = [0]

    def reason_dead(path, visited):
        """None if the partial path may still extend, else why it cannot (a sentence)."""
        v = path[-1]
        rest = full & ~visited
        if rest == 0:
            if cycle and not (adj[v] >> path[0]) & 1:
                return f"all nodes are visited but {v} is not adjacent to {path[0]}, so the cycle cannot close"
            return None
        if adj[v] & rest == 0:
            return f"{v} has no unvisited neighbour"
        # connectivity of rest together with v
        seen, frontier = 1 << v, 1 << v
        while frontier:
            nxt = 0
            f = frontier
            while f:
                b = f & -f
                nxt |= adj[b.bit_length() - 1]
                f ^= b
            nxt &= (rest | (1 << v)) & ~seen
            seen |= nxt
            frontier = nxt
        if rest & ~seen:
            cut = [i for i in range(n) if (rest & ~seen) >> i & 1]
            return f"unvisited node(s) {cut} can no longer be reached from {v}"
        usable = rest | (1 << v) | ((1 << path[0]) if cycle else 0)
        ends = []
        r = rest
        while r:
            b = r & -r
            i = b.bit_length() - 1
            r ^= b
            c = (adj[i] & usable).bit_count()
            if c < 2:
                if cycle or c == 0:
                    return f"node {i} has fewer than two usable neighbours left"
                ends.append(i)
        if len(ends) > 1:
            return f"nodes {ends} each have only one usable neighbour left, and only one of them can end the path"
        return None

    def dfs(path, visited):
        count[0] += 1
        if count[0] > budget:
            raise SearchBudget()
        v = path[-1]
        why = reason_dead(path, visited)
        if why is not None:
            if trace is not None:
                trace.append(("dead", tuple(path), why))
            return None
        if visited == full:
            if trace is not None:
                trace.append(("found", tuple(path)))
            return list(path)
        key = (visited, v)
        if key in failed:
            if trace is not None:
                trace.append(("memo", tuple(path)))
            return None
        rest = full & ~visited
        cands = [w for w in g.nb[v] if (rest >> w) & 1]
        cands.sort(key=lambda w: ((adj[w] & rest & ~(1 << w)).bit_count(), w))
        for w in cands:
            path.append(w)
            if trace is not None:
                trace.append(("go", tuple(path)))
            got = dfs(path, visited | (1 << w))
            if got is not None:
                return got
            path.pop()
        if trace is not None and cands:
            trace.append(("dead", tuple(path), f"every continuation from {v} failed"))
        failed.add(key)
        return None

    if n == 0 or (cycle and n < 3):
        return None
    if n > MAX_HAM_NODES:
        raise SearchBudget(f"{n} nodes: too many to decide here")
    starts = [0] if cycle else ([start] if start is not None else list(range(n)))
    for s in starts:
        if not 0 <= s < n:
            return None
        if trace is not None:
            trace.append(("go", (s,)))
        got = dfs([s], 1 << s)
        if got is not None:
            return got
    return None


def ham_trace_steps(trace, limit: int = 110) -> list[dict]:
    """The search events as skeleton steps: each extension, each dead end with its reason
    (a 'backtrack'), the final full path; dead ends past `limit` steps are counted, not shown."""
    out, hidden = [], 0
    for ev in trace:
        path = " -> ".join(map(str, ev[1]))
        if ev[0] == "found":
            out.append(step("step", f"Path {path}: every node is visited."))
            continue
        if len(out) >= limit:
            hidden += ev[0] != "go"
            continue
        if ev[0] == "go":
            out.append(step("step", f"Start at {path}." if len(ev[1]) == 1 else f"Extend: {path}."))
        elif ev[0] == "dead":
            out.append(step("backtrack", f"Dead end at {path}: {ev[2]}. Undo the last move."))
        else:
            out.append(step("backtrack", f"Dead end at {path}: the same visited set ending at "
                                         f"{ev[1][-1]} already failed earlier. Undo."))
    if hidden:
        out.append(step("backtrack", f"... {hidden} further dead ends of the same search are not "
                                     f"written out; each was undone the same way."))
    return out


# ---- Eulerian trail ----------------------------------------------------------------------
def euler_status(g: Graph):
    """(odd-degree nodes, components that contain edges)."""
    odd = [u for u in range(g.n) if g.degree(u) % 2 == 1]
    comps = [c for c in components(g.n, g.nb) if any(g.nb[u] for u in c)]
    return odd, comps


def euler_walk(g: Graph, closed: bool, trace=None):
    """Hierholzer's algorithm: an Eulerian trail (closed: circuit) as a vertex list, or None
    when none exists. Walks always take the smallest unused neighbour.
    `trace` receives ('walk', [vertices]) for each sub-walk and ('splice', at) events."""
    odd, comps = euler_status(g)
    if len(comps) > 1:
        return None
    if closed and odd:
        return None
    if not closed and len(odd) not in (0, 2):
        return None
    if not comps:
        return [0] if g.n else None
    start = odd[0] if odd else comps[0][0]
    used = set()
    ptr = [0] * g.n
    stack, circuit = [start], []
    walk = [start]
    while stack:
        v = stack[-1]
        while ptr[v] < len(g.nb[v]) and (min(v, g.nb[v][ptr[v]]), max(v, g.nb[v][ptr[v]])) in used:
            ptr[v] += 1
        if ptr[v] < len(g.nb[v]):
            w = g.nb[v][ptr[v]]
            used.add((min(v, w), max(v, w)))
            if not walk:
                walk = [v]
                if trace is not None:
                    trace.append(("splice", v))
            walk.append(w)
            stack.append(w)
        else:
            if walk and len(walk) > 1 and trace is not None:
                trace.append(("walk", walk))
            walk = []
            circuit.append(stack.pop())
    circuit.reverse()
    return circuit


def check_euler(g: Graph, seq, closed: bool) -> bool:
    """seq uses every edge exactly once along a walk (closed: returns to its start)."""
    m = len(g.edges())
    if closed and len(seq) == m and m >= 3 and seq[0] != seq[-1]:
        seq = list(seq) + [seq[0]]      # the closing repeat is optional
    if len(seq) != m + 1:
        return False
    if closed and seq[0] != seq[-1]:
        return False
    used = set()
    for a, b in zip(seq, seq[1:]):
        if not g.has_edge(a, b):
            return False
        e = (min(a, b), max(a, b))
        if e in used:
            return False
        used.add(e)
    return len(used) == m


def set_odd_count(rng, n: int, edges: set, k: int, tries: int = 200) -> set | None:
    """Toggle edges between pairs of nodes until exactly k nodes have odd degree, keeping
    the graph connected and every node on some edge. None if that did not work out."""
    edges = set(edges)
    for _ in range(tries):
        deg = [0] * n
        for u, v in edges:
            deg[u] += 1
            deg[v] += 1
        odd = [i for i in range(n) if deg[i] % 2]
        if len(odd) == k:
            return edges
        pool = odd if len(odd) > k else [i for i in range(n) if deg[i] % 2 == 0]
        if len(pool) < 2:
            return None
        a, b = rng.sample(pool, 2)
        e = (min(a, b), max(a, b))
        trial = edges ^ {e}
        if all(d > 0 for d in _degrees(n, trial)) and is_connected(n, trial):
            edges = trial
    return None


def _degrees(n, edges):
    deg = [0] * n
    for u, v in edges:
        deg[u] += 1
        deg[v] += 1
    return deg


# ---- the task classes ---------------------------------------------------------------------
def bipartition(g: Graph):
    """The two sides of a connected bipartite graph, or None."""
    side = [-1] * g.n
    for s in range(g.n):
        if side[s] >= 0:
            continue
        side[s], stack = 0, [s]
        while stack:
            u = stack.pop()
            for v in g.nb[u]:
                if side[v] < 0:
                    side[v] = 1 - side[u]
                    stack.append(v)
                elif side[v] == side[u]:
                    return None
    return [i for i in range(g.n) if side[i] == 0], [i for i in range(g.n) if side[i] == 1]


class WalkTask(GraphTask):
    """A vertex-list-or-`No` graph task. Subclasses: levels, closed, _find, valid, generate."""
    answer_shape = formats.WALK
    closed = False
    levels: dict = {}
    what = ""            # "Hamiltonian path", ...

    def find(self, state):
        """The solver's walk for `state`, or None when none exists (cached per state)."""
        return cached(self.name, state, lambda: self._find(state))

    def _find(self, state, trace=None):
        raise NotImplementedError

    def valid(self, g: Graph, seq, state) -> bool:
        raise NotImplementedError

    def solve(self, state):
        return self.find(state)

    def format_answer(self, solution):
        return "No" if solution is None else str(list(solution))

    def check(self, answer, state):
        if says_no(answer):
            return self.find(state) is None
        g = Graph(state)
        seq = parse_vertex_list(answer, max_items=max(g.n, len(g.edges())) + 2)
        return seq is not None and self.valid(g, seq, state)

    def answer_format(self) -> str:
        raise NotImplementedError

    def render(self, state):
        art = "an" if self.what[0] in "AEIOU" else "a"
        return [render_plain(state, caption=f"Find {art} {self.what}, or answer No")]

    def text_graph(self, state) -> str:
        n = Graph(state).n
        return (f"The graph has nodes 0 to {n - 1}. Adjacency list (each line lists a node's "
                f"neighbours; every edge appears at both of its ends):\n{adjacency_lines(state)}")

    def image_graph(self, state) -> str:
        return ("The image shows the graph: numbered circles are nodes and each line is an "
                "undirected edge.")


class HamiltonianTask(WalkTask):
    """Random connected graphs (every degree >= 2 from 6 nodes on, so that counting leaves
    never settles the answer), kept or redrawn until the solver's verdict matches the
    class drawn for this seed: `No` with probability 1/3."""
    min_degree_from = 6

    def draw_graph(self, rng, n, m):
        need = 2 if n >= self.min_degree_from else 1
        for _ in range(100):
            edges = random_connected(rng, n, m, min_degree=need)
            deg = [0] * n
            for u, v in edges:
                deg[u] += 1
                deg[v] += 1
            if min(deg) >= need:
                return sorted(edges)
        return sorted(edges)

    def place(self, rng, state):
        return state

    def make(self, rng, level):
        n, (mlo, mhi) = self.levels[level]
        want_no = rng.random() < 1 / 3
        for attempt in range(600):
            m = rng.randint(mlo, mhi)
            state = self.place(rng, make_state(n, self.draw_graph(rng, n, m)))
            sol = self._find(state)
            if (sol is None) == want_no:
                break
        g = Graph(state)
        meta = {"nodes": n, "edges": len(g.edges()), "has_solution": sol is not None,
                "min_degree": min(g.degree(i) for i in range(n))}
        return state, sol, meta

    def no_reason(self, g: Graph, start) -> str:
        """A short structural reason for `No`, where a simple one exists ('' otherwise)."""
        bip = bipartition(g)
        if bip:
            a, b = bip
            if self.closed and len(a) != len(b):
                return (f"The graph is bipartite with sides of {len(a)} and {len(b)} nodes; a cycle "
                        f"alternates sides, so it cannot cover unequal sides.")
            if not self.closed:
                big, small = (a, b) if len(a) >= len(b) else (b, a)
                if len(big) > len(small) + 1:
                    return (f"The graph is bipartite with sides of {len(big)} and {len(small)} "
                            f"nodes; a path alternates sides, so the sides can differ by at most one.")
                if start is not None and len(big) == len(small) + 1 and start in small:
                    return (f"The graph is bipartite with sides of {len(big)} and {len(small)} nodes; "
                            f"a path covering both must start on the larger side, but {start} is on "
                            f"the smaller one.")
        return ""

    def skeleton(self, state):
        g = Graph(state)
        start = state.get("start") if not self.closed else None
        trace = []
        sol = ham_search(g, start=start, cycle=self.closed, trace=trace)
        edges = ", ".join(f"{u}-{v}" for u, v in g.edges())
        steps = [step("rule", self.rule_text()),
                 step("read", f"Nodes 0 to {g.n - 1}; edges: {edges}."
                      + (f" Start: {start}." if start is not None else "")),
                 step("step", "Degrees: " + ", ".join(f"{i}:{g.degree(i)}" for i in range(g.n))
                      + ". Search depth-first, trying the neighbour with the fewest unvisited "
                        "neighbours first, and abandon a partial path as soon as the unvisited "
                        "nodes can no longer all be reached or passed through.")]
        steps += ham_trace_steps(trace)
        if sol is None:
            why = self.no_reason(g, start)
            steps.append(step("check", f"Every branch of the search failed, so there is no "
                                       f"{self.what}{'' if start is None else f' starting at {start}'}."
                                       + (f" {why}" if why else "")))
            steps.append(step("answer", "No"))
            return steps
        pairs = list(zip(sol, sol[1:])) + ([(sol[-1], sol[0])] if self.closed else [])
        steps.append(step("check", f"{len(sol)} distinct nodes, all of them; consecutive pairs "
                                   + ", ".join(f"{a}-{b}" for a, b in pairs) + " are all edges"
                                   + (f", and it starts at {start}." if start is not None else ".")))
        steps.append(step("answer", self.format_answer(sol)))
        return steps


class EulerianTask(WalkTask):
    """Yes: connected, with 0 or 2 odd nodes (path) or 0 (cycle). No (probability 1/3), in
    varied genuine ways: too many odd nodes in a connected graph (4 or 6; for the cycle also
    exactly 2, where an open trail exists but no closed one), or the right parity split over
    two separate pieces, so that checking degrees alone answers wrongly."""
    no_kinds: tuple = ()

    def _find(self, state, trace=None):
        return euler_walk(Graph(state), self.closed, trace)

    def valid(self, g, seq, state):
        return check_euler(g, seq, self.closed)

    def build(self, rng, n, m, kind):
        if kind != "split":
            if kind == "parity":
                k = rng.choice([4, 6] if n >= 8 else [4])
            else:
                k = {"yes0": 0, "yes2": 2, "two_odd": 2}[kind]
            return set_odd_count(rng, n, random_connected(rng, n, m), k)
        n1 = rng.randint(3, n - 3)
        parts = [(n1, 0), (n - n1, 0)]
        if not self.closed and rng.random() < 0.5:   # an open trail's parity in one piece
            j = rng.randrange(2)
            parts[j] = (parts[j][0], 2)
        perm = list(range(n))
        rng.shuffle(perm)
        edges, off = set(), 0
        for size, k in parts:
            mi = max(size, round(m * size / n))
            sub = set_odd_count(rng, size, random_connected(rng, size, mi), k)
            if sub is None:
                return None
            for u, v in sub:
                a, b = perm[off + u], perm[off + v]
                edges.add((min(a, b), max(a, b)))
            off += size
        return edges

    def make(self, rng, level):
        n, (mlo, mhi) = self.levels[level]
        want_no = rng.random() < 1 / 3
        for _ in range(1000):       # build() fails only rarely (a parity fix that disconnects)
            if want_no:
                kind = rng.choice(self.no_kinds)
            else:
                kind = "yes0" if self.closed else rng.choice(["yes2", "yes2", "yes0"])
            edges = self.build(rng, n, rng.randint(mlo, mhi), kind)
            if edges is not None:
                break
        state = make_state(n, sorted(edges))
        sol = self._find(state)
        assert (sol is None) == want_no, (self.name, level, kind)
        g = Graph(state)
        odd, comps = euler_status(g)
        meta = {"nodes": n, "edges": len(g.edges()), "odd_nodes": len(odd),
                "pieces": len(comps), "has_solution": sol is not None, "kind": kind}
        return state, sol, meta

    def skeleton(self, state):
        g = Graph(state)
        odd, comps = euler_status(g)
        edges = g.edges()
        steps = [step("rule", self.rule_text()),
                 step("read", f"Nodes 0 to {g.n - 1}; {len(edges)} edges: "
                      + ", ".join(f"{u}-{v}" for u, v in edges) + "."),
                 step("step", "Degrees: " + ", ".join(f"{i}:{g.degree(i)}" for i in range(g.n))
                      + f". Odd-degree nodes: {odd if odd else 'none'}."),
                 step("step", "All edges lie in one connected piece." if len(comps) == 1 else
                      f"The edges fall into {len(comps)} separate pieces: "
                      + "; ".join(str(c) for c in comps) + ".")]
        trace = []
        sol = euler_walk(g, self.closed, trace)
        if sol is None:
            if len(comps) > 1:
                why = "no single walk can use edges from separate pieces"
            elif self.closed:
                why = f"a closed walk needs every degree even, but {len(odd)} nodes have odd degree"
            else:
                why = (f"an open walk can have odd degree only at its two ends, but {len(odd)} "
                       f"nodes have odd degree")
            steps.append(step("check", f"No {self.what} exists: {why}."))
            steps.append(step("answer", "No"))
            return steps
        begin = sol[0]
        steps.append(step("step", f"Start at {begin}" + (" (an odd-degree node: an open trail must "
                                                         "start at one of the two)." if odd else ".")
                          + " Hierholzer: walk along unused edges, smallest neighbour first, until "
                            "stuck; then back up to the last node with unused edges, walk a "
                            "detour from there and splice it into the trail."))
        shown = 0
        for ev in trace:
            if shown >= 100:
                break
            if ev[0] == "walk":
                steps.append(step("step", "Walk: " + " -> ".join(map(str, ev[1]))
                                  + f"; stuck at {ev[1][-1]} (no unused edge)."))
            else:
                steps.append(step("backtrack", f"Back up to {ev[1]}, which still has unused edges; "
                                               f"the next walk is a detour spliced in at {ev[1]}."))
            shown += 1
        steps.append(step("step", "The spliced trail: " + " -> ".join(map(str, sol)) + "."))
        steps.append(step("check", f"The trail has {len(sol) - 1} steps, each along an edge, and "
                                   f"uses each of the {len(edges)} edges exactly once"
                                   + (f"; it ends where it began ({sol[0]})." if self.closed else ".")))
        steps.append(step("answer", self.format_answer(sol)))
        return steps
