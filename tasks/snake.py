"""Snake: draw a snake (a path of cells) from S to E; the numbers outside the grid say how
many snake cells each row and each column holds.

Rules as checked: the answer lists cells `(r,c) (r,c) ...` with 0-based row r (top = 0) and
column c (left = 0) - the official convention ("a coordinate sequence like (r,c) with
zero-based indices"); it starts at S, ends at E, moves one cell up/down/left/right per step,
never revisits a cell, and matches every row and column count. The snake never touches
itself: two snake cells that are not consecutive along it may not share a side, and may not
touch diagonally either, except the two cells around a bend (cells two apart along the
snake), which always touch diagonally at a corner. That is the usual reading of the
official rule "it cannot touch itself, even diagonally".

The generator draws a random non-touching snake and keeps it only when the solver proves it
is the only snake that fits the counts (unique solution); the verifier still accepts any
valid snake. State: {"grid": official S/E grid (None elsewhere), "row_counts",
"col_counts"}. Official `initial_state` is the bare grid; its counts are read from the
question text ("Row counts: 1, 2, ..." / "Column counts: ...").
"""
from __future__ import annotations

import re

from . import draw, formats
from ._paths import DIRS4, parse_pairs
from .base import Task, parse_literal, step

SIZES = {1: (5, 6), 2: (6, 7), 3: (8, 9), 4: (10, 11), 5: (12, 13)}
# snake length as a share of the cells (min, max)
LENGTH = {1: (0.28, 0.40), 2: (0.28, 0.40), 3: (0.26, 0.38), 4: (0.25, 0.36), 5: (0.24, 0.34)}
NODE_LIMIT = 200_000
GEN_NODE_LIMIT = 6_000
DIAG = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_COUNTS = {"row_counts": re.compile(r"Row counts?\s*:\s*([\d,\s]{1,400})", re.I),
           "col_counts": re.compile(r"Col(?:umn)?s? counts?\s*:\s*([\d,\s]{1,400})", re.I)}


class Limit(Exception):
    pass


def touches_ok(path_index, cell, k):
    """May `cell` be the k-th cell (0-based) of a snake whose cells are in path_index
    (cell -> index)? Orthogonal neighbours must be k-1; diagonal ones k-2 or later."""
    r, c = cell
    for dr, dc in DIRS4:
        j = path_index.get((r + dr, c + dc))
        if j is not None and j != k - 1:
            return False
    for dr, dc in DIAG:
        j = path_index.get((r + dr, c + dc))
        if j is not None and j < k - 2:
            return False
    return True


def find(grid, mark):
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if v == mark:
                return (r, c)
    return None


class Solver:
    """Depth-first search from S. Prunes with the remaining row/column counts (a full row
    or column is a wall; rows still needing cells must form one band the head can reach),
    the exact number of cells left (distance and parity to E), and the touching rule
    (a cell next to E must be the last before E)."""

    def __init__(self, state, trace=False, node_limit=NODE_LIMIT):
        self.R, self.C = len(state["grid"]), len(state["grid"][0])
        self.S, self.E = find(state["grid"], "S"), find(state["grid"], "E")
        self.rows, self.cols = list(state["row_counts"]), list(state["col_counts"])
        self.trace = [] if trace else None
        self.nodes, self.node_limit = 0, node_limit
        self.solutions = []

    @staticmethod
    def band_ok(rem, head, end):
        need = [i for i, v in enumerate(rem) if v > 0]
        if not need:
            return head == end
        a, b = need[0], need[-1]
        if b - a + 1 != len(need):
            return False  # a full row/column would have to be crossed
        return a - 1 <= head <= b + 1 and a <= end <= b

    def feasible(self, head, left):
        (r, c), (er, ec) = head, self.E
        dist = abs(r - er) + abs(c - ec)
        if dist > left or (left - dist) % 2:
            return "E cannot be reached with exactly the cells left"
        if not self.band_ok(self.rows, r, er):
            return "the rows still needing cells cannot all be reached"
        if not self.band_ok(self.cols, c, ec):
            return "the columns still needing cells cannot all be reached"
        if left > 0:
            if dist == 1 and left != 1:
                return "the snake would touch E before ending there"
            if abs(r - er) == 1 and abs(c - ec) == 1 and left != 2:
                return "the snake would touch E diagonally"
        return None

    def run(self, limit=2):
        if self.S is None or self.E is None:
            return []
        if self.rows[self.S[0]] < 1 or self.cols[self.S[1]] < 1:
            return []
        self.rows[self.S[0]] -= 1
        self.cols[self.S[1]] -= 1
        self.path, self.index = [self.S], {self.S: 0}
        self.left = sum(self.rows)
        if sum(self.cols) == self.left and self.feasible(self.S, self.left) is None:
            self._search(limit)
        return self.solutions

    def _search(self, limit):
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise Limit
        head = self.path[-1]
        if head == self.E:
            if self.left == 0:
                self.solutions.append(list(self.path))
            return
        options = []
        for dr, dc in DIRS4:
            cell = (head[0] + dr, head[1] + dc)
            if not (0 <= cell[0] < self.R and 0 <= cell[1] < self.C) or cell in self.index:
                continue
            if self.rows[cell[0]] < 1 or self.cols[cell[1]] < 1:
                continue
            if not touches_ok(self.index, cell, len(self.path)):
                continue
            options.append(cell)
        if not options and self.trace is not None:
            self.trace.append(("dead", head, "no neighbouring cell is free, within the counts "
                                             "and clear of the snake's body"))
        for cell in options:
            r, c = cell
            self.rows[r] -= 1
            self.cols[c] -= 1
            self.left -= 1
            why = self.feasible(cell, self.left)
            if why is None:
                self.index[cell] = len(self.path)
                self.path.append(cell)
                if self.trace is not None:
                    self.trace.append(("move", cell, len(options)))
                self._search(limit)
                self.path.pop()
                del self.index[cell]
                if self.trace is not None and len(self.solutions) < limit:
                    self.trace.append(("undo", cell))
            elif self.trace is not None:
                self.trace.append(("prune", cell, why))
            self.rows[r] += 1
            self.cols[c] += 1
            self.left += 1
            if len(self.solutions) >= limit:
                return


def random_snake(rng, R, C, length):
    """A random non-touching snake of `length` cells (randomised DFS with a step budget)."""
    budget = [4000]

    def grow(path, index):
        if len(path) == length:
            return True
        budget[0] -= 1
        if budget[0] < 0:
            return False
        head = path[-1]
        dirs = list(DIRS4)
        rng.shuffle(dirs)
        if len(path) >= 2 and rng.random() < 0.35:  # some straight runs
            straight = (head[0] - path[-2][0], head[1] - path[-2][1])
            dirs.remove(straight)
            dirs.insert(0, straight)
        for dr, dc in dirs:
            cell = (head[0] + dr, head[1] + dc)
            if not (0 <= cell[0] < R and 0 <= cell[1] < C) or cell in index:
                continue
            if not touches_ok(index, cell, len(path)):
                continue
            index[cell] = len(path)
            path.append(cell)
            if grow(path, index):
                return True
            path.pop()
            del index[cell]
        return False

    start = (rng.randrange(R), rng.randrange(C))
    path = [start]
    return path if grow(path, {start: 0}) else None


def _cell(p):
    return f"({p[0]},{p[1]})"


class Snake(Task):
    name = "snake"
    official = "snake"
    group = "Puzzles"
    answer_shape = formats.PAIRS

    def make(self, rng, level):
        for _ in range(300):
            R = C = rng.choice(SIZES[level])
            lo, hi = LENGTH[level]
            length = rng.randint(max(4, round(lo * R * C)), round(hi * R * C))
            path = random_snake(rng, R, C, length)
            if path is None:
                continue
            S, E = path[0], path[-1]
            if abs(S[0] - E[0]) + abs(S[1] - E[1]) < 3:
                continue
            grid = [[None] * C for _ in range(R)]
            grid[S[0]][S[1]], grid[E[0]][E[1]] = "S", "E"
            state = {"grid": grid,
                     "row_counts": [sum(1 for p in path if p[0] == r) for r in range(R)],
                     "col_counts": [sum(1 for p in path if p[1] == c) for c in range(C)]}
            try:
                found = Solver(state, node_limit=GEN_NODE_LIMIT).run(limit=2)
            except Limit:
                continue
            if len(found) == 1 and found[0] == path:
                return state, [list(p) for p in path], {"size": R, "length": len(path),
                                                        "unique": True}
        raise RuntimeError(f"snake: no unique puzzle found at level {level}")

    def solve(self, state):
        try:
            found = Solver(state).run(limit=1)
        except Limit:
            return None
        return [list(p) for p in found[0]] if found else None

    def format_answer(self, solution) -> str:
        return " ".join(f"({r},{c})" for r, c in solution)

    def check(self, answer, state) -> bool:
        grid = state["grid"]
        R, C = len(grid), len(grid[0])
        path = parse_pairs(answer, R * C)
        if path is None or path[0] != find(grid, "S") or path[-1] != find(grid, "E"):
            return False
        index = {}
        for k, cell in enumerate(path):
            if not (0 <= cell[0] < R and 0 <= cell[1] < C) or cell in index:
                return False
            if k and abs(cell[0] - path[k - 1][0]) + abs(cell[1] - path[k - 1][1]) != 1:
                return False
            index[cell] = k
        for k, (r, c) in enumerate(path):  # no touching (checked from both ends of each pair)
            for dr, dc in DIRS4:
                j = index.get((r + dr, c + dc))
                if j is not None and abs(j - k) != 1:
                    return False
            for dr, dc in DIAG:
                j = index.get((r + dr, c + dc))
                if j is not None and abs(j - k) != 2:
                    return False
        return ([sum(1 for p in path if p[0] == r) for r in range(R)] == list(state["row_counts"])
                and [sum(1 for p in path if p[1] == c) for c in range(C)] == list(state["col_counts"]))

    # ---- presentation ------------------------------------------------------------------
    def render(self, state):
        grid = state["grid"]
        R, C = len(grid), len(grid[0])
        cell = 52 if R <= 7 else (44 if R <= 10 else 40)
        ox, oy = 56, 80
        w, h = ox + C * cell + 70, oy + R * cell + 66
        img, d = draw.canvas(max(w, 360), h)
        draw.title(d, img.width, "Snake: row counts on the right, column counts below", size=17, y=22)
        draw.center_text(d, (img.width / 2, 46), "(r,c) are 0-based: r = row from the top, "
                                                 "c = column from the left", size=14, fill=draw.GREY)
        for r in range(R):
            for c in range(C):
                x, y = ox + c * cell, oy + r * cell
                v = grid[r][c]
                fill = (120, 200, 120) if v == "S" else (235, 120, 120) if v == "E" else draw.WHITE
                d.rectangle([x, y, x + cell, y + cell], fill=fill, outline=draw.GREY)
                if v:
                    draw.center_text(d, (x + cell / 2, y + cell / 2), v, size=int(cell * 0.5))
        d.rectangle([ox, oy, ox + C * cell, oy + R * cell], outline=draw.BLACK, width=3)
        for c in range(C):
            draw.center_text(d, (ox + c * cell + cell / 2, oy - 14), c, size=14, fill=draw.GREY)
            draw.center_text(d, (ox + c * cell + cell / 2, oy + R * cell + 22),
                             state["col_counts"][c], size=20, fill=draw.BLUE)
        for r in range(R):
            draw.center_text(d, (ox - 18, oy + r * cell + cell / 2), r, size=14, fill=draw.GREY)
            draw.center_text(d, (ox + C * cell + 26, oy + r * cell + cell / 2),
                             state["row_counts"][r], size=20, fill=draw.BLUE)
        return [img]

    def question(self, state, text_only=False) -> str:
        grid = state["grid"]
        R, C = len(grid), len(grid[0])
        rules = ("Snake puzzle: draw one snake, a path of cells from S (start) to E (end) that "
                 "moves one cell up, down, left or right at a time and never visits a cell twice. "
                 "The snake never touches itself: two snake cells that are not next to each other "
                 "along the snake may not share a side, nor touch diagonally (only the two cells "
                 "on either side of a bend touch at a corner). The numbers outside the grid give "
                 "how many snake cells (S and E included) are in each row and each column.")
        if text_only:
            rows = "\n".join(" ".join(v or "." for v in row) for row in grid)
            where = (f"Grid ({R} rows x {C} columns, . = empty):\n{rows}\n"
                     f"Row counts: {', '.join(map(str, state['row_counts']))}\n"
                     f"Column counts: {', '.join(map(str, state['col_counts']))}")
        else:
            where = (f"The image shows the {R}x{C} grid with S in green and E in red, the row "
                     "counts on the right and the column counts below.")
        fmt = ("Answer with the snake's cells in order from S to E as (r,c) pairs separated by "
               "spaces, with 0-based indices (r = row from the top, c = column from the left), "
               "for example: (0,0) (0,1) (1,1)")
        return f"{rules}\n\n{where}\n\n{fmt}"


    def state_from_str(self, text):
        v = parse_literal(text) if isinstance(text, str) else text
        if isinstance(v, list):
            raise ValueError("snake: the official grid carries no counts; use state_from_record")
        if not isinstance(v, dict) or not {"grid", "row_counts", "col_counts"} <= set(v):
            raise ValueError("snake: expected grid, row_counts and col_counts")
        return v

    def state_from_record(self, record):
        v = record["initial_state"]
        v = parse_literal(v) if isinstance(v, str) else v
        if isinstance(v, dict):
            return self.state_from_str(v)
        state = {"grid": v}
        text = "\n".join(str(record.get(k) or "") for k in
                         ("question_text", "question_language", "question"))
        for key, rx in _COUNTS.items():
            m = rx.search(text)
            if not m:
                raise ValueError(f"snake: no {key} in the record's question")
            state[key] = [int(x) for x in re.findall(r"\d+", m.group(1))]
        if len(state["row_counts"]) != len(v) or len(state["col_counts"]) != len(v[0]):
            raise ValueError("snake: counts do not match the grid")
        return state

    # ---- skeleton ----------------------------------------------------------------------
    def skeleton(self, state):
        s = Solver(state, trace=True)
        steps = [
            step("rule", "Walk from S, one cell at a time. A cell is allowed only if its row and "
                         "column still need snake cells and it does not touch the body. After "
                         "each move check that E is reachable with exactly the cells left "
                         "(distance and parity), and that the rows and columns still needing "
                         "cells form one band the head can reach (a full row or column is a "
                         "wall). Back up when a branch fails."),
            step("read", f"S at {_cell(find(state['grid'], 'S'))}, E at "
                         f"{_cell(find(state['grid'], 'E'))}; row counts {state['row_counts']}, "
                         f"column counts {state['col_counts']}."),
        ]
        try:
            found = s.run(limit=1)
        except Limit:
            found = []
        run, omitted = [], 0

        def flush():
            if run:
                steps.append(step("step", "Forced: " + " ".join(run) + "."))
                run.clear()
        for ev in s.trace:
            if len(steps) >= 120:
                omitted += 1
                continue
            if ev[0] == "move":
                if ev[2] == 1:
                    run.append(_cell(ev[1]))
                else:
                    flush()
                    steps.append(step("step", f"{ev[2]} possible moves; try {_cell(ev[1])}."))
            elif ev[0] == "prune":
                flush()
                steps.append(step("backtrack", f"{_cell(ev[1])} fails: {ev[2]}."))
            elif ev[0] == "dead":
                flush()
                steps.append(step("backtrack", f"Dead end at {_cell(ev[1])}: {ev[2]}."))
            elif ev[0] == "undo":
                flush()
                steps.append(step("backtrack", f"Back up from {_cell(ev[1])}."))
        flush()
        if omitted:
            steps.append(step("step", f"... {omitted} further search events omitted."))
        if not found:
            steps.append(step("answer", "No solution"))
            return steps
        path = found[0]
        steps.append(step("check", f"The snake has {len(path)} cells from S to E, each row and "
                                   "column count matches, and no two non-consecutive cells touch."))
        steps.append(step("answer", self.format_answer(path)))
        return steps


TASK = Snake()
