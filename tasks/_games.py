"""Shared by the Games group (sokoban, hanoi, maze, minesweeper, nibbles, sliding puzzle):
move-word parsing, coordinate-pair parsing, tile-grid drawing, and a skeleton step cap.

Move answers are words separated by spaces and/or commas: `up right down left`. Each word
may also be written as its initial (`u d l r`, any case). Optional outer brackets and quotes
around words (`["up", "left"]`) are tolerated, a trailing full stop too. Anything else (an
unknown word, glued letters such as `ur`, arrows, digits) makes the whole answer invalid:
a verifier never guesses what a malformed move meant.
"""
from __future__ import annotations

import re

from . import draw
from .base import step

DIRS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
DIR_ORDER = ("up", "right", "down", "left")
_ALIASES = {"up": "up", "u": "up", "down": "down", "d": "down",
            "left": "left", "l": "left", "right": "right", "r": "right"}
_SPLIT = re.compile(r"[\s,]+")
MAX_MOVES = 5000           # a longer answer is rejected before replay (bounded time)


def parse_moves(text: str, max_moves: int = MAX_MOVES) -> list[str] | None:
    """'up right', 'U,R', 'u r', '[\"up\", \"right\"]' -> ['up', 'right']; else None."""
    if not isinstance(text, str):
        return None
    t = text.strip().rstrip(".").strip()
    if t[:1] == "[" and t[-1:] == "]":
        t = t[1:-1]
    if len(t) > 8 * max_moves:
        return None
    out = []
    for p in _SPLIT.split(t):
        if not p:
            continue
        if len(p) >= 2 and p[0] == p[-1] and p[0] in "'\"":
            p = p[1:-1]
        m = _ALIASES.get(p.lower())
        if m is None:
            return None
        out.append(m)
        if len(out) > max_moves:
            return None
    return out or None


_PAIR = re.compile(r"\(\s*([+-]?\d{1,6})\s*,\s*([+-]?\d{1,6})\s*\)")
_PAIR_SEP = re.compile(r"^[\s,;]*$")


def parse_pairs(text: str, max_pairs: int = 2000, allow_empty: bool = False):
    """'(0,1),(2,3)', '(0, 1) (2, 3)', '[(0,1), (2,3)]', '{(0,1)}' -> [(0, 1), (2, 3)].

    Only pairs in parentheses, separated by commas, semicolons or spaces; anything else
    between them makes the answer invalid (None)."""
    if not isinstance(text, str):
        return None
    t = text.strip().rstrip(".").strip()
    if t[:1] in "[{" and t[-1:] in "]}":
        t = t[1:-1]
    if len(t) > 40 * max_pairs:
        return None
    out, pos = [], 0
    for m in _PAIR.finditer(t):
        if not _PAIR_SEP.match(t[pos:m.start()]):
            return None
        out.append((int(m.group(1)), int(m.group(2))))
        pos = m.end()
        if len(out) > max_pairs:
            return None
    if not _PAIR_SEP.match(t[pos:]):
        return None
    if not out and not allow_empty:
        return None
    return out


def cap(steps: list, limit: int, what: str) -> list:
    """At most `limit` steps; the rest summarised honestly in one line."""
    if len(steps) <= limit:
        return steps
    rest = len(steps) - limit
    return steps[:limit] + [step("step", f"... {rest} further {what} omitted.")]


def label_grid(rows: int, cols: int, cell: int, fill, caption: str = "", lines=True,
               label_rows=True, label_cols=True):
    """A canvas with a rows x cols board of `cell`-pixel squares, row/column indices
    (0-based) on the left and top. fill(d, r, c, x0, y0) paints one cell.
    Returns (img, draw, ox, oy)."""
    cap_h = 34 if caption else 0
    pad = 34
    w = pad + cols * cell + 16
    h = cap_h + pad + rows * cell + 16
    img, d = draw.canvas(max(w, 160), max(h, 160))
    if caption:
        draw.title(d, img.width, caption, size=18, y=18)
    ox, oy = pad, cap_h + pad
    for r in range(rows):
        for c in range(cols):
            fill(d, r, c, ox + c * cell, oy + r * cell)
    if lines:
        right, bottom = ox + cols * cell, oy + rows * cell
        for k in range(rows + 1):
            d.line([(ox, oy + k * cell), (right, oy + k * cell)], fill=draw.GREY, width=1)
        for k in range(cols + 1):
            d.line([(ox + k * cell, oy), (ox + k * cell, bottom)], fill=draw.GREY, width=1)
    if label_cols:
        for c in range(cols):
            draw.center_text(d, (ox + c * cell + cell / 2, oy - 16), c, size=15, fill=draw.GREY)
    if label_rows:
        for r in range(rows):
            draw.center_text(d, (ox - 16, oy + r * cell + cell / 2), r, size=15, fill=draw.GREY)
    return img, d, ox, oy
