"""Minesweeper: from the revealed numbers, find every mine.

State: one string per row, one character per cell: a digit `0`-`8` is a revealed safe cell
showing how many of its 8 neighbours are mines, `?` is a covered cell (mine or safe).
The official `initial_state` is rows like `|1| |2|`; written here as `|1|?|2|`.
Reading official strings: a digit is a revealed number; `?`, `-`, `#`, `_` and `.` are
covered cells; an official blank ` ` (or an empty cell) means what it means there: either a
revealed 0 or a mine (the official generator reveals every safe cell and shows 0s and mines
alike as blanks).

Levels: 5x5 with 3 mines, 6x6/4, 7x7/5, 8x8/7, 9x9/9 (the official table); the share of
safe cells left covered grows too (35% .. 55%, as far as uniqueness allows).
Generator: mines at random; safe cells are revealed in random order (numbered cells before
0s, which give too much away) until the level's share stays covered; then more are revealed
one at a time until the mine set is UNIQUE: the solver (constraint propagation + exhaustive
branching over the covered cells) counts solutions up to 2.

Answer: mine cells as 0-based `(row,col)` pairs, e.g. `(0,1),(2,3)` (the official format;
spaces, a surrounding [] or {} and repeated pairs are tolerated). Verified by the rules:
the answered cells are covered cells and every revealed number sees exactly that many of
them (official blanks not answered must see none). On our instances this set is unique, so
it equals the generator's mine set.
"""
from __future__ import annotations

from . import draw, formats
from ._games import cap, label_grid, parse_pairs
from .base import Task, step

LEVELS = {1: (5, 3, 0.35), 2: (6, 4, 0.40), 3: (7, 5, 0.45), 4: (8, 7, 0.50), 5: (9, 9, 0.55)}
COVERED = set("?-#_.")
MAX_NODES = 200_000


def nbrs(r, c, n, m):
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if (dr or dc) and 0 <= r + dr < n and 0 <= c + dc < m:
                yield r + dr, c + dc


class Board:
    def __init__(self, rows: list[str]):
        self.rows = rows
        self.n, self.m = len(rows), len(rows[0]) if rows else 0
        if not self.n or any(len(r) != self.m for r in rows):
            raise ValueError("minesweeper: ragged rows")
        self.cells = [(r, c) for r in range(self.n) for c in range(self.m)]
        self.covered = [x for x in self.cells if rows[x[0]][x[1]] in COVERED]
        self.blank = [x for x in self.cells if rows[x[0]][x[1]] == " "]
        self.numbers = {x: int(rows[x[0]][x[1]]) for x in self.cells
                        if rows[x[0]][x[1]].isdigit()}
        if len(self.covered) + len(self.blank) + len(self.numbers) != len(self.cells):
            raise ValueError("minesweeper: unknown cell symbol")

    def consistent(self, mines: set) -> bool:
        unknown = set(self.covered) | set(self.blank)
        if not mines <= unknown:
            return False
        for (r, c), k in self.numbers.items():
            if sum((x in mines) for x in nbrs(r, c, self.n, self.m)) != k:
                return False
        for (r, c) in self.blank:        # an official blank that is not a mine is a revealed 0
            if (r, c) not in mines and any(x in mines for x in nbrs(r, c, self.n, self.m)):
                return False
        return True

    def solutions(self, limit=2, trace=None, max_nodes=MAX_NODES):
        """Mine sets consistent with the numbers (up to `limit`), by propagation + branching.
        `trace` collects ('deduce', cell, value, why) / ('guess', cell, value) /
        ('contradiction', why) / ('solution', mines) events."""
        n, m = self.n, self.m
        var = list(self.covered) + list(self.blank)
        vset = set(var)
        cons = []                       # (vars, target, source cell)
        for (r, c), k in sorted(self.numbers.items()):
            vs = [x for x in nbrs(r, c, n, m) if x in vset]
            cons.append((vs, k, (r, c)))
        blank_nb = {b: [x for x in nbrs(b[0], b[1], n, m) if x in vset] for b in self.blank}
        by_var = {v: [] for v in var}
        for i, (vs, _, _) in enumerate(cons):
            for v in vs:
                by_var[v].append(i)
        out = []
        nodes = [0]

        def propagate(assign):
            changed = True
            while changed:
                changed = False
                for vs, k, src in cons:
                    mines = sum(1 for v in vs if assign.get(v) == 1)
                    unk = [v for v in vs if v not in assign]
                    if mines > k or mines + len(unk) < k:
                        if trace is not None:
                            trace.append(("contradiction", f"{src} shows {k} but would see "
                                                           f"{'more' if mines > k else 'fewer'}"
                                                           f" mines"))
                        return False
                    if unk and (mines == k or mines + len(unk) == k):
                        val = 0 if mines == k else 1
                        for v in unk:
                            assign[v] = val
                            if trace is not None:
                                why = (f"{src} shows {k} and already sees {mines} mine(s)"
                                       if val == 0 else
                                       f"{src} shows {k} and has exactly {len(unk)} undecided "
                                       f"neighbour(s) left beside {mines} known mine(s)")
                                trace.append(("deduce", v, val, why))
                        changed = True
                for b, vs in blank_nb.items():
                    if assign.get(b) == 0:
                        if any(assign.get(v) == 1 for v in vs):
                            if trace is not None:
                                trace.append(("contradiction", f"{b} would be a 0 next to a mine"))
                            return False
                        for v in vs:
                            if v not in assign:
                                assign[v] = 0
                                changed = True
            return True

        def search(assign):
            nodes[0] += 1
            if nodes[0] > max_nodes:
                raise TimeoutError
            if not propagate(assign):
                return
            free = [v for v in var if v not in assign]
            if not free:
                mines = frozenset(v for v in var if assign[v] == 1)
                if self.consistent(set(mines)):
                    out.append(mines)
                    if trace is not None:
                        trace.append(("solution", mines))
                return
            # branch on the undecided cell in the tightest constraint
            def tight(v):
                sizes = [sum(1 for x in cons[i][0] if x not in assign) for i in by_var[v]]
                return (min(sizes) if sizes else 99, v)
            v = min(free, key=tight)
            for val in (1, 0):
                if len(out) >= limit:
                    return
                if trace is not None:
                    trace.append(("guess", v, val))
                child = dict(assign)
                child[v] = val
                search(child)

        try:
            search({})
        except TimeoutError:
            return None
        return out


def to_rows(n, mines, covered):
    rows = []
    for r in range(n):
        row = []
        for c in range(n):
            if (r, c) in covered:
                row.append("?")
            else:
                row.append(str(sum((x in mines) for x in nbrs(r, c, n, n))))
        rows.append("".join(row))
    return rows


class Minesweeper(Task):
    name = "minesweeper"
    official = "minesweeper"
    group = "Games"
    answer_shape = formats.CELLS

    def make(self, rng, level):
        n, k, frac = LEVELS[level]
        cells = [(r, c) for r in range(n) for c in range(n)]
        for _ in range(100):
            mines = set(rng.sample(cells, k))
            safe = [x for x in cells if x not in mines]
            counts = {x: sum((y in mines) for y in nbrs(x[0], x[1], n, n)) for x in safe}
            # reveal order: numbered cells first, 0s last (a revealed 0 gives too much away)
            nonzero = [x for x in safe if counts[x]]
            zero = [x for x in safe if not counts[x]]
            rng.shuffle(nonzero)
            rng.shuffle(zero)
            order = nonzero + zero
            keep_covered = int(round(frac * len(safe)))

            def unique(i):
                sols = Board(to_rows(n, mines, set(cells) - set(order[:i]))).solutions(2)
                return sols is not None and len(sols) == 1

            # revealing more cells only removes solutions, so uniqueness is monotone in the
            # number revealed: binary-search the fewest reveals (at least the level's share)
            lo, hi = len(safe) - keep_covered, len(safe)
            if not unique(hi):
                continue                        # e.g. a mine walled in by mines
            if not unique(lo):
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if unique(mid):
                        hi = mid
                    else:
                        lo = mid
                lo = hi
            covered = set(cells) - set(order[:lo])
            if len(covered) - k < 2:
                continue
            rows = to_rows(n, mines, covered)
            sol = sorted(mines)
            return rows, [list(x) for x in sol], {
                "size": n, "mines": k, "covered": len(covered), "covered_safe": len(covered) - k,
                "unique": True}
        raise RuntimeError("minesweeper: no unique puzzle")

    def solve(self, state):
        sols = Board(state).solutions(1)
        return [list(x) for x in sorted(sols[0])] if sols else None

    def format_answer(self, solution) -> str:
        return ",".join(f"({r},{c})" for r, c in solution)

    def check(self, answer, state) -> bool:
        pairs = parse_pairs(answer)
        if pairs is None:
            return False
        bd = Board(state)
        return bd.consistent(set(pairs))

    # ---- official strings -----------------------------------------------------------------
    def state_to_str(self, state) -> str:
        return "\n".join("|" + "|".join(row) + "|" for row in state)

    def state_from_str(self, text):
        if isinstance(text, list):
            lines = [str(x) for x in text]
        else:
            lines = [ln.rstrip("\r") for ln in str(text).split("\n")]
        rows = []
        for ln in lines:
            if not ln.strip():
                continue
            s = ln.strip("\r\n")
            if not (s.startswith("|") and s.endswith("|")):
                s = s.strip()
            if not (s.startswith("|") and s.endswith("|")):
                raise ValueError("minesweeper: rows look like |a|b|")
            cells = s[1:-1].split("|")
            row = []
            for cell in cells:
                t = cell.strip()
                if t == "":
                    row.append(" ")
                elif len(t) == 1 and (t.isdigit() or t in COVERED):
                    row.append(t)
                else:
                    raise ValueError(f"minesweeper: unknown cell {cell!r}")
            rows.append("".join(row))
        if not rows or len(rows) > 40:
            raise ValueError("minesweeper: no rows")
        Board(rows)
        return rows

    # ---- presentation -----------------------------------------------------------------
    COLORS = {1: (25, 118, 210), 2: (56, 142, 60), 3: (211, 47, 47), 4: (123, 31, 162),
              5: (93, 64, 55), 6: (0, 137, 123), 7: (33, 33, 33), 8: (97, 97, 97)}

    def render(self, state):
        bd = Board(state)
        cell = 52 if bd.n <= 7 else 46

        def fill(d, r, c, x, y):
            ch = state[r][c]
            if ch in COVERED:
                d.rectangle([x, y, x + cell, y + cell], fill=(150, 155, 165))
                d.rectangle([x + 4, y + 4, x + cell - 4, y + cell - 4], fill=(185, 190, 200))
            else:
                d.rectangle([x, y, x + cell, y + cell], fill=draw.WHITE)
                if ch.isdigit():
                    draw.center_text(d, (x + cell / 2, y + cell / 2), ch, size=24,
                                     fill=self.COLORS.get(int(ch), draw.GREY) if ch != "0"
                                     else (170, 170, 170))
        img, d, ox, oy = label_grid(bd.n, bd.m, cell, fill, caption="Minesweeper")
        d.rectangle([ox, oy, ox + bd.m * cell, oy + bd.n * cell], outline=draw.BLACK, width=3)
        return [img]

    RULES = ("Solve this Minesweeper puzzle. Some cells of the grid hide mines. A revealed cell "
             "is safe and shows the number of mines among its (up to) 8 neighbours, diagonals "
             "included; a 0 means none of its neighbours is a mine. Covered cells may be mines or "
             "safe. Using the numbers, find the position of every mine (the revealed numbers "
             "determine them uniquely).")

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = ("The grid, one row per line, cells between '|' (row 0 at the top, column 0 "
                     "at the left): a digit is a revealed safe cell with its count, '?' is a "
                     "covered cell.\n" + self.state_to_str(state))
        else:
            where = ("The image shows the grid: white cells are revealed and show their number "
                     "(0 means no neighbouring mine), grey raised cells are covered. Row and "
                     "column numbers (from 0) are written along the edges.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the positions of all mines as 0-based "
                f"(row,col) pairs separated by commas, for example: (0,5),(0,7),(1,1)")

    def skeleton(self, state):
        bd = Board(state)
        steps = [
            step("rule", "Each revealed number counts the mines among its 8 neighbours. A number "
                         "whose mines are all found makes its other covered neighbours safe; a "
                         "number with exactly as many undecided neighbours as missing mines makes "
                         "them all mines. When stuck, suppose a cell is a mine, follow the "
                         "consequences, and back up on a contradiction."),
            step("read", f"{bd.n}x{bd.m} grid ('?' covered):\n" + "\n".join(state)
                         + f"\n{len(bd.covered)} covered cells."),
        ]
        trace = []
        sols = bd.solutions(2, trace)
        events = []
        for ev in trace:
            if ev[0] == "deduce":
                _, v, val, why = ev
                events.append(step("step", f"{v} is {'a mine' if val else 'safe'}: {why}."))
            elif ev[0] == "guess":
                _, v, val = ev
                events.append(step("step", f"Suppose {v} is {'a mine' if val else 'safe'}."))
            elif ev[0] == "contradiction":
                events.append(step("backtrack", f"Contradiction: {ev[1]}. Undo the last "
                                                f"supposition."))
            elif ev[0] == "solution":
                events.append(step("step", f"Every covered cell decided; mines at "
                                           f"{sorted(ev[1])}."))
        steps += cap(events, 120, "deductions")
        mines = sorted(sols[0])
        steps.append(step("check", f"{len(sols)} consistent mine set(s) found after trying every "
                                   f"branch. Checking {mines}: each revealed number sees exactly "
                                   f"that many of these mines."))
        steps.append(step("answer", self.format_answer(mines)))
        return steps


TASK = Minesweeper()
