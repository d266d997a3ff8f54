r"""Answer extraction: the one rule for the final answer (issue 29).

    from tasks import extract_answer
    extract_answer("<think>...</think><answer>The max flow is \\boxed{8}.</answer>")   # '8'

The rule. A reflective model revises its answer, so the reward follows the revision:
  1. Where: the text after the last </think> when anything but blanks follows it; else the
     text before it (the reasoning; the whole reply when there is no </think>). Only the last
     TAIL characters of that text are read.
  2. What: the LAST answer marker by position (where it starts), of any kind:
       <|begin_of_box|> ... <|end_of_box|>   (GLM's box tokens)
       <answer> ... </answer>
       \\boxed{ ... }                        (nested braces; `\\boxed {` too)
       an "Answer:" label: "Answer", "ANSWER", or "final answer" in any case, then ':' or '：',
         with Markdown emphasis around it allowed (**Answer:**, **Final Answer**:); it holds
         the text after it, up to the end, or up to the close of the tag or box that holds it.
         (A lowercase "answer:" alone is prose: "let me check the answer: ...".)
     A marker that never closes is no marker. So a box inside the reasoning is not the answer
     when text follows </think>; `Tentatively \\boxed{14}. Final Answer: 15` is 15;
     `<answer>14</answer> ... \\boxed{15}` is 15; and `Final answer: \\boxed{15}` is 15 (the box
     starts later). A marker inside the chosen one starts later still, so
     `<answer>The max flow is \\boxed{8}.</answer>` is 8.
  3. No marker: the text after the last "answer is" / "answer:" (any case: "The final answer
     is 15.") or the last ``` fenced block, whichever starts later; else the whole text. This
     holds for the text after </think> (or a reply without one); in the reasoning only a
     marker is an answer, and without one the answer is empty.
  Then the answer is peeled, at most MAX_DEPTH times: a marker inside it is taken by the same
  rule, \\text{...}-style wrappers are removed, and enclosing Markdown, $...$ and a leading
  "Answer:" are dropped (formats.strip_enclosing). An empty last box is an empty answer and
  scores 0, even after an earlier non-empty one.

Time: the reply itself is touched only by str.rfind and slicing (C speed, linear); everything
else reads at most TAIL characters: regex scans without nested or overlapping unbounded
quantifiers, box matching by C-level depth counting (each character counted once), and Python
steps only per marker found and per brace inside an answer of at most MAX_ANSWER_CHARS (when
\\text{}-style wrappers are removed). So no reply, however long or odd, costs more than a
bounded amount of work: about 15 ms at worst on the shared 2-core development machine.
"""
from __future__ import annotations

import re
from array import array
from itertools import accumulate

from .base import MAX_ANSWER_CHARS
from .formats import strip_enclosing

# The final answer lies within the last TAIL characters of the text it is read from. Why
# 50,000: the longest gold answer of any task is under 400 characters, and a verifier refuses
# any answer over MAX_ANSWER_CHARS (20,000), so a real answer with its marker and a closing
# remark fits with room to spare (2.5 x MAX_ANSWER_CHARS); a reply whose answer is followed by
# more than 50,000 characters of other text has no final answer. The guard holds whatever a
# task adds later: extraction never reads more than this, and a parser never more than
# MAX_ANSWER_CHARS.
TAIL = 50_000
MAX_DEPTH = 8        # nested markers peeled at most (<answer>\boxed{\text{$x$}}</answer> is 4)
_THINK_END = "</think>"
_TAGS = (("<|begin_of_box|>", "<|end_of_box|>"), ("<answer>", "</answer>"))
_BOX = re.compile(r"\\boxed[ \t]*\{")
_BRACE = re.compile(r"[{}]")
# '{' -> +1, '}' -> -1 (0xFF as a signed byte), anything else 0: a brace depth step per character
_DEPTH = bytes(1 if b == ord("{") else 255 if b == ord("}") else 0 for b in range(256))
# "Answer:" labels; each run of blanks is one bounded quantifier, so a scan is linear
_LABEL = re.compile(r"(?:(?:[Ff]inal|FINAL)[ \t]{1,3}(?:[Aa]nswer|ANSWER)|Answer|ANSWER)"
                    r"(?:\*\*|__|\*)?[ \t]{0,3}[:：](?:\*\*|__)?")
_WEAK_LABEL = re.compile(r"answer[ \t]{1,3}is(?![A-Za-z])[ \t]{0,3}:?|answer[ \t]{0,3}[:：]",
                         re.IGNORECASE)
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|"
                      r"mathtt|mathsf|operatorname|mbox|hbox)\s*\{")


def region(response: str) -> tuple[str, bool]:
    """The part of a reply the answer is read from (rule 1), at most TAIL characters, and
    whether it is the reasoning (nothing but blanks after the last </think>)."""
    k = response.rfind(_THINK_END)
    if k == -1:
        return response[-TAIL:], False
    after = response[k + len(_THINK_END):]
    if after and not after.isspace():
        return after[-TAIL:], False
    return response[max(0, k - TAIL):k], True


def _last_tag(text: str, open_tag: str, close_tag: str):
    """(start, content start, content end) of the complete tag pair that starts last: the
    last opening before the last closing, up to the first closing after it. None when there
    is no complete pair."""
    end = text.rfind(close_tag)
    if end == -1:
        return None
    start = text.rfind(open_tag, 0, end)
    if start == -1:
        return None
    return start, start + len(open_tag), text.find(close_tag, start + len(open_tag))


def _last_box(text: str):
    """(start, content start, content end) of the \\boxed{...} that starts last among those
    whose brace closes; None when none closes.

    Candidates are tried from the end. A candidate's brace closes where the brace depth, counted
    from it, first falls back to zero: found at C speed (the depth of every character is an
    itertools.accumulate over a signed byte array, then list.index). A candidate that never
    closes holds every candidate before it that could close, so the search for those stops at
    it: each character is counted once, whatever the number of candidates."""
    starts = [m.start() for m in _BOX.finditer(text)]
    stop = len(text)
    for start in reversed(starts):
        brace = text.index("{", start)
        seg = text[brace:stop]
        if "}" in seg:
            depth = list(accumulate(array("b", seg.encode("ascii", "replace").translate(_DEPTH))))
            try:
                k = depth.index(0)
                return start, brace + 1, brace + k
            except ValueError:
                pass
        stop = brace
    return None


def _last_label(text: str):
    last = None
    for last in _LABEL.finditer(text):
        pass
    return last


def _unclosed_tail(content: str) -> str:
    """A label's text cut at the '}' that closes a group opened before the label
    (`\\boxed{\\text{Answer: 15}}`: the label holds '15', not '15}')."""
    extra = content.count("}") - content.count("{")
    if extra <= 0:
        return content
    body = content.rstrip()
    closers = len(body) - len(body.rstrip("}"))
    return body[:len(body) - min(extra, closers)]


def last_marker(text: str) -> str | None:
    """The content of the last answer marker of `text` by position (rule 2), or None."""
    found = [m for m in (*(_last_tag(text, o, c) for o, c in _TAGS), _last_box(text)) if m]
    label = _last_label(text)
    if label is not None and all(label.start() > m[0] for m in found):
        # a label inside a tag or box ends where that tag or box ends
        end = min([m[2] for m in found if m[2] > label.start()] + [len(text)])
        return _unclosed_tail(text[label.end():end])
    if not found:
        return None
    start, a, b = max(found)
    return text[a:b]


def _fallback(text: str) -> str:
    """Rule 3: no marker. The text after the last 'answer is' or the last fenced block,
    whichever starts later; else the whole text."""
    weak = None
    for weak in _WEAK_LABEL.finditer(text):
        pass
    end = text.rfind("```")
    start = text.rfind("```", 0, end) if end > 0 else -1
    if start != -1 and (weak is None or start > weak.start()):
        return text[start:end + 3]
    return text[weak.end():] if weak is not None else text


def unwrap(text: str) -> str:
    """Remove \\text{...}-style wrappers (their braces may nest) and surrounding $ signs.

    One pass over the braces with a stack: the opening of a wrapper and its own closing brace
    are dropped; other braces are kept; a wrapper that never closes is left as it is."""
    if "\\" in text and len(text) <= MAX_ANSWER_CHARS:
        opens = {m.end() - 1: m.start() for m in _WRAPPER.finditer(text)}
        if opens:
            stack, cut = [], []       # cut: (start, end) spans to delete
            for m in _BRACE.finditer(text):
                i = m.start()
                if m.group() == "{":
                    stack.append(i)
                elif stack:
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
        if len(ans) > MAX_ANSWER_CHARS:
            return ans   # too long to be an answer: left to be rejected, unscanned
        before = ans
        got = last_marker(ans)
        if got is not None:
            ans = got
        ans = unwrap(ans)
        if ans == before:
            break
    return ans


def extract_answer(response) -> str:
    """The answer part of a model response ("" when there is none)."""
    if not isinstance(response, str):
        return ""
    text, reasoning = region(response)
    got = last_marker(text)
    if got is None:
        if reasoning:
            return ""       # in the reasoning only a marker is an answer
        got = _fallback(text)
    return _peel(got)
