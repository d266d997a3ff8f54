"""Rewards that cannot be stalled or gamed (issue 29).

    python -m pytest -q tests/test_rewards.py              # ~15 s
    python -m pytest -q -m slow tests/test_rewards.py      # + the 10 MB shapes

- the final answer is the last marker by position (withdrawn answers are not paid for);
- every spelling of formats.read_answer x every task whose answer has that shape: the gold
  scores 1, a rule-breaking answer in the same spelling scores 0;
- a fuzz test per task on replies made of the task's own answer alphabet;
- no reply shape of tests/reward_shapes.py takes over 0.1 s to score, on any task, timed in a
  child process that is killed when it stalls.
"""
import ast
import random
import re

import pytest
from reward_shapes import REAL, SHAPES, time_jobs
from test_response_styles import grid_rows, wrong
from test_tasks import mutated

from tasks import TASKS, extract_answer, formats, make_record, score
from tasks.base import LEVELS, MAX_ANSWER_CHARS
from tasks.extract import TAIL

NAMES = sorted(TASKS)
BOUND_S = 0.1      # the budget per reply


@pytest.fixture(scope="module")
def records():
    return {n: [make_record(TASKS[n], TASKS[n].generate(lv, 0), ["x.png"] * TASKS[n].n_images)
                for lv in LEVELS] for n in NAMES}


# ---- the final answer: the last marker by position ---------------------------------------
@pytest.mark.parametrize("response,expected", [
    ("<think>I get \\boxed{14} but let me recheck.</think>\nThe final answer is 15.", "15."),
    ("Tentatively \\boxed{14}.\n\nFinal Answer: 15", "15"),
    ("<answer>14</answer>\nOn reflection the final answer is \\boxed{15}.", "15"),
    ("<answer>15</answer> ... \\boxed{14}", "14"),
    ("<|begin_of_box|>14<|end_of_box|> then <answer>15</answer>", "15"),
    ("<answer>14</answer> then <|begin_of_box|>15<|end_of_box|>", "15"),
    ("\\boxed{14} **Final Answer:** 15", "15"),
    ("Answer: 14\n\nFinal answer: \\boxed{15}", "15"),               # a label, then a box
    ("<answer>The max flow is \\boxed{8}.</answer>", "8"),           # nested: inner starts later
    ("<answer>Final answer: 15</answer> trailing words", "15"),      # a label ends with its tag
    ("\\boxed{\\text{Answer: 15}}", "15"),                           # ... or with its box
    ("<|begin_of_box|><answer>\\boxed{15}</answer><|end_of_box|>", "15"),
    ("\\boxed{14} then \\boxed{15", "14"),                           # unclosed: no marker
    ("\\boxed{14} then <answer>15", "14"),
    ("<answer>14</answer> then </answer>", "14"),
    ("\\boxed{14} then \\boxed{}", ""),                              # an empty last box
    ("<think>\\boxed{14}</think>", "14"),                            # nothing after: reasoning
    ("<think>\\boxed{14}</think> \n ", "14"),
    ("<think>\\boxed{14}</think></think>So: 15", "So: 15"),          # the last </think>
    ("<think>\\boxed{14}</think> 15", "15"),
    ("<think>I reason and forget to answer</think>", ""),            # in the reasoning only a
    ("<think>so the answer is 15</think>", ""),                       # marker is an answer
    ("<think>Final Answer: 15</think>", "15"),
    ("So the answer is 15.", "15."),                                 # no marker: 'answer is'
    ("The answer is 14. Checking again... the answer is: 15", "15"),
    ("let me check the answer: 14 again\n\\boxed{15}", "15"),
    ("ANSWER: 15", "15"),
    ("Final answer： 15", "15"),
    ("**Final Answer**: 15", "15"),
])
def test_the_last_marker_by_position_is_the_answer(response, expected):
    # (a trailing full stop is dropped later, by the task's reader)
    assert extract_answer(response) == expected


def test_the_tail_bound():
    filler = "Let me think about this once more. " * (2 * TAIL // 35)
    assert len(filler) > TAIL
    # an answer at the end of a long reply is found; one followed by more than TAIL characters
    # of other text is not the final answer
    assert extract_answer(filler + "\\boxed{15}") == "15"
    assert extract_answer("\\boxed{15}" + filler) != "15"
    assert extract_answer("<think>" + filler + "</think>\\boxed{15}") == "15"
    assert extract_answer("<think>" + filler + "\\boxed{15}</think>") == "15"
    assert TAIL >= 2 * MAX_ANSWER_CHARS


@pytest.mark.parametrize("name", NAMES)
def test_a_withdrawn_answer_is_not_paid_for(name, records):
    """The issue's three withdrawn-answer replies score the revision, on every task and level,
    and the reverse (the gold answer withdrawn for a wrong one) scores 0."""
    stop = "" if TASKS[name].dot_is_cell else "."
    for rec in records[name]:
        gold = rec["answer"]
        bad = wrong(name, gold)
        for g, w, verdict in ((gold, bad, True), (bad, gold, False)):
            for reply in (f"<think>I get \\boxed{{{w}}} but let me recheck.</think>\nThe final answer is {g}{stop}",
                          f"Tentatively \\boxed{{{w}}}.\n\nFinal Answer: {g}",
                          f"<answer>{w}</answer>\nOn reflection the final answer is \\boxed{{{g}}}.",
                          f"<answer>{w}</answer> ... \\boxed{{{g}}}",
                          f"<|begin_of_box|>{w}<|end_of_box|> ... <answer>{g}</answer>"):
                assert score(reply, rec) is verdict, (name, rec["difficulty"], reply[-200:])


# ---- one normalisation layer: every spelling x every task of its shape --------------------
FW = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
FW_DIGITS = {c: c + 0xFEE0 for c in range(0x30, 0x3A)}
PAIR = re.compile(r"[(\[]\s*(-?\d+)\s*,\s*(-?\d+)\s*[)\]]")


def decode(shape, name, text):
    """The structure of an answer written in the gold's own format."""
    if shape == formats.NUMBER:
        return int(text)
    if shape in (formats.YES_NO, formats.WALK, formats.VERTICES):
        return text if text in ("Yes", "No") else list(ast.literal_eval(text))
    if shape in (formats.CELLS, formats.PAIRS):
        return [(int(a), int(b)) for a, b in PAIR.findall(text)]
    if shape == formats.GRID:
        return grid_rows(name, text)
    if shape == formats.MOVES:
        return text.split()
    if shape == formats.WORDS:
        return text.split(" -> ")
    if shape == formats.EDGES:
        return [line for line in re.split(r"\n| (?=\()", text)]
    if shape == formats.CELL_VALUES:
        return text.split()
    if shape == formats.MAPPING:
        return dict(item.split("=") for item in text.split(", "))
    return text


def _grid_json(name, rows):
    if name in ("eulero", "nonogram"):
        return "[" + ", ".join("[" + ", ".join(f'"{c}"' for c in r) + "]" for r in rows) + "]"
    return "[" + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]"


def _arrows(arrow):
    def write(shape, name, s):
        if shape == formats.MOVES or shape == formats.WORDS:
            return f" {arrow} ".join(s)
        if shape in (formats.VERTICES, formats.WALK) and isinstance(s, list):
            return f" {arrow} ".join(map(str, s))
        if shape == formats.PAIRS:
            return f" {arrow} ".join(f"({a},{b})" for a, b in s)
        if shape == formats.MAPPING:
            return ", ".join(f"{k} {arrow} {v}" for k, v in s.items())
        return None
    return write


def _rows_latex(shape, name, s):
    if shape == formats.GRID:
        sep = "|" if name == "eulero" else " "
        return " \\\\ ".join(sep.join(r) for r in s)
    if shape in (formats.EDGES, formats.CELL_VALUES):
        return " \\\\ ".join(s)
    if shape in (formats.CELLS, formats.PAIRS):
        return " \\\\ ".join(f"({a}, {b})" for a, b in s)
    return None


def _array_env(shape, name, s):
    if shape == formats.GRID:
        body = " \\\\ ".join(" & ".join(r) for r in s)
        return "\\begin{array}{" + "c" * len(s[0]) + "}" + body + "\\end{array}"
    if shape == formats.EDGES:
        return "\\begin{array}{l}" + " \\\\ ".join(s) + "\\end{array}"
    return None


def _json(shape, name, s):
    if shape in (formats.CELLS, formats.PAIRS):
        return "[" + ", ".join(f"[{a}, {b}]" for a, b in s) + "]"
    if shape == formats.GRID:
        return _grid_json(name, s)
    if shape == formats.MOVES or shape == formats.WORDS:
        return "[" + ", ".join(f'"{w}"' for w in s) + "]"
    if shape == formats.MAPPING:
        return "{" + ", ".join(f'"{k}": {v}' for k, v in s.items()) + "}"
    return None


def _tuples(shape, name, s):
    if shape in (formats.CELLS, formats.PAIRS):
        return "(" + ", ".join(f"({a}, {b})" for a, b in s) + ")"
    if shape == formats.GRID:
        return _grid_json(name, s).replace("[", "(").replace("]", ")")
    if shape in (formats.VERTICES, formats.WALK) and isinstance(s, list):
        return "(" + ", ".join(map(str, s)) + ")"
    return None


def _set_braces(shape, name, s):
    if shape == formats.CELLS:
        return "\\{" + ", ".join(f"({a}, {b})" for a, b in s) + "\\}"
    if shape == formats.MAPPING:
        return "\\left\\{" + ", ".join(f"{k}={v}" for k, v in s.items()) + "\\right\\}"
    return None


def _thousands(shape, name, s):
    if shape == formats.NUMBER and abs(s) >= 1000:
        return f"{s:,}"
    return None


def _thousands_latex(shape, name, s):
    if shape == formats.NUMBER and abs(s) >= 1000:
        return f"{s:,}".replace(",", "{,}")
    return None


def _labelled(template):
    def write(shape, name, s):
        return template.format(s) if shape == formats.NUMBER else None
    return write


def _no_phrase(shape, name, s):
    if shape in (formats.YES_NO, formats.WALK) and s == "No":
        return "No such path exists"
    if shape in (formats.YES_NO, formats.WALK) and isinstance(s, list):
        return "No such path exists"       # the gold is a path: this must score 0
    if shape == formats.YES_NO and s == "Yes":
        return "Yes, they are isomorphic"
    return None


# spelling -> writer(shape, task name, structure) -> the answer in that spelling, or None
# when the spelling does not apply to that answer
SPELLINGS = {
    "fullwidth": lambda shape, name, s, raw=None: None,      # filled in below (raw text)
    "fullwidth-digits": lambda shape, name, s, raw=None: None,
    "\\rightarrow": _arrows("\\rightarrow"),
    "\\to": _arrows("\\to"),
    "\u2192": _arrows("\u2192"),
    "\u27f6": _arrows("\u27f6"),
    "\\\\ rows": _rows_latex,
    "\\begin{array}": _array_env,
    "JSON nesting": _json,
    "tuple nesting": _tuples,
    "\\{ set braces \\}": _set_braces,
    "1,015": _thousands,
    "1{,}015": _thousands_latex,
    "x = 14": _labelled("x = {}"),
    "max flow: 14": _labelled("max flow: {}"),
    "14 \\text{ units}": _labelled("{} \\text{{ units}}"),
    "14 units": _labelled("{} units"),
    "No such path exists": _no_phrase,
}


def spell(spelling, shape, name, text):
    """`text` (an answer in the gold's format) in `spelling`, or None."""
    if spelling == "fullwidth":
        return text.translate(FW)
    if spelling == "fullwidth-digits":
        return text.translate(FW_DIGITS) if re.search(r"\d", text) else None
    return SPELLINGS[spelling](shape, name, decode(shape, name, text))


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_every_spelling_of_every_task_of_its_shape(spelling, records):
    """The gold written in `spelling` scores 1 and a rule-breaking answer written the same way
    scores 0, for every task (every level) whose answer shape the spelling applies to."""
    covered = set()
    for name in NAMES:
        t = TASKS[name]
        for rec in records[name]:
            gold = rec["answer"]
            good = spell(spelling, t.answer_shape, name, gold)
            bad = spell(spelling, t.answer_shape, name, wrong(name, gold))
            if good is not None and gold != "No" and spelling == "No such path exists" \
                    and t.answer_shape == formats.WALK:
                assert not score(f"\\boxed{{{good}}}", rec), (name, good)   # a path was due
                continue
            if good is None:
                continue
            covered.add(t.answer_shape)
            for reply in (f"\\boxed{{{good}}}", f"<think>hm</think>\n**Final Answer:** {good}"):
                assert score(reply, rec), (spelling, name, rec["difficulty"], reply)
            if bad is not None:
                assert not score(f"\\boxed{{{bad}}}", rec), (spelling, name, rec["difficulty"], bad)
    assert covered, f"{spelling}: applied to no task"


def test_every_task_declares_a_shape_and_each_shape_has_a_spelling(records):
    shapes = {TASKS[n].answer_shape for n in NAMES}
    assert all(TASKS[n].answer_shape in formats.SHAPES for n in NAMES)
    # every declared shape is exercised by at least one spelling beyond the fullwidth ones
    for shape in shapes - {formats.EXPRESSION, formats.WORD_AT}:
        assert any(spell(sp, shape, n, r["answer"]) is not None
                   for sp in SPELLINGS if not sp.startswith("fullwidth")
                   for n in NAMES if TASKS[n].answer_shape == shape
                   for r in records[n]), shape


@pytest.mark.parametrize("text,shape,expected", [
    ("1,015", formats.NUMBER, "1015"), ("12,345,678", formats.NUMBER, "12345678"),
    ("1,01", formats.NUMBER, "1,01"), ("1,0150", formats.NUMBER, "1,0150"),
    ("0,015", formats.NUMBER, "0,015"), ("14 or 15", formats.NUMBER, "14 or 15"),
    ("x = 14 = 15", formats.NUMBER, "x = 14 = 15"), ("d(0, 5) = 6", formats.NUMBER, "d(0, 5) = 6"),
    ("No, but 0 1 2 works yes", formats.WALK, "No, but 0 1 2 works yes"),
    ("Yes, such a path exists", formats.WALK, "Yes, such a path exists"),
    ("Yes, not isomorphic", formats.YES_NO, "Yes, not isomorphic"),
    ("No.\nYes", formats.YES_NO, "No.\nYes"),
    ("(0,1) -> (0,2)", formats.CELLS, "(0,1) -> (0,2)"),          # an arrow is no set separator
    ("(0,1), x, (0,2)", formats.CELLS, "(0,1), x, (0,2)"),
    ("1,015", formats.VERTICES, "1,015"),                           # a comma separates items
    ("x\u00b2", formats.NUMBER, "x\u00b2"),                          # superscripts are not digits
])
def test_what_the_rules_leave_unread(text, shape, expected):
    assert formats.read_answer(text, shape) == expected


# ---- fuzz: replies made of the task's own answer alphabet ----------------------------------
WRAPS = ("\\boxed{%s}", "<answer>%s</answer>", "<|begin_of_box|>%s<|end_of_box|>", "Answer: %s",
         "**Final Answer:** %s", "$%s$", "\\boxed{\\text{%s}}", "\\boxed{%s", "<answer>%s",
         "<think>%s</think>", "%s", "The final answer is %s.", "```\n%s\n```")


def fuzz_replies(rng, gold, n):
    alphabet = sorted(set(gold)) + list(" ,()[]{}\\\n-")
    for _ in range(n):
        s = gold
        kind = rng.random()
        if kind < 0.2:                                   # cut
            i, j = sorted(rng.sample(range(len(s) + 1), 2))
            s = s[i:j]
        elif kind < 0.35:                                # repeated
            s = rng.choice([" ", ", ", "\n", ""]).join([s] * rng.randint(2, 40))
        elif kind < 0.55:                                # a token repeated or dropped
            toks = re.split(r"(\s+|,\s*)", s)
            k = rng.randrange(len(toks))
            toks[k:k + 1] = [] if rng.random() < 0.5 else [toks[k]] * rng.randint(2, 5)
            s = "".join(toks)
        elif kind < 0.9:                                 # character mutations
            s = mutated(s, alphabet, rng, rng.randint(1, 6))
        else:                                            # the alphabet at random, any length
            s = "".join(rng.choice(alphabet) for _ in range(rng.choice([5, 50, 500, 5000])))
        for _ in range(rng.randint(1, 3)):
            s = rng.choice(WRAPS) % s
        yield s


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_replies_of_the_tasks_alphabet(name, records):
    """Every reply scores True or False, and fast, scored in a child process killed after 2 s
    (a backtracking regex cannot be interrupted in-process). The cap: a fuzz reply costs
    0.1-3 ms here (one parse and one rule check of an answer of at most a few thousand
    characters); 0.1 s is 30x that, and a reply over it is re-timed twice and the fastest kept,
    since other jobs on the shared machine can add time but never remove it."""
    rng = random.Random(f"fuzz:{name}")
    recs = records[name]
    replies = list(fuzz_replies(rng, recs[-1]["answer"], 200))
    jobs = [(recs[k % len(recs)] if k % 3 == 0 else recs[-1], r, None, 3) for k, r in enumerate(replies)]
    res = time_jobs(jobs, 2.0, bound=BOUND_S, give_up_after=1)
    for reply, r in zip(replies, res):
        assert r is not None and r[0] is not None, f"{name}: stalled on {reply[:200]!r}"
        dt, verdict, _ = r
        assert verdict in (True, False), (name, reply[:200])
        assert dt < BOUND_S, f"{name}: {dt:.3f}s on {reply[:200]!r}"
    # the gold itself in each wrapper scores: the fuzz reads what it should
    gold = recs[-1]["answer"]
    assert all(score(w % gold, recs[-1]) for w in WRAPS[:7]), name


# ---- denial of service: no shape takes over 0.1 s ------------------------------------------
def _dos(records, size, timeout):
    jobs = [(records[n][-1], s, size, 3) for n in NAMES for s in SHAPES]
    res = time_jobs(jobs, timeout, bound=BOUND_S, give_up_after=3)
    stalled = [(rec["task"], s) for (rec, s, _, _), r in zip(jobs, res) if r is None or r[0] is None]
    assert not stalled, f"killed after {timeout} s (the rest not run after 3 such): {stalled[:10]}"
    slow = [(rec["task"], s, dt) for (rec, s, _, _), (dt, _, _) in zip(jobs, res) if dt >= BOUND_S]
    lost = [(rec["task"], s) for (rec, s, _, _), (_, v, _) in zip(jobs, res) if s in REAL and v is not True]
    assert not slow, f"over {BOUND_S} s: {slow[:10]}"
    assert not lost, f"a real answer in a long reply was not found: {lost[:10]}"


def test_no_reply_shape_stalls_the_reward_100kb(records):
    """Every shape x every task at 100 KB, in a child process killed after 2 s per score.
    The bound: extraction reads at most TAIL (50,000) characters and a parser at most
    MAX_ANSWER_CHARS, so these cost 0.5-17 ms here (bench/score_time.py); 0.1 s is the issue's
    budget, and an over-budget score is re-timed twice, the fastest kept (see the fuzz test)."""
    _dos(records, 100_000, timeout=2)


@pytest.mark.slow
def test_no_reply_shape_stalls_the_reward_10mb(records):
    _dos(records, 10_000_000, timeout=20)
