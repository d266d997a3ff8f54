"""Sokoban: push every box onto a goal square.

State: the official ASCII rows (`#` wall, ` ` floor, `.` goal, `$` box, `*` box on a goal,
`@` player, `+` player on a goal), one string per row, all rows of equal width.

Generator: a room carved by a random walk inside a walled rectangle, goals drawn on its
floor, then reverse play (the player walks about and pulls boxes off the goals), so every
state is solvable by construction. The solver then finds the optimal solution and the
instance is kept only if its length lies in the level's window.

Solver: A* over push states (box squares + the player's exact square after the push);
an edge is "walk by a shortest path to the square behind a box, then push it once", so its
cost is walking moves + 1 and the search is optimal in MOVES (the answer's length). The
heuristic (sum over boxes of the fewest pushes to any goal, ignoring the other boxes) is
consistent. Pruned: pushes onto dead squares (a box there can never reach a goal: corners,
most wall edges) and pushes that freeze a 2x2 block of boxes and walls off-goal.

Answer: moves `up right down left` (u/d/l/r accepted). Verified by replay: a move into a
wall, or a push into a wall or another box, fails; at the end every box must be on a goal.
"""
from __future__ import annotations

import heapq
from collections import deque
from itertools import permutations

from . import draw, formats
from ._games import cap, label_grid, parse_moves
from .base import Task, step

D4 = ("up", "right", "down", "left")
DELTA = [(-1, 0), (0, 1), (1, 0), (0, -1)]

# level: (grid side range, boxes, optimal moves window, floor fraction of the interior)
LEVELS = {
    1: ((5, 7), 1, (4, 15), 0.75),
    2: ((7, 9), 1, (10, 25), 0.6),
    3: ((7, 9), 2, (14, 40), 0.6),
    4: ((11, 13), 2, (20, 50), 0.42),
    5: ((11, 13), 3, (25, 60), 0.35),
}
MAX_EXPANSIONS = 60_000     # solve(): any official level
GEN_EXPANSIONS = 700        # generation: keep only levels the solver settles quickly
FLOOR_CHARS = {" ": (False, False, False), "-": (False, False, False), "_": (False, False, False),
               ".": (True, False, False), "$": (False, True, False), "*": (True, True, False),
               "@": (False, False, True), "+": (True, False, True)}


class Board:
    """A parsed level: flat indices r * W + c, neighbour table nb[i][d] (-1 = wall)."""

    def __init__(self, rows: list[str]):
        self.H, self.W = len(rows), max(len(r) for r in rows)
        H, W = self.H, self.W
        self.floor = [False] * (H * W)
        goals, boxes, players = [], [], []
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if ch == "#":
                    continue
                if ch not in FLOOR_CHARS:
                    raise ValueError(f"unknown sokoban symbol {ch!r}")
                g, b, p = FLOOR_CHARS[ch]
                i = r * W + c
                self.floor[i] = True
                if g:
                    goals.append(i)
                if b:
                    boxes.append(i)
                if p:
                    players.append(i)
        if len(players) != 1 or not boxes or len(goals) < len(boxes) or len(boxes) > 8:
            raise ValueError("a sokoban level needs one player and a goal for every box")
        self.goals, self.boxes, self.player = tuple(goals), tuple(boxes), players[0]
        self.goalset = frozenset(goals)
        self.nb = []
        for i in range(H * W):
            r, c = divmod(i, W)
            row = []
            for dr, dc in DELTA:
                rr, cc = r + dr, c + dc
                j = rr * W + cc
                row.append(j if 0 <= rr < H and 0 <= cc < W and self.floor[j] else -1)
            self.nb.append(row)
        self.push_dist = self._push_distances()

    def rc(self, i):
        return divmod(i, self.W)

    def _push_distances(self):
        """Fewest pushes from each square to each goal, other boxes ignored (None = never).
        Returns (per-goal tables, min over goals); a square with min None is dead."""
        n = self.H * self.W
        tables = []
        for g in self.goals:
            dist = [None] * n
            dist[g] = 0
            q = deque([g])
            while q:
                y = q.popleft()
                for d in range(4):
                    x = self.nb[y][(d + 2) % 4]      # the box came from x, pushed in direction d
                    if x < 0 or dist[x] is not None:
                        continue
                    if self.nb[x][(d + 2) % 4] < 0:  # the player had to stand behind x
                        continue
                    dist[x] = dist[y] + 1
                    q.append(x)
            tables.append(dist)
        best = [None] * n
        for i in range(n):
            vals = [t[i] for t in tables if t[i] is not None]
            best[i] = min(vals) if vals else None
        self.goal_dist = tables
        return best

    def lower_bound(self, boxes) -> int | None:
        """Fewest pushes if each box went to its own goal (best assignment), None if none."""
        best = None
        for perm in permutations(range(len(self.goals)), len(boxes)):
            tot = 0
            for b, gi in zip(boxes, perm):
                v = self.goal_dist[gi][b]
                if v is None:
                    break
                tot += v
            else:
                if best is None or tot < best:
                    best = tot
        return best

    def reach(self, start, boxes):
        """BFS distances and parents of the player from `start`, boxes blocking."""
        dist = {start: 0}
        par = {start: None}
        q = [start]
        nb = self.nb
        for u in q:
            du = dist[u] + 1
            for d, v in enumerate(nb[u]):
                if v >= 0 and v not in dist and v not in boxes:
                    dist[v] = du
                    par[v] = (u, d)
                    q.append(v)
        return dist, par

    def frozen(self, t, boxes) -> bool:
        """A 2x2 block of walls/boxes containing t with a box off its goal: never movable."""
        W = self.W
        r, c = divmod(t, W)
        for r0 in (r - 1, r):
            for c0 in (c - 1, c):
                cells = [(r0, c0), (r0, c0 + 1), (r0 + 1, c0), (r0 + 1, c0 + 1)]
                blocked, off = True, False
                for rr, cc in cells:
                    j = rr * W + cc
                    if not (0 <= rr < self.H and 0 <= cc < W) or not self.floor[j]:
                        continue
                    if j in boxes:
                        off = off or j not in self.goalset
                        continue
                    blocked = False
                    break
                if blocked and off:
                    return True
        return False


def solve_board(bd: Board, trace: list | None = None, limit: int = MAX_EXPANSIONS,
                bound: int = 1 << 30):
    """A* (optimal in moves). Returns (moves, pushes) or None (also when the search passes
    `limit` expansions or every open plan is longer than `bound` moves). `trace` collects
    events."""
    hcache = {}

    def h(boxes):
        v = hcache.get(boxes)
        if v is None:
            v = hcache[boxes] = bd.lower_bound(boxes)
        return v

    start = (bd.player, tuple(sorted(bd.boxes)))
    if h(start[1]) is None:
        return None
    best = {start: 0}
    parent = {start: None}
    heap = [(h(start[1]), 0, 0, start)]
    counter = 0
    expansions = 0
    while heap:
        f, negg, _, key = heapq.heappop(heap)
        g = -negg
        if best.get(key, -1) < g:
            continue
        if f > bound:
            return None
        p, boxes = key
        if all(b in bd.goalset for b in boxes):
            if trace is not None:
                trace.append(("done", g, expansions))
            return _reconstruct(bd, parent, key)
        expansions += 1
        if expansions > limit:
            return None
        if trace is not None:
            trace.append(("expand", g, f - g, p, boxes))
        bset = set(boxes)
        dist, _ = bd.reach(p, bset)
        children = 0
        for b in boxes:
            for d in range(4):
                pp, t = bd.nb[b][(d + 2) % 4], bd.nb[b][d]
                if pp < 0 or t < 0 or pp not in dist or t in bset:
                    continue
                if bd.push_dist[t] is None:
                    if trace is not None:
                        trace.append(("dead", b, d, t))
                    continue
                nboxes = tuple(sorted([x for x in boxes if x != b] + [t]))
                if t not in bd.goalset and bd.frozen(t, set(nboxes)):
                    if trace is not None:
                        trace.append(("frozen", b, d, t))
                    continue
                ng = g + dist[pp] + 1
                nkey = (b, nboxes)
                if ng < best.get(nkey, 1 << 30):
                    hn = h(nboxes)
                    if hn is None:                   # the boxes cannot all get distinct goals
                        if trace is not None:
                            trace.append(("nomatch", b, d, t))
                        continue
                    best[nkey] = ng
                    parent[nkey] = (key, b, d)
                    counter += 1
                    heapq.heappush(heap, (ng + hn, -ng, counter, nkey))
                    children += 1
        if children == 0 and trace is not None:
            trace.append(("deadend", p, boxes))
    return None


def _reconstruct(bd: Board, parent, key):
    pushes = []
    while parent[key] is not None:
        prev, b, d = parent[key]
        pushes.append((prev, b, d))
        key = prev
    pushes.reverse()
    moves = []
    for (p, boxes), b, d in pushes:
        target = bd.nb[b][(d + 2) % 4]
        _, par = bd.reach(p, set(boxes))
        walk = []
        u = target
        while par[u] is not None:
            u, dd = par[u]
            walk.append(D4[dd])
        moves.extend(reversed(walk))
        moves.append(D4[d])
    return moves, len(pushes)


def replay(rows: list[str], moves: list[str]):
    """Apply moves; returns the list of (player, boxes) states, or None on an illegal move."""
    bd = Board(rows)
    p, boxes = bd.player, set(bd.boxes)
    states = [(p, frozenset(boxes))]
    for m in moves:
        d = D4.index(m)
        q = bd.nb[p][d]
        if q < 0:
            return None                      # walked into a wall (or off the board)
        if q in boxes:
            t = bd.nb[q][d]
            if t < 0 or t in boxes:
                return None                  # pushed a box into a wall or another box
            boxes.remove(q)
            boxes.add(t)
        p = q
        states.append((p, frozenset(boxes)))
    return states


def draw_rows(bd: Board, p, boxes) -> list[str]:
    out = []
    for r in range(bd.H):
        row = []
        for c in range(bd.W):
            i = r * bd.W + c
            if not bd.floor[i]:
                row.append("#")
                continue
            g = i in bd.goalset
            if i in boxes:
                row.append("*" if g else "$")
            elif i == p:
                row.append("+" if g else "@")
            else:
                row.append("." if g else " ")
        out.append("".join(row))
    return out


class Sokoban(Task):
    name = "sokoban"
    official = "sokoban"
    group = "Games"
    answer_shape = formats.MOVES

    # ---- generation -----------------------------------------------------------------
    def _room(self, rng, H, W, frac):
        grid = [["#"] * W for _ in range(H)]
        inner = [(r, c) for r in range(1, H - 1) for c in range(1, W - 1)]
        target = max(5, int(frac * len(inner)))
        r, c = rng.choice(inner)
        d = rng.randrange(4)
        carved = 0
        for _ in range(40 * len(inner)):
            if grid[r][c] == "#":
                grid[r][c] = " "
                carved += 1
            if carved >= target:
                break
            if rng.random() < 0.3:
                d = rng.randrange(4)
            nr, nc = r + DELTA[d][0], c + DELTA[d][1]
            if 1 <= nr < H - 1 and 1 <= nc < W - 1:
                r, c = nr, nc
            else:
                d = rng.randrange(4)
        return grid

    def _reverse_play(self, rng, bd: Board, goals, rounds):
        """Pull boxes off the goals: each round the player walks (by a legal path) to a box
        and pulls it one or more squares. Returns the (player, boxes) after every round."""
        boxes = set(goals)
        free = [i for i in range(bd.H * bd.W) if bd.floor[i] and i not in boxes]
        p = rng.choice(free)
        snaps = []
        for _ in range(rounds):
            dist, _ = bd.reach(p, boxes)
            opts = []
            for b in sorted(boxes):
                for d in range(4):
                    s = bd.nb[b][d]                  # the player stands on side d of the box
                    if s < 0 or s not in dist:
                        continue
                    to = bd.nb[s][d]                 # ... and steps further away, pulling it
                    if to >= 0 and to not in boxes:
                        opts.append((b, d))
            if not opts:
                break
            b, d = rng.choice(opts)
            while True:
                s = bd.nb[b][d]
                to = bd.nb[s][d] if s >= 0 else -1
                if to < 0 or to in boxes:
                    break
                boxes.remove(b)
                boxes.add(s)
                b, p = s, to
                if rng.random() < 0.45:
                    break
            if rng.random() < 0.5:                   # wander off a little before the next pull
                dist, _ = bd.reach(p, boxes)
                p = rng.choice(sorted(dist))
            snaps.append((p, frozenset(boxes)))
        return snaps

    def make(self, rng, level):
        (lo, hi), n_boxes, (min_len, max_len), frac = LEVELS[level]
        for _ in range(400):
            H, W = rng.randint(lo, hi), rng.randint(lo, hi)
            grid = self._room(rng, H, W, frac)
            cells = [(r, c) for r in range(H) for c in range(W) if grid[r][c] == " "]
            if len(cells) < 2 * n_boxes + 3:
                continue
            goals = rng.sample(cells, n_boxes)
            for r, c in goals:
                grid[r][c] = "."
            rows0 = ["".join(row) for row in grid]
            # a throwaway board (player/box placeholders) for the geometry
            tmp = [list(row) for row in rows0]
            for (r, c) in goals:
                tmp[r][c] = "*"
            pr, pc = next(x for x in cells if x not in goals)
            tmp[pr][pc] = "@"
            geo = Board(["".join(row) for row in tmp])
            gi = [r * W + c for r, c in goals]
            snaps = self._reverse_play(rng, geo, gi, 8 * n_boxes + 2)
            # the snapshots whose boxes are farthest (in pushes) from the goals first
            snaps = sorted(set(snaps), key=lambda s: (-sum(geo.push_dist[b] for b in s[1]),
                                                      s[0], sorted(s[1])))
            found = None
            for p, boxes in snaps[:2]:
                if all(b in geo.goalset for b in boxes):
                    continue
                rows = draw_rows(geo, p, boxes)
                bd = Board(rows)
                res = solve_board(bd, limit=GEN_EXPANSIONS, bound=max_len)
                if res is not None and min_len <= len(res[0]) <= max_len:
                    found = rows, bd, res
                    break
            if found is None:
                continue
            rows, bd, (moves, pushes) = found
            meta = {"height": H, "width": W, "boxes": n_boxes, "optimal_moves": len(moves),
                    "pushes": pushes, "max_moves": max_len, "min_moves": min_len,
                    "floor_cells": sum(bd.floor), "optimal_in": "moves"}
            return rows, moves, meta
        raise RuntimeError("sokoban: no instance in the level's window after 400 tries")

    def solve(self, state):
        res = solve_board(Board(state))
        return None if res is None else res[0]

    # ---- answer -----------------------------------------------------------------------
    def format_answer(self, solution) -> str:
        return " ".join(solution)

    def check(self, answer, state) -> bool:
        moves = parse_moves(answer)
        if moves is None:
            return False
        states = replay(state, moves)
        if states is None:
            return False
        bd = Board(state)
        return all(b in bd.goalset for b in states[-1][1])

    # ---- official strings ---------------------------------------------------------------
    def state_to_str(self, state) -> str:
        return "\n".join(state)

    def state_from_str(self, text):
        if isinstance(text, list):
            rows = [str(r) for r in text]
        else:
            rows = [r.rstrip("\r") for r in str(text).split("\n")]
            while rows and not rows[0].strip():
                rows.pop(0)
            while rows and not rows[-1].strip():
                rows.pop()
        if not rows or len(rows) > 100:
            raise ValueError("sokoban: expected ASCII rows")
        width = max(len(r) for r in rows)
        rows = [r + "#" * (width - len(r)) for r in rows]   # ragged rows: pad with wall
        Board(rows)                                          # validate
        return rows

    # ---- presentation -----------------------------------------------------------------
    def render(self, state):
        bd = Board(state)
        cell = 52 if max(bd.H, bd.W) <= 9 else 46
        boxes = set(bd.boxes)

        def fill(d, r, c, x, y):
            i = r * bd.W + c
            if not bd.floor[i]:
                d.rectangle([x, y, x + cell, y + cell], fill=(120, 80, 60))
                d.line([(x, y + cell / 2), (x + cell, y + cell / 2)], fill=(95, 62, 45), width=2)
                return
            d.rectangle([x, y, x + cell, y + cell], fill=(236, 228, 214))
            m = cell * 0.14
            if i in bd.goalset:
                d.ellipse([x + 2.2 * m, y + 2.2 * m, x + cell - 2.2 * m, y + cell - 2.2 * m],
                          fill=(255, 215, 0), outline=(170, 130, 0), width=2)
            if i in boxes:
                col = (60, 150, 60) if i in bd.goalset else (50, 100, 180)
                d.rectangle([x + m, y + m, x + cell - m, y + cell - m], fill=col,
                            outline=draw.BLACK, width=2)
                d.line([(x + m, y + m), (x + cell - m, y + cell - m)], fill=draw.BLACK, width=1)
                d.line([(x + cell - m, y + m), (x + m, y + cell - m)], fill=draw.BLACK, width=1)
            elif i == bd.player:
                d.ellipse([x + m, y + m, x + cell - m, y + cell - m], fill=(220, 40, 40),
                          outline=draw.BLACK, width=2)
        img, d, ox, oy = label_grid(bd.H, bd.W, cell, fill, caption="Sokoban")
        return [img]

    RULES = ("Solve this Sokoban puzzle. You control the player, who moves one square at a time "
             "up, down, left or right. Walking into a box pushes it one square in the same "
             "direction, but only if the square beyond the box is free floor (not a wall and not "
             "another box). Boxes cannot be pulled, and the player cannot walk through walls or "
             "boxes. The puzzle is solved when every box stands on a goal square.")

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = ("The level, one text line per row (row 0 at the top):\n"
                     + "\n".join(state) + "\n\n"
                     "Legend: '#' wall, ' ' (space) floor, '.' goal, '$' box, '*' box already on "
                     "a goal, '@' player, '+' player standing on a goal.")
        else:
            where = ("The image shows the level: brown squares are walls, light squares are floor, "
                     "yellow discs are goals, blue crossed squares are boxes (green when a box is "
                     "on a goal) and the red disc is the player. Row and column numbers are "
                     "written along the edges.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the sequence of player moves, separated "
                f"by spaces, each one of up, down, left, right (for example: up right down left).")

    # ---- skeleton ---------------------------------------------------------------------
    def skeleton(self, state):
        bd = Board(state)
        rc = bd.rc
        steps = [
            step("rule", "Each move shifts the player one square; moving into a box pushes it if "
                         "the square beyond is free. No pulling, no walking through walls or "
                         "boxes. "
                         "Goal: every box on a goal square, in as few moves as possible."),
            step("read", "The level:\n" + "\n".join(state) + f"\nPlayer at {rc(bd.player)}; boxes "
                         f"at {[rc(b) for b in bd.boxes]}; goals at {[rc(g) for g in bd.goals]}."),
        ]
        dead = [rc(i) for i in range(bd.H * bd.W) if bd.floor[i] and bd.push_dist[i] is None]
        steps.append(step("step", f"Dead squares (a box pushed there can never reach a goal, "
                                  f"e.g. corners): {dead if dead else 'none'}."))
        lb = bd.lower_bound(bd.boxes)
        steps.append(step("step", "Lower bound: with each box sent to its own goal, the boxes need "
                                  f"at least {lb} pushes in total (walking not counted)."))
        trace = []
        res = solve_board(bd, trace)
        moves, pushes = res
        search, seen = [], set()
        for ev in trace:
            if ev[0] == "expand":
                _, g, hh, p, boxes = ev
                search.append(step("step", f"Explore: player at {rc(p)}, boxes at "
                                           f"{[rc(b) for b in boxes]} after {g} moves; at least "
                                           f"{hh} more pushes needed."))
            elif ev[0] in ("dead", "frozen", "nomatch"):
                _, b, d, t = ev
                if ev in seen:                       # the same doomed push, met again: say it once
                    continue
                seen.add(ev)
                why = {"dead": "a dead square",
                       "frozen": "a spot where it locks into a 2x2 block with walls/boxes",
                       "nomatch": "a square from which the boxes can no longer reach distinct "
                                  "goals"}[ev[0]]
                search.append(step("backtrack", f"Pushing the box at {rc(b)} {D4[d]} would put it "
                                                f"on {rc(t)}, {why}: reject that push."))
            elif ev[0] == "deadend":
                search.append(step("backtrack", "No new useful push from this state: dead end, go "
                                                "back to the most promising open state."))
        steps += cap(search, 60, "search steps")
        steps.append(step("step", f"The search reaches all boxes on goals with {len(moves)} moves "
                                  f"({pushes} pushes); no cheaper plan remains open."))
        states = replay(state, moves)
        replay_steps, walk, k = [], [], 0
        for i, m in enumerate(moves):
            before, after = states[i], states[i + 1]
            if before[1] == after[1]:
                walk.append(m)
                continue
            k += 1
            moved = sorted(before[1] - after[1])[0]
            to = sorted(after[1] - before[1])[0]
            txt = (f"Push {k}: " + (f"walk {' '.join(walk)}, then " if walk else "")
                   + f"push {m}: box {rc(moved)} -> {rc(to)}"
                   + (" (on a goal)" if to in bd.goalset else "") + ".\n"
                   + "\n".join(draw_rows(bd, after[0], after[1])))
            replay_steps.append(step("step", txt))
            walk = []
        steps += cap(replay_steps, 40, "pushes")
        steps.append(step("check", f"Replaying all {len(moves)} moves: no move hits a wall, no box "
                                   f"is pushed into a wall or box, and at the end every box is on "
                                   f"a goal."))
        steps.append(step("answer", self.format_answer(moves)))
        return steps


TASK = Sokoban()
