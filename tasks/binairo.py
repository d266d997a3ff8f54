"""Binairo (Takuzu): fill a 6x6 grid with 0s and 1s so that no row or column has three equal
digits in a row, every row and column has as many 0s as 1s, all rows are different and all
columns are different. Some digits are given.

Levels: the share of given cells is .80/.65/.55/.45/.35 (29/23/20/16/13 of 36), as in the
official generator. Unlike the official one (which drops random cells and may leave several
solutions), the solution here is unique: starting from a random full grid, given cells are
removed in random order, each removal kept only if the solver proves that no other solution
appears; a pass that gets stuck above the level's count restarts with a new order.

Solver: one constraint per direction holding, for each row (column), the valid lines (3
zeros, 3 ones, no three alike) that fit the cells known so far, minus the lines already
completed elsewhere (rows must differ); cells on which all of a line's options agree are
fixed; then MRV search.

Official state: a 2D list with None for empty cells.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import product

from . import draw, formats
from ._latin import Budget, Constraint, Contradiction, GridCSP, parse_int_grid, trace_steps
from .base import Task, parse_literal, step

N = 6
GIVENS = {1: 29, 2: 23, 3: 20, 4: 16, 5: 13}
ZERO, ONE = 1, 2        # solver values for the digits 0 and 1


def valid_line(line) -> bool:
    n = len(line)
    return (line.count(0) == line.count(1) == n // 2
            and all(not (line[i] == line[i + 1] == line[i + 2]) for i in range(n - 2)))


@lru_cache(maxsize=None)
def _lines(n):
    """Every valid line of length n as a tuple of solver value masks."""
    return [tuple(1 << (v - 1) for v in (ONE if b else ZERO for b in bs))
            for bs in product((0, 1), repeat=n) if valid_line(list(bs))]


class DistinctLines(Constraint):
    """All rows (or all columns): each is a valid line, and no two are the same."""

    def __init__(self, lines, what):
        self.lines = [tuple(x) for x in lines]
        self.cells = tuple(i for line in self.lines for i in line)
        self.what = what          # "row" or "column"
        self.options = _lines(len(self.lines[0]))

    def prune(self, csp, dom, state, k):
        cur = state or [self.options] * len(self.lines)
        new = []
        for li, line in enumerate(self.lines):
            ds = [dom[i] for i in line]
            keep = [p for p in cur[li] if all(d & b for d, b in zip(ds, p))]
            if not keep:
                raise Contradiction(("noline", k, li))
            new.append(keep)
        changed = True
        while changed:            # a finished line's pattern is gone for every other line
            changed = False
            done = {}
            for li, ps in enumerate(new):
                if len(ps) == 1:
                    if ps[0] in done:
                        raise Contradiction(("same", k, done[ps[0]], li))
                    done[ps[0]] = li
            for li, ps in enumerate(new):
                if len(ps) > 1:
                    rest = [p for p in ps if p not in done]
                    if not rest:
                        raise Contradiction(("noline", k, li))
                    if len(rest) < len(ps):
                        new[li], changed = rest, True
        for li, line in enumerate(self.lines):
            sup = [0] * len(line)
            for p in new[li]:
                for j, b in enumerate(p):
                    sup[j] |= b
            for j, i in enumerate(line):
                if dom[i] & ~sup[j]:
                    csp.narrow(dom, i, sup[j], ("lines", k, li, len(new[li])))
        return new

    def describe(self, csp):
        return f"the {self.what}s"


class BinairoCSP(GridCSP):
    def reason_text(self, why, i=None):
        if why[0] == "lines":
            c = self.constraints[why[1]]
            name = f"{c.what} {why[2] + 1}"
            if why[3] == 1:
                return (f"only one valid filling of {name} is left (balanced, no three alike, "
                        f"unlike the finished {c.what}s)")
            return (f"all {why[3]} valid fillings left for {name} (balanced, no three alike, "
                    f"unlike the finished {c.what}s) agree on it")
        return super().reason_text(why, i)

    def dead_text(self, why):
        if why[0] == "noline":
            c = self.constraints[why[1]]
            return f"no valid {c.what} fits {c.what} {why[2] + 1} any more"
        if why[0] == "same":
            c = self.constraints[why[1]]
            return f"{c.what}s {why[2] + 1} and {why[3] + 1} would be equal"
        return super().dead_text(why)


def build_csp(givens, trace=False, exclude=None, max_nodes=200_000):
    rows = [[r * N + c for c in range(N)] for r in range(N)]
    cols = [[r * N + c for r in range(N)] for c in range(N)]
    return BinairoCSP(N, N, 2, constraints=[DistinctLines(rows, "row"), DistinctLines(cols, "column")],
                      givens=givens, exclude=exclude, trace=trace, max_nodes=max_nodes,
                      val_text=lambda v: str(v - 1))


def _givens(state):
    return {r * N + c: v + 1 for r, row in enumerate(state) for c, v in enumerate(row) if v is not None}


def _removable(giv, i, v) -> bool:
    try:
        return not build_csp(giv, exclude={i: v}, max_nodes=3000).solve(1)
    except Budget:
        return False


def valid_grid(grid, state) -> bool:
    n = len(state)
    if len(grid) != n or any(len(r) != n for r in grid):
        return False
    if any(v not in (0, 1) for row in grid for v in row):
        return False
    cols = [[grid[r][c] for r in range(n)] for c in range(n)]
    if not all(valid_line(x) for x in grid + cols):
        return False
    if len({tuple(r) for r in grid}) != n or len({tuple(c) for c in cols}) != n:
        return False
    return all(v is None or grid[r][c] == v for r, row in enumerate(state) for c, v in enumerate(row))


class Binairo(Task):
    name = "binairo"
    official = "binairo"
    group = "Puzzles"
    answer_shape = formats.GRID

    def make(self, rng, level):
        target = GIVENS[level]
        passes = 0
        while True:
            full = build_csp({}).solve(1, rng=rng)[0]
            for _ in range(20):
                passes += 1
                giv = {i: full[i] for i in range(N * N)}
                order = list(range(N * N))
                rng.shuffle(order)
                for i in order:
                    if len(giv) <= target:
                        break
                    v = giv.pop(i)
                    if not _removable(giv, i, v):
                        giv[i] = v
                if len(giv) == target:
                    state = [[giv[r * N + c] - 1 if r * N + c in giv else None for c in range(N)]
                             for r in range(N)]
                    solution = [[full[r * N + c] - 1 for c in range(N)] for r in range(N)]
                    return state, solution, {"size": N, "givens": target,
                                             "density": round(target / (N * N), 2), "carving_passes": passes}

    def solve(self, state):
        sols = build_csp(_givens(state)).solve(1)
        return [[sols[0][r * N + c] - 1 for c in range(N)] for r in range(N)] if sols else None

    def format_answer(self, solution):
        return "\n".join(" ".join(str(v) for v in row) for row in solution)

    def check(self, answer, state):
        grid = parse_int_grid(answer, len(state))
        return grid is not None and valid_grid(grid, state)

    def render(self, state):
        cells = [["" if v is None else str(v) for v in row] for row in state]
        return [draw.grid(cells, cell=60, size=28, caption="Binairo 6x6")]

    def question(self, state, text_only=False):
        rules = ("Solve this 6x6 Binairo puzzle: fill every empty cell with 0 or 1 so that (1) no row "
                 "or column has three equal digits next to each other, (2) every row and every "
                 "column has three 0s and three 1s, (3) no two rows are the same and no two columns "
                 "are the same. The given digits stay as they are.")
        if text_only:
            rows = "\n".join(" ".join("." if v is None else str(v) for v in row) for row in state)
            where = f"The grid, one row per line ('.' = empty):\n{rows}"
        else:
            where = "The image shows the grid; the empty cells are the ones to fill."
        fmt = ("Answer with the completed grid, one row per line, the digits of a row separated by "
               "spaces (format example of one row: 0 1 1 0 1 0).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state):
        return str(state)

    def state_from_str(self, text):
        v = parse_literal(text)
        if not isinstance(v, (list, tuple)) or len(v) != N or any(len(r) != N for r in v):
            raise ValueError("binairo: expected a 6x6 list")
        out = []
        for row in v:
            cells = []
            for x in row:
                if x in (0, 1) and not isinstance(x, bool):
                    cells.append(int(x))
                elif isinstance(x, str) and x.strip() in ("0", "1"):
                    cells.append(int(x))
                elif x is None or (isinstance(x, str) and x.strip() in ("", ".", "_", "?", "-")) or x == -1:
                    cells.append(None)
                else:
                    raise ValueError(f"binairo: cannot read cell {x!r}")
            out.append(cells)
        return out

    def skeleton(self, state):
        csp = build_csp(_givens(state), trace=True)
        sol = csp.solve(1)[0]
        grid = [[sol[r * N + c] - 1 for c in range(N)] for r in range(N)]

        def show(dom):
            return "\n".join(" ".join(str(dom[r * N + c] - 1) if dom[r * N + c] != 3 else "."
                                      for c in range(N)) for r in range(N))
        rows = "\n".join(" ".join("." if v is None else str(v) for v in row) for row in state)
        steps = [step("rule", "Each row and column: three 0s and three 1s, never three equal digits in "
                              "a row, and all rows (all columns) different; givens stay. For each line "
                              "keep the valid fillings that match its known cells, fix cells they all "
                              "agree on, and guess only when stuck."),
                 step("read", f"6x6 grid with {len(_givens(state))} givens ('.' = empty):\n{rows}")]
        steps += trace_steps(csp, show)
        ok = valid_grid(grid, state)
        steps.append(step("check", "Grid:\n" + self.format_answer(grid)
                          + "\nEvery row and column has three 0s and three 1s, no three equal digits "
                          + "touch in a line, the rows are all different, the columns are all "
                          + "different, and the givens are kept" + ("." if ok else " — NOT satisfied.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


TASK = Binairo()
