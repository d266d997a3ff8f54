"""Shared by the grid puzzles of the Puzzles group (nonogram, hitori, tapa, aquarium,
campsite, kakuro): a small propagate-and-branch search that records its own trace, lenient
but bounded answer parsers for coordinate lists, grid helpers and a board renderer.

The search (`Search`) is the same for every puzzle: a state is a flat list of cell values
(None = unknown); the puzzle supplies `propagate(state, log)`, which applies its forced
deductions in place and returns False on a contradiction, and `choose(state)`, which names
the cell to branch on and the values to try. Solutions are counted up to `limit` (2 proves
uniqueness). While a trace is attached, the deductions, guesses and dead ends of the search
up to the first solution are recorded; events on the branch that finally works are marked
so that a long trace can be shortened honestly (`capped_steps`).
"""
from __future__ import annotations

import re

from . import draw
from .base import step

# ---- search --------------------------------------------------------------------------------


class Trace:
    """Events (kind, text, depth) of a search, in the order the search made them."""

    def __init__(self):
        self.events: list[list] = []   # [kind, text, depth, on_path]
        self.active = True

    def add(self, kind: str, text: str, depth: int):
        if self.active:
            self.events.append([kind, text, depth, False])

    def mark_path(self):
        """Mark the events of the branch that leads to the first solution. A guess at depth
        k replaces everything the search did at depth >= k before it (that subtree failed),
        so a forward pass with a stack leaves exactly the successful branch."""
        path: list[list] = []
        for ev in self.events:
            depth = ev[2]
            if ev[0] == "guess":
                while path and path[-1][2] >= depth:
                    path.pop()
            else:
                while path and path[-1][2] > depth:
                    path.pop()
            path.append(ev)
        for ev in path:
            if ev[0] != "backtrack":
                ev[3] = True
        return self


class Search:
    """Depth-first search with propagation, counting solutions up to `limit`.

    propagate(state, log) -> bool   apply forced deductions in place; False = contradiction.
                                    `log(text)` (None when not tracing) records a deduction;
                                    the reason of a contradiction is its last logged text.
    choose(state) -> (index, values) | None   None when every cell is decided.
    describe(index, value) -> str   the words for a guess.
    show(state) -> str              a partial grid (anchor) after a round of deductions.
    """

    def __init__(self, propagate, choose, describe=None, show=None, limit=2,
                 node_cap=200_000, trace: Trace | None = None):
        self.propagate, self.choose = propagate, choose
        self.describe, self.show = describe, show
        self.limit, self.node_cap, self.trace = limit, node_cap, trace
        self.solutions: list = []
        self.nodes = 0
        self.exhausted = True    # False when node_cap stopped the search early

    def run(self, state):
        self._dfs(list(state), 0)
        if self.trace is not None:
            self.trace.mark_path()
        return self.solutions

    def _dfs(self, state, depth):
        self.nodes += 1
        if self.nodes > self.node_cap:
            self.exhausted = False
            return
        tr = self.trace if (self.trace is not None and self.trace.active) else None
        if tr is not None:
            lines: list[str] = []

            def log(text):
                if self.show is not None:
                    text = f"{text}.\n{self.show(state)}"
                lines.append(text)
            ok = self.propagate(state, log)
            if not ok:
                why = lines.pop().split(".\n")[0] if lines else "a rule is broken"
                for ln in lines:
                    tr.add("step", ln, depth)
                tr.add("backtrack", f"Contradiction: {why}. This branch is dead; undo the "
                                    f"last guess.", depth)
                return
            for ln in lines:
                tr.add("step", ln, depth)
        elif not self.propagate(state, None):
            return
        pick = self.choose(state)
        if pick is None:
            self.solutions.append(list(state))
            if tr is not None:
                tr.add("step", "Every cell is decided and no rule is broken: a solution.", depth)
                tr.active = False
            return
        idx, values = pick
        for k, v in enumerate(values):
            tr = self.trace if (self.trace is not None and self.trace.active) else None
            if tr is not None:
                what = self.describe(idx, v) if self.describe else f"cell {idx} = {v}"
                if k == 0:
                    tr.add("guess", f"No more forced cells. Guess: {what}.", depth + 1)
                else:
                    tr.add("guess", f"Try the other option: {what}.", depth + 1)
            s2 = list(state)
            s2[idx] = v
            self._dfs(s2, depth + 1)
            if len(self.solutions) >= self.limit or self.nodes > self.node_cap:
                return
        tr = self.trace if (self.trace is not None and self.trace.active) else None
        if tr is not None and depth > 0:
            opts = " / ".join(self.describe(idx, v) if self.describe else f"cell {idx} = {v}"
                              for v in values)
            tr.add("backtrack", f"No option works here ({opts} all fail), so the guess that "
                                f"led here is wrong; go back one level.", depth)


def capped_steps(trace: Trace, limit: int = 120, head: int = 70) -> list[dict]:
    """The trace as skeleton steps, at most about `limit` of them. Guesses are 'step'
    anchors, dead ends 'backtrack'. When too long: the first `head` events, an honest count
    of what was left out, then the events of the successful branch that fell in the gap."""
    ev = trace.events

    def conv(e):
        return step("backtrack" if e[0] == "backtrack" else "step", e[1])
    if len(ev) <= limit:
        return [conv(e) for e in ev]
    out = [conv(e) for e in ev[:head]]
    rest = ev[head:]
    kept = [e for e in rest if e[3]]
    dropped = [e for e in rest if not e[3]]
    n_guess = sum(1 for e in dropped if e[0] == "guess")
    n_dead = sum(1 for e in dropped if e[0] == "backtrack")
    out.append(step("backtrack", f"... the search went on: {n_guess} further guesses and "
                                 f"{n_dead} further dead ends are omitted here; below, the "
                                 f"steps of the branch that finally works."))
    if len(kept) > limit - head:   # very deep successful branch: keep its end
        skip = len(kept) - (limit - head)
        out.append(step("step", f"... {skip} steps of that branch omitted ..."))
        kept = kept[skip:]
    out.extend(conv(e) for e in kept)
    return out


# ---- grid helpers -----------------------------------------------------------------------------

def orth(r: int, c: int, n: int, m: int):
    return [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= r + dr < n and 0 <= c + dc < m]


def king(r: int, c: int, n: int, m: int):
    return [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
            if (dr or dc) and 0 <= r + dr < n and 0 <= c + dc < m]


def connected(cells) -> bool:
    """Are the (r, c) cells orthogonally connected (an empty set counts as connected)?"""
    cells = set(cells)
    if not cells:
        return True
    start = min(cells)
    seen, todo = {start}, [start]
    while todo:
        r, c = todo.pop()
        for nb in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if nb in cells and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return len(seen) == len(cells)


def components(nodes, adj):
    """Connected components of `nodes` (iterable of ints) under adj[i] (lists of ints)."""
    nodes = set(nodes)
    comp = {}
    out = []
    for s in sorted(nodes):
        if s in comp:
            continue
        k = len(out)
        comp[s] = k
        members, todo = [s], [s]
        while todo:
            u = todo.pop()
            for v in adj[u]:
                if v in nodes and v not in comp:
                    comp[v] = k
                    members.append(v)
                    todo.append(v)
        out.append(members)
    return out


def cut_cells(nodes, adj, keys):
    """Nodes whose removal would split the `keys` nodes of the graph induced on `nodes`
    (iterative Tarjan). Assumes the keys are already in one component."""
    nodes = set(nodes)
    keys = set(keys) & nodes
    if len(keys) < 2:
        return set()
    root = min(keys)
    disc, low, nkeys = {root: 0}, {root: 0}, {root: 1 if root in keys else 0}
    parent = {root: None}
    total = len(keys)
    out = set()
    counter = 1
    stack = [(root, iter(adj[root]))]
    root_children = []
    while stack:
        u, it = stack[-1]
        advanced = False
        for v in it:
            if v not in nodes:
                continue
            if v not in disc:
                disc[v] = low[v] = counter
                counter += 1
                nkeys[v] = 1 if v in keys else 0
                parent[v] = u
                stack.append((v, iter(adj[v])))
                advanced = True
                break
            if v != parent[u]:
                low[u] = min(low[u], disc[v])
        if advanced:
            continue
        stack.pop()
        p = parent[u]
        if p is not None:
            low[p] = min(low[p], low[u])
            nkeys[p] += nkeys[u]
            if p == root:
                root_children.append(u)
            elif low[u] >= disc[p] and nkeys[u] > 0:
                # u's subtree hangs on p: does the rest (minus p) hold keys too?
                if total - nkeys[u] - (1 if p in keys else 0) > 0:
                    out.add(p)
    keyed = [ch for ch in root_children if nkeys[ch] > 0]
    if len(keyed) >= 2:
        out.add(root)
    return out


def grid_text(rows) -> str:
    """Rows of one-character cells as lines, cells separated by spaces."""
    return "\n".join(" ".join(str(x) for x in row) for row in rows)


# ---- answer parsing ---------------------------------------------------------------------------

_PAIR = re.compile(r"[\(\[]\s*([+-]?\d{1,4})\s*,\s*([+-]?\d{1,4})\s*[\)\]]")
_RESIDUE_OK = re.compile(r"^[\s,;\[\]\{\}\(\)]*$")


def parse_pairs(text: str, max_pairs: int = 200):
    """Integer pairs written as (a, b) or [a, b], in any list/set/tuple spelling:
    '{(0, 1), (2, 3)}', '[(0,1),(2,3)]', '(0,1), (2,3)', '[[1, 3], [3, 1]]', 'set()'.
    Returns the list of pairs, or None when anything else is present (strict residue)."""
    if not isinstance(text, str) or len(text) > 12 * max_pairs + 200:
        return None
    t = text.strip()
    if re.sub(r"\s", "", t) in ("set()", "{}", "[]", "()"):
        return []
    pairs = [(int(a), int(b)) for a, b in _PAIR.findall(t)]
    if len(pairs) > max_pairs:
        return None
    residue = _PAIR.sub(" ", t)
    if not _RESIDUE_OK.match(residue):
        return None
    return pairs or None


# ---- rendering --------------------------------------------------------------------------------

def board(rows: int, cols: int, cell: int = 48, texts=None, fills=None, text_colors=None,
          top=None, left=None, right=None, bottom=None, index_base=None, caption: str = "",
          walls=None, font_size=None, clue_size=None, clue_room=None, extra=None):
    """A square-cell board: `texts[(r, c)]`, `fills[(r, c)]` (RGB), optional clue strings on
    each side (lists, one per column/row), optional row/column index labels starting at
    `index_base` (0 or 1; labels sit outside the clues), thick `walls` given as a set of
    ((r, c), (r2, c2)) cell pairs to separate (region borders). `extra(d, ox, oy)` draws
    anything else once the cells are painted (ox, oy: the top-left corner of cell (0, 0))."""
    texts, fills, text_colors = texts or {}, fills or {}, text_colors or {}
    fs = font_size or max(16, int(cell * 0.46))
    cs = clue_size or max(15, int(cell * 0.38))
    lab = 26 if index_base is not None else 0
    room = clue_room or {}
    tw = room.get("top", cell if top is not None else 0)
    lw = room.get("left", cell if left is not None else 0)
    rw = room.get("right", cell if right is not None else 0)
    bw = room.get("bottom", cell if bottom is not None else 0)
    cap = 36 if caption else 0
    pad = 14
    ox = pad + lab + lw
    oy = pad + cap + lab + tw
    w = ox + cols * cell + rw + pad
    h = oy + rows * cell + bw + pad
    w, h = max(w, 120), max(h, 120)
    img, d = draw.canvas(w, h)
    if caption:
        draw.title(d, w, caption, size=18, y=20)
    for r in range(rows):
        for c in range(cols):
            x, y = ox + c * cell, oy + r * cell
            d.rectangle([x, y, x + cell, y + cell], fill=fills.get((r, c), draw.WHITE))
            t = texts.get((r, c))
            if t not in (None, ""):
                draw.center_text(d, (x + cell / 2, y + cell / 2), t, size=fs,
                                 fill=text_colors.get((r, c), draw.BLACK))
    if extra is not None:
        extra(d, ox, oy)
    for k in range(rows + 1):
        d.line([(ox, oy + k * cell), (ox + cols * cell, oy + k * cell)], fill=draw.GREY, width=1)
    for k in range(cols + 1):
        d.line([(ox + k * cell, oy), (ox + k * cell, oy + rows * cell)], fill=draw.GREY, width=1)
    for (a, b) in sorted(walls or ()):
        (r1, c1), (r2, c2) = a, b
        if r1 == r2:   # vertical wall between horizontally adjacent cells
            x = ox + max(c1, c2) * cell
            d.line([(x, oy + r1 * cell), (x, oy + (r1 + 1) * cell)], fill=draw.BLACK, width=4)
        else:
            y = oy + max(r1, r2) * cell
            d.line([(ox + c1 * cell, y), (ox + (c1 + 1) * cell, y)], fill=draw.BLACK, width=4)
    d.rectangle([ox, oy, ox + cols * cell, oy + rows * cell], outline=draw.BLACK, width=3)
    for clues, where in ((top, "top"), (bottom, "bottom"), (left, "left"), (right, "right")):
        if clues is None:
            continue
        for i, v in enumerate(clues):
            if v in (None, ""):
                continue
            if where == "top":
                p = (ox + i * cell + cell / 2, oy - tw / 2)
            elif where == "bottom":
                p = (ox + i * cell + cell / 2, oy + rows * cell + bw / 2)
            elif where == "left":
                p = (ox - lw / 2, oy + i * cell + cell / 2)
            else:
                p = (ox + cols * cell + rw / 2, oy + i * cell + cell / 2)
            if "\n" in str(v):
                d.multiline_text(p, str(v), font=draw.font(cs), fill=draw.BLUE, anchor="mm",
                                 align="center", spacing=4)
            else:
                draw.center_text(d, p, v, size=cs, fill=draw.BLUE)
    if index_base is not None:
        for c in range(cols):
            draw.center_text(d, (ox + c * cell + cell / 2, pad + cap + lab / 2), c + index_base,
                             size=14, fill=draw.GREY)
        for r in range(rows):
            draw.center_text(d, (pad + lab / 2, oy + r * cell + cell / 2), r + index_base,
                             size=14, fill=draw.GREY)
    return img
