"""Games group: sokoban, hanoi, maze, minesweeper, nibbles, sliding puzzle.

Per task: gold answers over 20 seeds per level, corruptions that are invalid by
construction (each says why), a different valid answer, level knobs, no duplicates,
official-format records, and the official faults we avoid.
"""
import os
import subprocess
import sys

import pytest

import tasks
from tasks import score
from tasks.base import LEVELS
from tasks._games import DIRS, OPPOSITE, parse_moves, parse_pairs

import tasks.maze as MZ
import tasks.minesweeper as MS
import tasks.nibbles as NB
import tasks.slidingpuzzle as SP
import tasks.sokoban as SK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["sokoban", "hanoi", "maze", "minesweeper", "nibbles", "slidingpuzzle"]
SEEDS = range(20)


def _official(category, initial_state, answer="", question="(an official question)"):
    return {"id": "official-1", "category": category, "initial_state": initial_state,
            "question": question, "answer": answer}


@pytest.fixture(scope="module")
def insts():
    cache = {}

    def get(name):
        if name not in cache:
            t = tasks.get(name)
            cache[name] = {lv: [t.generate(lv, s) for s in SEEDS] for lv in LEVELS}
        return cache[name]
    return get


# ---- shared ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_gold_passes_over_many_seeds(name, insts):
    t = tasks.get(name)
    for lv, group in insts(name).items():
        for inst in group:
            gold = t.answer(inst)
            assert t.verify(gold, inst.state), (name, lv, inst.seed)
            assert t.state_from_str(t.state_to_str(inst.state)) == inst.state


@pytest.mark.parametrize("name", [n for n in NAMES if n != "hanoi"])
def test_no_duplicates_at_level_3(name):
    t = tasks.get(name)
    keys = {t.canonical(t.generate(3, s).state) for s in range(30)}
    assert len(keys) == 30


def test_hanoi_state_space_is_small_but_not_collapsed():
    """Hanoi positions within 31 moves of the goal number only 3^5 = 243 (198 of them in the
    level-3 window), so 30 random draws repeat a few (birthday); synth.py skips repeats by
    walking on to further seeds. The generator must still spread over the space."""
    t = tasks.get("hanoi")
    keys = [t.canonical(t.generate(3, s).state) for s in range(30)]
    assert len(set(keys)) >= 25
    seen, seed = set(), 0
    while len(seen) < 30:
        seen.add(t.canonical(t.generate(3, seed).state))
        seed += 1
    assert seed <= 45


def test_determinism_across_processes():
    """Same (level, seed) -> same state and answer in fresh interpreters with different
    string-hash seeds (no set/dict-of-str iteration leaks into the output)."""
    code = ("import json, tasks\n"
            "out = {}\n"
            f"for n in {NAMES!r}:\n"
            "    t = tasks.get(n)\n"
            "    for lv in (2, 5):\n"
            "        i = t.generate(lv, 3)\n"
            "        out[f'{n}{lv}'] = [t.canonical(i.state), t.answer(i)]\n"
            "print(json.dumps(out, sort_keys=True))\n")
    outs = []
    for hs in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hs, PYTHONPATH=ROOT)
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        outs.append(res.stdout)
    assert outs[0] == outs[1]


def test_move_parsing_is_lenient_but_unambiguous():
    assert parse_moves("up right down left") == ["up", "right", "down", "left"]
    assert parse_moves("U, r,D ,l") == ["up", "right", "down", "left"]
    assert parse_moves('["up", "Left"]') == ["up", "left"]
    assert parse_moves("UP DOWN.") == ["up", "down"]
    for bad in ("ur", "up-right", "u p", "north", "up 2", "", "up -> down", "upright", "1"):
        assert parse_moves(bad) is None, bad
    assert parse_pairs("(0,1),(2, 3)") == [(0, 1), (2, 3)]
    assert parse_pairs("[(0,1) (2,3)]") == [(0, 1), (2, 3)]
    for bad in ("(0,1),x(2,3)", "0,1", "(0,1,2)", "((0,1))", "(a,b)", "(0,1)(2"):
        assert parse_pairs(bad) is None, bad


# ---- sokoban -----------------------------------------------------------------------------
def _sok_states(state, moves):
    return SK.replay(state, moves)


def test_sokoban_levels_and_solution_window(insts):
    sizes = {1: (5, 7), 2: (7, 9), 3: (7, 9), 4: (11, 13), 5: (11, 13)}
    boxes = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}
    caps = {1: 15, 2: 25, 3: 40, 4: 50, 5: 60}
    means = []
    for lv, group in insts("sokoban").items():
        for inst in group:
            m = inst.meta
            assert sizes[lv][0] <= m["height"] <= sizes[lv][1]
            assert sizes[lv][0] <= m["width"] <= sizes[lv][1]
            assert m["boxes"] == boxes[lv] == sum(ch in "$*" for row in inst.state for ch in row)
            assert m["min_moves"] <= m["optimal_moves"] <= caps[lv] == m["max_moves"]
            assert len(inst.solution) == m["optimal_moves"] >= 4      # never trivially solved
            assert m["optimal_in"] == "moves"
        means.append(sum(i.meta["optimal_moves"] for i in group) / len(group))
    assert means == sorted(means) and means[-1] > 2 * means[0]


def _sok_bfs(state):
    """Plain BFS over (player, boxes) states, no pruning: the optimal number of moves."""
    from collections import deque
    bd = SK.Board(state)
    start = (bd.player, frozenset(bd.boxes))
    dist = {start: 0}
    q = deque([start])
    while q:
        p, bx = q.popleft()
        if bx <= bd.goalset:
            return dist[(p, bx)]
        for d in range(4):
            n = bd.nb[p][d]
            if n < 0:
                continue
            nb = bx
            if n in bx:
                t = bd.nb[n][d]
                if t < 0 or t in bx:
                    continue
                nb = (bx - {n}) | {t}
            key = (n, nb)
            if key not in dist:
                dist[key] = dist[(p, bx)] + 1
                q.append(key)
    return None


def test_sokoban_solver_is_optimal_against_plain_bfs(insts):
    for lv in (1, 2, 3):
        for inst in insts("sokoban")[lv][:6]:
            assert _sok_bfs(inst.state) == inst.meta["optimal_moves"], (lv, inst.seed)


def test_sokoban_corruptions_fail(insts):
    t = tasks.get("sokoban")
    wall_hits = extra = 0
    for lv in LEVELS:
        for inst in insts("sokoban")[lv]:
            gold = list(inst.solution)
            bd = SK.Board(inst.state)
            states = _sok_states(inst.state, gold)
            # truncated: the optimal plan ends with the push that completes the last box,
            # so without it one box is off its goal
            assert not t.verify(" ".join(gold[:-1]), inst.state)
            # a move into a wall inserted where the player stands next to one: replay stops
            for k, (p, _) in enumerate(states):
                d = next((d for d in range(4) if bd.nb[p][d] < 0), None)
                if d is not None:
                    bad = gold[:k] + [SK.D4[d]] + gold[k:]
                    assert not t.verify(" ".join(bad), inst.state)
                    wall_hits += 1
                    break
            # an extra illegal move after the solution: into a wall, or pushing a box into
            # a wall/box
            p, bx = states[-1]
            for d in range(4):
                n = bd.nb[p][d]
                if n < 0 or (n in bx and (bd.nb[n][d] < 0 or bd.nb[n][d] in bx)):
                    assert not t.verify(" ".join(gold + [SK.D4[d]]), inst.state)
                    extra += 1
                    break
    assert wall_hits >= 95 and extra >= 90


def test_sokoban_push_into_wall_or_box_fails():
    t = tasks.get("sokoban")
    state = ["#######",
             "#     #",
             "# $$ .#",
             "#@   .#",
             "#######"]
    # up: player (3,1) -> (2,1); right pushes the box at (2,2) into the box at (2,3): illegal
    assert not t.verify("up right", state)
    # down from (3,1): the wall
    assert not t.verify("down", state)
    plan = t.solve(state)
    assert t.verify(" ".join(plan), state) and len(plan) == _sok_bfs(state)
    # a push into the wall: a box next to the east wall pushed east
    s2 = ["#####",
          "#@$.#",
          "#####"]
    assert t.verify("right", s2)
    assert not t.verify("right right", s2)      # box on (1,3) pushed into the wall (1,4)
    assert not t.verify("left", s2)             # player walks into the wall (1,0)
    assert t.verify("r", s2) and t.verify("R", s2) and t.verify(" right. ", s2)


def test_sokoban_a_different_valid_solution_passes(insts):
    t = tasks.get("sokoban")
    n = 0
    for lv in LEVELS:
        for inst in insts("sokoban")[lv]:
            bd = SK.Board(inst.state)
            p, bx = bd.player, set(bd.boxes)
            d = next((d for d in range(4) if bd.nb[p][d] >= 0 and bd.nb[p][d] not in bx), None)
            if d is None:
                continue
            alt = [SK.D4[d], OPPOSITE[SK.D4[d]]] + list(inst.solution)   # step out and back
            assert t.verify(" ".join(alt), inst.state)
            assert " ".join(alt) != t.answer(inst)
            n += 1
    assert n >= 90


def test_sokoban_official_record():
    level = "\n".join(["#######",
                       "#  .  #",
                       "#  $  #",
                       "#  @  #",
                       "#######"])
    rec = _official("sokoban", level, "up")
    assert score("\\boxed{up}", rec)
    assert score("<answer>U</answer>", rec)
    assert score("\\boxed{down}", rec) is False      # the wall below the player
    assert score("\\boxed{up up}", rec) is False     # box pushed into the top wall
    assert score("\\boxed{left up right}", rec) is False   # the box is pushed off, not onto
    st = tasks.get("sokoban").state_from_str(level)
    assert st == level.split("\n")


# ---- hanoi ---------------------------------------------------------------------------------
def test_hanoi_levels_grow(insts):
    means = []
    for lv, group in insts("hanoi").items():
        for inst in group:
            assert inst.meta["disks"] == lv + 2 == sum(len(p) for p in inst.state)
            assert inst.meta["min_moves"] <= inst.meta["optimal_moves"] <= inst.meta["max_moves"]
            assert inst.state[2] != list(range(lv + 2, 0, -1))
        means.append(sum(i.meta["optimal_moves"] for i in group) / len(group))
    assert means == sorted(means) and means[-1] > 5 * means[0]
    # random legal starts, not only the classic tower on peg 1
    starts = [i.state for g in insts("hanoi").values() for i in g]
    assert sum(s[0] != [] and s[1] == [] and s[2] == [] for s in starts) < len(starts) // 4


def test_hanoi_solver_is_optimal_against_bfs(insts):
    from collections import deque
    for lv in (1, 2, 3):
        for inst in insts("hanoi")[lv][:5]:
            start = tuple(tuple(p) for p in inst.state)
            n = sum(len(p) for p in start)
            goal = ((), (), tuple(range(n, 0, -1)))
            dist, q = {start: 0}, deque([start])
            while q:
                s = q.popleft()
                if s == goal:
                    break
                for i in range(3):
                    for j in range(3):
                        if i != j and s[i] and (not s[j] or s[j][-1] > s[i][-1]):
                            ns = [list(p) for p in s]
                            ns[j].append(ns[i].pop())
                            ns = tuple(tuple(p) for p in ns)
                            if ns not in dist:
                                dist[ns] = dist[s] + 1
                                q.append(ns)
            assert dist[goal] == inst.meta["optimal_moves"]


def test_hanoi_corruptions_fail_and_detour_passes(insts):
    t = tasks.get("hanoi")
    for lv in LEVELS:
        for inst in insts("hanoi")[lv]:
            gold = [tuple(m) for m in inst.solution]
            fmt = t.format_answer
            st = inst.state
            # truncated: the last move puts a disk onto peg 3 that was not there before
            assert not t.verify(fmt(gold[:-1]), st)
            # extra move after the goal: disk 1 leaves peg 3 (legal, but the goal is broken)
            assert not t.verify(fmt(gold + [(1, 1)]), st)
            # extra illegal move: disk 2 is under disk 1 on peg 3 at the end
            assert not t.verify(fmt(gold + [(2, 1)]), st)
            # a larger top disk onto a smaller top disk, prepended
            tops = sorted((p[-1], i) for i, p in enumerate(st) if p)
            if len(tops) >= 2:
                (_, ps), (big, _) = tops[0], tops[-1]
                assert not t.verify(fmt([(big, ps + 1)] + gold), st)
            # a disk that is not on top of its peg
            under = next(((p[-2], i) for i, p in enumerate(st) if len(p) >= 2), None)
            if under:
                dest = next(j for j in range(3) if j != under[1])
                assert not t.verify(fmt([(under[0], dest + 1)] + gold), st)
            # a peg outside 1..3 and a disk that does not exist
            assert not t.verify(fmt([(1, 4)] + gold), st)
            assert not t.verify(fmt([(lv + 3, 3)] + gold), st)
            # one move's peg changed: the first move goes to the other peg; disk 1... the
            # result may or may not be legal, but it can never equal the gold string
            # detour: disk 1 out and back (always legal: disk 1 is the smallest), then gold
            p1 = next(i for i, p in enumerate(st) if p and p[-1] == 1)
            other = next(j for j in range(3) if j != p1)
            alt = [(1, other + 1), (1, p1 + 1)] + gold
            assert t.verify(fmt(alt), st) and fmt(alt) != t.answer(inst)
    # spellings: commas, spaces inside pairs, brackets
    inst = insts("hanoi")[1][0]
    g = inst.solution
    assert t.verify(", ".join(f"({d}, {p})" for d, p in g), inst.state)
    assert t.verify("[" + ",".join(f"({d},{p})" for d, p in g) + "]", inst.state)
    assert not t.verify(" ".join(f"{d},{p}" for d, p in g), inst.state)   # no parentheses


def test_hanoi_official_record():
    # the official example state: peg 1 holds disk 1, peg 2 holds 3 under 2 (bottom to top)
    rec = _official("hanoi", "[[1], [3, 2], []]", "(1,3) (2,1) (1,1) (3,3) (1,2) (2,3) (1,3)")
    assert score("\\boxed{(1,3) (2,1) (1,1) (3,3) (1,2) (2,3) (1,3)}", rec)
    # read the other way round (top to bottom), disk 3 would be on top: moving it first is
    # illegal here because disk 2 is on top of it
    assert not score("\\boxed{(3,3)}", rec)
    # a shorter sequence that is legal but stops early
    assert not score("\\boxed{(1,3) (2,1) (1,1) (3,3)}", rec)
    # an optimal solution is 7 moves here: the solver agrees
    assert len(tasks.get("hanoi").solve([[1], [3, 2], []])) == 7


# ---- maze ----------------------------------------------------------------------------------
OFFICIAL_MAZE = "+-+-+\n|S 0|\n+ + +\n|0|E|\n+-+-+"   # the official prompt's example


def test_maze_levels_grow(insts):
    means = []
    for lv, group in insts("maze").items():
        for inst in group:
            n = inst.meta["size"]
            assert n == 2 * lv + 1 and len(inst.state) == 2 * n + 1
            assert inst.meta["path_length"] == len(inst.solution) >= 1
            # a perfect maze: n*n cells, n*n - 1 open passages
            opened = sum(row.count(" ") for row in inst.state)
            assert opened == n * n - 1
        means.append(sum(i.meta["path_length"] for i in group) / len(group))
    assert means == sorted(means)


def test_maze_corruptions_fail_and_detour_passes(insts):
    t = tasks.get("maze")
    through_wall = 0
    for lv in LEVELS:
        for inst in insts("maze")[lv]:
            mz = MZ.Maze(inst.state)
            gold = list(inst.solution)
            assert not t.verify(" ".join(gold[:-1]), inst.state)   # stops one cell short of E
            # extra move from E: every move out of E is either blocked (illegal) or leaves E
            assert not t.verify(" ".join(gold + [gold[-1]]), inst.state)
            back = OPPOSITE[gold[-1]]                                # open: we came that way
            assert not t.verify(" ".join(gold + [back]), inst.state)
            # a move through a wall (inside the grid) at the start
            for m in MZ.ORDER:
                dr, dc = DIRS[m]
                r, c = mz.start[0] + dr, mz.start[1] + dc
                if 0 <= r < mz.n and 0 <= c < mz.n and not mz.open(mz.start, m):
                    assert not t.verify(" ".join([m] + gold), inst.state)
                    through_wall += 1
                    break
            # off the grid
            edge = next((m for m in MZ.ORDER
                         if not (0 <= mz.start[0] + DIRS[m][0] < mz.n
                                 and 0 <= mz.start[1] + DIRS[m][1] < mz.n)), None)
            if edge:
                assert not t.verify(" ".join([edge] + gold), inst.state)
            # a different valid walk: out along an open passage and back, then the path
            m, _ = next(iter(mz.neighbours(mz.start)))
            alt = [m, OPPOSITE[m]] + gold
            assert t.verify(" ".join(alt), inst.state) and " ".join(alt) != t.answer(inst)
    assert through_wall >= 60


def test_maze_walls_block_unlike_the_official_evaluation(insts):
    """The official evaluation copy replays moves ignoring walls; a straight Manhattan walk
    from S to E then 'passes'. Here it fails whenever it crosses a wall."""
    t = tasks.get("maze")
    crossed = 0
    for lv in (3, 4, 5):
        for inst in insts("maze")[lv]:
            mz = MZ.Maze(inst.state)
            (sr, sc), (er, ec) = mz.start, mz.end
            walk = (["down"] * max(0, er - sr) + ["up"] * max(0, sr - er)
                    + ["right"] * max(0, ec - sc) + ["left"] * max(0, sc - ec))
            cur, blocked = mz.start, False
            for m in walk:
                blocked = blocked or not mz.open(cur, m)
                cur = (cur[0] + DIRS[m][0], cur[1] + DIRS[m][1])
            assert cur == mz.end                       # ignoring walls it would "arrive"
            if blocked:
                crossed += 1
                assert not t.verify(" ".join(walk), inst.state)
    assert crossed >= 40


def test_maze_official_record():
    rec = _official("maze", OFFICIAL_MAZE, "right down")
    assert score("\\boxed{right down}", rec)
    assert score("Answer: R, D", rec)
    assert not score("\\boxed{down right}", rec)     # (1,0) -> (1,1) crosses the '|' wall
    assert not score("\\boxed{right}", rec)
    assert score("\\boxed{right down up down}", rec)  # revisiting is fine, it ends on E
    st = tasks.get("maze").state_from_str(OFFICIAL_MAZE)
    assert tasks.get("maze").solve(st) == ["right", "down"]


# ---- minesweeper -------------------------------------------------------------------------
def test_minesweeper_levels_and_uniqueness(insts):
    table = {1: (5, 3), 2: (6, 4), 3: (7, 5), 4: (8, 7), 5: (9, 9)}
    for lv, group in insts("minesweeper").items():
        for inst in group[:8]:
            n, k = table[lv]
            assert inst.meta["size"] == n == len(inst.state) and inst.meta["mines"] == k
            assert len(inst.solution) == k
            assert inst.meta["covered_safe"] >= 2           # the answer is not "all covered"
            sols = MS.Board(inst.state).solutions(limit=3)
            assert len(sols) == 1 and sorted(sols[0]) == [tuple(x) for x in inst.solution]


def test_minesweeper_corruptions_fail_and_reordering_passes(insts):
    t = tasks.get("minesweeper")
    for lv in LEVELS:
        for inst in insts("minesweeper")[lv]:
            mines = [tuple(x) for x in inst.solution]
            st = inst.state
            fmt = lambda ms: ",".join(f"({r},{c})" for r, c in ms)   # noqa: E731
            # the mine set is unique (proved at generation), so any other set fails:
            assert not t.verify(fmt(mines[:-1]), st)                  # one mine missing
            safe_cov = [(r, c) for r in range(len(st)) for c in range(len(st))
                        if st[r][c] == "?" and (r, c) not in mines]
            assert not t.verify(fmt(mines + [safe_cov[0]]), st)       # one extra cell
            moved = mines[1:] + [safe_cov[0]]                         # one mine moved
            assert not t.verify(fmt(moved), st)
            shown = next((r, c) for r in range(len(st)) for c in range(len(st))
                         if st[r][c].isdigit())
            assert not t.verify(fmt(mines[1:] + [shown]), st)         # a revealed cell
            assert not t.verify(fmt([(r + 1, c) for r, c in mines]), st)   # all shifted down
            # the same set in another order and spelling passes
            alt = ", ".join(f"({r}, {c})" for r, c in reversed(mines))
            assert t.verify(alt, st) and alt != t.answer(inst)
            assert t.verify("[" + fmt(mines) + "]", st)


def test_minesweeper_official_record():
    # official style: every safe cell revealed, 0s and mines both shown as blanks
    rows = ["|1|1|1| | |",
            "|1| |1| | |",
            "|1|1|2|1|1|",
            "| | |1| |1|",
            "| | |1|1|1|"]
    rec = _official("minesweeper", "\n".join(rows), "(1, 1),(3, 3)")
    assert score("\\boxed{(1, 1),(3, 3)}", rec)               # the official gold spelling
    assert score("\\boxed{(1,1),(3,3)}", rec)
    assert not score("\\boxed{(1,1)}", rec)                    # (3,3) missing: (2,2) shows 2
    assert not score("\\boxed{(1,1),(3,3),(0,4)}", rec)        # (0,4) is a revealed 0
    assert not score("\\boxed{(1,1),(3,3),(4,0)}", rec)        # blank (4,0) is a 0 cell
    st = tasks.get("minesweeper").state_from_str("\n".join(rows))
    assert st[1] == "1 1  " and MS.Board(st).solutions(3) == [frozenset({(1, 1), (3, 3)})]
    # our own spelling with covered cells
    ours = tasks.get("minesweeper").state_from_str("|1|?|\n|?|1|")
    assert ours == ["1?", "?1"]


# ---- nibbles -------------------------------------------------------------------------------
def test_nibbles_levels_grow(insts):
    for lv, group in insts("nibbles").items():
        for inst in group:
            st = inst.state
            assert st["rows"] == st["cols"] == inst.meta["size"] == lv + 5
            assert len(st["apples"]) == inst.meta["apples"] == lv
            assert len(st["snake"]) == 2 and NB.heading(st["snake"]) == st["direction"]


def test_nibbles_corruptions_fail_and_another_route_passes(insts):
    t = tasks.get("nibbles")
    alts = 0
    for lv in LEVELS:
        for inst in insts("nibbles")[lv]:
            st, gold = inst.state, list(inst.solution)
            assert not t.verify(" ".join(gold[:-1]), st)   # the last move eats the last apple
            # reversing against the heading at the start: dead at once
            assert not t.verify(" ".join([OPPOSITE[st["direction"]]] + gold), st)
            # an extra move straight back after the end: a reversal, dead
            assert not t.verify(" ".join(gold + [OPPOSITE[gold[-1]]]), st)
            # straight ahead until the wall: the head leaves the grid (it may eat apples on
            # the way, never its own body: the body is behind it)
            run = [st["direction"]] * (st["rows"] + 1)
            assert not t.verify(" ".join(run + gold), st)
            # another route: a different first move, then the solver from there
            for m in NB.ORDER:
                if m == gold[0]:
                    continue
                snake = tuple(tuple(x) for x in st["snake"])
                apples = frozenset(tuple(a) for a in st["apples"])
                nxt = NB.step_snake(st["rows"], st["cols"], snake, st["direction"], apples, m)
                if nxt is None or not nxt[2]:
                    continue
                s2 = {"rows": st["rows"], "cols": st["cols"], "snake": [list(x) for x in nxt[0]],
                      "direction": nxt[1], "apples": [list(a) for a in sorted(nxt[2])]}
                rest = NB.solve_state(s2)
                if rest is None:
                    continue
                alt = " ".join([m] + rest)
                assert t.verify(alt, st) and alt != t.answer(inst)
                alts += 1
                break
    assert alts >= 80


def test_nibbles_tail_cell_is_deadly_and_growth():
    t = tasks.get("nibbles")
    # a 2x2 loop: moving the head onto the cell the tail is leaving is death (official rule)
    st = t.state_from_str("Grid: 3x3\nSnake: (0,1) (1,1) (1,0) (0,0)\nDirection: up\n"
                          "Apples: (2,2)\nGoal: Eat 1 apple")
    assert not t.verify("left", st)                           # (0,0) holds the tail
    assert t.verify("right down down", st)
    # growth: a 4-move loop is safe for a snake of length 3 (the cell 4 moves back is free
    # again) but deadly at length 4 (it is still the tail): each apple adds one cell
    one = t.state_from_str("Grid: 3x3\nSnake: (1,1) (1,0)\nDirection: right\n"
                           "Apples: (1,2)\nGoal: Eat 1 apple")
    assert t.verify("right up left down", one)
    two = t.state_from_str("Grid: 3x3\nSnake: (1,1) (1,0)\nDirection: right\n"
                           "Apples: (1,2) (0,2)\nGoal: Eat 2 apples")
    assert t.verify("right up left", two)
    assert not t.verify("right up left down", two)


def test_nibbles_official_record():
    init = "Grid: 6x6\nSnake: (1,4) (2,4)\nDirection: up\nApples: (2,2)\nGoal: Eat 1 apple"
    rec = _official("nibbles", init, "left left down")
    assert score("\\boxed{left left down}", rec)              # (1,3) (1,2) (2,2)
    assert score("\\boxed{up left left down down}", rec)
    assert not score("\\boxed{down}", rec)                    # reversal into the neck
    assert not score("\\boxed{left left}", rec)               # apple not reached
    assert not score("\\boxed{up up up}", rec)                # off the top of the grid
    st = tasks.get("nibbles").state_from_str(init)
    assert st == {"rows": 6, "cols": 6, "snake": [[1, 4], [2, 4]], "direction": "up",
                  "apples": [[2, 2]]}
    assert tasks.get("nibbles").state_to_str(st) == init


# ---- sliding puzzle ------------------------------------------------------------------------
def test_slidingpuzzle_levels_are_fixed_by_level_not_relabelled(insts):
    n_by = {1: 3, 2: 3, 3: 4, 4: 4, 5: 4}
    means = []
    for lv, group in insts("slidingpuzzle").items():
        lo, hi = SP.LEVELS[lv][1:]
        for inst in group:
            assert len(inst.state) == n_by[lv] == inst.meta["n"]
            assert lo <= inst.meta["optimal_moves"] == len(inst.solution) <= hi
        means.append(sum(i.meta["optimal_moves"] for i in group) / len(group))
    assert means == sorted(means)


def test_slidingpuzzle_solver_is_optimal_against_bfs(insts):
    from collections import deque
    for inst in insts("slidingpuzzle")[2][:4]:
        start = tuple(SP.flat(inst.state))
        goal = SP.puzzle(3).goal
        dist, q = {start: 0}, deque([start])
        while goal not in dist:
            b = q.popleft()
            z = b.index(0)
            for m, nz in SP.puzzle(3).neighbours(None, z):
                nb = list(b)
                nb[z], nb[nz] = nb[nz], 0
                nb = tuple(nb)
                if nb not in dist:
                    dist[nb] = dist[b] + 1
                    q.append(nb)
        assert dist[goal] == inst.meta["optimal_moves"]


def test_slidingpuzzle_convention_is_the_tile_direction():
    t = tasks.get("slidingpuzzle")
    # blank at (2,1); tile 8 is to its right and must slide LEFT (the blank moves right)
    st = [[1, 2, 3], [4, 5, 6], [7, 0, 8]]
    assert t.verify("left", st) and t.verify("l", st)
    assert not t.verify("right", st)          # blank-direction reading: 7 slides right instead
    # blank at (1,2); tile 6 must slide up from (2,2)
    st2 = [[1, 2, 3], [4, 5, 0], [7, 8, 6]]
    assert t.verify("up", st2) and not t.verify("down", st2)
    # N comes from the state: a 2x2 and a 5x5 board
    assert t.verify("left", [[1, 2], [0, 3]])
    five = [list(range(r * 5 + 1, r * 5 + 6)) for r in range(5)]
    five[4][4], five[4][3] = 24, 0
    assert t.verify("left", five) and t.solve(five) == ["left"]


def test_slidingpuzzle_corruptions_fail_and_detour_passes(insts):
    t = tasks.get("slidingpuzzle")
    for lv in LEVELS:
        for inst in insts("slidingpuzzle")[lv]:
            st, gold = inst.state, list(inst.solution)
            n = len(st)
            assert not t.verify(" ".join(gold[:-1]), st)     # optimal: a prefix is not solved
            assert not t.verify(" ".join(gold + gold[-1:]), st)   # the blank is at the corner:
            # repeating the last move asks for a tile from outside the board, or breaks the goal
            # an impossible move at the start: the blank on an edge has no tile on one side
            z = SP.flat(st).index(0)
            r, c = divmod(z, n)
            for m in SP.MOVES:
                dr, dc = SP.blank_delta(m)
                if not (0 <= r + dr < n and 0 <= c + dc < n):
                    assert not t.verify(" ".join([m] + gold), st)
                    break
            # detour: a legal move and its undo, then the optimal line (longer passes)
            m = next(m for m in SP.MOVES
                     if 0 <= r + SP.blank_delta(m)[0] < n and 0 <= c + SP.blank_delta(m)[1] < n)
            alt = " ".join([m, OPPOSITE[m]] + gold)
            assert t.verify(alt, st) and alt != t.answer(inst)


def test_slidingpuzzle_official_record_4x4():
    init = "[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 0, 15]]"
    rec = _official("slidingpuzzle", init, "left")
    assert score("\\boxed{left}", rec)
    assert not score("\\boxed{right}", rec)
    init2 = "[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 12], [13, 14, 11, 15]]"
    rec2 = _official("slidingpuzzle", init2, "up left")
    assert score("\\boxed{up left}", rec2)         # 11 slides up, then 15 slides left
    assert not score("\\boxed{down right}", rec2)  # the blank-direction reading fails
    assert tasks.get("slidingpuzzle").solve(tasks.get("slidingpuzzle").state_from_str(init2)) \
        == ["up", "left"]


# ---- skeletons -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_skeletons_are_capped_and_end_in_a_valid_answer(name, insts):
    t = tasks.get(name)
    kinds = set()
    for lv in (1, 3, 5):
        for inst in insts(name)[lv][:3]:
            steps = t.skeleton(inst.state)
            assert len(steps) <= 160
            assert steps[-1]["kind"] == "answer" and t.verify(steps[-1]["text"], inst.state)
            kinds |= {s["kind"] for s in steps}
    assert {"rule", "read", "step", "check", "answer"} <= kinds
    if name in ("sokoban", "maze", "slidingpuzzle"):
        assert "backtrack" in kinds          # real dead ends of the search appear
