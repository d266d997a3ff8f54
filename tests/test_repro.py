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


def test_repro_quick_mixed_splits_easy_and_hard_by_measured_base_success(tmp_path):
    out, res = tmp_path / "mixed", tmp_path / "results"
    proc = subprocess.run([sys.executable, "repro.py", "--quick", "--setting", "mixed", "--out", str(out),
                           "--results-dir", str(res)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    probe = json.loads((out / "data" / "probe.json").read_text())
    K = probe["probe_samples"]
    for part in ("train", "eval"):   # membership follows the measured successes and the thresholds
        p = probe[part]
        assert p["easy_ids"] and p["hard_ids"] and not set(p["easy_ids"]) & set(p["hard_ids"])
        assert all(p["successes"][i] / K >= probe["easy_min"] for i in p["easy_ids"])
        assert all(p["successes"][i] / K < probe["hard_max"] for i in p["hard_ids"])
    train = [json.loads(x)["id"] for x in (out / "data" / "mixed_train" / "records.jsonl").read_text().splitlines()]
    assert sorted(train) == sorted(probe["train"]["easy_ids"] + probe["train"]["hard_ids"])
    assert len(probe["train"]["easy_ids"]) == len(probe["train"]["hard_ids"])   # half and half
    traces = [json.loads(x)["id"] for x in (out / "data" / "mixed_train" / "traces.jsonl").read_text().splitlines()]
    assert set(traces) <= set(train)
    for label in ("easy", "hard"):
        ids = [json.loads(x)["id"] for x in (out / "data" / f"eval_{label}" / "records.jsonl").read_text().splitlines()]
        assert ids == probe["eval"][f"{label}_ids"]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"base", "grpo", "sft", "sft-then-grpo", "luffy", "static", "ahpo"}
    by = {r["method"]: r for r in rows}
    for r in rows:
        assert all(0.0 <= r[k] <= 100.0 for k in ("in_domain_easy", "in_domain_hard", "general"))
    # the gate by construction: grpo / luffy never, static / sft always; ahpo's xi follows the successes
    assert by["grpo"]["xi_easy"] == by["grpo"]["xi_hard"] == by["luffy"]["xi_hard"] == 0.0
    assert by["static"]["xi_easy"] == by["static"]["xi_hard"] == by["sft"]["xi_hard"] == 100.0
    for line in (out / "ahpo-s1" / "metrics.jsonl").read_text().splitlines():
        for _, succ, xi in json.loads(line)["per_prompt"]:
            assert xi == int(succ < 2)
    table = (out / "table.md").read_text()
    head = next(x for x in table.splitlines() if x.startswith("| Method | In-domain easy | In-domain hard"))
    assert "xi rate, easy prompts" in head and "xi rate, hard prompts" in head
    assert re.search(rf"\| AHPO \| {NUM} \| {NUM} \| {NUM} \| {NUM} \| {NUM} \|", table)
    assert "Mechanism check" in table and "AHPO minus static mixing" in table
    assert "Training pool (" in table and "Easy: >= 40%, hard: < 5%" in table
    for name in ("reward.png", "xi_rate.png"):   # two panels each: easy and hard
        with Image.open(res / name) as im:
            assert im.size[0] >= 1440
    assert (res / "README.md").exists()
