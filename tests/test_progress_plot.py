"""The shared progress line (harness/progress.py) and training curves (harness/plot.py): no torch."""
import io
import json

from PIL import Image

from harness.plot import COLORS, plot, training_curves
from harness.progress import Progress, fmt_seconds


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_fmt_seconds():
    assert [fmt_seconds(s) for s in (7.2, 65, 3725, float("inf"))] == ["7s", "1m05s", "1h02m", "?"]


def test_not_a_terminal_gives_one_line_per_ten_percent():
    out = io.StringIO()
    bar = Progress(100, "synth", unit="inst", stream=out)
    for k in range(1, 101):
        bar.update(k, kept=k)
    bar.close()
    lines = out.getvalue().splitlines()
    # the first update (1%), then 10%, 20%, ..., 100%: no carriage returns in a log file
    assert len(lines) == 11 and "\r" not in out.getvalue()
    assert lines[0].startswith("synth: 1/100 inst (1%), 1 kept") and "ETA" in lines[0]
    assert lines[-1].startswith("synth: 100/100 inst (100%), 100 kept") and lines[-1].endswith("ETA 0s")


def test_terminal_redraws_one_line_and_quiet_prints_nothing():
    tty = Tty()
    bar = Progress(5, "evaluate", unit="inst", stream=tty, min_interval=0.0)
    for k in range(1, 6):
        bar.update(k)
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    quiet = Tty()
    bar = Progress(5, "evaluate", stream=quiet, quiet=True)
    for k in range(1, 6):
        bar.update(k)
        bar.log(k, "step")
    bar.close()
    assert quiet.getvalue() == ""


def test_step_lines_gain_an_eta_and_thin_out_in_a_log():
    tty, log = Tty(), io.StringIO()
    for stream in (tty, log):
        bar = Progress(50, "sft", unit="step", stream=stream, start=10)   # resumed at step 10
        for k in range(11, 51):
            bar.log(k, f"step {k}/50 loss 1.0")
    assert tty.getvalue().count("\n") == 40 and "| ETA " in tty.getvalue()
    # 22% is the first, then 30%, ..., 100%
    assert [x.split()[1] for x in log.getvalue().splitlines()] == \
        ["11/50", "15/50", "20/50", "25/50", "30/50", "35/50", "40/50", "45/50", "50/50"]


def _metrics(path, rows, torn=True):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        if torn:
            f.write('{"step": 99, "loss"')   # a run killed mid-write: skipped, not fatal


def test_training_curves_draw_every_logged_panel(tmp_path):
    ahpo = [{"step": s, "reward_mean": s / 10, "xi_rate": 1 - s / 10, "zero_var_rate": 0.5, "entropy": 2.0 - s / 10,
             "response_len": 40 + s, "loss_on": -0.01 * s, "loss_off": 1.5 - s / 10, "grad_norm": 3.0, "lr": 1e-6 * s}
            for s in range(1, 6)]
    _metrics(tmp_path / "metrics.jsonl", ahpo)
    png = training_curves(str(tmp_path / "metrics.jsonl"))
    assert png == str(tmp_path / "curves.png")
    img = Image.open(png).convert("RGB")
    # 7 panels (reward, xi + zero-var, entropy, length, L_on + L_off, grad norm, lr), 2 a row
    assert img.size == (2 * 720, 4 * 420)
    # the first series' colour is drawn in every panel, the second's where a panel has two
    seen = [img.crop((c * 720, r * 420, (c + 1) * 720, (r + 1) * 420)).getcolors(1 << 20)
            for r in range(4) for c in range(2)]
    has = [{col for _, col in s} for s in seen]
    assert all(COLORS[0] in h for h in has[:7]) and COLORS[0] not in has[7]
    assert COLORS[1] in has[1] and COLORS[1] in has[4] and COLORS[1] not in has[0]


def test_sft_curves_and_empty_runs(tmp_path):
    sft = [{"step": s, "loss": 5.0 / s, "grad_norm": 1.0, "lr": 1e-3, "tokens": 100} for s in range(1, 4)]
    _metrics(tmp_path / "metrics.jsonl", sft, torn=False)
    img = Image.open(training_curves(str(tmp_path / "metrics.jsonl"), str(tmp_path / "c.png")))
    assert img.size == (2 * 720, 2 * 420)          # loss, grad norm, lr
    assert training_curves(str(tmp_path / "none.jsonl")) is None
    (tmp_path / "empty.jsonl").write_text("")
    assert training_curves(str(tmp_path / "empty.jsonl")) is None


def test_plot_one_panel_as_repro_draws_it(tmp_path):
    p = plot(str(tmp_path / "r.png"), [("reward", {"GRPO": [(1, 0.1), (2, 0.4)], "AHPO": [(1, 0.2), (2, 0.3)]}, "r")])
    img = Image.open(p).convert("RGB")
    assert img.size == (720, 420) and {COLORS[0], COLORS[1]} <= {c for _, c in img.getcolors(1 << 20)}
