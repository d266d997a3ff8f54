"""Campsite (tents and trees): place tents next to trees so that the row/column counts hold.

Rules (the official ones): every tent is orthogonally next to at least one tree and never on
a tree; tents never touch, not even diagonally; the numbers give how many tents each row and
column holds. There is NO one-tent-per-tree pairing rule (the official rules do not ask for
it), so a tree may serve several tents and a tree may have none.
Levels: size 4x4 ... 8x8 with 3, 5, 7, 9, 12 tents. Uniqueness: proved by the solver
(solutions counted up to two); the verifier checks the rules, so any valid placement passes.
Official state: `{'input_grid': rows of 'X' (empty) / 'T' (tree), 'row_constraints',
'col_constraints'}`. The official release also stores `reference_solution` (the answer!) in
`initial_state`; ours never does. Read back: rows as lists or strings, '.', 'X', '0', '_' for
empty, 'T' for a tree; a leaked `reference_solution` is ignored.
Answer: `[[r, c], ...]`, 1-based (row, column), top-left = [1, 1]; (r, c) pairs are read too.
"""
from __future__ import annotations

import json

from . import formats
from ._shade import Search, Trace, board, capped_steps, parse_pairs
from .base import Task, parse_literal, step

SIZES = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8}
TENTS = {1: 3, 2: 5, 3: 7, 4: 9, 5: 12}


def rule_ok(state, tents) -> bool:
    g = state["input_grid"]
    n, m = len(g), len(g[0])
    for r, c in tents:
        if g[r][c] == "T":
            return False
        if not any(0 <= a < n and 0 <= b < m and g[a][b] == "T"
                   for a, b in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))):
            return False
        if any((r + dr, c + dc) in tents for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc):
            return False
    if [sum((r, c) in tents for c in range(m)) for r in range(n)] != list(state["row_constraints"]):
        return False
    return [sum((r, c) in tents for r in range(n)) for c in range(m)] == list(state["col_constraints"])


class Campsite(Task):
    name = "campsite"
    official = "campsite"
    group = "Puzzles"
    answer_shape = formats.CELLS

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        n, k = SIZES[level], TENTS[level]
        tries = 0
        while True:
            tries += 1
            cells = [(r, c) for r in range(n) for c in range(n)]
            rng.shuffle(cells)
            tents = set()
            for r, c in cells:
                if len(tents) == k:
                    break
                if not any((r + dr, c + dc) in tents for dr in (-1, 0, 1) for dc in (-1, 0, 1)):
                    tents.add((r, c))
            if len(tents) < k:
                continue
            trees = set()
            for r, c in sorted(tents):
                nbs = [(a, b) for a, b in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                       if 0 <= a < n and 0 <= b < n and (a, b) not in tents]
                if any(x in trees for x in nbs) and rng.random() < 0.5:
                    continue   # share a tree that is already there
                trees.add(rng.choice(nbs))
            state = {"input_grid": [["T" if (r, c) in trees else "X" for c in range(n)]
                                    for r in range(n)],
                     "row_constraints": [sum((r, c) in tents for c in range(n)) for r in range(n)],
                     "col_constraints": [sum((r, c) in tents for r in range(n)) for c in range(n)]}
            srch = self._search(state, limit=2, node_cap=5000)
            if len(srch.solutions) == 1 and srch.exhausted:
                sol = sorted([r + 1, c + 1] for r, c in tents)
                return state, sol, {"size": n, "tents": k, "trees": len(trees),
                                    "search_nodes": srch.nodes, "tries": tries}

    # ---- solver -------------------------------------------------------------------------------
    def _search(self, state, limit=2, trace=None, node_cap=200_000):
        g = state["input_grid"]
        n, m = len(g), len(g[0])
        N = n * m
        rclue, cclue = state["row_constraints"], state["col_constraints"]
        cand = [g[i // m][i % m] != "T" and any(
            0 <= a < n and 0 <= b < m and g[a][b] == "T"
            for a, b in ((i // m - 1, i % m), (i // m + 1, i % m), (i // m, i % m - 1), (i // m, i % m + 1)))
            for i in range(N)]
        kings = [[(r + dr) * m + c + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                  if (dr or dc) and 0 <= r + dr < n and 0 <= c + dc < m]
                 for r in range(n) for c in range(m)]
        lines = [(f"row {r + 1}", rclue[r], [r * m + c for c in range(m)]) for r in range(n)] + \
                [(f"column {c + 1}", cclue[c], [r * m + c for r in range(n)]) for c in range(m)]

        def nm(i):
            return f"[{i // m + 1}, {i % m + 1}]"

        def propagate(s, log):
            while True:
                forced = []
                for i in range(N):
                    if s[i] == 1:
                        for j in kings[i]:
                            if s[j] == 1:
                                if log:
                                    log(f"tents {nm(i)} and {nm(j)} touch")
                                return False
                            if s[j] is None:
                                s[j] = 0
                                forced.append(j)
                if forced:
                    if log:
                        log("Cells touching a tent stay empty: " + ", ".join(map(nm, sorted(set(forced)))))
                    continue
                done = False
                for name, want, cells in lines:
                    have = sum(1 for i in cells if s[i] == 1)
                    segs, cur = [], []
                    for i in cells:
                        if s[i] is None:
                            cur.append(i)
                        elif cur:
                            segs.append(cur)
                            cur = []
                    if cur:
                        segs.append(cur)
                    cap = sum((len(x) + 1) // 2 for x in segs)
                    if have > want or have + cap < want:
                        if log:
                            log(f"{name} needs {want} tents but has {have} placed and room for "
                                f"only {cap} more" if have <= want else
                                f"{name} already has {have} tents, more than {want}")
                        return False
                    if not segs:
                        continue
                    if have == want:
                        free = [i for x in segs for i in x]
                        for i in free:
                            s[i] = 0
                        if log:
                            log(f"{name} needs {want} tent{'s' if want != 1 else ''} and already "
                                f"has {have}: " + ", ".join(map(nm, free)) + " empty")
                        done = True
                        break
                    if have + cap == want:
                        on, off = [], []
                        for x in segs:
                            if len(x) % 2:
                                for j, i in enumerate(x):
                                    s[i] = 1 if j % 2 == 0 else 0
                                    (on if j % 2 == 0 else off).append(i)
                        if on or off:
                            if log:
                                log(f"{name} needs {want - have} more tent"
                                    f"{'s' if want - have != 1 else ''}, as many as its open "
                                    f"cells can hold without touching, so the odd stretches are "
                                    f"filled alternately: tent{'s' if len(on) > 1 else ''} at "
                                    + ", ".join(map(nm, on))
                                    + (", " + ", ".join(map(nm, off)) + " empty" if off else ""))
                            done = True
                            break
                if not done:
                    return True

        def choose(s):
            for i in range(N):
                if s[i] is None:
                    return i, (1, 0)
            return None

        def describe(i, v):
            return f"{'a tent' if v else 'no tent'} at {nm(i)}"

        def show(s):
            return "\n".join(" ".join("T" if g[r][c] == "T" else
                                      ("?" if s[r * m + c] is None else ("A" if s[r * m + c] else "."))
                                      for c in range(m)) for r in range(n))
        start = [None if cand[i] else 0 for i in range(N)]
        srch = Search(propagate, choose, describe, show, limit=limit, trace=trace,
                      node_cap=node_cap)
        srch.run(start)
        return srch

    def solve(self, state):
        sols = self._search(state, limit=1).solutions
        if not sols:
            return None
        m = len(state["input_grid"][0])
        return [[i // m + 1, i % m + 1] for i, v in enumerate(sols[0]) if v == 1]

    def format_answer(self, solution):
        return json.dumps(sorted(list(map(list, solution))))

    # ---- verifier -----------------------------------------------------------------------------
    def check(self, answer, state):
        g = state["input_grid"]
        n, m = len(g), len(g[0])
        pairs = parse_pairs(answer, max_pairs=n * m)
        if not pairs or len(set(pairs)) != len(pairs):
            return False
        if any(not (1 <= r <= n and 1 <= c <= m) for r, c in pairs):
            return False
        return rule_ok(state, {(r - 1, c - 1) for r, c in pairs})

    # ---- state strings ------------------------------------------------------------------------

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, str):
            v = parse_literal(v)
        if not isinstance(v, dict):
            raise ValueError("campsite: expected a dict")
        grid = v.get("input_grid", v.get("grid"))
        rows = v.get("row_constraints", v.get("row_clues", v.get("rows")))
        cols = v.get("col_constraints", v.get("col_clues", v.get("cols")))
        out = []
        for row in grid:
            cells = list(row.replace(" ", "")) if isinstance(row, str) else list(row)
            out.append(["T" if str(x).strip() in ("T", "t", "🌲", "tree") else "X" for x in cells])
        n = len(out)
        if not n or any(len(r) != len(out[0]) for r in out):
            raise ValueError("campsite: the grid must be a rectangle")
        rows, cols = [int(x) for x in rows], [int(x) for x in cols]
        if len(rows) != n or len(cols) != len(out[0]):
            raise ValueError("campsite: counts do not match the grid")
        # a leaked `reference_solution` (official records) is deliberately dropped
        return {"input_grid": out, "row_constraints": rows, "col_constraints": cols}

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        g = state["input_grid"]
        n, m = len(g), len(g[0])
        cell = 54 if max(n, m) <= 6 else 48
        trees = [(r, c) for r in range(n) for c in range(m) if g[r][c] == "T"]

        def extra(d, ox, oy):
            for r, c in trees:   # a small fir: two stacked triangles and a trunk
                x, y = ox + c * cell + cell / 2, oy + r * cell
                d.rectangle([x - 3, y + cell * 0.72, x + 3, y + cell * 0.88], fill=(110, 70, 30))
                d.polygon([(x, y + cell * 0.12), (x - cell * 0.26, y + cell * 0.48),
                           (x + cell * 0.26, y + cell * 0.48)], fill=(34, 120, 40))
                d.polygon([(x, y + cell * 0.3), (x - cell * 0.32, y + cell * 0.74),
                           (x + cell * 0.32, y + cell * 0.74)], fill=(34, 120, 40))
        return [board(n, m, cell=cell, right=state["row_constraints"],
                      bottom=state["col_constraints"], index_base=1, caption="Campsite",
                      clue_size=22, extra=extra)]

    RULES = ("Solve the Campsite puzzle: place tents in empty cells of the grid. (1) Every tent "
             "is orthogonally adjacent (up, down, left or right) to at least one tree, and no "
             "tent stands on a tree. (2) Tents never touch each other, not even diagonally. "
             "(3) The number beside each row and below each column is how many tents it "
             "contains. A tree may have several tents next to it, or none.")

    def question(self, state, text_only=False):
        g = state["input_grid"]
        n, m = len(g), len(g[0])
        if text_only:
            rows = "\n".join(" ".join("T" if x == "T" else "." for x in row) for row in g)
            where = (f"The {n}x{m} grid, one row per line from the top ('T' = tree, '.' = empty):\n"
                     f"{rows}\nTents per row (top to bottom): {state['row_constraints']}\n"
                     f"Tents per column (left to right): {state['col_constraints']}")
        else:
            where = (f"The image shows the {n}x{m} grid with the trees, the row counts on the "
                     f"right and the column counts below; the small grey numbers are the row "
                     f"and column numbers, starting from 1.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the list of tent positions as "
                f"[row, column] pairs counted from 1 (the top-left cell is [1, 1]), for example "
                f"[[1, 3], [3, 1]] (this only shows the format).")

    def skeleton(self, state):
        g = state["input_grid"]
        n, m = len(g), len(g[0])
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        trees = [f"[{r + 1}, {c + 1}]" for r in range(n) for c in range(m) if g[r][c] == "T"]
        steps = [step("rule", self.RULES),
                 step("read", f"Trees at {', '.join(trees)}. Tents per row {state['row_constraints']}, "
                      f"per column {state['col_constraints']}."),
                 step("step", "A tent can only stand on an empty cell beside a tree; every other "
                      "cell stays empty ('A' marks a tent below).")]
        steps += capped_steps(tr)
        sol = [[i // m + 1, i % m + 1] for i, v in enumerate(srch.solutions[0]) if v == 1]
        steps.append(step("check", f"{len(sol)} tents, each beside a tree, none touching; every "
                          f"row and column count matches."))
        steps.append(step("answer", self.format_answer(sol)))
        return steps


TASK = Campsite()
