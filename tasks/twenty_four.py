"""24 points: combine four numbers with + - × ÷ and brackets to make exactly 24.

Solver: the classic search. Pick two of the numbers left, replace them by their sum,
difference, product or quotient, and recurse until one number is left; sets of numbers
already shown to fail are remembered and skipped. Arithmetic is exact (Fraction), so
8 ÷ (3 - 8 ÷ 3) is 24, not 23.999999999999982.

Verifier: its own tokenizer and recursive-descent parser (never eval). It accepts
`× ÷ * / x X · \\times \\div \\cdot`, brackets `( ) [ ] { }` and `\\frac{a}{b}`, and an
optional trailing `= 24`. Every number of the instance must be used exactly once (as
a multiset; `8.0` counts as 8), the value must be exactly 24, and division by zero
fails. Decided here: no unary minus or plus (a leading `-` would turn a given number
into a new one), no powers, no concatenation of digits, no implicit multiplication.
Size is bounded: at most 300 characters, bracket depth 20, and no more numbers than
the instance has.
"""
from __future__ import annotations

from fractions import Fraction

from . import draw, formats
from ._algtrace import capped_steps
from .base import Task, parse_literal, step

TARGET = 24
# level -> (smallest number, largest number, distinct numbers only)
LEVELS = {1: (1, 9, False), 2: (1, 13, False), 3: (1, 20, False), 4: (1, 20, True),
          5: (3, 25, True)}
MAX_EXPR_CHARS = 300
MAX_DEPTH = 20
SYM = {"+": "+", "-": "-", "*": "×", "/": "÷"}
PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


# ---- expressions: a tree is an int (a given number) or [op, left, right] -----------------
def to_text(tree) -> str:
    """The tree with as few brackets as the usual precedence rules need: `(9 - 3) × 8 ÷ 2`."""
    if not isinstance(tree, list):
        return str(tree)
    op, left, right = tree
    lt, rt = to_text(left), to_text(right)
    if isinstance(left, list) and PREC[left[0]] < PREC[op]:
        lt = f"({lt})"
    if isinstance(right, list) and (PREC[right[0]] < PREC[op]
                                    or (PREC[right[0]] == PREC[op] and op in "-/")):
        rt = f"({rt})"
    return f"{lt} {SYM[op]} {rt}"


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _op(v: Fraction) -> str:
    """An operand in a worked line: negatives and fractions in brackets, `6 × (-4)`."""
    t = _fmt(v)
    return f"({t})" if v < 0 or v.denominator != 1 else t


def _combos(a, b):
    """Every way to combine two (value, tree) items: + and × once, - and ÷ both ways
    (the larger number first, so the natural choices come first)."""
    if a[0] < b[0]:
        a, b = b, a
    (va, ta), (vb, tb) = a, b
    yield "+", ta, tb, va + vb
    yield "*", ta, tb, va * vb
    yield "-", ta, tb, va - vb
    if vb != 0:
        yield "/", ta, tb, va / vb
    if va != vb:
        yield "-", tb, ta, vb - va
        if va != 0:
            yield "/", tb, ta, vb / va


def _lst(items) -> str:
    return "[" + ", ".join(_fmt(v) for v, _ in items) + "]"


class _Search:
    """Depth-first search over pairs; `events` is the trace the skeleton is built from."""

    def __init__(self, record: bool):
        self.record = record
        self.events = []     # [kind, text, on_path]
        self.dead = set()    # sorted value tuples known to fail
        self.nodes = 0

    def _ev(self, kind, text):
        if self.record:
            self.events.append([kind, text, False])
            return len(self.events) - 1
        return None

    def run(self, items):
        n = len(items)
        if n == 1:
            return items[0][1] if items[0][0] == TARGET else None
        if n == 2:
            return self._last_pair(items[0], items[1])
        for i in range(n):
            for j in range(i + 1, n):
                rest = [items[k] for k in range(n) if k not in (i, j)]
                for op, l, r, v in _combos(items[i], items[j]):
                    new = rest + [(v, [op, l, r])]
                    key = tuple(sorted(x for x, _ in new))
                    if key in self.dead:
                        continue
                    self.nodes += 1
                    e = None
                    if self.record:
                        desc = f"{_op(_val(l))} {SYM[op]} {_op(_val(r))} = {_fmt(v)}"
                        e = self._ev("step", f"Combine {desc}: left with {_lst(new)}.")
                    found = self.run(new)
                    if found is not None:
                        if e is not None:
                            self.events[e][2] = True
                        return found
                    self.dead.add(key)
        self._ev("backtrack", f"No pair from {_lst(items)} leads to 24: this branch is a "
                              f"dead end; undo the last combination.")
        return None

    def _last_pair(self, a, b):
        tried = []
        for op, l, r, v in _combos(a, b):
            self.nodes += 1
            tried.append(f"{_op(_val(l))} {SYM[op]} {_op(_val(r))} = {_fmt(v)}")
            if v == TARGET:
                e = self._ev("step", f"From {_lst([a, b])}: {tried[-1]}. That is 24.")
                if e is not None:
                    self.events[e][2] = True
                return [op, l, r]
        self._ev("backtrack", f"From {_lst([a, b])}: {'; '.join(tried)}. None is 24; undo.")
        return None


def _val(tree) -> Fraction:
    if not isinstance(tree, list):
        return Fraction(tree)
    op, l, r = tree
    a, b = _val(l), _val(r)
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b


def _maybe_solvable(vals) -> bool:
    """A quick float screen used by the generator: exact solutions always pass it (float
    error is ~1e-14, far inside the tolerance); the exact search then confirms."""
    if len(vals) == 1:
        return abs(vals[0] - TARGET) < 1e-6
    n = len(vals)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = vals[i], vals[j]
            rest = [vals[k] for k in range(n) if k != i and k != j]
            outs = [a + b, a * b, a - b, b - a]
            if b:
                outs.append(a / b)
            if a:
                outs.append(b / a)
            for v in outs:
                if _maybe_solvable(rest + [v]):
                    return True
    return False


def solve_numbers(numbers, record=False):
    s = _Search(record)
    tree = s.run([(Fraction(x), x) for x in numbers])
    return tree, s


# ---- the verifier's parser ---------------------------------------------------------------
class _Bad(Exception):
    pass


_CHAR_OPS = {"+": "+", "-": "-", "\u2212": "-", "\u2013": "-", "*": "*", "\u00d7": "*",
             "x": "*", "X": "*", "\u00b7": "*", "\u2217": "*", "/": "/", "\u00f7": "/"}
_CMD = {"times": "*", "cdot": "*", "ast": "*", "div": "/", "frac": "frac", "dfrac": "frac",
        "tfrac": "frac", "left": None, "right": None, "big": None, "Big": None, "bigl": None,
        "bigr": None, "Bigl": None, "Bigr": None}
_OPEN, _CLOSE = "([{", ")]}"


def tokenize(text: str) -> list:
    """Tokens: ('num', Fraction), ('op', '+-*/'), ('open'|'close', bracket), ('frac',), ('eq',)."""
    toks, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif "0" <= c <= "9":
            j = i
            while j < n and "0" <= text[j] <= "9":
                j += 1
            if j < n and text[j] == "." and j + 1 < n and "0" <= text[j + 1] <= "9":
                j += 1
                while j < n and "0" <= text[j] <= "9":
                    j += 1
            if j - i > 12:
                raise _Bad("number too long")
            toks.append(("num", Fraction(text[i:j])))
            i = j
        elif c in _CHAR_OPS:
            toks.append(("op", _CHAR_OPS[c]))
            i += 1
        elif c in _OPEN:
            toks.append(("open", c))
            i += 1
        elif c in _CLOSE:
            toks.append(("close", c))
            i += 1
        elif c == "=":
            toks.append(("eq",))
            i += 1
        elif c == "\\":
            j = i + 1
            while j < n and text[j].isascii() and text[j].isalpha():
                j += 1
            name = text[i + 1:j]
            if not name:  # \, \; \! \  are spacing; \{ \} are braces
                if j < n and text[j] in ",;! ":
                    i = j + 1
                    continue
                if j < n and text[j] in "{}":
                    toks.append(("open" if text[j] == "{" else "close", text[j]))
                    i = j + 1
                    continue
                raise _Bad("stray backslash")
            if name not in _CMD:
                raise _Bad(f"unknown command \\{name}")
            kind = _CMD[name]
            if kind == "frac":
                toks.append(("frac",))
            elif kind is not None:
                toks.append(("op", kind))
            i = j
        else:
            raise _Bad(f"unexpected character {c!r}")
    return toks


class _Parser:
    def __init__(self, toks):
        self.toks, self.i, self.depth, self.numbers = toks, 0, 0, []

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("end",)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def expr(self) -> Fraction:
        v = self.term()
        while self.peek()[0] == "op" and self.peek()[1] in "+-":
            op = self.take()[1]
            w = self.term()
            v = v + w if op == "+" else v - w
        return v

    def term(self) -> Fraction:
        v = self.factor()
        while self.peek()[0] == "op" and self.peek()[1] in "*/":
            op = self.take()[1]
            w = self.factor()
            if op == "*":
                v = v * w
            elif w == 0:
                raise _Bad("division by zero")
            else:
                v = v / w
        return v

    def group(self, opening=None) -> Fraction:
        t = self.take()
        if t[0] != "open" or (opening and t[1] != opening):
            raise _Bad("expected an opening bracket")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Bad("brackets nested too deep")
        v = self.expr()
        c = self.take()
        if c[0] != "close" or _OPEN.index(t[1]) != _CLOSE.index(c[1]):
            raise _Bad("brackets do not match")
        self.depth -= 1
        return v

    def factor(self) -> Fraction:
        t = self.peek()
        if t[0] == "num":
            self.take()
            self.numbers.append(t[1])
            return t[1]
        if t[0] == "open":
            return self.group()
        if t[0] == "frac":
            self.take()
            num = self.group("{")
            den = self.group("{")
            if den == 0:
                raise _Bad("division by zero")
            return num / den
        # a unary sign, an operator where a number belongs, or the end: not an expression
        raise _Bad(f"expected a number or a bracket, got {t!r}")


def evaluate(text: str, max_numbers: int = 4):
    """(value, numbers used) of an expression; raises _Bad if it is not a valid one."""
    if len(text) > MAX_EXPR_CHARS:
        raise _Bad("too long")
    toks = tokenize(text)
    if sum(1 for t in toks if t[0] == "num") > max_numbers + 1:  # +1: a trailing "= 24"
        raise _Bad("too many numbers")
    if len(toks) >= 2 and toks[-2] == ("eq",) and toks[-1] == ("num", Fraction(TARGET)):
        toks = toks[:-2]
    p = _Parser(toks)
    v = p.expr()
    if p.i != len(toks):
        raise _Bad(f"unexpected {p.peek()!r} after the expression")
    return v, p.numbers


class TwentyFour(Task):
    name = "twenty_four"
    official = "24Points"
    group = "Algorithms"
    answer_shape = formats.EXPRESSION

    def make(self, rng, level):
        lo, hi, distinct = LEVELS[level]
        while True:
            if distinct:
                nums = rng.sample(range(lo, hi + 1), 4)
            else:
                nums = [rng.randint(lo, hi) for _ in range(4)]
            nums.sort()
            if not _maybe_solvable([float(x) for x in nums]):
                continue
            tree, s = solve_numbers(nums)
            if tree is not None:
                break
        state = {"numbers": nums}
        meta = {"min_number": lo, "max_number": hi, "distinct": distinct,
                "search_nodes": s.nodes}
        return state, tree, meta

    def solve(self, state):
        return solve_numbers(self._numbers(state))[0]

    def format_answer(self, solution) -> str:
        return to_text(solution)

    @staticmethod
    def _numbers(state):
        return list(state["numbers"]) if isinstance(state, dict) else list(state)

    def check(self, answer, state) -> bool:
        nums = self._numbers(state)
        try:
            value, used = evaluate(answer, len(nums))
        except (_Bad, ValueError, ZeroDivisionError):
            return False
        return value == TARGET and sorted(used) == sorted(Fraction(x) for x in nums)

    # ---- presentation -----------------------------------------------------------------
    def render(self, state):
        nums = self._numbers(state)
        card_w, card_h, gap = 120, 160, 30
        w = 4 * card_w + 5 * gap
        img, d = draw.canvas(w, card_h + 90)
        # (the bundled font has no × or ÷ glyphs, so the title spells the operations as * /)
        draw.title(d, w, "Make 24: use every number once, with + - * / and brackets",
                   size=18, y=24)
        for k, v in enumerate(nums):
            x0 = gap + k * (card_w + gap)
            y0 = 60
            d.rounded_rectangle([x0, y0, x0 + card_w, y0 + card_h], radius=14,
                                fill=(250, 248, 240), outline=draw.BLACK, width=3)
            draw.center_text(d, (x0 + card_w / 2, y0 + card_h / 2), v, size=56, fill=draw.BLUE)
        return [img]

    def question(self, state, text_only=False) -> str:
        rules = ("24 points. You are given four numbers. Combine all of them with addition (+), "
                 "subtraction (-), multiplication (×) and division (÷), using brackets as you "
                 "like, so that the result is exactly 24. Each number must be used exactly once; "
                 "no other operations are allowed (no powers, no joining digits into a bigger "
                 "number, no minus sign in front of a number or a bracket). Division may produce "
                 "fractions along the way; only the final value must be exactly 24.")
        if text_only:
            where = f"The numbers are: {', '.join(str(x) for x in self._numbers(state))}."
        else:
            where = "The image shows the four numbers, one on each card."
        fmt = ("Answer with a single arithmetic expression that uses the four numbers, written "
               "like `(a - b) × c ÷ d` with the numbers in place of the letters (* and / may be "
               "used for × and ÷).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state) -> str:
        return str({"numbers": self._numbers(state)})

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):
            v = v.get("numbers")
        if (not isinstance(v, list) or len(v) != 4
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            raise ValueError(f"24Points: expected four integers, got {text[:60]!r}")
        return {"numbers": v}

    def skeleton(self, state):
        nums = self._numbers(state)
        tree, s = solve_numbers(nums, record=True)
        steps = [
            step("rule", "Use each of the four numbers exactly once with + - × ÷ and brackets "
                         "to reach exactly 24; fractions are fine in between."),
            step("rule", "Method: pick two of the numbers still left, replace them by their "
                         "sum, a difference, the product or a quotient, and repeat until one "
                         "number is left. If that is not 24, undo and try the next choice; a "
                         "set of numbers that already failed is not tried again."),
            step("read", f"The numbers are {', '.join(str(x) for x in nums)}."),
        ]
        steps += capped_steps(s.events)
        answer = to_text(tree)
        steps.append(step("check", f"{answer}: it uses {', '.join(str(x) for x in sorted(nums))} "
                                   f"once each and evaluates to {_fmt(_val(tree))}."))
        steps.append(step("answer", answer))
        return steps


TASK = TwentyFour()
