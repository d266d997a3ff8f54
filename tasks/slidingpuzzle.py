"""Sliding puzzle (8-/15-puzzle): slide tiles into the blank until the board reads
1, 2, ..., N*N-1 row by row with the blank (0) last.

State: the official N x N list of rows with 0 for the blank, e.g. `[[1, 2, 3], [4, 0, 6],
[7, 5, 8]]`. N is read from the state (nothing assumes 4x4).

Move convention (the official one: its prompt and its solver name a move after the TILE
that slides, so the blank goes the opposite way):
    up    = the tile below the blank slides up    (the blank moves down)
    down  = the tile above the blank slides down  (the blank moves up)
    left  = the tile right of the blank slides left (the blank moves right)
    right = the tile left of the blank slides right (the blank moves left)

Levels (the official generator relabels levels from the solution length; here the level
fixes the board and a window on the optimal length):
    3x3 with 4-8 moves, 3x3 with 10-16, 4x4 with 12-18, 4x4 with 18-24, 4x4 with 24-30.
Generator: a random walk of the blank from the goal, then the solver's optimal length.

Solver: IDA* with Manhattan distance + linear conflict (the admissible form: per row and
column, 2 x (tiles in their goal line - longest increasing run of them)); optimal.

Answer: moves separated by spaces (u/d/l/r accepted). Verified by replay: a move that
would take a tile from outside the board fails; the final board must be the goal. Longer
than optimal answers pass (no cap besides 5000 moves, so that checking is bounded).
"""
from __future__ import annotations

from . import draw, formats
from ._games import DIRS, cap, parse_moves
from .base import Task, parse_literal, step

LEVELS = {1: (3, 4, 8), 2: (3, 10, 16), 3: (4, 12, 18), 4: (4, 18, 24), 5: (4, 24, 30)}
MOVES = ("up", "down", "left", "right")
MAX_NODES = 2_000_000      # solve(): any official board
GEN_NODES = 3_000          # generation: keep boards the solver settles quickly


def blank_delta(move):
    dr, dc = DIRS[move]
    return -dr, -dc          # the tile moves `move`, so the blank moves the other way


class Puzzle:
    """IDA* with Manhattan + linear conflict on a flat board."""

    def __init__(self, n):
        self.n = n
        self.goal = tuple(list(range(1, n * n)) + [0])
        self.grow = [None] + [(t - 1) // n for t in range(1, n * n)]
        self.gcol = [None] + [(t - 1) % n for t in range(1, n * n)]
        self._rows = [{} for _ in range(n)]   # line contents -> linear conflict (memo)
        self._cols = [{} for _ in range(n)]

    def line_conflict(self, tiles_goal_idx):
        # tiles already in their goal line, in board order, by goal index within the line
        k = len(tiles_goal_idx)
        if k < 2:
            return 0
        lis = [1] * k
        for i in range(k):
            for j in range(i):
                if tiles_goal_idx[j] < tiles_goal_idx[i] and lis[j] + 1 > lis[i]:
                    lis[i] = lis[j] + 1
        return 2 * (k - max(lis))

    def row_lc(self, b, r):
        n = self.n
        key = tuple(b[r * n:(r + 1) * n])
        v = self._rows[r].get(key)
        if v is None:
            v = self._rows[r][key] = self.line_conflict([self.gcol[t] for t in key
                                                         if t and self.grow[t] == r])
        return v

    def col_lc(self, b, c):
        key = tuple(b[c::self.n])
        v = self._cols[c].get(key)
        if v is None:
            v = self._cols[c][key] = self.line_conflict([self.grow[t] for t in key
                                                         if t and self.gcol[t] == c])
        return v

    def h(self, b):
        n = self.n
        md = sum(abs(i // n - self.grow[t]) + abs(i % n - self.gcol[t])
                 for i, t in enumerate(b) if t)
        return md + sum(self.row_lc(b, r) for r in range(n)) + sum(self.col_lc(b, c)
                                                                    for c in range(n))

    def neighbours(self, b, z):
        n = self.n
        r, c = divmod(z, n)
        for m in MOVES:
            dr, dc = blank_delta(m)
            rr, cc = r + dr, c + dc
            if 0 <= rr < n and 0 <= cc < n:
                yield m, rr * n + cc

    def _tables(self):
        """Per blank square: the legal moves (move, square the tile comes from, slide is
        horizontal); per tile and pair of squares: the change of its Manhattan distance."""
        if hasattr(self, "adj"):
            return
        n = self.n
        self.adj = [list(self.neighbours(None, z)) for z in range(n * n)]
        self.mdd = {}
        for t in range(1, n * n):
            for z in range(n * n):
                for m, nz in self.adj[z]:
                    zr, zc = divmod(z, n)
                    tr, tc = divmod(nz, n)
                    old = abs(tr - self.grow[t]) + abs(tc - self.gcol[t])
                    new = abs(zr - self.grow[t]) + abs(zc - self.gcol[t])
                    self.mdd[t, nz, z] = new - old

    def solve(self, board, trace=None, max_nodes=MAX_NODES):
        b = list(board)
        if tuple(b) == self.goal:
            return []
        self._tables()
        bound = self.h(b)
        path = []
        nodes = [0]
        n = self.n
        adj, mdd, row_lc, col_lc = self.adj, self.mdd, self.row_lc, self.col_lc
        opposite = {"up": "down", "down": "up", "left": "right", "right": "left", None: None}

        def dfs(z, g, hcur, last):
            if hcur == 0:
                return -1
            nodes[0] += 1
            if nodes[0] > max_nodes:
                raise TimeoutError
            best = 1 << 30
            back = opposite[last]
            zr, zc = divmod(z, n)
            for m, nz in adj[z]:
                if m == back:
                    continue
                t = b[nz]
                tr, tc = divmod(nz, n)
                if zr == tr:   # horizontal slide: only the two columns' conflicts change
                    before = col_lc(b, zc) + col_lc(b, tc)
                    b[z], b[nz] = t, 0
                    after = col_lc(b, zc) + col_lc(b, tc)
                else:          # vertical slide: only the two rows' conflicts change
                    before = row_lc(b, zr) + row_lc(b, tr)
                    b[z], b[nz] = t, 0
                    after = row_lc(b, zr) + row_lc(b, tr)
                hn = hcur + mdd[t, nz, z] - before + after
                f = g + 1 + hn
                if f > bound:
                    res = f
                else:
                    path.append(m)
                    res = dfs(nz, g + 1, hn, m)
                    if res == -1:
                        return -1
                    path.pop()
                b[z], b[nz] = 0, t
                if res < best:
                    best = res
            return best

        z0 = b.index(0)
        h0 = bound
        try:
            while True:
                start_nodes = nodes[0]
                res = dfs(z0, 0, h0, None)
                if res == -1:
                    if trace is not None:
                        trace.append(("found", bound, nodes[0] - start_nodes))
                    return list(path)
                if trace is not None:
                    trace.append(("raise", bound, nodes[0] - start_nodes, res))
                if res >= 1 << 30:
                    return None
                bound = res
        except TimeoutError:
            return None


_PUZZLES = {}


def puzzle(n) -> Puzzle:
    """One solver per board size, so its line-conflict memo is shared between solves."""
    if n not in _PUZZLES:
        _PUZZLES[n] = Puzzle(n)
    return _PUZZLES[n]


def flat(state):
    return [t for row in state for t in row]


def replay(state, moves):
    """Boards after each move (flat lists), or None at an impossible move."""
    n = len(state)
    b = flat(state)
    z = b.index(0)
    out = [list(b)]
    for m in moves:
        r, c = divmod(z, n)
        dr, dc = blank_delta(m)
        rr, cc = r + dr, c + dc
        if not (0 <= rr < n and 0 <= cc < n):
            return None
        nz = rr * n + cc
        b[z], b[nz] = b[nz], 0
        z = nz
        out.append(list(b))
    return out


def valid_state(state) -> bool:
    if not isinstance(state, list) or not 2 <= len(state) <= 8:
        return False
    n = len(state)
    if not all(isinstance(row, list) and len(row) == n for row in state):
        return False
    vals = flat(state)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return False
    return sorted(vals) == list(range(n * n))


def grid_text(b, n):
    w = len(str(n * n - 1))
    return "\n".join(" ".join((str(t) if t else "_").rjust(w) for t in b[r * n:(r + 1) * n])
                     for r in range(n))


class SlidingPuzzle(Task):
    name = "slidingpuzzle"
    official = "slidingpuzzle"
    group = "Games"
    answer_shape = formats.MOVES

    def make(self, rng, level):
        n, lo, hi = LEVELS[level]
        pz = puzzle(n)
        for _ in range(1000):
            b = list(pz.goal)
            z = n * n - 1
            last = None
            for _ in range(rng.randint(lo, hi + 8)):
                opts = [(m, nz) for m, nz in pz.neighbours(b, z)
                        if last is None or DIRS[m] != tuple(-x for x in DIRS[last])]
                m, nz = rng.choice(opts)
                b[z], b[nz] = b[nz], 0
                z, last = nz, m
            if pz.h(b) < lo:                  # cannot reach the window: skip the search
                continue
            sol = pz.solve(b, max_nodes=GEN_NODES)
            if sol is None or not lo <= len(sol) <= hi:
                continue
            state = [b[r * n:(r + 1) * n] for r in range(n)]
            return state, sol, {"n": n, "optimal_moves": len(sol), "min_moves": lo,
                                "max_moves": hi}
        raise RuntimeError("slidingpuzzle: no board in the window")

    def solve(self, state):
        return puzzle(len(state)).solve(flat(state))

    def format_answer(self, solution) -> str:
        return " ".join(solution)

    def check(self, answer, state) -> bool:
        if not valid_state(state):
            return False
        moves = parse_moves(answer)
        if moves is None:
            return False
        boards = replay(state, moves)
        return boards is not None and tuple(boards[-1]) == puzzle(len(state)).goal

    def state_to_str(self, state) -> str:
        return str(state)

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):
            v = next((x for x in v.values() if isinstance(x, list)), None)
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, int) for x in v):
            k = int(round(len(v) ** 0.5))          # a flat list of N*N numbers
            if k * k == len(v):
                v = [list(v[r * k:(r + 1) * k]) for r in range(k)]
        if isinstance(v, (list, tuple)):
            v = [list(row) if isinstance(row, (list, tuple)) else row for row in v]
        if not valid_state(v):
            raise ValueError(f"slidingpuzzle: not an N x N permutation: {str(text)[:60]!r}")
        return v

    def render(self, state):
        n = len(state)
        tile, gap = (96 if n <= 3 else 84), 6
        side = n * tile + (n + 1) * gap
        top = 40
        img, d = draw.canvas(side + 40, side + top + 20)
        draw.title(d, img.width, f"{n}x{n} sliding puzzle", size=18, y=20)
        for r in range(n):
            for c in range(n):
                t = state[r][c]
                x = 20 + gap + c * (tile + gap)
                y = top + gap + r * (tile + gap)
                if t:
                    d.rounded_rectangle([x, y, x + tile, y + tile], radius=8, fill=(173, 216, 230),
                                        outline=draw.BLACK, width=2)
                    draw.center_text(d, (x + tile / 2, y + tile / 2), t, size=36)
                else:
                    d.rectangle([x, y, x + tile, y + tile], fill=(245, 245, 245),
                                outline=draw.LIGHT, width=1)
        return [img]

    def question(self, state, text_only=False) -> str:
        n = len(state)
        last = n * n - 1
        goal = [list(range(r * n + 1, r * n + n + 1)) for r in range(n)]
        goal[-1][-1] = 0
        rules = (f"Solve this {n}x{n} sliding puzzle. The board holds tiles numbered 1 to {last} "
                 f"and one empty space. A move slides a tile that is next to the empty space "
                 f"(above, below, left or right of it) into the empty space. Goal: the tiles in "
                 f"order 1, 2, ..., {last} row by row from the top left, with the empty space in "
                 f"the bottom-right corner, i.e. {goal} with 0 for the empty space.")
        if text_only:
            where = (f"The current board, row by row from the top, with 0 for the empty space: "
                     f"{state}")
        else:
            where = "The image shows the current board; the empty space is the blank square."
        fmt = ("Name each move by the direction in which the TILE slides: 'up' means the tile "
               "below the empty space slides up into it, 'down' the tile above it slides down, "
               "'left' the tile to its right slides left, 'right' the tile to its left slides "
               "right. Answer with the moves separated by spaces, for example: left right up down")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def skeleton(self, state):
        n = len(state)
        pz = puzzle(n)
        b = flat(state)
        steps = [
            step("rule", "A move slides a tile into the empty space and is named by the tile's "
                         "direction (the empty space moves the opposite way). Goal: 1..N*N-1 in "
                         "reading order, empty space last."),
            step("read", f"{n}x{n} board (_ = empty):\n{grid_text(b, n)}"),
            step("step", f"Estimate: Manhattan distances plus linear conflicts give at least "
                         f"{pz.h(b)} moves. Search depth-first with that bound, raising it when "
                         f"every branch overshoots (IDA*)."),
        ]
        trace = []
        moves = pz.solve(b, trace)
        for ev in trace:
            if ev[0] == "raise":
                _, bound, nodes, nxt = ev
                steps.append(step("backtrack", f"Bound {bound}: explored {nodes} positions, every "
                                               f"line of play needs more than {bound} moves; all "
                                               f"abandoned. Raise the bound to {nxt}."))
            else:
                _, bound, nodes = ev
                steps.append(step("step", f"Bound {bound}: after {nodes} positions a line of play "
                                          f"reaches the goal in {len(moves)} moves."))
        boards = replay(state, moves)
        rep = []
        for i, m in enumerate(moves):
            z0 = boards[i].index(0)
            tile = boards[i + 1][z0]
            rep.append(step("step", f"Move {i + 1}: {m} (tile {tile} slides {m}).\n"
                                    f"{grid_text(boards[i + 1], n)}"))
        steps += cap(rep, 60, "moves")
        steps.append(step("check", f"Replaying the {len(moves)} moves: every move slides a tile "
                                   f"next to the empty space, and the final board is the goal."))
        steps.append(step("answer", self.format_answer(moves)))
        return steps


TASK = SlidingPuzzle()
