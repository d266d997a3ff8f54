"""Shared by the eight Graphs tasks: the adjacency state and its parsing (official spellings
included), random and grid-local graphs, answer-list parsing, a solver cache, and the
renderer (grid, circle or given positions; weight labels placed clear of other labels).
The Hamiltonian and Eulerian machinery is in `_graph_walks.py`.

The state of every graph task is the official `initial_state` shape: an adjacency dict with
string keys, neighbour lists sorted, e.g. `{'0': [1, 3], '1': [0], ...}`. Weighted graphs
(shortest path) and flow networks (max flow) write each neighbour as a pair
`[neighbour, weight]`, which is how the official release serialises its `(v, w)` tuples;
a plain neighbour (no pair) reads as weight 1, so the plain adjacency style still parses.
Directed graphs (topological sort, max flow) list out-neighbours only; undirected graphs
list each edge at both ends (a one-sided listing is read as the undirected edge).
The Hamiltonian-path task adds one key, `'start'`, to the same dict (see that module).
"""
from __future__ import annotations

import math
import re
from collections import deque

from . import draw
from .base import Task, parse_literal, yes_no

MAX_NODES = 60        # official graphs have at most 25 nodes; larger states are refused
MAX_WEIGHT = 10 ** 6  # weights / capacities beyond this are refused (bounded arithmetic)


# ---- state <-> adjacency ---------------------------------------------------------------
def make_state(n: int, edges, directed: bool = False, weights=None) -> dict:
    """Our state for a graph on nodes 0..n-1: {'0': [...], ...}, neighbour lists sorted."""
    nb = [[] for _ in range(n)]
    for k, (u, v) in enumerate(edges):
        if weights is None:
            nb[u].append(v)
            if not directed:
                nb[v].append(u)
        else:
            nb[u].append([v, weights[k]])
            if not directed:
                nb[v].append([u, weights[k]])
    for lst in nb:
        lst.sort(key=lambda x: x[0] if isinstance(x, list) else x)
    return {str(i): nb[i] for i in range(n)}


def _node_id(x) -> int:
    if isinstance(x, bool):
        raise ValueError("a boolean is not a node")
    if isinstance(x, int):
        v = x
    elif isinstance(x, str) and x.strip().isascii() and x.strip().isdigit() and len(x.strip()) <= 4:
        v = int(x.strip())
    elif isinstance(x, float) and x.is_integer():
        v = int(x)
    else:
        raise ValueError(f"not a node id: {x!r}")
    if not 0 <= v < MAX_NODES:
        raise ValueError(f"node id {v} out of range")
    return v


def _weight(x):
    if isinstance(x, bool):
        raise ValueError("a boolean is not a weight")
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, int):
        w = x
    elif isinstance(x, float) and math.isfinite(x):
        w = x
    else:
        raise ValueError(f"not a weight: {x!r}")
    if not 0 <= w <= MAX_WEIGHT:
        raise ValueError(f"weight {w} out of range")
    return w


def _entries(value):
    """(neighbour, weight-or-None) pairs from one adjacency entry in any official spelling."""
    if isinstance(value, dict):   # {neighbour: weight}
        return [(_node_id(k), _weight(w)) for k, w in value.items()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"neighbour list expected, got {type(value).__name__}")
    out = []
    for item in value:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise ValueError(f"neighbour pair expected, got {item!r}")
            out.append((_node_id(item[0]), _weight(item[1])))
        else:
            out.append((_node_id(item), None))
    return out


def normalise(obj, directed: bool = False, weighted: bool = False, extra_keys=()) -> tuple[dict, dict]:
    """An adjacency dict in any official spelling (int or str keys, tuples or lists, a
    one-sided undirected listing) -> (our normal-form state, the extra keys found).
    Raises ValueError when it is not a graph."""
    if not isinstance(obj, dict):
        raise ValueError(f"adjacency dict expected, got {type(obj).__name__}")
    extras, rows = {}, {}
    for k, v in obj.items():
        if isinstance(k, str) and k in extra_keys:
            extras[k] = v
            continue
        u = _node_id(k)
        if u in rows:
            raise ValueError(f"node {u} listed twice")
        rows[u] = _entries(v)
    ids = set(rows)
    for lst in rows.values():
        ids.update(v for v, _ in lst)
    if not ids:
        raise ValueError("empty graph")
    n = max(ids) + 1
    arcs = {}   # (u, v) -> weight (undirected: u < v)
    for u in sorted(rows):
        for v, w in rows[u]:
            if v == u:
                raise ValueError(f"self-loop at {u}")
            key = (u, v) if directed else (min(u, v), max(u, v))
            w = 1 if w is None else w
            if key in arcs and arcs[key] != w:
                raise ValueError(f"edge {key} given two weights")
            arcs[key] = w
    edges = sorted(arcs)
    weights = [arcs[e] for e in edges] if weighted else None
    return make_state(n, edges, directed=directed, weights=weights), extras


class Graph:
    """A parsed state: n, sorted neighbour lists `nb`, edge weights `w[(u, v)]`, bitmasks."""

    def __init__(self, state: dict, directed: bool = False):
        keys = [k for k in state if k.isdigit()]   # node keys; 'start' and the like are not
        self.n = len(keys)
        self.directed = directed
        self.nb = [[] for _ in range(self.n)]
        self.w = {}
        for i in range(self.n):
            for item in state[str(i)]:
                v, wt = (item[0], item[1]) if isinstance(item, list) else (item, 1)
                self.nb[i].append(v)
                self.w[(i, v)] = wt
        self.mask = [sum(1 << v for v in lst) for lst in self.nb]

    def edges(self) -> list[tuple[int, int]]:
        """Directed: every arc (u, v). Undirected: every edge once, as (u, v) with u < v."""
        if self.directed:
            return [(u, v) for u in range(self.n) for v in self.nb[u]]
        return [(u, v) for u in range(self.n) for v in self.nb[u] if u < v]

    def has_edge(self, u: int, v: int) -> bool:
        return 0 <= u < self.n and 0 <= v < self.n and (self.mask[u] >> v) & 1 == 1

    def degree(self, u: int) -> int:
        return len(self.nb[u])


def adjacency_lines(state: dict) -> str:
    """The state written out for text mode: one line per node, `3: [0, 5]` or, weighted,
    `3: [(0, 4), (5, 2)]` (neighbour, weight)."""
    out = []
    for k in sorted((k for k in state if k.isdigit()), key=int):
        items = state[k]
        if items and isinstance(items[0], list):
            body = ", ".join(f"({v}, {w})" for v, w in items)
        else:
            body = ", ".join(str(v) for v in items)
        out.append(f"{k}: [{body}]")
    return "\n".join(out)


# `3: [0, 5]` at the end of a line; the official text questions sometimes glue the first
# such line to the sentence before it ("...decimal).0: [(1, 5)]").
_LINE = re.compile(r"(?:^|[^\w\[(,])(\d{1,3})\s*:\s*(\[[^\n]{0,4000}\])\s*$")


def adjacency_from_lines(text: str):
    """An adjacency dict from lines like `3: [0, 5]` or `3: [(0, 4), (5, 2)]` (the official
    text-only questions write the graph this way); None when there are no such lines.
    A second block (a line `G2:`) starts a new graph: returns a list of dicts then."""
    if not isinstance(text, str) or len(text) > 200_000:
        return None
    graphs, cur = [], {}
    for line in text.splitlines():
        if re.match(r"^\s*(?:G|Graph\s*)\d\s*:?\s*$", line) and cur:
            graphs.append(cur)
            cur = {}
            continue
        m = _LINE.search(line)
        if m:
            cur[m.group(1)] = parse_literal(m.group(2))
    if cur:
        graphs.append(cur)
    if not graphs:
        return None
    return graphs if len(graphs) > 1 else graphs[0]


class GraphTask(Task):
    """Common plumbing of the Graphs group: state strings, official records, drawing."""
    group = "Graphs"
    directed = False
    weighted = False
    extra_keys: tuple = ()

    def state_to_str(self, state) -> str:
        # A Python literal with string keys, as in the official `initial_state`.
        return repr(state)

    def state_from_obj(self, obj):
        state, extras = normalise(obj, self.directed, self.weighted, self.extra_keys)
        return self.attach_extras(state, extras)

    def attach_extras(self, state, extras):
        return state

    def state_from_str(self, text):
        return self.state_from_obj(parse_literal(text))

    def state_from_record(self, record):
        try:
            return self.state_from_str(record["initial_state"])
        except (KeyError, ValueError, TypeError, AttributeError):
            # Official records without a usable initial_state still carry the graph in the
            # text-only question, one `node: [neighbours]` line per node.
            for key in ("question_text", "question_language", "question"):
                adj = adjacency_from_lines(record.get(key) or "")
                if isinstance(adj, dict):
                    return self.state_from_obj(adj)
            raise


_CACHE: dict = {}


def cached(task: str, state, fn):
    """fn() memoised per (task, state): a verifier called many times on one instance (a
    batch of model answers, the fuzz test) runs the solver once."""
    key = (task, repr(state))
    if key not in _CACHE:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = fn()
    return _CACHE[key]


# ---- answers -----------------------------------------------------------------------------
_TOKENS = re.compile(r"[0-9]+|[^0-9\s,;'\"]+")
_COMMA_DASH = re.compile(r",\s*-")
_ARROWS = {"-", "->", "→", "—>", "=>", "—", "–", "-->"}


def parse_vertex_list(text: str, max_items: int = 200) -> list[int] | None:
    """A vertex sequence in any common spelling: `[0, 2, 1]`, `0 -> 2 -> 1`, `0-2-1`,
    `0 2 1`, `(0, 2, 1)`. None when anything else is present (letters, negative numbers,
    a dangling arrow) or when it is longer than `max_items`. Linear time."""
    t = text.strip().rstrip(".").strip()
    if len(t) > 12 * max_items + 20:
        return None
    if t[:1] in "[(" and t[-1:] in "])":
        t = t[1:-1]
    if _COMMA_DASH.search(t):
        return None     # `0, -1`: a negative number, not an arrow
    out, expect_num = [], True
    for tok in _TOKENS.findall(t):
        if tok[0] in "0123456789":
            if len(tok) > 6:
                return None
            out.append(int(tok))
            expect_num = False
            if len(out) > max_items:
                return None
        elif tok in _ARROWS and not expect_num:
            expect_num = True   # an arrow must sit between two numbers
        else:
            return None
    if expect_num and out:
        return None    # a trailing arrow
    return out or None


def says_no(text: str) -> bool:
    return yes_no(text) is False


def is_walk(g: Graph, seq) -> bool:
    return all(g.has_edge(a, b) for a, b in zip(seq, seq[1:]))


# ---- connectivity and random graphs -------------------------------------------------------
def components(n: int, nb) -> list[list[int]]:
    seen, comps = [False] * n, []
    for s in range(n):
        if seen[s]:
            continue
        seen[s], comp, q = True, [s], deque([s])
        while q:
            u = q.popleft()
            for v in nb[u]:
                if not seen[v]:
                    seen[v] = True
                    comp.append(v)
                    q.append(v)
        comps.append(sorted(comp))
    return comps


def neighbours(n: int, edges) -> list[list[int]]:
    nb = [[] for _ in range(n)]
    for u, v in edges:
        nb[u].append(v)
        nb[v].append(u)
    for lst in nb:
        lst.sort()
    return nb


def is_connected(n: int, edges) -> bool:
    return len(components(n, neighbours(n, edges))) == 1


def random_tree(rng, n: int) -> set:
    """A uniformly random labelled tree (random Pruefer sequence)."""
    if n == 1:
        return set()
    if n == 2:
        return {(0, 1)}
    seq = [rng.randrange(n) for _ in range(n - 2)]
    deg = [1] * n
    for x in seq:
        deg[x] += 1
    edges = set()
    for x in seq:
        leaf = min(i for i in range(n) if deg[i] == 1)
        edges.add((min(leaf, x), max(leaf, x)))
        deg[leaf] -= 1
        deg[x] -= 1
    u, v = [i for i in range(n) if deg[i] == 1]
    edges.add((u, v))
    return edges


def random_connected(rng, n: int, m: int, min_degree: int = 1) -> set:
    """A random connected simple graph on n nodes with m edges (m clipped to what fits) and,
    where it can, every degree >= min_degree: a random tree, edges between low-degree
    nodes first, then uniformly random extra edges."""
    m = max(n - 1, min(m, n * (n - 1) // 2))
    edges = random_tree(rng, n)
    deg = [0] * n
    for u, v in edges:
        deg[u] += 1
        deg[v] += 1
    for _ in range(4 * n):
        low = [i for i in range(n) if deg[i] < min_degree]
        if not low or len(edges) >= m:
            break
        u = rng.choice(low)
        cands = [v for v in range(n) if v != u and (min(u, v), max(u, v)) not in edges]
        if not cands:
            break
        lowc = [v for v in cands if deg[v] < min_degree]
        v = rng.choice(lowc or cands)
        edges.add((min(u, v), max(u, v)))
        deg[u] += 1
        deg[v] += 1
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n) if (u, v) not in edges]
    rng.shuffle(pairs)
    for e in pairs[: max(0, m - len(edges))]:
        edges.add(e)
    return edges


def relabel(rng, n: int, edges):
    """The same graph with its nodes renamed by a random permutation."""
    perm = list(range(n))
    rng.shuffle(perm)
    return sorted((min(perm[u], perm[v]), max(perm[u], perm[v])) for u, v in edges), perm


# ---- grid-local graphs (drawn on a grid: no edge crosses another or passes a node) --------
def grid_cols(n: int) -> int:
    return math.ceil(math.sqrt(n))


def grid_candidates(rng, n: int) -> list[tuple[int, int]]:
    """Edges between grid neighbours (node i at row i // cols, column i % cols):
    horizontal, vertical and one diagonal per cell, chosen at random, so nothing crosses."""
    cols = grid_cols(n)
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        if c + 1 < cols and i + 1 < n:
            out.append((i, i + 1))
        if i + cols < n:
            out.append((i, i + cols))
        if c + 1 < cols and i + cols + 1 < n:   # the cell with top-left corner i
            if rng.random() < 0.5:
                out.append((i, i + cols + 1))
            else:
                out.append((i + 1, i + cols))
    return out


def is_grid_local(n: int, edges) -> bool:
    """True when every edge joins grid neighbours and no cell holds both diagonals."""
    cols = grid_cols(n)
    diag = set()
    for u, v in edges:
        u, v = min(u, v), max(u, v)
        (r1, c1), (r2, c2) = divmod(u, cols), divmod(v, cols)
        if max(abs(r1 - r2), abs(c1 - c2)) != 1:
            return False
        if r1 != r2 and c1 != c2:
            cell = (min(r1, r2), min(c1, c2))
            if cell in diag:
                return False
            diag.add(cell)
    return True


def grid_positions(n: int, cell: int, margin: int, top: int = 0):
    cols = grid_cols(n)
    return [(margin + (i % cols) * cell, top + margin + (i // cols) * cell) for i in range(n)]


def spanning_subgraph(rng, n: int, cands, extra_p: float) -> list[tuple[int, int]]:
    """A random spanning tree of the candidate edges (random Kruskal) plus each other
    candidate with probability extra_p."""
    order = list(cands)
    rng.shuffle(order)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    tree, rest = [], []
    for u, v in order:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            tree.append((u, v))
        else:
            rest.append((u, v))
    extra = [e for e in rest if rng.random() < extra_p]
    return sorted(tree + extra)


# ---- drawing -------------------------------------------------------------------------------
EDGE_COLOURS = [(31, 97, 160), (190, 30, 45), (30, 130, 50), (120, 60, 160), (150, 80, 20),
                (0, 120, 130), (200, 60, 140), (90, 90, 90)]


def _overlap(a, b, pad=2):
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1])


def _hits(box, p, q) -> bool:
    """Does the segment p-q pass through the rectangle box (x0, y0, x1, y1)?"""
    x0, y0, x1, y1 = box
    (px, py), (qx, qy) = p, q
    t0, t1 = 0.0, 1.0
    dx, dy = qx - px, qy - py
    for pp, qq in ((-dx, px - x0), (dx, x1 - px), (-dy, py - y0), (dy, y1 - py)):
        if pp == 0:
            if qq < 0:
                return False
            continue
        r = qq / pp
        if pp < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return False
    return True


def render_graph(n, edges, pos, width, height, weights=None, directed=False, marked=(),
                 caption="", node_r=19, colour_by=None, label_size=17):
    """Nodes at `pos`, straight edges (arrowheads when directed), `marked` nodes in red, and
    weight labels placed along each edge where they overlap no other label or node and,
    where possible, cover no other edge. Weighted edges are coloured (label and line share
    the colour); colour_by='source' colours them by their first node, which helps to match
    labels to arcs where many arcs leave one node."""
    img, d = draw.canvas(width, height)
    if caption:
        draw.title(d, width, caption, size=18, y=18)
    marked = set(marked or ())
    colours = []
    for k, (u, v) in enumerate(edges):
        colours.append(EDGE_COLOURS[(u if colour_by == "source" else k) % len(EDGE_COLOURS)]
                       if weights is not None else (70, 70, 70))
    for k, (u, v) in enumerate(edges):
        (x1, y1), (x2, y2) = pos[u], pos[v]
        d.line([(x1, y1), (x2, y2)], fill=colours[k], width=3)
        if directed:
            ang = math.atan2(y2 - y1, x2 - x1)
            tx, ty = x2 - (node_r + 1) * math.cos(ang), y2 - (node_r + 1) * math.sin(ang)
            a = 13
            d.polygon([(tx, ty),
                       (tx - a * math.cos(ang - 0.38), ty - a * math.sin(ang - 0.38)),
                       (tx - a * math.cos(ang + 0.38), ty - a * math.sin(ang + 0.38))],
                      fill=colours[k] if weights is not None else draw.BLACK)
    if weights is not None:
        boxes = [(x - node_r - 2, y - node_r - 2, x + node_r + 2, y + node_r + 2) for x, y in pos]
        segs = [(pos[u], pos[v]) for u, v in edges]
        for k, ((u, v), wgt) in enumerate(zip(edges, weights)):
            (x1, y1), (x2, y2) = pos[u], pos[v]
            tw, th = draw.text_size(d, str(wgt), label_size)
            best = None   # (lines the box covers, order, x, y, box) among boxes touching no other box
            for order, t in enumerate((0.5, 0.4, 0.6, 0.32, 0.68, 0.25, 0.75)):
                mx, my = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
                box = (mx - tw / 2 - 4, my - th / 2 - 4, mx + tw / 2 + 4, my + th / 2 + 4)
                if any(_overlap(box, b) for b in boxes):
                    continue
                covers = sum(1 for j, (p, q) in enumerate(segs) if j != k and _hits(box, p, q))
                if best is None or (covers, order) < best[:2]:
                    best = (covers, order, mx, my, box)
                if covers == 0:
                    break
            if best is None:
                mx, my = x1 + 0.5 * (x2 - x1), y1 + 0.5 * (y2 - y1)
                best = (0, 0, mx, my, (mx - tw / 2 - 4, my - th / 2 - 4, mx + tw / 2 + 4, my + th / 2 + 4))
            _, _, mx, my, box = best
            boxes.append(box)
            d.rectangle(box, fill=draw.WHITE, outline=colours[k], width=2)
            draw.center_text(d, (mx, my), wgt, size=label_size, fill=colours[k])
    for i, (x, y) in enumerate(pos):
        d.ellipse([x - node_r, y - node_r, x + node_r, y + node_r],
                  fill=(255, 220, 220) if i in marked else (230, 240, 255),
                  outline=draw.RED if i in marked else draw.BLACK, width=3 if i in marked else 2)
        draw.center_text(d, (x, y), i, size=17)
    return img


def circle_positions(n: int, top: int = 0):
    """(canvas side, node positions) for n nodes on a circle, sized so that no edge passes
    within 9 px of a node it does not end at (checked for up to 16 nodes)."""
    size = 560 if n <= 10 else 700 if n <= 14 else 900
    return size, draw.circle_layout(n, size / 2 - 50, size / 2, size / 2 + top)


def render_plain(state, marked=(), caption="", directed=False, grid=False):
    """An unweighted graph: with grid=True on a grid when its edges are grid-local (nothing
    crosses), else on a circle."""
    g = Graph(state, directed)
    edges = g.edges()
    top = 34 if caption else 0
    if grid and g.n >= 4 and is_grid_local(g.n, edges):
        cell = 150 if g.n <= 16 else 135
        cols = grid_cols(g.n)
        rows = math.ceil(g.n / cols)
        pos = grid_positions(g.n, cell, 70, top)
        return render_graph(g.n, edges, pos, 140 + (cols - 1) * cell, top + 140 + (rows - 1) * cell,
                            directed=directed, marked=marked, caption=caption)
    size, pos = circle_positions(g.n, top)
    return render_graph(g.n, edges, pos, size, size + top, directed=directed, marked=marked,
                        caption=caption)
