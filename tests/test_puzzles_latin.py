"""Puzzles group, Latin-square family: calcudoku, kukurasu, skyscrapers, eulero, futoshiki,
sudoku, binairo (and their shared solver, tasks/_latin.py).

Beyond the generic battery (tests/test_tasks.py): gold answers over more seeds, corruptions
that are certainly invalid (the reason is next to each one), other valid answers that pass,
level knobs, no duplicates, official-format records scored by hand, and the official faults
these tasks avoid (kukurasu's leaked solution, calcudoku's floored division, eulero's
impossible 6x6, puzzles with several solutions where the task promises one).
"""
import json
import random

import pytest

import tasks
from tasks import TASKS, score
from tasks._latin import count_solutions, is_latin, parse_int_grid, random_latin
from tasks.base import LEVELS

NAMES = ["calcudoku", "kukurasu", "skyscrapers", "eulero", "futoshiki", "sudoku", "binairo"]
UNIQUE = {"calcudoku", "kukurasu", "eulero", "futoshiki", "sudoku", "binairo"}  # skyscrapers: not promised
LATIN = ["calcudoku", "skyscrapers", "futoshiki", "sudoku"]
N_SEEDS = {"sudoku": 10, "calcudoku": 10, "eulero": 10}     # the slower generators; 20 for the rest


@pytest.fixture(scope="module")
def insts():
    cache = {}

    def get(name):
        if name not in cache:
            t = TASKS[name]
            cache[name] = [t.generate(lv, s) for lv in LEVELS for s in range(N_SEEDS.get(name, 20))]
        return cache[name]
    return get


def _official(task, state_str, answer="", question="(question)"):
    """A record as the official release spells it: the official category and state string."""
    return {"id": "x", "category": task.official, "initial_state": state_str, "question": question,
            "answer": answer}


def _rejects(t, inst, answer):
    return not t.verify(answer, inst.state)


# ---- gold answers and the solver ------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_gold_passes_and_solver_agrees(name, insts):
    t = TASKS[name]
    for inst in insts(name):
        gold = t.answer(inst)
        assert t.verify(gold, inst.state), (name, inst.level, inst.seed)
        if name == "skyscrapers" and inst.level == 5 and inst.seed % 4:
            continue   # the 7x7 search takes ~0.1 s; a quarter of them is enough here
        solved = t.solve(inst.state)
        assert t.verify(t.format_answer(solved), inst.state)
        if name in UNIQUE:   # one solution: the solver must find exactly the generator's
            assert solved == inst.solution, (name, inst.level, inst.seed)
        assert t.state_from_str(t.state_to_str(inst.state)) == inst.state


@pytest.mark.parametrize("name", ["calcudoku", "futoshiki", "kukurasu", "binairo"])
def test_uniqueness_is_proven(name, insts):
    mod = __import__(f"tasks.{name}", fromlist=["build_csp"])
    for inst in insts(name)[::4]:
        csp = mod.build_csp(inst.state) if name != "binairo" else mod.build_csp(mod._givens(inst.state))
        assert count_solutions(csp, 2) == 1, (name, inst.level, inst.seed)


def test_uniqueness_is_proven_sudoku_eulero(insts):
    from tasks import eulero, sudoku
    for inst in insts("sudoku")[::6]:
        assert count_solutions(sudoku._csp(sudoku._givens(inst.state)), 2) == 1
    for inst in insts("eulero")[::6]:
        assert count_solutions(eulero.build_csp(inst.state), 2) == 1


# ---- corruptions that are certainly invalid -------------------------------------------------
@pytest.mark.parametrize("name", LATIN)
def test_latin_corruptions_fail(name, insts):
    t = TASKS[name]
    for inst in insts(name)[::3]:
        g = [list(r) for r in inst.solution]
        n = len(g)
        # one cell changed to another value of 1..n: that value is already elsewhere in the row
        bad = [r[:] for r in g]
        bad[1][2] = bad[1][2] % n + 1
        assert _rejects(t, inst, t.format_answer(bad))
        # two cells of a row swapped: column c1 now has g[r][c2], which column c1 already holds
        # in another row (a Latin column holds every value, and (r, c1) held a different one)
        bad = [r[:] for r in g]
        bad[0][0], bad[0][1] = bad[0][1], bad[0][0]
        assert _rejects(t, inst, t.format_answer(bad))
        # a value outside 1..n
        bad = [r[:] for r in g]
        bad[n - 1][n - 1] = n + 1
        assert _rejects(t, inst, t.format_answer(bad))
        # truncated: a row missing; or an extra row
        assert _rejects(t, inst, t.format_answer(g[:-1]))
        assert _rejects(t, inst, t.format_answer(g + [g[0]]))
        if name in UNIQUE:
            # values 1 and 2 swapped everywhere: still a Latin square but a different one, and
            # the solution is unique (proven at generation), so a clue or given must fail
            swap = [[{1: 2, 2: 1}.get(v, v) for v in r] for r in g]
            assert is_latin(swap, n) and swap != g
            assert _rejects(t, inst, t.format_answer(swap))


def test_skyscrapers_transposed_grid_fails(insts):
    t = TASKS["skyscrapers"]
    seen = 0
    for inst in insts("skyscrapers"):
        s = inst.state
        if s["top"] == s["left"]:
            continue
        # the transpose is Latin, but its left clues are the original top clues, which differ
        tr = [list(r) for r in zip(*inst.solution)]
        assert _rejects(t, inst, t.format_answer(tr))
        seen += 1
    assert seen > 50


def test_eulero_corruptions_fail(insts):
    t = TASKS["eulero"]
    for inst in insts("eulero")[::2]:
        g = [r[:] for r in inst.solution]
        n = len(g)
        # one cell's letter changed: the new letter is already elsewhere in that row
        bad = [r[:] for r in g]
        p = bad[0][0]
        bad[0][0] = chr((ord(p[0]) - 65 + 1) % n + 65) + p[1:]
        assert _rejects(t, inst, t.format_answer(bad))
        # one cell's digit changed: the new digit is already elsewhere in that row
        bad = [r[:] for r in g]
        p = bad[1][0]
        bad[1][0] = p[0] + str(int(p[1:]) % n + 1)
        assert _rejects(t, inst, t.format_answer(bad))
        # two cells of a row swapped: each column now repeats a letter (see the Latin case)
        bad = [r[:] for r in g]
        bad[0][0], bad[0][1] = bad[0][1], bad[0][0]
        assert _rejects(t, inst, t.format_answer(bad))
        # letters A and B exchanged everywhere: still a Graeco-Latin square, a different one,
        # so (unique solution) a given must be broken
        ab = [[{"A": "B", "B": "A"}.get(x[0], x[0]) + x[1:] for x in r] for r in g]
        assert _rejects(t, inst, t.format_answer(ab))
        # a letter outside A..(n-th letter); a truncated grid; a row lost
        bad = [r[:] for r in g]
        bad[0][0] = "Z" + bad[0][0][1:]
        assert _rejects(t, inst, t.format_answer(bad))
        assert _rejects(t, inst, t.format_answer(g)[:-3])
        assert _rejects(t, inst, t.format_answer(g[:-1]))


def test_binairo_corruptions_fail(insts):
    t = TASKS["binairo"]
    for inst in insts("binairo")[::3]:
        g = inst.solution
        # one cell flipped: its row now has four of one digit and two of the other
        bad = [r[:] for r in g]
        bad[2][3] ^= 1
        assert _rejects(t, inst, t.format_answer(bad))
        # every cell flipped: still a valid Binairo grid but a different one; the solution is
        # unique and there are givens, so a given is broken
        comp = [[1 - v for v in r] for r in g]
        assert _rejects(t, inst, t.format_answer(comp))
        # a 2 in the grid; a row missing
        bad = [r[:] for r in g]
        bad[0][0] = 2
        assert _rejects(t, inst, t.format_answer(bad))
        assert _rejects(t, inst, t.format_answer(g[:-1]))


def test_kukurasu_corruptions_fail(insts):
    t = TASKS["kukurasu"]
    for inst in insts("kukurasu")[::3]:
        g = inst.solution
        n = len(g)
        # one cell flipped: its row's sum changes by its column number (>= 1)
        for r, c in ((0, 0), (n - 1, n - 1), (n // 2, 1)):
            bad = [row[:] for row in g]
            bad[r][c] ^= 1
            assert _rejects(t, inst, t.format_answer(bad))
        # the transpose has the column clues as row sums; wrong whenever they differ
        if inst.state["row_sums"] != inst.state["col_sums"]:
            assert _rejects(t, inst, t.format_answer([list(x) for x in zip(*g)]))
        # a 2 instead of a 1; a row missing
        bad = [row[:] for row in g]
        bad[0] = [2 if v else 0 for v in bad[0]]
        assert _rejects(t, inst, t.format_answer(bad))
        assert _rejects(t, inst, t.format_answer(g[:-1]))


def test_sudoku_given_changed_fails(insts):
    t = TASKS["sudoku"]
    for inst in insts("sudoku")[::4]:
        # a different valid Sudoku grid (digits 1 and 2 swapped): rows, columns and boxes still
        # hold 1-9, but every given 1 or 2 is now wrong (and a 24+ clue puzzle has some)
        g = [[{1: 2, 2: 1}.get(v, v) for v in r] for r in inst.solution]
        assert any(v in (1, 2) for r in inst.state for v in r)
        assert _rejects(t, inst, t.format_answer(g))


# ---- other valid answers pass (rules, not string equality) -----------------------------------
def test_skyscrapers_accepts_any_solution(insts):
    from tasks.skyscrapers import build_csp
    t = TASKS["skyscrapers"]
    found = 0
    for inst in insts("skyscrapers"):
        if inst.level < 3:
            continue
        sols = build_csp(inst.state).solve(2)
        if len(sols) == 2:
            n = inst.state["n"]
            answers = [t.format_answer([s[r * n:(r + 1) * n] for r in range(n)]) for s in sols]
            assert answers[0] != answers[1]
            assert all(t.verify(a, inst.state) for a in answers)
            found += 1
    assert found >= 5   # full clue sets are often ambiguous at n >= 5


def test_rule_checks_accept_other_solutions():
    rng = random.Random(3)
    # Futoshiki with nothing given: any Latin square of the size passes
    t = TASKS["futoshiki"]
    st = {"grid": [[0] * 5 for _ in range(5)], "inequalities": [], "size": 5}
    a, b = random_latin(5, rng), random_latin(5, rng)
    assert a != b and t.verify(t.format_answer(a), st) and t.verify(t.format_answer(b), st)
    # Calcudoku whose cages are whole rows summing to 1+..+n: any Latin square passes
    t = TASKS["calcudoku"]
    st = {"size": 4, "regions": [{"cells": [[r, c] for c in range(1, 5)], "operator": "+", "target": 10}
                                 for r in range(1, 5)]}
    a, b = random_latin(4, rng), random_latin(4, rng)
    while b == a:
        b = random_latin(4, rng)
    assert t.verify(t.format_answer(a), st) and t.verify(t.format_answer(b), st)
    # Binairo with nothing given: a grid and its complement are both valid
    t = TASKS["binairo"]
    g = TASKS["binairo"].generate(1, 0).solution
    empty = [[None] * 6 for _ in range(6)]
    assert t.verify(t.format_answer(g), empty) and t.verify(t.format_answer([[1 - v for v in r] for r in g]), empty)
    # Eulero with nothing given: two different Graeco-Latin squares both pass
    from tasks.eulero import graeco_latin, letter
    t = TASKS["eulero"]
    sq = [graeco_latin(4, rng) for _ in range(2)]
    txt = ["\n".join("|".join(f"{letter(L)}{d + 1}" for L, d in row) for row in s) for s in sq]
    assert txt[0] != txt[1] and all(t.verify(x, [[""] * 4 for _ in range(4)]) for x in txt)


def test_kukurasu_and_sudoku_accept_a_second_solution():
    from tasks import kukurasu, sudoku
    rng = random.Random(0)
    t = TASKS["kukurasu"]
    while True:   # a clue set with two solutions: both grids pass
        g = [[rng.randint(0, 1) for _ in range(4)] for _ in range(4)]
        rs, cs = kukurasu.sums(g)
        st = {"row_sums": rs, "col_sums": cs, "size": 4}
        sols = kukurasu.build_csp(st).solve(2)
        if len(sols) == 2:
            break
    ans = [t.format_answer([[1 if s[r * 4 + c] == 2 else 0 for c in range(4)] for r in range(4)]) for s in sols]
    assert ans[0] != ans[1] and all(t.verify(a, st) for a in ans)
    # a Sudoku with givens removed until it has two solutions: both pass
    t = TASKS["sudoku"]
    inst = t.generate(5, 0)
    st = [r[:] for r in inst.state]
    cells = [(r, c) for r in range(9) for c in range(9) if st[r][c]]
    rng.shuffle(cells)
    for r, c in cells:
        st[r][c] = 0
        sols = sudoku._csp(sudoku._givens(st)).solve(2)
        if len(sols) == 2:
            break
    ans = [" ".join(map(str, s)) for s in sols]
    assert ans[0] != ans[1] and all(t.verify(a, st) for a in ans)


@pytest.mark.parametrize("name", LATIN + ["kukurasu", "binairo"])
def test_answer_spellings(name, insts):
    t = TASKS[name]
    inst = insts(name)[-1]
    g = inst.solution
    spellings = [
        json.dumps(g),                                                   # JSON 2D list
        "\n".join(" ".join(map(str, r)) for r in g),                     # rows on lines
        "[[" + ", ".join(" ".join(map(str, r)) for r in g) + "]]",       # official skyscrapers style
        " ".join(str(v) for r in g for v in r),                          # row-major, spaces
        "  " + str([tuple(r) for r in g]) + "\n",                        # tuples, whitespace
    ]
    for s in spellings:
        assert t.verify(s, inst.state), (name, s)
    # a nested list of the wrong shape is not flattened into a pass
    flat = [v for r in g for v in r]
    odd = [flat[:len(flat) - 1], flat[-1:]]
    assert not t.verify(json.dumps(odd), inst.state)
    # stray text or a dangling number fails
    assert not t.verify("Answer " + json.dumps(g), inst.state)
    assert not t.verify(json.dumps(g) + " 1", inst.state)
    assert parse_int_grid("[[1, 2], [2, 1.5]]", 2) is None


def test_eulero_and_sudoku_spellings(insts):
    t = TASKS["eulero"]
    inst = insts("eulero")[-1]
    g = inst.solution
    for s in ("\n".join("|" + "|".join(r) + "|" for r in g),             # outer bars
              "\n".join(" | ".join(r) for r in g),                       # spaced bars
              json.dumps(g),                                             # a 2D list of strings
              "\n".join("|".join(x.lower() for x in r) for r in g)):     # lower-case letters
        assert t.verify(s, inst.state), s
    assert not t.verify("\n".join("|".join(r) for r in g) + "|A1", inst.state)
    t = TASKS["sudoku"]
    inst = insts("sudoku")[-1]
    rows = ["".join(map(str, r)) for r in inst.solution]
    for s in ("\n".join(rows), "".join(rows), "\n".join(" ".join(r) for r in rows)):
        assert t.verify(s, inst.state)


# ---- levels, duplicates ------------------------------------------------------------------
def test_level_knobs_grow(insts):
    def by_level(name, key):
        return [insts(name)[(lv - 1) * N_SEEDS.get(name, 20)].meta[key] for lv in LEVELS]
    assert by_level("calcudoku", "size") == [3, 4, 5, 6, 8]
    assert by_level("kukurasu", "size") == [3, 4, 5, 6, 7]
    assert by_level("skyscrapers", "n") == [3, 4, 5, 6, 7]
    assert by_level("futoshiki", "size") == [3, 4, 5, 6, 7]
    assert by_level("sudoku", "givens") == [40, 36, 32, 28, 24]
    assert by_level("binairo", "givens") == [29, 23, 20, 16, 13]
    ns, blanks = by_level("eulero", "n"), by_level("eulero", "blanks")
    assert ns == [3, 4, 5, 7, 7] and 6 not in ns                         # no 6x6 Graeco-Latin square
    assert blanks == sorted(blanks) and blanks[4] > blanks[3]
    for name in NAMES:   # the knobs are what the state really holds
        for inst in insts(name):
            s = inst.state
            if name == "sudoku":
                assert sum(1 for r in s for v in r if v) == inst.meta["givens"]
            elif name == "binairo":
                assert sum(1 for r in s for v in r if v is not None) == inst.meta["givens"]
            elif name == "eulero":
                assert len(s) == inst.meta["n"] and sum(1 for r in s for v in r if not v) == inst.meta["blanks"]
            elif name == "calcudoku":
                cells = sorted(tuple(c) for g in s["regions"] for c in g["cells"])
                n = s["size"]
                assert cells == [(r, c) for r in range(1, n + 1) for c in range(1, n + 1)]   # a partition
                assert all(len(g["cells"]) <= 4 for g in s["regions"])


@pytest.mark.parametrize("name", NAMES)
def test_no_duplicates_at_level_3(name):
    t = TASKS[name]
    keys = {t.canonical(t.generate(3, s).state) for s in range(30)}
    assert len(keys) == 30


# ---- official records, scored by hand -----------------------------------------------------
# (category, official initial_state, a right answer, a wrong answer and why it is wrong)
OFFICIAL = [
    # Python dict literal, 1-based tuple cells, '÷' and '*' as the official generator writes them.
    # Right: [[1,3,2],[2,1,3],[3,2,1]]: 2÷1=2, 3-2=1, 1*3*1=3, 3+2=5.
    # Wrong: a Latin square with r1c2, r1c3 = 3, 1: their difference is 2, not 1.
    ("Calcudoku",
     "{'size': 3, 'regions': [{'cells': [(1, 1), (2, 1)], 'operator': '÷', 'target': 2}, "
     "{'cells': [(1, 2), (1, 3)], 'operator': '-', 'target': 1}, "
     "{'cells': [(2, 2), (2, 3), (3, 3)], 'operator': '*', 'target': 3}, "
     "{'cells': [(3, 1), (3, 2)], 'operator': '+', 'target': 5}]}",
     "[[1, 3, 2], [2, 1, 3], [3, 2, 1]]", "[[2, 3, 1], [1, 2, 3], [3, 1, 2]]"),
    # with the leaked 'solution' key. Row sums 1, 2+3, 3; column sums 1, 2, 2+3.
    # Wrong: row 3 = cols 1+2 (sum 3 still) but column 1 then sums to 1+3 = 4, not 1.
    ("Kukurasu",
     "{'row_sums': [1, 5, 3], 'col_sums': [1, 2, 5], 'size': 3, "
     "'solution': [[1, 0, 0], [0, 1, 1], [0, 0, 1]]}",
     "[[1, 0, 0], [0, 1, 1], [0, 0, 1]]", "[[1, 0, 0], [0, 1, 1], [1, 1, 0]]"),
    # right answer in the official '[[2 1 3, ...]]' spelling; wrong: row 1 = 1 2 3 sees 3, not 2
    ("Skyscrapers",
     '{"n": 3, "top": [2, 2, 1], "bottom": [1, 2, 3], "left": [2, 2, 1], "right": [1, 2, 3]}',
     "[[2 1 3, 1 3 2, 3 2 1]]", "[[1, 2, 3], [2, 3, 1], [3, 1, 2]]"),
    # 0-based cells (two solutions: [[1,3,2],[3,2,1],[2,1,3]] and [[2,3,1],[1,2,3],[3,1,2]]);
    # wrong: Latin, centre 2 kept, but r1c1 = 2 is not < r1c2 = 1
    ("futoshiki",
     "{'grid': [[0, 0, 0], [0, 2, 0], [0, 0, 0]], 'inequalities': "
     "[{'cell1': [0, 0], 'cell2': [0, 1], 'symbol': '<'}, "
     "{'cell1': [2, 1], 'cell2': [2, 2], 'symbol': '<'}], 'size': 3}",
     "[[2, 3, 1], [1, 2, 3], [3, 1, 2]]", "[[2, 1, 3], [3, 2, 1], [1, 3, 2]]"),
    # blanks written ' '; wrong: column 1 would hold B twice
    ("eulero", "A1|B2|C3\nB3| |A2\n |A3| ",
     "A1|B2|C3\nB3|C1|A2\nC2|A3|B1", "A1|B2|C3\nB3|C1|A2\nB1|A3|C2"),
    # a 2D list with None; wrong: r1c1 flipped, so row 1 has four 1s
    ("binairo",
     "[[0, 1, None, None, 0, None], [None, None, 1, None, None, 1], [1, None, None, 1, None, None], "
     "[None, 1, None, None, 0, None], [None, None, 0, None, None, 0], [1, None, None, 1, None, None]]",
     "0 1 0 1 0 1\n0 0 1 0 1 1\n1 0 0 1 1 0\n0 1 1 0 0 1\n1 1 0 0 1 0\n1 0 1 1 0 0",
     "1 1 0 1 0 1\n0 0 1 0 1 1\n1 0 0 1 1 0\n0 1 1 0 0 1\n1 1 0 0 1 0\n1 0 1 1 0 0"),
]


@pytest.mark.parametrize("category,state,right,wrong", OFFICIAL, ids=[c[0] for c in OFFICIAL])
def test_official_records_score_right_and_wrong(category, state, right, wrong):
    t = tasks.get(category)
    parsed = t.state_from_str(state)
    solved = t.solve(parsed)
    assert solved is not None
    right = right or t.format_answer(solved)
    rec = _official(t, state, right)
    assert score(f"The answer is \\boxed{{{right}}}", rec)
    assert score(f"<answer>{t.format_answer(solved)}</answer>", rec)   # the solver's own answer
    assert not score(f"\\boxed{{{wrong}}}", rec)


def test_official_sudoku_record():
    t = TASKS["sudoku"]
    st = ("5 3 . . 7 . . . .\n6 . . 1 9 5 . . .\n. 9 8 . . . . 6 .\n8 . . . 6 . . . 3\n"
          "4 . . 8 . 3 . . 1\n7 . . . 2 . . . 6\n. 6 . . . . 2 8 .\n. . . 4 1 9 . . 5\n. . . . 8 . . 7 9")
    sol = ("534678912 672195348 198342567 859761423 426853791 713924856 961537284 287419635 "
           "345286179").split()
    right = " ".join(" ".join(r) for r in sol)
    rec = _official(t, st, right)
    assert t.solve(t.state_from_str(st)) == [[int(ch) for ch in r] for r in sol]
    assert score(f"\\boxed{{{right}}}", rec)
    assert score("Answer: " + "\n".join(sol), rec)                  # rows of digits, one a line
    wrong = right[:-1] + "8"                                          # last digit 9 -> 8: row 9 has two 8s
    assert not score(f"\\boxed{{{wrong}}}", rec)
    # the same puzzle with 0 for empty cells and no spaces reads the same
    assert t.state_from_str(st.replace(".", "0").replace(" ", "")) == t.state_from_str(st)


def test_official_state_spellings():
    t = TASKS["skyscrapers"]
    sky = t.state_from_str("{'n': 3, 'top': [0, None, 1], 'bottom': [1, 2, 3], "
                           "'left': [2, 2, 1], 'right': [1, 2, 3]}")
    assert sky["top"] == [0, 0, 1]                          # 0 and None both mean "no clue"
    assert t.verify("[[2, 1, 3], [1, 3, 2], [3, 2, 1]]", sky)
    assert not t.verify("[[3, 2, 1], [1, 3, 2], [2, 1, 3]]", sky)   # row 1 seen from the left: 1, not 2
    eu = TASKS["eulero"]
    a = eu.state_from_str("A1|B2|C3\nB3| |A2\n |A3| ")
    assert a == [["A1", "B2", "C3"], ["B3", "", "A2"], ["", "A3", ""]]
    assert eu.state_from_str("A1|B2|C3\nB3||A2\n|A3|") == a                 # blanks lost to strip()
    assert eu.state_from_str("A1|B2|C3\nB3|.|A2\n_|A3|?") == a
    assert eu.state_from_str("|A1|B2|C3|\n|B3| |A2|\n| |A3| |") == a         # outer bars
    assert eu.state_from_str(eu.state_to_str(a)) == a
    fu = TASKS["futoshiki"].state_from_str('{"grid": [[0, 0], [0, 0]], "inequalities": '
                                           '[{"cell1": [0, 0], "cell2": [1, 0], "symbol": ">"}], "size": 2}')
    assert TASKS["futoshiki"].verify("[[2, 1], [1, 2]]", fu) and not TASKS["futoshiki"].verify("[[1, 2], [2, 1]]", fu)
    row = [0, None, 1, None, None, 1]
    assert TASKS["binairo"].state_from_str(json.dumps([row] + [[None] * 6] * 5))[0] == row   # JSON null
    assert TASKS["binairo"].state_from_str(str([row] + [[None] * 6] * 5))[0] == row          # Python None


# ---- official faults avoided ------------------------------------------------------------------
def test_kukurasu_never_leaks_the_solution(insts):
    t = TASKS["kukurasu"]
    for inst in insts("kukurasu")[::5]:
        assert set(inst.state) == {"row_sums", "col_sums", "size"}
        s = t.state_to_str(inst.state)
        assert "solution" not in s and json.dumps(inst.solution) not in s
        for q in (t.question(inst.state, False), t.question(inst.state, True)):
            assert t.answer(inst) not in q
    off = "{'row_sums': [1], 'col_sums': [1], 'size': 1, 'solution': [[1]]}"
    assert t.state_from_str(off) == {"row_sums": [1], "col_sums": [1], "size": 1}


def test_calcudoku_division_is_exact_and_either_order():
    t = TASKS["calcudoku"]
    grid = [[(r + c) % 5 + 1 for c in range(5)] for r in range(5)]      # row 1: 1 2 3 4 5
    rows = [{"cells": [[r, c] for c in range(1, 6)], "operator": "+", "target": 15} for r in range(1, 6)]

    def state(cage):
        return {"size": 5, "regions": rows + [cage]}
    ans = t.format_answer(grid)
    assert t.verify(ans, state({"cells": [[1, 1]], "operator": "+", "target": 1}))
    # r1c3 = 3, r1c4 = 4: 4 / 3 floors to 1 (the official check), but it is not exact: rejected
    assert not t.verify(ans, state({"cells": [[1, 3], [1, 4]], "operator": "÷", "target": 1}))
    # the smaller number first in reading order works for - and ÷ (r1c2 = 2, r1c4 = 4)
    assert t.verify(ans, state({"cells": [[1, 3], [1, 4]], "operator": "-", "target": 1}))
    assert t.verify(ans, state({"cells": [[1, 2], [1, 4]], "operator": "÷", "target": 2}))
    assert t.verify(ans, state({"cells": [[1, 2], [1, 4]], "operator": "/", "target": 2}))
    assert not t.verify(ans, state({"cells": [[1, 2], [1, 4]], "operator": "÷", "target": 3}))
    st = {"size": 2, "regions": [{"cells": [[1, 1], [1, 2]], "operator": "÷", "target": 2},
                                 {"cells": [[2, 1], [2, 2]], "operator": "x", "target": 2}]}
    st = t.state_from_str(json.dumps(st))
    assert st["regions"][1]["operator"] == "*"
    assert t.verify("[[1, 2], [2, 1]]", st) and t.verify("[[2, 1], [1, 2]]", st)


def test_eulero_size_comes_from_the_instance():
    t = TASKS["eulero"]
    # a 5x5 instance read from the official text: the verifier uses n = 5 whatever the level
    from tasks.eulero import graeco_latin, letter
    sq = graeco_latin(5, random.Random(1))
    full = [[f"{letter(L)}{d + 1}" for L, d in row] for row in sq]
    st = [[v if (r + c) % 3 else "" for c, v in enumerate(row)] for r, row in enumerate(full)]
    state = t.state_from_str(t.state_to_str(st))
    assert len(state) == 5 and t.verify("\n".join("|".join(r) for r in full), state)
    assert not t.verify("\n".join("|".join(r[:4]) for r in full[:4]), state)


def test_skeleton_anchors_and_backtracks(insts):
    # the skeleton comes from the real search: placements with their rule, partial grids,
    # and (on a puzzle that needs guessing) backtrack steps; its answer passes
    t = TASKS["calcudoku"]
    kinds = set()
    for inst in insts("calcudoku")[-6:]:
        steps = t.skeleton(inst.state)
        kinds |= {s["kind"] for s in steps}
        assert len(steps) <= 150
        assert any("Grid so far" in s["text"] or "After the forced" in s["text"] for s in steps)
        assert t.verify(steps[-1]["text"], inst.state)
    assert {"rule", "read", "step", "check", "answer"} <= kinds
    st = TASKS["sudoku"].skeleton(insts("sudoku")[-1].state)
    assert any(": the only cell of" in s["text"] or "only candidate left" in s["text"] for s in st)
