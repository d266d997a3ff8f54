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


def test_report_to_tensorboard_mirrors_metrics_and_settings(data):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install --no-deps -r "
                                              "requirements-test.txt)")
    from tb_events import check_tensorboard
    sft.main(_args(data, "tb", "--max-steps", "2", "--report-to", "tensorboard"))
    assert len(check_tensorboard(str(data / "tb"))) == 2


def test_report_to_wandb_mirrors_metrics_and_settings(data, monkeypatch):
    """wandb itself is not installed for the tests: a stand-in module records what the run asks
    of it (init's project, config and folder; log's numbers and step; finish)."""
    import types
    made = []

    class Run:
        def __init__(self, **kw):
            self.init, self.logged, self.finished = kw, [], False
            made.append(self)

        def log(self, numbers, step):
            self.logged.append((step, numbers))

        def finish(self):
            self.finished = True
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=Run))
    monkeypatch.setenv("WANDB_PROJECT", "mm-helix-test")
    sft.main(_args(data, "wb", "--max-steps", "2", "--report-to", "wandb"))
    (run,) = made
    assert run.init == {"project": "mm-helix-test", "name": "wb", "dir": str(data / "wb"),
                        "config": json.load(open(data / "wb/run.json"))}
    rows = _metrics(data / "wb/metrics.jsonl")
    assert run.logged == [(r["step"], {k: v for k, v in r.items() if k != "step"}) for r in rows]
    assert run.finished


@pytest.mark.parametrize("target", ["tensorboard", "wandb"])
def test_report_to_without_its_package_is_one_line_before_the_model(data, monkeypatch, target):
    monkeypatch.setitem(sys.modules, target, None)   # import fails as if it were not installed
    with pytest.raises(SystemExit) as e:
        sft.main(_args(data, "nopkg", "--report-to", target))
    msg = str(e.value.code)
    assert msg.startswith(f"error: --report-to {target} needs the {target} package") and "\n" not in msg
    assert f"pip install {target}" in msg and not (data / "nopkg").exists()


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


# The tolerance of the tests of several processes against one. Both runs compute the same sums
# over the same tokens, only grouped differently (micro-batches of 1 vs 2, padding, the ranks'
# partial sums and FSDP2's fp32 reduce-scatter): float32 addition is not associative, so each of
# those sums may move by a few units of roundoff u = 2^-24 = 6e-8 per term, growing like
# sqrt(n) u for n terms added in another order. The longest sums in the tiny model (64-wide
# matmuls over a step's few hundred tokens) have n < 10^4 terms: sqrt(n) u < 6e-6, and backward
# through its two layers and head chains a few such sums. So the summed gradient of the first
# step, BEFORE any optimizer step (AdamW divides by sqrt(v) and so turns a 1e-7 difference of a
# near-zero gradient into a weight difference of up to lr), agrees to 1e-5 of its norm; a lost
# micro-batch or rank, or gradients averaged instead of summed, change it by tens of percent.
GRAD_RTOL = 1e-5


def _torchrun(nproc, *args, env=None):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                           f"--master_port={_free_port()}", "tests/launch.py", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)


@pytest.mark.parametrize("dp_shard", ["2", "1"])
def test_two_processes_equal_one(data, dp_shard):
    # FSDP2 on two ranks, sharded (--dp-shard 2) or replicated (1, DDP's layout), with the process
    # group vlm.dist_init builds for GPUs (tests/launch.py: NCCL's entry emulated by gloo for cuda
    # tensors only), so a collective on a device type that NCCL does not carry fails here too
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not (data / "g_one.pt").exists():
        args = _args(data, "one", "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "1")
        subprocess.run([sys.executable, "tests/launch.py", "sft.py", *args], cwd=ROOT, check=True,
                       capture_output=True, env={**env, "GRADS_OUT": str(data / "g_one.pt")})
    out = f"two-{dp_shard}"
    args2 = _args(data, out, "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "2", "--dp-shard", dp_shard)
    r = _torchrun(2, "sft.py", *args2, env={**env, "GRADS_OUT": str(data / f"g_{out}.pt")})
    assert r.returncode == 0, r.stderr[-2000:]
    g1, g2 = _flat(data / "g_one.pt"), _flat(data / f"g_{out}.pt")
    assert g1.norm() > 0 and (g1 - g2).norm() <= GRAD_RTOL * g1.norm(), ((g1 - g2).norm() / g1.norm()).item()
    ma, mb = _metrics(data / "one/metrics.jsonl"), _metrics(data / f"{out}/metrics.jsonl")
    assert [r["tokens"] for r in ma] == [r["tokens"] for r in mb] and len(ma) == 3
    # the same data, the same updates: the losses of all three steps, within the tolerance
    # carried through two AdamW steps (the 1e-5 gradient agreement, at most ~lr in a weight)
    for x, y in zip(ma, mb):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)
    assert ma[0]["loss"] == pytest.approx(mb[0]["loss"], rel=GRAD_RTOL)  # step 1: same weights, same sum
    # final/ is gathered whole onto rank 0: a from_pretrained folder with every tensor
    a = vlm.load(str(data / "one/final"))[0].state_dict()
    b = vlm.load(str(data / f"{out}/final"))[0].state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


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


def test_bf16_two_processes_agree_with_one_within_bf16_rounding(data):
    """--dtype bfloat16: one process trains bf16 weights with MasterAdamW's fp32 masters, two train
    fp32 shards computing in bf16 (MixedPrecisionPolicy). Step 1 runs the same bf16 weights on the
    same tokens: its loss agrees to bf16's own summation noise. The next steps apply updates
    that differ by bf16 rounding of the gradients (u = 2^-8 = 3.9e-3 per value: one path
    accumulates micro-batches in bf16, the other in fp32): 1e-2 of a loss is a few such
    roundings, while a lost micro-batch or an averaged gradient moves it by far more. final/ is
    written in bf16 either way."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ("--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "1", "--dtype", "bfloat16")
    r = subprocess.run([sys.executable, "sft.py", *_args(data, "bf16-one", *common)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _torchrun(2, "sft.py", *_args(data, "bf16-two", *common), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _metrics(data / "bf16-one/metrics.jsonl"), _metrics(data / "bf16-two/metrics.jsonl")
    assert a[0]["loss"] == pytest.approx(b[0]["loss"], rel=1e-4)
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-2)
    from safetensors.torch import load_file
    for run in ("bf16-one", "bf16-two"):
        assert {t.dtype for t in load_file(data / run / "final/model.safetensors").values()} == {torch.bfloat16}


@pytest.mark.slow   # 44-56 s on 2 cores: in CI's slow tier, kept out of the 10-minute default
def test_checkpoint_of_four_processes_resumes_at_two_and_one(data):
    """DCP: a run of 4 processes (full shard) checkpoints at step 2 of 3; the same folder then
    resumes at 2 processes (--dp-shard 2 and 1) and at 1, each saying so in one line; step 3's
    loss equals the uninterrupted run's (the weights after step 2 are the checkpoint's, to the
    bit: DCP moves them, it does not recompute them), and its gradient norm agrees within the
    summation-order tolerance of the tests above (GRAD_RTOL: the shards add in another order)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ("--max-steps", "3", "--batch-size", "4", "--save-every", "2", "--keep", "0")
    r = _torchrun(4, "sft.py", *_args(data, "d4", *common), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    step2 = data / "d4/step-2"
    assert sorted(f for f in os.listdir(step2) if f.endswith(".distcp")) == [f"__{k}_0.distcp" for k in range(4)]
    full = _metrics(data / "d4/metrics.jsonl")
    for name, launch in (("at2", ("2", "2")), ("at2r", ("2", "1")), ("at1", None)):
        out = data / f"d4-{name}"
        out.mkdir()
        shutil.copytree(step2, out / "step-2")
        shutil.copy(data / "d4/run.json", out / "run.json")
        (out / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in full[:2]))
        if launch:
            r = _torchrun(int(launch[0]), "sft.py", *_args(data, f"d4-{name}", *common, "--dp-shard", launch[1]),
                          env=env)
        else:
            r = subprocess.run([sys.executable, "sft.py", *_args(data, f"d4-{name}", *common)], cwd=ROOT, env=env,
                               capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        said = [ln for ln in r.stderr.splitlines() if "written by 4 process(es)" in ln]
        assert len(said) == 1 and "resharded" in said[0], r.stderr[-2000:]
        got = _metrics(out / "metrics.jsonl")
        assert [m["step"] for m in got] == [1, 2, 3]
        assert got[2]["loss"] == full[2]["loss"], name
        assert got[2]["grad_norm"] == pytest.approx(full[2]["grad_norm"], rel=GRAD_RTOL), name
    # a change of settings still refuses, whatever the world size (run.json is the same check)
    before = sorted(os.listdir(data / "d4-at1"))
    r = subprocess.run([sys.executable, "sft.py", *_args(data, "d4-at1", *common, "--lr", "0.5")], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "lr: 0.003 -> 0.5" in r.stderr.strip().splitlines()[-1]
    assert sorted(os.listdir(data / "d4-at1")) == before


def test_quiet_silences_transformers_bars(data, tmp_path):
    """sft.py --quiet: no progress line of ours and none of transformers' ("Loading weights" when
    the model loads, "Writing model shards" when final/ is saved); without it both are there, so
    this test can fail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    err = {}
    for quiet in (False, True):
        p = subprocess.run([sys.executable, "sft.py", *_args(data, f"quiet{int(quiet)}", "--max-steps", "1"),
                            *(["--quiet"] if quiet else [])], cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        err[quiet] = p.stderr
    assert "Writing model shards" in err[False] and "Loading weights" in err[False], err[False][-2000:]
    assert "Writing model shards" not in err[True] and "Loading weights" not in err[True], err[True][-2000:]
    assert "it/s]" not in err[True]
