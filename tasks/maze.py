"""Maze: walk from S to E through a wall maze.

State: the official drawing, one string per row: an n x n maze of cells becomes
(2n+1) x (2n+1) characters; `+` at wall corners, `-` a horizontal wall, `|` a vertical
wall, a space an open passage, `0` a cell, `S` the start cell and `E` the end cell.

Levels: n = 3/5/7/9/11 cells per side. Generator: a perfect maze (randomised depth-first
search: exactly one simple path between any two cells); S is a random cell and E the cell
farthest from it (as the official generator does; ties broken in reading order).
Solver: BFS (shortest path, which in a perfect maze is the only simple path).

Answer: moves `right down left up` (u/d/l/r accepted). Verified by replay: every move must go
through an open passage (walls block and the outer border blocks; the official evaluation
copy ignores walls, this one does not) and the walk must end on E. Revisiting cells is
allowed (any walk that ends on E passes).
"""
from __future__ import annotations

from collections import deque

from . import draw, formats
from ._games import DIRS, cap, label_grid, parse_moves
from .base import Task, step

SIZES = {1: 3, 2: 5, 3: 7, 4: 9, 5: 11}
ORDER = ("right", "down", "left", "up")     # the official solver's direction order


class Maze:
    """Parsed drawing: n, start, end, open(cell, direction)."""

    def __init__(self, rows: list[str]):
        if not rows or len(rows) % 2 == 0 or len(rows) > 201:
            raise ValueError("maze: expected 2n+1 rows")
        self.rows = rows
        self.n = (len(rows) - 1) // 2
        n = self.n
        if n < 1 or any(len(r) < 2 * n + 1 for r in rows):
            raise ValueError("maze: rows too short")
        self.start = self.end = None
        for r in range(n):
            for c in range(n):
                ch = rows[2 * r + 1][2 * c + 1]
                if ch == "S":
                    self.start = (r, c)
                elif ch == "E":
                    self.end = (r, c)
        if self.start is None or self.end is None:
            raise ValueError("maze: needs S and E")

    def open(self, cell, move) -> bool:
        r, c = cell
        dr, dc = DIRS[move]
        nr, nc = r + dr, c + dc
        if not (0 <= nr < self.n and 0 <= nc < self.n):
            return False
        return self.rows[2 * r + 1 + dr][2 * c + 1 + dc] == " "

    def neighbours(self, cell):
        for m in ORDER:
            if self.open(cell, m):
                yield m, (cell[0] + DIRS[m][0], cell[1] + DIRS[m][1])

    def bfs(self):
        par = {self.start: None}
        q = deque([self.start])
        while q:
            u = q.popleft()
            if u == self.end:
                break
            for m, v in self.neighbours(u):
                if v not in par:
                    par[v] = (u, m)
                    q.append(v)
        if self.end not in par:
            return None
        path, u = [], self.end
        while par[u] is not None:
            u, m = par[u]
            path.append(m)
        return path[::-1]


def carve(rng, n):
    """Randomised DFS (iterative): returns the set of open walls {(cell, cell)}."""
    open_ = set()
    start = (rng.randrange(n), rng.randrange(n))
    seen, stack = {start}, [start]
    while stack:
        r, c = stack[-1]
        nxt = [(r + dr, c + dc) for dr, dc in DIRS.values()
               if 0 <= r + dr < n and 0 <= c + dc < n and (r + dr, c + dc) not in seen]
        if not nxt:
            stack.pop()
            continue
        v = rng.choice(nxt)
        open_.add(frozenset(((r, c), v)))
        seen.add(v)
        stack.append(v)
    return open_


def drawing(n, open_, start, end) -> list[str]:
    g = [["+" if r % 2 == 0 and c % 2 == 0 else " " for c in range(2 * n + 1)]
         for r in range(2 * n + 1)]
    for r in range(n):
        for c in range(n):
            g[2 * r + 1][2 * c + 1] = "0"
            if c + 1 == n or frozenset(((r, c), (r, c + 1))) not in open_:
                g[2 * r + 1][2 * c + 2] = "|"
            if r + 1 == n or frozenset(((r, c), (r + 1, c))) not in open_:
                g[2 * r + 2][2 * c + 1] = "-"
            if c == 0:
                g[2 * r + 1][0] = "|"
            if r == 0:
                g[0][2 * c + 1] = "-"
    g[2 * start[0] + 1][2 * start[1] + 1] = "S"
    g[2 * end[0] + 1][2 * end[1] + 1] = "E"
    return ["".join(row) for row in g]


class MazeTask(Task):
    name = "maze"
    official = "maze"
    group = "Games"
    answer_shape = formats.MOVES

    def make(self, rng, level):
        n = SIZES[level]
        open_ = carve(rng, n)
        start = (rng.randrange(n), rng.randrange(n))
        # farthest cell from S (BFS over the carved passages)
        dist = {start: 0}
        q = deque([start])
        while q:
            u = q.popleft()
            for dr, dc in DIRS.values():
                v = (u[0] + dr, u[1] + dc)
                if v not in dist and frozenset((u, v)) in open_:
                    dist[v] = dist[u] + 1
                    q.append(v)
        far = max(dist.values())
        end = min(c for c, dd in dist.items() if dd == far)
        rows = drawing(n, open_, start, end)
        path = Maze(rows).bfs()
        return rows, path, {"size": n, "path_length": len(path)}

    def solve(self, state):
        return Maze(state).bfs()

    def format_answer(self, solution) -> str:
        return " ".join(solution)

    def check(self, answer, state) -> bool:
        moves = parse_moves(answer)
        if moves is None:
            return False
        mz = Maze(state)
        cur = mz.start
        for m in moves:
            if not mz.open(cur, m):
                return False
            cur = (cur[0] + DIRS[m][0], cur[1] + DIRS[m][1])
        return cur == mz.end

    def state_to_str(self, state) -> str:
        return "\n".join(state)

    def state_from_str(self, text):
        rows = [r.rstrip("\r") for r in str(text).split("\n")]
        while rows and not rows[0].strip():
            rows.pop(0)
        while rows and not rows[-1].strip():
            rows.pop()
        Maze(rows)
        return rows

    def render(self, state):
        mz = Maze(state)
        n = mz.n
        cell = 56 if n <= 7 else 46

        def fill(d, r, c, x, y):
            d.rectangle([x, y, x + cell, y + cell], fill=(236, 243, 255))
        img, d, ox, oy = label_grid(n, n, cell, fill, caption="Maze", lines=False)
        for r in range(2 * n + 1):
            for c in range(2 * n + 1):
                ch = state[r][c]
                if ch == "-":
                    x0, y0 = ox + (c // 2) * cell, oy + (r // 2) * cell
                    d.line([(x0, y0), (x0 + cell, y0)], fill=draw.BLACK, width=4)
                elif ch == "|":
                    x0, y0 = ox + (c // 2) * cell, oy + (r // 2) * cell
                    d.line([(x0, y0), (x0, y0 + cell)], fill=draw.BLACK, width=4)
        sr, sc = mz.start
        er, ec = mz.end
        m = cell * 0.22
        x, y = ox + sc * cell, oy + sr * cell
        d.ellipse([x + m, y + m, x + cell - m, y + cell - m], fill=(80, 200, 120),
                  outline=(0, 100, 0), width=3)
        draw.center_text(d, (x + cell / 2, y + cell / 2), "S", size=16)
        x, y = ox + ec * cell, oy + er * cell
        d.line([(x + m, y + m), (x + cell - m, y + cell - m)], fill=(230, 60, 40), width=5)
        d.line([(x + cell - m, y + m), (x + m, y + cell - m)], fill=(230, 60, 40), width=5)
        return [img]

    RULES = ("Solve this maze. It is a square grid of cells with walls between some neighbouring "
             "cells. Starting in the start cell, move one cell at a time up, down, left or right; "
             "you may only move between two neighbouring cells when no wall separates them, and "
             "you may not leave the grid. Find a sequence of moves that ends in the end cell.")

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = ("The maze as text (each cell is a character at an odd row and odd column; "
                     "'+' are wall corners, '-' and '|' are walls, a space between two cells is an "
                     "open passage, '0' is an ordinary cell, 'S' the start cell and 'E' the end "
                     "cell):\n" + "\n".join(state))
        else:
            where = ("The image shows the maze: thick black lines are walls, the green disc marked "
                     "S is the start cell and the red cross is the end cell. Row and column "
                     "numbers are written along the edges.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the moves separated by spaces, each one "
                f"of up, down, left, right (for example: right down left up).")

    def skeleton(self, state):
        mz = Maze(state)
        steps = [
            step("rule", "Move between neighbouring cells only where no wall separates them; reach "
                         "E from S. Search depth-first (trying right, down, left, up in turn), "
                         "backing up from dead ends."),
            step("read", f"{mz.n}x{mz.n} maze; start S at (row, col) {mz.start}, end E at "
                         f"{mz.end}.\n" + "\n".join(state)),
        ]
        # depth-first search with an explicit stack: its real trace, dead ends included
        trace = []
        path_cells, path_moves = [mz.start], []
        seen = {mz.start}
        iters = [iter(list(mz.neighbours(mz.start)))]
        while path_cells[-1] != mz.end:
            nxt = next((mv for mv in iters[-1] if mv[1] not in seen), None)
            if nxt is None:
                dead = path_cells.pop()
                iters.pop()
                back = path_moves.pop()
                trace.append(step("backtrack", f"{dead} leads nowhere new (dead end): step back "
                                               f"to {path_cells[-1]} (undo '{back}')."))
                continue
            m, v = nxt
            seen.add(v)
            path_cells.append(v)
            path_moves.append(m)
            iters.append(iter(list(mz.neighbours(v))))
            trace.append(step("step", f"From {path_cells[-2]} go {m} to {v}."))
        steps += cap(trace, 110, "search steps")
        steps.append(step("step", f"Reached E at {mz.end}. Path: "
                                  + " -> ".join(str(c) for c in path_cells) + "."))
        steps.append(step("check", f"Replaying the {len(path_moves)} moves from S: each crosses an "
                                   f"open passage and the last one ends on E."))
        steps.append(step("answer", " ".join(path_moves)))
        return steps


TASK = MazeTask()
