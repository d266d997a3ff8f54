"""Puzzles group, grid puzzles: nonogram, hitori, tapa, aquarium, campsite, kakuro.

Beyond the generic battery (tests/test_tasks.py): more seeds, corruptions that are certainly
invalid (each says why), other valid answers that differ from the gold string, level knobs,
no duplicates, hand-built official records, and the official faults we avoid.
"""
import json
import random

import pytest

from tasks import get, score
from tasks.base import LEVELS

NAMES = ["nonogram", "hitori", "tapa", "aquarium", "campsite", "kakuro"]
# seeds 4.. (the generic battery already uses 0-3); fewer for the slower generators
MORE = {"nonogram": 20, "hitori": 16, "tapa": 8, "aquarium": 20, "campsite": 20, "kakuro": 6}

_CACHE = {}


def insts(name):
    if name not in _CACHE:
        t = get(name)
        _CACHE[name] = [t.generate(lv, s) for lv in LEVELS for s in range(4, 4 + MORE[name])]
    return _CACHE[name]


def rec(name, state, answer="", question="q"):
    t = get(name)
    return {"category": t.official, "initial_state": t.state_to_str(state) if not isinstance(state, str)
            else state, "question": question, "answer": answer}


@pytest.mark.parametrize("name", NAMES)
def test_gold_passes_on_more_seeds(name):
    t = get(name)
    for inst in insts(name):
        gold = t.answer(inst)
        assert t.verify(gold, inst.state), (name, inst.level, inst.seed)
        assert t.state_from_str(t.state_to_str(inst.state)) == inst.state
        # the reference solver agrees with the rules on its own output
        assert t.verify(t.format_answer(t.solve(inst.state)), inst.state)


@pytest.mark.parametrize("name", NAMES)
def test_no_duplicates_at_level_3(name):
    t = get(name)
    hashes = {t.canonical(t.generate(3, s).state) for s in range(30)}
    assert len(hashes) == 30


def test_level_knobs_grow():
    for name, key in (("nonogram", "size"), ("hitori", "size"), ("tapa", "size"),
                      ("aquarium", "size"), ("campsite", "size"), ("kakuro", "grid"),
                      ("campsite", "tents")):
        vals = [get(name).generate(lv, 0).meta[key] for lv in LEVELS]
        assert vals == sorted(vals) and len(set(vals)) == 5, (name, key, vals)
    # kakuro: the number of white cells to fill grows with the level too (average of 4)
    white = [sum(get("kakuro").generate(lv, s).meta["white_cells"] for s in range(4)) for lv in LEVELS]
    assert white == sorted(white), white
    assert [get("nonogram").generate(lv, 0).meta["size"] for lv in LEVELS] == [3, 4, 5, 6, 7]
    assert [get("hitori").generate(lv, 0).meta["size"] for lv in LEVELS] == [4, 5, 6, 7, 8]
    assert [get("tapa").generate(lv, 0).meta["size"] for lv in LEVELS] == [3, 4, 5, 6, 7]
    assert [get("aquarium").generate(lv, 0).meta["size"] for lv in LEVELS] == [4, 5, 6, 7, 8]
    # kakuro grid N = playable area; the board drawn/stored is (N+1)x(N+1) with the clue row/col
    for lv in LEVELS:
        inst = get("kakuro").generate(lv, 1)
        assert len(inst.state) == inst.meta["grid"] + 1 == lv + 3
        assert all(c["type"] == "black" for c in inst.state[0])
        assert all(row[0]["type"] == "black" for row in inst.state)


# ---- nonogram ----------------------------------------------------------------------------------

def test_nonogram_corruptions_fail():
    t = get("nonogram")
    for inst in insts("nonogram")[::3]:
        rows = t.answer(inst).split("\n")
        n = len(rows)
        r, c = inst.seed % n, (inst.seed * 7) % n
        # flipping one cell changes how many cells row r fills, so its clue total cannot match
        flipped = list(rows[r])
        flipped[c] = "." if flipped[c] == "X" else "X"
        bad = rows[:r] + ["".join(flipped)] + rows[r + 1:]
        assert not t.verify("\n".join(bad), inst.state)
        assert not t.verify("\n".join(rows[:-1]), inst.state)            # a row missing
        assert not t.verify("\n".join(x + "." for x in rows), inst.state)  # a column too many
        assert not t.verify("\n".join(rows).replace("X", "O"), inst.state)  # unknown symbol
        # accepted spellings: spaces between cells, a list of row strings
        assert t.verify("\n".join(" ".join(x) for x in rows), inst.state)
        assert t.verify(json.dumps(rows), inst.state)


def test_nonogram_other_solution_passes():
    """38% of the official nonograms have several solutions and the official scorer compares
    strings; ours checks the clues, so a different grid that fits them passes."""
    t = get("nonogram")
    found = 0
    for lv in LEVELS:
        for s in range(40):
            inst = t.generate(lv, s)
            if inst.meta["unique"]:
                continue
            sols = t._search(inst.state, limit=2).solutions
            assert len(sols) == 2
            n = len(inst.state[0])
            texts = ["\n".join("".join("X" if sol[r * n + c] else "." for c in range(n))
                               for r in range(n)) for sol in sols]
            gold = t.answer(inst)
            other = texts[0] if texts[0] != gold else texts[1]
            assert other != gold and t.verify(other, inst.state) and t.verify(gold, inst.state)
            found += 1
            break
    assert found >= 3   # puzzles with several solutions are really in the mix


def test_nonogram_official_record():
    # all six permutation matrices fit these clues; the record stores one of them
    state = "[[[1], [1], [1]], [[1], [1], [1]]]"
    r = rec("nonogram", state, "X..\n.X.\n..X")
    assert score("\\boxed{X..\n.X.\n..X}", r)
    assert score("\\boxed{.X.\nX..\n..X}", r)          # another solution: official would fail it
    assert not score("\\boxed{XX.\n...\n..X}", r)      # row 1 has a run of 2
    assert get("nonogram").state_from_str("[[[0], [2]], [[1], [1]]]") == [[[], [2]], [[1], [1]]]


# ---- hitori ------------------------------------------------------------------------------------

def test_hitori_corruptions_fail():
    t = get("hitori")
    for inst in insts("hitori")[::3]:
        shaded = [tuple(x) for x in inst.solution]
        n = len(inst.state)
        # the gold shading is minimal (every shaded cell clears a duplicate: the solver
        # enforces it), so unshading any one cell brings a duplicate back
        k = inst.seed % len(shaded)
        assert not t.verify(t.format_answer(shaded[:k] + shaded[k + 1:]), inst.state)
        # shading a neighbour of a shaded cell puts two shaded cells side by side
        r, c = shaded[0]
        nb = next((a, b) for a, b in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                  if 0 <= a < n and 0 <= b < n)
        assert not t.verify(t.format_answer(shaded + [nb]), inst.state)
        assert not t.verify(t.format_answer(shaded + [(n, 0)]), inst.state)   # off the grid
        assert not t.verify(t.format_answer(shaded).replace("{", "{(0 0), "), inst.state)
        # accepted spellings
        assert t.verify(str(sorted(shaded)), inst.state)
        assert t.verify(json.dumps([list(x) for x in reversed(shaded)]), inst.state)


def test_hitori_non_minimal_shading_passes():
    """The rules allow shading a cell that removes no duplicate, as long as no shaded cells
    touch and the rest stays connected: such an answer differs from the gold and passes."""
    t = get("hitori")
    from tasks.hitori import rule_ok
    found = 0
    for inst in insts("hitori"):
        shaded = {tuple(x) for x in inst.solution}
        n = len(inst.state)
        for cell in ((r, c) for r in range(n) for c in range(n)):
            if cell not in shaded and rule_ok(inst.state, shaded | {cell}):
                alt = t.format_answer(sorted(shaded | {cell}))
                assert alt != t.answer(inst) and t.verify(alt, inst.state)
                found += 1
                break
    assert found >= 5


def test_hitori_official_record():
    state = "[[1, 1, 2], [2, 3, 1], [3, 2, 3]]"
    r = rec("hitori", state, "{(0, 0), (2, 2)}")
    assert score("\\boxed{{(0, 0), (2, 2)}}", r)
    assert score("\\boxed{{(0, 1), (2, 0)}}", r)        # another valid shading
    assert not score("\\boxed{{(0, 0)}}", r)            # the two 3s of row 2 remain
    assert not score("\\boxed{{(0, 0), (1, 0)}}", r)    # shaded cells touch
    assert not score("\\boxed{{(1, 1), (1, 2)}}", r)    # touching, duplicates remain


# ---- tapa --------------------------------------------------------------------------------------

def test_tapa_corruptions_fail():
    t = get("tapa")
    for inst in insts("tapa")[::2]:
        shaded = [tuple(x) for x in inst.solution]
        state = inst.state
        n = len(state)
        clue_cells = [(r, c) for r in range(n) for c in range(n) if state[r][c] is not None]
        # a shaded cell next to a non-zero clue: removing it lowers that clue's neighbour
        # count (the sum of its numbers), so that clue fails
        near = next(x for x in shaded if any(
            max(abs(x[0] - a), abs(x[1] - b)) == 1 and state[a][b] not in (None, [0])
            for a, b in clue_cells))
        assert not t.verify(t.format_answer([x for x in shaded if x != near]), state)
        # shading a clue cell is never allowed
        assert not t.verify(t.format_answer(shaded + [clue_cells[0]]), state)
        # the solution is unique (proved at generation), so any other set fails; and a
        # reordering of the gold passes
        assert t.verify(", ".join(f"({r},{c})" for r, c in reversed(shaded)), state)
        assert t.verify(str([list(x) for x in shaded]), state)


def test_tapa_state_spellings():
    t = get("tapa")
    s = t.state_from_str(".11\n...\n2..")
    assert s == [[None, [1], [1]], [None, None, None], [[2], None, None]]
    assert t.state_to_str(s) == ".11\n...\n2.."
    multi = t.state_from_str(". 1/3 .\n. . .\n2 . 13")
    assert multi[0][1] == [1, 3] and multi[2][2] == [1, 3] and multi[2][0] == [2]
    assert t.state_to_str(multi) == ". 1/3 .\n. . .\n2 . 1/3"
    assert t.state_from_str(json.dumps([".11", "...", "2.."])) == s
    # our multi-number instances use the spaced spelling and read back
    inst = next(i for i in insts("tapa") if i.meta["multi_clues"])
    txt = t.state_to_str(inst.state)
    assert "/" in txt and t.state_from_str(txt) == inst.state
    # levels 1-2 are official style: single numbers only, one character per cell
    for lv in (1, 2):
        txt = t.state_to_str(t.generate(lv, 5).state)
        assert all(len(line) == len(txt.split("\n")) for line in txt.split("\n"))


def test_tapa_official_record():
    state = "2..\n...\n..2"
    r = rec("tapa", state, "(0,1), (1,1), (1,2)")
    assert score("\\boxed{(0,1), (1,1), (1,2)}", r)
    assert not score("\\boxed{(0,1), (1,1)}", r)          # clue at (2,2) sees one shaded cell
    assert not score("\\boxed{(0,0), (0,1), (1,1), (1,2)}", r)   # a clue cell shaded
    # clue groups: neighbours touching at a corner are one group (the official grouping),
    # so N and W of a clue (with NW unshaded) read "2", not "1 1"; N and S read "1 1"
    from tasks.tapa import groups_of
    assert groups_of([(-1, 0), (0, -1)]) == [2]
    assert groups_of([(-1, 0), (1, 0)]) == [1, 1]
    assert groups_of([]) == [0]


# ---- aquarium ----------------------------------------------------------------------------------

def test_aquarium_corruptions_fail():
    t = get("aquarium")
    for inst in insts("aquarium")[::3]:
        cells = [tuple(x) for x in inst.solution]
        n = len(inst.state["regions"])
        # one filled cell fewer (or more) changes its row's count, which must match exactly
        assert not t.verify(t.format_answer(cells[1:]), inst.state)
        extra = next((x, y) for y in range(n) for x in range(n) if (x, y) not in set(cells))
        assert not t.verify(t.format_answer(cells + [extra]), inst.state)
        # (row, col) instead of (x=col, y=row): the transposed set fails unless it is the
        # same set, which we skip
        swapped = [(y, x) for x, y in cells]
        if set(swapped) != set(cells):
            assert not t.verify(t.format_answer(swapped), inst.state)
        assert not t.verify(t.format_answer(cells + cells[:1]), inst.state)   # a cell twice
        # reordered and list-of-lists spellings pass
        shuffled = list(cells)
        random.Random(inst.seed).shuffle(shuffled)
        alt = str(shuffled)
        assert t.verify(alt, inst.state)
        assert t.verify(json.dumps([list(x) for x in cells]), inst.state)


def test_aquarium_level_rule():
    t = get("aquarium")
    # two regions: the left column (0) and the right column (1); 2 rows
    st = {"regions": [[0, 1], [0, 1]], "row_clues": [1, 1], "col_clues": [2, 0], "grid_size": [2, 2]}
    r = rec("aquarium", json.dumps(st), "[(0, 0), (0, 1)]")
    assert score("\\boxed{[(0, 0), (0, 1)]}", r)
    assert not score("\\boxed{[(0, 0), (1, 0)]}", r)     # (row, col) order: wrong cells
    # floating water: counts hold, but region 0 (column 0) is wet on top and dry below
    st2 = {"regions": [[0, 1], [0, 1]], "row_clues": [1, 1], "col_clues": [1, 1], "grid_size": [2, 2]}
    assert not t.check("[(0, 0), (1, 1)]", st2)
    # the level is per region: the top-row region full, the bottom-row region empty is fine
    st3 = {"regions": [[0, 0], [1, 1]], "row_clues": [2, 0], "col_clues": [1, 1], "grid_size": [2, 2]}
    assert t.check("[(0, 0), (1, 0)]", st3)
    # a region must be filled level: half of a row inside one region is not
    st4 = {"regions": [[0, 0], [0, 0]], "row_clues": [0, 1], "col_clues": [1, 0], "grid_size": [2, 2]}
    assert not t.check("[(0, 1)]", st4)


def test_aquarium_official_record():
    regions = [[0, 0, 1], [2, 0, 1], [2, 2, 1]]
    st = {"regions": regions, "row_clues": [0, 2, 3], "col_clues": [2, 2, 1], "grid_size": [3, 3]}
    # region 0 filled from row 1, region 2 full, region 1 filled in row 2 only
    gold = "[(0, 1), (1, 1), (0, 2), (1, 2), (2, 2)]"
    r = rec("aquarium", json.dumps(st), gold)
    assert get("aquarium").check(gold, st)
    assert score(f"\\boxed{{{gold}}}", r)
    assert not score("\\boxed{[(0, 1), (1, 1), (0, 2), (1, 2)]}", r)


# ---- campsite ----------------------------------------------------------------------------------

def test_campsite_corruptions_fail():
    t = get("campsite")
    for inst in insts("campsite")[::3]:
        tents = [tuple(x) for x in inst.solution]
        n = len(inst.state["input_grid"])
        # one tent fewer: its row count is off by one
        assert not t.verify(t.format_answer(tents[1:]), inst.state)
        # 0-based instead of 1-based: shifts every tent; a tent at row 1 or column 1 falls
        # off the grid, otherwise the unique solution is not this other set
        zero = [(r - 1, c - 1) for r, c in tents]
        assert not t.verify(t.format_answer(zero), inst.state)
        assert not t.verify(t.format_answer(tents + [tents[0]]), inst.state)    # a tent twice
        # a tent on a tree
        tree = next((r + 1, c + 1) for r in range(n) for c in range(n)
                    if inst.state["input_grid"][r][c] == "T")
        assert not t.verify(t.format_answer(tents[1:] + [tree]), inst.state)
        # other spellings pass
        assert t.verify(", ".join(f"({r}, {c})" for r, c in reversed(tents)), inst.state)


def test_campsite_no_pairing_and_touching():
    t = get("campsite")
    # one tree with two tents beside it (no one-to-one pairing needed)
    st = {"input_grid": [["X", "X", "X"], ["X", "T", "X"], ["X", "X", "X"]],
          "row_constraints": [1, 0, 1], "col_constraints": [0, 2, 0]}
    assert t.check("[[1, 2], [3, 2]]", st)
    # diagonal touch is forbidden
    st2 = {"input_grid": [["T", "X", "X"], ["X", "X", "X"], ["X", "X", "T"]],
           "row_constraints": [1, 1, 0], "col_constraints": [0, 1, 1]}
    assert not t.check("[[1, 2], [2, 3]]", st2) and not t.check("[[1, 2], [2, 2]]", st2)


def test_campsite_does_not_leak_and_reads_official():
    t = get("campsite")
    for inst in insts("campsite")[:10]:
        txt = t.state_to_str(inst.state)
        d = json.loads(txt)
        assert set(d) == {"input_grid", "row_constraints", "col_constraints"}
        assert "C" not in txt and "reference_solution" not in txt
        assert all(x in ("X", "T") for row in d["input_grid"] for x in row)
    official = {"input_grid": [["X", "T", "X"], ["X", "X", "X"], ["T", "X", "X"]],
                "row_constraints": [1, 0, 1], "col_constraints": [0, 1, 1],
                "reference_solution": [["X", "T", "C"], ["X", "X", "X"], ["T", "C", "X"]]}
    r = {"category": "campsite", "initial_state": json.dumps(official), "question": "q",
         "answer": "[[1, 3], [3, 2]]"}
    assert score("\\boxed{[[1, 3], [3, 2]]}", r)
    assert not score("\\boxed{[[0, 2], [2, 1]]}", r)     # 0-based: wrong cells
    assert t.state_from_record(r) == {k: v for k, v in official.items() if k != "reference_solution"}
    assert t.state_from_str(str({"input_grid": ["X.T", "...", "T.."],
                                 "row_constraints": [0, 0, 0], "col_constraints": [0, 0, 0]}))


# ---- kakuro ------------------------------------------------------------------------------------

def test_kakuro_corruptions_fail():
    t = get("kakuro")
    for inst in insts("kakuro")[::2]:
        sol = [tuple(x) for x in inst.solution]
        k = inst.seed % len(sol)
        r, c, v = sol[k]
        # one digit +-1: its across run's sum changes by one, so that clue fails
        w = v + 1 if v < 9 else v - 1
        bad = sol[:k] + [(r, c, w)] + sol[k + 1:]
        assert not t.verify(t.format_answer(bad), inst.state)
        assert not t.verify(t.format_answer(sol[:-1]), inst.state)          # a cell missing
        assert not t.verify(t.format_answer(sol) + f" ({r},{c}):{v}", inst.state)  # twice
        # 1-based coordinates: the bottom-right white cell moves off the board's whites
        assert not t.verify(t.format_answer([(a + 1, b + 1, x) for a, b, x in sol]), inst.state)
        assert not t.verify(t.format_answer(sol).replace(":", "=", 1) + " junk", inst.state)
        # other spellings pass: commas, newlines, any order, '='
        shuffled = list(sol)
        random.Random(1).shuffle(shuffled)
        assert t.verify(", ".join(f"({a}, {b}): {x}" for a, b, x in shuffled), inst.state)
        assert t.verify("\n".join(f"({a},{b})={x}" for a, b, x in sol), inst.state)


def test_kakuro_unique_and_official_record():
    t = get("kakuro")
    for inst in insts("kakuro")[:10]:
        assert len(t._search(inst.state, limit=2).solutions) == 1
    board = [[{"type": "black"}, {"type": "black", "down": 4}, {"type": "black", "down": 6}],
             [{"type": "black", "right": 3}, {"type": "white"}, {"type": "white"}],
             [{"type": "black", "right": 7}, {"type": "white"}, {"type": "white"}]]
    r = {"category": "kakuro", "initial_state": str(board), "question": "q",
         "answer": "(1,1):1 (1,2):2 (2,1):3 (2,2):4"}
    assert score("\\boxed{(1,1):1 (1,2):2 (2,1):3 (2,2):4}", r)
    assert not score("\\boxed{(1,1):2 (1,2):1 (2,1):3 (2,2):4}", r)
    assert not score("\\boxed{(0,0):1 (0,1):2 (1,0):3 (1,1):4}", r)
    # the generator's internal (sum, length) pairs are read too
    internal = [[{"type": "black"}, {"type": "black", "down": [4, 2]}, {"type": "black", "down": [6, 2]}],
                [{"type": "black", "right": [3, 2]}, {"type": "white"}, {"type": "white"}],
                [{"type": "black", "right": [7, 2]}, {"type": "white"}, {"type": "white"}]]
    assert t.state_from_str(json.dumps(internal)) == board
    # an official edge run with no clue cell before it carries no sum constraint
    edge = [[{"type": "black", "right": 3}, {"type": "white"}, {"type": "white"}],
            [{"type": "black"}, {"type": "black"}, {"type": "black"}]]
    assert t.check("(0,1):1 (0,2):2", edge)
    assert not t.check("(0,1):1 (0,2):3", edge)


# ---- skeletons ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_skeleton_is_the_solvers_reasoning(name):
    t = get(name)
    for inst in insts(name)[::7]:
        steps = t.skeleton(inst.state)
        assert steps[0]["kind"] == "rule" and steps[1]["kind"] == "read"
        assert steps[-2]["kind"] == "check" and steps[-1]["kind"] == "answer"
        assert t.verify(steps[-1]["text"], inst.state)
        assert len(steps) <= 160
        assert sum(s["kind"] == "step" for s in steps) >= 1


def test_skeletons_show_real_dead_ends():
    """Where the solver had to guess and a guess failed, the skeleton says so, and then goes
    on with the other option."""
    t = get("tapa")
    for s in range(12):
        steps = t.skeleton(t.generate(5, s).state)
        kinds = [x["kind"] for x in steps]
        if "backtrack" in kinds:
            break
    else:
        raise AssertionError("no tapa instance needed a retracted guess")
    i = kinds.index("backtrack")
    assert "Guess" in " ".join(x["text"] for x in steps[:i])
    assert "Try the other option" in " ".join(x["text"] for x in steps[i:])
    assert t.verify(steps[-1]["text"], t.generate(5, s).state)


# ---- shared helpers (tasks/_shade.py) ------------------------------------------------------------

def test_cut_cells_matches_brute_force():
    from tasks._shade import components, cut_cells
    rng = random.Random(0)
    for _ in range(400):
        n = rng.randint(2, 5)
        adj = [[(r + dr) * n + c + dc for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < n and 0 <= c + dc < n] for r in range(n) for c in range(n)]
        nodes = [i for i in range(n * n) if rng.random() < 0.7]
        if not nodes:
            continue
        big = max(components(nodes, adj), key=len)
        keys = {i for i in big if rng.random() < 0.5}
        brute = set()
        for u in big:
            parts = [p for p in components(set(big) - {u}, adj) if set(p) & (keys - {u})]
            if len(parts) > 1:
                brute.add(u)
        assert cut_cells(big, adj, keys) == brute


def test_parse_pairs_is_strict_and_lenient_where_it_should_be():
    from tasks._shade import parse_pairs
    assert parse_pairs("{(0, 1), (2, 3)}") == [(0, 1), (2, 3)]
    assert parse_pairs("[[1, 3], [3, 1]]") == [(1, 3), (3, 1)]
    assert parse_pairs("(0,1), (2,3)") == [(0, 1), (2, 3)]
    assert parse_pairs("set()") == [] and parse_pairs("[]") == []
    for bad in ("(0,1) and (2,3)", "(0,1), 5", "(0;1)", "(0,1,2)", "{(0, 1), (2, 3)} cells",
                "1, 2", "((((", "(1,2)" * 5000):
        assert parse_pairs(bad) is None, bad
