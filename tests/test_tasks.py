"""The battery every task must pass, run for each task in the registry.

Task-specific checks (one cell changed, alternative valid solutions, official state strings,
level knobs) live in tests/test_<group>.py.
"""
import io
import random
import string
import time

import pytest

import tasks
from tasks import TASKS, extract_answer, make_record, score
from tasks.base import ANCHOR_KINDS, LEVELS

SEEDS = range(4)          # per level; the group tests go deeper where it matters
NAMES = sorted(TASKS)


def _record(task, inst):
    return make_record(task, inst, [f"images/x{i}.png" for i in range(task.n_images)])


@pytest.fixture(scope="module")
def instances():
    cache = {}

    def get(name):
        if name not in cache:
            t = TASKS[name]
            cache[name] = [t.generate(lv, s) for lv in LEVELS for s in SEEDS]
        return cache[name]
    return get


def test_registry_is_consistent():
    assert len(TASKS) >= 1
    officials = [t.official for t in TASKS.values()]
    assert len(set(officials)) == len(officials)
    for name, t in TASKS.items():
        assert t.name == name and t.group in tasks.GROUPS and t.official
        assert tasks.get(t.official) is t and tasks.get(name) is t
        # the module is named after the task, so `tasks/<name>.py` is where to look
        assert type(t).__module__ == f"tasks.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_gold_answers_pass_at_every_level(name, instances):
    t = TASKS[name]
    for inst in instances(name):
        rec = _record(t, inst)
        gold = rec["answer"]
        assert gold.strip(), (name, inst.level, inst.seed)
        for resp in (f"\\boxed{{{gold}}}", f"<think>hmm</think> The answer is \\boxed{{{gold}}}.",
                     f"<answer>{gold}</answer>", f"Answer: {gold}"):
            assert score(resp, rec), (name, inst.level, inst.seed, resp[:200])
        # the official state string round-trips to the same state
        assert t.state_from_str(rec["initial_state"]) == inst.state, (name, inst.level, inst.seed)


@pytest.mark.parametrize("name", NAMES)
def test_malformed_answers_fail(name, instances):
    t = TASKS[name]
    for inst in instances(name)[::3]:
        rec = _record(t, inst)
        gold = rec["answer"]
        bad = ["", "\\boxed{}", "\\boxed{ }", "I don't know", "\\boxed{%s}" % ("garbage " * 5),
               f"\\boxed{{{gold[: len(gold) // 2]}}}", None, 12345, "\\boxed{" + gold]
        for resp in bad:
            if resp == "\\boxed{" + gold:
                # an unclosed box: falls back to the whole text, which is not an answer
                assert extract_answer(resp) == resp
            assert not score(resp, rec), (name, inst.level, inst.seed, repr(resp)[:200])


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes(name):
    t = TASKS[name]
    for level in (1, 5):
        a, b = t.generate(level, 11), t.generate(level, 11)
        assert _record(t, a) == _record(t, b)
        pa, pb = t.render(a.state), t.render(b.state)
        assert len(pa) == t.n_images
        for x, y in zip(pa, pb):
            bx, by = io.BytesIO(), io.BytesIO()
            x.save(bx, "PNG")
            y.save(by, "PNG")
            assert bx.getvalue() == by.getvalue()
            assert min(x.size) >= 100 and max(x.size) <= 2000, x.size
    # different seeds give different instances (at the hardest level at least)
    assert t.generate(5, 1).state != t.generate(5, 2).state


@pytest.mark.parametrize("name", NAMES)
def test_questions_and_skeleton(name, instances):
    t = TASKS[name]
    for inst in instances(name)[::5]:
        rec = _record(t, inst)
        assert rec["question"] and rec["question_text"] and rec["question"] != rec["question_text"]
        steps = t.skeleton(inst.state)
        assert all(set(s) == {"kind", "text"} and s["text"] for s in steps)
        assert any(s["kind"] in ANCHOR_KINDS for s in steps)
        assert steps[-1]["kind"] == "answer"
        assert t.verify(steps[-1]["text"], inst.state), (name, inst.level, steps[-1]["text"][:200])


def _fuzz_strings(rng, gold):
    yield from ["", " ", "\x00", "9" * 10_000, "-" + "9" * 5000, "1e999999", "nan", "inf",
                "[" * 5000 + "]" * 5000, "(" * 5000, "{" * 3000, "\\boxed{" * 1000,
                "a" * 100_000, "1 " * 30_000, "(1,1)-" * 5000, "up " * 20_000,
                "[[" + "1," * 20000 + "]]", "\u202e\u0000\ufeff", "😀" * 1000, "None", "[]", "{}",
                "Yes No", "((((1))))", "1/0", "0/0*24", "A=1,A=2", "[-1, -2]", "[" * 199 + "]" * 199]
    alphabet = string.printable + "×÷→—αβ∑😀"
    for _ in range(1000):
        n = rng.choice([1, 3, 10, 50, 300])
        yield "".join(rng.choice(alphabet) for _ in range(n))
    for _ in range(1000):  # mutations of the gold answer: near misses of every shape
        yield mutated(gold, alphabet, rng, rng.randint(1, 4))


def mutated(text, alphabet, rng, times):
    """`text` with `times` random edits: a character replaced, inserted or deleted."""
    s = list(text)
    for _ in range(times):
        op = rng.random()
        i = rng.randrange(len(s) + 1)
        if op < 0.4 and s:
            s[min(i, len(s) - 1)] = rng.choice(alphabet)
        elif op < 0.7:
            s.insert(i, rng.choice(alphabet))
        elif s:
            del s[min(i, len(s) - 1)]
    return "".join(s)


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_never_raises_and_is_bounded(name):
    t = TASKS[name]
    rng = random.Random(name)
    inst = t.generate(5, 0)
    rec = _record(t, inst)
    worst = 0.0
    for s in _fuzz_strings(rng, rec["answer"]):
        t0 = time.perf_counter()
        r = t.verify(s, inst.state)
        worst = max(worst, time.perf_counter() - t0)
        assert r in (True, False)
    assert worst < 0.5, f"{name}: slowest verify took {worst:.3f}s"
    for s in ("\\boxed{" + "9" * 10_000 + "}", "x" * 100_000, "<answer>" * 3000):
        t0 = time.perf_counter()
        assert score(s, rec) in (True, False)
        assert time.perf_counter() - t0 < 1.0


OFFICIAL = {
    "Algorithms": {"24Points", "BestTimeToBuyAndSellStock", "ContainerWithMostWater", "CountHillsAndValleys",
                   "HIndex", "LargestRectangleInHistogram", "longest_increasing_subsequence",
                   "trapping_rain_water", "CryptoMath"},
    "Graphs": {"shortest_distance_weighted", "max_flow", "topological_sort", "graph_isomorphism",
               "hamiltonian_path", "hamiltonian_cycle", "eulerian_path", "eulerian_cycle"},
    "Puzzles": {"Calcudoku", "Kukurasu", "Skyscrapers", "WordLadder", "eulero", "numbrix", "snake", "aquarium",
                "binairo", "bridges", "campsite", "futoshiki", "hitori", "kakuro", "nonogram", "shingoki",
                "tapa", "wordsearch", "sudoku"},
    "Games": {"sokoban", "hanoi", "maze", "minesweeper", "nibbles", "slidingpuzzle"},
}


def test_the_registry_holds_the_42_official_tasks():
    assert len(TASKS) == 42
    got = {g: {TASKS[n].official for n in names} for g, names in tasks.groups().items()}
    assert {g: len(v) for g, v in got.items()} == {"Algorithms": 9, "Graphs": 8, "Puzzles": 19, "Games": 6}
    assert got == OFFICIAL


MB = 10 ** 6
BOUND_S = 0.1
# Adversarial responses of up to 1 MB (issue 17): deep \text{ / \boxed{ nesting, runs of $, {,
# \, *, long digit strings, 1 MB of one character; and answers just under MAX_ANSWER_CHARS
# (20,000) that reach each task's parser.
ADVERSARIAL = {
    "text-nest": "\\text{" * 50 + "a" * MB + "}" * 50,
    "boxed-nest": "\\boxed{" * 50 + "a" * MB + "}" * 50,
    "boxed-deep": "\\boxed{" * 10_000 + "8" + "}" * 10_000,
    "boxed-run": "\\boxed{" * (MB // 7),
    "text-run": "\\text{" * (MB // 12) + "}" * (MB // 12),
    "dollars": "$" * MB, "open-braces": "{" * MB, "close-braces": "}" * MB,
    "backslashes": "\\" * MB, "stars": "*" * MB, "digits": "9" * MB, "one-char": "a" * MB,
    "box-digits": "\\boxed{" + "9" * MB + "}",
    "dollar-box": "$" * (MB // 2) + "\\boxed{8}" + "$" * (MB // 2),
    "answer-tags": "<answer>" * (MB // 8), "fences": "`" * MB,
    "boxed-mixed": ("\\boxed{\\text{$**" * 60_000)[:MB],
    "inner-text": "\\boxed{" + "\\text{" * 3000 + "1" + "}" * 3000 + "}",
    "inner-digits": "\\boxed{" + "1 " * 9_990 + "}",
    "inner-pairs": "\\boxed{" + "(1,1)-" * 3_300 + "}",
    "inner-moves": "\\boxed{" + "up\\ " * 4_900 + "}",
    "inner-brackets": "\\boxed{" + "[" * 9_000 + "]" * 9_000 + "}",
    "inner-rows": "\\boxed{" + "1 & 2 \\\\ " * 2_000 + "}",
    "inner-stars": "\\boxed{" + "*" * 9_000 + "8" + "*" * 9_000 + "}",
}


@pytest.mark.parametrize("name", NAMES)
def test_score_is_bounded_on_1mb_adversarial_responses(name):
    """Every score() call takes < 0.1 s (the issue's bound) on these shapes. Why this bound
    holds with room to spare: extraction is a fixed number of C-speed scans (str.find/count,
    regex) over the response, measured at ~1-7 ms per MB on a 2-core shared machine, and
    verify() sees at most MAX_ANSWER_CHARS characters; a per-character Python loop or a
    quadratic pass over 1 MB costs >= 0.1 s. Each shape is timed 3 times and the fastest kept:
    other processes on the machine can only add time, never remove it."""
    t = TASKS[name]
    rec = _record(t, t.generate(1, 0))
    for shape, s in ADVERSARIAL.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            assert score(s, rec) in (True, False)
            best = min(best, time.perf_counter() - t0)
        assert best < BOUND_S, f"{name}: {shape} took {best:.3f}s"
