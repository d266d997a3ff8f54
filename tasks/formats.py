r"""How real models write an answer, read in one place (every verifier goes through here).

    from tasks.formats import clean, grid_text, read_answer, spaced
    clean("**up right**.")                      # 'up right'
    clean("```\n1 2\n2 1\n```")                # '1 2\n2 1'
    spaced(r"up\ right~left\quad down")         # 'up right left  down'
    grid_text(r"\begin{bmatrix}1 & 2 \\ 2 & 1\end{bmatrix}").split()   # ['1', '2', '2', '1'],
                                                # on two lines
    read_answer("x = 1,015", NUMBER)            # '1015'
    read_answer(r"\{(0,3), (1,1)\}", CELLS)    # '(0, 3), (1, 1)'

`Task.verify` passes every answer through `read_answer(text, task.answer_shape)` before the
task parses it. Each rule only rewrites *presentation* into the plain form the task already
reads, so a rule-breaking answer stays rule-breaking:

For every task, in this order:
  1. fullwidth forms (U+FF01-U+FF5E, the ideographic space) are their ASCII characters, and
     the minus sign U+2212 is '-'. Other compatibility characters (superscripts, ligatures,
     circled digits) are not read: 'x²' must not become 'x2'.
  2. enclosing Markdown, code fences, $...$ and \(...\), a leading "Answer:" label and a
     trailing full stop are dropped (`clean`; a full stop is kept where '.' is a cell).
  3. LaTeX layout: \{ \} and \lbrace \rbrace are braces; \left, \right, \big... are
     dropped; matrix/array/tabular environments, `\\` and \cr are line breaks, and then '&'
     is a space.
  4. LaTeX spacing (\ , ~, \quad, \, ...) is a space; arrows (\to, \rightarrow,
     \longrightarrow, \Rightarrow, \mapsto, → ⟶ ⇒ ⟹ ➔ ➜ ➡) are ' -> '.
Then by the shape of the task's answer (`Task.answer_shape`; a new task declares one and
inherits its rules):
  NUMBER    a single number. Thousands separators are read only in exact groups of three
            ('1,015', '12,345,678', '1{,}015'; '1,01', '1,0150' and '0,015' stay unread, so
            fail). A comma is a thousands separator only here: in every other shape it
            separates items.
            A label before it ('x = 14', 'max flow: 14': letters, '_' and spaces, then = or :)
            and unit words after it ('14 units', '14 \text{ units}': letters and spaces only)
            are dropped. Nothing else may surround the number: '14 or 15' fails.
  YES_NO    'Yes'/'No' (or True/False) followed by a one-line phrase of at most 200
            characters that does not hold the opposite word ('No such path exists',
            'Yes, they are isomorphic'; 'Yes, not isomorphic' and 'No... yes' fail).
  WALK      a vertex list, or No: a No-phrase as for YES_NO (a Yes-phrase is not a walk).
  VERTICES  a vertex list: arrows are already '->', which the parser reads.
  CELLS     an unordered set of (r, c) cells: every [a, b] or (a, b) is written (a, b) and the
            brackets and braces around the collection ({...}, [[...]], ((...)), \{...\})
            are dropped, when nothing but separators stands between the pairs.
  PAIRS     an ordered sequence of pairs (a snake path, hanoi moves): as CELLS, and an arrow
            between two pairs is a separator.
  EDGES     segments (a,b)-(c,d) (bridges with ':k'): [a, b] is (a, b), and an arrow
            between two pairs is the '-' of a segment.
  CELL_VALUES  (r,c):v entries: [r, c] is (r, c).
  GRID      rows of cells: brackets of any nesting are lists ('((1,2),(2,1))' is
            '[[1,2],[2,1]]'); the task's grid parser reads rows, matrices and 2D lists.
  MOVES     move words: an arrow between moves is a separator.
  MAPPING   letter=digit pairs: an arrow ('A \to 5') is '='.
  EXPRESSION, WORDS, WORD_AT: the shared rules only (their parsers read the rest).

Every helper is a bounded number of C-speed passes (str.translate, str methods, regexes without
nested or overlapping unbounded quantifiers) over text of at most MAX_ANSWER_CHARS: linear.
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


# ---- the shared normalisation layer (issue 29) -------------------------------------------
# Answer shapes: a task sets `answer_shape` to one of these, and read_answer applies its rules.
NUMBER, YES_NO, WALK, VERTICES = "number", "yes_no", "walk", "vertices"
CELLS, PAIRS, EDGES, CELL_VALUES, GRID = "cells", "pairs", "edges", "cell_values", "grid"
MOVES, MAPPING, EXPRESSION, WORDS, WORD_AT = "moves", "mapping", "expression", "words", "word_at"
SHAPES = (NUMBER, YES_NO, WALK, VERTICES, CELLS, PAIRS, EDGES, CELL_VALUES, GRID, MOVES, MAPPING,
          EXPRESSION, WORDS, WORD_AT)

# fullwidth ASCII (U+FF01-U+FF5E) and the ideographic space as ASCII, the minus sign as '-',
# and arrow characters as ' -> ': one str.translate pass
_CHARS = {0xFF01 + i: 0x21 + i for i in range(94)}
_CHARS.update({0x3000: " ", 0x2212: "-"})
_CHARS.update({ord(a): " -> " for a in "\u2192\u27f6\u21d2\u27f9\u2794\u279c\u27a1"})
# LaTeX layout: `\\` first, so that '\\{' is a row break and a brace, not '\' + '\{'
_LAYOUT = re.compile(r"\\\\|\\cr(?![A-Za-z])|\\[{}]|\\[lr]brace(?![A-Za-z])"
                     r"|\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])\.?|\\hline(?![A-Za-z])")
_LAYOUT_AS = {"\\\\": "\n", "\\cr": "\n", "\\{": "{", "\\}": "}", "\\lbrace": "{", "\\rbrace": "}"}


def layout(text: str) -> str:
    """LaTeX layout as plain text: \\{ \\} braces, \\left/\\right dropped, environments and
    row breaks as lines, then '&' (a column break) as a space."""
    if "\\" not in text:
        return text
    rows = "\\\\" in text or "\\begin" in text
    t = _ENV.sub("\n", text)
    t = _LAYOUT.sub(lambda m: _LAYOUT_AS.get(m.group(), " "), t)
    return t.replace("&", " ") if rows else t


# NUMBER: [label =|:] number [unit words]
_NUM_LABEL = re.compile(r"[A-Za-z][A-Za-z_ ]{0,40}[=:]")
# thousands: a first group of 1-3 digits not starting with 0 ('0,014' may mean 0.014), then
# groups of exactly three; anything else with a comma is not a number
_NUM_BODY = re.compile(r"[+-]?(?:[1-9]\d{0,2}(?:(?:,|\{,\})\d{3})+|\d{1,40})(?:\.\d{1,40})?")
_UNIT = re.compile(r"[A-Za-z][A-Za-z ]{0,40}")


def _number(t: str) -> str:
    s = t.strip()
    m = _NUM_LABEL.match(s)
    if m:
        s = s[m.end():].lstrip()
    m = _NUM_BODY.match(s)
    if not m:
        return t
    rest = s[m.end():].strip()
    if rest and not _UNIT.fullmatch(rest):
        return t
    return m.group().replace("{,}", "").replace(",", "")


# YES_NO and WALK: a Yes/No word, then a short phrase without the opposite word
_YES_NO_HEAD = re.compile(r"(yes|no|true|false)(?![A-Za-z0-9])", re.IGNORECASE)
_WORD = re.compile(r"[a-z']+")
_AGAINST = {"yes": {"no", "not", "false", "isn't", "aren't", "non", "cannot", "can't", "never",
                    "nonisomorphic", "neither"},
            "no": {"yes", "true"}}


def _yes_no(t: str, yes: bool = True) -> str:
    s = t.strip()
    m = _YES_NO_HEAD.match(s)
    if not m:
        return t
    word = "yes" if m.group(1).lower() in ("yes", "true") else "no"
    rest = s[m.end():]
    if not rest or (word == "yes" and not yes) or len(rest) > 200 or "\n" in rest:
        return t
    if _AGAINST[word] & set(_WORD.findall(rest.lower())):
        return t
    return "Yes" if word == "yes" else "No"


# CELLS, PAIRS, EDGES, CELL_VALUES: integer pairs in parentheses or brackets
_ANY_PAIR = re.compile(r"[(\[][ \t]*([+-]?\d{1,6})[ \t]*,[ \t]*([+-]?\d{1,6})[ \t]*[)\]]")
_SET_RESIDUE = re.compile(r"[\s,;\[\](){}]*")
_SEQ_RESIDUE = re.compile(r"[\s,;\[\](){}>-]*")
_ARROW_BETWEEN = re.compile(r"\)[ \t]*->[ \t]*\(")


def _pair(m) -> str:
    return f"({m.group(1)}, {m.group(2)})"


def _pairs(t: str, residue) -> str:
    """Every pair as (a, b), joined by ', ' (or by ' ' for a sequence), when only brackets
    and separators (`residue`) stand between and around them; else `t` unchanged."""
    pairs = [_pair(m) for m in _ANY_PAIR.finditer(t)]
    if not pairs or not residue.fullmatch(_ANY_PAIR.sub(" ", t)):
        return t
    return (", " if residue is _SET_RESIDUE else " ").join(pairs)


def _cells(t: str) -> str:
    return _pairs(t, _SET_RESIDUE)


def _sequence(t: str) -> str:
    return _pairs(t, _SEQ_RESIDUE)


def _edges(t: str) -> str:
    return _ARROW_BETWEEN.sub(")-(", _ANY_PAIR.sub(_pair, t))


def _cell_values(t: str) -> str:
    return _ANY_PAIR.sub(_pair, t)


def _grid(t: str) -> str:
    return t.translate(_GRID_BRACKETS)


_GRID_BRACKETS = {ord("("): "[", ord(")"): "]"}


def _moves(t: str) -> str:
    return t.replace("->", " ")


def _mapping(t: str) -> str:
    return t.replace("->", "=")


_BY_SHAPE = {NUMBER: _number, YES_NO: _yes_no, WALK: lambda t: _yes_no(t, yes=False),
             CELLS: _cells, PAIRS: _sequence, EDGES: _edges, CELL_VALUES: _cell_values,
             GRID: _grid, MOVES: _moves, MAPPING: _mapping}


def read_answer(text: str, shape: str | None = None, keep_dot: bool = False) -> str:
    """`text` with its presentation read as the plain form a task parses (the rules are in
    this module's docstring): shared rules first, then those of `shape`."""
    t = clean(text.translate(_CHARS), keep_dot=keep_dot)
    t = spaced(layout(t))
    rule = _BY_SHAPE.get(shape)
    if rule is not None:
        t = rule(t)
    return t.strip()


_NUMBER = re.compile(r"[+-]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})")
_SPACE = re.compile(r"\s+")
MAX_COMPARED = 20_000  # characters: longer answers are not compared (bounded time)


def normalise(text: str, keep_dot: bool = False, shape: str | None = None) -> str:
    """An answer written for comparison: presentation dropped (read_answer with the task's
    shape), lower case, no whitespace; an exact number in its lowest terms ('12.0' -> '12')."""
    t = read_answer(text, shape, keep_dot=keep_dot)
    if _NUMBER.fullmatch(t):
        v = Fraction(t)
        return str(v.numerator) if v.denominator == 1 else str(v)
    return _SPACE.sub("", t).lower()


def same_answer(answer, reference, keep_dot: bool = False, shape: str | None = None) -> bool:
    """True iff `answer` is `reference` once both are normalised (never raises)."""
    if not isinstance(answer, str) or not isinstance(reference, str):
        return False
    if len(answer) > MAX_COMPARED or len(reference) > MAX_COMPARED:
        return False
    a = normalise(answer, keep_dot, shape)
    return bool(a) and a == normalise(reference, keep_dot, shape)
