"""Shared by the path-and-grid puzzles (word ladder, snake, bridges, shingoki, numbrix,
word search): word lists, coordinate parsing with bounded time, and a few drawing helpers.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache

from . import draw

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


# ---- word lists ------------------------------------------------------------------------
@lru_cache(maxsize=None)
def load_words(filename: str) -> tuple[str, ...]:
    """The sorted words of tasks/data/<filename>. Raises (naming the file) when it is
    missing or empty: a puzzle must never run against a silently empty dictionary."""
    path = os.path.join(DATA_DIR, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"word list {path} is missing: it ships with the repository (tasks/data/, "
            f"rebuilt by tasks/data/build_wordlists.py); restore it from git")
    with open(path, encoding="utf-8") as f:
        words = tuple(sorted({w.strip().lower() for w in f if w.strip()}))
    if not words:
        raise ValueError(f"word list {path} is empty")
    return words


# ---- parsing ---------------------------------------------------------------------------
_NUM = r"([+-]?\d{1,4})"
# a pair is (a, b) or [a, b] (the official snake gold is a JSON list of [r, c] lists)
PAIR_RE = re.compile(r"[(\[]\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*[)\]]")
# What may stand between the items of an answer: whitespace, commas, semicolons, arrows,
# brackets, '|', and the word "and". Checked with a single character-class match (linear).
_SEPARATORS = re.compile(r"[\s,;>→\-\[\]{}|.]*")


def only_separators(text: str) -> bool:
    return _SEPARATORS.fullmatch(text) is not None


def parse_pairs(text: str, max_pairs: int) -> list[tuple[int, int]] | None:
    """'(0,1) (0,2), (1,2)' or '[[0,1],[0,2]]' -> [(0, 1), (0, 2)]; None when anything else is in the
    text (other than separators) or when there are more than `max_pairs` pairs."""
    if len(text) > 40 * (max_pairs + 2):
        return None
    out = []
    for m in PAIR_RE.finditer(text):
        out.append((int(m.group(1)), int(m.group(2))))
        if len(out) > max_pairs:
            return None
    if not out or not only_separators(PAIR_RE.sub(" ", text)):
        return None
    return out


def compact(text: str) -> str:
    """Collapse runs of whitespace (answers often arrive with newlines or doubled spaces)."""
    return " ".join(text.split())


# ---- geometry --------------------------------------------------------------------------
DIRS4 = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left


def neighbours4(r: int, c: int, rows: int, cols: int):
    for dr, dc in DIRS4:
        nr, nc = r + dr, c + dc
        if 0 <= nr < rows and 0 <= nc < cols:
            yield nr, nc


# ---- drawing ---------------------------------------------------------------------------
def index_labels(d, ox, oy, cell, rows, cols, base=0, size=15, gap=16, centre=True):
    """Row numbers left of the grid and column numbers above it (`base` = first index).
    centre=True labels cell centres; False labels lattice points (x = ox + i * cell)."""
    off = cell / 2 if centre else 0
    for c in range(cols):
        draw.center_text(d, (ox + c * cell + off, oy - gap), c + base, size=size, fill=draw.GREY)
    for r in range(rows):
        draw.center_text(d, (ox - gap - 4, oy + r * cell + off), r + base, size=size, fill=draw.GREY)
