"""Nonogram: fill a square grid so that every row and column shows its run clues.

Levels: grid 3x3, 4x4, 5x5, 6x6, 7x7 (a random picture, about half filled).
Uniqueness: NOT forced. The solver counts solutions up to two and records it in
meta['unique']; puzzles with several solutions are kept (the official set has 38% of them),
because the verifier checks the clues, so every grid that fits them passes - not only the
stored one (the official scorer compares strings and fails those).
Official state: `[row_clues, col_clues]`, an empty line written `[]` (also `[0]` is read).
Answer: one row per line, `X` filled and `.` empty (spaces between cells are accepted).
"""
from __future__ import annotations

from functools import lru_cache

from . import draw, formats
from ._shade import Search, Trace, board, capped_steps
from .base import Task, parse_literal, step
from .formats import grid_text

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
FILLED = set("Xx#■1")
EMPTY = set(".·0_-□")


def runs(bits) -> list[int]:
    """The run clue of a line of 0/1 values."""
    out, k = [], 0
    for b in bits:
        if b:
            k += 1
        elif k:
            out.append(k)
            k = 0
    if k:
        out.append(k)
    return out


@lru_cache(maxsize=None)
def patterns(clue: tuple, n: int) -> tuple:
    """Every placement of the runs `clue` in a line of n cells, as bitmasks (bit j = cell j)."""
    if not clue:
        return (0,)
    out = []

    def place(i, start, mask):
        if i == len(clue):
            out.append(mask)
            return
        rest = sum(clue[i + 1:]) + len(clue) - i - 1
        for s in range(start, n - rest - clue[i] + 1):
            place(i + 1, s + clue[i] + 1, mask | (((1 << clue[i]) - 1) << s))
    place(0, 0, 0)
    return tuple(out)


class Nonogram(Task):
    name = "nonogram"
    official = "nonogram"
    group = "Puzzles"
    dot_is_cell = True      # '.' is an empty cell: 'X.X.' ends with a cell, not a full stop
    answer_shape = formats.GRID

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        n = SIZES[level]
        while True:
            p = rng.uniform(0.45, 0.65)
            grid = [[1 if rng.random() < p else 0 for _ in range(n)] for _ in range(n)]
            total = sum(map(sum, grid))
            if total < n or total > n * n - 2:
                continue
            rows = [runs(row) for row in grid]
            cols = [runs([grid[r][c] for r in range(n)]) for c in range(n)]
            state = [rows, cols]
            sols = self._search(state, limit=2).solutions
            sol = ["".join("X" if v else "." for v in row) for row in grid]
            meta = {"size": n, "filled": total, "unique": len(sols) == 1,
                    "clue_numbers": sum(len(x) for x in rows + cols)}
            return state, sol, meta

    # ---- solver -------------------------------------------------------------------------------
    def _lines(self, state):
        rows, cols = state
        n = len(rows)
        lines = []
        for r in range(n):
            lines.append((f"Row {r + 1}", tuple(rows[r]), [r * n + c for c in range(n)]))
        for c in range(n):
            lines.append((f"Column {c + 1}", tuple(cols[c]), [r * n + c for r in range(n)]))
        return n, lines

    def _search(self, state, limit=2, trace=None):
        n, lines = self._lines(state)
        pats = [patterns(clue, n) for _, clue, _ in lines]
        full = (1 << n) - 1
        cell_lines = [[] for _ in range(n * n)]
        for li, (_, _, cells) in enumerate(lines):
            for idx in cells:
                cell_lines[idx].append(li)

        def propagate(s, log):
            queue = list(range(len(lines)))
            queued = [True] * len(lines)
            while queue:
                li = queue.pop(0)
                queued[li] = False
                name, clue, cells = lines[li]
                k1 = k0 = 0
                for j, idx in enumerate(cells):
                    v = s[idx]
                    if v == 1:
                        k1 |= 1 << j
                    elif v == 0:
                        k0 |= 1 << j
                valid = [p for p in pats[li] if not (p & k0) and (p & k1) == k1]
                if not valid:
                    if log:
                        log(f"{name} (clue {' '.join(map(str, clue)) or '0'}) cannot be placed "
                            f"over the cells already decided")
                    return False
                a, o = full, 0
                for p in valid:
                    a &= p
                    o |= p
                new1 = a & ~k1
                new0 = full & ~o & ~k0
                if not (new1 or new0):
                    continue
                got1, got0 = [], []
                for j, idx in enumerate(cells):
                    if new1 >> j & 1:
                        s[idx] = 1
                        got1.append(j + 1)
                    elif new0 >> j & 1:
                        s[idx] = 0
                        got0.append(j + 1)
                    else:
                        continue
                    for lj in cell_lines[idx]:
                        if not queued[lj]:
                            queued[lj] = True
                            queue.append(lj)
                if log:
                    what = "column" if name.startswith("Row") else "row"
                    parts = []
                    for got, word in ((got1, "filled"), (got0, "empty")):
                        if got:
                            parts.append(f"{what}{'s' if len(got) > 1 else ''} "
                                         f"{','.join(map(str, got))} {word}")
                    fit = "1 placement fits" if len(valid) == 1 else f"{len(valid)} placements fit"
                    log(f"{name} (clue {' '.join(map(str, clue)) or '0'}, {fit}): "
                        + ", ".join(parts))
            return True

        def choose(s):
            for i, v in enumerate(s):
                if v is None:
                    return i, (1, 0)
            return None

        def describe(i, v):
            return f"row {i // n + 1}, column {i % n + 1} is {'filled' if v else 'empty'}"

        def show(s):
            return "\n".join("".join("?" if s[r * n + c] is None else ("X" if s[r * n + c] else ".")
                                     for c in range(n)) for r in range(n))
        srch = Search(propagate, choose, describe, show, limit=limit, trace=trace)
        srch.run([None] * (n * n))
        return srch

    def solve(self, state):
        sols = self._search(state, limit=1).solutions
        if not sols:
            return None
        n = len(state[0])
        return ["".join("X" if sols[0][r * n + c] else "." for c in range(n)) for r in range(n)]

    def format_answer(self, solution):
        return "\n".join(solution)

    # ---- verifier -----------------------------------------------------------------------------
    def parse(self, answer: str, n: int):
        t = answer.strip()
        if len(t) > 40 * n * n + 200:
            return None
        if t.startswith("[") and t.endswith("]"):
            v = parse_literal(t)
            if not isinstance(v, (list, tuple)):
                return None
            # rows as strings ["X.X", ...] or as lists of cells [["X", ".", "X"], ...]
            v = ["".join(x) if isinstance(x, (list, tuple)) and all(isinstance(c, str) for c in x)
                 else x for x in v]
            if not all(isinstance(x, str) for x in v):
                return None
            lines = list(v)
        else:
            lines = grid_text(t).split("\n")
        grid = []
        for ln in lines:
            ln = ln.strip().strip("`").replace(" ", "").replace("\t", "").replace("|", "")
            if not ln:
                continue
            row = []
            for ch in ln:
                if ch in FILLED:
                    row.append(1)
                elif ch in EMPTY:
                    row.append(0)
                else:
                    return None
            grid.append(row)
        if len(grid) != n or any(len(row) != n for row in grid):
            return None
        return grid

    def check(self, answer, state):
        rows, cols = state
        n = len(rows)
        grid = self.parse(answer, n)
        if grid is None:
            return False
        return ([runs(row) for row in grid] == [list(x) for x in rows]
                and [runs([grid[r][c] for r in range(n)]) for c in range(n)] == [list(x) for x in cols])

    # ---- state strings ------------------------------------------------------------------------

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):
            rows = v.get("rows", v.get("row_clues"))
            cols = v.get("columns", v.get("cols", v.get("col_clues")))
            v = [rows, cols]
        if not (isinstance(v, (list, tuple)) and len(v) == 2):
            raise ValueError("nonogram: expected [row_clues, col_clues]")
        out = []
        for side in v:
            lines = []
            for clue in side:
                if isinstance(clue, int):
                    clue = [clue]
                clue = [int(x) for x in clue if int(x) != 0]
                if any(x < 0 for x in clue):
                    raise ValueError("nonogram: negative clue")
                lines.append(clue)
            out.append(lines)
        if len(out[0]) != len(out[1]) or not out[0]:
            raise ValueError("nonogram: the grid must be square")
        return out

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        rows, cols = state
        n = len(rows)
        cell = 52 if n <= 5 else 46
        maxr = max(1, max(len(x) for x in rows))
        maxc = max(1, max(len(x) for x in cols))
        top = ["\n".join(map(str, x)) or "0" for x in cols]

        def extra(d, ox, oy):
            # row clues drawn one number per slot, right-aligned, so "1 4" never reads 14
            for r, clue in enumerate(rows):
                nums = clue or [0]
                for j, v in enumerate(reversed(nums)):
                    draw.center_text(d, (ox - 18 - 26 * j, oy + r * cell + cell / 2), v,
                                     size=20, fill=draw.BLUE)
        return [board(n, n, cell=cell, top=top, caption="Nonogram", extra=extra,
                      clue_room={"left": 16 + 26 * maxr, "top": 14 + 24 * maxc},
                      clue_size=20)]

    RULES = ("Solve the nonogram: colour some cells of the square grid. The numbers beside "
             "each row (read left to right) and above each column (read top to bottom) give "
             "the lengths of the blocks of consecutive filled cells in that line, in order; "
             "blocks are separated by at least one empty cell, and a 0 means the line is "
             "empty. Every row and column clue must hold at once.")

    def question(self, state, text_only=False):
        rows, cols = state
        n = len(rows)
        if text_only:
            rc = "\n".join(f"Row {i + 1}: {' '.join(map(str, x)) or '0'}" for i, x in enumerate(rows))
            cc = "\n".join(f"Column {i + 1}: {' '.join(map(str, x)) or '0'}" for i, x in enumerate(cols))
            where = (f"The grid is {n}x{n}. Row clues (row 1 is the top row):\n{rc}\n"
                     f"Column clues (column 1 is the leftmost):\n{cc}")
        else:
            where = (f"The image shows the {n}x{n} grid with the row clues on the left and the "
                     f"column clues on top.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the solved grid: one line per row, "
                f"top to bottom, `X` for a filled cell and `.` for an empty one, no spaces. "
                f"For example, a 3x4 grid would be written as\nX..X\n.XX.\nXX.X")

    def skeleton(self, state):
        rows, cols = state
        n = len(rows)
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        steps = [step("rule", self.RULES),
                 step("read", "Row clues: " + "; ".join(f"row {i + 1}: {' '.join(map(str, x)) or '0'}"
                                                       for i, x in enumerate(rows))
                      + ". Column clues: " + "; ".join(f"column {i + 1}: {' '.join(map(str, x)) or '0'}"
                                                       for i, x in enumerate(cols)) + ".")]
        steps += capped_steps(tr)
        sol = srch.solutions[0]
        grid = ["".join("X" if sol[r * n + c] else "." for c in range(n)) for r in range(n)]
        steps.append(step("check", "Reading the runs back: rows give "
                          + "; ".join(" ".join(map(str, runs(sol[r * n:(r + 1) * n]))) or "0"
                                      for r in range(n))
                          + " and columns give "
                          + "; ".join(" ".join(map(str, runs(sol[c::n]))) or "0" for c in range(n))
                          + ", exactly the clues."))
        steps.append(step("answer", "\n".join(grid)))
        return steps


TASK = Nonogram()
