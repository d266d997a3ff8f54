"""A small constraint solver for grid puzzles, shared by the Latin-square tasks (Calcudoku,
Skyscrapers, Futoshiki, Sudoku, Eulero) and the 0/1 grids (Kukurasu, Binairo); plus the
answer parser and the trace -> skeleton conversion they all use.

The solver (`GridCSP`) keeps one bitmask of candidate values per cell (bit v-1 = value v) and
alternates three kinds of propagation until nothing changes:
  * unit elimination: a cell that is down to one value removes it from its peers;
  * hidden singles: in a unit (a row, column, box... holding every value exactly once) a value
    that fits only one cell goes there;
  * constraints (cages, visibility clues, inequalities, row patterns...): each one narrows
    the candidates of its cells (`Constraint.prune`).
Then it branches on the cell with the fewest candidates (MRV) and recurses. With `trace=True`
it records what it really did: each cell fixed and the rule that fixed it, each guess, each
contradiction and each undone guess. `trace_steps` turns that record into skeleton steps.
"""
from __future__ import annotations

import operator
import re

from . import formats
from .base import Task, parse_literal, step
from .formats import grid_text

MAX_GRID_ANSWER = 6000  # characters; a grid answer of at most 81 cells is far shorter


class Contradiction(Exception):
    """Raised by propagation when the current candidates admit no solution."""

    def __init__(self, why):
        super().__init__(why)
        self.why = why


class Budget(Exception):
    """The search visited more nodes than allowed (generators treat this as 'give up')."""


def bits(mask: int) -> list[int]:
    """The values (1-based) whose bits are set in `mask`, ascending."""
    out, v = [], 1
    while mask:
        if mask & 1:
            out.append(v)
        mask >>= 1
        v += 1
    return out


class Constraint:
    """A constraint over some cells. `prune` narrows candidates through `csp.narrow` and
    returns its new private state (kept per search branch); raise Contradiction when dead."""
    cells: tuple = ()

    def prune(self, csp: "GridCSP", dom: list, state, k: int):
        raise NotImplementedError

    def describe(self, csp: "GridCSP") -> str:
        raise NotImplementedError


class TupleConstraint(Constraint):
    """The cells must take one of a list of value tuples (a cage's combinations, the
    arrangements of a line that fit its clues, the valid rows of a binary grid)."""

    def __init__(self, cells, tuples, text: str, masks=None):
        self.cells = tuple(cells)
        self.masks = masks if masks is not None else [tuple(1 << (v - 1) for v in t) for t in tuples]
        self.text = text

    def prune(self, csp, dom, state, k):
        cur = self.masks if state is None else state
        ds = [dom[i] for i in self.cells]
        if len(ds) == 2:
            d0, d1 = ds
            keep = [t for t in cur if d0 & t[0] and d1 & t[1]]
        elif len(ds) == 3:
            d0, d1, d2 = ds
            keep = [t for t in cur if d0 & t[0] and d1 & t[1] and d2 & t[2]]
        else:
            keep = [t for t in cur if all(d & b for d, b in zip(ds, t))]
        if not keep:
            raise Contradiction(("dead", k))
        sup = [0] * len(ds)
        for t in keep:
            for j, b in enumerate(t):
                sup[j] |= b
        for j, i in enumerate(self.cells):
            if ds[j] & ~sup[j]:
                csp.narrow(dom, i, sup[j], ("con", k, len(keep)))
        return keep if len(keep) != len(cur) else state

    def describe(self, csp):
        return self.text


class LessThan(Constraint):
    """value(a) < value(b)."""

    def __init__(self, a: int, b: int, text: str):
        self.cells = (a, b)
        self.a, self.b = a, b
        self.text = text

    def prune(self, csp, dom, state, k):
        a, b = self.a, self.b
        top_b = dom[b].bit_length()                  # the largest value b can still take
        csp.narrow(dom, a, (1 << (top_b - 1)) - 1, ("con", k))
        low_a = (dom[a] & -dom[a]).bit_length()      # the smallest value a can still take
        csp.narrow(dom, b, ~((1 << low_a) - 1), ("con", k))
        return state

    def describe(self, csp):
        return self.text


class GridCSP:
    """Cells 0..rows*cols-1 (row-major), values 1..nvals, optional all-different `units`
    (each of size nvals: every value exactly once), optional `constraints`.

    givens: {cell: value}; exclude: {cell: value} removes one candidate (a generator asking
    "is there a solution where this cell differs?"). val_text: how a value is written.
    """

    def __init__(self, rows, cols, nvals, units=(), unit_names=(), constraints=(),
                 givens=None, exclude=None, trace=False, val_text=str, max_nodes=200_000):
        self.rows, self.cols, self.nvals = rows, cols, nvals
        self.N = rows * cols
        self.full = (1 << nvals) - 1
        self.units = tuple(tuple(u) for u in units)
        self.unit_names = list(unit_names) or [f"unit {k + 1}" for k in range(len(self.units))]
        self.peers, self.cunits = _structure(self.N, self.units)
        self._getters = [operator.itemgetter(*u) for u in self.units]
        self._dirty: set[int] = set()
        self.constraints = list(constraints)
        self.watch = [[] for _ in range(self.N)]
        for k, c in enumerate(self.constraints):
            for i in c.cells:
                self.watch[i].append(k)
        self.val_text = val_text
        self.trace = [] if trace else None
        self.depth = 0
        self.nodes = 0
        self.max_nodes = max_nodes
        self._queue: list[int] = []
        self._pending: set[int] = set()
        self.givens = dict(givens or {})
        self.exclude = dict(exclude or {})

    # ---- names -----------------------------------------------------------------------
    def cname(self, i: int) -> str:
        return f"r{i // self.cols + 1}c{i % self.cols + 1}"

    def reason_text(self, why, i=None) -> str:
        kind = why[0]
        if kind == "given":
            return "given"
        if kind == "elim":
            src = why[1]
            rel = [self.unit_names[k] for k in self.cunits[src] if k in self.cunits[i]] if i is not None else []
            where = f" in {rel[0]}" if rel else ""
            return f"the only candidate left once {self.cname(src)} = {self.val_text(why[2])}{where}"
        if kind == "units":
            names = " and ".join(self.unit_names[k] for k in self.cunits[i]) if i is not None else "its units"
            return f"every other value is already given in {names}"
        if kind == "hidden":
            return f"the only cell of {self.unit_names[why[1]]} that can still hold it"
        if kind == "con":
            what = self.constraints[why[1]].describe(self)
            if len(why) > 2:   # a pattern constraint: how many of its patterns are still possible
                if why[2] == 1:
                    return f"only one way to satisfy {what} is left"
                return f"all {why[2]} ways left to satisfy {what} agree on it"
            return f"forced by {what}"
        if kind == "guess":
            return "guess"
        return str(why)

    def dead_text(self, why) -> str:
        kind = why[0]
        if kind == "empty":
            return f"{self.cname(why[1])} has no candidate left"
        if kind == "missing":
            vals = ", ".join(self.val_text(v) for v in bits(why[2]))
            return f"no cell of {self.unit_names[why[1]]} can hold {vals}"
        if kind == "clash":
            return f"{self.cname(why[2])} would need two different values that {self.unit_names[why[1]]} can place nowhere else"
        if kind == "dup":
            return f"{self.unit_names[why[1]]} would hold {self.val_text(why[2])} twice"
        if kind == "dead":
            return f"{self.constraints[why[1]].describe(self)} can no longer be satisfied"
        if kind == "exhausted":
            return f"every candidate of {self.cname(why[1])} failed"
        return str(why)

    # ---- propagation -----------------------------------------------------------------
    def narrow(self, dom, i, mask, why):
        old = dom[i]
        new = old & mask
        if new == old:
            return
        if new == 0:
            raise Contradiction(("empty", i))
        dom[i] = new
        self._queue.append(i)
        if self.trace is not None and not new & (new - 1):
            if why[0] == "elim":
                why = why + (dom[why[1]].bit_length(),)
            self.trace.append(("place", i, new.bit_length(), why, self.depth))

    def _hidden(self, dom) -> bool:
        """Hidden singles in the units touched since the last pass."""
        changed = False
        full, units, getters = self.full, self.units, self._getters
        dirty = sorted(self._dirty)
        self._dirty = set()
        for u in dirty:
            once = twice = 0
            for m in getters[u](dom):
                twice |= once & m
                once |= m
            if once != full:
                raise Contradiction(("missing", u, full & ~once))
            uniq = once & ~twice
            if not uniq:
                continue
            for i in units[u]:
                m = dom[i] & uniq
                if m and dom[i] != m:
                    if m & (m - 1):
                        raise Contradiction(("clash", u, i))
                    self.narrow(dom, i, m, ("hidden", u))
                    changed = True
        return changed

    def propagate(self, dom, cst):
        q, pending = self._queue, self._pending
        peers, watch, cons, cunits = self.peers, self.watch, self.constraints, self.cunits
        while True:
            while q:
                i = q.pop()
                m = dom[i]
                if not m & (m - 1):
                    for p in peers[i]:
                        if dom[p] & m:
                            self.narrow(dom, p, ~m, ("elim", i))
                pending.update(watch[i])
                self._dirty.update(cunits[i])
            if pending:
                k = min(pending)
                pending.discard(k)
                cst[k] = cons[k].prune(self, dom, cst[k], k)
                continue
            if self._dirty and self._hidden(dom):
                continue
            if not q and not pending:
                return

    # ---- search ----------------------------------------------------------------------
    def initial(self):
        """Candidates after the givens: each open cell loses the values given in its units
        (done in one pass rather than cell by cell: generators call this thousands of times)."""
        full, units, cunits = self.full, self.units, self.cunits
        dom = [full] * self.N
        cst = [None] * len(self.constraints)
        self._queue, self._pending = [], set(range(len(self.constraints)))
        self._dirty = set(range(len(units)))
        used = [0] * len(units)
        for i, v in sorted(self.givens.items()):
            b = 1 << (v - 1)
            dom[i] = b
            for k in cunits[i]:
                if used[k] & b:
                    raise Contradiction(("dup", k, v))
                used[k] |= b
            if self.trace is not None:
                self.trace.append(("place", i, v, ("given",), 0))
        for i in range(self.N):
            if i in self.givens:
                continue
            m = full
            for k in cunits[i]:
                m &= ~used[k]
            if i in self.exclude:
                m &= ~(1 << (self.exclude[i] - 1))
            if not m:
                raise Contradiction(("empty", i))
            dom[i] = m
            if not m & (m - 1):
                self._queue.append(i)
                if self.trace is not None:
                    self.trace.append(("place", i, m.bit_length(), ("units",), 0))
        return dom, cst

    def solve(self, limit: int = 1, rng=None) -> list[list[int]]:
        """Up to `limit` solutions, each a flat list of values. Raises Budget when the
        search visits more than max_nodes nodes."""
        out: list[list[int]] = []
        self.nodes = 0
        try:
            dom, cst = self.initial()
            self._search(dom, cst, limit, out, rng)
        except Contradiction as e:
            if self.trace is not None:
                self.trace.append(("dead", e.why, 0))
        return out

    def _search(self, dom, cst, limit, out, rng):
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise Budget()
        self.propagate(dom, cst)
        best, bc = -1, 1 << 30
        for i, m in enumerate(dom):
            if m & (m - 1):
                c = m.bit_count()
                if c < bc:
                    best, bc = i, c
                    if c == 2:
                        break
        if best < 0:
            out.append([m.bit_length() for m in dom])
            if self.trace is not None:
                self.trace.append(("solved", self.depth))
            return None
        if self.trace is not None:
            self.trace.append(("grid", list(dom), self.depth))
        vals = bits(dom[best])
        if rng is not None:
            rng.shuffle(vals)
        for v in vals:
            d2, c2 = dom[:], cst[:]
            if self.trace is not None:
                self.trace.append(("guess", best, v, bits(dom[best]), self.depth))
            self.depth += 1
            found = len(out)
            try:
                self._queue, self._pending, self._dirty = [], set(), set()
                self.narrow(d2, best, 1 << (v - 1), ("guess",))
                why = ("exhausted", self._search(d2, c2, limit, out, rng))
            except Contradiction as e:
                why = e.why
            self.depth -= 1
            if len(out) >= limit:
                return None
            if len(out) == found and self.trace is not None:
                self.trace.append(("undo", best, v, why, self.depth))
        return best   # every candidate of `best` has been tried


_STRUCT: dict = {}


def _structure(N, units):
    """Peers and the units of each cell, cached: generators build many solvers per grid."""
    key = (N, units)
    if key not in _STRUCT:
        peers = [set() for _ in range(N)]
        cunits = [[] for _ in range(N)]
        for k, u in enumerate(units):
            for i in u:
                peers[i].update(u)
                cunits[i].append(k)
        if len(_STRUCT) > 64:
            _STRUCT.clear()
        _STRUCT[key] = ([tuple(sorted(p - {i})) for i, p in enumerate(peers)], cunits)
    return _STRUCT[key]


def count_solutions(csp: GridCSP, limit: int = 2) -> int:
    """Solutions up to `limit`; a search that runs out of budget counts as `limit`."""
    try:
        return len(csp.solve(limit))
    except Budget:
        return limit


# ---- standard unit sets -----------------------------------------------------------------
def latin_units(n: int):
    rows = [[r * n + c for c in range(n)] for r in range(n)]
    cols = [[r * n + c for r in range(n)] for c in range(n)]
    return rows + cols, [f"row {r + 1}" for r in range(n)] + [f"column {c + 1}" for c in range(n)]


# ---- answers ----------------------------------------------------------------------------
_GRID_CHARS = re.compile(r"^[0-9\s,;|\[\]().]*$")
_NUM = re.compile(r"\d+(?:\.0+)?")


def _as_int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"\s*\d{1,3}(?:\.0+)?\s*", v):
        return int(float(v))
    return None


def parse_int_grid(text: str, rows: int, cols: int | None = None):
    """A rows x cols grid of integers written as a 2D list (JSON or Python), rows of
    numbers one per line, '[[1 2 3, 4 5 6]]', or just rows*cols numbers in row-major order
    (also rows of single digits run together, e.g. '123' or '534678912'). None if it does
    not read as exactly one such grid."""
    cols = cols or rows
    if not isinstance(text, str) or len(text) > MAX_GRID_ANSWER:
        return None
    t = grid_text(text).strip()   # LaTeX matrices and row breaks -> rows on lines
    if not t or not _GRID_CHARS.match(t):
        return None
    if t[0] in "[(":
        try:
            v = parse_literal(t)
        except ValueError:
            v = None
        if isinstance(v, (list, tuple)):
            if len(v) == rows and all(isinstance(r, (list, tuple)) for r in v):
                if not all(len(r) == cols for r in v):
                    return None
                g = [[_as_int(x) for x in r] for r in v]
                return g if all(x is not None for r in g for x in r) else None
            if len(v) == rows * cols and not any(isinstance(x, (list, tuple)) for x in v):
                flat = [_as_int(x) for x in v]
                if any(x is None for x in flat):
                    return None
                return [flat[r * cols:(r + 1) * cols] for r in range(rows)]
            if any(isinstance(x, (list, tuple)) for x in v):
                return None  # a nested list of the wrong shape is not rescued by flattening
    toks = _NUM.findall(t)
    if len(toks) != rows * cols:
        if cols <= 9 and len(toks) == rows and all(len(x) == cols and x.isdigit() for x in toks):
            toks = [ch for x in toks for ch in x]
        elif cols <= 9 and len(toks) == 1 and len(toks[0]) == rows * cols and toks[0].isdigit():
            toks = list(toks[0])
        else:
            return None
    # every character must be a number or a separator (no stray dots or half numbers)
    rest = _NUM.sub(" ", t)
    if re.search(r"[0-9.]", rest):
        return None
    flat = [int(float(x)) for x in toks]
    return [flat[r * cols:(r + 1) * cols] for r in range(rows)]


def is_latin(grid, n: int) -> bool:
    want = set(range(1, n + 1))
    if len(grid) != n or any(len(r) != n for r in grid):
        return False
    return all(set(r) == want for r in grid) and all({grid[r][c] for r in range(n)} == want for c in range(n))


def grid_literal(grid) -> str:
    """[[1, 2], [2, 1]]: the official answer spelling of a 2D list."""
    return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in grid) + "]"


# ---- skeletons --------------------------------------------------------------------------
def trace_steps(csp: GridCSP, show_grid, max_steps: int = 120, max_dead: int = 25,
                every: int = 0) -> list[dict]:
    """Skeleton steps from a traced search (csp.solve(1) with trace=True).

    Placements on the successful branch are listed with the rule that forced them; each
    guess is a step; a guess that failed is collapsed into one 'backtrack' step saying what
    contradiction it hit and how much work was undone. `show_grid(dom)` writes a partial
    grid: one is shown before each guess that stays on the final path and after every
    `every` placements (default: a quarter of the cells). Past `max_dead` dead ends the
    further ones are counted and reported in one line; past `max_steps` consecutive
    placements are merged so that the skeleton stays readable.
    """
    every = every or max(5, round(csp.N / 4))
    items: list[tuple[str, str, bool]] = []   # (kind, text, mergeable placement)
    stack: list[tuple[int, int, int, dict]] = []  # (index into items, cell, value, known) per open guess
    placed_since: list[int] = []
    known: dict[int, int] = {}                # cell -> value on the current branch
    dead = omitted = since_grid = 0
    first_grid = True

    def snapshot():
        return show_grid([1 << (known[i] - 1) if i in known else csp.full for i in range(csp.N)])

    for ev in csp.trace or []:
        kind = ev[0]
        if kind == "place":
            _, i, v, why, depth = ev
            known[i] = v
            if why[0] in ("guess", "given"):
                continue
            if placed_since:
                placed_since[-1] += 1
            items.append(("step", f"{csp.cname(i)} = {csp.val_text(v)}: {csp.reason_text(why, i)}.", True))
            since_grid += 1
            if since_grid >= every and len(known) < csp.N:
                items.append(("step", f"Grid so far (. = still open):\n{snapshot()}", False))
                since_grid = 0
        elif kind == "grid":
            label = "After the forced deductions" if first_grid else "Grid so far"
            first_grid = False
            items.append(("step", f"{label} (. = still open):\n{show_grid(ev[1])}", False))
            since_grid = 0
        elif kind == "guess":
            _, i, v, cands, depth = ev
            opts = ", ".join(csp.val_text(x) for x in cands)
            stack.append((len(items), i, v, dict(known)))
            placed_since.append(0)
            items.append(("step", f"No forced move left. Guess {csp.cname(i)} = {csp.val_text(v)} "
                                  f"(its candidates: {opts}).", False))
        elif kind == "undo":
            _, i, v, why, depth = ev
            at, gi, gv, known = stack.pop()
            n_placed = placed_since.pop()
            nested = sum(1 for it in items[at + 1:] if it[1].startswith(("No forced move", "Trying ")))
            del items[at:]
            since_grid = 0
            if placed_since:
                placed_since[-1] += n_placed
            dead += 1
            if dead > max_dead:
                omitted += 1
                continue
            more = f" and {nested} nested guesses" if nested else ""
            items.append(("backtrack", f"Trying {csp.cname(gi)} = {csp.val_text(gv)} leads to a dead end "
                                       f"({csp.dead_text(why)}) after {n_placed} forced placements{more}. "
                                       f"Undo it: {csp.cname(gi)} is not {csp.val_text(gv)}.", False))
        elif kind == "dead":
            items.append(("backtrack", f"Contradiction: {csp.dead_text(ev[1])}.", False))
    if omitted:
        items.append(("backtrack", f"... {omitted} further dead ends omitted (each guess undone as above).", False))
    # merge runs of placements when there are too many steps
    if len(items) > max_steps:
        n_fixed = sum(1 for it in items if not it[2])
        n_place = len(items) - n_fixed
        room = max(10, max_steps - n_fixed)
        size = -(-n_place // room)
        merged, run = [], []
        for it in items:
            if it[2]:
                run.append(it[1])
                if len(run) == size:
                    merged.append(("step", " ".join(run), False))
                    run = []
            else:
                if run:
                    merged.append(("step", " ".join(run), False))
                    run = []
                merged.append(it)
        if run:
            merged.append(("step", " ".join(run), False))
        items = merged
    return [step(k, t) for k, t, _ in items]


# ---- the Latin-square tasks' shared answer side ---------------------------------------
def format_example(n: int) -> str:
    """A format example of a size other than n (so it can never be the solution)."""
    if n == 3:
        return "for a 4x4 grid: [[1, 2, 3, 4], [3, 4, 1, 2], [4, 3, 2, 1], [2, 1, 4, 3]]"
    return "for a 3x3 grid: [[1, 2, 3], [3, 1, 2], [2, 3, 1]]"


class LatinTask(Task):
    """An n x n Latin square with extra clues; the answer is the filled grid as a 2D list."""
    answer_shape = formats.GRID
    group = "Puzzles"

    def size(self, state) -> int:
        raise NotImplementedError

    def clues_hold(self, grid, state) -> bool:
        raise NotImplementedError

    def format_answer(self, solution) -> str:
        return grid_literal(solution)

    def check(self, answer, state) -> bool:
        n = self.size(state)
        grid = parse_int_grid(answer, n)
        return grid is not None and is_latin(grid, n) and bool(self.clues_hold(grid, state))


def random_latin(n: int, rng) -> list[list[int]]:
    """A random Latin square: the solver fills an empty grid trying values in random order."""
    units, names = latin_units(n)
    flat = GridCSP(n, n, n, units, names).solve(1, rng=rng)[0]
    return [flat[r * n:(r + 1) * n] for r in range(n)]


def show_dom(n: int):
    """A function writing a candidate list as a partial n x n grid ('.' = open)."""
    def show(dom):
        return "\n".join(" ".join(str(dom[r * n + c].bit_length()) if not dom[r * n + c] & (dom[r * n + c] - 1)
                                  else "." for c in range(n)) for r in range(n))
    return show
