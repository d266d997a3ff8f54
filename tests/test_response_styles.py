"""Scoring as real models answer (issue 17): for every task and level, the gold answer written
in the styles models use scores True, and the same style around a rule-breaking answer scores
False.

    python -m pytest -q tests/test_response_styles.py

Records come from the task generators (seed 0 per level), as synth.py writes them.
"""
import pytest

from tasks import TASKS, make_record, score
from tasks.base import LEVELS, parse_int, yes_no

NAMES = sorted(TASKS)
GRIDS = {"sudoku", "calcudoku", "futoshiki", "skyscrapers", "kukurasu", "binairo", "numbrix",
         "eulero", "nonogram"}
MOVES = {"sokoban", "maze", "nibbles", "slidingpuzzle"}
COT = ("Let me look at the picture again and check every constraint one by one. " * 40)


def grid_rows(name, gold):
    """The gold grid as a list of rows of cell strings (the official spellings differ)."""
    if name == "sudoku":
        toks = gold.split()
        return [toks[9 * r:9 * r + 9] for r in range(9)]
    if gold.startswith("[["):
        import ast
        return [[str(x) for x in row] for row in ast.literal_eval(gold)]
    if name == "numbrix":
        return [[c.strip() for c in line.strip().strip("|").split("|")] for line in gold.split("\n")]
    if name == "eulero":
        return [line.split("|") for line in gold.split("\n")]
    if name == "nonogram":
        return [list(line) for line in gold.split("\n")]
    return [line.split() for line in gold.split("\n")]


def latex(name, gold):
    """The LaTeX form of an answer: a bmatrix for grids, LaTeX spacing between moves,
    \\text{} in inline math for everything else."""
    if name in GRIDS:
        rows = grid_rows(name, gold)
        return ("\\boxed{\\begin{bmatrix}" + " \\\\ ".join(" & ".join(r) for r in rows)
                + "\\end{bmatrix}}")
    if name in MOVES:
        seps = ["\\ ", "~", "\\quad ", "\\, "]
        words = gold.split()
        return "\\boxed{" + "".join(w + seps[i % 4] for i, w in enumerate(words)).rstrip("\\, ~quad") + "}"
    return "$\\boxed{\\text{" + gold + "}}$"


def full_stop(name, gold):
    # nonogram writes empty cells as '.', so its full stop goes after the box
    return f"The answer is \\boxed{{{gold}}}." if TASKS[name].dot_is_cell else f"\\boxed{{{gold}.}}"


STYLES = {
    "think-then-box": lambda n, g: f"<think>\n{COT}\n</think>\n\nSo the answer is \\boxed{{{g}}}",
    "answer-tag-box": lambda n, g: f"<think>{COT}</think><answer>The answer is \\boxed{{{g}}}.</answer>",
    "box-tags": lambda n, g: f"{COT}<|begin_of_box|>{g}<|end_of_box|>",
    "bold-answer-label": lambda n, g: f"{COT}\n\n**Answer:** {g}",
    "box-full-stop": full_stop,
    "latex-form": latex,
    "earlier-wrong-boxes": lambda n, g: (f"<think>First guess: \\boxed{{{wrong(n, g)}}}. {COT} That breaks a "
                                         f"rule; again: \\boxed{{{wrong(n, g)}}}.</think>\n{COT}\n"
                                         f"Final: \\boxed{{{g}}}"),
    "code-fence": lambda n, g: f"<think>{COT}</think>\nFinal Answer:\n```text\n{g}\n```",
    "bold-in-box": lambda n, g: f"{COT} \\boxed{{**{g}**}}",
}


def write_grid(name, gold, rows):
    """`rows` written in the gold answer's own spelling."""
    if name == "sudoku":
        return " ".join(c for r in rows for c in r)
    if gold.startswith("[["):
        return "[" + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]"
    if name == "numbrix":
        return "\n".join("|" + "|".join(r) + "|" for r in rows)
    if name == "eulero":
        return "\n".join("|".join(r) for r in rows)
    if name == "nonogram":
        return "\n".join("".join(r) for r in rows)
    return "\n".join(" ".join(r) for r in rows)


def wrong(name, gold):
    """A rule-breaking variant of the gold answer, in the gold's own format: a number off by
    one; Yes/No flipped; a grid with two different cells of one row swapped (a column
    or clue then breaks: the swap changes two columns' contents); a list, set, move list or
    ladder without one item (the walk, cover or assignment is then incomplete); a found word
    read the other way."""
    v = parse_int(gold)
    if v is not None:
        return str(v + 1)
    yn = yes_no(gold)
    if yn is not None:
        return "No" if yn else "Yes"
    if name in GRIDS:
        rows = grid_rows(name, gold)
        i, j = next((i, k) for i, r in enumerate(rows) for k in range(1, len(r)) if r[k] != r[0])
        rows[i][0], rows[i][j] = rows[i][j], rows[i][0]
        return write_grid(name, gold, rows)
    if gold[:1] in "[{" and gold[-1:] in "]}":
        import ast
        items = list(ast.literal_eval(gold))
        items = sorted(items) if gold[0] == "{" else items
        del items[1]   # not the last: a cycle may be written without repeating its start
        inner = ", ".join("(" + ", ".join(map(str, x)) + ")" if isinstance(x, tuple) else str(x)
                          for x in items)
        return gold[0] + inner + gold[-1]
    if name == "word_search":      # the word read in the opposite direction
        word, d, rest = gold.split(" ", 2)
        flip = {"N": "S", "S": "N", "E": "W", "W": "E"}
        return f"{word} {''.join(flip[c] for c in d)} {rest}"
    if "\n" in gold:
        return gold[: gold.rfind("\n")]
    toks = gold.split()
    cut = " ".join(toks[:-1]) if len(toks) > 1 else gold[: gold.rfind("(")]
    return cut.rstrip(" ,;->")


@pytest.fixture(scope="module")
def records():
    out = {}
    for name in NAMES:
        t = TASKS[name]
        out[name] = [make_record(t, t.generate(lv, 0), [f"x{i}.png" for i in range(t.n_images)])
                     for lv in LEVELS]
    return out


def test_at_least_eight_styles():
    assert len(STYLES) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_gold_in_every_style_scores(name, records):
    for rec in records[name]:
        gold = rec["answer"]
        for style, write in STYLES.items():
            assert score(write(name, gold), rec), (name, rec["difficulty"], style, write(name, gold)[-300:])


@pytest.mark.parametrize("name", NAMES)
def test_rule_breaking_answer_in_every_style_fails(name, records):
    for rec in records[name]:
        gold = rec["answer"]
        bad = wrong(name, gold)
        assert bad != gold
        for style, write in STYLES.items():
            resp = write(name, bad)
            if style == "earlier-wrong-boxes":
                # the gold answer boxed early, a wrong one last: the last box is the answer
                resp = f"\\boxed{{{gold}}} {COT} \\boxed{{{bad}}}"
            assert not score(resp, rec), (name, rec["difficulty"], style, resp[-300:])
        # an earlier box followed by an empty last one is an empty answer
        assert not score(f"\\boxed{{{gold}}} {COT} \\boxed{{}}", rec)
        assert not score(f"<answer>\\boxed{{{gold}}} then \\boxed{{ }}</answer>", rec)
