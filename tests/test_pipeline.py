"""The five stages end to end on their default paths, each reading what the previous wrote.

Tiny settings (a few tasks, a few steps, short generations); the defaults that matter here are
the PATHS: no stage is told where the previous stage's output is.
"""
import json

import ahpo
import elicit
import evaluate
import sft
import synth
import tasks
from harness.jsonl import read_records


def test_five_stages_on_default_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    few = ["--tasks", "maze,buy_sell_stock,graph_isomorphism,hanoi", "--levels", "1,2", "--count", "1"]
    synth.main(few)                                             # -> data/bench
    synth.main(["--split", "train", *few])                      # -> data/train (excludes data/bench)
    elicit.main([])                                             # data/train -> data/traces.jsonl
    sft.main(["--max-steps", "2", "--batch-size", "2", "--micro-batch-size", "1"])  # -> runs/sft/final
    ahpo.main(["--steps", "2", "--prompts-per-step", "2", "--rollouts", "2", "--max-new-tokens", "6"])
    s = evaluate.main(["--max-new-tokens", "6"])                # runs/ahpo/final on data/bench

    bench, e1 = read_records("data/bench/records.jsonl", need_images=True)
    train, e2 = read_records("data/train/records.jsonl", need_images=True)
    assert len(bench) == len(train) == 8 and not e1 and not e2
    traces = [json.loads(line) for line in open("data/traces.jsonl")]
    assert len(traces) == 8 and all(tasks.score(t["trace"], t) for t in traces)
    assert (tmp_path / "data/traces_report.md").exists()
    for stage in ("sft", "ahpo"):
        assert (tmp_path / f"runs/{stage}/final/model.safetensors").exists()
        assert len(open(f"runs/{stage}/metrics.jsonl").readlines()) == 2
    # ahpo started from sft's final model, and evaluate scored ahpo's
    import torch
    state = torch.load("runs/ahpo/step-2/trainer_state.pt", weights_only=False)
    assert state["args"]["model"] == "runs/sft/final"
    assert s["name"].endswith("runs/ahpo/final") and s["n"] == 8 and s["n_tasks"] == 4
    table = (tmp_path / "runs/eval/ahpo-final/table.md").read_text()
    assert "| Algorithms Txt | Algorithms Img |" in table and "Overall" in table
    # what a person looks at: curves of both training runs, the report in model mode
    for stage in ("sft", "ahpo"):
        assert (tmp_path / f"runs/{stage}/curves.png").stat().st_size > 0
    report = (tmp_path / "runs/eval/ahpo-final/report.html").read_text()
    assert report.count('<div class="entry"') == 8
