"""Shingoki: draw one closed loop along the lines between the points of a grid.

Rules as checked: the loop joins orthogonally adjacent points, visits no point twice and is
a single closed loop (it need not visit every point); it passes through every circle; it
goes straight through a white circle and turns at a black circle; a circle's number is the
sum of the lengths of the two straight segments leaving it (for a white circle that is the
whole straight stretch it lies on, turn to turn; for a black circle, its two arms).

State (= the official `initial_state`): rows of point labels, `B4` (black, 4), `W2` (white,
2) or `.`; point (r, c) is row r from the top and column c from the left, 0-based. Answer:
the loop's segments `(r1,c1)-(r2,c2)` separated by spaces, in any order and direction; a
straight run may be one segment (`(0,0)-(0,2)`, the prompt's "segments" between turns).

The generator grows a random hole-free region of cells, takes its outline as the loop, puts
circles on some of the loop's points (values read off the loop) and adds circles until the
solver proves the loop unique; any loop that satisfies the clues passes the verifier.
"""
from __future__ import annotations

import re

from . import draw, formats
from ._paths import DIRS4, only_separators
from .base import Task, parse_literal, step

SIZES = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}          # points per side (official: level + 2)
CIRCLES = {1: 3, 2: 4, 3: 5, 4: 7, 5: 9}        # circles drawn before uniqueness is enforced
_SEG = re.compile(r"\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)\s*-\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)")
NODE_LIMIT = 300_000
GEN_NODE_LIMIT = 5_000
DNAME = ("up", "right", "down", "left")


class Limit(Exception):
    pass


def clues_of(grid):
    """{(r, c): ('B'|'W', value)} from the label grid."""
    out = {}
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            v = str(v).strip().upper()
            if v and v[0] in "BW" and v[1:].isdigit():
                out[(r, c)] = (v[0], int(v[1:]))
    return out


def cycle_order(edges):
    """The points of a single cycle in order, or None if `edges` is not one simple cycle."""
    adj = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    if not adj or any(len(v) != 2 for v in adj.values()):
        return None
    start = min(adj)
    order, prev, cur = [start], None, start
    while True:
        a, b = adj[cur]
        nxt = a if a != prev else b
        if nxt == start:
            break
        order.append(nxt)
        prev, cur = cur, nxt
        if len(order) > len(adj):
            return None
    return order if len(order) == len(adj) else None


def run_lengths(order):
    """For each point of the cycle: (is_turn, arm1, arm2) where arm1/arm2 are the lengths
    of the two straight segments leaving it (to the next turn each way)."""
    n = len(order)
    turn = []
    for i in range(n):
        p, q, s = order[i - 1], order[i], order[(i + 1) % n]
        turn.append((q[0] - p[0], q[1] - p[1]) != (s[0] - q[0], s[1] - q[1]))
    out = {}
    for i in range(n):
        arms = []
        for step_ in (1, -1):
            k, length = i, 0
            while True:
                k = (k + step_) % n
                length += 1
                if turn[k]:
                    break
            arms.append(length)
        out[order[i]] = (turn[i], arms[0], arms[1])
    return out


def loop_ok(clues, order):
    info = run_lengths(order)
    for p, (colour, value) in clues.items():
        if p not in info:
            return False
        is_turn, a1, a2 = info[p]
        if (colour == "B") != is_turn or a1 + a2 != value:
            return False
    return True


def random_loop(rng, n):
    """Outline of a random hole-free region of cells (no two cells touching only at a
    corner), as a cycle of points on the n x n point grid."""
    m = n - 1  # cells per side
    target = rng.randint(max(1, m * m // 4), max(1, (m * m * 3) // 4))
    region = {(rng.randrange(m), rng.randrange(m))}

    def inside(r, c):
        return (r, c) in region

    def pinch_free(cell):
        r, c = cell
        for dr in (-1, 1):
            for dc in (-1, 1):
                diag, a, b = (r + dr, c + dc), (r + dr, c), (r, c + dc)
                if inside(*diag) and not inside(*a) and not inside(*b):
                    return False
        return True

    def hole_free():
        outside, stack = set(), []
        for r in range(-1, m + 1):
            for c in (-1, m):
                stack.append((r, c))
        for c in range(m):
            stack += [(-1, c), (m, c)]
        outside.update(stack)
        while stack:
            r, c = stack.pop()
            for dr, dc in DIRS4:
                q = (r + dr, c + dc)
                if -1 <= q[0] <= m and -1 <= q[1] <= m and q not in region and q not in outside:
                    outside.add(q)
                    stack.append(q)
        return len(outside) + len(region) == (m + 2) * (m + 2)

    for _ in range(10 * target):
        if len(region) >= target:
            break
        frontier = sorted({(r + dr, c + dc) for r, c in region for dr, dc in DIRS4
                           if 0 <= r + dr < m and 0 <= c + dc < m} - region)
        cell = rng.choice(frontier)
        region.add(cell)
        if not (pinch_free(cell) and all(pinch_free(x) for x in region) and hole_free()):
            region.discard(cell)
    edges = []
    for r in range(n):
        for c in range(n - 1):  # horizontal edge (r,c)-(r,c+1): cells (r-1,c) and (r,c)
            if inside(r - 1, c) != inside(r, c):
                edges.append(((r, c), (r, c + 1)))
    for r in range(n - 1):
        for c in range(n):  # vertical edge (r,c)-(r+1,c): cells (r,c-1) and (r,c)
            if inside(r, c - 1) != inside(r, c):
                edges.append(((r, c), (r + 1, c)))
    return cycle_order(edges)


class Solver:
    """Deduction + search on the grid's edges (each on, off or unknown).

    Every circle has a short list of placements: a white circle's straight stretch (left/
    right or up/down, and how it splits around the circle), a black circle's two arms
    (which quadrant, and how long each arm is). A placement switches its stretch's edges on
    and the edges just beyond each end off (the loop must turn there). After every choice
    the point rules are propagated to a fixed point: a point has 0 or 2 loop edges (a
    circle exactly 2), a white circle keeps both edges of one axis, a black circle one of
    each axis, and a closed sub-loop is allowed only if it is the whole loop. Search:
    place the circle with the fewest placements left; once all are placed, extend a loose
    end of the loop edge by edge. Counts solutions up to `limit`; optional trace."""

    def __init__(self, grid, trace=False, node_limit=NODE_LIMIT):
        self.n, self.m = n, m = len(grid), len(grid[0])
        self.clues = clues_of(grid)
        H = n * (m - 1)
        self.ends = [((r, c), (r, c + 1)) for r in range(n) for c in range(m - 1)] + \
                    [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(m)]
        self.pe = {}  # point -> [edge up, right, down, left] (None off the grid)
        for r in range(n):
            for c in range(m):
                self.pe[(r, c)] = [H + (r - 1) * m + c if r > 0 else None,
                                   r * (m - 1) + c if c < m - 1 else None,
                                   H + r * m + c if r < n - 1 else None,
                                   r * (m - 1) + c - 1 if c > 0 else None]
        self.st = [-1] * len(self.ends)
        self.on = 0
        self.closed = False
        self.trail, self.queue = [], []
        self.options = {p: self._options(p, *cv) for p, cv in self.clues.items()}
        self.trace = [] if trace else None
        self.nodes, self.node_limit = 0, node_limit
        self.solutions = []

    # -- geometry ------------------------------------------------------------------------
    def edge_at(self, p, d):
        return self.pe[p][d] if p in self.pe else None

    def _arm(self, p, d, length):
        """Edges of an arm of `length` from p in direction d, and the edge beyond its end
        (None at the border); None if the arm leaves the grid."""
        edges, q = [], p
        for _ in range(length):
            e = self.edge_at(q, d)
            if e is None:
                return None
            edges.append(e)
            q = (q[0] + DIRS4[d][0], q[1] + DIRS4[d][1])
        return edges, self.edge_at(q, d)

    def _options(self, p, colour, v):
        """[(description, edges on, edges off)] for the circle at p."""
        out = []
        pairs = ((1, 3), (0, 2)) if colour == "W" else ((0, 1), (1, 2), (2, 3), (3, 0))
        for d1, d2 in pairs:
            for a in range(1, v):
                arm1, arm2 = self._arm(p, d1, a), self._arm(p, d2, v - a)
                if arm1 is None or arm2 is None:
                    continue
                on = arm1[0] + arm2[0]
                off = [e for e in (arm1[1], arm2[1]) if e is not None]
                off += [self.pe[p][d] for d in range(4) if d not in (d1, d2) and self.pe[p][d] is not None]
                out.append((f"{DNAME[d1]} {a} and {DNAME[d2]} {v - a}", on, off))
        return out

    # -- edge states with undo ----------------------------------------------------------
    def set(self, e, v):
        if self.st[e] == v:
            return True
        if self.st[e] != -1 or (v == 1 and self.closed):  # nothing joins a closed loop
            return False
        self.st[e] = v
        self.trail.append(e)
        if v == 1:
            self.on += 1
            if not self._cycle_check(e):
                return False
        self.queue.extend(self.ends[e])
        return True

    def undo(self, mark, closed):
        while len(self.trail) > mark:
            e = self.trail.pop()
            if self.st[e] == 1:
                self.on -= 1
            self.st[e] = -1
        self.closed = closed
        self.queue.clear()

    def _cycle_check(self, e):
        """Setting e on: if it closes a cycle, that cycle must be the whole loop."""
        a, b = self.ends[e]
        prev, x, length = e, a, 1
        while True:
            nxt = [f for f in self.pe[x] if f is not None and f != prev and self.st[f] == 1]
            if len(nxt) > 1:
                return False
            if not nxt:
                return True
            prev = nxt[0]
            p, q = self.ends[prev]
            x = q if p == x else p
            length += 1
            if x == b:
                if length != self.on:
                    return False
                self.closed = True
                return True

    def propagate(self):
        st = self.st
        while self.queue:
            p = self.queue.pop()
            es = self.pe[p]
            ons = [e for e in es if e is not None and st[e] == 1]
            unk = [e for e in es if e is not None and st[e] == -1]
            if len(ons) > 2:
                return False
            if len(ons) == 2:
                if not all(self.set(e, 0) for e in unk):
                    return False
            elif len(ons) == 1:
                if not unk:
                    return False
                if len(unk) == 1 and not self.set(unk[0], 1):
                    return False
            elif p in self.clues:
                if len(unk) < 2:
                    return False
                if len(unk) == 2 and not all(self.set(e, 1) for e in unk):
                    return False
            elif len(unk) == 1 and not self.set(unk[0], 0):
                return False
            if p in self.clues:
                colour = self.clues[p][0]
                for d1, d2 in ((1, 3), (0, 2)):
                    e1, e2 = es[d1], es[d2]
                    s1 = st[e1] if e1 is not None else 0
                    s2 = st[e2] if e2 is not None else 0
                    for x, sx, y in ((e1, s1, e2), (e2, s2, e1)):
                        if sx == -1:
                            continue
                        if colour == "W":  # both edges of an axis or neither
                            if y is None:
                                if sx == 1:
                                    return False
                            elif not self.set(y, sx):
                                return False
                        else:  # black: exactly one edge of each axis
                            if y is None:
                                if sx == 0:
                                    return False
                            elif not self.set(y, 1 - sx):
                                return False
        return True

    # -- search --------------------------------------------------------------------------
    def run(self, limit=2):
        if not self.clues:
            return []
        self.placed = set()
        self._search(limit)
        return self.solutions

    def _log(self, *ev):
        if self.trace is not None:
            self.trace.append(ev)

    def _try(self, on, off):
        ok = all(self.set(e, 1) for e in on) and all(self.set(e, 0) for e in off)
        return ok and self.propagate()

    def _search(self, limit):
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise Limit
        if self.closed:
            mark, closed = len(self.trail), self.closed
            rest = [e for e, v in enumerate(self.st) if v == -1]
            order = self.loop() if self._try([], rest) and all(self.clues_on()) else None
            if order is not None and loop_ok(self.clues, order):
                self.solutions.append(order)
                self._log("close")
            else:
                self._log("dead", "the loop closed but a circle is missed or its number "
                                  "does not hold")
            self.undo(mark, closed)
            return
        best = None
        for p in sorted(self.clues):
            if p in self.placed:
                continue
            opts = [o for o in self.options[p] if all(self.st[e] != 0 for e in o[1])
                    and all(self.st[e] != 1 for e in o[2])]
            if best is None or len(opts) < len(best[1]):
                best = (p, opts)
        if best is not None:
            p, opts = best
            colour, v = self.clues[p]
            what = f"{'black' if colour == 'B' else 'white'} {v} at ({p[0]},{p[1]})"
            if not opts:
                self._log("dead", f"{what} has no placement left")
                return
            self.placed.add(p)
            for desc, on, off in opts:
                mark, closed = len(self.trail), self.closed
                if self._try(on, off):
                    self._log("place", what, desc, len(opts), len(self.trail) - mark)
                    self._search(limit)
                    if len(self.solutions) >= limit:
                        self.undo(mark, closed)
                        break
                    self._log("undo", what, desc)
                else:
                    self._log("dead", f"{what} as {desc} contradicts the edges already fixed")
                self.undo(mark, closed)
            self.placed.discard(p)
            return
        # every circle placed: extend a loose end
        for p, es in sorted(self.pe.items()):
            ons = [e for e in es if e is not None and self.st[e] == 1]
            unk = [e for e in es if e is not None and self.st[e] == -1]
            if len(ons) == 1 and unk:
                e = unk[0]
                q = self.ends[e][1] if self.ends[e][0] == p else self.ends[e][0]
                for v in (1, 0):
                    mark, closed = len(self.trail), self.closed
                    if self._try([e] if v else [], [] if v else [e]):
                        self._log("edge", p, q, v)
                        self._search(limit)
                        if len(self.solutions) >= limit:
                            self.undo(mark, closed)
                            return
                    else:
                        self._log("dead", f"the segment ({p[0]},{p[1]})-({q[0]},{q[1]}) cannot "
                                          f"be {'used' if v else 'left out'}")
                    self.undo(mark, closed)
                return
        self._log("dead", "loose pieces that cannot be joined")

    def clues_on(self):
        for p in self.clues:
            yield sum(1 for e in self.pe[p] if e is not None and self.st[e] == 1) == 2

    def loop(self):
        return cycle_order([self.ends[e] for e, v in enumerate(self.st) if v == 1])


def edges_of(order):
    return [(order[i], order[(i + 1) % len(order)]) for i in range(len(order))]


class Shingoki(Task):
    name = "shingoki"
    official = "shingoki"
    group = "Puzzles"
    answer_shape = formats.EDGES

    def make(self, rng, level):
        n = SIZES[level]
        for _ in range(200):
            order = random_loop(rng, n)
            if order is None or len(order) < 4:
                continue
            info = run_lengths(order)
            pts = sorted(info)
            chosen = set(rng.sample(pts, min(len(pts), CIRCLES[level])))
            if not any(info[p][0] for p in chosen):  # at least one black circle
                chosen.add(rng.choice([p for p in pts if info[p][0]]))
            mine = set(edges_of_norm(order))
            try:
                while True:
                    grid = [["."] * n for _ in range(n)]
                    for p in chosen:
                        is_turn, a1, a2 = info[p]
                        grid[p[0]][p[1]] = f"{'B' if is_turn else 'W'}{a1 + a2}"
                    found = Solver(grid, node_limit=GEN_NODE_LIMIT).run(limit=2)
                    other = [o for o in found if set(edges_of_norm(o)) != mine]
                    if not other:
                        return grid, [list(map(list, e)) for e in edges_of(order)], {
                            "size": n, "circles": len(chosen), "loop_length": len(order),
                            "unique": True}
                    # add a circle where the other loop disagrees with ours
                    o = run_lengths(other[0])
                    diff = [p for p in pts if p not in chosen
                            and (o.get(p) is None or o[p][0] != info[p][0]
                                 or sum(o[p][1:]) != sum(info[p][1:]))]
                    if not diff:  # no circle on our loop tells the two loops apart
                        break
                    chosen.add(rng.choice(diff))
            except Limit:
                continue
        raise RuntimeError(f"shingoki: no unique puzzle at level {level}")

    def solve(self, state):
        try:
            found = Solver(state).run(limit=1)
        except Limit:
            return None
        return [list(map(list, e)) for e in edges_of(found[0])] if found else None

    def format_answer(self, solution) -> str:
        return " ".join(f"({a[0]},{a[1]})-({b[0]},{b[1]})" for a, b in solution)

    def check(self, answer, state) -> bool:
        n, m = len(state), len(state[0])
        if len(answer) > 20 * (2 * n * m + 4):
            return False
        segs = _SEG.findall(answer)
        if not segs or not only_separators(_SEG.sub(" ", answer)):
            return False
        edges = set()
        for r1, c1, r2, c2 in segs:
            a, b = (int(r1), int(c1)), (int(r2), int(c2))
            if not all(0 <= p[0] < n and 0 <= p[1] < m for p in (a, b)):
                return False
            # a straight run between turns may be written as one segment: (0,0)-(0,2) is
            # (0,0)-(0,1) (0,1)-(0,2); anything else that is not a unit step is rejected
            if a == b or (a[0] != b[0] and a[1] != b[1]):
                return False
            lo, hi = min(a, b), max(a, b)
            dr, dc = hi[0] - lo[0] > 0, hi[1] - lo[1] > 0
            for k in range(max(hi[0] - lo[0], hi[1] - lo[1])):
                p = (lo[0] + dr * k, lo[1] + dc * k)
                e = (p, (p[0] + dr, p[1] + dc))
                if e in edges:
                    return False
                edges.add(e)
        order = cycle_order(sorted(edges))
        return order is not None and loop_ok(clues_of(state), order)

    # ---- presentation ------------------------------------------------------------------
    def render(self, state):
        n, m = len(state), len(state[0])
        sp = 90 if n <= 4 else (80 if n <= 5 else 70)
        ox, oy = 70, 100
        w, h = ox + (m - 1) * sp + 60, oy + (n - 1) * sp + 60
        img, d = draw.canvas(max(w, 360), h)
        draw.title(d, img.width, "Shingoki: draw one loop through the points", size=18, y=24)
        draw.center_text(d, (img.width / 2, 50), "point (r,c): r = row from 0 (top), "
                                                 "c = column from 0 (left)", size=14, fill=draw.GREY)
        for k in range(n):
            d.line([(ox, oy + k * sp), (ox + (m - 1) * sp, oy + k * sp)], fill=draw.LIGHT, width=2)
            draw.center_text(d, (ox - 36, oy + k * sp), k, size=16, fill=draw.BLUE)
        for k in range(m):
            d.line([(ox + k * sp, oy), (ox + k * sp, oy + (n - 1) * sp)], fill=draw.LIGHT, width=2)
            draw.center_text(d, (ox + k * sp, oy - 32), k, size=16, fill=draw.BLUE)
        clues = clues_of(state)
        rad = 20
        for r in range(n):
            for c in range(m):
                x, y = ox + c * sp, oy + r * sp
                if (r, c) in clues:
                    col, v = clues[(r, c)]
                    fill, fg = (draw.BLACK, draw.WHITE) if col == "B" else (draw.WHITE, draw.BLACK)
                    d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=fill, outline=draw.BLACK, width=3)
                    draw.center_text(d, (x, y), v, size=20, fill=fg)
                else:
                    d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=draw.GREY)
        return [img]

    def question(self, state, text_only=False) -> str:
        n, m = len(state), len(state[0])
        rules = ("Shingoki: draw a single closed loop along the grid lines, joining neighbouring "
                 "points horizontally or vertically. The loop never crosses or touches itself "
                 "(each point is used at most once) and need not visit every point, but it must "
                 "pass through every circle. At a white circle the loop goes straight; at a black "
                 "circle it turns. The number in a circle is the sum of the lengths of the two "
                 "straight segments leaving it (each measured in grid steps up to the next turn).")
        if text_only:
            rows = "\n".join(" ".join(f"{str(v):>3}" for v in row) for row in state)
            where = (f"The {n}x{m} points, row 0 first (Bk = black circle with number k, Wk = "
                     f"white circle with number k, . = plain point):\n{rows}")
        else:
            where = (f"The image shows the {n}x{m} points with row numbers on the left and "
                     "column numbers on top; circles are drawn black or white with their "
                     "numbers.")
        fmt = ("Answer with every segment of the loop as (r1,c1)-(r2,c2), with 0-based row r and "
               "column c of its two end points, separated by spaces, for example: "
               "(0,0)-(0,1) (0,1)-(1,1) (1,1)-(1,0) (1,0)-(0,0)")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_from_str(self, text):
        v = parse_literal(text) if isinstance(text, str) else text
        if isinstance(v, dict) and "grid" in v:  # the official generator's older dict form
            v = v["grid"]
        if not isinstance(v, list) or not v or not all(isinstance(r, list) for r in v):
            raise ValueError("shingoki: expected a 2D list of labels")
        return [[str(x) for x in row] for row in v]

    # ---- skeleton ----------------------------------------------------------------------
    def skeleton(self, state):
        s = Solver(state, trace=True)
        clues = clues_of(state)
        steps = [
            step("rule", "Each circle allows only a few shapes: a white circle a straight "
                         "stretch of its number's length through it (split some way around it), "
                         "a black circle two perpendicular arms whose lengths add up to its "
                         "number; the loop must turn at the end of every stretch or arm. Fix "
                         "the circle with the fewest shapes left, then deduce: every point has "
                         "0 or 2 segments, a circle exactly 2, and no small loop may close "
                         "early. Undo a choice that leads to a contradiction."),
            step("read", "Circles: " + ", ".join(
                f"{'black' if col == 'B' else 'white'} {v} at ({r},{c})"
                for (r, c), (col, v) in sorted(clues.items())) + "."),
        ]
        try:
            found = s.run(limit=1)
        except Limit:
            found = []
        omitted = 0
        for ev in s.trace:
            if len(steps) >= 120:
                omitted += 1
                continue
            if ev[0] == "place":
                _, what, desc, nopt, forced = ev
                pre = "only one shape fits:" if nopt == 1 else f"{nopt} shapes fit; try"
                steps.append(step("step", f"{what}: {pre} {desc}; this settles {forced} "
                                          f"segment{'s' if forced != 1 else ''}."))
            elif ev[0] == "dead":
                steps.append(step("backtrack", f"Contradiction: {ev[1]}."))
            elif ev[0] == "undo":
                steps.append(step("backtrack", f"Undo {ev[1]} as {ev[2]}."))
            elif ev[0] == "edge":
                _, p, q, v = ev
                steps.append(step("step", f"Loose end at ({p[0]},{p[1]}): "
                                          f"{'use' if v else 'leave out'} the segment to "
                                          f"({q[0]},{q[1]})."))
            elif ev[0] == "close":
                steps.append(step("step", "The loop closes with every circle on it."))
        if omitted:
            steps.append(step("step", f"... {omitted} further search events omitted."))
        if not found:
            steps.append(step("answer", "No solution"))
            return steps
        order = found[0]
        info = run_lengths(order)
        checks = "; ".join(f"({r},{c}) {'turns' if info[(r, c)][0] else 'straight'}, "
                           f"{info[(r, c)][1]}+{info[(r, c)][2]}={v}"
                           for (r, c), (col, v) in sorted(clues.items()))
        steps.append(step("check", f"One closed loop of {len(order)} segments. {checks}."))
        steps.append(step("answer", self.format_answer(edges_of(order))))
        return steps


def edges_of_norm(order):
    return [tuple(sorted(e)) for e in edges_of(order)]


TASK = Shingoki()
