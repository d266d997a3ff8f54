"""Shared by the array tasks of the Algorithms group (stock, container, hills and valleys,
H-index, histogram, LIS, rain water): an integer array drawn as bars, an integer answer.

A subclass sets the class attributes, `solve(values) -> int`, `rules`, and `skeleton`.
"""
from __future__ import annotations

import random

from . import draw, formats
from .base import Task, parse_int, parse_literal

# (max value, min length, max length) per level, from the spec.
ARRAY_LEVELS = {1: (20, 5, 10), 2: (40, 10, 20), 3: (60, 20, 30), 4: (80, 30, 50), 5: (100, 50, 70)}


class ArrayTask(Task):
    group = "Algorithms"
    min_value = 0          # smallest value drawn (heights may be 0, prices start at 1)
    levels = ARRAY_LEVELS
    noun = "value"         # what one bar is: "price", "height", "citation count"
    index_noun = "index"   # what the number under a bar is: "day", "position", "paper"
    rules = ""             # the problem statement, own words
    caption = ""
    answer_shape = formats.NUMBER

    def draw_values(self, rng: random.Random, level: int) -> list[int]:
        vmax, lo, hi = self.levels[level]
        n = rng.randint(lo, hi)
        return [rng.randint(self.min_value, vmax) for _ in range(n)]

    def make(self, rng, level):
        values = self.draw_values(rng, level)
        vmax, lo, hi = self.levels[level]
        return values, self.solve(values), {"length": len(values), "max_value": vmax}

    def format_answer(self, solution) -> str:
        return str(solution)

    def check(self, answer, state) -> bool:
        v = parse_int(answer)
        return v is not None and v == self.solve(state)

    def render(self, state):
        return [draw.bars(state, self.caption)]

    def state_to_str(self, state) -> str:
        return str(list(state))

    def state_from_str(self, text):
        # Ours: "[3, 1, 4]". Official strings may wrap the list in a dict; take its list.
        v = parse_literal(text)
        if isinstance(v, dict):
            v = next((x for x in v.values() if isinstance(x, list)), None)
        if not isinstance(v, list) or not all(isinstance(x, int) for x in v):
            raise ValueError(f"{self.name}: expected a list of integers, got {text[:60]!r}")
        return v

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = f"The {self.noun}s, in order ({self.index_noun} 0 first), are: {list(state)}."
        else:
            where = (f"The image shows the array as a bar chart: one bar per {self.index_noun} "
                     f"(its index below the bar, starting from 0) with its {self.noun} written "
                     f"above the bar.")
        return f"{self.rules}\n\n{where}\n\nAnswer with a single integer."
