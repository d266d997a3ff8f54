"""ahpo.py: the gate, the loss terms, learning on a toy task, DDP equivalence, exact resume."""
import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

import ahpo
import tasks
import vlm
from tasks.base import Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    """A port no one listens on now: a fixed one collides with other test runs on the machine."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the gate ------------------------------------------------------------------------------------
@pytest.mark.parametrize("successes,expect_ahpo", [(0, 1.0), (1, 1.0), (2, 0.0), (3, 0.0), (5, 0.0)])
def test_gate_is_one_exactly_below_r_hat(successes, expect_ahpo):
    R = torch.tensor([1.0] * successes + [0.0] * (5 - successes))
    has = torch.tensor([True])
    assert ahpo.gate(R, 5, 2, "ahpo", has).tolist() == [expect_ahpo]
    assert ahpo.gate(R, 5, 2, "grpo", has).tolist() == [0.0]
    assert ahpo.gate(R, 5, 2, "luffy", has).tolist() == [0.0]
    assert ahpo.gate(R, 5, 2, "static", has).tolist() == [1.0]
    # no expert trace, no expert term, whatever the mode
    for mode in ahpo.MODES:
        assert ahpo.gate(R, 5, 2, mode, torch.tensor([False])).tolist() == [0.0]


def test_gate_per_prompt_over_several_groups():
    R = torch.tensor([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1.0])
    xi = ahpo.gate(R, 5, 2, "ahpo", torch.tensor([True, True, True, False]))
    assert xi.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ahpo.gate(R, 5, 3, "ahpo", torch.ones(4, dtype=torch.bool)).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_check_method_refuses_what_trains_nothing_and_only_that():
    """Each refusal of check_method holds as the method computes it (a group of one has A = 0;
    R_hat > N keeps xi at 1; R_hat = 0 keeps it at 0); the settings next to them are accepted:
    LUFFY with one rollout (its group holds the expert trace too), R_hat = N, mode sft with any
    --rollouts, every mode's defaults."""
    def check(*argv):
        return ahpo.check_method(argparse.Namespace(**{**vars(_defaults), **dict(argv)}))
    R = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert ahpo.group_advantages(R, 1).abs().max() == 0                              # N = 1: L_on = 0
    A, A_expert = ahpo.luffy_group(R, 1, ahpo.group_advantages(R, 1), torch.ones(4, dtype=torch.bool))
    assert A.tolist()[0] < 0 < A_expert.tolist()[0]                                  # LUFFY N = 1 learns
    every = torch.tensor([[float(b) for b in f"{k:03b}"] for k in range(8)]).flatten()   # 0..3 of 3
    has = torch.ones(8, dtype=torch.bool)
    assert ahpo.gate(every, 3, 4, "ahpo", has).tolist() == [1.0] * 8                 # R_hat > N: static
    assert ahpo.gate(every, 3, 0, "ahpo", has).tolist() == [0.0] * 8                 # R_hat = 0: grpo
    assert 0 < ahpo.gate(every, 3, 3, "ahpo", has).sum() < 8                         # R_hat = N: a gate

    for mode in ("ahpo", "grpo", "static"):
        assert "--rollouts 1" in check(("mode", mode), ("n", 1))
    assert "--mode static" in check(("r_hat", 4), ("n", 3))
    assert "--mode grpo" in check(("r_hat", 0))
    assert "--mode grpo" in check(("traces", "none"))
    assert "--kl-coef" in check(("mode", "sft"), ("kl_coef", 0.1))
    for mode in ("static", "luffy", "sft"):
        assert "needs expert traces" in check(("mode", mode), ("traces", "none"))
    for ok in [(("mode", "luffy"), ("n", 1)), (("r_hat", 3), ("n", 3)), (("mode", "sft"), ("n", 1)),
               (("mode", "grpo"), ("traces", "none")), (("mode", "grpo"), ("r_hat", 0)),
               (("kl_coef", 0.1),)] + [(("mode", m),) for m in ahpo.MODES]:
        assert check(*ok) is None, ok


_defaults = ahpo.parse_args([])


# ---- advantages and loss terms --------------------------------------------------------------------
def test_group_advantages():
    R = torch.tensor([1.0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    A = ahpo.group_advantages(R, 5)
    mu, sd = 0.2, (0.2 * 0.8) ** 0.5
    assert torch.allclose(A[:5], torch.tensor([(1 - mu) / sd] + [(0 - mu) / sd] * 4), atol=1e-4)
    assert A[5:].abs().max() == 0  # zero-variance groups carry no on-policy signal
    A2 = ahpo.group_advantages(R, 5, use_std=False)
    assert torch.allclose(A2[:5], torch.tensor([0.8, -0.2, -0.2, -0.2, -0.2]))


def test_on_policy_terms_match_the_formula():
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 6, generator=g) * 2
    old = logp + 0.3 * torch.randn(3, 6, generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0]]).float()
    A = torch.tensor([1.5, -0.7, 0.0])
    surr, clipped = ahpo.on_policy_terms(logp, old, A, mask, 0.2, 0.28)
    want, nclip = 0.0, 0
    for i in range(3):
        for t in range(6):
            if mask[i, t]:
                r = float(torch.exp(logp[i, t] - old[i, t]))
                u, c = r * float(A[i]), min(max(r, 0.8), 1.28) * float(A[i])
                want += min(u, c)
                nclip += c < u
    assert surr.item() == pytest.approx(want, rel=1e-5)
    assert clipped.item() == nclip
    # one epoch: pi_old is pi_theta detached, so the ratio is 1 and the clip never acts
    lp = logp.clone().requires_grad_(True)
    surr1, clip1 = ahpo.on_policy_terms(lp, lp.detach(), A, mask, 0.2, 0.28)
    assert clip1.item() == 0
    assert surr1.item() == pytest.approx(float((A[:, None] * mask).sum()))
    surr1.backward()  # d/dlogp of r*A at r = 1 is A: the policy gradient
    assert torch.allclose(lp.grad, A[:, None] * mask)


def test_expert_nll_and_luffy_group():
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -3.0, -0.2]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]]).float()
    assert ahpo.expert_nll(logp, mask, torch.ones(2)).item() == pytest.approx(1.0 + 2.0 + 0.1 + 3.0)
    assert ahpo.expert_nll(logp, mask, torch.tensor([0.0, 1.0])).item() == pytest.approx(0.1 + 3.0)   # xi = 0: no term
    # LUFFY: prompt 0 (an expert trace) is re-normalised over N + 1 members, the expert with
    # reward 1; prompt 1 (no trace) keeps its plain group's advantages and an expert A of 0
    R = torch.tensor([1.0, 0, 0, 0, 1, 0])
    A = ahpo.group_advantages(R, 3)
    A_l, A_e = ahpo.luffy_group(R, 3, A, torch.tensor([True, False]))
    want = ahpo.group_advantages(torch.tensor([1.0, 0, 0, 1]), 4)
    assert torch.equal(A_l[:3], want[:3]) and A_e[0] == want[3] > 0
    assert torch.equal(A_l[3:], A[3:]) and A_e[1] == 0
    assert torch.equal(A, ahpo.group_advantages(R, 3))   # the plain advantages are left as they were


def test_luffy_and_kl_terms():
    logp = torch.log(torch.tensor([[0.5, 0.1, 0.9]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    got = ahpo.luffy_terms(logp, torch.tensor([2.0]), mask, 0.1)
    assert got.item() == pytest.approx(2 * (0.5 / 0.6 + 0.1 / 0.2))
    assert ahpo.kl_k3(logp, logp, mask).item() == 0
    assert ahpo.kl_k3(logp, logp - 0.5, mask).item() > 0


# ---- a toy verifiable task the tiny model can learn ---------------------------------------------
class Letter(Task):
    """Toy: the correct letter is always C. Reward 1 for \\boxed{C}."""
    name, official, group = "toy_letter", "toy_letter", "Algorithms"

    def make(self, rng, level):
        return {"options": "ABCD"}, "C", {}

    def check(self, answer, state):
        return answer.strip() == "C"

    def format_answer(self, s):
        return s

    def state_from_str(self, text):
        return json.loads(text)


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    t = Letter()
    monkeypatch.setitem(tasks.TASKS, t.name, t)
    monkeypatch.setitem(tasks.BY_OFFICIAL, t.official, t)
    recs, traces = [], []
    for k in range(8):
        r = {"id": f"toy-{k}", "category": t.official, "task": t.name, "difficulty": 1,
             "question": f"Puzzle {k}. Which letter is correct: A, B, C or D?",
             "question_text": f"Puzzle {k}. Which letter is correct: A, B, C or D?",
             "answer": "C", "initial_state": json.dumps({"options": "ABCD"}), "images": []}
        recs.append(r)
        trace = "<think>C</think>\\boxed{C}"
        traces.append({**r, "messages": tasks.messages_for(r, True) + [{"role": "assistant", "content": trace}]})
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces))
    vlm.make_tiny(str(tmp_path / "base"), kind="causal", seed=0)
    return tmp_path


def _args(d, mode, steps, *extra, out=None):
    out = out or mode
    return ["--mode", mode, "--model", str(d / "base"), "--records", str(d / "records.jsonl"),
            "--traces", str(d / "traces.jsonl"), "--out", str(d / out), "--steps", str(steps),
            "--prompts-per-step", "4", "--rollouts", "5", "--max-new-tokens", "12", "--lr", "1e-2",
            "--text-only", "--save-every", "100", "--device", "cpu", *extra]


def _metrics(path):
    return [json.loads(line) for line in open(path)]


@pytest.mark.parametrize("mode", list(ahpo.MODES))
def test_one_step_of_every_mode(toy, mode, monkeypatch):
    """ahpo_step alone, as main calls it: what each mode's table row promises (rollouts or none,
    the gate, LUFFY's expert members), and L_off = sum_j xi_j NLL(y*_j) / T_off recomputed by hand
    on a copy of the model taken before the step."""
    import copy
    import hashlib
    # a random tiny model is never right: a pseudo-reward (a hash bit of the reply) gives groups
    # with mixed rewards, so advantages, the gate and the clip all have work to do
    monkeypatch.setattr(tasks, "score", lambda text, rec: hashlib.sha256(text.encode()).digest()[0] % 2 == 0)
    args = ahpo.parse_args(_args(toy, mode, 1, "--micro-batch-size", "3"))
    ahpo.resolve_defaults(args)
    prompts = ahpo.load_prompts(args, master=True)
    run = vlm.training.setup(args, "ahpo", 0, 1, torch.device("cpu"))
    prompts = ahpo.check_lengths(args, run.proc, prompts, run.max_len, run.text_only)
    vlm.training.start(run, args)
    before = copy.deepcopy(run.model)
    s = ahpo.ahpo_step(args, run, prompts, [0, 1, 2, 3], 0)
    row = ahpo.MODES[mode]
    assert s["n_rows"] == (4 * 5 if row.rollouts else 0)
    assert (s["T_on"] > 0) == row.rollouts
    assert s["xi"].tolist() == ahpo.gate(s["R"], 5 if row.rollouts else 0, 2, mode, torch.ones(4, dtype=torch.bool)).tolist()
    if mode == "ahpo":
        assert s["xi"].tolist() == [float(k < 2) for k in (s["R"].view(4, 5) >= 1).sum(1).tolist()]
    # L_off, by hand: the NLL of each expert trace under the model before the step, xi-weighted
    nll, T_off = [], 0.0
    for j, p in enumerate(prompts[:4]):
        if p["expert"] is None:   # grpo reads no trace: its xi is 0
            nll.append(0.0)
            continue
        tb = vlm.train_batch(run.proc, [p["messages"]], [p["expert"]])
        with torch.no_grad():
            lp, _ = vlm.logprobs(before, tb)
        nll.append(-(lp * tb["completion_mask"]).sum().item())
        T_off += float(tb["completion_mask"].sum()) * (s["xi"][j] > 0)
    assert s["T_off"] == T_off
    want = sum(x * v for x, v in zip(s["xi"].tolist(), nll)) / max(T_off, 1.0)
    assert s["off"] == pytest.approx(want, rel=1e-5, abs=1e-7)
    if row.rollouts:   # T_on: the rollouts' tokens, and with LUFFY the expert members' too
        assert (s["T_on"] > s["roll_tokens"]) == row.luffy and (s["T_on"] >= s["roll_tokens"])
    moved = any(not torch.equal(a, b) for a, b in zip(before.parameters(), run.model.parameters()))
    assert moved and s["grad_norm"] > 0


def test_report_to_tensorboard_mirrors_every_number_of_a_row(toy):
    """ahpo's rows hold numbers and two fields that are not (mode, per_prompt): every number is a
    scalar at its step, the others stay in metrics.jsonl only."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install --no-deps -r "
                                              "requirements-test.txt)")
    from tb_events import check_tensorboard
    ahpo.main(_args(toy, "ahpo", 2, "--report-to", "tensorboard", "--rollouts", "2", out="tb"))
    rows = check_tensorboard(str(toy / "tb"))
    assert len(rows) == 2 and {"mode", "per_prompt"} <= set(rows[0])


def test_ahpo_learns_the_toy_task(toy):
    ahpo.main(_args(toy, "ahpo", 60, "--r-hat", "2"))
    m = _metrics(toy / "ahpo/metrics.jsonl")
    first = sum(r["reward_mean"] for r in m[:5]) / 5
    last = sum(r["reward_mean"] for r in m[-5:]) / 5
    assert first < 0.2 and last > 0.6, (first, last)
    assert m[0]["xi_rate"] == 1.0 and m[-1]["xi_rate"] < 0.5  # the gate switches itself off
    assert set(m[0]) == set(m[-1])
    for r in m:   # per_prompt: [record id, successes of 5, xi] for each prompt of the step
        ids, succ, xi = zip(*r["per_prompt"])
        assert len(ids) == 4 and set(ids) <= {f"toy-{k}" for k in range(8)}
        assert list(xi) == [int(s < 2) for s in succ]   # R_hat = 2, every prompt has a trace
        assert sum(xi) / 4 == r["xi_rate"] and sum(succ) / 20 == pytest.approx(r["reward_mean"])


def test_with_zero_rewards_grpo_stands_still_and_ahpo_learns_from_the_expert(toy):
    # Reward is never 1 for a random tiny model in 4 steps: the groups are all zero-variance.
    w0 = {k: v.clone() for k, v in vlm.load(str(toy / "base"))[0].state_dict().items()}
    ahpo.main(_args(toy, "grpo", 3))
    m = _metrics(toy / "grpo/metrics.jsonl")
    assert all(r["reward_mean"] == 0 and r["zero_var_rate"] == 1.0 and r["loss_off"] == 0 for r in m)
    w1 = vlm.load(str(toy / "grpo/final"))[0].state_dict()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # A = 0 everywhere: nothing moves
    ahpo.main(_args(toy, "ahpo", 3))
    m = _metrics(toy / "ahpo/metrics.jsonl")
    assert all(r["xi_rate"] == 1.0 for r in m)
    assert m[-1]["loss_off"] < m[0]["loss_off"]  # the expert NLL falls
    w2 = vlm.load(str(toy / "ahpo/final"))[0].state_dict()
    assert any(not torch.equal(w0[k], w2[k]) for k in w0)


def test_sft_mode_uses_only_the_expert_term(toy):
    ahpo.main(_args(toy, "sft", 3))
    m = _metrics(toy / "sft/metrics.jsonl")
    assert all(r["tokens_on"] == 0 and r["loss_on"] == 0 and r["xi_rate"] == 1.0 for r in m)
    assert m[-1]["loss_off"] < m[0]["loss_off"]


def test_static_and_luffy_run(toy):
    ahpo.main(_args(toy, "static", 2))
    assert all(r["xi_rate"] == 1.0 for r in _metrics(toy / "static/metrics.jsonl"))
    ahpo.main(_args(toy, "luffy", 2))
    m = _metrics(toy / "luffy/metrics.jsonl")
    # the expert joins each group: its tokens count as on-policy tokens, the NLL term is off
    assert all(r["xi_rate"] == 0 and r["loss_off"] == 0 for r in m)
    assert all(r["tokens_on"] > r["response_len"] * 20 for r in m)


def test_resume_equals_an_uninterrupted_run(toy):
    ahpo.main(_args(toy, "ahpo", 4, "--epochs", "2", "--save-every", "2", out="full"))
    ahpo.main(_args(toy, "ahpo", 2, "--epochs", "2", "--save-every", "2", out="cut"))
    ahpo.main(_args(toy, "ahpo", 4, "--epochs", "2", "--save-every", "2", out="cut"))  # resumes at 2
    a = vlm.load(str(toy / "full/final"))[0].state_dict()
    b = vlm.load(str(toy / "cut/final"))[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(toy / "full/metrics.jsonl")[-1]["reward_mean"] == _metrics(toy / "cut/metrics.jsonl")[-1]["reward_mean"]


@pytest.mark.parametrize("dp_shard,layout", [("2", ()), ("1", ()), ("2", ("--micro-batch-tokens", "1500"))])
def test_two_processes_equal_one(tmp_path, dp_shard, layout):
    """FSDP2 on two ranks, sharded (--dp-shard 2) or replicated (1): rollouts sampled on the
    gathered model, the gate's expert rows and LUFFY-free micro-batches padded to equal counts;
    and packed micro-batches under a token budget (--micro-batch-tokens), which give the ranks
    different numbers of forward passes, against one process's rows of today's layout."""
    # A real task (registered in every process): buy_sell_stock, text-only, tiny VL model.
    import synth
    synth.main(["--split", "train", "--tasks", "buy_sell_stock", "--levels", "1", "--count", "8",
                "--out", str(tmp_path / "train"), "--no-images", "--exclude", ""])
    import elicit
    elicit.main(["--records", str(tmp_path / "train/records.jsonl"), "--out", str(tmp_path / "traces.jsonl"),
                 "--text-only"])
    vlm.make_tiny(str(tmp_path / "base"), seed=1)
    common = ["--model", str(tmp_path / "base"), "--records", str(tmp_path / "train/records.jsonl"),
              "--traces", str(tmp_path / "traces.jsonl"), "--steps", "2", "--prompts-per-step", "4",
              "--rollouts", "3", "--max-new-tokens", "8", "--lr", "1e-3", "--text-only", "--rollout-chunk", "2",
              "--micro-batch-size", "3", "--device", "cpu", "--max-len", "4096"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # two ranks with the process group vlm.dist_init builds for GPUs (tests/launch.py: a CPU
    # collective the NCCL group would not carry fails here too)
    subprocess.run([sys.executable, "tests/launch.py", "ahpo.py", *common, "--out", str(tmp_path / "one")],
                   cwd=ROOT, check=True, env={**env, "GRADS_OUT": str(tmp_path / "g1.pt")}, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={_free_port()}", "tests/launch.py", "ahpo.py", *common, "--out", str(tmp_path / "two"),
                        "--dp-shard", dp_shard, *layout],
                       cwd=ROOT, env={**env, "GRADS_OUT": str(tmp_path / "g2.pt")}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    # the first step's summed gradient, before any optimizer step; tolerance: GRAD_RTOL's
    # argument in tests/test_sft.py (float32 summation order, sqrt(n) u with n < 10^4)
    g1, g2 = (torch.cat([g.flatten() for g in torch.load(tmp_path / f)]) for f in ("g1.pt", "g2.pt"))
    assert g1.norm() > 0 and (g1 - g2).norm() <= 1e-5 * g1.norm(), ((g1 - g2).norm() / g1.norm()).item()
    ma, mb = _metrics(tmp_path / "one/metrics.jsonl"), _metrics(tmp_path / "two/metrics.jsonl")
    for x, y in zip(ma, mb):
        for key in ("reward_mean", "xi_rate", "tokens_on", "tokens_off", "response_len"):
            assert x[key] == pytest.approx(y[key]), key
        assert x["loss_off"] == pytest.approx(y["loss_off"], rel=1e-5, abs=1e-6)
        assert x["per_prompt"] == y["per_prompt"]   # gathered from both ranks, in the step's order


def test_rollouts_that_would_be_cut_are_refused_before_the_first_step(toy):
    # --max-new-tokens alone over --max-len: refused before the model is read (it does not exist)
    with pytest.raises(SystemExit) as e:
        ahpo.main(_args(toy, "ahpo", 2, "--max-len", "12", "--model", str(toy / "no-such-model")))
    assert "--max-new-tokens 12" in str(e.value) and "--max-len 12" in str(e.value)
    # the longest prompt + --max-new-tokens over --max-len: one line naming both numbers
    _, proc = vlm.load(str(toy / "base"))
    recs = [json.loads(line) for line in open(toy / "records.jsonl")]
    P = max(len(vlm.encode(proc, tasks.messages_for(r, True))[0]) for r in recs)
    with pytest.raises(SystemExit) as e:
        ahpo.main(_args(toy, "grpo", 2, "--max-len", str(P + 11)))
    msg = str(e.value)
    assert msg.startswith("error:") and "\n" not in msg
    assert f"of {P} tokens + --max-new-tokens 12 = {P + 12} > --max-len {P + 11}" in msg
    # refused after the model was read, yet nothing was written: no run.json stands in the way
    # of the corrected rerun (here with another budget too)
    assert not os.path.exists(toy / "grpo/metrics.jsonl") and not os.path.exists(toy / "grpo/run.json")
    ahpo.main(_args(toy, "grpo", 1, "--max-len", str(P + 12)))   # exactly fits: runs
    assert len(_metrics(toy / "grpo/metrics.jsonl")) == 1
