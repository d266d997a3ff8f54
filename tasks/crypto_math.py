"""Crypto math: a letter addition such as `BGC+EGD=FDEA`; each letter is a different digit.

Solver: column-wise backtracking, units column first. In each column the letters of the
terms get digits (tried 0-9, skipping used digits and a leading zero); the column sum then
forces the result letter's digit and the carry. A clash (the forced digit is taken, or the
result letter already has another digit, or a carry is left over at the end) is a dead
end: undo the latest try and take the next digit.

Uniqueness is NOT required (decided here): the spec's verifier is a rule check, and
randomly drawn additions almost always have several solutions (typically 5 to 300; a
unique one is drawn about once in 10 to 400 tries, and those are biased towards few
letters). So any assignment that satisfies the rules passes; `meta['unique']` records
whether the instance happens to have exactly one solution (counted by the solver, up to 2).

Answer: `A=5, B=3, ...` (also the official gold form, a JSON object {"A": 5, ...}, and a
Python dict). Every letter of the puzzle exactly once, no other letters, digits distinct,
no leading zero on a word of more than one letter, and the sum holds.
"""
from __future__ import annotations

import re

from . import draw, formats
from ._algtrace import capped_steps
from .base import Task, parse_literal, step

# level -> (number of terms, digits per term, digits of the result)
LEVELS = {1: (2, 3, 4), 2: (2, 4, 5), 3: (3, 3, 4), 4: (3, 4, 5), 5: (3, 5, 6)}
MAX_ANSWER_CHARS = 400
# Read after quotes and whitespace are removed (`"A": 5` is `A:5`). Each item is letter, ':' or
# '=', digit, then an optional ',' or ';' that can never start the next item: one way to match,
# linear time. (Optional quotes on both sides of an item could end one item or start the next:
# 2^k ways to fail on k items, and 30 items never finished - issue 29.)
_ITEM_RE = re.compile(r"([A-Za-z])[:=](\d)")
_ANSWER_RE = re.compile(r"(?:[A-Za-z][:=]\d[,;]?)+")
_NO_QUOTES = str.maketrans("", "", "'\"")


def parse_equation(eq: str):
    """'BGC + EGD = FDEA' -> (['BGC', 'EGD'], 'FDEA'); raises ValueError if malformed."""
    if not isinstance(eq, str) or len(eq) > 200:
        raise ValueError("equation must be a short string")
    e = "".join(eq.split()).upper()
    if e.count("=") != 1:
        raise ValueError(f"expected one '=' in {eq!r}")
    lhs, result = e.split("=")
    terms = lhs.split("+")
    words = terms + [result]
    if len(terms) < 2 or not all(w and w.isascii() and w.isalpha() for w in words):
        raise ValueError(f"expected WORD+WORD(+...)=WORD, got {eq!r}")
    if len(set("".join(words))) > 10:
        raise ValueError("more than 10 letters")
    return terms, result


def letters_of(terms, result) -> list[str]:
    return sorted(set("".join(terms) + result))


def leading_letters(terms, result) -> set:
    return {w[0] for w in terms + [result] if len(w) > 1}


def word_value(word: str, val: dict) -> int:
    n = 0
    for ch in word:
        n = n * 10 + val[ch]
    return n


class _Search:
    """Column-wise backtracking. mode 'first' stops at one solution; 'count' counts up to
    `limit`. With record=True it keeps a trace of tries and dead ends for the skeleton."""

    def __init__(self, terms, result, record=False, limit=1):
        self.terms, self.result = terms, result
        self.width = max(len(w) for w in terms + [result])
        self.cols = []
        for c in range(self.width):
            self.cols.append(([t[-1 - c] for t in terms if c < len(t)],
                              result[-1 - c] if c < len(result) else None))
        self.leading = leading_letters(terms, result)
        # allowed digits per letter: no leading zero; and when the result is longer than
        # every term, its first letter is the final carry, at most (number of terms - 1)
        self.allowed = {L: (range(1, 10) if L in self.leading else range(10))
                        for L in letters_of(terms, result)}
        self.top = None
        if len(result) > max(len(t) for t in terms):
            self.top = result[0]
            self.allowed[self.top] = range(1, len(terms))
        self.val, self.used = {}, [False] * 10
        self.record, self.limit = record, limit
        self.events, self.path = [], []    # path: indices of the events of the current branch
        self.solutions = []

    def _ev(self, kind, text):
        if self.record:
            self.events.append([kind, text, False])
            return len(self.events) - 1
        return None

    def run(self):
        self._go(0, 0, 0, 0)
        return self.solutions

    def _done(self):
        return len(self.solutions) >= self.limit

    def _assign(self, letter, d, e):
        self.val[letter] = d
        self.used[d] = True
        self.path.append(e)

    def _unassign(self, letter, d):
        del self.val[letter]
        self.used[d] = False
        self.path.pop()

    def _go(self, col, k, s, carry):
        if col == self.width:
            if carry:
                self._ev("backtrack", f"A carry of {carry} is left after the last column; "
                                      f"undo.")
                return
            if not self.solutions and self.record:
                for e in self.path:
                    if e is not None:
                        self.events[e][2] = True
            self.solutions.append(dict(sorted(self.val.items())))
            return
        letters, res = self.cols[col]
        rec = self.record
        if k < len(letters):
            L = letters[k]
            if L in self.val:
                self._go(col, k + 1, s + self.val[L], carry)
                return
            later = letters[k + 1:]
            if (L not in later and L != res and all(x in self.val for x in later)
                    and (res is None or res in self.val)):
                # L is the column's last unknown and the result digit is known: L is forced
                want = 0 if res is None else self.val[res]
                rest = sum(self.val[x] for x in later)
                d = (want - s - rest - carry) % 10
                why = (f"Column {col + 1}: {res or 'the sum digit'} is {want}, so {L} must be "
                       f"{d}") if rec else ""
                if self.used[d] or d not in self.allowed[L]:
                    if rec:
                        self._ev("backtrack", f"{why}, but {self._why_not(L, d)}; undo.")
                    return
                e = self._ev("step", f"{why}.")
                self._assign(L, d, e)
                self._go(col, k + 1, s + d, carry)
                self._unassign(L, d)
                return
            tried = False
            for d in self.allowed[L]:
                if self.used[d]:
                    continue
                tried = True
                e = self._ev("step", f"Column {col + 1}: try {L} = {d}.") if rec else None
                self._assign(L, d, e)
                self._go(col, k + 1, s + d, carry)
                self._unassign(L, d)
                if self._done():
                    return
            if rec:
                self._ev("backtrack", f"Column {col + 1}: no digit left for {L}"
                                      f"{'' if tried else ' (all free digits excluded)'}; undo "
                                      f"the previous try.")
            return
        total = s + carry
        d, carry_out = total % 10, total // 10
        head = ""
        if rec:
            addends = " + ".join([str(self.val[x]) for x in letters]
                                 + ([str(carry)] if carry else [])) or "0"
            head = f"Column {col + 1}: {addends} = {total}, so {res or 'the sum digit'} = {d}"
        if res is None:
            if d != 0:
                self._ev("backtrack", f"{head}, but there is no result letter here; undo.")
                return
            self._go(col + 1, 0, 0, carry_out)
            return
        if res in self.val:
            if self.val[res] != d:
                self._ev("backtrack", f"{head}, but {res} is already {self.val[res]}; undo.")
                return
            e = self._ev("step", f"{head}, which agrees; carry {carry_out}.")
            self.path.append(e)
            self._go(col + 1, 0, 0, carry_out)
            self.path.pop()
            return
        if self.used[d] or d not in self.allowed[res]:
            if rec:
                self._ev("backtrack", f"{head}, but {self._why_not(res, d)}; undo.")
            return
        e = self._ev("step", f"{head}; carry {carry_out}.")
        self._assign(res, d, e)
        self._go(col + 1, 0, 0, carry_out)
        self._unassign(res, d)

    def _why_not(self, L, d):
        if self.used[d]:
            owner = next(x for x, v in self.val.items() if v == d)
            return f"{d} is already {owner}'s digit"
        if L == self.top:
            return f"{L} is the final carry, at most {len(self.terms) - 1}"
        return f"{L} leads a word and cannot be 0"


def solve_equation(eq: str, record=False, limit=1):
    terms, result = parse_equation(eq)
    s = _Search(terms, result, record=record, limit=limit)
    return s.run(), s


def format_assignment(val: dict) -> str:
    return ", ".join(f"{k}={val[k]}" for k in sorted(val))


def parse_assignment(text: str) -> dict | None:
    """'A=5, B=3', '{"A": 5, "B": 3}', "{'A': 5}" -> {'A': 5, 'B': 3}; None if malformed or a
    letter appears twice."""
    if len(text) > MAX_ANSWER_CHARS:
        return None
    t = "".join(text.split()).translate(_NO_QUOTES)
    if t[:1] == "{" and t[-1:] == "}":
        t = t[1:-1]
    if not _ANSWER_RE.fullmatch(t):
        return None
    out = {}
    for letter, digit in _ITEM_RE.findall(t):
        letter = letter.upper()
        if letter in out:
            return None
        out[letter] = int(digit)
    return out


class CryptoMath(Task):
    name = "crypto_math"
    official = "CryptoMath"
    group = "Algorithms"
    answer_shape = formats.MAPPING

    def make(self, rng, level):
        n_terms, tlen, rlen = LEVELS[level]
        while True:
            nums = [rng.randint(10 ** (tlen - 1), 10 ** tlen - 1) for _ in range(n_terms)]
            total = sum(nums)
            if len(str(total)) == rlen:
                break
        # one letter per digit used: the first letters of the alphabet, in a random order
        digits = sorted(set("".join(map(str, nums + [total]))))
        letters = [chr(ord("A") + i) for i in range(len(digits))]
        rng.shuffle(letters)
        code = dict(zip(digits, letters))
        enc = ["".join(code[ch] for ch in str(x)) for x in nums + [total]]
        eq = "+".join(enc[:-1]) + "=" + enc[-1]
        sols, _ = solve_equation(eq, limit=2)
        state = {"equation": eq}
        meta = {"terms": n_terms, "term_length": tlen, "result_length": rlen,
                "letters": len(digits), "unique": len(sols) == 1}
        return state, sols[0], meta

    def solve(self, state):
        sols, _ = solve_equation(self._eq(state))
        return sols[0] if sols else None

    def format_answer(self, solution) -> str:
        return format_assignment(solution)

    @staticmethod
    def _eq(state) -> str:
        return state["equation"] if isinstance(state, dict) else state

    def check(self, answer, state) -> bool:
        terms, result = parse_equation(self._eq(state))
        val = parse_assignment(answer)
        if val is None or sorted(val) != letters_of(terms, result):
            return False
        if len(set(val.values())) != len(val):
            return False
        if any(val[L] == 0 for L in leading_letters(terms, result)):
            return False
        return sum(word_value(t, val) for t in terms) == word_value(result, val)

    # ---- presentation -----------------------------------------------------------------
    def render(self, state):
        terms, result = parse_equation(self._eq(state))
        width = max(len(w) for w in terms + [result])
        cell, size = 56, 38
        cols = width + 1                       # one more column for the plus sign
        w = max(cols * cell + 120, 360)
        rows = len(terms) + 1
        h = 70 + rows * cell + 40
        img, d = draw.canvas(w, h)
        draw.title(d, w, "Letter addition: one digit per letter, all different", size=18, y=22)
        x_right = w - 60
        y0 = 60
        for r, word in enumerate(terms):
            y = y0 + r * cell + cell / 2
            for k, ch in enumerate(reversed(word)):
                draw.center_text(d, (x_right - (k + 0.5) * cell, y), ch, size=size)
            if r == len(terms) - 1:
                draw.center_text(d, (x_right - (width + 0.5) * cell, y), "+", size=size)
        y_line = y0 + len(terms) * cell + 4
        d.line([(x_right - (width + 1) * cell, y_line), (x_right, y_line)], fill=draw.BLACK,
               width=4)
        y = y_line + 6 + cell / 2
        for k, ch in enumerate(reversed(result)):
            draw.center_text(d, (x_right - (k + 0.5) * cell, y), ch, size=size, fill=draw.BLUE)
        return [img]

    def question(self, state, text_only=False) -> str:
        terms, result = parse_equation(self._eq(state))
        rules = ("Crypto math. In the letter addition every letter stands for one digit (0-9): "
                 "the same letter is always the same digit and different letters are "
                 "different digits. A word of more than one letter does not start with 0. "
                 "Find the digit of every letter so that the addition is correct.")
        if text_only:
            where = f"The addition is: {'+'.join(terms)}={result}"
        else:
            where = "The image shows the addition written in columns, the sum below the line."
        fmt = ("Answer with every letter and its digit, separated by commas, in the form "
               "`A=1, B=2, C=3` (one entry per letter of the puzzle).")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_to_str(self, state) -> str:
        return str({"equation": self._eq(state)})

    def state_from_str(self, text):
        t = text.strip()
        if "{" not in t and "=" in t:       # a bare equation
            parse_equation(t)
            return {"equation": t}
        v = parse_literal(t)
        if isinstance(v, dict):
            v = v.get("equation")
        parse_equation(v)
        return {"equation": v}

    def skeleton(self, state):
        eq = self._eq(state)
        terms, result = parse_equation(eq)
        sols, s = solve_equation(eq, record=True)
        val = sols[0]
        cols = []
        for c, (letters, res) in enumerate(s.cols):
            cols.append(f"column {c + 1}: {' + '.join(letters) or '(carry only)'} -> {res}")
        lead = ", ".join(sorted(leading_letters(terms, result)))
        steps = [
            step("rule", "Each letter is one digit, different letters are different digits, "
                         "and the first letter of a longer word is not 0. The addition must "
                         "hold."),
            step("rule", "Method: work column by column from the units. Give the letters of "
                         "the terms a digit (trying 0 upwards), then the column sum plus the "
                         "carry fixes the result letter and the next carry; on a clash, undo "
                         "the latest try and take the next digit."),
            step("read", f"The puzzle is {'+'.join(terms)}={result}; letters "
                         f"{', '.join(letters_of(terms, result))}; leading letters {lead}."),
            step("read", "Columns from the right (carry included in each): "
                         + "; ".join(cols) + "."),
        ]
        if s.top is not None:
            hi = len(terms) - 1
            steps.append(step("step", f"The sum is longer than every term, so its first letter "
                                      f"{s.top} is the final carry: "
                                      + (f"{s.top} = 1." if hi == 1 else f"{s.top} is 1 to {hi}.")))
        steps += capped_steps(s.events)
        nums = [word_value(t, val) for t in terms]
        steps.append(step("check", f"{' + '.join(map(str, nums))} = {sum(nums)} and "
                                   f"{result} = {word_value(result, val)}; the digits are all "
                                   f"different and no word starts with 0."))
        steps.append(step("answer", format_assignment(val)))
        return steps


TASK = CryptoMath()
