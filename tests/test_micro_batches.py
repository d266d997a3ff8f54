"""How a step's rows become forward passes (vlm.modelio.plan_micro_batches, pack_batch; ahpo's
and sft's micro_batches): every row once, no micro-batch over its token budget, and the same
loss and gradient in every layout, on the tiny Qwen2.5-VL with images, in every mode."""
import hashlib
import random

import pytest
import torch

import ahpo
import elicit
import synth
import tasks
import vlm
from vlm import modelio, training

# The tolerance between layouts. They compute the same sums over the same tokens in another
# grouping: per row or packed (the prompt's keys and values computed once and shared by its
# completions' attention), in other micro-batches (so other partial sums of the loss), with
# the attention of a packed row split into blocks (prompt, then each completion over
# [prompt, itself]) where the per-row layout runs one masked attention. fp32 addition is not
# associative: a sum of n terms moves by up to about sqrt(n) u (u = 2^-24 = 6e-8) when its order
# changes; the tiny model's longest sums (a few hundred tokens, 64-wide matmuls, the 768-way
# softmax) have n < 10^4 terms: sqrt(n) u < 6e-6, chained through two layers and the head. So
# the gradient agrees to 1e-5 of its norm, and each loss term to 1e-5 of itself; a completion
# missed, counted twice or attending to another's tokens changes them by far more.
RTOL = 1e-5


def test_plan_every_row_once_and_within_the_budget():
    rng = random.Random(0)
    for trial in range(200):
        groups = [(rng.randint(1, 60), [rng.randint(1, 80) for _ in range(rng.randint(1, 6))])
                  for _ in range(rng.randint(1, 8))]
        K = max(p + max(cs) for p, cs in groups) + rng.randint(0, 200)
        want = sorted((g, i) for g, (_, cs) in enumerate(groups) for i in range(len(cs)))
        for kw in (dict(size=rng.randint(1, 5)), dict(tokens=K, pack=False), dict(tokens=K, pack=True)):
            plans = modelio.plan_micro_batches(groups, **kw)
            got = sorted((g, i) for p in plans for g, ii in p["groups"] for i in ii)
            assert got == want, (trial, kw)
            for p in plans:
                rows = [groups[g][0] + groups[g][1][i] for g, ii in p["groups"] for i in ii]
                if kw.get("pack"):     # each prompt once, then its completions: no padding
                    assert p["positions"] == sum(groups[g][0] + sum(groups[g][1][i] for i in ii) for g, ii in p["groups"])
                    assert p["padding"] == 0 and p["positions"] <= K
                else:                  # rows padded to the longest
                    assert p["positions"] == len(rows) * max(rows) and p["padding"] == p["positions"] - sum(rows)
                    assert "tokens" not in kw or p["positions"] <= K
    with pytest.raises(ValueError, match="--micro-batch-tokens 50: a row of 61 tokens"):
        modelio.plan_micro_batches([(20, [10, 41])], tokens=50)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    d = tmp_path_factory.mktemp("mb")
    synth.main(["--split", "train", "--tasks", "maze,lis,hanoi", "--levels", "1", "--count", "2",
                "--out", str(d / "train"), "--exclude", "", "--quiet"])
    elicit.main(["--records", str(d / "train/records.jsonl"), "--out", str(d / "traces.jsonl"), "--quiet"])
    vlm.make_tiny(str(d / "base"), seed=2)
    return d


def _grads_and_stats(args, run, groups, monkeypatch):
    """One training phase (steps 5-6) without its optimizer step (every layout starts from the same
    weights): the gradient it clipped, and what it logged."""
    seen = {}
    monkeypatch.setattr(run.opt, "step", lambda: None)

    def clip(r, max_norm):
        seen["g"] = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in r.params])
        return 0.0
    monkeypatch.setattr(training, "clip_grads", clip)
    stats = ahpo.train(args, run, ahpo.micro_batches(args, run, groups))
    return seen["g"], stats


@pytest.mark.parametrize("mode", list(ahpo.MODES))
def test_layouts_give_the_same_loss_and_gradient(pool, mode, monkeypatch):
    """Today's rows, sorted rows under a token budget, and packed rows (each prompt once): the same
    T_on, T_off, L_on, L_off, entropy and gradient, with images, rollouts of different lengths, the
    gate open for some prompts (a pseudo-reward gives mixed groups) and LUFFY's experts."""
    monkeypatch.setattr(tasks, "score", lambda text, rec: hashlib.sha256(text.encode()).digest()[0] % 3 == 0)
    base = ["--mode", mode, "--model", str(pool / "base"), "--records", str(pool / "train/records.jsonl"),
            "--traces", str(pool / "traces.jsonl"), "--out", str(pool / mode), "--rollouts", "4", "--max-new-tokens",
            "24", "--lr", "1e-3", "--device", "cpu", "--max-len", "8192", "--prompts-per-step", "4"]
    args = ahpo.parse_args(base + ["--micro-batch-size", "3"])
    ahpo.resolve_defaults(args)
    prompts = ahpo.load_prompts(args, master=True)
    run = training.setup(args, "ahpo", 0, 1, torch.device("cpu"))
    prompts = ahpo.check_lengths(args, run.proc, prompts, run.max_len, run.text_only)
    training.start(run, args)
    groups, info = ahpo.make_groups(args, run, prompts, [0, 1, 2, 3], 0)
    # a random tiny model rarely ends a rollout early: cut them to lengths of 3 to 24 (ending with
    # EOS, as a finished rollout does), so that the layouts see rows of different lengths
    rng = random.Random(1)
    for g in groups:
        cut = [(k, c[:n - 1] + [run.proc.eos_id], w, n) if k == ahpo.ROLLOUT else (k, c, w, ln)
               for k, c, w, ln in g["seqs"] for n in [rng.randint(3, 24)]]
        g["seqs"] = cut
    assert any(len(g["seqs"]) > 1 for g in groups) == ahpo.MODES[mode].rollouts   # sft: one trace a group
    if mode == "ahpo":   # the gate open for some prompts, closed for others
        assert 0 < info["xi"].sum() < len(groups)
    results = {}
    for name, flags in (("today", ["--micro-batch-size", "3"]), ("tokens", ["--micro-batch-tokens", "2048", "--no-pack"]),
                        ("packed", ["--micro-batch-tokens", "2048"])):
        a = ahpo.parse_args(base + flags)
        if name == "packed":
            modelio.use_packed_attention(run.model)
        results[name] = _grads_and_stats(a, run, groups, monkeypatch)
    g0, s0 = results["today"]
    assert g0.norm() > 0
    for name in ("tokens", "packed"):
        g, s = results[name]
        assert (g - g0).norm() <= RTOL * g0.norm(), (name, ((g - g0).norm() / g0.norm()).item())
        assert s["T_on"] == s0["T_on"] and s["T_off"] == s0["T_off"]
        for key in ("on", "off", "ent", "kl"):
            assert s[key] == pytest.approx(s0[key], rel=RTOL, abs=1e-7), (name, key)
    # what each layout computed: packed rows hold each prompt once and no padding
    assert results["packed"][1]["padding"] == 0
    assert results["packed"][1]["positions"] < results["today"][1]["positions"]


def test_sft_layouts_give_the_same_steps(pool):
    """sft.py today (--micro-batch-size 2), and with --micro-batch-tokens packed and sorted: the
    first step's loss and gradient norm agree within RTOL (the same weights, the same tokens), and
    the packed one computes no padding."""
    import json

    import sft
    rows = {}
    for name, flags in (("today", ["--micro-batch-size", "2"]), ("packed", ["--micro-batch-tokens", "6000"]),
                        ("tokens", ["--micro-batch-tokens", "6000", "--no-pack"])):
        out = pool / f"sft-{name}"
        sft.main(["--model", str(pool / "base"), "--data", str(pool / "traces.jsonl"), "--out", str(out),
                  "--batch-size", "6", "--max-steps", "2", "--lr", "1e-3", "--device", "cpu", "--quiet", *flags])
        rows[name] = [json.loads(line) for line in open(out / "metrics.jsonl")]
    first = rows["today"][0]
    for name in ("packed", "tokens"):
        r = rows[name][0]
        assert r["tokens"] == first["tokens"]
        assert r["loss"] == pytest.approx(first["loss"], rel=RTOL) and r["grad_norm"] == pytest.approx(first["grad_norm"], rel=RTOL)
    assert rows["packed"][0]["pad_frac"] == 0 and rows["today"][0]["pad_frac"] > 0
