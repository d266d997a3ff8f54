r"""How real models write an answer, read in one place (every verifier goes through here).

    from tasks.formats import clean, grid_text, spaced
    clean("**up right**.")                      # 'up right'
    clean("```\n1 2\n2 1\n```")                # '1 2\n2 1'
    spaced(r"up\ right~left\quad down")         # 'up right left  down'
    grid_text(r"\begin{bmatrix}1 & 2 \\ 2 & 1\end{bmatrix}").split()   # ['1', '2', '2', '1'],
                                                # on two lines

`Task.verify` applies `clean` and `spaced` to every answer before the task parses it; grid
parsers call `grid_text`. Each helper only rewrites *presentation* (emphasis, code fences,
math delimiters, LaTeX spacing, LaTeX row breaks) into the plain form the task already
reads, so a rule-breaking answer stays rule-breaking. Every helper is a bounded number of
C-speed passes (regex, str methods) over the text: linear in its length.
"""
from __future__ import annotations

import re
from fractions import Fraction

MAX_PEEL = 8  # layers of enclosing markup removed at most (bounded time on '**' * 10**5)

# Enclosing pairs a model puts around a whole answer: emphasis, inline code, math.
_ENCLOSING = (("```", "```"), ("**", "**"), ("__", "__"), ("*", "*"), ("`", "`"),
              ("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_FENCE_LANG = re.compile(r"[A-Za-z][\w+.-]{0,19}[ \t]*\n")
# A leading "Answer:" label. Runs of blanks are matched by one quantifier each, never by two
# adjacent ones (`\s*(?:\*\*)?\s*` was quadratic in the blanks after "answer", issue 29).
_PREFIX = re.compile(r"(?:\*\*|__)?[ \t]*(?:final[ \t]+)?answer(?:[ \t]*(?:\*\*|__))?[ \t]*[:：]\s*"
                     r"(?:\*\*|__)?", re.IGNORECASE)


def _unfence(inner: str) -> str:
    """The body of a ```lang\\n...``` block: drop a language tag on the first line."""
    m = _FENCE_LANG.match(inner)
    return inner[m.end():] if m else inner


def strip_enclosing(text: str) -> str:
    """Drop markup that encloses the whole answer: **x**, *x*, __x__, `x`, ```x```, $x$,
    $$x$$, \\(x\\), \\[x\\], and a leading 'Answer:' label. At most MAX_PEEL layers."""
    t = text.strip()
    for _ in range(MAX_PEEL):
        m = _PREFIX.match(t)
        if m and m.end() < len(t):
            t = t[m.end():].strip()
        for o, c in _ENCLOSING:
            if len(t) >= len(o) + len(c) and t.startswith(o) and t.endswith(c):
                inner = t[len(o):len(t) - len(c)]
                t = (_unfence(inner) if o == "```" else inner).strip()
                break
        else:
            return t
    return t


def drop_full_stop(text: str) -> str:
    """'24.' -> '24', 'A=4, H=0.' -> 'A=4, H=0'. An ellipsis or a lone dot is kept."""
    t = text.rstrip()
    if len(t) >= 2 and t[-1] == "." and t[-2] != ".":
        return t[:-1].rstrip()
    return t


def clean(text: str, keep_dot: bool = False) -> str:
    """Enclosing Markdown / math dropped, then a trailing full stop (unless `keep_dot`: a
    task whose cells are written '.'), then enclosing markup again (`**x**.` -> x)."""
    t = strip_enclosing(text)
    if not keep_dot:
        t = strip_enclosing(drop_full_stop(t))
    return t


# LaTeX spacing between words or moves: '\ ', '~', '\quad', '\qquad', '\,', '\;', '\:', '\!'.
# A LaTeX row break '\\' is matched first and kept, so '\\ ' is not read as '\' + '\ '.
_SPACING = re.compile(r"\\\\|\\(?:qquad|quad|enspace|[ ,;:!])|~")
_ARROW = re.compile(r"\\(?:to|rightarrow|Rightarrow|longrightarrow|mapsto)(?![A-Za-z])")


def spaced(text: str) -> str:
    """LaTeX spacing commands read as a space; LaTeX arrows (\\to, \\rightarrow) as '->'."""
    if "\\" not in text and "~" not in text:
        return text
    text = _SPACING.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", text)
    return _ARROW.sub(" -> ", text)


_ENV = re.compile(r"\\(?:begin\{(?:[bpvBV]?matrix|array|smallmatrix|tabular)\}(?:\{[^{}]{0,100}\})?"
                  r"|end\{(?:[bpvBV]?matrix|array|smallmatrix|tabular)\})")
_ROWBREAK = re.compile(r"\\\\|\\cr(?![A-Za-z])|;")
_DROP = re.compile(r"\\(?:hline|left|right)(?![A-Za-z])")


def grid_text(text: str) -> str:
    """A grid in any common spelling as rows on lines: bmatrix/pmatrix/array environments
    (cells split by '&'), rows split by '\\\\\\\\' or ';', '\\\\left[ ... \\\\right]' dropped.

    '\\\\begin{bmatrix}1 & 2 \\\\\\\\ 2 & 1\\\\end{bmatrix}' -> '1 2\\n2 1'. Plain text passes
    unchanged (apart from ';' row breaks), so a grid's own parser decides what is valid."""
    if "\\" not in text and "&" not in text and ";" not in text:
        return text
    t = _ENV.sub("\n", text)
    t = _DROP.sub(" ", t)
    t = _ROWBREAK.sub("\n", t)
    return t.replace("&", " ")


_NUMBER = re.compile(r"[+-]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})")
_SPACE = re.compile(r"\s+")
MAX_COMPARED = 20_000  # characters: longer answers are not compared (bounded time)


def normalise(text: str, keep_dot: bool = False) -> str:
    """An answer written for comparison: presentation dropped (clean, spaced), lower case,
    no whitespace; an exact number in its lowest terms ('12.0' -> '12')."""
    t = spaced(clean(text, keep_dot=keep_dot))
    if _NUMBER.fullmatch(t):
        v = Fraction(t)
        return str(v.numerator) if v.denominator == 1 else str(v)
    return _SPACE.sub("", t).lower()


def same_answer(answer, reference, keep_dot: bool = False) -> bool:
    """True iff `answer` is `reference` once both are normalised (never raises)."""
    if not isinstance(answer, str) or not isinstance(reference, str):
        return False
    if len(answer) > MAX_COMPARED or len(reference) > MAX_COMPARED:
        return False
    a = normalise(answer, keep_dot)
    return bool(a) and a == normalise(reference, keep_dot)
