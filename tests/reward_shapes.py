"""Replies built to stall the reward (issue 29), and a timer that runs them in a child process.

Shared by tests/test_rewards.py (100 KB in the default suite, 10 MB slow-marked) and
bench/score_time.py (1 MB, prints the worst shape per task). A shape is a function
(size in characters, the record's gold answer) -> reply; the size is approximate.

The timer forks one child for a list of (record, shape, size) jobs and reads one result per
job from a pipe. A job that does not answer within `timeout` seconds (a regex that backtracks
for ever cannot be interrupted from inside) is reported as None, the child is killed and a new
one goes on with the next job: a regression fails a test or shows in the bench, it never
hangs either.
"""
from __future__ import annotations

import multiprocessing
import time


ANSWER_MAX = 19_990   # just under MAX_ANSWER_CHARS (20,000): the longest content a parser sees
COT = "Let me check every constraint again, one by one, before I commit to an answer. "


def _fill(unit: str, n: int, head: str = "", tail: str = "") -> str:
    """head + unit repeated + tail, about n characters."""
    return head + unit * max(1, (n - len(head) - len(tail)) // len(unit)) + tail


def _pad(n: int, s: str) -> str:
    """`s` after a reasoning block that brings the reply to about n characters: `s` is then
    the text after </think>, where the answer is read."""
    return _fill(COT, n - len(s), "<think>", "</think>") + s


def _nested(open_: str, n: int, inner: str, close: str = "}") -> str:
    k = max(1, (n - len(inner)) // (len(open_) + len(close)))
    return open_ * k + inner + close * k


def _cap(n):
    return min(n, ANSWER_MAX)


SHAPES = {
    # the exponential crypto_math regex: a quote that can end one item or start the next
    # (k = 30 never finished before; 97 items is the longest under crypto_math's 400 chars)
    "crypto-quote-items": lambda n, g: _pad(n, "\\boxed{" + "A=1'" * 30 + "!}"),
    "crypto-quote-items-397": lambda n, g: _pad(n, "\\boxed{" + "A=1'" * 97 + "!}"),
    "crypto-quoted-letters": lambda n, g: _pad(n, "\\boxed{" + "'A'=1" * 30 + "!}"),
    "crypto-label": lambda n, g: _pad(n, "Answer: " + "A=1'" * 30 + "!"),
    # whitespace after the word "answer" (formats._PREFIX was quadratic in it)
    "spaces-after-answer": lambda n, g: _pad(n, _fill(" ", _cap(n), "\\boxed{answer", "x}")),
    "newlines-after-final-answer": lambda n, g: _pad(n, _fill("\n", _cap(n), "Final answer", "42")),
    "spaces-after-answer-label": lambda n, g: _pad(n, _fill(" ", _cap(n), "Answer:", g)),
    "spaces-after-answer-is": lambda n, g: _pad(n, _fill(" ", _cap(n), "The final answer is", g)),
    "bold-answer-runs": lambda n, g: _pad(n, _fill("**answer** ", _cap(n), "\\boxed{", "}")),
    # braces: unclosed boxes (a Python step per '}' before), runs of { and }, nesting
    "unclosed-boxes-of-pairs": lambda n, g: _fill("\\boxed{" + "{}" * 496, n),
    "unclosed-boxes": lambda n, g: _fill("\\boxed{", n),
    "unclosed-box-then-closers": lambda n, g: _fill("}", n, "\\boxed{" * 2000),
    "box-then-closers": lambda n, g: _fill("}", n, "\\boxed{" + g + "}"),
    "opening-braces": lambda n, g: _fill("{", n, "\\boxed{"),
    "closing-braces": lambda n, g: _fill("}", n),
    "brace-pairs-in-box": lambda n, g: _fill("{}", n, "\\boxed{", "}"),
    "escaped-braces": lambda n, g: _fill("\\{", n, "\\boxed{", "}"),
    "nested-boxes": lambda n, g: _nested("\\boxed{", n, g),
    "nested-text": lambda n, g: "\\boxed{" + _nested("\\text{", n, g) + "}",
    "nested-text-in-answer": lambda n, g: _pad(n, "\\boxed{" + _nested("\\text{", _cap(n), g) + "}"),
    "unclosed-text": lambda n, g: _pad(n, _fill("\\text{", _cap(n), "\\boxed{", g + "}")),
    "left-right-runs": lambda n, g: _pad(n, _fill("\\left(", _cap(n), "\\boxed{", g + "}")),
    # other markers by the thousand
    "many-think-ends": lambda n, g: _fill("</think>", n, "", "\\boxed{" + g + "}"),
    "answer-tags-unclosed": lambda n, g: _fill("<answer>", n, "", g),
    "answer-closes-only": lambda n, g: _fill("</answer>", n, "<answer>" + g),
    "box-tokens-unclosed": lambda n, g: _fill("<|begin_of_box|>", n, "", g),
    "answer-labels": lambda n, g: _fill("Answer:", n, "", g),
    "final-answer-is": lambda n, g: _fill("the final answer is ", n, "", g),
    "fences": lambda n, g: _fill("```", n, "", g),
    "dollars": lambda n, g: _fill("$", n, "\\boxed{", g + "}"),
    "stars": lambda n, g: _fill("*", n, "\\boxed{", g + "}"),
    "stars-in-answer": lambda n, g: _pad(n, _fill("*", _cap(n), "\\boxed{", g + "}")),
    "backslashes": lambda n, g: _fill("\\", n),
    # content just under MAX_ANSWER_CHARS: the normaliser and the task's parser at their limit
    "box-of-digits": lambda n, g: _pad(n, _fill("1", _cap(n), "\\boxed{", "}")),
    "box-of-commas": lambda n, g: _pad(n, _fill(",015", _cap(n), "\\boxed{1", "}")),
    "box-of-pairs": lambda n, g: _pad(n, _fill("(0,1), ", _cap(n), "\\boxed{", "}")),
    "box-of-list-pairs": lambda n, g: _pad(n, _fill("[0,1],", _cap(n), "\\boxed{[", "]}")),
    "box-of-arrows": lambda n, g: _pad(n, _fill(" \\to 0", _cap(n), "\\boxed{0", "}")),
    "box-of-rows": lambda n, g: _pad(n, _fill("1 & 0 \\\\ ", _cap(n), "\\boxed{\\begin{array}{cc}",
                                              "\\end{array}}")),
    "box-of-fullwidth": lambda n, g: _pad(n, _fill("\uff11\uff0c", _cap(n), "\\boxed{", "}")),
    "box-of-gold": lambda n, g: _pad(n, _fill(g + " ", _cap(n), "\\boxed{", "}")),
    "box-of-words": lambda n, g: _pad(n, _fill("no ", _cap(n), "\\boxed{", "}")),
    "labelled-value": lambda n, g: _pad(n, _fill("x", _cap(n), "\\boxed{", " = " + g + "}")),
    "unit-words": lambda n, g: _pad(n, _fill(" units", _cap(n), "\\boxed{" + g, "}")),
    "no-phrase": lambda n, g: _pad(n, _fill(" such", _cap(n), "\\boxed{No", " path}")),
    "gold-repeated": lambda n, g: _fill(g + "\n", n),
    # a real reply, only long: the answer must still be found (and score True)
    "long-reasoning-then-gold": lambda n, g: _pad(n, "\\boxed{" + g + "}"),
}
REAL = {"long-reasoning-then-gold"}   # shapes that must score True


def _child(conn, jobs, start, bound):
    from tasks import score
    for i in range(start, len(jobs)):
        rec, shape, size, repeats = jobs[i]
        reply = shape if size is None else build(shape, size, rec["answer"])
        best, verdict = float("inf"), None
        for _ in range(repeats):
            t0 = time.perf_counter()
            verdict = score(reply, rec)
            best = min(best, time.perf_counter() - t0)
            if best < bound:
                break
        conn.send((i, best, verdict, len(reply)))
    conn.close()


def build(shape: str, size: int, gold: str) -> str:
    return SHAPES[shape](size, gold)


def time_jobs(jobs, timeout: float, bound: float = 0.0, give_up_after: int | None = None):
    """jobs: [(record, shape, size, repeats)] -> [(seconds, verdict, length)]: the fastest of
    up to `repeats` scores (re-timed only while over `bound`; another process on the machine
    only adds time, never removes it); (None, None, None) for a job that had not answered after
    `timeout` seconds, whose child is killed. After `give_up_after` such jobs the rest are not
    run (None in the list), so that a broken reader fails a test in seconds, not minutes.
    A job whose size is None holds the reply itself in place of a shape name."""
    ctx = multiprocessing.get_context("fork")
    out = [None] * len(jobs)
    start = stalls = 0
    while start < len(jobs) and (give_up_after is None or stalls < give_up_after):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, jobs, start, bound), daemon=True)
        proc.start()
        child.close()
        i = start
        while i < len(jobs):
            if not parent.poll(timeout):
                proc.kill()                    # stalled: killed, and the next child goes on
                break
            try:
                j, dt, verdict, length = parent.recv()
            except EOFError:                   # the child died (e.g. out of memory)
                break
            out[j] = (dt, verdict, length)
            i = j + 1
        proc.join()
        parent.close()
        if i < len(jobs):
            out[i] = (None, None, None)
            stalls += 1
            i += 1
        start = i
    return out
