"""sft.py: it learns, it masks the prompt, DDP equals one process, resume is exact."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

import elicit
import sft
import synth
import vlm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    synth.main(["--split", "train", "--tasks", "buy_sell_stock,maze,hanoi", "--levels", "1", "--count", "2",
                "--out", str(d / "train"), "--exclude", ""])
    elicit.main(["--records", str(d / "train/records.jsonl"), "--out", str(d / "traces.jsonl")])
    vlm.make_tiny(str(d / "base"), seed=0)
    return d


def _args(d, out, *extra):
    return ["--model", str(d / "base"), "--data", str(d / "traces.jsonl"), "--out", str(d / out),
            "--batch-size", "2", "--micro-batch-size", "1", "--lr", "3e-3", "--device", "cpu",
            "--save-every", "1000", *extra]


def _metrics(path):
    return [json.loads(line) for line in open(path)]


def test_loss_falls_well_below_its_start(data):
    sft.main(_args(data, "learn", "--epochs", "40", "--batch-size", "6", "--micro-batch-size", "3",
                   "--lr", "1e-2"))
    m = _metrics(data / "learn/metrics.jsonl")
    assert m[-1]["loss"] < 0.5 * m[0]["loss"], (m[0]["loss"], m[-1]["loss"])
    assert set(m[0]) == set(m[-1])


def test_only_assistant_tokens_are_counted(data):
    sft.main(_args(data, "count", "--max-steps", "1", "--batch-size", "6"))
    m = _metrics(data / "count/metrics.jsonl")[0]
    model, proc = vlm.load(str(data / "base"))
    ex, _ = vlm.read_traces(str(data / "traces.jsonl"))
    # every trace is in the one step: its tokens are the completions' plus one <|im_end|> each
    want = sum(len(proc.tokenizer(e["completion"], add_special_tokens=False)["input_ids"]) + 1 for e in ex)
    assert m["tokens"] == want
    # changing a prompt token changes no label and no count
    tb = vlm.train_batch(proc, [ex[0]["prompt"]], [ex[0]["completion"]])
    p2 = json.loads(json.dumps(ex[0]["prompt"]))
    p2[0]["content"][-1]["text"] = p2[0]["content"][-1]["text"].replace("the", "THE", 1)
    tb2 = vlm.train_batch(proc, [p2], [ex[0]["completion"]])
    c1, c2 = tb["completion_mask"][0].bool(), tb2["completion_mask"][0].bool()
    assert torch.equal(tb["input_ids"][0][c1], tb2["input_ids"][0][c2]) and c1.sum() == c2.sum()


def test_resume_equals_an_uninterrupted_run(data):
    sft.main(_args(data, "full", "--max-steps", "4", "--save-every", "2"))
    # a run killed after step 3: its step-2 checkpoint survives, step 3's metrics row is stale
    # (the same budget: a longer --max-steps would stretch the cosine schedule, and run.json refuses it)
    sft.main(_args(data, "cut", "--max-steps", "4", "--save-every", "2"))
    shutil.rmtree(data / "cut/step-4")
    shutil.rmtree(data / "cut/final")
    rows = (data / "cut/metrics.jsonl").read_text().splitlines()
    (data / "cut/metrics.jsonl").write_text("\n".join(rows[:3]) + "\n")
    sft.main(_args(data, "cut", "--max-steps", "4", "--save-every", "2"))  # resumes at step 2
    a = vlm.load(str(data / "full/final"))[0].state_dict()
    b = vlm.load(str(data / "cut/final"))[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(data / "full/metrics.jsonl")[2:] == [
        {**r, "tokens_per_s": x["tokens_per_s"], "seconds": x["seconds"]}
        for r, x in zip(_metrics(data / "cut/metrics.jsonl")[2:], _metrics(data / "full/metrics.jsonl")[2:])]


def test_ddp_two_processes_equal_one(data):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _args(data, "one", "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "1")
    subprocess.run([sys.executable, "sft.py", *args], cwd=ROOT, check=True, env=env, capture_output=True)
    # ... with the AdamW states sharded over the two ranks (ZeRO-1): the same parameters
    args2 = _args(data, "two", "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "2", "--zero")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29544",
                    "sft.py", *args2], cwd=ROOT, check=True, env=env, capture_output=True)
    a = vlm.load(str(data / "one/final"))[0].state_dict()
    b = vlm.load(str(data / "two/final"))[0].state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k  # float summation order only
    ma, mb = _metrics(data / "one/metrics.jsonl"), _metrics(data / "two/metrics.jsonl")
    assert [r["tokens"] for r in ma] == [r["tokens"] for r in mb]
    assert [r["loss"] for r in ma] == pytest.approx([r["loss"] for r in mb], rel=1e-5)


def test_checkpoint_loads_with_from_pretrained_and_generates(data):
    sft.main(_args(data, "ckpt", "--max-steps", "2", "--grad-checkpointing", "--freeze-vision"))
    path = str(data / "ckpt/final")
    before = vlm.load(str(data / "base"))[0].state_dict()
    after = vlm.load(path)[0].state_dict()
    vision = [k for k in before if ".visual." in k or k.startswith("visual.")]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)          # frozen
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in vision)  # trained
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert os.path.exists(os.path.join(path, "model.safetensors"))
    assert os.path.exists(os.path.join(path, "preprocessor_config.json"))
    m2, proc = vlm.load(path)
    batch = vlm.prompt_batch(proc, [[{"role": "user", "content": "Solve it."}]])
    out = vlm.sample(m2, proc, batch, max_new_tokens=5, greedy=True)
    assert out.lengths[0] >= 1 and isinstance(out.texts[0], str)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in m2.parameters())
    assert tok.convert_tokens_to_ids("<|im_end|>") == proc.eos_id


def test_bad_trace_lines_are_reported(data, tmp_path, capsys):
    lines = open(data / "traces.jsonl").read().splitlines()
    bad = tmp_path / "traces.jsonl"
    bad.write_text("\n".join([lines[0], "{oops", json.dumps({"id": "x", "messages": [{"role": "user"}]}),
                              lines[1]]) + "\n")
    ex, problems = vlm.read_traces(str(bad))
    assert len(ex) == 2 and [p.split(": field")[0].rsplit(":", 1)[1] for p in problems] == ["2", "3"]
