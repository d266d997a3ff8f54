"""Numbrix: fill an N x N grid with 1..N^2 so that consecutive numbers are orthogonal
neighbours (the numbers trace one path through every cell); some numbers are given.

State: rows of ints, 0 = blank. Official `initial_state`: rows like `|1| |3|` (a blank is a
space between the bars; the official string starts with an empty line). We also read blanks
spelled '', '0', '.', '_', '-', 'x' and JSON/Python 2D lists.

The generator draws a random Hamiltonian path (serpentine path + random "backbite" moves),
gives a share of its numbers that falls with the level, and adds givens from the solution
until the solver proves the puzzle has exactly one solution.
"""
from __future__ import annotations

import re

from . import draw, formats
from ._paths import neighbours4
from .base import Task, parse_int, parse_literal, step
from .formats import grid_text

SIZES = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8}
DENSITY = {1: 0.40, 2: 0.34, 3: 0.30, 4: 0.26, 5: 0.22}  # share of cells given before uniqueness
BLANKS = {"", "0", ".", "_", "-", "x", "X", "?", "*"}
NODE_LIMIT = 200_000   # solve(): effectively unbounded for generated puzzles
GEN_NODE_LIMIT = 3_000  # make(): a harder draw is dropped and another one made


class Limit(Exception):
    pass


def random_hamiltonian_path(rng, n):
    """A random Hamiltonian path of the n x n grid (serpentine + backbite moves)."""
    path = [(r, c if r % 2 == 0 else n - 1 - c) for r in range(n) for c in range(n)]
    for _ in range(12 * n * n):
        if rng.random() < 0.5:
            path.reverse()
        end = path[-1]
        nbs = [p for p in neighbours4(*end, n, n) if p != path[-2]]
        v = rng.choice(nbs)
        i = path.index(v)
        path[i + 1:] = path[i + 1:][::-1]
    return path


class Solver:
    """Numbers are placed outward from the smallest given g0: g0+1, g0+2, ..., N^2 (each next
    to the previous), then g0-1, ..., 1. A placement is rejected when the next given number
    is too far (Manhattan distance or parity), when an empty region gets cut off from every
    cell the path can still grow from, or when too many empty cells have fewer than two
    usable neighbours. Counts solutions up to `limit`; records a trace for the skeleton.
    Cells are flat indices r * n + c inside the search."""

    def __init__(self, grid, trace=False, node_limit=NODE_LIMIT):
        self.n = n = len(grid)
        self.N = n * n
        self.cells = [v for row in grid for v in row]
        self.nbrs = [tuple(r2 * n + c2 for r2, c2 in neighbours4(i // n, i % n, n, n))
                     for i in range(self.N)]
        self.pos = {v: i for i, v in enumerate(self.cells) if v}
        self.givens = sorted(self.pos)
        self.trace = [] if trace else None
        self.nodes = 0
        self.node_limit = node_limit
        self.solutions = []

    def rc(self, i):
        return divmod(i, self.n)

    def ok_distance(self, k, p, up):
        """Can the chain continue from k at p to the next given number in this phase?"""
        nxt = None
        if up:
            for g in self.givens:
                if g > k:
                    nxt = g
                    break
        if nxt is None:
            return True
        q = self.pos[nxt]
        n = self.n
        dist = abs(p // n - q // n) + abs(p % n - q % n)
        gap = nxt - k
        return dist <= gap and (gap - dist) % 2 == 0

    def regions_ok(self, ends):
        """Every connected region of empty cells must touch one of the growing ends, and an
        empty cell with fewer than two empty-or-end neighbours must be an end of the whole
        path (1 or N^2, while not yet placed)."""
        cells, nbrs = self.cells, self.nbrs
        seen = [False] * self.N
        spare = (1 not in self.pos) + (self.N not in self.pos)
        for start in range(self.N):
            if cells[start] or seen[start]:
                continue
            stack, touch = [start], False
            seen[start] = True
            while stack:
                i = stack.pop()
                free = 0
                for j in nbrs[i]:
                    if cells[j]:
                        if j in ends:
                            touch = True
                            free += 1
                    else:
                        free += 1
                        if not seen[j]:
                            seen[j] = True
                            stack.append(j)
                if free < 2:
                    spare -= 1
                    if free == 0 or spare < 0:
                        return False
            if not touch:
                return False
        return True

    def _ends(self, k, up):
        """Filled cells from which the path can still grow once k has been placed: k itself,
        every given number above k (the chain passes through it later), and the smallest
        given while the numbers below it are still to come."""
        ends = {self.pos[k]}
        if up:
            ends.update(self.pos[g] for g in self.givens if g > k)
            if self.givens[0] > 1:
                ends.add(self.pos[self.givens[0]])
        return ends

    def run(self, limit=2):
        if not self.givens:
            self.pos[1] = 0  # an empty puzzle: fix 1 in a corner
            self.cells[0] = 1
            self.givens = [1]
        g0 = self.givens[0]
        self.plan = [(k, True) for k in range(g0 + 1, self.N + 1)] + \
                    [(k, False) for k in range(g0 - 1, 0, -1)]
        self.given_set = set(self.givens)
        self._search(0, limit)
        n = self.n
        return [[sol[r * n:(r + 1) * n] for r in range(n)] for sol in self.solutions]

    def _search(self, i, limit):
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise Limit
        if i == len(self.plan):
            self.solutions.append(self.cells[:])
            return
        k, up = self.plan[i]
        prev = self.pos[k - 1] if up else self.pos[k + 1]
        if k in self.given_set:
            q = self.pos[k]
            if q in self.nbrs[prev]:
                if self.trace is not None:
                    self.trace.append(("given", k, self.rc(q)))
                self._search(i + 1, limit)
            elif self.trace is not None:
                self.trace.append(("dead", k, f"the given {k} at {_cell(self.rc(q))} is not "
                                              f"next to {k - 1 if up else k + 1} at "
                                              f"{_cell(self.rc(prev))}"))
            return
        options = [p for p in self.nbrs[prev] if not self.cells[p] and self.ok_distance(k, p, up)]
        if not options and self.trace is not None:
            self.trace.append(("dead", k, f"no free cell next to {k - 1 if up else k + 1} at "
                                          f"{_cell(self.rc(prev))} can take {k}"))
        for p in options:
            self.cells[p] = k
            self.pos[k] = p
            if self.regions_ok(self._ends(k, up)):
                if self.trace is not None:
                    self.trace.append(("place", k, self.rc(p), len(options)))
                self._search(i + 1, limit)
                if len(self.solutions) >= limit:
                    return
                if self.trace is not None:
                    self.trace.append(("undo", k, self.rc(p)))
            elif self.trace is not None:
                self.trace.append(("cut", k, self.rc(p)))
            self.cells[p] = 0
            del self.pos[k]


def _cell(p):
    return f"(row {p[0] + 1}, col {p[1] + 1})"


def format_grid(grid) -> str:
    return "\n".join("|" + "|".join(str(v) if v else " " for v in row) + "|" for row in grid)


def parse_grid(text: str, allow_blank: bool):
    """Rows like `|1| |3|` (or `1 2 3`, `1,2,3`, or a 2D list) -> list of int rows."""
    t = grid_text(text).strip()   # LaTeX matrices and row breaks -> rows on lines
    if t.startswith("[["):
        v = parse_literal(t)
        if not isinstance(v, list):
            return None
        rows = [[0 if x is None else x for x in row] for row in v]
        if not all(isinstance(x, int) and not isinstance(x, bool) for row in rows for x in row):
            return None
        return rows
    rows = []
    for line in t.splitlines():
        line = line.strip()
        if not line:
            continue
        if "|" in line:
            cells = line.split("|")
            if cells and cells[0].strip() == "":
                cells = cells[1:]
            if cells and cells[-1].strip() == "":
                cells = cells[:-1]
        else:
            cells = [x for x in re.split(r"[\s,]+", line) if x]
        row = []
        for x in cells:
            x = x.strip()
            if allow_blank and x in BLANKS:
                row.append(0)
                continue
            v = parse_int(x)
            if v is None:
                return None
            row.append(v)
        rows.append(row)
    return rows


class Numbrix(Task):
    name = "numbrix"
    official = "numbrix"
    group = "Puzzles"
    answer_shape = formats.GRID

    def make(self, rng, level):
        n = SIZES[level]
        for _ in range(20):
            path = random_hamiltonian_path(rng, n)
            sol = [[0] * n for _ in range(n)]
            for k, (r, c) in enumerate(path, 1):
                sol[r][c] = k
            cells = sorted(path)
            given = set(rng.sample(cells, max(2, round(DENSITY[level] * n * n))))
            try:
                for _ in range(n * n):
                    grid = [[sol[r][c] if (r, c) in given else 0 for c in range(n)] for r in range(n)]
                    found = Solver(grid, node_limit=GEN_NODE_LIMIT).run(limit=2)
                    if len(found) == 1:
                        return grid, sol, {"size": n, "givens": len(given),
                                           "given_share": round(len(given) / (n * n), 3)}
                    other = found[0] if found[0] != sol else found[1]
                    diff = sorted((r, c) for r in range(n) for c in range(n)
                                  if other[r][c] != sol[r][c] and (r, c) not in given)
                    given.add(rng.choice(diff))
            except Limit:
                continue
        raise RuntimeError("numbrix: no unique puzzle found")

    def solve(self, state):
        try:
            found = Solver(state).run(limit=1)
        except Limit:
            return None
        return found[0] if found else None

    def format_answer(self, solution) -> str:
        return format_grid(solution)

    def check(self, answer, state) -> bool:
        n = len(state)
        if len(answer) > 12 * n * n + 200:
            return False
        rows = parse_grid(answer, allow_blank=False)
        if rows is None or len(rows) != n or any(len(r) != n for r in rows):
            return False
        pos = {}
        for r in range(n):
            for c in range(n):
                v = rows[r][c]
                if state[r][c] and state[r][c] != v:
                    return False
                if not 1 <= v <= n * n or v in pos:
                    return False
                pos[v] = (r, c)
        return all(abs(pos[k][0] - pos[k + 1][0]) + abs(pos[k][1] - pos[k + 1][1]) == 1
                   for k in range(1, n * n))

    def render(self, state):
        n = len(state)
        cells = [[str(v) if v else "" for v in row] for row in state]
        fills = {(r, c): (242, 242, 242) for r in range(n) for c in range(n) if not state[r][c]}
        return [draw.grid(cells, cell=60, size=24, fills=fills,
                          caption=f"Numbrix {n}x{n}: fill 1 to {n * n}")]

    def question(self, state, text_only=False) -> str:
        n = len(state)
        rules = (f"Numbrix: fill every empty cell of this {n}x{n} grid so that the grid holds each "
                 f"number from 1 to {n * n} exactly once and every pair of consecutive numbers "
                 f"(1 and 2, 2 and 3, ...) sits in cells that share a side (up, down, left or "
                 f"right; not diagonally). The numbers already in the grid stay where they are.")
        if text_only:
            where = ("The grid, one row per line, cells between bars and an empty cell shown as "
                     "a space:\n" + format_grid(state))
        else:
            where = "The image shows the grid; grey cells are empty."
        fmt = ("Answer with the completed grid, one row per line, numbers between bars, for "
               "example for a 2x2 grid:\n|1|2|\n|4|3|")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state) -> str:
        return format_grid(state)

    def state_from_str(self, text):
        if not isinstance(text, str):
            text = str(text)
        rows = parse_grid(text, allow_blank=True)
        if not rows or any(len(r) != len(rows) for r in rows):
            raise ValueError(f"numbrix: not a square grid: {text[:80]!r}")
        return rows

    def skeleton(self, state):
        n = len(state)
        s = Solver(state, trace=True)
        steps = [
            step("rule", f"Numbers 1..{n * n} form one path through all cells: consecutive "
                         "numbers share a side. Grow the chain outward from the smallest given "
                         "number, upward to the largest and then downward to 1; a cell is "
                         "possible only if the next given number can still be reached in the "
                         "right number of moves (distance and parity) and no empty area is cut "
                         "off from the chain ends."),
            step("read", "Grid (0 = empty): " + " / ".join(" ".join(f"{v:2d}" for v in row)
                                                          for row in state)),
        ]
        try:
            found = s.run(limit=1)
        except Limit:
            found = []
        g0 = s.givens[0]
        steps.append(step("step", f"Smallest given: {g0} at {_cell(s.rc(s.pos[g0]))}; build "
                                  f"{g0 + 1}..{n * n} first"
                                  + (f", then {g0 - 1}..1." if g0 > 1 else ".")))
        run = []  # consecutive forced placements shown together

        def flush():
            if run:
                steps.append(step("step", "Forced: " + ", ".join(run) + "."))
                run.clear()
        budget, omitted = 120, 0
        for ev in s.trace:
            if len(steps) >= budget:
                omitted += 1
                continue
            if ev[0] == "given":
                run.append(f"{ev[1]} is given at {_cell(ev[2])}")
            elif ev[0] == "place":
                _, k, p, nopt = ev
                if nopt == 1:
                    run.append(f"{k} at {_cell(p)}")
                else:
                    flush()
                    steps.append(step("step", f"{k}: {nopt} neighbouring cells fit; try {_cell(p)}."))
            elif ev[0] == "cut":
                flush()
                steps.append(step("backtrack", f"{ev[1]} at {_cell(ev[2])} would cut off an "
                                               f"empty area; rejected."))
            elif ev[0] == "dead":
                flush()
                steps.append(step("backtrack", f"Dead end: {ev[2]}."))
            elif ev[0] == "undo":
                flush()
                steps.append(step("backtrack", f"Undo {ev[1]} at {_cell(ev[2])} and try the "
                                               f"next option."))
        flush()
        if omitted:
            steps.append(step("step", f"... {omitted} further search events omitted."))
        if not found:
            steps.append(step("answer", "No solution"))
            return steps
        sol = found[0]
        steps.append(step("check", f"Every number 1..{n * n} appears once, all givens are in "
                                   "place, and each k is next to k+1."))
        steps.append(step("answer", format_grid(sol)))
        return steps


TASK = Numbrix()
