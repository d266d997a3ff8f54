"""Skyscrapers: an n x n Latin square of building heights 1..n with visibility clues on the
four sides; a clue is how many buildings are seen from that side (taller ones hide shorter
ones behind them).

Levels: n = 3/4/5/6/7. As in the official release every clue is given (4n of them), read off
a random Latin square. Uniqueness is NOT promised (nor is it in the official task): a full clue
set is often satisfied by several grids (measured with the solver and a brute-force count:
about 1 in 4 puzzles at n = 5 and most at n = 6-7 have more than one solution), so the
verifier accepts any Latin square that meets every clue. Official states may mark a missing
clue with 0 or None; both are read as "no clue".

Solver: each line with a clue is a constraint listing the arrangements of 1..n whose
visibility from both ends matches; propagation keeps the heights that some remaining
arrangement allows, alternating with the Latin-square rules, then MRV search.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import permutations

from . import draw
from ._latin import (GridCSP, LatinTask, TupleConstraint, format_example,
                     latin_units, random_latin, show_dom, trace_steps)
from .base import parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
SIDES = ("top", "bottom", "left", "right")


def visible(line) -> int:
    seen, top = 0, 0
    for h in line:
        if h > top:
            seen, top = seen + 1, h
    return seen


@lru_cache(maxsize=None)
def _perms(n):
    return [(p, visible(p), visible(p[::-1])) for p in permutations(range(1, n + 1))]


@lru_cache(maxsize=None)
def _arrangements(n, a, b):
    """The arrangements of 1..n seeing a from the front and b from the back (0/None = any),
    as tuples of value bitmasks (what TupleConstraint works with)."""
    return [tuple(1 << (v - 1) for v in p) for p, x, y in _perms(n)
            if (not a or x == a) and (not b or y == b)]


def _clue(v):
    return v if isinstance(v, int) and v > 0 else None


def _lines(state):
    """(cells as (r, c) from the first clue's side, first clue, second clue, name) per line."""
    n = state["n"]
    out = []
    for r in range(n):
        out.append(([(r, c) for c in range(n)], _clue(state["left"][r]), _clue(state["right"][r]),
                    f"row {r + 1}", ("left", "right")))
    for c in range(n):
        out.append(([(r, c) for r in range(n)], _clue(state["top"][c]), _clue(state["bottom"][c]),
                    f"column {c + 1}", ("top", "bottom")))
    return out


def build_csp(state, trace=False):
    n = state["n"]
    units, names = latin_units(n)
    cons = []
    for cells, a, b, name, (sa, sb) in _lines(state):
        if not a and not b:
            continue
        clues = ", ".join(f"{s} {v}" for s, v in ((sa, a), (sb, b)) if v)
        cons.append(TupleConstraint([r * n + c for r, c in cells], None,
                                    f"the clues of {name} ({clues})", masks=_arrangements(n, a, b)))
    return GridCSP(n, n, n, units, names, constraints=cons, trace=trace)


def _norm_state(v):
    if not isinstance(v, dict):
        raise ValueError("skyscrapers: expected a dict with n, top, bottom, left, right")
    n = int(v.get("n") or v.get("size") or len(v["top"]))
    out = {"n": n}
    for s in SIDES:
        clues = v.get(s)
        if clues is None:
            clues = [0] * n
        if len(clues) != n:
            raise ValueError(f"skyscrapers: {s} has {len(clues)} clues for n={n}")
        out[s] = [int(x) if x not in (None, "", "0") else 0 for x in clues]
    return out


class Skyscrapers(LatinTask):
    name = "skyscrapers"
    official = "Skyscrapers"

    def size(self, state):
        return state["n"]

    def make(self, rng, level):
        n = SIZES[level]
        grid = random_latin(n, rng)
        cols = [[grid[r][c] for r in range(n)] for c in range(n)]
        state = {"n": n,
                 "top": [visible(col) for col in cols],
                 "bottom": [visible(col[::-1]) for col in cols],
                 "left": [visible(row) for row in grid],
                 "right": [visible(row[::-1]) for row in grid]}
        return state, grid, {"n": n, "clues": 4 * n}

    def solve(self, state):
        n = state["n"]
        sols = build_csp(state).solve(1)
        return [sols[0][r * n:(r + 1) * n] for r in range(n)] if sols else None

    def clues_hold(self, grid, state):
        for cells, a, b, _, _ in _lines(state):
            line = [grid[r][c] for r, c in cells]
            if (a and visible(line) != a) or (b and visible(line[::-1]) != b):
                return False
        return True

    def render(self, state):
        n = state["n"]
        cells = [[""] * n for _ in range(n)]
        side = {s: [str(v) if v else "" for v in state[s]] for s in SIDES}
        return [draw.grid(cells, cell=56, size=24, caption=f"Skyscrapers {n}x{n}", **side)]

    def question(self, state, text_only=False):
        n = state["n"]
        rules = (f"Solve this {n}x{n} Skyscrapers puzzle. Place a building of height 1 to {n} in "
                 f"every cell so that each row and each column contains every height exactly once. "
                 f"A number outside the grid says how many buildings are visible from that side, "
                 f"looking along its row or column: a building hides every lower building behind "
                 f"it.")
        if text_only:
            def fmt(vs):
                return ", ".join(str(v) if v else "-" for v in vs)
            where = (f"The clues ('-' = no clue):\n"
                     f"- top (columns 1 to {n}, looking down): {fmt(state['top'])}\n"
                     f"- bottom (columns 1 to {n}, looking up): {fmt(state['bottom'])}\n"
                     f"- left (rows 1 to {n}, looking right): {fmt(state['left'])}\n"
                     f"- right (rows 1 to {n}, looking left): {fmt(state['right'])}")
        else:
            where = ("The image shows the empty grid with the clues in red around it: above and "
                     "below each column, left and right of each row.")
        fmt = (f"Answer with the heights as a two-dimensional list, one inner list per row from "
               f"top to bottom ({format_example(n)}).")
        return f"{rules}\n\n{where}\n\n{fmt}"


    def state_from_str(self, text):
        return _norm_state(parse_literal(text))

    def skeleton(self, state):
        n = state["n"]
        csp = build_csp(state, trace=True)
        sol = csp.solve(1)[0]
        grid = [sol[r * n:(r + 1) * n] for r in range(n)]
        clue_txt = "\n".join(f"{s}: {state[s]}" for s in SIDES)
        steps = [step("rule", f"Each row and column holds heights 1-{n} once; a clue counts the "
                              f"buildings seen from its side (each one taller than all before "
                              f"it). For each line keep only the arrangements that match its "
                              f"clues and the cells known so far; place the heights all of them "
                              f"agree on; guess only when stuck."),
                 step("read", f"{n}x{n} grid, clues (0 = none):\n{clue_txt}")]
        steps += trace_steps(csp, show_dom(n))
        seen = []
        for cells, a, b, name, (sa, sb) in _lines(state):
            line = [grid[r][c] for r, c in cells]
            seen.append(f"{name} {' '.join(map(str, line))}: sees {visible(line)} from {sa}, "
                        f"{visible(line[::-1])} from {sb}")
        ok = self.clues_hold(grid, state)
        steps.append(step("check", "Grid:\n" + "\n".join(" ".join(map(str, r)) for r in grid)
                          + "\n" + "; ".join(seen)
                          + (" — every clue matches." if ok else " — a clue is violated.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


TASK = Skyscrapers()
