"""The README's first command, `bash demo.sh`, on a fresh copy of the code (a subset of tasks)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow   # 72-84 s on 2 cores: in CI's slow tier, kept out of the 10-minute default
def test_demo_script_runs_the_five_stages(tmp_path):
    for name in os.listdir(ROOT):   # a fresh checkout: code only, no data/ or runs/
        if name.endswith(".py") or name in ("demo.sh", "tasks", "vlm", "harness"):
            src = os.path.join(ROOT, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, tmp_path / name)
    env = {**os.environ, "DEMO_TASKS": "maze,hanoi"}
    proc = subprocess.run(["bash", "demo.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in ("data/bench/records.jsonl", "data/train/records.jsonl", "data/traces.jsonl",
                 "runs/sft/final/model.safetensors", "runs/ahpo/final/model.safetensors",
                 "runs/eval/ahpo-final/predictions.jsonl", "runs/eval/ahpo-final/summary.json",
                 "runs/eval/ahpo-final/report.html", "runs/sft/curves.png", "runs/ahpo/curves.png"):
        assert (tmp_path / path).exists(), path
    assert "| runs/ahpo/final |" in proc.stdout          # the evaluation table ends the run
    assert len((tmp_path / "runs/eval/ahpo-final/predictions.jsonl").read_text().splitlines()) == 2 * 5 * 6
