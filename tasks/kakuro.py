"""Kakuro: fill the white cells with digits 1-9 so that every run adds up to its clue.

Grid: "grid N" (N = 3..7 for levels 1..5) is the N x N playable area; the board drawn and
stored is (N+1) x (N+1), its top row and left column being the black clue cells, with more
black cells inside (about 7, 8, 14, 19, 25 white cells to fill on average). Every run (a
maximal horizontal or vertical stretch of white cells) has 2 to 3/3/4/4/5 cells (levels
1..5) and a clue in the black cell just before it: the number below the diagonal is the
sum of the run going down, the number above the diagonal the sum of the run going right.
Digits do not repeat within a run. Uniqueness: PROVEN by the solver (solutions counted up to
two); instances with two solutions are repaired or redrawn.
Coordinates: 0-based (row, column) of the whole board, (0,0) being the top-left black cell -
the official convention ("The grid coordinates start at (0,0) in the top-left corner").
Official state: 2D list of cell dicts {'type': 'black', 'right': sum, 'down': sum} /
{'type': 'white'}. Official boards may have white cells on the edge with no clue before their
run; such a run carries no constraint (the official generator imposes none).
Answer: `(r,c):v (r,c):v ...` (space separated; commas, semicolons and newlines between
entries are accepted too), every white cell exactly once.
"""
from __future__ import annotations

import re
from functools import lru_cache
from itertools import combinations
from types import SimpleNamespace

from . import draw, formats
from ._shade import Search, Trace, capped_steps
from .base import Task, parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
BLACK_P = {1: 0.10, 2: 0.20, 3: 0.28, 4: 0.30, 5: 0.33}   # chance of an inner black cell
MAXRUN = {1: 3, 2: 3, 3: 4, 4: 4, 5: 5}                    # longest run allowed
MIN_WHITE = {1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5, 5: 0.45}     # share of the area left white
ITERS = {1: 60, 2: 100, 3: 150, 4: 150, 5: 150}
_ENTRY = re.compile(r"\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)\s*[:=]\s*(\d{1,3})")
_SEP_OK = re.compile(r"^[\s,;\[\]\{\}]*$")
FULL = 0b111111111


def digits_of(mask: int) -> list[int]:
    return [d for d in range(1, 10) if mask >> (d - 1) & 1]


DIGITS = [digits_of(x) for x in range(512)]   # the digits of every 9-bit mask
POP = [len(x) for x in DIGITS]


@lru_cache(maxsize=None)
def combos(length: int, total: int) -> tuple:
    """Digit sets (bitmasks) of `length` distinct digits 1-9 adding up to `total`."""
    return tuple(sum(1 << (d - 1) for d in cs) for cs in combinations(range(1, 10), length)
                 if sum(cs) == total)


def runs_of(board):
    """[(direction, clue cell, clue or None, [white cells])] for every run of the board."""
    n, m = len(board), len(board[0])
    white = [[board[r][c].get("type") == "white" for c in range(m)] for r in range(n)]
    out = []
    for r in range(n):
        for c in range(m):
            if not white[r][c]:
                continue
            for dr, dc, key, word in ((0, 1, "right", "across"), (1, 0, "down", "down")):
                pr, pc = r - dr, c - dc
                if pr >= 0 and pc >= 0 and white[pr][pc]:
                    continue   # not the first cell of its run
                cells = []
                a, b = r, c
                while a < n and b < m and white[a][b]:
                    cells.append((a, b))
                    a, b = a + dr, b + dc
                clue = None
                if pr >= 0 and pc >= 0:
                    v = board[pr][pc].get(key)
                    if isinstance(v, (list, tuple)):
                        v = v[0]
                    clue = None if v is None else int(v)
                out.append((word, (pr, pc), clue, cells))
    return out


class Kakuro(Task):
    name = "kakuro"
    official = "kakuro"
    group = "Puzzles"
    answer_shape = formats.CELL_VALUES

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        N = SIZES[level]
        tries = 0
        while True:
            tries += 1
            white = self._layout(rng, N, BLACK_P[level], MAXRUN[level], MIN_WHITE[level])
            if white is None:
                continue
            fill = self._fill(rng, white)
            if fill is None:
                continue
            # local search on the digits: change a digit inside the part that deduction
            # cannot settle, keep the change unless the undecided part grows; give up on this
            # layout when nothing improves for a while
            md = self._model(self._board(white, fill))
            open_, score = self._ambiguity(md)
            best, stale = score, 0
            for _ in range(ITERS[level]):
                if score == 0 or stale > 30:
                    break
                old = dict(fill)
                if not self._nudge(rng, white, fill, rng.choice(open_)):
                    continue
                md.set_fill(fill)
                got = self._ambiguity(md)
                if got is not None and got[1] <= score:
                    open_, score = got
                else:
                    fill = old
                    md.set_fill(fill)
                if score < best and score <= 8:
                    # little is left open: maybe guessing already proves it unique
                    probe = self._search(None, limit=2, node_cap=200, model=md)
                    if probe.exhausted and len(probe.solutions) == 1:
                        break
                stale = 0 if score < best else stale + 1
                best = min(best, score)
            board = self._board(white, fill)
            srch = self._search(board, limit=2, node_cap=3000)
            if srch.exhausted and len(srch.solutions) == 1:
                cells = srch.cells
                sol = {cells[k]: digits_of(v)[0] for k, v in enumerate(srch.solutions[0])}
                assert sol == fill
                return board, [[r, c, fill[(r, c)]] for r, c in sorted(fill)], {
                    "grid": N, "board": N + 1, "white_cells": len(fill),
                    "runs": len(runs_of(board)), "search_nodes": srch.nodes, "tries": tries}

    @staticmethod
    def _layout(rng, N, p, maxrun, min_frac=0.5):
        """White cells of the playable area (rows/cols 1..N): every run 2..maxrun cells long,
        all white cells connected; None when the draw fails."""
        white = {(r, c) for r in range(1, N + 1) for c in range(1, N + 1) if rng.random() >= p}
        changed = True
        while changed:
            changed = False
            for r, c in sorted(white):
                if (r, c) not in white:
                    continue
                h = ((r, c - 1) in white) or ((r, c + 1) in white)
                v = ((r - 1, c) in white) or ((r + 1, c) in white)
                if not (h and v):
                    white.discard((r, c))
                    changed = True
            for dr, dc in ((0, 1), (1, 0)):
                for r, c in sorted(white):
                    if (r - dr, c - dc) in white or (r, c) not in white:
                        continue
                    run, a, b = [], r, c
                    while (a, b) in white:
                        run.append((a, b))
                        a, b = a + dr, b + dc
                    if len(run) > maxrun:   # too long: black out a cell inside it
                        white.discard(rng.choice(run[2:-2] or run[1:-1]))
                        changed = True
        if len(white) < max(4, int(N * N * min_frac)):
            return None
        start = min(white)
        seen, todo = {start}, [start]
        while todo:
            r, c = todo.pop()
            for nb in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if nb in white and nb not in seen:
                    seen.add(nb)
                    todo.append(nb)
        return white if len(seen) == len(white) else None

    @staticmethod
    def _fill(rng, white):
        """A random filling with no repeat in any run. Each run leans low, high or neither,
        and a cell prefers digits that suit both of its runs: lopsided sums have few digit
        sets, which is what makes a Kakuro solution unique."""
        cells = sorted(white)
        fill = {}
        lean = {}
        for r, c in cells:
            for key in (("h", r, min(b for b in range(c + 1) if all((r, x) in white for x in range(b, c + 1)))),
                        ("v", c, min(a for a in range(r + 1) if all((x, c) in white for x in range(a, r + 1))))):
                if key not in lean:
                    lean[key] = rng.choice((-1, -1, 0, 1, 1))
        tilt = {}
        for r, c in cells:
            h = ("h", r, min(b for b in range(c + 1) if all((r, x) in white for x in range(b, c + 1))))
            v = ("v", c, min(a for a in range(r + 1) if all((x, c) in white for x in range(a, r + 1))))
            tilt[(r, c)] = lean[h] + lean[v]

        def used(r, c):
            out = set()
            for dr, dc in ((0, 1), (1, 0)):
                for sgn in (1, -1):
                    a, b = r + sgn * dr, c + sgn * dc
                    while (a, b) in white:
                        if (a, b) in fill:
                            out.add(fill[(a, b)])
                        a, b = a + sgn * dr, b + sgn * dc
            return out

        def go(k):
            if k == len(cells):
                return True
            r, c = cells[k]
            t = tilt[(r, c)]
            opts = sorted((d for d in range(1, 10) if d not in used(r, c)),
                          key=lambda d: -t * (d - 5) + rng.uniform(-2.5, 2.5))
            for d in opts:
                fill[(r, c)] = d
                if go(k + 1):
                    return True
                del fill[(r, c)]
            return False
        return fill if go(0) else None

    @staticmethod
    def _nudge(rng, white, fill, cell):
        """Give `cell` another digit (no repeat in its runs), preferring the digit that leaves
        its two runs with the fewest digit sets for their new sums."""
        r, c = cell
        taken, runs = set(), []
        for dr, dc in ((0, 1), (1, 0)):
            run = [cell]
            for sgn in (1, -1):
                a, b = r + sgn * dr, c + sgn * dc
                while (a, b) in white:
                    taken.add(fill[(a, b)])
                    run.append((a, b))
                    a, b = a + sgn * dr, b + sgn * dc
            runs.append((len(run), sum(fill[x] for x in run)))
        opts = [d for d in range(1, 10) if d not in taken and d != fill[cell]]
        if not opts:
            return False
        if rng.random() < 0.7:
            old = fill[cell]
            cost = {d: sum(len(combos(L, S - old + d)) for L, S in runs) for d in opts}
            low = min(cost.values())
            opts = [d for d in opts if cost[d] == low]
        fill[cell] = rng.choice(opts)
        return True

    @staticmethod
    def _board(white, fill):
        N = max(max(r for r, _ in white), max(c for _, c in white))
        board = [[{"type": "white"} if (r, c) in white else {"type": "black"}
                  for c in range(N + 1)] for r in range(N + 1)]
        for r in range(N + 1):
            for c in range(N + 1):
                if (r, c) in white:
                    continue
                for dr, dc, key in ((0, 1, "right"), (1, 0, "down")):
                    a, b, tot = r + dr, c + dc, 0
                    while (a, b) in white:
                        tot += fill[(a, b)]
                        a, b = a + dr, b + dc
                    if tot:
                        board[r][c][key] = tot
        return board

    # ---- solver -------------------------------------------------------------------------------
    def _model(self, board):
        """The solver's pieces for `board`: a namespace with cells, runs, propagate, choose,
        describe, show, and set_fill(fill) to re-derive every clue from a trial filling (the
        generator's local search reuses one model per layout)."""
        cells = sorted((r, c) for r, row in enumerate(board) for c, x in enumerate(row)
                       if x.get("type") == "white")
        index = {cell: k for k, cell in enumerate(cells)}
        runs = []
        for word, head, clue, rc in runs_of(board):
            ks = [index[x] for x in rc]
            allowed = combos(len(ks), clue) if clue is not None else None
            runs.append([word, head, clue, ks, allowed])

        def set_fill(fill):
            for run in runs:
                if run[2] is not None:
                    run[2] = sum(fill[cells[k]] for k in run[3])
                    run[4] = combos(len(run[3]), run[2])

        def rn(run):
            word, head, clue, ks, _ = run
            return f"{word} run from ({head[0]},{head[1]}) (sum {clue}, {len(ks)} cells)"

        def nm(k):
            return f"({cells[k][0]},{cells[k][1]})"

        def dstr(mask):
            return "{" + ",".join(map(str, digits_of(mask))) + "}"

        runs_at = [[] for _ in cells]
        for j, run in enumerate(runs):
            for k in run[3]:
                runs_at[k].append(j)

        def propagate(s, log):
            queue = list(range(len(runs)))
            queued = [True] * len(runs)
            live = [run[4] for run in runs]   # digit sets still possible (they only shrink)
            while queue:
                j = queue.pop()
                queued[j] = False
                run = runs[j]
                word, head, clue, ks, allowed = run
                doms = [s[k] for k in ks]
                fixed_or = anyd = 0
                for d in doms:
                    anyd |= d
                    if d & (d - 1) == 0:
                        if fixed_or & d:
                            if log:
                                log(f"the {rn(run)} repeats the digit {DIGITS[d][0]}")
                            return False
                        fixed_or |= d
                if allowed is None:   # clue-less official run: only no-repeats
                    union = common = FULL
                else:
                    union, common, keep = 0, FULL, []
                    for cm in live[j]:
                        if (fixed_or & ~cm) or (cm & ~anyd):
                            continue
                        cov = 0
                        for d in doms:
                            x = d & cm
                            if not x:
                                break
                            cov |= x
                        else:
                            if cov == cm:
                                union |= cm
                                common &= cm
                                keep.append(cm)
                    if not keep:
                        if log:
                            log(f"no set of distinct digits fits the {rn(run)}")
                        return False
                    live[j] = keep
                new = []
                for k in ks:
                    d = s[k] & union
                    if d & (d - 1):            # not yet fixed: drop digits fixed elsewhere
                        d &= ~fixed_or
                    if d != s[k]:
                        if not d:
                            if log:
                                log(f"cell {nm(k)} has no digit left in the {rn(run)}")
                            return False
                        s[k] = d
                        new.append(k)
                if allowed is not None:   # a digit every set needs, with one home only
                    for dg in DIGITS[common & ~fixed_or]:
                        bit = 1 << (dg - 1)
                        homes = [k for k in ks if s[k] & bit]
                        if len(homes) == 1 and s[homes[0]] != bit:
                            s[homes[0]] = bit
                            new.append(homes[0])
                if new:
                    for k in new:
                        for j2 in runs_at[k]:
                            if not queued[j2]:
                                queued[j2] = True
                                queue.append(j2)
                    if log:
                        sets = ""
                        if allowed is not None and union != FULL:
                            sets = f", digits from {dstr(union)}"
                        log(f"The {rn(run)}{sets}: " + ", ".join(
                            f"{nm(k)} = {DIGITS[s[k]][0]}" if s[k] & (s[k] - 1) == 0
                            else f"{nm(k)} in {dstr(s[k])}" for k in dict.fromkeys(new)))
            return True

        def choose(s):
            best = None
            for k, d in enumerate(s):
                if d & (d - 1):
                    if best is None or bin(d).count("1") < bin(s[best]).count("1"):
                        best = k
            if best is None:
                return None
            return best, [1 << (dg - 1) for dg in digits_of(s[best])]

        def describe(k, v):
            return f"{nm(k)} = {digits_of(v)[0]}"

        n, m = len(board), len(board[0])

        def show(s):
            out = []
            for r in range(n):
                row = []
                for c in range(m):
                    k = index.get((r, c))
                    if k is None:
                        row.append("#")
                    else:
                        d = s[k]
                        row.append(str(digits_of(d)[0]) if d & (d - 1) == 0 else "?")
                out.append(" ".join(row))
            return "\n".join(out)
        return SimpleNamespace(cells=cells, runs=runs, propagate=propagate, choose=choose,
                               describe=describe, show=show, set_fill=set_fill)

    def _search(self, board, limit=2, trace=None, node_cap=200_000, model=None):
        md = model or self._model(board)
        srch = Search(md.propagate, md.choose, md.describe, md.show, limit=limit, trace=trace,
                      node_cap=node_cap)
        srch.run([FULL] * len(md.cells))
        srch.cells = md.cells
        return srch

    @staticmethod
    def _ambiguity(md):
        """After pure deduction (no guessing): the undecided cells and how many extra digits
        they still allow (0 = solved by logic alone, hence unique); None on a contradiction."""
        s = [FULL] * len(md.cells)
        if not md.propagate(s, None):
            return None
        return [md.cells[k] for k, d in enumerate(s) if d & (d - 1)], \
            sum(POP[d] - 1 for d in s)

    def solve(self, state):
        srch = self._search(state, limit=1)
        if not srch.solutions:
            return None
        return [[r, c, digits_of(v)[0]] for (r, c), v in zip(srch.cells, srch.solutions[0])]

    def format_answer(self, solution):
        return " ".join(f"({r},{c}):{v}" for r, c, v in sorted(map(tuple, solution)))

    # ---- verifier -----------------------------------------------------------------------------
    def check(self, answer, state):
        n, m = len(state), len(state[0])
        whites = {(r, c) for r in range(n) for c in range(m) if state[r][c].get("type") == "white"}
        if len(answer) > 16 * len(whites) + 200:
            return False
        entries = _ENTRY.findall(answer)
        if not _SEP_OK.match(_ENTRY.sub(" ", answer)):
            return False
        val = {}
        for r, c, v in entries:
            cell, v = (int(r), int(c)), int(v)
            if cell in val or cell not in whites or not 1 <= v <= 9:
                return False
            val[cell] = v
        if set(val) != whites:
            return False
        for _, _, clue, cells in runs_of(state):
            if clue is None:
                continue
            ds = [val[x] for x in cells]
            if len(set(ds)) != len(ds) or sum(ds) != clue:
                return False
        return True

    # ---- state strings ------------------------------------------------------------------------

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):
            v = v.get("grid", v.get("board"))
        if not (isinstance(v, list) and v and all(isinstance(row, list) and len(row) == len(v[0])
                                                 for row in v)):
            raise ValueError("kakuro: expected a 2D list of cells")
        out = []
        for row in v:
            new = []
            for x in row:
                if not isinstance(x, dict) or str(x.get("type", "")).lower() not in ("black", "white"):
                    raise ValueError(f"kakuro: bad cell {x!r}")
                if str(x["type"]).lower() == "white":
                    new.append({"type": "white"})
                    continue
                cell = {"type": "black"}
                for key in ("down", "right"):
                    if x.get(key) is not None:
                        y = x[key]
                        cell[key] = int(y[0] if isinstance(y, (list, tuple)) else y)
                new.append(cell)
            out.append(new)
        return out

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        n, m = len(state), len(state[0])
        cell = 64 if max(n, m) <= 6 else 58
        lab, pad, cap = 26, 14, 36
        ox, oy = pad + lab, pad + cap + lab
        img, d = draw.canvas(ox + m * cell + pad, oy + n * cell + pad)
        draw.title(d, img.width, "Kakuro", size=18, y=20)
        dark, light = (60, 64, 72), (255, 255, 255)
        for r in range(n):
            for c in range(m):
                x, y = ox + c * cell, oy + r * cell
                sq = state[r][c]
                if sq.get("type") == "white":
                    d.rectangle([x, y, x + cell, y + cell], fill=light, outline=draw.BLACK)
                    continue
                d.rectangle([x, y, x + cell, y + cell], fill=dark, outline=draw.BLACK)
                if "right" in sq or "down" in sq:
                    d.line([(x, y), (x + cell, y + cell)], fill=(200, 200, 200), width=2)
                if "right" in sq:   # above the diagonal: the run going right
                    draw.center_text(d, (x + cell * 0.68, y + cell * 0.3), sq["right"], size=19,
                                     fill=light)
                if "down" in sq:    # below the diagonal: the run going down
                    draw.center_text(d, (x + cell * 0.32, y + cell * 0.7), sq["down"], size=19,
                                     fill=light)
        d.rectangle([ox, oy, ox + m * cell, oy + n * cell], outline=draw.BLACK, width=3)
        for c in range(m):
            draw.center_text(d, (ox + c * cell + cell / 2, oy - lab / 2), c, size=14, fill=draw.GREY)
        for r in range(n):
            draw.center_text(d, (ox - lab / 2, oy + r * cell + cell / 2), r, size=14, fill=draw.GREY)
        return [img]

    RULES = ("Solve the Kakuro puzzle: write a digit from 1 to 9 in every white cell. A run is "
             "a maximal horizontal or vertical line of white cells; the black cell just before "
             "a run holds its clue: the number below the diagonal is the sum of the run going "
             "down from it, the number above the diagonal the sum of the run going right. The "
             "digits of a run add up to its clue and no digit repeats within a run.")

    def _text(self, state):
        out = []
        for row in state:
            cells = []
            for x in row:
                if x["type"] == "white":
                    cells.append("[   ]")
                else:
                    dn = x.get("down")
                    rt = x.get("right")
                    cells.append(f"[{'' if dn is None else dn:>2}\\{'' if rt is None else rt:<2}]"
                                 .replace("[  \\  ]", "[###]"))
            out.append(" ".join(cells))
        return "\n".join(out)

    def question(self, state, text_only=False):
        n, m = len(state), len(state[0])
        if text_only:
            where = (f"The board has {n} rows and {m} columns, written row by row (row 0 first). "
                     f"A white cell is [   ]; a black cell is [down\\right] with the sum of the "
                     f"run below it before the backslash and the sum of the run to its right "
                     f"after it ([###] = black cell without clues):\n{self._text(state)}")
        else:
            where = (f"The image shows the {n}x{m} board: white cells to fill, dark cells with "
                     f"clues; the small grey numbers are the row indices (left) and column "
                     f"indices (top), starting from 0.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with every white cell and its digit as "
                f"(row,column):digit entries separated by spaces, with 0-based coordinates on "
                f"the whole board ((0,0) is the top-left corner), for example "
                f"(1,2):5 (1,3):7 ... (this only shows the format).")

    def skeleton(self, state):
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        runs = runs_of(state)
        steps = [step("rule", self.RULES),
                 step("read", "Runs: " + "; ".join(
                     f"{w} from ({h[0]},{h[1]}): " + " ".join(f"({r},{c})" for r, c in cs)
                     + (f" sum {cl}" if cl is not None else " (no clue)") for w, h, cl, cs in runs)
                     + ".")]
        steps += capped_steps(tr)
        sol = [[r, c, digits_of(v)[0]] for (r, c), v in zip(srch.cells, srch.solutions[0])]
        val = {(r, c): v for r, c, v in sol}
        steps.append(step("check", "Run by run: " + "; ".join(
            f"{'+'.join(str(val[x]) for x in cs)} = {sum(val[x] for x in cs)}"
            for _, _, cl, cs in runs if cl is not None) + " - every clue holds, no run repeats a "
            "digit, and every white cell has a digit."))
        steps.append(step("answer", self.format_answer(sol)))
        return steps


TASK = Kakuro()
