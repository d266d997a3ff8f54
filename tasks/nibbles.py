"""Nibbles (the classic snake game): steer the snake to eat every apple without dying.

State: {"rows", "cols", "snake": [[r, c], ...] head first, "direction", "apples"}; the
official `initial_state` is the text
    Grid: 6x6
    Snake: (1,4) (2,4)
    Direction: up
    Apples: (2,2)
    Goal: Eat 1 apple
Coordinates are (row, column), 0-based, row 0 at the top (as the official generator writes
them: `Grid: {rows}x{cols}`, snake cells head first, direction = the current heading).

Rules (the official simulation): each move shifts the head one cell; the snake may not turn
straight back (the opposite of its current heading), leave the grid, or move its head onto
any cell its body occupies before the move (the tail cell included). Eating an apple makes
the snake one cell longer (the tail stays put on that move); otherwise the tail follows.
The answer's moves are all simulated, even after the last apple: a fatal extra move fails.

Levels: grid 6/7/8/9/10 square, apples 1/2/3/4/5 (the official table), snake of length 2.
Solver: greedy with safety. Apple by apple, A* over snake positions (heuristic: Manhattan
distance from the head to the nearest apple) finds the shortest way to eat one; an arrival
is rejected as unsafe if afterwards the head's free region is smaller than the snake and the
tail is out of reach (the search then continues with the next arrival). Not optimal; the
generator keeps only layouts the solver clears, so every instance is solvable.
"""
from __future__ import annotations

import heapq
import re

from . import draw, formats
from ._games import DIRS, OPPOSITE, cap, label_grid, parse_moves
from .base import Task, step

LEVELS = {1: (6, 1), 2: (7, 2), 3: (8, 3), 4: (9, 4), 5: (10, 5)}
ORDER = ("up", "right", "down", "left")
MAX_EXPANSIONS = 4000      # per apple


def heading(snake):
    (hr, hc), (nr, nc) = snake[0], snake[1]
    return {(-1, 0): "up", (1, 0): "down", (0, -1): "left", (0, 1): "right"}[(hr - nr, hc - nc)]


def step_snake(rows, cols, snake, direction, apples, move):
    """One move. Returns (snake, direction, apples, ate) or None if the snake dies."""
    if move == OPPOSITE[direction]:
        return None
    dr, dc = DIRS[move]
    head = (snake[0][0] + dr, snake[0][1] + dc)
    if not (0 <= head[0] < rows and 0 <= head[1] < cols) or head in snake:
        return None
    if head in apples:
        return (head,) + tuple(snake), move, apples - {head}, True
    return (head,) + tuple(snake[:-1]), move, apples, False


def free_region(rows, cols, snake):
    """Cells reachable from the head through free cells, and whether one touches the tail."""
    body = set(snake)
    tail = snake[-1]
    seen, stack, touches = set(), [snake[0]], False
    while stack:
        r, c = stack.pop()
        for dr, dc in DIRS.values():
            v = (r + dr, c + dc)
            if v == tail and len(snake) > 2:
                touches = True
            if 0 <= v[0] < rows and 0 <= v[1] < cols and v not in body and v not in seen:
                seen.add(v)
                stack.append(v)
    return len(seen), touches


def solve_state(st, trace=None):
    rows, cols = st["rows"], st["cols"]
    snake = tuple(tuple(x) for x in st["snake"])
    direction = st["direction"]
    apples = frozenset(tuple(a) for a in st["apples"])
    moves = []
    while apples:
        def h(s):
            return min(abs(s[0][0] - a[0]) + abs(s[0][1] - a[1]) for a in apples)
        heap = [(h(snake), 0, 0, snake, direction, ())]
        seen = {snake}
        counter, expansions, found = 0, 0, None
        while heap:
            f, g, _, s, d, path = heapq.heappop(heap)
            expansions += 1
            if expansions > MAX_EXPANSIONS:
                return None
            for m in ORDER:
                nxt = step_snake(rows, cols, s, d, apples, m)
                if nxt is None:
                    continue
                ns, nd, napples, ate = nxt
                if ate:
                    if napples:
                        area, touches = free_region(rows, cols, ns)
                        if area < len(ns) and not touches:
                            if trace is not None:
                                trace.append(("unsafe", ns[0], path + (m,), area, len(ns)))
                            continue
                    found = (ns, nd, napples, path + (m,))
                    break
                if ns in seen:
                    continue
                seen.add(ns)
                counter += 1
                heapq.heappush(heap, (g + 1 + h(ns), g + 1, counter, ns, nd, path + (m,)))
            if found:
                break
        if not found:
            return None
        snake, direction, new_apples, path = found
        if trace is not None:
            trace.append(("eat", snake[0], path, snake, expansions))
        apples = new_apples
        moves.extend(path)
    return moves


def simulate(st, moves):
    """Snakes after each move, or None if the snake dies; also the apples left."""
    snake = tuple(tuple(x) for x in st["snake"])
    direction = st["direction"]
    apples = frozenset(tuple(a) for a in st["apples"])
    for m in moves:
        nxt = step_snake(st["rows"], st["cols"], snake, direction, apples, m)
        if nxt is None:
            return None
        snake, direction, apples, _ = nxt
    return snake, apples


def board_text(rows, cols, snake, apples):
    g = [["." for _ in range(cols)] for _ in range(rows)]
    for a in apples:
        g[a[0]][a[1]] = "A"
    for i, (r, c) in enumerate(snake):
        g[r][c] = "H" if i == 0 else "S"
    return "\n".join("".join(row) for row in g)


_PAIR = re.compile(r"\(\s*(-?\d{1,4})\s*,\s*(-?\d{1,4})\s*\)")


class Nibbles(Task):
    name = "nibbles"
    official = "nibbles"
    group = "Games"
    answer_shape = formats.MOVES

    def make(self, rng, level):
        size, n_apples = LEVELS[level]
        for _ in range(500):
            direction = rng.choice(ORDER)
            dr, dc = DIRS[direction]
            cells = [(r, c) for r in range(size) for c in range(size)
                     if 0 <= r - dr < size and 0 <= c - dc < size]
            head = rng.choice(cells)
            snake = [head, (head[0] - dr, head[1] - dc)]
            free = [(r, c) for r in range(size) for c in range(size) if (r, c) not in snake]
            apples = rng.sample(free, n_apples)
            st = {"rows": size, "cols": size, "snake": [list(x) for x in snake],
                  "direction": direction, "apples": [list(a) for a in apples]}
            moves = solve_state(st)
            if moves is None or len(moves) < 2:
                continue
            return st, moves, {"size": size, "apples": n_apples, "snake_length": 2,
                               "solution_moves": len(moves), "solver": "greedy A* with safety"}
        raise RuntimeError("nibbles: no solvable layout")

    def solve(self, state):
        return solve_state(state)

    def format_answer(self, solution) -> str:
        return " ".join(solution)

    def check(self, answer, state) -> bool:
        moves = parse_moves(answer)
        if moves is None:
            return False
        res = simulate(state, moves)
        return res is not None and not res[1]

    # ---- official strings -------------------------------------------------------------
    def state_to_str(self, state) -> str:
        n = len(state["apples"])
        return "\n".join([
            f"Grid: {state['rows']}x{state['cols']}",
            "Snake: " + " ".join(f"({r},{c})" for r, c in state["snake"]),
            f"Direction: {state['direction']}",
            "Apples: " + " ".join(f"({r},{c})" for r, c in state["apples"]),
            f"Goal: Eat {n} apple{'s' if n > 1 else ''}",
        ])

    def state_from_str(self, text):
        if isinstance(text, dict):
            return self._validate(dict(text))
        fields = {}
        for line in str(text).split("\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        m = re.fullmatch(r"(\d{1,3})\s*[x×X]\s*(\d{1,3})", fields.get("grid", ""))
        if not m:
            raise ValueError("nibbles: no 'Grid: RxC' line")
        st = {"rows": int(m.group(1)), "cols": int(m.group(2)),
              "snake": [[int(a), int(b)] for a, b in _PAIR.findall(fields.get("snake", ""))],
              "direction": fields.get("direction", "").lower(),
              "apples": [[int(a), int(b)] for a, b in _PAIR.findall(fields.get("apples", ""))]}
        return self._validate(st)

    def _validate(self, st):
        R, C = st["rows"], st["cols"]
        snake, apples = st["snake"], st["apples"]
        if not (1 <= R <= 100 and 1 <= C <= 100) or st["direction"] not in DIRS or not snake:
            raise ValueError("nibbles: bad grid or direction")
        cells = [tuple(x) for x in snake] + [tuple(a) for a in apples]
        if len(set(cells)) != len(cells) or not all(0 <= r < R and 0 <= c < C for r, c in cells):
            raise ValueError("nibbles: overlapping or off-grid cells")
        return st

    # ---- presentation -------------------------------------------------------------------
    def render(self, state):
        R, C = state["rows"], state["cols"]
        cell = 52 if max(R, C) <= 8 else 46
        snake = [tuple(x) for x in state["snake"]]
        apples = {tuple(a) for a in state["apples"]}

        def fill(d, r, c, x, y):
            d.rectangle([x, y, x + cell, y + cell], fill=(245, 245, 235))
            m = cell * 0.14
            if (r, c) in apples:
                d.ellipse([x + m, y + m, x + cell - m, y + cell - m], fill=(220, 30, 30),
                          outline=(120, 0, 0), width=2)
                d.line([(x + cell / 2, y + m), (x + cell / 2 + 5, y + m - 6)], fill=(60, 120, 30),
                       width=3)
        img, d, ox, oy = label_grid(R, C, cell, fill, caption="Snake game")
        centre = [(ox + c * cell + cell / 2, oy + r * cell + cell / 2) for r, c in snake]
        if len(centre) > 1:
            d.line(centre, fill=(30, 140, 60), width=int(cell * 0.45), joint="curve")
        for i, (x, y) in enumerate(centre):
            rad = cell * (0.36 if i == 0 else 0.24)
            d.ellipse([x - rad, y - rad, x + rad, y + rad],
                      fill=(10, 90, 30) if i == 0 else (30, 140, 60))
        hx, hy = centre[0]
        dr, dc = DIRS[state["direction"]]
        tip = (hx + dc * cell * 0.42, hy + dr * cell * 0.42)
        base = (hx - dc * cell * 0.08, hy - dr * cell * 0.08)
        w = cell * 0.22
        d.polygon([tip, (base[0] - dr * w, base[1] + dc * w), (base[0] + dr * w, base[1] - dc * w)],
                  fill=(255, 215, 0), outline=draw.BLACK)
        return [img]

    RULES = ("Solve this snake game. The snake moves one cell per move (up, down, left or "
             "right); its body follows its head. Goal: eat every apple. Eating an apple (moving "
             "the head onto it) makes the snake one cell longer. The snake dies, and the answer "
             "fails, if it leaves the grid, if its head moves onto any cell its body occupies "
             "(including the current tail cell), or if it turns straight back against its "
             "current direction.")

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = ("The game, with cells as (row, column), 0-based, row 0 at the top; the snake "
                     "is listed from its head to its tail and Direction is the way it is heading "
                     "now:\n" + self.state_to_str(state))
        else:
            where = ("The image shows the grid: the snake is green with a dark head (the yellow "
                     "arrow shows the direction it is heading now) and the apples are red. Row and "
                     "column numbers (from 0) are written along the edges.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the moves separated by spaces, each one "
                f"of up, down, left, right (for example: up right down left up). All moves are "
                f"played, so do not add moves after the last apple unless they are safe.")

    def skeleton(self, state):
        R, C = state["rows"], state["cols"]
        steps = [
            step("rule", "Move the head one cell at a time; never reverse, leave the grid or hit "
                         "the body (tail included); each apple adds one segment. Plan: go for the "
                         "nearest apple by the shortest safe route, one apple at a time, and "
                         "reject a route that leaves the snake boxed in."),
            step("read", f"{R}x{C} grid; snake (head first) {[tuple(x) for x in state['snake']]}"
                         f" heading {state['direction']}; apples at "
                         f"{[tuple(a) for a in state['apples']]}.\n"
                         + board_text(R, C, [tuple(x) for x in state["snake"]],
                                      {tuple(a) for a in state["apples"]})),
        ]
        trace = []
        moves = solve_state(state, trace)
        apples = {tuple(a) for a in state["apples"]}
        ev_steps = []
        for ev in trace:
            if ev[0] == "unsafe":
                _, at, path, area, length = ev
                ev_steps.append(step("backtrack", f"Route {' '.join(path)} eats the apple at {at} "
                                                  f"but leaves only {area} free cells for a snake "
                                                  f"of length {length}, away from its tail: "
                                                  f"reject it and look for another route."))
            else:
                _, at, path, snake, expansions = ev
                apples.discard(at)
                ev_steps.append(step("step", f"Eat the apple at {at} with {' '.join(path)} "
                                             f"({len(path)} moves, {expansions} positions "
                                             f"searched). Snake now {list(snake)}"
                                             + (f"; apples left {sorted(apples)}." if apples
                                                else "; no apples left.")
                                             + "\n" + board_text(R, C, snake, apples)))
        steps += cap(ev_steps, 60, "route steps")
        steps.append(step("check", f"Simulating all {len(moves)} moves: the head never leaves the "
                                   f"grid, never reverses and never touches the body, and every "
                                   f"apple is eaten."))
        steps.append(step("answer", " ".join(moves)))
        return steps


TASK = Nibbles()
