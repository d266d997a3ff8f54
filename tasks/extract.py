"""Answer extraction, as the MM-HELIX evaluation does it, for answers as real models write them.

    from tasks import extract_answer
    extract_answer("<think>...</think><answer>The max flow is \\boxed{8}.</answer>")   # '8'

In this order, always taking the LAST complete match:
  1. <|begin_of_box|> ... <|end_of_box|>
  2. <answer> ... </answer>
  3. \\boxed{...}   (nested braces)
  4. the text after the last "Answer:"
  5. the whole response after a closing </think> (its last ``` fenced block, if it has one)
Then the chosen part is peeled, at most MAX_DEPTH times: a box or answer tag inside it is
taken (its last complete one), \\text{...}-style wrappers are removed, and enclosing Markdown
(**x**, `x`, ``` fences), $...$ and an "Answer:" label are dropped. So an empty last box is
an empty answer (it scores 0, even after an earlier non-empty box), and
`<answer>\\boxed{8}</answer>` is "8".

Time: every step is a bounded number of C-speed scans (str.find/rfind/count, regex) over the
response, plus one Python pass over an answer of at most MAX_ANSWER_CHARS; nothing is
quadratic and nothing backtracks, so a 1 MB response is extracted in milliseconds.
"""
from __future__ import annotations

import re

from .base import MAX_ANSWER_CHARS
from .formats import strip_enclosing

MAX_DEPTH = 8        # nested markers peeled at most (<answer>\boxed{\text{$x$}}</answer> is 4)
MAX_BOXES = 1000     # \boxed candidates tried from the end; a response with more unclosed or
                     # brace-less \boxed after its last complete one has no final box
_BOX_TAGS = ("<|begin_of_box|>", "<|end_of_box|>")
_ANSWER_TAGS = ("<answer>", "</answer>")
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|"
                      r"mathtt|mathsf|operatorname|mbox|hbox)\s*\{")
_OPEN_BRACE = re.compile(r"[ \t]*\{")


def _last_pair(text: str, open_tag: str, close_tag: str) -> str | None:
    end = text.rfind(close_tag)
    if end == -1:
        return None
    start = text.rfind(open_tag, 0, end)
    # no opening tag before the last closing one: no complete pair at all
    return None if start == -1 else text[start + len(open_tag):end]


def _brace_end(text: str, j: int, end: int) -> int | None:
    """Index of the '}' closing the '{' at j, searching text[j+1:end]; None if unclosed.
    One str.find and one str.count per '}' met: C-speed, linear in end - j."""
    depth, pos = 1, j + 1
    while True:
        k = text.find("}", pos, end)
        if k == -1:
            return None
        depth += text.count("{", pos, k) - 1
        if depth == 0:
            return k
        pos = k + 1


def _last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} whose brace closes, or None.

    A candidate that is still open at `stop` (the brace of a later, unclosed candidate) never
    closes: the later brace is never balanced, and it lies inside the earlier one. So each
    character is scanned by one candidate at most. A box whose content would exceed
    MAX_ANSWER_CHARS is returned cut at that length + 1: too long to be an answer either way.
    """
    pos = stop = len(text)
    for _ in range(MAX_BOXES):
        pos = text.rfind("\\boxed", 0, pos)
        if pos == -1:
            return None
        m = _OPEN_BRACE.match(text, pos + len("\\boxed"))
        if not m or m.end() > stop:
            continue
        j = m.end() - 1
        limit = j + 2 + MAX_ANSWER_CHARS
        k = _brace_end(text, j, min(stop, limit))
        if k is not None:
            return text[j + 1:k]
        if limit < stop:
            return text[j + 1:limit]
        stop = j
    return None


def unwrap(text: str) -> str:
    """Remove \\text{...}-style wrappers (their braces may nest) and surrounding $ signs.

    One pass with a stack: the opening of a wrapper and its own closing brace are dropped;
    other braces are kept; a wrapper that never closes is left as it is."""
    if "\\" in text and len(text) <= MAX_ANSWER_CHARS:
        opens = {m.end() - 1: m.start() for m in _WRAPPER.finditer(text)}
        if opens:
            stack, cut = [], []       # cut: (start, end) spans to delete
            for i, ch in enumerate(text):
                if ch == "{":
                    stack.append(i)
                elif ch == "}" and stack:
                    j = stack.pop()
                    if j in opens:
                        cut.append((opens[j], j + 1))
                        cut.append((i, i + 1))
            if cut:
                cut.sort()
                out, prev = [], 0
                for a, b in cut:
                    if a >= prev:
                        out.append(text[prev:a])
                        prev = b
                out.append(text[prev:])
                text = "".join(out)
    return strip_enclosing(text)


def _peel(ans: str) -> str:
    for _ in range(MAX_DEPTH):
        before = ans
        for open_tag, close_tag in (_BOX_TAGS, _ANSWER_TAGS):
            got = _last_pair(ans, open_tag, close_tag)
            if got is not None:
                ans = got
                break
        else:
            got = _last_boxed(ans)
            if got is not None:
                ans = got
            elif len(ans) > MAX_ANSWER_CHARS:
                return ans   # too long to be an answer: leave it to be rejected, unscanned
        ans = unwrap(ans)
        if ans == before:
            break
    return ans


def _last_fence(text: str) -> str | None:
    end = text.rfind("```")
    start = text.rfind("```", 0, end) if end > 0 else -1
    return None if start == -1 else text[start:end + 3]


def extract_answer(response) -> str:
    """The answer part of a model response ("" when there is none)."""
    if not isinstance(response, str):
        return ""
    for open_tag, close_tag in (_BOX_TAGS, _ANSWER_TAGS):
        got = _last_pair(response, open_tag, close_tag)
        if got is not None:
            return _peel(got)
    got = _last_boxed(response)
    if got is not None:
        return _peel(got)
    k = response.rfind("Answer:")
    if k != -1:
        return _peel(response[k + len("Answer:"):].strip().strip("*"))
    k = response.rfind("</think>")
    if k != -1:
        response = response[k + len("</think>"):]
    fenced = _last_fence(response)
    return _peel(fenced if fenced is not None else response)
