"""The toy Table 2 reproduction (repro.py) end to end in its --quick setting: every stage runs, and
the table and the plots are written. It checks that the numbers are there, not who wins."""
import json
import os
import re
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("GRPO", "SFT", "SFT then GRPO", "LUFFY", "Static hybrid", "AHPO")
NUM = r"-?\d+(\.\d+)?"


def test_repro_quick_writes_table_and_plots(tmp_path):
    out, res = tmp_path / "repro", tmp_path / "results"
    proc = subprocess.run([sys.executable, "repro.py", "--quick", "--out", str(out), "--results-dir", str(res)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (out / "table.md").read_text()
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 7:
            rows[cells[0]] = cells
    assert re.fullmatch(NUM, rows["Base (SFT from scratch)"][1]) and re.fullmatch(NUM, rows["Base (SFT from scratch)"][2])
    for m in METHODS:   # a row per method: mean ± spread for both accuracies, signed changes, wall time
        r = rows[m]
        assert re.fullmatch(rf"{NUM} ± {NUM}", r[1]) and re.fullmatch(rf"{NUM} ± {NUM}", r[2]), r
        assert re.fullmatch(r"[+-]\d+\.\d", r[3]) and re.fullmatch(r"[+-]\d+\.\d", r[4]), r
        assert re.fullmatch(r"\d+", r[5]), r
    sampled = {}   # the second table: accuracy of temperature-1 samples, same layout minus two columns
    for line in table.split("Sampled accuracy")[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5:
            sampled[cells[0]] = cells
    for m in METHODS:
        assert re.fullmatch(rf"{NUM} ± {NUM}", sampled[m][1]) and re.fullmatch(rf"{NUM} ± {NUM}", sampled[m][2])
    for name in ("reward.png", "xi_rate.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 100 and im.size[1] > 100
        assert (res / name).exists()
    assert (res / "table.md").read_text() == table
    results = json.loads((out / "results.json").read_text())
    got = {r["method"] for r in results["rows"]}
    assert got == {"base", "grpo", "sft", "sft-then-grpo", "luffy", "static", "ahpo"}
    for r in results["rows"]:
        assert all(0.0 <= r[k] <= 100.0 for k in ("in_domain", "general", "in_domain_sampled", "general_sampled"))
        assert r["wall_s"] >= 0
    # every RL run logged its curves (sft-then-grpo: its GRPO half)
    for m in ("grpo", "sft", "sft-then-grpo", "luffy", "static", "ahpo"):
        lines = (out / f"{m}-s1" / "metrics.jsonl").read_text().splitlines()
        assert lines and {"reward_mean", "xi_rate"} <= set(json.loads(lines[0]))
    # --prompt-style compact (the default): every stage's text prompt is "<task>: <state>"
    for name in ("eval_target", "eval_general", "base_train", "target_train"):
        recs = [json.loads(x) for x in (out / "data" / name / "records.jsonl").read_text().splitlines()]
        assert recs and all(r["question_text"] == f"{r['task']}: {r['initial_state']}" for r in recs), name
    traces = [json.loads(x) for x in (out / "data" / "target_train" / "traces.jsonl").read_text().splitlines()]
    assert all(t["messages"][0]["content"][-1]["text"].startswith(f"{t['task']}: ") for t in traces)
