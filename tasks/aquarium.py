"""Aquarium: fill regions (tanks) with water so that the row and column counts hold.

Rules: water settles - inside one region the water surface is level, so the filled cells of a
region are exactly its cells at or below one row (possibly none, possibly all); the numbers
give how many cells of each row / column are filled.
Levels: size 4x4, 5x5, 6x6, 7x7, 8x8; regions grown at random (about 3-5 cells each); from
level 3 on no row or column is entirely dry or entirely wet (no line is given away).
Uniqueness: proved by the solver (solutions counted up to two); the verifier checks the rules,
so any valid filling would pass anyway.
Official state: `{'regions', 'row_clues', 'col_clues', 'grid_size': [rows, cols]}` (a JSON
string). Answer: the filled cells `[(x, y), ...]` with x = column and y = row, both 0-based
from the top-left cell, as in the official prompt.
"""
from __future__ import annotations


from . import formats
from ._shade import Search, Trace, board, capped_steps, parse_pairs
from .base import Task, parse_literal, step

SIZES = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8}


def region_cells(regions):
    out = {}
    for r, row in enumerate(regions):
        for c, g in enumerate(row):
            out.setdefault(g, []).append((r, c))
    return out


def rule_ok(state, filled) -> bool:
    regions = state["regions"]
    n, m = len(regions), len(regions[0])
    for r in range(n):
        if sum((c, r) in filled for c in range(m)) != state["row_clues"][r]:
            return False
    for c in range(m):
        if sum((c, r) in filled for r in range(n)) != state["col_clues"][c]:
            return False
    for cells in region_cells(regions).values():
        top = min((r for r, c in cells if (c, r) in filled), default=None)
        if top is not None and any((c, r) not in filled for r, c in cells if r >= top):
            return False
    return True


class Aquarium(Task):
    name = "aquarium"
    official = "aquarium"
    group = "Puzzles"
    answer_shape = formats.CELLS

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        n = SIZES[level]
        tries = 0
        while True:
            tries += 1
            regions = self._regions(rng, n, max(2, round(n * n / rng.uniform(3.2, 4.5))))
            cells = region_cells(regions)
            level_of = {}
            for g, cs in sorted(cells.items()):
                rows = sorted({r for r, _ in cs})
                level_of[g] = rng.randint(rows[0], rows[-1] + 1)
            filled = {(c, r) for g, cs in cells.items() for r, c in cs if r >= level_of[g]}
            if not (n <= len(filled) <= n * n - n):
                continue
            rc = [sum((c, r) in filled for c in range(n)) for r in range(n)]
            cc = [sum((c, r) in filled for r in range(n)) for c in range(n)]
            if level >= 3 and any(x in (0, n) for x in rc + cc):
                continue   # from level 3 on, no line is given away as all-dry or all-wet
            state = {"regions": regions, "row_clues": rc, "col_clues": cc, "grid_size": [n, n]}
            srch = self._search(state, limit=2, node_cap=5000)
            if len(srch.solutions) == 1 and srch.exhausted:
                sol = sorted([x, y] for x, y in filled)
                return state, sol, {"size": n, "regions": len(cells), "filled": len(filled),
                                    "search_nodes": srch.nodes, "tries": tries}

    @staticmethod
    def _regions(rng, n, k):
        owner = [[None] * n for _ in range(n)]
        cells = [(r, c) for r in range(n) for c in range(n)]
        rng.shuffle(cells)
        for g, (r, c) in enumerate(cells[:k]):
            owner[r][c] = g
        free = n * n - k
        while free:
            r, c = rng.choice([x for x in cells if owner[x[0]][x[1]] is None])
            nbs = [owner[a][b] for a, b in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                   if 0 <= a < n and 0 <= b < n and owner[a][b] is not None]
            if nbs:
                owner[r][c] = rng.choice(nbs)
                free -= 1
        # number the regions in reading order
        ids = {}
        for r in range(n):
            for c in range(n):
                ids.setdefault(owner[r][c], len(ids))
        return [[ids[owner[r][c]] for c in range(n)] for r in range(n)]

    # ---- solver -------------------------------------------------------------------------------
    def _search(self, state, limit=2, trace=None, node_cap=200_000):
        regions = state["regions"]
        n, m = len(regions), len(regions[0])
        rclue, cclue = state["row_clues"], state["col_clues"]
        groups = sorted(region_cells(regions).items(),
                        key=lambda kv: (0, kv[0], "") if isinstance(kv[0], int) else (1, 0, str(kv[0])))
        names = [g for g, _ in groups]
        # option t of a region: its cells in rows >= t are filled (t past its bottom: empty)
        opts, contrib = [], []   # contrib[k][t] = {line: count}, lines 0..n-1 rows, n.. cols
        for g, cs in groups:
            rows = sorted({r for r, _ in cs})
            ts = tuple(range(rows[0], rows[-1] + 2))
            opts.append(ts)
            d = {}
            for t in ts:
                cnt = {}
                for r, c in cs:
                    if r >= t:
                        cnt[r] = cnt.get(r, 0) + 1
                        cnt[n + c] = cnt.get(n + c, 0) + 1
                d[t] = cnt
            contrib.append(d)
        lines_of = [sorted({r for r, _ in cs} | {n + c for _, c in cs}) for _, cs in groups]
        clue = list(rclue) + list(cclue)
        K = len(groups)

        def lname(L):
            return f"row {L}" if L < n else f"column {L - n}"

        def oname(k, t):
            cs = groups[k][1]
            if t > max(r for r, _ in cs):
                return "empty"
            if t <= min(r for r, _ in cs):
                return "full"
            return f"water from row {t} down"

        def propagate(s, log):
            while True:
                lo = [0] * (n + m)
                hi = [0] * (n + m)
                mn, mx = [], []
                for k in range(K):
                    a, b = {}, {}
                    for L in lines_of[k]:
                        vals = [contrib[k][t].get(L, 0) for t in s[k]]
                        a[L], b[L] = min(vals), max(vals)
                        lo[L] += a[L]
                        hi[L] += b[L]
                    mn.append(a)
                    mx.append(b)
                for L in range(n + m):
                    if not lo[L] <= clue[L] <= hi[L]:
                        if log:
                            log(f"{lname(L)} needs {clue[L]} filled cells but can only get "
                                f"{lo[L]} to {hi[L]}")
                        return False
                cut = []
                for k in range(K):
                    if len(s[k]) == 1:
                        continue
                    keep, why = [], []
                    for t in s[k]:
                        bad = None
                        for L in lines_of[k]:
                            v = contrib[k][t].get(L, 0)
                            if lo[L] - mn[k][L] + v > clue[L]:
                                bad = f"{lname(L)} would get more than {clue[L]}"
                                break
                            if hi[L] - mx[k][L] + v < clue[L]:
                                bad = f"{lname(L)} could not reach {clue[L]}"
                                break
                        if bad is None:
                            keep.append(t)
                        else:
                            why.append(f"{oname(k, t)} ({bad})")
                    if len(keep) < len(s[k]):
                        s[k] = tuple(keep)
                        cut.append((k, why))
                        if not keep:
                            if log:
                                log(f"region {names[k]} has no possible water level left")
                            return False
                if not cut:
                    return True
                if log:
                    log("; ".join(f"Region {names[k]}: ruled out " + ", ".join(why)
                                  + (f" -> {oname(k, s[k][0])}" if len(s[k]) == 1 else "")
                                  for k, why in cut))

        def choose(s):
            best = None
            for k in range(K):
                if len(s[k]) > 1 and (best is None or len(s[k]) < len(s[best])):
                    best = k
            return None if best is None else (best, [(t,) for t in s[best]])

        def describe(k, v):
            return f"region {names[k]} {oname(k, v[0])}"

        def show(s):
            out = []
            for r in range(n):
                row = []
                for c in range(m):
                    ts = s[idx_of[(r, c)]]
                    wet = [r >= t for t in ts]
                    row.append("~" if all(wet) else ("." if not any(wet) else "?"))
                out.append(" ".join(row))
            return "\n".join(out)
        idx_of = {}
        for k, (_, cs) in enumerate(groups):
            for cell in cs:
                idx_of[cell] = k
        srch = Search(propagate, choose, describe, show, limit=limit, trace=trace,
                      node_cap=node_cap)
        srch.run([tuple(o) for o in opts])
        srch.groups = groups
        return srch

    @staticmethod
    def _filled(srch, sol):
        return sorted([c, r] for k, (_, cs) in enumerate(srch.groups) for r, c in cs if r >= sol[k][0])

    def solve(self, state):
        srch = self._search(state, limit=1)
        return self._filled(srch, srch.solutions[0]) if srch.solutions else None

    def format_answer(self, solution):
        return "[" + ", ".join(f"({x}, {y})" for x, y in sorted(map(tuple, solution))) + "]"

    # ---- verifier -----------------------------------------------------------------------------
    def check(self, answer, state):
        regions = state["regions"]
        n, m = len(regions), len(regions[0])
        pairs = parse_pairs(answer, max_pairs=n * m)
        if pairs is None or any(not (0 <= x < m and 0 <= y < n) for x, y in pairs):
            return False
        if len(set(pairs)) != len(pairs):
            return False
        return rule_ok(state, set(pairs))

    # ---- state strings ------------------------------------------------------------------------

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, str):
            v = parse_literal(v)
        if not isinstance(v, dict):
            raise ValueError("aquarium: expected a dict")
        regions = v["regions"]
        rc = [int(x) for x in v.get("row_clues", v.get("rows", []))]
        cc = [int(x) for x in v.get("col_clues", v.get("cols", v.get("columns", [])))]
        if not regions or any(len(row) != len(regions[0]) for row in regions):
            raise ValueError("aquarium: regions must be a rectangle")
        n, m = len(regions), len(regions[0])
        if len(rc) != n or len(cc) != m:
            raise ValueError("aquarium: clue counts do not match the grid")
        return {"regions": [list(row) for row in regions], "row_clues": rc, "col_clues": cc,
                "grid_size": [int(x) for x in v.get("grid_size", [n, m])]}

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        regions = state["regions"]
        n, m = len(regions), len(regions[0])
        walls = set()
        for r in range(n):
            for c in range(m):
                if c + 1 < m and regions[r][c] != regions[r][c + 1]:
                    walls.add(((r, c), (r, c + 1)))
                if r + 1 < n and regions[r][c] != regions[r + 1][c]:
                    walls.add(((r, c), (r + 1, c)))
        cell = 54 if max(n, m) <= 6 else 48
        return [board(n, m, cell=cell, walls=walls, right=state["row_clues"],
                      bottom=state["col_clues"], index_base=0, caption="Aquarium",
                      clue_size=22)]

    RULES = ("Solve the Aquarium puzzle: the grid is divided by thick lines into regions "
             "(tanks). Fill some cells with water. Water settles: within one region the water "
             "surface is level, so if a cell of a region is filled, every cell of that region in "
             "the same row and in all rows below it is filled too (a region may also be empty or "
             "completely full). The number beside each row and below each column is how many of "
             "its cells are filled.")

    def question(self, state, text_only=False):
        regions = state["regions"]
        n, m = len(regions), len(regions[0])
        if text_only:
            lay = "\n".join(" ".join(str(g) for g in row) for row in regions)
            where = (f"The grid has {n} rows and {m} columns. Region of each cell (same number = "
                     f"same region), row 0 first:\n{lay}\nFilled cells per row (top to bottom): "
                     f"{state['row_clues']}\nFilled cells per column (left to right): "
                     f"{state['col_clues']}")
        else:
            where = (f"The image shows the {n}x{m} grid with the region borders drawn thick, the "
                     f"row counts on the right and the column counts below; the small grey "
                     f"numbers are the column index x (top) and row index y (left), from 0.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the list of filled cells as (x, y) "
                f"pairs, where x is the column and y the row, both counted from 0 at the "
                f"top-left cell, in the form [(0, 3), (1, 3), (2, 3)] (this only shows the "
                f"format).")

    def skeleton(self, state):
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        groups = srch.groups
        steps = [step("rule", self.RULES),
                 step("read", "Regions (by the rows/columns they span): " + "; ".join(
                     f"region {g}: " + " ".join(f"({c},{r})" for r, c in cs) for g, cs in groups)
                     + f". Row counts {state['row_clues']}, column counts {state['col_clues']}.")]
        steps += capped_steps(tr)
        filled = self._filled(srch, srch.solutions[0])
        steps.append(step("check", f"{len(filled)} cells are filled; each row and column count "
                          f"matches and every region is filled up to one level."))
        steps.append(step("answer", self.format_answer(filled)))
        return steps


TASK = Aquarium()
