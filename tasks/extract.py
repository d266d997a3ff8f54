"""Answer extraction, as the MM-HELIX evaluation does it.

In this order, always taking the LAST match:
  1. <|begin_of_box|> ... <|end_of_box|>
  2. <answer> ... </answer>
  3. \\boxed{...}   (nested braces; \\text{...} unwrapped)
  4. the text after the last "Answer:"
  5. the whole response (after a closing </think>, if there is one)
An empty extraction scores 0 (the caller sees "").

Every step is linear in the length of the response: no backtracking regex over the whole
text, so 100 kB of adversarial output is extracted in milliseconds.
"""
from __future__ import annotations

import re

_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|texttt|mathrm|mathbf|mbox)\s*\{")


def _last_pair(text: str, open_tag: str, close_tag: str) -> str | None:
    end = text.rfind(close_tag)
    while end != -1:
        start = text.rfind(open_tag, 0, end)
        if start != -1:
            return text[start + len(open_tag):end]
        end = -1  # no opening tag before the last closing one: no complete pair at all
    return None


def _last_boxed(text: str) -> str | None:
    # One pass to match braces, then take the last \boxed{ whose brace closes.
    match, stack = {}, []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            match[stack.pop()] = i
    pos = len(text)
    while True:
        pos = text.rfind("\\boxed", 0, pos)
        if pos == -1:
            return None
        j = pos + len("\\boxed")
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{" and j in match:
            return text[j + 1:match[j]]


def unwrap(text: str) -> str:
    """Remove \\text{...}-style wrappers (innermost first) and surrounding $ signs."""
    for _ in range(50):  # each pass removes one wrapper (its braces may nest); bounded anyway
        m = _WRAPPER.search(text)
        if not m:
            break
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:  # unclosed: leave the text as it is
            break
        text = text[:m.start()] + text[m.end():j - 1] + text[j:]
    text = text.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return text


def extract_answer(response) -> str:
    """The answer part of a model response ("" when there is none)."""
    if not isinstance(response, str):
        return ""
    for open_tag, close_tag in (("<|begin_of_box|>", "<|end_of_box|>"), ("<answer>", "</answer>")):
        got = _last_pair(response, open_tag, close_tag)
        if got is not None:
            return unwrap(got)
    got = _last_boxed(response)
    if got is not None:
        return unwrap(got)
    k = response.rfind("Answer:")
    if k != -1:
        return unwrap(response[k + len("Answer:"):].strip().strip("*").strip())
    k = response.rfind("</think>")
    if k != -1:
        response = response[k + len("</think>"):]
    return unwrap(response)
