"""Bridges (Hashiwokakero): join numbered islands with horizontal or vertical bridges.

Rules as checked: every island has exactly as many bridges as its number; a pair of islands
has at most 2 bridges; a bridge runs straight between two islands in the same row or
column with no island between them; bridges do not cross; all islands are connected.

Coordinates (the official convention): islands sit on the points of an n x n lattice,
(x, y) with x = column and y = row, both 0-based from the top-left corner. Answer: one line
per bridge `(x1,y1)-(x2,y2):k` with k = 1 or 2 (a pair written twice adds up). Any valid set
of bridges passes; the generator keeps only puzzles whose solution the solver proves
unique, and never repeats a puzzle across seeds (the official release repeats one puzzle
over a whole batch).

State: {"size": n, "islands": [{"x", "y", "num"}, ...]}. The official `initial_state` is
{"islands": [...], "bridges": [...]} - it leaks the solution; we read the islands and
ignore the bridges.
"""
from __future__ import annotations

import re

from . import draw, formats
from ._paths import only_separators
from .base import Task, parse_literal, step

# level: (min islands, max islands, grid size) - the official settings
LEVELS = {1: (3, 4, 5), 2: (4, 5, 6), 3: (5, 6, 7), 4: (6, 7, 8), 5: (7, 10, 9)}
_ENTRY = re.compile(r"\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)\s*-{1,2}>?\s*\(\s*(\d{1,3})\s*,"
                    r"\s*(\d{1,3})\s*\)\s*[:=x×]\s*(\d{1,2})(?:\.0*)?")
NODE_LIMIT = 100_000


class Limit(Exception):
    pass


def candidate_edges(islands):
    """Pairs of islands that see each other (same row or column, nothing in between):
    [(i, j, orientation)], i < j, with island i left of / above island j."""
    at = {(isl["x"], isl["y"]): k for k, isl in enumerate(islands)}
    edges = []
    for i, isl in enumerate(islands):
        for dx, dy, o in ((1, 0, "h"), (0, 1, "v")):
            x, y = isl["x"] + dx, isl["y"] + dy
            while 0 <= x <= 60 and 0 <= y <= 60:
                if (x, y) in at:
                    edges.append((i, at[(x, y)], o))
                    break
                x, y = x + dx, y + dy
    return edges


def crosses(islands, e, f):
    """Do edges e and f (one horizontal, one vertical) cross strictly inside both?"""
    if e[2] == f[2]:
        return False
    h, v = (e, f) if e[2] == "h" else (f, e)
    hy = islands[h[0]]["y"]
    hx1, hx2 = islands[h[0]]["x"], islands[h[1]]["x"]
    vx = islands[v[0]]["x"]
    vy1, vy2 = islands[v[0]]["y"], islands[v[1]]["y"]
    return min(hx1, hx2) < vx < max(hx1, hx2) and min(vy1, vy2) < hy < max(vy1, vy2)


def connected(n, pairs):
    adj = {i: [] for i in range(n)}
    for i, j in pairs:
        adj[i].append(j)
        adj[j].append(i)
    seen, stack = {0}, [0]
    while stack:
        for j in adj[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return len(seen) == n


def _pt(isl):
    return f"({isl['x']},{isl['y']})"


class Solver:
    """Backtracking over the candidate edges (0, 1 or 2 bridges each), island by island.
    After each choice: no island may exceed its number, every island must still be able to
    reach its number with its undecided edges, no two used edges may cross; at the end the
    islands must form one group. Counts solutions up to `limit`; optional trace."""

    def __init__(self, islands, trace=False, node_limit=NODE_LIMIT):
        self.isl = islands
        self.edges = candidate_edges(islands)
        self.need = [isl["num"] for isl in islands]
        # order edges so that each island's edges are decided together (most constrained first)
        order, seen = [], set()
        for i in sorted(range(len(islands)), key=lambda k: (-islands[k]["num"], k)):
            for k, e in enumerate(self.edges):
                if i in e[:2] and k not in seen:
                    seen.add(k)
                    order.append(k)
        self.order = order
        self.cross = {k: [m for m, f in enumerate(self.edges) if crosses(islands, self.edges[k], f)]
                      for k in range(len(self.edges))}
        self.inc = {i: [k for k, e in enumerate(self.edges) if i in e[:2]] for i in range(len(islands))}
        self.value = [None] * len(self.edges)
        self.trace = [] if trace else None
        self.nodes, self.node_limit = 0, node_limit
        self.solutions = []

    def capacity(self, i):
        cap = 0
        for k in self.inc[i]:
            if self.value[k] is None:
                a, b = self.edges[k][:2]
                if any(self.value[m] for m in self.cross[k]):
                    continue
                cap += min(2, self.need[a], self.need[b])
        return cap

    def run(self, limit=2):
        if sum(self.need) % 2 or not self.isl:
            return []
        self._search(0, limit)
        return self.solutions

    def name(self, k):
        i, j, _ = self.edges[k]
        return f"{_pt(self.isl[i])}-{_pt(self.isl[j])}"

    def _search(self, pos, limit):
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise Limit
        if pos == len(self.order):
            if any(self.need):
                return
            used = [(e[0], e[1]) for k, e in enumerate(self.edges) if self.value[k]]
            if connected(len(self.isl), used):
                self.solutions.append({k: v for k, v in enumerate(self.value) if v})
            elif self.trace is not None:
                self.trace.append(("dead", None, "every number is met but the islands form "
                                                 "more than one group"))
            return
        k = self.order[pos]
        i, j, _ = self.edges[k]
        top = min(2, self.need[i], self.need[j])
        if any(self.value[m] for m in self.cross[k]):
            top = 0
        choices = list(range(top, -1, -1))
        for v in choices:
            self.value[k] = v
            self.need[i] -= v
            self.need[j] -= v
            short = [a for a in (i, j) if self.capacity(a) < self.need[a]]
            if not short:
                # the other endpoints of still-open edges crossing this one lose capacity
                for m in self.cross[k] if v else ():
                    a, b, _ = self.edges[m]
                    short += [c for c in (a, b) if self.capacity(c) < self.need[c]]
            if short:
                if self.trace is not None:
                    c = short[0]
                    self.trace.append(("dead", k, f"with {v} on {self.name(k)} the island "
                                                  f"{_pt(self.isl[c])} can no longer reach "
                                                  f"its number {self.isl[c]['num']}"))
            else:
                if self.trace is not None:
                    self.trace.append(("set", k, v, len(choices)))
                self._search(pos + 1, limit)
                if self.trace is not None and len(self.solutions) < limit:
                    self.trace.append(("undo", k, v))
            self.need[i] += v
            self.need[j] += v
            self.value[k] = None
            if len(self.solutions) >= limit:
                return


class Bridges(Task):
    name = "bridges"
    official = "bridges"
    group = "Puzzles"
    answer_shape = formats.EDGES

    def make(self, rng, level):
        lo, hi, n = LEVELS[level]
        for _ in range(500):
            islands = self._draw(rng, rng.randint(lo, hi), n)
            if islands is None:
                continue
            try:
                found = Solver(islands).run(limit=2)
            except Limit:
                continue
            if len(found) == 1:
                state = {"size": n, "islands": islands}
                sol = self._solution(islands, found[0])
                return state, sol, {"islands": len(islands), "size": n, "bridges": len(sol),
                                    "unique": True}
        raise RuntimeError(f"bridges: no unique puzzle at level {level}")

    @staticmethod
    def _draw(rng, count, n):
        """Grow a random connected bridge network: from a random island, repeatedly run a
        bridge of length >= 2 from an existing island to a new one, never through an island
        or across a bridge; then add a few extra bridges. Numbers = bridge counts."""
        pts = [(rng.randrange(n), rng.randrange(n))]
        bridges = {}
        occupied = set()  # lattice points covered by a bridge (not islands)

        def path(a, b):
            (x1, y1), (x2, y2) = a, b
            if x1 == x2:
                return [(x1, y) for y in range(min(y1, y2) + 1, max(y1, y2))]
            return [(x, y1) for x in range(min(x1, x2) + 1, max(x1, x2))]

        tries = 0
        while len(pts) < count and tries < 300:
            tries += 1
            a = rng.choice(pts)
            dx, dy = rng.choice(((1, 0), (-1, 0), (0, 1), (0, -1)))
            length = rng.randint(2, n - 1)
            b = (a[0] + dx * length, a[1] + dy * length)
            if not (0 <= b[0] < n and 0 <= b[1] < n) or b in pts or b in occupied:
                continue
            if any(abs(b[0] - p[0]) + abs(b[1] - p[1]) == 1 for p in pts):
                continue  # islands never sit side by side
            cells = path(a, b)
            if any(c in occupied or c in pts for c in cells):
                continue
            pts.append(b)
            bridges[(a, b)] = rng.choice((1, 1, 2))
            occupied.update(cells)
        if len(pts) < count:
            return None
        # extra bridges between islands that see each other across free points
        for _ in range(rng.randint(0, max(1, count // 3))):
            a, b = rng.sample(pts, 2)
            if (a[0] != b[0] and a[1] != b[1]) or (a, b) in bridges or (b, a) in bridges:
                continue
            cells = path(a, b)
            if not cells or any(c in occupied or c in pts for c in cells):
                continue
            bridges[(a, b)] = rng.choice((1, 2))
            occupied.update(cells)
        num = {p: 0 for p in pts}
        for (a, b), k in bridges.items():
            num[a] += k
            num[b] += k
        return [{"x": x, "y": y, "num": num[(x, y)]} for x, y in sorted(pts, key=lambda p: (p[1], p[0]))]

    @staticmethod
    def _solution(islands, values):
        edges = candidate_edges(islands)
        out = []
        for k, v in sorted(values.items()):
            i, j, _ = edges[k]
            a, b = sorted([(islands[i]["x"], islands[i]["y"]), (islands[j]["x"], islands[j]["y"])])
            out.append([a[0], a[1], b[0], b[1], v])
        return sorted(out)

    def solve(self, state):
        try:
            found = Solver(state["islands"]).run(limit=1)
        except Limit:
            return None
        return self._solution(state["islands"], found[0]) if found else None

    def format_answer(self, solution) -> str:
        return "\n".join(f"({x1},{y1})-({x2},{y2}):{k}" for x1, y1, x2, y2, k in solution)

    def check(self, answer, state) -> bool:
        islands = state["islands"]
        if len(answer) > 40 * (4 * len(islands) + 4):
            return False
        entries = _ENTRY.findall(answer)
        if not entries or not only_separators(_ENTRY.sub(" ", answer)):
            return False
        at = {(isl["x"], isl["y"]): k for k, isl in enumerate(islands)}
        edges = candidate_edges(islands)
        index = {(i, j): k for k, (i, j, _) in enumerate(edges)}
        value = {}
        for x1, y1, x2, y2, k in entries:
            a, b = at.get((int(x1), int(y1))), at.get((int(x2), int(y2)))
            if a is None or b is None:
                return False
            e = index.get((min(a, b), max(a, b)))
            if e is None:  # not in line, or an island in between
                return False
            value[e] = value.get(e, 0) + int(k)
        if any(v > 2 for v in value.values()):  # at most 2 bridges per pair (repeats add up)
            return False
        used = [k for k, v in value.items() if v]
        for p in range(len(used)):
            for q in range(p + 1, len(used)):
                if crosses(islands, edges[used[p]], edges[used[q]]):
                    return False
        deg = [0] * len(islands)
        for k in used:
            i, j, _ = edges[k]
            deg[i] += value[k]
            deg[j] += value[k]
        if deg != [isl["num"] for isl in islands]:
            return False
        return connected(len(islands), [edges[k][:2] for k in used])

    # ---- presentation ------------------------------------------------------------------
    def render(self, state):
        n = state["size"]
        sp = 64 if n <= 6 else 58
        ox, oy = 70, 100
        w, h = ox + (n - 1) * sp + 60, oy + (n - 1) * sp + 50
        img, d = draw.canvas(max(w, 380), h)
        draw.title(d, img.width, "Bridges: islands at lattice points (x, y)", size=18, y=24)
        draw.center_text(d, (img.width / 2, 50), "x = column from 0 (left), y = row from 0 (top)",
                         size=14, fill=draw.GREY)
        for k in range(n):
            d.line([(ox + k * sp, oy), (ox + k * sp, oy + (n - 1) * sp)], fill=draw.LIGHT, width=1)
            d.line([(ox, oy + k * sp), (ox + (n - 1) * sp, oy + k * sp)], fill=draw.LIGHT, width=1)
            draw.center_text(d, (ox + k * sp, oy - 26), k, size=16, fill=draw.BLUE)
            draw.center_text(d, (ox - 32, oy + k * sp), k, size=16, fill=draw.BLUE)
        for x in range(n):
            for y in range(n):
                d.ellipse([ox + x * sp - 2, oy + y * sp - 2, ox + x * sp + 2, oy + y * sp + 2],
                          fill=draw.GREY)
        r = 19
        for isl in state["islands"]:
            cx, cy = ox + isl["x"] * sp, oy + isl["y"] * sp
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(230, 240, 255), outline=draw.BLUE, width=3)
            draw.center_text(d, (cx, cy), isl["num"], size=20)
        return [img]

    def question(self, state, text_only=False) -> str:
        rules = ("Bridges (Hashiwokakero): connect the numbered islands with bridges. Each island "
                 "needs exactly as many bridges as its number. Bridges run horizontally or "
                 "vertically in a straight line between two islands, never pass over another "
                 "island, never cross each other, and at most 2 bridges join the same pair of "
                 "islands. All islands must end up connected into one network.\n"
                 "Coordinates: (x, y) with x = column and y = row, both counted from 0 at the "
                 "top-left corner.")
        if text_only:
            isl = "\n".join(f"Island at ({i['x']}, {i['y']}) with number {i['num']}"
                            for i in state["islands"])
            where = f"The grid has {state['size']}x{state['size']} points. Islands:\n{isl}"
        else:
            where = ("The image shows the islands as circles with their numbers, on a lattice "
                     "whose x coordinates are written above and y coordinates on the left.")
        fmt = ("Answer with one line per pair of connected islands, (x1,y1)-(x2,y2):k where k is "
               "the number of bridges (1 or 2), for example:\n(0,4)-(2,4):1\n(2,1)-(2,4):2")
        return f"{rules}\n\n{where}\n\n{fmt}"


    def state_from_str(self, text):
        v = parse_literal(text) if isinstance(text, str) else text
        if not isinstance(v, dict) or not isinstance(v.get("islands"), list):
            raise ValueError("bridges: expected a dict with islands")
        islands = [{"x": int(i["x"]), "y": int(i["y"]), "num": int(i["num"])} for i in v["islands"]]
        if "size" in v:
            return {"size": int(v["size"]), "islands": islands}
        # official: no size; the lattice must at least hold every island
        size = max(max(i["x"] for i in islands), max(i["y"] for i in islands)) + 1
        return {"size": size, "islands": sorted(islands, key=lambda i: (i["y"], i["x"]))}

    # ---- skeleton ----------------------------------------------------------------------
    def skeleton(self, state):
        islands = state["islands"]
        s = Solver(islands, trace=True)
        steps = [
            step("rule", "List every pair of islands that see each other (same row or column, "
                         "nothing between). Decide each pair's bridges (2, 1 or 0), starting "
                         "with the islands with the largest numbers; after each choice every "
                         "island must still be able to reach its number with its open pairs "
                         "(crossed pairs are closed). Undo a choice when that fails; at the end "
                         "all islands must be connected."),
            step("read", "Islands: " + ", ".join(f"{_pt(i)}={i['num']}" for i in islands) + "."),
            step("step", f"{len(s.edges)} candidate pairs: "
                         + ", ".join(s.name(k) for k in range(len(s.edges))) + "."),
        ]
        try:
            found = s.run(limit=1)
        except Limit:
            found = []
        run, omitted = [], 0

        def flush():
            if run:
                steps.append(step("step", "Forced: " + ", ".join(run) + "."))
                run.clear()
        for ev in s.trace:
            if len(steps) >= 120:
                omitted += 1
                continue
            if ev[0] == "set":
                _, k, v, nch = ev
                if nch == 1:
                    run.append(f"{s.name(k)} = {v}")
                else:
                    flush()
                    steps.append(step("step", f"Try {v} bridge{'s' if v != 1 else ''} on "
                                              f"{s.name(k)}."))
            elif ev[0] == "dead":
                flush()
                steps.append(step("backtrack", f"Dead end: {ev[2]}."))
            elif ev[0] == "undo":
                flush()
                steps.append(step("backtrack", f"Undo {s.name(ev[1])} = {ev[2]}."))
        flush()
        if omitted:
            steps.append(step("step", f"... {omitted} further search events omitted."))
        if not found:
            steps.append(step("answer", "No solution"))
            return steps
        sol = self._solution(islands, found[0])
        steps.append(step("check", "Every island has its number of bridges, no pair has more "
                                   "than 2, no bridges cross, and all islands are connected."))
        steps.append(step("answer", self.format_answer(sol)))
        return steps


TASK = Bridges()
