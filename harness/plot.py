"""Line plots as PNG with Pillow only (no torch, no matplotlib): repro.py's curves and the
training curves sft.py and ahpo.py draw into their run folders.

    from harness.plot import plot, training_curves
    plot("reward.png", [("Rollout reward", {"GRPO": [(1, 0.1), (2, 0.3)]}, "reward")])
    training_curves("runs/ahpo/metrics.jsonl", "runs/ahpo/curves.png")
    python -m harness.plot runs/ahpo/metrics.jsonl           # -> runs/ahpo/curves.png

`plot` is the one drawing function: a grid of panels, each (title, {label: [(step, value)]},
y label). `training_curves` only chooses the panels from a metrics.jsonl.
"""
from __future__ import annotations

import math
import os
import sys

from harness.jsonl import jsonl_rows

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]

# The panels of a training run, each against the step: (title, y label, {label: metrics key}).
# A panel is drawn when the run logged any of its keys (sft.py logs no reward, ahpo.py no loss).
TRAINING_PANELS = [
    ("SFT loss (NLL per assistant token)", "loss", {"loss": "loss"}),
    ("Rollout reward mean", "reward", {"reward mean": "reward_mean"}),
    ("xi rate and zero-variance-group rate", "rate", {"xi rate": "xi_rate", "zero-var rate": "zero_var_rate"}),
    ("Policy entropy (nats per token)", "entropy", {"entropy": "entropy"}),
    ("Response length (tokens)", "tokens", {"response length": "response_len"}),
    ("L_on and L_off", "loss", {"L_on": "loss_on", "L_off": "loss_off"}),
    ("Gradient norm (before clipping)", "norm", {"grad norm": "grad_norm"}),
    ("Learning rate", "lr", {"lr": "lr"}),
]


def _tick(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


def _panel(g, box, title, series, ylabel):
    """Draw one panel into the rectangle box = (x0, y0, x1, y1) of an ImageDraw."""
    x0, y0, x1, y1 = box
    L, R, T, B = x0 + 60, x1 - 150, y0 + 36, y1 - 44
    pts = [(x, y) for s in series.values() for x, y in s if y is not None and math.isfinite(y)]
    xmax = max([x for x, _ in pts] + [1])
    ys = [y for _, y in pts] or [0.0]
    lo, hi = min(ys + [0.0]), max(ys)
    if lo >= 0 and hi <= 1.0:
        hi = 1.0                    # rates and rewards: always the whole [0, 1]
    if hi - lo < 1e-12:
        hi = lo + (abs(lo) or 1.0)  # a flat curve still gets an axis
    X = lambda x: L + (R - L) * (x / xmax)  # noqa: E731
    Y = lambda y: B - (B - T) * ((y - lo) / (hi - lo))  # noqa: E731
    g.rectangle([L, T, R, B], outline="black")
    for k in range(6):
        y = lo + (hi - lo) * k / 5
        g.line([L - 4, Y(y), L, Y(y)], fill="black")
        g.text((x0 + 4, Y(y) - 6), _tick(y), fill="black")
        g.line([L, Y(y), R, Y(y)], fill=(230, 230, 230))
        x = xmax * k / 5
        g.text((X(x) - 6, B + 6), f"{x:.0f}", fill="black")
    g.text((L, y0 + 10), title, fill="black")
    g.text(((L + R) // 2, y1 - 18), "step", fill="black")
    g.text((x0 + 4, T - 20), ylabel, fill="black")
    for k, (name, s) in enumerate(series.items()):
        c = COLORS[k % len(COLORS)]
        s = [(x, y) for x, y in s if y is not None and math.isfinite(y)]
        if len(s) > 1:
            g.line([(X(x), Y(y)) for x, y in s], fill=c, width=2)
        for x, y in s:
            g.ellipse([X(x) - 2, Y(y) - 2, X(x) + 2, Y(y) + 2], fill=c)
        g.line([R + 10, T + 10 + 18 * k, R + 30, T + 10 + 18 * k], fill=c, width=3)
        g.text((R + 36, T + 4 + 18 * k), name, fill="black")


def plot(path, panels, cols=2, size=(720, 420)):
    """panels: [(title, {label: [(step, value)]}, y label)] -> one PNG, `cols` panels a row."""
    from PIL import Image, ImageDraw
    cols = max(1, min(cols, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    W, H = size
    img = Image.new("RGB", (W * cols, H * rows), "white")
    g = ImageDraw.Draw(img)
    for k, (title, series, ylabel) in enumerate(panels):
        r, c = divmod(k, cols)
        _panel(g, (c * W, r * H, (c + 1) * W, (r + 1) * H), title, series, ylabel)
    img.save(path)
    return path


def read_metrics(path):
    """The rows of a metrics.jsonl; a torn last line (a killed run) is skipped, not fatal."""
    return [row for _, row, bad in jsonl_rows(path) if not bad and isinstance(row, dict)]


def training_curves(metrics_path, out_path=None):
    """Every TRAINING_PANELS panel the run logged, against the step -> out_path (default:
    curves.png beside metrics.jsonl). Returns the path, or None when there is no row yet."""
    rows = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    if not rows:
        return None
    panels = []
    for title, ylabel, keys in TRAINING_PANELS:
        series = {label: [(r.get("step", i + 1), float(r[key])) for i, r in enumerate(rows)
                          if isinstance(r.get(key), (int, float))]
                  for label, key in keys.items()}
        series = {k: v for k, v in series.items() if v}
        if series:
            panels.append((title, series, ylabel))
    out_path = out_path or os.path.join(os.path.dirname(os.path.abspath(metrics_path)), "curves.png")
    return plot(out_path, panels)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m harness.plot RUN/metrics.jsonl [OUT.png]")
    if not os.path.isfile(sys.argv[1]):
        sys.exit(f"error: {sys.argv[1]} not found (sft.py and ahpo.py write RUN/metrics.jsonl)")
    png = training_curves(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    if png is None:
        sys.exit(f"error: {sys.argv[1]}: no complete metrics line yet")
    print(f"wrote {png}")
