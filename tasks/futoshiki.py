"""Futoshiki: an n x n Latin square with some digits given and inequality signs between
some neighbouring cells.

Levels: size 3/4/5/6/7; the share of given digits falls (.50/.40/.35/.25/.20 of the cells)
while the chance of a sign between two neighbours rises (.20/.25/.30/.35/.40), as in the
official generator. Then the solver counts solutions up to 2; while there are two, one
cell where they differ gets a new clue (a sign to a neighbour when one is free, else its
digit), so the final puzzle has exactly one solution, proven by the solver.

Official state: {'grid' (0 = empty), 'inequalities': [{'cell1': [r, c], 'cell2': [r, c],
'symbol': '<' or '>'}], 'size'}, cells 0-based; 'cell1 symbol cell2' holds between values.
"""
from __future__ import annotations


from . import draw
from ._latin import (GridCSP, LatinTask, LessThan, format_example, latin_units, random_latin,
                     show_dom, trace_steps)
from .base import parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
GIVEN_SHARE = {1: 0.50, 2: 0.40, 3: 0.35, 4: 0.25, 5: 0.20}
SIGN_CHANCE = {1: 0.20, 2: 0.25, 3: 0.30, 4: 0.35, 5: 0.40}


def _rc(cell):
    return f"r{cell[0] + 1}c{cell[1] + 1}"


def _less_pairs(state):
    """Each inequality as (smaller cell, larger cell), cells as (r, c) 0-based."""
    out = []
    for q in state["inequalities"]:
        a, b = tuple(q["cell1"]), tuple(q["cell2"])
        out.append((a, b) if q["symbol"] == "<" else (b, a))
    return out


def build_csp(state, trace=False):
    n = state["size"]
    units, names = latin_units(n)
    cons = [LessThan(a[0] * n + a[1], b[0] * n + b[1], f"the sign {_rc(a)} < {_rc(b)}")
            for a, b in _less_pairs(state)]
    givens = {r * n + c: v for r, row in enumerate(state["grid"]) for c, v in enumerate(row) if v}
    return GridCSP(n, n, n, units, names, constraints=cons, givens=givens, trace=trace)


def _norm_state(v):
    if not isinstance(v, dict) or "grid" not in v:
        raise ValueError("futoshiki: expected a dict with grid, inequalities, size")
    grid = [[int(x) if x not in (None, "", ".") else 0 for x in row] for row in v["grid"]]
    n = int(v.get("size") or len(grid))
    if len(grid) != n or any(len(r) != n for r in grid):
        raise ValueError("futoshiki: grid is not size x size")
    ineqs = []
    for q in v.get("inequalities") or []:
        sym = str(q["symbol"]).strip()
        if sym not in "<>" or not sym:
            raise ValueError(f"futoshiki: unknown symbol {sym!r}")
        ineqs.append({"cell1": [int(x) for x in q["cell1"]], "cell2": [int(x) for x in q["cell2"]],
                      "symbol": sym})
    return {"grid": grid, "inequalities": ineqs, "size": n}


class Futoshiki(LatinTask):
    name = "futoshiki"
    official = "futoshiki"

    def size(self, state):
        return state["size"]

    def make(self, rng, level):
        n = SIZES[level]
        sol = random_latin(n, rng)
        pairs = [((r, c), (r, c + 1)) for r in range(n) for c in range(n - 1)] + \
                [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(n)]
        signs = {p for p in pairs if rng.random() < SIGN_CHANCE[level]}
        cells = [(r, c) for r in range(n) for c in range(n)]
        given = set(rng.sample(cells, max(1, int(n * n * GIVEN_SHARE[level]))))
        added = 0
        while True:
            state = self._state(n, sol, given, signs)
            sols = build_csp(state).solve(2)
            if len(sols) == 1:
                break
            diff = [(i // n, i % n) for i in range(n * n) if sols[0][i] != sols[1][i]]
            cell = rng.choice(diff)
            free = [p for p in pairs if cell in p and p not in signs]
            if free and rng.random() < 0.7:
                signs.add(rng.choice(free))
            else:
                given.add(cell)
            added += 1
        meta = {"size": n, "givens": len(given), "inequalities": len(signs),
                "clues_added_for_uniqueness": added}
        return state, sol, meta

    @staticmethod
    def _state(n, sol, given, signs):
        grid = [[sol[r][c] if (r, c) in given else 0 for c in range(n)] for r in range(n)]
        ineqs = [{"cell1": list(a), "cell2": list(b),
                  "symbol": "<" if sol[a[0]][a[1]] < sol[b[0]][b[1]] else ">"} for a, b in sorted(signs)]
        return {"grid": grid, "inequalities": ineqs, "size": n}

    def solve(self, state):
        n = state["size"]
        sols = build_csp(state).solve(1)
        return [sols[0][r * n:(r + 1) * n] for r in range(n)] if sols else None

    def clues_hold(self, grid, state):
        for r, row in enumerate(state["grid"]):
            for c, v in enumerate(row):
                if v and grid[r][c] != v:
                    return False
        n = state["size"]
        for a, b in _less_pairs(state):
            if not all(0 <= x < n for x in a + b) or not grid[a[0]][a[1]] < grid[b[0]][b[1]]:
                return False
        return True

    # ---- drawing ------------------------------------------------------------------------
    def render(self, state):
        n = state["size"]
        cell, gap, pad, cap = 56, 30, 30, 40
        side = n * cell + (n - 1) * gap
        img, d = draw.canvas(side + 2 * pad, side + 2 * pad + cap)
        draw.title(d, img.width, f"Futoshiki {n}x{n}", size=20, y=20)

        def corner(r, c):
            return pad + c * (cell + gap), pad + cap + r * (cell + gap)
        for r in range(n):
            for c in range(n):
                x, y = corner(r, c)
                d.rectangle([x, y, x + cell, y + cell], fill=draw.WHITE, outline=draw.BLACK, width=2)
                v = state["grid"][r][c]
                if v:
                    draw.center_text(d, (x + cell / 2, y + cell / 2), v, size=28)
        for a, b in _less_pairs(state):
            (xa, ya), (xb, yb) = corner(*a), corner(*b)
            cx, cy = (xa + xb) / 2 + cell / 2, (ya + yb) / 2 + cell / 2
            _chevron(d, cx, cy, (xa - xb, ya - yb))
        return [img]

    # ---- text ---------------------------------------------------------------------------
    def question(self, state, text_only=False):
        n = state["size"]
        rules = (f"Solve this {n}x{n} Futoshiki puzzle. Fill the grid with the numbers 1 to {n} so "
                 f"that every row and every column contains each number exactly once. The given "
                 f"numbers stay, and every inequality sign between two neighbouring cells must "
                 f"hold (the sign points to the smaller number).")
        if text_only:
            rows = "\n".join(" ".join(str(v) if v else "." for v in row) for row in state["grid"])
            signs = "\n".join(f"- (row {a[0] + 1}, column {a[1] + 1}) < (row {b[0] + 1}, column {b[1] + 1})"
                              for a, b in _less_pairs(state)) or "(none)"
            where = (f"The grid, one row per line ('.' = empty):\n{rows}\n\nThe inequalities "
                     f"(rows and columns counted from 1 at the top left):\n{signs}")
        else:
            where = ("The image shows the grid: given numbers in their cells and the inequality "
                     "signs (<, >, ∧, ∨) in the gaps between neighbouring cells.")
        fmt = (f"Answer with the filled grid as a two-dimensional list, one inner list per row "
               f"from top to bottom ({format_example(n)}).")
        return f"{rules}\n\n{where}\n\n{fmt}"


    def state_from_str(self, text):
        return _norm_state(parse_literal(text))

    def skeleton(self, state):
        n = state["size"]
        csp = build_csp(state, trace=True)
        sol = csp.solve(1)[0]
        grid = [sol[r * n:(r + 1) * n] for r in range(n)]
        rows = "\n".join(" ".join(str(v) if v else "." for v in row) for row in state["grid"])
        signs = ", ".join(f"{_rc(a)} < {_rc(b)}" for a, b in _less_pairs(state)) or "none"
        steps = [step("rule", f"Rows and columns hold 1-{n} once each, givens stay, and each sign "
                              f"holds. A sign bounds both cells by the other's extreme candidates; "
                              f"combine that with the Latin rules, place forced cells, guess only "
                              f"when stuck."),
                 step("read", f"Grid ('.' = empty):\n{rows}\nSigns: {signs}.")]
        steps += trace_steps(csp, show_dom(n))
        ok = self.clues_hold(grid, state)
        checks = ", ".join(f"{grid[a[0]][a[1]]} < {grid[b[0]][b[1]]}" for a, b in _less_pairs(state))
        steps.append(step("check", "Grid:\n" + "\n".join(" ".join(map(str, r)) for r in grid)
                          + f"\nRows and columns hold 1-{n} once, the givens are kept, and the signs read "
                          + (checks or "(none)") + (" — all true." if ok else " — one fails.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


def _chevron(d, cx, cy, toward):
    """An inequality sign centred at (cx, cy) whose tip points along `toward` (to the smaller
    cell): '<' or '>' between columns, '∧' or '∨' between rows."""
    s = 10
    dx, dy = (1 if toward[0] > 0 else -1 if toward[0] < 0 else 0), (1 if toward[1] > 0 else -1 if toward[1] < 0 else 0)
    tip = (cx + dx * s, cy + dy * s)
    if dx:
        arms = [(cx - dx * s, cy - s), (cx - dx * s, cy + s)]
    else:
        arms = [(cx - s, cy - dy * s), (cx + s, cy - dy * s)]
    d.line([arms[0], tip, arms[1]], fill=draw.RED, width=4, joint="curve")


TASK = Futoshiki()
