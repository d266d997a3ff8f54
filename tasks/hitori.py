"""Hitori: shade cells so that no number repeats among the unshaded cells of a row or column,
no two shaded cells touch orthogonally, and the unshaded cells stay orthogonally connected.

Levels: size 4x4, 5x5, 6x6, 7x7, 8x8 (a Latin square whose shaded cells were given duplicate
numbers).
Uniqueness: the three rules never forbid shading an extra cell that is not needed (a cell
whose number is already unique, kept away from other shaded cells), so we prove uniqueness
of the MINIMAL shading - the one where every shaded cell removes a duplicate - with the
solver, and the verifier accepts ANY shading that satisfies the three rules (minimal or not).
Official state: the 2D list of numbers. Answer: `{(r, c), ...}`, 0-based (row, column);
list and tuple spellings `[(r, c), ...]`, `[[r, c], ...]` are read too.
"""
from __future__ import annotations


from . import formats
from ._shade import Search, Trace, board, capped_steps, connected, cut_cells, parse_pairs
from .base import Task, parse_literal, step

SIZES = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8}


def latin(rng, n):
    rows, cols, syms = list(range(n)), list(range(n)), list(range(1, n + 1))
    rng.shuffle(rows)
    rng.shuffle(cols)
    rng.shuffle(syms)
    return [[syms[(rows[r] + cols[c]) % n] for c in range(n)] for r in range(n)]


def rule_ok(grid, shaded) -> bool:
    """The three Hitori rules for the set `shaded` of (r, c)."""
    n = len(grid)
    for r, c in shaded:
        if (r + 1, c) in shaded or (r, c + 1) in shaded:
            return False
    for i in range(n):
        row = [grid[i][j] for j in range(n) if (i, j) not in shaded]
        col = [grid[j][i] for j in range(n) if (j, i) not in shaded]
        if len(row) != len(set(row)) or len(col) != len(set(col)):
            return False
    white = [(r, c) for r in range(n) for c in range(n) if (r, c) not in shaded]
    return bool(white) and connected(white)


class Hitori(Task):
    name = "hitori"
    official = "hitori"
    group = "Puzzles"
    answer_shape = formats.CELLS

    # ---- generation ---------------------------------------------------------------------------
    def make(self, rng, level):
        n = SIZES[level]
        tries = 0
        while True:
            tries += 1
            grid = latin(rng, n)
            cells = [(r, c) for r in range(n) for c in range(n)]
            rng.shuffle(cells)
            target = int(n * n * rng.uniform(0.26, 0.33))
            shaded = set()
            for cell in cells:
                if len(shaded) >= target:
                    break
                r, c = cell
                if any((a, b) in shaded for a, b in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))):
                    continue
                white = [x for x in cells if x not in shaded and x != cell]
                if connected(white):
                    shaded.add(cell)
            order = sorted(shaded)
            rng.shuffle(order)
            for r, c in order:
                pool = [grid[r][j] for j in range(n) if (r, j) not in shaded] + \
                       [grid[i][c] for i in range(n) if (i, c) not in shaded]
                grid[r][c] = rng.choice(pool)
            srch = self._search(grid, limit=2, node_cap=4000)
            if len(srch.solutions) == 1 and srch.exhausted:
                sol = srch.solutions[0]
                shade = [[r, c] for r in range(n) for c in range(n) if sol[r * n + c] == 1]
                return grid, shade, {"size": n, "shaded": len(shade), "search_nodes": srch.nodes,
                                     "tries": tries}

    # ---- solver -------------------------------------------------------------------------------
    def _search(self, grid, limit=2, trace=None, node_cap=200_000):
        n = len(grid)
        N = n * n
        adj = [[(r + dr) * n + c + dc for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < n and 0 <= c + dc < n] for r in range(n) for c in range(n)]
        partners = []
        for r in range(n):
            for c in range(n):
                v = grid[r][c]
                p = [r * n + j for j in range(n) if j != c and grid[r][j] == v]
                p += [i * n + c for i in range(n) if i != r and grid[i][c] == v]
                partners.append(p)

        def nm(i):
            return f"({i // n},{i % n})"

        def propagate(s, log):
            changed = True
            while changed:
                changed = False
                # a white cell forces its equal twins in the row/column to be shaded
                forced, src = [], []
                for i in range(N):
                    if s[i] == 0:
                        for j in partners[i]:
                            if s[j] == 0:
                                if log:
                                    log(f"{nm(i)} and {nm(j)} are both unshaded but both hold "
                                        f"{grid[i // n][i % n]} in one line")
                                return False
                            if s[j] is None:
                                s[j] = 1
                                forced.append(j)
                                src.append(i)
                if forced:
                    changed = True
                    if log:
                        log("Unshaded cells force their twins to be shaded: " + ", ".join(
                            f"{nm(j)} (same {grid[j // n][j % n]} as {nm(i)})"
                            for i, j in zip(src, forced)))
                # a shaded cell makes its orthogonal neighbours unshaded
                forced = []
                for i in range(N):
                    if s[i] == 1:
                        for j in adj[i]:
                            if s[j] == 1:
                                if log:
                                    log(f"shaded cells {nm(i)} and {nm(j)} touch")
                                return False
                            if s[j] is None:
                                s[j] = 0
                                forced.append(j)
                if forced:
                    changed = True
                    if log:
                        log("Neighbours of shaded cells stay unshaded: "
                            + ", ".join(nm(j) for j in sorted(forced)))
                    continue
                # a shaded cell must remove a duplicate: some twin of it stays unshaded
                forced = []
                for i in range(N):
                    if s[i] == 1:
                        if any(s[j] == 0 for j in partners[i]):
                            continue
                        open_ = [j for j in partners[i] if s[j] is None]
                        if not open_:
                            if log:
                                log(f"shaded {nm(i)} would remove no duplicate (every other "
                                    f"{grid[i // n][i % n]} in its row and column is shaded too)")
                            return False
                        if len(open_) == 1:
                            s[open_[0]] = 0
                            forced.append((i, open_[0]))
                if forced:
                    changed = True
                    if log:
                        log("A shaded cell must clear a duplicate, so its last possible twin "
                            "stays unshaded: " + ", ".join(f"{nm(j)} (for {nm(i)})" for i, j in forced))
                    continue
                # the unshaded cells must stay connected
                nodes = [i for i in range(N) if s[i] != 1]
                seen = {nodes[0]}
                todo = [nodes[0]]
                nodeset = set(nodes)
                while todo:
                    u = todo.pop()
                    for v in adj[u]:
                        if v in nodeset and v not in seen:
                            seen.add(v)
                            todo.append(v)
                if len(seen) != len(nodes):
                    if log:
                        log("the unshaded cells are cut into separate pieces")
                    return False
                cuts = [i for i in cut_cells(nodes, adj, nodes) if s[i] is None]
                if cuts:
                    for i in cuts:
                        s[i] = 0
                    changed = True
                    if log:
                        log("Shading any of " + ", ".join(nm(i) for i in sorted(cuts))
                            + " would cut the unshaded cells apart, so they stay unshaded")
            return True

        def choose(s):
            best, bk = None, None
            for i in range(N):
                if s[i] is None:
                    k = -sum(1 for j in partners[i] if s[j] is None)
                    if bk is None or k < bk:
                        best, bk = i, k
            return None if best is None else (best, (1, 0))

        def describe(i, v):
            return f"{nm(i)} {'shaded' if v else 'unshaded'}"

        def show(s):
            return "\n".join(" ".join("#" if s[r * n + c] == 1 else
                                      (str(grid[r][c]) if s[r * n + c] == 0 else "?")
                                      for c in range(n)) for r in range(n))
        start = [None if partners[i] else 0 for i in range(N)]
        srch = Search(propagate, choose, describe, show, limit=limit, trace=trace,
                      node_cap=node_cap)
        srch.run(start)
        return srch

    def solve(self, state):
        sols = self._search(state, limit=1).solutions
        if not sols:
            return None
        n = len(state)
        return [[i // n, i % n] for i, v in enumerate(sols[0]) if v == 1]

    def format_answer(self, solution):
        return "{" + ", ".join(f"({r}, {c})" for r, c in sorted(map(tuple, solution))) + "}"

    # ---- verifier -----------------------------------------------------------------------------
    def check(self, answer, state):
        n = len(state)
        pairs = parse_pairs(answer, max_pairs=n * n)
        if pairs is None:
            return False
        if any(not (0 <= r < n and 0 <= c < n) for r, c in pairs):
            return False
        return rule_ok(state, set(pairs))

    # ---- state strings ------------------------------------------------------------------------

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):
            v = v.get("grid", v.get("puzzle"))
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            v = [[int(t) for t in x.replace(",", " ").split()] for x in v]
        if not (isinstance(v, list) and v and all(isinstance(x, list) and len(x) == len(v) for x in v)):
            raise ValueError("hitori: expected a square 2D list of numbers")
        return [[int(x) for x in row] for row in v]

    # ---- presentation -------------------------------------------------------------------------
    def render(self, state):
        n = len(state)
        cell = 56 if n <= 6 else 50
        texts = {(r, c): state[r][c] for r in range(n) for c in range(n)}
        return [board(n, n, cell=cell, texts=texts, index_base=0, caption="Hitori",
                      font_size=24)]

    RULES = ("Solve the Hitori puzzle: shade some cells of the grid so that (1) no number "
             "appears twice among the UNSHADED cells of any row or any column, (2) no two "
             "shaded cells are orthogonally adjacent (they may touch diagonally), and (3) all "
             "unshaded cells form one region connected through orthogonal steps.")

    def question(self, state, text_only=False):
        n = len(state)
        if text_only:
            where = (f"The {n}x{n} grid, one row per line (row 0 first):\n"
                     + "\n".join(" ".join(map(str, row)) for row in state))
        else:
            where = (f"The image shows the {n}x{n} grid of numbers; the small grey numbers are "
                     f"the row indices (left) and column indices (top), starting from 0.")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the set of shaded cells as 0-based "
                f"(row, column) pairs, (0, 0) being the top-left cell, in the form "
                f"{{(0, 1), (2, 3), (3, 0)}} (this example only shows the format).")

    def skeleton(self, state):
        n = len(state)
        tr = Trace()
        srch = self._search(state, limit=1, trace=tr)
        lone = [(r, c) for r in range(n) for c in range(n)
                if not any(state[r][j] == state[r][c] for j in range(n) if j != c)
                and not any(state[i][c] == state[r][c] for i in range(n) if i != r)]
        steps = [step("rule", self.RULES + " A shaded cell is only ever needed to remove a "
                      "duplicate, so I look for the shading in which every shaded cell has an "
                      "equal number left unshaded in its row or column."),
                 step("read", "The grid:\n" + "\n".join(" ".join(map(str, row)) for row in state)),
                 step("step", f"Numbers that appear only once in both their row and their column "
                      f"never need shading: {', '.join(f'({r},{c})' for r, c in lone) or 'none'}.")]
        steps += capped_steps(tr)
        sol = srch.solutions[0]
        shaded = sorted((i // n, i % n) for i, v in enumerate(sol) if v == 1)
        steps.append(step("check", f"Shaded: {len(shaded)} cells, none orthogonally adjacent; every "
                          f"row and column now has distinct unshaded numbers; the "
                          f"{n * n - len(shaded)} unshaded cells are connected."))
        steps.append(step("answer", self.format_answer(shaded)))
        return steps


TASK = Hitori()
