"""Calcudoku (KenKen): an n x n Latin square cut into cages, each with a target and an
operation; the numbers of a cage combine with the operation to give the target.

Levels: size 3/4/5/6/8. Cages are grown at random (sizes 1-4, mostly 2-3) over a random Latin
square; a two-cell cage gets -, ÷ (only when it divides exactly), + or ×, a larger one + or ×.
The solution is made unique: the solver counts solutions up to 2; when there are two, a cell
where they differ is split off its cage as a one-cell cage (a given), and the rest of that cage
is re-cut into connected pieces with fresh operations; repeat until unique (on average 1-1.5
splits per puzzle; trying another operation for the cage first did not need fewer givens).

Verification: Latin rows/columns and every cage. Subtraction and division of a two-cell cage
work in either order (larger first); division must be exact (the official checker floors it,
so that 7 ÷ 2 would pass as 3 there; not here). A cage of more cells under - or ÷ (never
generated here) reads as "the largest minus / divided by all the others".
"""
from __future__ import annotations

import json
from math import prod

from . import draw
from ._latin import (Budget, GridCSP, LatinTask, TupleConstraint, format_example,
                     latin_units, random_latin, show_dom, trace_steps)
from .base import parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 8}
CAGE_SIZES = ((1, 0.04), (2, 0.48), (3, 0.34), (4, 0.14))
OPS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "x": "*", "X": "*", "×": "*", "·": "*",
       "/": "÷", "÷": "÷", ":": "÷"}
OP_TEXT = {"+": "+", "-": "−", "*": "×", "÷": "÷"}
OP_WORD = {"+": "sum", "-": "difference", "*": "product", "÷": "quotient"}


def cage_value(op: str, vals: list[int]):
    """What the cage's numbers make under `op` (None when not defined, e.g. inexact ÷)."""
    op = OPS.get(str(op).strip(), op)
    if op == "+":
        return sum(vals)
    if op == "*":
        return prod(vals)
    big = max(vals)
    rest = list(vals)
    rest.remove(big)
    if op == "-":
        return big - sum(rest)
    if op == "÷":
        d = prod(rest)
        return big // d if d and big % d == 0 else None
    return None


def cage_tuples(n, cells, op, target):
    """Every assignment of 1..n to the cage's cells (0-based (r, c)) with distinct values in
    a shared row or column that makes the target."""
    k = len(cells)
    clash = [[j for j in range(i) if cells[j][0] == cells[i][0] or cells[j][1] == cells[i][1]]
             for i in range(k)]
    out, cur = [], []

    def rec(i, acc):
        if i == k:
            if cage_value(op, cur) == target:
                out.append(tuple(cur))
            return
        for v in range(1, n + 1):
            if any(cur[j] == v for j in clash[i]):
                continue
            if op == "+" and acc + v + (k - i - 1) > target:
                break
            if op == "*" and (acc * v > target or target % (acc * v)):
                continue
            cur.append(v)
            rec(i + 1, acc + v if op == "+" else acc * v if op == "*" else 0)
            cur.pop()
    rec(0, 0 if op == "+" else 1)
    return out


def _norm_state(v):
    if not isinstance(v, dict) or "regions" not in v:
        raise ValueError("calcudoku: expected a dict with 'size' and 'regions'")
    regions = []
    for reg in v["regions"]:
        cells = [[int(a), int(b)] for a, b in reg["cells"]]
        op = OPS.get(str(reg.get("operator") or "+").strip(), None)
        if op is None:
            raise ValueError(f"calcudoku: unknown operator {reg.get('operator')!r}")
        regions.append({"cells": cells, "operator": op, "target": int(reg["target"])})
    n = int(v.get("size") or max(max(c) for r in regions for c in r["cells"]))
    return {"size": n, "regions": regions}


def _cage_label(reg) -> str:
    if len(reg["cells"]) == 1:
        return str(reg["target"])
    op = OPS.get(str(reg["operator"]).strip(), reg["operator"])
    return f"{reg['target']}{OP_TEXT.get(op, op)}"


def _cells_text(cells) -> str:
    return ", ".join(f"r{r}c{c}" for r, c in cells)


def build_csp(state, trace=False, max_nodes=200_000):
    n = state["size"]
    units, names = latin_units(n)
    cons = []
    for reg in state["regions"]:
        cells0 = [(r - 1, c - 1) for r, c in reg["cells"]]
        tuples = cage_tuples(n, cells0, reg["operator"], reg["target"])
        kind = "one-cell cage" if len(cells0) == 1 else "cage"
        text = f"the {kind} {_cage_label(reg)} ({_cells_text(reg['cells'])})"
        cons.append(TupleConstraint([r * n + c for r, c in cells0], tuples, text))
    return GridCSP(n, n, n, units, names, constraints=cons, trace=trace, max_nodes=max_nodes)


def _grow_cages(n, rng):
    """A random partition of the n x n cells into connected cages."""
    owner = [[-1] * n for _ in range(n)]
    cages, orphans = [], []
    order = [(r, c) for r in range(n) for c in range(n)]
    rng.shuffle(order)
    sizes, weights = zip(*CAGE_SIZES)
    for r0, c0 in order:
        if owner[r0][c0] >= 0:
            continue
        want = rng.choices(sizes, weights)[0]
        cage = [(r0, c0)]
        owner[r0][c0] = len(cages)
        while len(cage) < want:
            front = sorted({(r + dr, c + dc) for r, c in cage for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                            if 0 <= r + dr < n and 0 <= c + dc < n and owner[r + dr][c + dc] < 0})
            if not front:
                break
            r, c = rng.choice(front)
            owner[r][c] = len(cages)
            cage.append((r, c))
        cages.append(cage)
        if len(cage) == 1 and want > 1:
            orphans.append(len(cages) - 1)
    # an orphan (a cell left with no free neighbour) joins the smallest neighbouring cage
    for k in orphans:
        (r, c), = cages[k]
        near = sorted({owner[r + dr][c + dc] for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                       if 0 <= r + dr < n and 0 <= c + dc < n} - {k},
                      key=lambda j: (len(cages[j]), j))
        if near and len(cages[near[0]]) < 4:
            cages[near[0]].append((r, c))
            owner[r][c] = near[0]
            cages[k] = []
    return [c for c in cages if c]


def _components(cells):
    """Connected pieces of a set of cells (orthogonal adjacency), each sorted."""
    left, out = set(cells), []
    for start in sorted(cells):
        if start not in left:
            continue
        comp, stack = [], [start]
        left.discard(start)
        while stack:
            r, c = stack.pop()
            comp.append((r, c))
            for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if nb in left:
                    left.discard(nb)
                    stack.append(nb)
        out.append(sorted(comp))
    return out


def _region(cage, grid, rng):
    vals = [grid[r][c] for r, c in cage]
    if len(cage) == 1:
        op = "+"
    elif len(cage) == 2:
        a, b = max(vals), min(vals)
        opts = [("-", 0.32), ("+", 0.2), ("*", 0.18)] + ([("÷", 0.3)] if a % b == 0 else [])
        op = rng.choices([o for o, _ in opts], [w for _, w in opts])[0]
    else:
        op = rng.choice(["+", "*"])
    return {"cells": [[r + 1, c + 1] for r, c in sorted(cage)], "operator": op,
            "target": cage_value(op, vals)}


class Calcudoku(LatinTask):
    name = "calcudoku"
    official = "Calcudoku"

    def size(self, state):
        return state["size"]

    def make(self, rng, level):
        n = SIZES[level]
        grid = random_latin(n, rng)
        regions = [_region(c, grid, rng) for c in _grow_cages(n, rng)]
        splits = 0
        while True:
            state = {"size": n, "regions": sorted(regions, key=lambda g: g["cells"][0])}
            try:
                sols = build_csp(state, max_nodes=50_000).solve(2)
            except Budget:  # too long a search: treat as ambiguous and add information
                sols = None
            if sols is not None and len(sols) == 1:
                break
            # split off a cell where two solutions differ (after a budget overrun: any cell
            # of the largest cage) as a one-cell cage; re-cut the rest of its cage
            if sols:
                i = rng.choice([i for i in range(n * n) if sols[0][i] != sols[1][i]])
                cell = [i // n + 1, i % n + 1]
            else:
                cell = rng.choice(max(regions, key=lambda g: len(g["cells"]))["cells"])
            reg = next(g for g in regions if cell in g["cells"])
            regions.remove(reg)
            rest = [(r - 1, c - 1) for r, c in reg["cells"] if [r, c] != cell]
            regions.append(_region([(cell[0] - 1, cell[1] - 1)], grid, rng))
            regions += [_region(p, grid, rng) for p in _components(rest)]
            splits += 1
        sizes = [len(g["cells"]) for g in state["regions"]]
        meta = {"size": n, "cages": len(sizes), "single_cells": sizes.count(1),
                "largest_cage": max(sizes), "splits_for_uniqueness": splits}
        return state, grid, meta

    def solve(self, state):
        n = state["size"]
        sols = build_csp(state).solve(1)
        return [sols[0][r * n:(r + 1) * n] for r in range(n)] if sols else None

    def clues_hold(self, grid, state):
        for reg in state["regions"]:
            vals = [grid[r - 1][c - 1] for r, c in reg["cells"]]
            if cage_value(reg["operator"], vals) != reg["target"]:
                return False
        return True

    # ---- drawing ------------------------------------------------------------------------
    def render(self, state):
        n = state["size"]
        cell = 72 if n <= 6 else 64
        pad, cap = 30, 40
        img, d = draw.canvas(n * cell + 2 * pad, n * cell + 2 * pad + cap)
        draw.title(d, img.width, f"Calcudoku {n}x{n}", size=20, y=20)
        ox, oy = pad, pad + cap
        owner = {}
        for k, reg in enumerate(state["regions"]):
            for r, c in reg["cells"]:
                owner[(r - 1, c - 1)] = k
        palette = [(232, 242, 255), (255, 236, 230), (234, 248, 234), (255, 248, 224), (243, 234, 252)]
        colour = {}
        for k in range(len(state["regions"])):   # greedy colouring: neighbouring cages differ
            near = {colour.get(owner.get((r + dr - 1, c + dc - 1))) for r, c in state["regions"][k]["cells"]
                    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))}
            colour[k] = next(i for i in range(len(palette)) if i not in near)
        for (r, c), k in owner.items():
            x, y = ox + c * cell, oy + r * cell
            d.rectangle([x, y, x + cell, y + cell], fill=palette[colour[k]], outline=draw.GREY)
        for r in range(n):
            for c in range(n):
                x, y = ox + c * cell, oy + r * cell
                k = owner.get((r, c))
                if c == n - 1 or owner.get((r, c + 1)) != k:
                    d.line([(x + cell, y), (x + cell, y + cell)], fill=draw.BLACK, width=3)
                if r == n - 1 or owner.get((r + 1, c)) != k:
                    d.line([(x, y + cell), (x + cell, y + cell)], fill=draw.BLACK, width=3)
                if c == 0:
                    d.line([(x, y), (x, y + cell)], fill=draw.BLACK, width=3)
                if r == 0:
                    d.line([(x, y), (x + cell, y)], fill=draw.BLACK, width=3)
        fs = 17
        for reg in state["regions"]:
            r, c = min(reg["cells"])
            x, y = ox + (c - 1) * cell + 5, oy + (r - 1) * cell + 4
            label = str(reg["target"])
            d.text((x, y), label, font=draw.font(fs), fill=draw.BLACK)
            if len(reg["cells"]) > 1:
                w = draw.text_size(d, label, fs)[0]
                _op_glyph(d, x + w + 3, y + 2, reg["operator"], 13)
        return [img]

    # ---- text ---------------------------------------------------------------------------
    def question(self, state, text_only=False):
        n = state["size"]
        rules = (f"Solve this {n}x{n} Calcudoku puzzle. Fill the grid with the numbers 1 to {n} so "
                 f"that every row and every column contains each number exactly once. The grid is "
                 f"divided into cages; each cage shows a target and an operation (+, −, ×, ÷), and "
                 f"the numbers in the cage must give the target with that operation. For − and ÷ "
                 f"(two-cell cages) take the larger number first: the difference or the exact "
                 f"quotient of the two. A cage with no operation is a single cell holding its "
                 f"target. Numbers may repeat inside a cage if they are in different rows and "
                 f"columns.")
        if text_only:
            lines = ["The cages (cells written (row, column), counting from 1 at the top left):"]
            for reg in state["regions"]:
                cells = ", ".join(f"({r},{c})" for r, c in reg["cells"])
                if len(reg["cells"]) == 1:
                    lines.append(f"- {cells}: the number {reg['target']}")
                else:
                    lines.append(f"- {cells}: {OP_WORD[reg['operator']]} {reg['target']} "
                                 f"({reg['target']}{OP_TEXT[reg['operator']]})")
            where = "\n".join(lines)
        else:
            where = ("The image shows the grid: thick lines outline the cages, and the top-left "
                     "cell of each cage shows its target followed by its operation.")
        fmt = (f"Answer with the filled grid as a two-dimensional list, one inner list per row "
               f"from top to bottom ({format_example(n)}).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state):
        return json.dumps(state, ensure_ascii=False)

    def state_from_str(self, text):
        return _norm_state(parse_literal(text))

    def skeleton(self, state):
        n = state["size"]
        csp = build_csp(state, trace=True)
        sol = csp.solve(1)[0]
        grid = [sol[r * n:(r + 1) * n] for r in range(n)]
        cages = "\n".join(f"- {_cage_label(g)}: {_cells_text(g['cells'])}" for g in state["regions"])
        steps = [step("rule", f"Rows and columns hold 1-{n} once each; each cage's numbers must make "
                              f"its target with its operation (− and ÷ larger first, ÷ exact). "
                              f"First list which values each cage allows, then place forced cells, "
                              f"guessing only when stuck."),
                 step("read", f"{n}x{n} grid, {len(state['regions'])} cages:\n{cages}")]
        steps += trace_steps(csp, show_dom(n))
        checks = []
        for g in state["regions"]:
            vals = [grid[r - 1][c - 1] for r, c in g["cells"]]
            if len(vals) == 1:
                checks.append(f"{_cells_text(g['cells'])} = {vals[0]}")
            else:
                shown = sorted(vals, reverse=True) if g["operator"] in "-÷" else vals
                sign = f" {OP_TEXT[g['operator']]} "
                checks.append(f"{sign.join(map(str, shown))} = {cage_value(g['operator'], vals)}")
        ok = self.clues_hold(grid, state)
        steps.append(step("check", "Grid:\n" + "\n".join(" ".join(map(str, r)) for r in grid)
                          + f"\nEach row and column holds 1-{n} once. Cages: " + "; ".join(checks)
                          + (" — all targets met." if ok else " — a target is missed.")))
        steps.append(step("answer", self.format_answer(grid)))
        return steps


def _op_glyph(d, x, y, op, s):
    """The operation sign drawn with lines (the bundled font has no × or ÷ glyph)."""
    w = 3
    cx, cy = x + s / 2, y + s / 2
    if op in "+-÷":
        d.line([(x, cy), (x + s, cy)], fill=draw.BLACK, width=w)
    if op == "+":
        d.line([(cx, y), (cx, y + s)], fill=draw.BLACK, width=w)
    if op == "*":
        d.line([(x + 1, y + 1), (x + s - 1, y + s - 1)], fill=draw.BLACK, width=w)
        d.line([(x + 1, y + s - 1), (x + s - 1, y + 1)], fill=draw.BLACK, width=w)
    if op == "÷":
        for yy in (y + 1.5, y + s - 1.5):
            d.ellipse([cx - 2, yy - 2, cx + 2, yy + 2], fill=draw.BLACK)


TASK = Calcudoku()
