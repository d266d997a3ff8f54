"""Drawing helpers shared by the task renderers: bars, grids, graphs, text.

Images are drawn with Pillow's built-in scalable font (bundled with Pillow, so the bytes
of a PNG depend only on the state and the pinned Pillow version). Sizes are chosen to stay
legible after Qwen2.5-VL resizes them: digits at least 14 px high, cells at least 32 px.
"""
from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (0, 0, 0), (128, 128, 128), (225, 225, 225)
BLUE, RED, GREEN = (52, 101, 164), (204, 0, 0), (78, 154, 6)


@lru_cache(maxsize=None)
def font(size: int = 18) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def canvas(width: int, height: int, color=WHITE):
    img = Image.new("RGB", (int(width), int(height)), color)
    return img, ImageDraw.Draw(img)


def text_size(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[int, int]:
    l, t, r, b = draw.textbbox((0, 0), text, font=font(size))
    return r - l, b - t


def center_text(draw, xy, text, size=18, fill=BLACK):
    """Write `text` centred on the point xy."""
    draw.text(xy, str(text), font=font(size), fill=fill, anchor="mm")


def title(draw, width, text, size=20, y=16):
    center_text(draw, (width / 2, y), text, size=size)


def bars(values, caption: str = "", bar_color=BLUE) -> Image.Image:
    """A bar chart: one bar per value, its value above it and its index below it."""
    n = len(values)
    vmax = max(max(values), 1)
    bw = 30 if n <= 20 else (22 if n <= 40 else 16)
    gap = 6 if n <= 40 else 4
    vsize = 14 if bw >= 22 else 11
    plot_h = 360
    left, top, bottom = 20, 60, 40
    w = left * 2 + n * (bw + gap)
    h = top + plot_h + bottom
    img, d = canvas(max(w, 320), h)
    if caption:
        title(d, img.width, caption, size=18, y=18)
    base = top + plot_h
    d.line([(left - 4, base), (left + n * (bw + gap), base)], fill=BLACK, width=2)
    for i, v in enumerate(values):
        x0 = left + i * (bw + gap)
        bh = int(round(plot_h * 0.92 * v / vmax))
        if bh > 0:
            d.rectangle([x0, base - bh, x0 + bw, base], fill=bar_color, outline=BLACK)
        center_text(d, (x0 + bw / 2, base - bh - 10), v, size=vsize)
        center_text(d, (x0 + bw / 2, base + 14), i, size=vsize, fill=GREY)
    return img


def grid(cells, cell: int = 44, size: int | None = None, shade=None, caption: str = "",
         top=None, bottom=None, left=None, right=None, bold_every: int = 0,
         fills=None) -> Image.Image:
    """A grid of text cells with optional clue rows/columns on each side.

    cells: rows of strings ('' for empty). shade: set of (r, c) drawn dark.
    fills: {(r, c): RGB} background colours. bold_every: thicker line every k cells
    (sudoku boxes). top/bottom: per-column clues; left/right: per-row clues.
    """
    rows, cols = len(cells), len(cells[0]) if cells else 0
    size = size or max(12, int(cell * 0.45))
    pad = cell  # room for clues on every side
    cap = 34 if caption else 0
    w, h = cols * cell + 2 * pad, rows * cell + 2 * pad + cap
    img, d = canvas(w, h)
    if caption:
        title(d, w, caption, size=18, y=18)
    ox, oy = pad, pad + cap
    shade, fills = shade or set(), fills or {}
    for r in range(rows):
        for c in range(cols):
            x, y = ox + c * cell, oy + r * cell
            bg = BLACK if (r, c) in shade else fills.get((r, c), WHITE)
            d.rectangle([x, y, x + cell, y + cell], fill=bg, outline=GREY)
            txt = cells[r][c]
            if txt not in ("", None):
                center_text(d, (x + cell / 2, y + cell / 2), txt, size=size,
                            fill=WHITE if (r, c) in shade else BLACK)
    for k in range(rows + 1):
        wd = 3 if (k in (0, rows) or (bold_every and k % bold_every == 0)) else 1
        d.line([(ox, oy + k * cell), (ox + cols * cell, oy + k * cell)], fill=BLACK, width=wd)
    for k in range(cols + 1):
        wd = 3 if (k in (0, cols) or (bold_every and k % bold_every == 0)) else 1
        d.line([(ox + k * cell, oy), (ox + k * cell, oy + rows * cell)], fill=BLACK, width=wd)
    for clues, where in ((top, "top"), (bottom, "bottom"), (left, "left"), (right, "right")):
        if clues is None:
            continue
        for i, v in enumerate(clues):
            if v in (None, ""):
                continue
            if where == "top":
                p = (ox + i * cell + cell / 2, oy - cell / 2)
            elif where == "bottom":
                p = (ox + i * cell + cell / 2, oy + rows * cell + cell / 2)
            elif where == "left":
                p = (ox - cell / 2, oy + i * cell + cell / 2)
            else:
                p = (ox + cols * cell + cell / 2, oy + i * cell + cell / 2)
            center_text(d, p, v, size=size, fill=RED)
    return img


def circle_layout(n: int, radius: float, cx: float, cy: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(2 * math.pi * i / n - math.pi / 2),
             cy + radius * math.sin(2 * math.pi * i / n - math.pi / 2)) for i in range(n)]


def graph(n: int, edges, weights=None, directed: bool = False, caption: str = "",
          positions=None, marked=None, size: int = 0) -> Image.Image:
    """Nodes 0..n-1 (circular layout unless `positions` is given), edges with optional
    weights written at their midpoints, arrowheads when directed, `marked` nodes in red."""
    size = size or (520 if n <= 10 else 640 if n <= 16 else 760)
    cap = 34 if caption else 0
    img, d = canvas(size, size + cap)
    if caption:
        title(d, size, caption, size=18, y=18)
    node_r = 17 if n <= 16 else 14
    pos = positions or circle_layout(n, size / 2 - 50, size / 2, size / 2 + cap)
    marked = set(marked or ())
    for k, (u, v) in enumerate(edges):
        (x1, y1), (x2, y2) = pos[u], pos[v]
        d.line([(x1, y1), (x2, y2)], fill=GREY, width=2)
        if directed:
            ang = math.atan2(y2 - y1, x2 - x1)
            tx, ty = x2 - node_r * math.cos(ang), y2 - node_r * math.sin(ang)
            a = 11
            d.polygon([(tx, ty),
                       (tx - a * math.cos(ang - 0.4), ty - a * math.sin(ang - 0.4)),
                       (tx - a * math.cos(ang + 0.4), ty - a * math.sin(ang + 0.4))], fill=BLACK)
    if weights is not None:
        for (u, v), wgt in zip(edges, weights):
            (x1, y1), (x2, y2) = pos[u], pos[v]
            # 40% of the way from u keeps labels of crossing edges apart more often than 50%
            mx, my = x1 + 0.42 * (x2 - x1), y1 + 0.42 * (y2 - y1)
            tw, th = text_size(d, str(wgt), 15)
            d.rectangle([mx - tw / 2 - 3, my - th / 2 - 3, mx + tw / 2 + 3, my + th / 2 + 3],
                        fill=WHITE, outline=LIGHT)
            center_text(d, (mx, my), wgt, size=15, fill=BLUE)
    for i, (x, y) in enumerate(pos):
        d.ellipse([x - node_r, y - node_r, x + node_r, y + node_r],
                  fill=(255, 220, 220) if i in marked else (230, 240, 255),
                  outline=RED if i in marked else BLACK, width=2)
        center_text(d, (x, y), i, size=16 if n <= 16 else 14)
    return img


def text_panel(lines, size: int = 22, caption: str = "", width: int = 0) -> Image.Image:
    """Lines of text on a white panel (equations, number lists)."""
    probe, d0 = canvas(10, 10)
    widths = [text_size(d0, ln, size)[0] for ln in lines] or [0]
    w = max(width, max(widths) + 60, 320)
    line_h = int(size * 1.6)
    cap = 34 if caption else 0
    img, d = canvas(w, cap + 30 + line_h * len(lines))
    if caption:
        title(d, w, caption, size=18, y=18)
    for i, ln in enumerate(lines):
        center_text(d, (w / 2, cap + 15 + line_h * (i + 0.5)), ln, size=size)
    return img
