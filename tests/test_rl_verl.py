"""verl's own code on our export (issue 35): verl's RLHFDataset reads verl.parquet (images and
text-only) and verl's reward path (load_reward_manager, reward.custom_reward_function = our
tasks/reward.py by file path, the naive reward manager) scores gold and rule-breaking replies.

verl 0.9 pins transformers below 5.11 (this project pins 5.24), so it lives in a venv of its
own; the test runs tests/verl_worker.py with that venv's Python, named by MMHELIX_VERL_PYTHON:

    python -m venv /tmp/venv-verl
    /tmp/venv-verl/bin/pip install verl==0.9.1 torchvision==0.29.1 qwen-vl-utils==0.0.14
    MMHELIX_VERL_PYTHON=/tmp/venv-verl/bin/python python -m pytest -m slow tests/test_rl_verl.py

Without it the test is skipped (CI does not build that venv: verl brings a CUDA torch and Ray,
gigabytes). No GPU, no vLLM, no Ray cluster: the dataset and the reward manager only.
"""
import json
import os
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_response_styles import wrong

import synth
from harness import export as ex
from tasks import TASKS, build_prompt
from tasks import reward as rw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERL = os.environ.get("MMHELIX_VERL_PYTHON")
TASK_NAMES = "graph_isomorphism,sudoku,maze,lis"    # two images in the first


@pytest.mark.slow
@pytest.mark.skipif(not VERL, reason="MMHELIX_VERL_PYTHON (a Python with verl 0.9) is not set")
def test_verls_dataset_and_reward_manager_read_and_score_the_export(tmp_path):
    from vlm.tiny import make_tiny
    img, txt = tmp_path / "img", tmp_path / "txt"
    synth.main(["--out", str(img), "--tasks", TASK_NAMES, "--levels", "1", "--count", "1", "--workers", "1",
                "--quiet", "--export", "verl"])
    os.makedirs(txt)
    shutil.copy(img / "records.jsonl", txt)
    ex.export(str(txt), ["verl"], text_only=True)
    recs = [json.loads(line) for line in open(img / "records.jsonl")]
    # the same rows in another ground-truth format
    table = pq.read_table(txt / "verl.parquet")
    old = [{**rm, "ground_truth": rm["ground_truth"].replace(rw.FORMAT, "mm-helix/0", 1)}
           for rm in table.column("reward_model").to_pylist()]
    i = table.schema.get_field_index("reward_model")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(old, table.schema.field(i).type)),
                   tmp_path / "old.parquet")
    make_tiny(str(tmp_path / "vl"))
    make_tiny(str(tmp_path / "text"), kind="causal")
    replies = {r["id"]: [f"<think>ok</think> The answer is \\boxed{{{r['answer']}}}.",
                         f"\\boxed{{{wrong(r['task'], r['answer'])}}}"] for r in recs}
    job = {"image": str(img / "verl.parquet"), "text": str(txt / "verl.parquet"), "old": str(tmp_path / "old.parquet"),
           "processor": str(tmp_path / "vl"), "tokenizer": str(tmp_path / "text"),
           "reward": os.path.join(ROOT, "tasks", "reward.py"), "replies": replies, "cache": str(tmp_path / "cache")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # cwd elsewhere, no PYTHONPATH: verl finds tasks/reward.py by its path alone
    p = subprocess.run([VERL, os.path.join(ROOT, "tests", "verl_worker.py"), str(tmp_path / "job.json")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])

    by_id = {r["id"]: r for r in recs}
    assert [r["id"] for r in out["image_rows"]] == [r["id"] for r in recs]
    for row in out["image_rows"]:
        rec = by_id[row["id"]]
        n = TASKS[rec["task"]].n_images
        # verl put the images where our placeholders are: first, then the prompt
        assert row["parts"] == ["image"] * n + ["text"]
        assert row["text"] == build_prompt(rec) and row["image_pads"] > 0
        assert len(row["image_sizes"]) == n
    for row in out["text_rows"]:
        assert row["parts"] == ["text"] and row["text"] == build_prompt(by_id[row["id"]], text_only=True)
        assert row["image_pads"] == 0
    for key in ("image_scores", "text_scores"):
        got = [(s["id"], s["reply"], s["score"]) for s in out[key]]
        want = [(r["id"], reply, 1.0 if k == 0 else 0.0) for r in recs for k, reply in enumerate(replies[r["id"]])]
        assert got == want, key
    for s in out["old_scores"]:
        assert s["score"].startswith("GroundTruthError: ") and "'mm-helix/0'" in s["score"] and s["id"] in s["score"]
