"""Eulero: complete a Graeco-Latin square. Every cell holds a letter-digit pair (A1, C3, ...);
each row and each column contains every letter A.. once and every digit 1..n once, and each of
the n*n pairs appears exactly once in the grid. Some pairs are given.

Levels (n, blank cells): 3/5, 4/10, 5/16, 7/28, 7/34. There is no Graeco-Latin square of order
6 (Euler's 36 officers; Tarry 1900), so the official level-4 size 6 cannot be generated
consistently; level 4 uses n = 7 with fewer blanks than level 5. The verifier and the solver
take n from the instance (the number of rows), never from the level.

Generation: an algebraic Graeco-Latin square (letters a*r + c and digits b*r + c over the field
of order n, a != b), shuffled by random row, column, letter and digit permutations, a random
transpose and a random swap of the letter/digit roles. Then given pairs are removed in random
order, each removal kept only if the solver proves the solution stays unique; a pass that gets
stuck above the level's blank count restarts with a new order.

Official state: the grid as text, rows of cells separated by '|', a blank cell written ' '
(we also read '', '.', '_', '?', '-', '0' as blank).
"""
from __future__ import annotations

import re
from functools import lru_cache

from . import draw, formats
from ._latin import Budget, Constraint, Contradiction, GridCSP, trace_steps
from .base import Task, parse_literal, step
from .formats import grid_text

LEVELS = {1: (3, 5), 2: (4, 10), 3: (5, 16), 4: (7, 28), 5: (7, 34)}
BLANKS = {"", ".", "_", "__", "?", "-", "0", "..", "--", "x", "X"}
_CELL = re.compile(r"([A-Za-z])\s*(\d{1,2})")
_SEP = re.compile(r"^[\s|,;\[\](){}'\"]*$")

# GF(4) multiplication (elements 0, 1, x, x+1 as 0..3); addition is XOR
_GF4_MUL = [[0, 0, 0, 0], [0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2]]


def letter(i):
    return chr(ord("A") + i)


def pair_text(n, v):
    """Solver value v (1..n*n) -> 'B3'."""
    L, D = divmod(v - 1, n)
    return f"{letter(L)}{D + 1}"


def pair_value(n, text):
    L, D = ord(text[0].upper()) - ord("A"), int(text[1:]) - 1
    if not (0 <= L < n and 0 <= D < n):
        raise ValueError(f"eulero: {text!r} is outside a {n}x{n} square")
    return L * n + D + 1


def graeco_latin(n, rng):
    """A random Graeco-Latin square of order n in {3, 4, 5, 7} as rows of (letter, digit)."""
    if n == 4:
        a, b = rng.sample([1, 2, 3], 2)
        base = [[(_GF4_MUL[a][r] ^ c, _GF4_MUL[b][r] ^ c) for c in range(4)] for r in range(4)]
    elif n in (3, 5, 7):
        a, b = rng.sample(range(1, n), 2)
        base = [[((a * r + c) % n, (b * r + c) % n) for c in range(n)] for r in range(n)]
    else:
        raise ValueError(f"eulero: no generator for n={n}")
    rows, cols, lets, digs = (rng.sample(range(n), n) for _ in range(4))
    g = [[(lets[base[rows[r]][cols[c]][0]], digs[base[rows[r]][cols[c]][1]]) for c in range(n)]
         for r in range(n)]
    if rng.random() < 0.5:
        g = [list(col) for col in zip(*g)]
    if rng.random() < 0.5:
        g = [[(d, L) for L, d in row] for row in g]
    return g


@lru_cache(maxsize=None)
def _masks(n):
    """Bitmasks over the n*n pair values: the pairs with letter L, and with digit D."""
    lm = tuple(sum(1 << (L * n + D) for D in range(n)) for L in range(n))
    dm = tuple(sum(1 << (L * n + D) for L in range(n)) for D in range(n))
    return lm, dm


class LineRule(Constraint):
    """One row or column: each letter once and each digit once."""

    def __init__(self, cells, n, name):
        self.cells = tuple(cells)
        self.n, self.name = n, name
        self.lm, self.dm = _masks(n)

    def prune(self, csp, dom, state, k):
        n, lm, dm, cells = self.n, self.lm, self.dm, self.cells
        for i in cells:
            m = dom[i]
            if m & (m - 1):
                continue
            L, D = divmod(m.bit_length() - 1, n)
            banned = lm[L] | dm[D]
            for j in cells:
                if j != i and dom[j] & banned:
                    csp.narrow(dom, j, ~banned, ("line", k, i))
        for kind, masks in ((0, lm), (1, dm)):
            for x, mk in enumerate(masks):
                where = -1
                for i in cells:
                    if dom[i] & mk:
                        if where >= 0:
                            break
                        where = i
                else:
                    if where < 0:
                        raise Contradiction(("nowhere", k, kind, x))
                    if dom[where] & ~mk:
                        csp.narrow(dom, where, mk, ("hidden-part", k, kind, x))
        return state

    def describe(self, csp):
        return self.name


class EuleroCSP(GridCSP):
    @staticmethod
    def _part(kind, x):
        return f"letter {letter(x)}" if kind == 0 else f"digit {x + 1}"

    def reason_text(self, why, i=None):
        if why[0] == "line":
            line, src = self.constraints[why[1]].name, why[2]
            p = self.val_text(self.trace_value(src))
            return (f"the only pair left once {self.cname(src)} = {p} in {line} (its letter "
                    f"{p[0]} and digit {p[1:]} are used there)")
        if why[0] == "hidden-part":
            return f"the only cell of {self.constraints[why[1]].name} that can take {self._part(why[2], why[3])}"
        return super().reason_text(why, i)

    def dead_text(self, why):
        if why[0] == "nowhere":
            return f"no cell of {self.constraints[why[1]].name} can take {self._part(why[2], why[3])}"
        return super().dead_text(why)

    def trace_value(self, cell):
        """The value a cell was last fixed to, from the trace (for reason texts)."""
        for ev in reversed(self.trace or []):
            if ev[0] == "place" and ev[1] == cell:
                return ev[2]
        return 1


def build_csp(state, trace=False, givens=None, exclude=None, max_nodes=200_000):
    n = len(state)
    cons = [LineRule([r * n + c for c in range(n)], n, f"row {r + 1}") for r in range(n)]
    cons += [LineRule([r * n + c for r in range(n)], n, f"column {c + 1}") for c in range(n)]
    if givens is None:
        givens = {r * n + c: pair_value(n, v) for r, row in enumerate(state) for c, v in enumerate(row) if v}
    return EuleroCSP(n, n, n * n, units=[list(range(n * n))], unit_names=["the grid (each pair once)"],
                     constraints=cons, givens=givens, exclude=exclude, trace=trace,
                     val_text=lambda v: pair_text(n, v), max_nodes=max_nodes)


def _removable(empty, giv, i, v) -> bool:
    """True when the solver proves that no solution has another pair at cell i (a search
    that runs past its node budget proves nothing, and the pair stays)."""
    try:
        return not build_csp(empty, givens=giv, exclude={i: v}, max_nodes=3000).solve(1)
    except Budget:
        return False


def parse_answer(text, n):
    """Rows like 'A1|B2|C3' (one per line), or any n*n letter-digit cells in row-major order
    separated by |, commas, spaces or brackets. None if it is not exactly that."""
    if not isinstance(text, str) or len(text) > 40 * n * n + 200:
        return None
    text = grid_text(text)   # LaTeX matrices and row breaks -> rows on lines
    cells = _CELL.findall(text)
    if len(cells) != n * n or not _SEP.match(_CELL.sub(" ", text)):
        return None
    flat = [(ord(a.upper()) - ord("A"), int(d) - 1) for a, d in cells]
    return [flat[r * n:(r + 1) * n] for r in range(n)]


def valid_square(grid, state) -> bool:
    n = len(state)
    if any(not (0 <= L < n and 0 <= D < n) for row in grid for L, D in row):
        return False
    full = set(range(n))
    for line in [row for row in grid] + [list(col) for col in zip(*grid)]:
        if {L for L, _ in line} != full or {D for _, D in line} != full:
            return False
    if len({p for row in grid for p in row}) != n * n:
        return False
    for r, row in enumerate(state):
        for c, v in enumerate(row):
            if v and f"{letter(grid[r][c][0])}{grid[r][c][1] + 1}" != v:
                return False
    return True


class Eulero(Task):
    name = "eulero"
    official = "eulero"
    group = "Puzzles"
    answer_shape = formats.GRID

    def make(self, rng, level):
        n, blanks = LEVELS[level]
        passes = 0
        while True:
            sq = graeco_latin(n, rng)
            full = {r * n + c: sq[r][c][0] * n + sq[r][c][1] + 1 for r in range(n) for c in range(n)}
            empty = [[""] * n for _ in range(n)]
            for _ in range(10):
                passes += 1
                giv = dict(full)
                order = list(range(n * n))
                rng.shuffle(order)
                for i in order:
                    if n * n - len(giv) >= blanks:
                        break
                    v = giv.pop(i)
                    if not _removable(empty, giv, i, v):
                        giv[i] = v       # another solution might appear: keep the pair
                if n * n - len(giv) == blanks:
                    state = [[pair_text(n, giv[r * n + c]) if r * n + c in giv else "" for c in range(n)]
                             for r in range(n)]
                    solution = [[pair_text(n, full[r * n + c]) for c in range(n)] for r in range(n)]
                    return state, solution, {"n": n, "blanks": blanks, "givens": n * n - blanks,
                                             "carving_passes": passes}

    def solve(self, state):
        n = len(state)
        sols = build_csp(state).solve(1)
        return [[pair_text(n, sols[0][r * n + c]) for c in range(n)] for r in range(n)] if sols else None

    def format_answer(self, solution):
        return "\n".join("|".join(row) for row in solution)

    def check(self, answer, state):
        grid = parse_answer(answer, len(state))
        return grid is not None and valid_square(grid, state)

    def render(self, state):
        n = len(state)
        return [draw.grid([[v for v in row] for row in state], cell=64, size=24,
                          caption=f"Eulero {n}x{n}")]

    def question(self, state, text_only=False):
        n = len(state)
        lets, last = ", ".join(letter(i) for i in range(n)), letter(n - 1)
        rules = (f"Complete this {n}x{n} Eulero (Graeco-Latin square) puzzle. Every cell must hold a "
                 f"pair of a letter from A to {last} and a digit from 1 to {n} (like B3). Each row and "
                 f"each column must contain each letter ({lets}) exactly once and each digit 1 to "
                 f"{n} exactly once, and each of the {n * n} possible letter-digit pairs must appear "
                 f"exactly once in the whole grid. The given pairs stay as they are.")
        if text_only:
            rows = "\n".join(" | ".join(v or "__" for v in row) for row in state)
            where = f"The grid, one row per line ('__' = empty cell):\n{rows}"
        else:
            where = "The image shows the grid; the empty cells are the ones to fill."
        ex = "A1|B2|C3" if n != 3 else "A1|B2|C3|D4"
        fmt = (f"Answer with the completed grid, one row per line, the cells of a row separated by "
               f"'|' (format example of one row: {ex}).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state):
        return "\n".join("|".join(v or " " for v in row) for row in state)

    def state_from_str(self, text):
        t = text.strip("\n")
        if t.strip().startswith("["):
            rows = [[str(x or "").strip() for x in row] for row in parse_literal(t.strip())]
        else:
            rows = [ln.split("|") for ln in t.split("\n") if ln.strip()]
            n = len(rows)
            for k, row in enumerate(rows):
                if len(row) == n + 2 and not row[0].strip() and not row[-1].strip():
                    row = row[1:-1]              # written with outer bars: |A1|B2|
                if len(row) < n:
                    row = row + [""] * (n - len(row))   # trailing blanks lost to a strip()
                rows[k] = [x.strip() for x in row]
        n = len(rows)
        out = []
        for row in rows:
            if len(row) != n:
                raise ValueError(f"eulero: a row has {len(row)} cells in a {n}x{n} grid")
            cells = []
            for x in row:
                if x in BLANKS:
                    cells.append("")
                elif re.fullmatch(r"[A-Za-z]\d{1,2}", x):
                    pair_value(n, x)
                    cells.append(x[0].upper() + x[1:])
                else:
                    raise ValueError(f"eulero: cannot read cell {x!r}")
            out.append(cells)
        return out

    def skeleton(self, state):
        n = len(state)
        csp = build_csp(state, trace=True)
        sol = csp.solve(1)[0]
        grid = [[pair_text(n, sol[r * n + c]) for c in range(n)] for r in range(n)]

        def show(dom):
            return "\n".join(" ".join(pair_text(n, dom[r * n + c].bit_length())
                                      if not dom[r * n + c] & (dom[r * n + c] - 1) else ".."
                                      for c in range(n)) for r in range(n))
        rows = "\n".join(" ".join(v or ".." for v in row) for row in state)
        blanks = sum(1 for row in state for v in row if not v)
        steps = [step("rule", f"Each row and column holds letters A-{letter(n - 1)} once and digits 1-{n} "
                              f"once; each of the {n * n} pairs appears once in the grid; givens stay. "
                              f"Track the possible pairs of every empty cell, place forced ones, and "
                              f"guess only when stuck."),
                 step("read", f"{n}x{n} grid with {blanks} empty cells ('..'):\n{rows}")]
        steps += trace_steps(csp, show)
        parsed = [[(ord(v[0]) - 65, int(v[1:]) - 1) for v in row] for row in grid]
        ok = valid_square(parsed, state)
        steps.append(step("check", "Grid:\n" + "\n".join(" ".join(r) for r in grid)
                          + f"\nEvery row and column has each letter and each digit once, all {n * n} "
                          + "pairs are different, and the givens are kept"
                          + ("." if ok else " — NOT satisfied.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


TASK = Eulero()
