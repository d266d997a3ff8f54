"""Kukurasu: shade cells of an n x n grid so that, in every row, the column numbers (1..n)
of the black cells add up to the row's clue, and in every column the row numbers of the
black cells add up to the column's clue.

Levels: size 3/4/5/6/7. A random grid is drawn (each row black with a chance of 30-70%, as
the official generator does, and no empty row or column); its sums are the clues. The
solver (one pattern constraint per row and per column: the 0/1 rows whose weighted sum is
the clue) counts solutions up to 2 and the grid is redrawn until there is exactly one
(measured: 99% of 4x4 and ~75% of 7x7 draws are unique already).

Official state: {'row_sums', 'col_sums', 'size'}. The official release also put the answer
grid there (key 'solution'); ours never does, and reading an official state drops it.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import product

from . import draw, formats
from ._latin import GridCSP, TupleConstraint, count_solutions, parse_int_grid, trace_steps
from .base import Task, parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
WHITE, BLACK = 1, 2   # solver values: bit 0 = white, bit 1 = black


@lru_cache(maxsize=None)
def _patterns(n, total):
    """The rows of n cells (as solver value masks) whose black cells' positions sum to total."""
    return [tuple(1 << (BLACK - 1) if b else 1 << (WHITE - 1) for b in bs)
            for bs in product((0, 1), repeat=n) if sum(i + 1 for i, b in enumerate(bs) if b) == total]


def build_csp(state, trace=False):
    n = state["size"]
    cons = [TupleConstraint([r * n + c for c in range(n)], None,
                            f"row {r + 1}'s clue {state['row_sums'][r]}",
                            masks=_patterns(n, state["row_sums"][r])) for r in range(n)]
    cons += [TupleConstraint([r * n + c for r in range(n)], None,
                             f"column {c + 1}'s clue {state['col_sums'][c]}",
                             masks=_patterns(n, state["col_sums"][c])) for c in range(n)]
    return GridCSP(n, n, 2, constraints=cons, trace=trace,
                   val_text=lambda v: "black (1)" if v == BLACK else "white (0)")


def sums(grid):
    n = len(grid)
    return ([sum(c + 1 for c in range(n) if grid[r][c]) for r in range(n)],
            [sum(r + 1 for r in range(n) if grid[r][c]) for c in range(n)])


def _show(n):
    def show(dom):
        return "\n".join(" ".join(("1" if dom[r * n + c] == 2 else "0") if dom[r * n + c] != 3 else "."
                                  for c in range(n)) for r in range(n))
    return show


class Kukurasu(Task):
    name = "kukurasu"
    official = "Kukurasu"
    group = "Puzzles"
    answer_shape = formats.GRID

    def make(self, rng, level):
        n = SIZES[level]
        draws = 0
        while True:
            draws += 1
            grid = [[1 if rng.random() < p else 0 for _ in range(n)]
                    for p in [0.3 + 0.4 * rng.random() for _ in range(n)]]
            rs, cs = sums(grid)
            if 0 in rs or 0 in cs:
                continue
            state = {"row_sums": rs, "col_sums": cs, "size": n}
            if count_solutions(build_csp(state), 2) == 1:
                black = sum(map(sum, grid))
                return state, grid, {"size": n, "black_cells": black, "draws_for_uniqueness": draws}

    def solve(self, state):
        n = state["size"]
        sols = build_csp(state).solve(1)
        return [[1 if sols[0][r * n + c] == BLACK else 0 for c in range(n)] for r in range(n)] if sols else None

    def format_answer(self, solution):
        return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in solution) + "]"

    def check(self, answer, state):
        n = state["size"]
        grid = parse_int_grid(answer, n)
        if grid is None or any(v not in (0, 1) for row in grid for v in row):
            return False
        rs, cs = sums(grid)
        return rs == list(state["row_sums"]) and cs == list(state["col_sums"])

    def render(self, state):
        n = state["size"]
        cell = 56
        img = draw.grid([[""] * n for _ in range(n)], cell=cell, size=22, caption=f"Kukurasu {n}x{n}",
                        right=[str(v) for v in state["row_sums"]], bottom=[str(v) for v in state["col_sums"]])
        d = draw.ImageDraw.Draw(img)
        ox, oy = cell, cell + 34          # draw.grid's layout: a clue margin of one cell, caption 34 px
        for i in range(n):                # the weights: column numbers above, row numbers to the left
            draw.center_text(d, (ox + i * cell + cell / 2, oy - cell / 2), i + 1, size=18, fill=draw.GREY)
            draw.center_text(d, (ox - cell / 2, oy + i * cell + cell / 2), i + 1, size=18, fill=draw.GREY)
        return [img]

    def question(self, state, text_only=False):
        n = state["size"]
        rules = (f"Solve this {n}x{n} Kukurasu puzzle: make some cells black. In each row, the column "
                 f"numbers (1 to {n}, left to right) of its black cells must add up to the row's "
                 f"clue; in each column, the row numbers (1 to {n}, top to bottom) of its black "
                 f"cells must add up to the column's clue.")
        if text_only:
            where = (f"Row clues (rows 1 to {n}, top to bottom): {state['row_sums']}\n"
                     f"Column clues (columns 1 to {n}, left to right): {state['col_sums']}")
        else:
            where = ("The image shows the empty grid: the grey numbers above and to the left are the "
                     "column and row numbers, the red numbers to the right of each row and below "
                     "each column are the clues.")
        fmt = ("Answer with the grid as a two-dimensional list, one inner list per row from top to "
               "bottom, 1 for a black cell and 0 for a white one (format example for a 3x3 grid: "
               "[[1, 0, 0], [0, 1, 1], [0, 0, 1]]).")
        return f"{rules}\n\n{where}\n\n{fmt}"


    def state_from_str(self, text):
        v = parse_literal(text)
        if not isinstance(v, dict) or "row_sums" not in v or "col_sums" not in v:
            raise ValueError("kukurasu: expected a dict with row_sums, col_sums, size")
        rs, cs = [int(x) for x in v["row_sums"]], [int(x) for x in v["col_sums"]]
        n = int(v.get("size") or len(rs))
        if len(rs) != n or len(cs) != n:
            raise ValueError("kukurasu: clue lists do not match the size")
        return {"row_sums": rs, "col_sums": cs, "size": n}   # an official 'solution' key is dropped

    def skeleton(self, state):
        n = state["size"]
        csp = build_csp(state, trace=True)
        sol = csp.solve(1)[0]
        grid = [[1 if sol[r * n + c] == BLACK else 0 for c in range(n)] for r in range(n)]
        steps = [step("rule", f"Row clue = sum of the column numbers (1-{n}) of the row's black cells; "
                              f"column clue = sum of the row numbers of the column's black cells. "
                              f"For each line list the ways to make its clue from distinct numbers "
                              f"1-{n}, keep those consistent with the cells known so far, and fix "
                              f"cells on which all of them agree; guess only when stuck."),
                 step("read", f"{n}x{n} grid. Row clues: {state['row_sums']}. Column clues: {state['col_sums']}.")]
        steps += trace_steps(csp, _show(n))
        rs, cs = sums(grid)
        rows = "; ".join(f"row {r + 1}: " + (" + ".join(str(c + 1) for c in range(n) if grid[r][c]) or "0")
                         + f" = {rs[r]}" for r in range(n))
        cols = "; ".join(f"column {c + 1}: " + (" + ".join(str(r + 1) for r in range(n) if grid[r][c]) or "0")
                         + f" = {cs[c]}" for c in range(n))
        ok = rs == state["row_sums"] and cs == state["col_sums"]
        steps.append(step("check", "Grid (1 = black):\n" + "\n".join(" ".join(map(str, r)) for r in grid)
                          + f"\n{rows}.\n{cols}." + (" All clues match." if ok else " A clue fails.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


TASK = Kukurasu()
