"""The interface every task implements, and the small parsing helpers they share.

A task is a module in `tasks/` that defines `TASK = SomeTask()`, a subclass of `Task`.
An instance is a pure function of (task, level, seed):

    inst = TASK.generate(level=3, seed=7)     # Instance(state=public, solution=private)
    TASK.answer(inst)                          # the solver's answer in the official format
    TASK.verify(text, inst.state)              # True iff `text` is a valid answer (never raises)
    TASK.render(inst.state)                    # [PIL.Image, ...]
    TASK.question(inst.state, text_only=False) # rules + answer format (state only in the image)
    TASK.skeleton(inst.state)                  # the solver's steps, for SERG (elicit.py)

`state` is what the model is shown (JSON-able); `solution` is what the solver found (JSON-able,
never shown). Verifiers check the rules against `state`; they never compare strings with the
stored answer unless the answer is unique by construction (a number, Yes/No).

This module imports no torch: a verifier can be used anywhere.
"""
from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .formats import read_answer

GROUPS = ("Algorithms", "Graphs", "Puzzles", "Games")
LEVELS = (1, 2, 3, 4, 5)
MAX_ANSWER_CHARS = 20_000   # longer "answers" are rejected before any parsing (bounded time)
MAX_LITERAL_CHARS = 200_000  # state strings and answers parsed as Python/JSON literals


@dataclass
class Instance:
    task: str
    level: int
    seed: int
    state: Any                 # public: everything the question/image shows
    solution: Any              # private: one valid answer, as the solver found it
    meta: dict = field(default_factory=dict)  # level knobs and facts (sizes, optimal length...)


def step(kind: str, text: str) -> dict:
    """One skeleton step. kind: 'rule' | 'read' | 'step' | 'backtrack' | 'check' | 'answer'.

    Steps of kind 'step', 'backtrack' and 'check' are anchors: SERG rewrites must keep them.
    """
    return {"kind": kind, "text": text}


ANCHOR_KINDS = ("step", "backtrack", "check")


class Task:
    """Base class. Subclasses set the class attributes and implement the methods marked."""

    name: str = ""          # our name, also the module name: e.g. "24points"
    official: str = ""      # the official dataset `category`, e.g. "24Points"
    group: str = ""         # one of GROUPS
    n_images: int = 1       # images per instance (graph isomorphism: 2)
    dot_is_cell: bool = False  # answers write cells as '.', so a trailing '.' is not a full stop
    answer_shape: str = ""     # one of formats.SHAPES: which spelling rules read its answers

    # ---- to implement -------------------------------------------------------------------
    def make(self, rng: random.Random, level: int) -> tuple[Any, Any, dict]:
        """Draw a public state for `level` with `rng`; return (state, solution, meta)."""
        raise NotImplementedError

    def solve(self, state: Any) -> Any:
        """The reference solver: a solution for `state` (None if there is none)."""
        raise NotImplementedError

    def format_answer(self, solution: Any) -> str:
        """A solution written in the official answer format (what goes inside \\boxed{})."""
        raise NotImplementedError

    def check(self, answer: str, state: Any) -> bool:
        """The rule check; may raise on malformed input (verify() turns that into False)."""
        raise NotImplementedError

    def render(self, state: Any) -> list:
        """The state drawn as `n_images` PIL images."""
        raise NotImplementedError

    def question(self, state: Any, text_only: bool = False) -> str:
        """Rules and answer format; with text_only the state is written out as text."""
        raise NotImplementedError

    def skeleton(self, state: Any) -> list[dict]:
        """The solver's reasoning as steps (see `step`), ending with the answer."""
        raise NotImplementedError

    def state_to_str(self, state: Any) -> str:
        """The official `initial_state` string for this state."""
        return json.dumps(state)

    def state_from_str(self, text: str) -> Any:
        """Inverse of state_to_str; must also read the official release's strings."""
        return parse_literal(text)

    def state_from_record(self, record: dict) -> Any:
        """The state of a record (ours or official). Override when the official
        `initial_state` lacks something the verifier needs and the question carries it."""
        return self.state_from_str(record["initial_state"])

    # ---- provided -----------------------------------------------------------------------
    def rng(self, level: int, seed: int) -> random.Random:
        # A string seed is hashed with SHA-512 by `random`: stable across runs and machines.
        return random.Random(f"{self.name}:{level}:{seed}")

    def generate(self, level: int, seed: int) -> Instance:
        if level not in LEVELS:
            raise ValueError(f"{self.name}: level must be one of {LEVELS}, got {level!r}")
        state, solution, meta = self.make(self.rng(level, seed), level)
        return Instance(self.name, level, seed, state, solution, dict(meta))

    def answer(self, inst: Instance) -> str:
        return self.format_answer(inst.solution)

    def verify(self, answer: Any, state: Any) -> bool:
        """True iff `answer` (the extracted text) is a valid answer. Never raises."""
        if not isinstance(answer, str):
            return False
        if len(answer) > MAX_ANSWER_CHARS:
            return False
        # presentation only (fullwidth forms, emphasis, $, LaTeX layout, arrows, and the
        # rules of the answer's shape): see formats.py
        answer = read_answer(answer, self.answer_shape, keep_dot=self.dot_is_cell)
        if not answer:
            return False
        try:
            return bool(self.check(answer, state))
        except (Exception, RecursionError):  # malformed answers are wrong answers
            return False

    def canonical(self, state: Any) -> str:
        """A hash of the public state: duplicates and bench/train overlap are found by it."""
        blob = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha1(f"{self.name}|{blob}".encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<task {self.name} ({self.official}, {self.group})>"


# ---- parsing helpers shared by verifiers -------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d{1,40}(?:\.0*)?$")
_NUM_RE = re.compile(r"^[+-]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})$")


def parse_int(text: str) -> int | None:
    """'5', ' 5 ', '5.0', '+5' -> 5; anything else (5.5, 1e3, '') -> None."""
    if not isinstance(text, str):
        return None
    t = text.strip()
    if not _INT_RE.match(t):
        return None
    return int(t.split(".")[0])


def parse_number(text: str) -> Fraction | None:
    """An exact decimal number ('3', '2.50', '-0.5') as a Fraction; else None."""
    if not isinstance(text, str):
        return None
    t = text.strip()
    if not _NUM_RE.match(t):
        return None
    return Fraction(t)


def parse_literal(text: str) -> Any:
    """JSON or a Python literal (single quotes, None, tuples). Raises ValueError when neither."""
    if not isinstance(text, str):
        return text
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(f"literal of {len(text)} characters is too long")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a JSON or Python literal: {text[:80]!r} ({type(e).__name__})") from None


def parse_int_list(text: str) -> list[int] | None:
    """A list of integers in any common spelling: '[2, 0, 1]', '2 0 1', '2,0,1', '2 -> 0 -> 1'.

    Returns None when anything other than integers and separators is present.
    """
    if not isinstance(text, str):
        return None
    t = text.strip()
    if t[:1] in "[(" and t[-1:] in "])":
        t = t[1:-1]
    if not t.strip():
        return None
    parts = re.split(r"\s*(?:,|->|→|—>|\s)\s*", t.strip())
    out = []
    for p in parts:
        if p == "":
            continue
        v = parse_int(p)
        if v is None:
            return None
        out.append(v)
    return out or None


def yes_no(text: str) -> bool | None:
    t = text.strip().strip(".!").strip().lower()
    if t in ("yes", "true"):
        return True
    if t in ("no", "false"):
        return False
    return None
