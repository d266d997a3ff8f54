"""Sudoku: a 9x9 grid with 40/36/32/28/24 givens by level and a unique solution.

Generation: a random full grid (the solver filling an empty grid in random value order), then
clues are removed one at a time in random order, each removal kept only if the solver proves
that no other solution appears (it searches for a solution with that cell's value excluded;
none found = still unique). A removal that fails once fails forever (fewer clues only add
solutions), so one pass reaches a minimal puzzle; if that still has more clues than the level
asks for, the pass restarts with a new order (measured: about 2 passes on average at 24).
"""
from __future__ import annotations

from . import draw, formats
from ._latin import Budget, GridCSP, latin_units, parse_int_grid, trace_steps
from .base import Task, parse_literal, step

GIVENS = {1: 40, 2: 36, 3: 32, 4: 28, 5: 24}
BOXES = [[(br * 3 + r) * 9 + bc * 3 + c for r in range(3) for c in range(3)]
         for br in range(3) for bc in range(3)]
_PART = ("1-3", "4-6", "7-9")
BOX_NAMES = [f"the box of rows {_PART[b // 3]} and columns {_PART[b % 3]}" for b in range(9)]
UNITS, NAMES = latin_units(9)
UNITS, NAMES = UNITS + BOXES, NAMES + BOX_NAMES


def _csp(givens, exclude=None, trace=False):
    return GridCSP(9, 9, 9, UNITS, NAMES, givens=givens, exclude=exclude, trace=trace)


def _removable(giv, i, v) -> bool:
    """True when the solver proves no solution puts another digit at cell i (the givens
    without i still determine it). A search past its node budget proves nothing: keep i."""
    try:
        return not GridCSP(9, 9, 9, UNITS, NAMES, givens=giv, exclude={i: v}, max_nodes=3000).solve(1)
    except Budget:
        return False


def _givens(state):
    return {r * 9 + c: v for r, row in enumerate(state) for c, v in enumerate(row) if v}


def valid_solution(grid, state) -> bool:
    if len(grid) != 9 or any(len(r) != 9 for r in grid):
        return False
    flat = [v for row in grid for v in row]
    want = set(range(1, 10))
    if any(v not in want for v in flat):
        return False
    if any({flat[i] for i in unit} != want for unit in UNITS):
        return False
    return all(flat[i] == v for i, v in _givens(state).items())


class Sudoku(Task):
    name = "sudoku"
    official = "sudoku"
    group = "Puzzles"
    answer_shape = formats.GRID

    def make(self, rng, level):
        target = GIVENS[level]
        passes = 0
        while True:
            full = _csp({}).solve(1, rng=rng)[0]
            for _ in range(20):
                passes += 1
                giv = {i: full[i] for i in range(81)}
                order = list(range(81))
                rng.shuffle(order)
                for i in order:
                    if len(giv) <= target:
                        break
                    v = giv.pop(i)
                    if not _removable(giv, i, v):
                        giv[i] = v
                if len(giv) == target:
                    state = [[giv.get(r * 9 + c, 0) for c in range(9)] for r in range(9)]
                    solution = [full[r * 9:(r + 1) * 9] for r in range(9)]
                    return state, solution, {"givens": target, "empty": 81 - target,
                                             "carving_passes": passes}

    def solve(self, state):
        sols = _csp(_givens(state)).solve(1)
        return [sols[0][r * 9:(r + 1) * 9] for r in range(9)] if sols else None

    def format_answer(self, solution):
        return " ".join(str(v) for row in solution for v in row)

    def check(self, answer, state):
        grid = parse_int_grid(answer, 9)
        return grid is not None and valid_solution(grid, state)

    def render(self, state):
        cells = [[str(v) if v else "" for v in row] for row in state]
        return [draw.grid(cells, cell=50, size=24, bold_every=3, caption="Sudoku")]

    def question(self, state, text_only=False):
        rules = ("Solve this Sudoku. Fill every empty cell of the 9x9 grid with a digit from 1 to 9 "
                 "so that each row, each column and each of the nine 3x3 boxes (outlined in bold) "
                 "contains every digit from 1 to 9 exactly once. The given digits stay as they are.")
        if text_only:
            where = ("The grid, one row per line ('.' marks an empty cell):\n"
                     + self.state_to_str(state))
        else:
            where = "The image shows the grid; the empty cells are the ones to fill."
        fmt = ("Give the completed grid as 81 digits in row-major order (the first row from left "
               "to right, then the second row, and so on), separated by single spaces, e.g. "
               "`5 3 4 6 7 8 9 1 2 6 7 2 ...` (all 81 digits).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state):
        return "\n".join(" ".join(str(v) if v else "." for v in row) for row in state)

    def state_from_str(self, text):
        t = text.strip()
        if t.startswith("["):
            v = parse_literal(t)
            grid = [[int(x) if x not in (None, "", ".") else 0 for x in row] for row in v]
        else:
            chars = [ch for ch in t if ch in "0123456789._"]
            if len(chars) != 81:
                raise ValueError(f"sudoku: expected 81 cells, got {len(chars)}")
            grid = [[int(ch) if ch.isdigit() else 0 for ch in chars[r * 9:(r + 1) * 9]] for r in range(9)]
        if len(grid) != 9 or any(len(r) != 9 or any(not 0 <= x <= 9 for x in r) for r in grid):
            raise ValueError("sudoku: not a 9x9 grid of digits")
        return grid

    def skeleton(self, state):
        csp = _csp(_givens(state), trace=True)
        sol = csp.solve(1)[0]
        grid = [sol[r * 9:(r + 1) * 9] for r in range(9)]

        def show(dom):
            return "\n".join(" ".join(str(dom[r * 9 + c].bit_length()) if not dom[r * 9 + c] & (dom[r * 9 + c] - 1)
                                      else "." for c in range(9)) for r in range(9))
        n_giv = len(_givens(state))
        steps = [step("rule", "Each row, column and 3x3 box must hold 1-9 exactly once; givens stay. "
                              "Fill cells whose value is forced (only candidate left, or the only "
                              "place for a digit in a row/column/box); guess only when stuck."),
                 step("read", f"The grid ({n_giv} givens, '.' = empty):\n{self.state_to_str(state)}")]
        steps += trace_steps(csp, show)
        ok = valid_solution(grid, state)
        steps.append(step("check", "Completed grid:\n" + "\n".join(" ".join(map(str, r)) for r in grid)
                          + f"\nEvery row, column and box holds 1-9 once and all {n_giv} givens are "
                          + ("kept." if ok else "NOT kept.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


TASK = Sudoku()
