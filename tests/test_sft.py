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
from harness.chat import read_traces
import vlm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    """A port no one listens on now: a fixed one collides with other test runs on the machine."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    ex, _ = read_traces(str(data / "traces.jsonl"))
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


def _flat(path):
    return torch.cat([g.flatten() for g in torch.load(path)])


# The tolerance of the DDP tests. Both runs compute the same sums over the same tokens, only
# grouped differently (micro-batches of 1 vs 2, padding, two ranks' partial sums): float32
# addition is not associative, so each of those sums may move by a few units of roundoff
# u = 2^-24 = 6e-8 per term, growing like sqrt(n) u for n terms added in another order. The
# longest sums in the tiny model (64-wide matmuls over a step's few hundred tokens) have
# n < 10^4 terms: sqrt(n) u < 6e-6, and backward through its two layers and head chains a few
# such sums. So the summed gradient of the first step, BEFORE any optimizer step (AdamW
# divides by sqrt(v) and so turns a 1e-7 difference of a near-zero gradient into a weight
# difference of up to lr), agrees to 1e-5 of its norm; a lost micro-batch or rank changes it
# by tens of percent.
GRAD_RTOL = 1e-5


def test_ddp_two_processes_equal_one(data):
    # the two ranks run with the process group vlm.dist_init builds for GPUs (tests/launch.py:
    # NCCL's entry emulated by gloo for cuda tensors only), so a collective on a device type
    # that NCCL does not carry fails here as it would on the GPU node
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _args(data, "one", "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "1")
    subprocess.run([sys.executable, "tests/launch.py", "sft.py", *args], cwd=ROOT, check=True, capture_output=True,
                   env={**env, "GRADS_OUT": str(data / "g_one.pt")})
    # ... with the AdamW states sharded over the two ranks (ZeRO-1): the same gradients
    args2 = _args(data, "two", "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "2", "--zero")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={_free_port()}", "tests/launch.py", "sft.py", *args2], cwd=ROOT,
                       env={**env, "GRADS_OUT": str(data / "g_two.pt")}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    g1, g2 = _flat(data / "g_one.pt"), _flat(data / "g_two.pt")
    assert g1.norm() > 0 and (g1 - g2).norm() <= GRAD_RTOL * g1.norm(), ((g1 - g2).norm() / g1.norm()).item()
    ma, mb = _metrics(data / "one/metrics.jsonl"), _metrics(data / "two/metrics.jsonl")
    assert [r["tokens"] for r in ma] == [r["tokens"] for r in mb] and len(ma) == 3
    assert ma[0]["loss"] == pytest.approx(mb[0]["loss"], rel=GRAD_RTOL)  # step 1: same weights, same sum
    assert os.path.exists(data / "two/final/model.safetensors")


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
    ex, problems = read_traces(str(bad))
    assert len(ex) == 2 and [p.split(": field")[0].rsplit(":", 1)[1] for p in problems] == ["2", "3"]


def test_long_traces_are_refused_or_dropped_never_cut(data, capsys):
    model, proc = vlm.load(str(data / "base"))
    ex, _ = read_traces(str(data / "traces.jsonl"))
    # each trace's row as training sees it, measured by train_batch without a limit
    rows = [int(vlm.train_batch(proc, [e["prompt"]], [e["completion"]])["attention_mask"].sum()) for e in ex]
    cut = sorted(rows)[len(rows) // 2]          # about half the traces are longer than this
    n_long = sum(n > cut for n in rows)
    assert 0 < n_long < len(rows)
    with pytest.raises(SystemExit) as e:
        sft.main(_args(data, "long", "--max-steps", "1", "--max-len", str(cut)))
    msg = str(e.value)
    assert msg.startswith("error:") and "\n" not in msg and f"--max-len {cut}" in msg
    assert f"{n_long} of {len(ex)} traces" in msg and f"longest {max(rows)} tokens" in msg
    assert not os.path.exists(data / "long/metrics.jsonl") and not os.path.exists(data / "long/run.json")
    # behind the flag (the refused run wrote no run.json, so this corrected rerun is not refused) they are dropped, counted, and the kept ones are whole
    sft.main(_args(data, "long", "--max-steps", "1", "--max-len", str(cut), "--drop-long",
                   "--batch-size", str(len(ex) - n_long)))
    assert f"dropped {n_long} of {len(ex)} traces" in capsys.readouterr().err
    kept = [e for e, n in zip(ex, rows) if n <= cut]
    want = sum(len(proc.tokenizer(e["completion"], add_special_tokens=False)["input_ids"]) + 1 for e in kept)
    assert _metrics(data / "long/metrics.jsonl")[0]["tokens"] == want


def test_zero_checkpoint_is_sharded_and_resumes_exactly(data):
    # two ZeRO-1 ranks: an uninterrupted 3-step run against 2 steps, a checkpoint, a restart
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(out, steps):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            f"--master_port={_free_port()}", "tests/launch.py", "sft.py",
                            *_args(data, out, "--max-steps", str(steps), "--batch-size", "4", "--zero",
                                   "--save-every", "2")], cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stderr

    torchrun("zfull", 3)
    # a run killed after step 2: its step-2 checkpoint survives, nothing after it (the same budget:
    # a longer --max-steps would stretch the cosine schedule, and run.json refuses it)
    torchrun("zcut", 3)
    shutil.rmtree(data / "zcut/step-3")
    shutil.rmtree(data / "zcut/final")
    rows = (data / "zcut/metrics.jsonl").read_text().splitlines()
    (data / "zcut/metrics.jsonl").write_text("\n".join(rows[:2]) + "\n")
    # each rank wrote its own shard; the trainer state holds no optimizer tensors
    step2 = data / "zcut/step-2"
    shards = [torch.load(step2 / f"optimizer-{r}-of-2.pt", weights_only=False)["state"] for r in range(2)]
    assert shards[0] and shards[1] and not os.path.exists(step2 / "optimizer-0-of-1.pt")
    n_params = len(vlm.trainable(vlm.load(str(data / "base"))[0]))
    assert len(shards[0]) + len(shards[1]) == n_params      # a partition: together, every parameter once
    assert "optimizer" not in torch.load(step2 / "trainer_state.pt", weights_only=False)
    assert "resumed from" in torchrun("zcut", 3)
    a = vlm.load(str(data / "zfull/final"))[0].state_dict()
    b = vlm.load(str(data / "zcut/final"))[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _metrics(data / "zfull/metrics.jsonl")] == [r["loss"] for r in _metrics(data / "zcut/metrics.jsonl")]
    # one process cannot take over two ranks' shards: refused in one line, files untouched
    shutil.rmtree(data / "zcut/step-3")   # killed again after step 2, so that there is something to resume
    before = sorted(os.listdir(data / "zcut"))
    r = subprocess.run([sys.executable, "sft.py", *_args(data, "zcut", "--max-steps", "3", "--batch-size", "4",
                                                         "--zero", "--save-every", "2")],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert last.startswith("error: ") and "written by 2 ranks with --zero, this run has 1 rank" in last, last
    assert sorted(os.listdir(data / "zcut")) == before
