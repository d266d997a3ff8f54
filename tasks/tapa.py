"""Tapa: shade cells to build one connected wall around number clues.

Rules: a clue cell is never shaded; the numbers of a clue are the sizes of the groups that
the shaded cells among its (up to 8) surrounding cells form, where shaded neighbours that
touch - also diagonally - belong to one group (this is how the official MM-HELIX generator
and evaluator group them; a single number n means n shaded neighbours in one touching
group, several numbers mean several separate groups, in any order); all shaded cells are
orthogonally connected; no 2x2 block is fully shaded.

Levels: size 3x3 ... 7x7. Clues are thinned from "every white cell" as far as the solution
stays unique (proved by the solver). Levels 1-2 use only single-number clues (as the
official set does); from level 3 on, multi-number clues appear.
Official state: rows like `.11` joined by newlines, one character per cell ('.' = empty).
A multi-number clue cannot be written in one character, so a grid that has one is written
with the cells of a row separated by spaces and the numbers of a clue joined by '/':
`. 1/3 . 2`. Read back: both, plus '13' / '1,3' / '[1, 3]' clue spellings and JSON lists.
Answer: shaded cells `(r,c), (r,c), ...`, 0-based (row, column) as the official prompt says.
"""
from __future__ import annotations

import re
from functools import lru_cache

from . import draw, formats
from ._shade import Search, Trace, board, capped_steps, components, connected, cut_cells, parse_pairs
from .base import Task, parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def groups_of(offsets) -> list[int]:
    """Sorted sizes of the touching (8-connected) groups among the given neighbour offsets."""
    offs = set(offsets)
    seen, out = set(), []
    for o in sorted(offs):
        if o in seen:
            continue
        seen.add(o)
        todo, k = [o], 0
        while todo:
            a, b = todo.pop()
            k += 1
            for p in offs:
                if p not in seen and max(abs(p[0] - a), abs(p[1] - b)) == 1:
                    seen.add(p)
                    todo.append(p)
        out.append(k)
    return sorted(out) or [0]


@lru_cache(maxsize=None)
def clue_masks(offsets: tuple, clue: tuple) -> tuple:
    """The subsets (bitmasks over `offsets`) of neighbours whose shading gives `clue`."""
    out = []
    for m in range(1 << len(offsets)):
        if groups_of([offsets[j] for j in range(len(offsets)) if m >> j & 1]) == list(clue):
            out.append(m)
    return tuple(out)


def clue_of(shaded, r, c, n) -> list[int]:
    return groups_of([(dr, dc) for dr, dc in RING
                      if 0 <= r + dr < n and 0 <= c + dc < n and (r + dr, c + dc) in shaded])


def rule_ok(state, shaded) -> bool:
    n = len(state)
    if not shaded or not connected(shaded):
        return False
    for r in range(n - 1):
        for c in range(n - 1):
            if {(r, c), (r + 1, c), (r, c + 1), (r + 1, c + 1)} <= shaded:
                return False
    for r in range(n):
        for c in range(n):
            if state[r][c] is not None:
                if (r, c) in shaded or clue_of(shaded, r, c, n) != sorted(state[r][c]):
                    return False
    return True


def clue_str(clue) -> str:
    return "/".join(map(str, clue))


class Tapa(Task):
    name = "tapa"
    official = "tapa"
    group = "Puzzles"
    answer_shape = formats.CELLS

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        n = SIZES[level]
        tries = 0
        while True:
            tries += 1
            shaded = self._wall(rng, n, rng.uniform(0.42, 0.55))
            whites = [(r, c) for r in range(n) for c in range(n) if (r, c) not in shaded]
            if not self._open_to_border(whites, n):
                # the official generator also keeps every unshaded cell connected to the
                # border; our gold answers satisfy that too, in case a scorer checks it
                continue
            clues = {w: clue_of(shaded, w[0], w[1], n) for w in whites}
            order = list(whites)
            rng.shuffle(order)
            if level <= 2:   # official style: try hardest to drop multi-number clues
                order.sort(key=lambda w: len(clues[w]) == 1)
            grid = [[None] * n for _ in range(n)]
            for (r, c), cl in clues.items():
                grid[r][c] = cl
            for (r, c) in order:
                keep = grid[r][c]
                grid[r][c] = None
                srch = self._search(grid, limit=2, node_cap=3000)
                if len(srch.solutions) != 1 or not srch.exhausted:
                    grid[r][c] = keep
            if level <= 2 and any(len(x) > 1 for row in grid for x in row if x is not None):
                continue
            if not any(x is not None and x != [0] for row in grid for x in row):
                continue
            srch = self._search(grid, limit=2)
            assert len(srch.solutions) == 1
            sol = sorted([r, c] for r, c in shaded)
            nclues = sum(x is not None for row in grid for x in row)
            return grid, sol, {"size": n, "shaded": len(sol), "clues": nclues,
                               "multi_clues": sum(1 for row in grid for x in row
                                                  if x is not None and len(x) > 1),
                               "search_nodes": srch.nodes, "tries": tries}

    @staticmethod
    def _open_to_border(whites, n):
        whites = set(whites)
        todo = [w for w in whites if w[0] in (0, n - 1) or w[1] in (0, n - 1)]
        seen = set(todo)
        while todo:
            r, c = todo.pop()
            for nb in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if nb in whites and nb not in seen:
                    seen.add(nb)
                    todo.append(nb)
        return len(seen) == len(whites)

    @staticmethod
    def _wall(rng, n, frac):
        target = max(2, int(n * n * frac))
        shaded = {(rng.randrange(n), rng.randrange(n))}
        while len(shaded) < target:
            front = sorted({(r + dr, c + dc) for r, c in shaded
                            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                            if 0 <= r + dr < n and 0 <= c + dc < n} - shaded)
            ok = []
            for r, c in front:
                bad = False
                for a in (r - 1, r):
                    for b in (c - 1, c):
                        if {(a, b), (a + 1, b), (a, b + 1), (a + 1, b + 1)} - {(r, c)} <= shaded \
                                and 0 <= a < n - 1 and 0 <= b < n - 1:
                            bad = True
                if not bad:
                    ok.append((r, c))
            rng.shuffle(ok)
            for cell in ok:   # the first candidate that leaves no unshaded pocket
                whites = [(r, c) for r in range(n) for c in range(n)
                          if (r, c) not in shaded and (r, c) != cell]
                if Tapa._open_to_border(whites, n):
                    shaded.add(cell)
                    break
            else:
                break
        return shaded

    # ---- solver -------------------------------------------------------------------------------
    def _search(self, grid, limit=2, trace=None, node_cap=200_000):
        n = len(grid)
        N = n * n
        adj = [[(r + dr) * n + c + dc for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < n and 0 <= c + dc < n] for r in range(n) for c in range(n)]
        clues = []   # (cell, clue, neighbour indices, allowed masks)
        for r in range(n):
            for c in range(n):
                if grid[r][c] is not None:
                    offs = tuple((dr, dc) for dr, dc in RING if 0 <= r + dr < n and 0 <= c + dc < n)
                    nb = [(r + dr) * n + c + dc for dr, dc in offs]
                    clues.append((r * n + c, tuple(sorted(grid[r][c])), nb,
                                  clue_masks(offs, tuple(sorted(grid[r][c])))))
        windows = [(r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1)
                   for r in range(n - 1) for c in range(n - 1)]

        def nm(i):
            return f"({i // n},{i % n})"

        clues_at = [[] for _ in range(N)]
        for q, (_, _, nb, _) in enumerate(clues):
            for i in nb:
                clues_at[i].append(q)

        def propagate(s, log):
            live = [x[3] for x in clues]            # arrangements still possible per clue
            dirty = list(range(len(clues)))         # clues whose neighbourhood changed
            is_dirty = [True] * len(clues)

            def touched(cells):
                for i in cells:
                    for q in clues_at[i]:
                        if not is_dirty[q]:
                            is_dirty[q] = True
                            dirty.append(q)
            while True:
                while dirty:
                    q = dirty.pop(0)
                    is_dirty[q] = False
                    cell, clue, nb, _ = clues[q]
                    k1 = k0 = 0
                    for j, i in enumerate(nb):
                        if s[i] == 1:
                            k1 |= 1 << j
                        elif s[i] == 0:
                            k0 |= 1 << j
                    valid = [m for m in live[q] if not (m & k0) and (m & k1) == k1]
                    live[q] = valid
                    if not valid:
                        if log:
                            log(f"clue {clue_str(clue)} at {nm(cell)} can no longer be met")
                        return False
                    a, o = -1, 0
                    for m in valid:
                        a &= m
                        o |= m
                    on = [nb[j] for j in range(len(nb)) if a >> j & 1 and not k1 >> j & 1]
                    off = [nb[j] for j in range(len(nb)) if not o >> j & 1 and not k0 >> j & 1]
                    if on or off:
                        for i in on:
                            s[i] = 1
                        for i in off:
                            s[i] = 0
                        touched(on + off)
                        if log:
                            parts = []
                            if on:
                                parts.append(", ".join(map(nm, on)) + " shaded")
                            if off:
                                parts.append(", ".join(map(nm, off)) + " unshaded")
                            fit = "1 arrangement fits" if len(valid) == 1 else \
                                f"{len(valid)} arrangements fit"
                            log(f"Clue {clue_str(clue)} at {nm(cell)} ({fit}): " + "; ".join(parts))
                forced = []
                for w in windows:
                    vals = [s[i] for i in w]
                    k = vals.count(1)
                    if k == 4:
                        if log:
                            log(f"the 2x2 block at {nm(w[0])} is fully shaded")
                        return False
                    if k == 3 and None in vals:
                        i = w[vals.index(None)]
                        s[i] = 0
                        forced.append(i)
                if forced:
                    touched(forced)
                    if log:
                        log("No 2x2 shaded block: " + ", ".join(map(nm, forced)) + " unshaded")
                    continue
                nodes = [i for i in range(N) if s[i] != 0]
                shaded = [i for i in range(N) if s[i] == 1]
                if shaded:
                    comp = {i: k for k, part in enumerate(components(nodes, adj)) for i in part}
                    if len({comp[i] for i in shaded}) > 1:
                        if log:
                            log("the shaded cells can no longer be joined into one wall")
                        return False
                    home = comp[shaded[0]]
                    lost = sorted(i for i in nodes if comp[i] != home)
                    if lost:
                        for i in lost:
                            s[i] = 0
                        touched(lost)
                        if log:
                            log("Cells cut off from the wall cannot be shaded: "
                                + ", ".join(map(nm, lost)) + " unshaded")
                        continue
                    cuts = sorted(i for i in cut_cells(nodes, adj, shaded) if s[i] is None)
                    if cuts:
                        for i in cuts:
                            s[i] = 1
                        touched(cuts)
                        if log:
                            log("The wall can only stay connected through "
                                + ", ".join(map(nm, cuts)) + ": shaded")
                        continue
                return True

        def choose(s):
            best, bk = None, None
            for cell, clue, nb, masks in clues:
                open_ = [i for i in nb if s[i] is None]
                if open_ and (bk is None or len(open_) < bk):
                    best, bk = open_[0], len(open_)
            if best is None:
                for i in range(N):
                    if s[i] is None:
                        best = i
                        break
            return None if best is None else (best, (1, 0))

        def describe(i, v):
            return f"{nm(i)} {'shaded' if v else 'unshaded'}"

        def show(s):
            out = []
            for r in range(n):
                row = []
                for c in range(n):
                    if grid[r][c] is not None:
                        row.append(clue_str(grid[r][c]))
                    else:
                        v = s[r * n + c]
                        row.append("?" if v is None else ("#" if v else "."))
                out.append(" ".join(row))
            return "\n".join(out)
        start = [0 if grid[i // n][i % n] is not None else None for i in range(N)]
        srch = Search(propagate, choose, describe, show, limit=limit, trace=trace,
                      node_cap=node_cap)
        srch.run(start)
        return srch

    def solve(self, state):
        sols = self._search(state, limit=1).solutions
        if not sols:
            return None
        n = len(state)
        return [[i // n, i % n] for i, v in enumerate(sols[0]) if v == 1]

    def format_answer(self, solution):
        return ", ".join(f"({r},{c})" for r, c in sorted(map(tuple, solution)))

    # ---- verifier -----------------------------------------------------------------------------
    def check(self, answer, state):
        n = len(state)
        pairs = parse_pairs(answer, max_pairs=n * n)
        if not pairs or any(not (0 <= r < n and 0 <= c < n) for r, c in pairs):
            return False
        return rule_ok(state, set(pairs))

    # ---- state strings ------------------------------------------------------------------------
    def state_to_str(self, state):
        if all(x is None or len(x) == 1 for row in state for x in row):
            return "\n".join("".join("." if x is None else str(x[0]) for x in row) for row in state)
        return "\n".join(" ".join("." if x is None else clue_str(x) for x in row) for row in state)

    @staticmethod
    def _cell(tok):
        if tok is None:
            return None
        if isinstance(tok, int):
            return [tok]
        if isinstance(tok, (list, tuple)):
            vals = [int(x) for x in tok]
        else:
            t = str(tok).strip()
            if t in (".", "-", "_", "?", "", "W", "w"):
                return None
            t = t.strip("[]()")
            if re.fullmatch(r"\d", t) or re.fullmatch(r"\d(?:\s*[/,+ ]\s*\d){0,3}", t):
                vals = [int(x) for x in re.findall(r"\d", t)]
            elif re.fullmatch(r"\d{2,4}", t):
                vals = [int(x) for x in t]
            else:
                raise ValueError(f"tapa: cannot read the cell {tok!r}")
        if not vals or len(vals) > 4 or any(not 0 <= v <= 8 for v in vals):
            raise ValueError(f"tapa: bad clue {tok!r}")
        return sorted(vals)

    def state_from_str(self, text):
        t = text.strip() if isinstance(text, str) else text
        if not isinstance(t, str) or t[:1] in "[{":
            v = parse_literal(t)
            if isinstance(v, dict):
                v = v.get("grid", v.get("initial_state"))
            if isinstance(v, str):
                return self.state_from_str(v)
            if not isinstance(v, list):
                raise ValueError("tapa: expected rows")
            rows = [self._row(x) if isinstance(x, str) else [self._cell(y) for y in x] for x in v]
        else:
            rows = [self._row(ln) for ln in t.replace("\\n", "\n").split("\n") if ln.strip()]
        n = len(rows)
        if not n or any(len(r) != n for r in rows):
            raise ValueError("tapa: the grid must be square")
        return rows

    def _row(self, line):
        line = line.strip()
        if re.search(r"\s", line):
            return [self._cell(tok) for tok in line.split()]
        return [self._cell(ch) for ch in line]

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        n = len(state)
        cell = 60 if n <= 5 else 54
        texts, fills, multi = {}, {}, []
        spots = {2: ((0.28, 0.5), (0.72, 0.5)),
                 3: ((0.28, 0.3), (0.72, 0.3), (0.5, 0.73)),
                 4: ((0.28, 0.3), (0.72, 0.3), (0.28, 0.73), (0.72, 0.73))}
        for r in range(n):
            for c in range(n):
                x = state[r][c]
                if x is not None:
                    fills[(r, c)] = (232, 232, 250)
                    if len(x) == 1:
                        texts[(r, c)] = str(x[0])
                    else:
                        multi.append((r, c, x))

        def extra(d, ox, oy):
            # a multi-number clue: its numbers spread apart in the cell, so "1 2" never reads 12
            for r, c, x in multi:
                for v, (fx, fy) in zip(x, spots[len(x)]):
                    draw.center_text(d, (ox + (c + fx) * cell, oy + (r + fy) * cell), v, size=18)
        return [board(n, n, cell=cell, texts=texts, fills=fills, index_base=0, caption="Tapa",
                      font_size=24, extra=extra)]

    RULES = ("Solve the Tapa puzzle: shade some cells of the grid. (1) A cell with numbers is a "
             "clue and is never shaded. (2) The numbers of a clue describe its (up to 8) "
             "surrounding cells, diagonal ones included: the shaded ones among them form groups "
             "of touching cells (cells that touch at a side or a corner belong to the same "
             "group), and the numbers are the sizes of these groups in any order - '3' means "
             "exactly three shaded neighbours all in one group, '1 2' means two separate groups "
             "of 1 and 2, '0' means no shaded neighbour. (3) All shaded cells form one region "
             "connected through orthogonal steps. (4) No 2x2 block of cells is entirely "
             "shaded.")

    def question(self, state, text_only=False):
        n = len(state)
        if text_only:
            rows = "\n".join(" ".join("." if x is None else clue_str(x) for x in row) for row in state)
            where = (f"The {n}x{n} grid, one row per line (row 0 first); '.' is an empty cell and "
                     f"a clue with several numbers is written with '/' between them:\n{rows}")
        else:
            where = (f"The image shows the {n}x{n} grid; clue cells are tinted and show their "
                     f"numbers; the small grey numbers are the row indices (left) and column "
                     f"indices (top), starting from 0.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the list of shaded cells as 0-based "
                f"(row,column) pairs separated by commas, (0,0) being the top-left cell, for "
                f"example: (0,1), (1,1), (2,0) (this only shows the format).")

    def skeleton(self, state):
        n = len(state)
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        clues = [f"({r},{c}): {clue_str(state[r][c])}" for r in range(n) for c in range(n)
                 if state[r][c] is not None]
        steps = [step("rule", self.RULES),
                 step("read", f"A {n}x{n} grid with clues " + ", ".join(clues) + ".")]
        steps += capped_steps(tr)
        sol = srch.solutions[0]
        shaded = sorted((i // n, i % n) for i, v in enumerate(sol) if v == 1)
        steps.append(step("check", f"Every clue's neighbourhood gives its numbers; the {len(shaded)} "
                          f"shaded cells are connected, no 2x2 block is shaded and no clue cell "
                          f"is shaded."))
        steps.append(step("answer", self.format_answer(shaded)))
        return steps


TASK = Tapa()
