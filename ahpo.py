"""Stage 4: AHPO, Adaptive Hybrid Policy Optimization (MM-HELIX section 3.3), and its baselines.

    python ahpo.py                                   # runs/sft/final (or a tiny model) -> runs/ahpo/
    python ahpo.py --mode grpo                       # the paper's Table 2 baselines: grpo, sft, static, luffy
    torchrun --nproc_per_node=8 ahpo.py --model runs/sft/final --prompts-per-step 128 \\
        --max-new-tokens 8192 --zero --grad-checkpointing

For a prompt x with expert trace y* and N rollouts tau_1..tau_N from pi_old:

    A_i   = (R(tau_i) - mean_j R(tau_j)) / (std_j R(tau_j) + eps)      group-normalised advantage
    r_i,t = pi_theta(tau_i,t | x, tau_i,<t) / pi_old(tau_i,t | x, tau_i,<t)
    L_on  = -(1/T_on)  sum_i sum_t min(r_i,t A_i, clip(r_i,t, 1 - eps_lo, 1 + eps_hi) A_i)
    L_off = -(1/T_off) sum_t log pi_theta(y*_t | x, y*_<t)
    xi    = 1[ #{i : R(tau_i) = 1} < R_hat ]                            per prompt
    L     = xi * L_off + L_on

One step, in the order of the method: take prompts -> sample N rollouts each (KV-cached, the
image encoded once per prompt) -> reward by the task verifier -> advantages -> the gate xi ->
loss (token counts T_on, T_off of the WHOLE global batch, all ranks) -> one optimizer step per
epoch over the batch. Modes (Table 2): `ahpo` the gate above; `grpo` xi = 0; `static` xi = 1;
`sft` the expert term only (no rollouts); `luffy` the expert trace joins the group as a member
with reward 1 and policy shaping f(p) = p / (p + gamma) on its tokens, unclipped.

Simplifications, on purpose:
  - rewards are binary (the verifier), no format reward, no KL unless --kl-coef > 0;
  - with one epoch per batch pi_old is pi_theta detached (the same forward), so r = 1 and the
    clip is inactive; with --epochs > 1 old log-probs come from a no-grad pass first;
  - on-policy log-probs use the sampling temperature (as the sampler did); the expert terms
    (NLL, LUFFY shaping) use temperature 1, the model's own likelihood;
  - prompts without an expert trace (exploration-only data) have xi = 0;
  - gradients are summed across ranks by hand (vlm.all_reduce_grads), no DDP wrapper.
Paper settings: N = 5, R_hat = 2, 128 prompts a step, no KL. The learning rate, lengths,
temperature and clip values are not published; ours are defaults, not the paper's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time

import torch

import tasks
import vlm
from tasks.plot import training_curves
from tasks.progress import Progress

MODES = ("ahpo", "grpo", "static", "luffy", "sft")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="ahpo")
    p.add_argument("--model", default=None, help="default: runs/sft/final, else a tiny offline model")
    p.add_argument("--records", default="data/train/records.jsonl", help="prompts (synth.py --split train)")
    p.add_argument("--traces", default="data/traces.jsonl", help="expert traces y* (elicit.py); optional")
    p.add_argument("--out", default="runs/ahpo")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps (x epochs)")
    p.add_argument("--prompts-per-step", type=int, default=8, help="prompts per step, all ranks (paper: 128)")
    p.add_argument("--rollouts", dest="n", type=int, default=5,
                   help="N, rollouts per prompt (paper: 5); not --n, which torchrun would claim")
    p.add_argument("--r-hat", type=int, default=2, help="R_hat: expert term on when fewer successes (paper: 2)")
    p.add_argument("--eps-lo", type=float, default=0.2, help="clip low: ratio >= 1 - eps_lo")
    p.add_argument("--eps-hi", type=float, default=0.28, help="clip high: ratio <= 1 + eps_hi")
    p.add_argument("--no-std", action="store_true", help="advantages R - mean, without / std")
    p.add_argument("--gamma", type=float, default=0.1, help="LUFFY policy shaping f(p) = p / (p + gamma)")
    p.add_argument("--kl-coef", type=float, default=0.0, help="KL to the initial model (k3); 0 = off, as the paper")
    p.add_argument("--epochs", type=int, default=1, help="optimisation epochs per batch (>1: the ratio matters)")
    p.add_argument("--temperature", type=float, default=1.0, help="rollout temperature")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256, help="rollout length budget")
    p.add_argument("--max-len", type=int, default=8192, help="prompt + completion tokens in training")
    p.add_argument("--rollout-chunk", type=int, default=0,
                   help="prompts per sampler call (default: a rank's share); rollouts of a chunk "
                        "depend only on (seed, step, chunk), so any number of ranks gives the same samples")
    p.add_argument("--micro-batch-size", type=int, default=8, help="sequences per forward pass")
    p.add_argument("--lr", type=float, default=None, help="default 1e-6 (1e-3 for toy models)")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    p.add_argument("--text-only", action="store_true", help="text questions, no images")
    p.add_argument("--freeze-vision", action="store_true")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--zero", action="store_true", help="shard AdamW states over ranks (ZeRO-1)")
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--keep", type=int, default=2)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--min-pixels", type=int, default=None)
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


# ---- the method's pieces, as functions a test can call ------------------------------------------
def group_advantages(R, n, use_std=True, eps=1e-6):
    """A_i = (R_i - mean_group) / (std_group + eps) for consecutive groups of n rewards.
    A group whose rewards are all equal gets A = 0: it carries no on-policy signal."""
    g = R.view(-1, n)
    A = g - g.mean(1, keepdim=True)
    if use_std:
        A = A / (g.std(1, keepdim=True, unbiased=False) + eps)
    return A.view(-1)


def gate(R, n, R_hat, mode, has_expert):
    """xi per prompt. ahpo: 1[#successes < R_hat]; grpo, luffy: 0; static, sft: 1.
    A prompt without an expert trace never has the expert term."""
    successes = (R.view(-1, n) >= 1).sum(1) if n else torch.zeros(len(has_expert))
    xi = {"ahpo": (successes < R_hat).float(), "grpo": torch.zeros(len(has_expert)),
          "luffy": torch.zeros(len(has_expert)), "static": torch.ones(len(has_expert)),
          "sft": torch.ones(len(has_expert))}[mode]
    return xi * has_expert.float()


def on_policy_terms(logp, old_logp, A, mask, eps_lo, eps_hi):
    """sum_t min(r A, clip(r) A) over completion tokens (the caller divides by T_on), and the
    number of tokens where the clip was active. logp/old_logp/mask: (B, L); A: (B,)."""
    ratio = torch.exp(logp - old_logp)
    adv = A[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_lo, 1 + eps_hi) * adv
    surrogate = torch.minimum(unclipped, clipped)
    clip_active = ((clipped < unclipped) & (mask > 0)).sum()
    return (surrogate * mask).sum(), clip_active


def luffy_terms(logp, A, mask, gamma):
    """LUFFY's off-policy member: sum_t f(pi_theta(y*_t)) A with f(p) = p / (p + gamma), no clip."""
    p = logp.exp()
    return (p / (p + gamma) * A[:, None] * mask).sum()


def kl_k3(logp, ref_logp, mask):
    """Unbiased, non-negative KL estimate per token: exp(ref - logp) - (ref - logp) - 1."""
    d = ref_logp - logp
    return ((torch.exp(d) - d - 1) * mask).sum()


# ---- data -------------------------------------------------------------------------------------------
def load_prompts(a, master):
    if not os.path.exists(a.records):
        raise SystemExit(f"error: {a.records} not found (make it with: python synth.py --split train)")
    records, errors = tasks.read_records(a.records)
    for e in errors if master else ():
        print(f"warning: skipped record: {e}", file=sys.stderr)
    experts = {}
    if a.traces and os.path.exists(a.traces):
        examples, problems = vlm.read_traces(a.traces)
        for pr in problems if master else ():
            print(f"warning: skipped trace: {pr}", file=sys.stderr)
        experts = {e["id"]: e["completion"] for e in examples}
    root = os.path.dirname(os.path.abspath(a.records))
    prompts = [{"record": r, "messages": tasks.messages_for(r, a.text_only, root),
                "expert": experts.get(r["id"])} for r in records]
    if a.mode in ("sft", "luffy", "static") and not any(p["expert"] for p in prompts):
        raise SystemExit(f"error: mode {a.mode} needs expert traces; none matched in {a.traces}")
    if a.mode == "sft":  # the expert term only: prompts without a trace teach nothing
        prompts = [p for p in prompts if p["expert"]]
    if not prompts:
        raise SystemExit(f"error: no usable prompts in {a.records}")
    return prompts


def prompt_order(n_prompts, per_step, steps, seed):
    """The prompts of every step (global), a pure function of the seed: epochs of shuffles."""
    rng, order, out = random.Random(seed), [], []
    for _ in range(steps):
        while len(order) < per_step:
            perm = list(range(n_prompts))
            rng.shuffle(perm)
            order += perm
        out.append(order[:per_step])
        order = order[per_step:]
    return out


def chunk_seed(seed, step, chunk):
    return int(hashlib.sha256(f"{seed}:{step}:{chunk}".encode()).hexdigest()[:15], 16)


# ---- one step ----------------------------------------------------------------------------------------
def rollouts(a, model, proc, prompts, idx, step, rank, world):
    """This rank's chunks of the step's prompts -> (rows of (prompt index, token ids, text), tokens)."""
    P = len(idx)
    chunk = a.rollout_chunk or P // world
    chunks = [idx[c:c + chunk] for c in range(0, P, chunk)]
    mine = [(k, c) for k, c in enumerate(chunks) if k * world // len(chunks) == rank]
    rows = []
    model.eval()
    for k, c in mine:
        batch = vlm.prompt_batch(proc, [prompts[i]["messages"] for i in c], drop_images=a.text_only)
        out = vlm.sample(model, proc, batch, n=a.n, max_new_tokens=a.max_new_tokens,
                         temperature=a.temperature, top_p=a.top_p, seed=chunk_seed(a.seed, step, k))
        for r, (ids, text) in enumerate(zip(out.ids, out.texts)):
            rows.append((c[r // a.n], ids, text))
    model.train()
    return rows


def micro_batches(proc, items, size, max_len, drop_images):
    """items: [(messages, completion, extra)] -> [(train_batch, [extra...])]."""
    out = []
    for k in range(0, len(items), size):
        part = items[k:k + size]
        tb = vlm.train_batch(proc, [m for m, _, _ in part], [c for _, c, _ in part],
                             drop_images=drop_images, max_len=max_len)
        out.append((tb, [e for _, _, e in part]))
    return out


def main(argv=None):
    a = parse_args(argv)
    rank, world, device = vlm.dist_init(a.device)
    master = rank == 0
    if a.prompts_per_step % world:
        raise SystemExit(f"error: --prompts-per-step {a.prompts_per_step} is not divisible by {world} ranks")
    if a.rollout_chunk and (a.prompts_per_step // world) % a.rollout_chunk:
        raise SystemExit("error: --rollout-chunk must divide the prompts of a rank")
    torch.manual_seed(a.seed)
    resume = None if a.no_resume else vlm.latest_checkpoint(a.out)
    if a.model is None:
        a.model = "runs/sft/final" if os.path.isdir("runs/sft/final") else os.path.join(a.out, "tiny-base")
        if not os.path.isdir(a.model):
            if master:
                vlm.make_tiny(a.model, seed=a.seed)
            if world > 1:
                torch.distributed.barrier()
    dtype = getattr(torch, a.dtype) if a.dtype else None
    pix = {k: v for k, v in (("min_pixels", a.min_pixels), ("max_pixels", a.max_pixels)) if v}
    model, proc = vlm.load(resume or a.model, device=device, dtype=dtype, **pix)
    drop = a.text_only or proc.kind != "qwen2_5_vl"
    a.text_only = drop
    ref = None
    if a.kl_coef > 0:  # the reference is the starting model, frozen
        ref, _ = vlm.load(a.model, device=device, dtype=dtype, **pix)
        ref.requires_grad_(False)
    params = vlm.trainable(model, a.freeze_vision, a.grad_checkpointing)
    lr = a.lr if a.lr is not None else vlm.default_lr(model, big=1e-6, small=1e-3)
    opt = vlm.make_optimizer(params, lr, a.weight_decay, a.zero, world)

    prompts = load_prompts(a, master)
    schedule = prompt_order(len(prompts), a.prompts_per_step, a.steps, a.seed)
    start = 0
    if resume:
        st = torch.load(os.path.join(resume, "trainer_state.pt"), weights_only=False)
        opt.load_state_dict(st["optimizer"])
        vlm.set_rng_state(st["rng"][rank])
        start = st["step"]
        if master:
            print(f"resumed from {resume} at step {start}", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    metrics = vlm.open_metrics(os.path.join(a.out, "metrics.jsonl"), start) if master else None
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    n = 0 if a.mode == "sft" else a.n
    bar = Progress(a.steps, f"ahpo [{a.mode}]", unit="step", quiet=a.quiet or not master, start=start)
    t_start, n_tokens = time.perf_counter(), 0.0   # tokens sampled + tokens trained on, this process

    for step in range(start, a.steps):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_now = vlm.lr_at(step, a.steps, lr, a.warmup) if a.warmup else lr
        idx = schedule[step]
        per_rank = len(idx) // world
        my_idx = idx[rank * per_rank:(rank + 1) * per_rank]

        # 1. rollouts: N per prompt, from pi_old (the current weights)
        rows = rollouts(a, model, proc, prompts, idx, step, rank, world) if n else []
        t1 = time.perf_counter()
        # 2. rewards by the verifier (malformed output scores 0, never raises)
        R = torch.tensor([float(tasks.score(text, prompts[i]["record"])) for i, _, text in rows])
        t2 = time.perf_counter()
        # 3. group-normalised advantages and 4. the gate xi, per prompt of this rank
        has_expert = torch.tensor([prompts[i]["expert"] is not None for i in my_idx])
        if n:
            A = group_advantages(R, n, use_std=not a.no_std)
            xi = gate(R, n, a.r_hat, a.mode, has_expert)
            zero_var = (R.view(-1, n).std(1, unbiased=False) == 0).float()
        else:
            A, xi, zero_var = torch.zeros(0), gate(R, 0, a.r_hat, a.mode, has_expert), torch.zeros(len(my_idx))
        on_items = [(prompts[i]["messages"], ids, float(A[k])) for k, (i, ids, _) in enumerate(rows)]
        luffy_items = []
        if a.mode == "luffy":
            # the expert joins its group with reward 1: advantages over the N + 1 members
            for j, i in enumerate(my_idx):
                if prompts[i]["expert"] is None:
                    continue
                g = torch.cat([R[j * n:(j + 1) * n], torch.ones(1)])
                Ag = group_advantages(g, n + 1, use_std=not a.no_std)
                for k in range(n):
                    on_items[j * n + k] = on_items[j * n + k][:2] + (float(Ag[k]),)
                luffy_items.append((prompts[i]["messages"], prompts[i]["expert"], float(Ag[-1])))
        off_items = [(prompts[i]["messages"], prompts[i]["expert"], 1.0)
                     for j, i in enumerate(my_idx) if xi[j] > 0]

        on_mb = micro_batches(proc, on_items, a.micro_batch_size, a.max_len, drop)
        lf_mb = micro_batches(proc, luffy_items, a.micro_batch_size, a.max_len, drop)
        off_mb = micro_batches(proc, off_items, a.micro_batch_size, a.max_len, drop)
        # 5. token counts of the WHOLE global batch, before any backward pass
        count = lambda mbs: float(sum(int(tb["completion_mask"].sum()) for tb, _ in mbs))  # noqa: E731
        T_on = vlm.all_reduce_sum(count(on_mb) + count(lf_mb), world)
        T_off = vlm.all_reduce_sum(count(off_mb), world)
        # old log-probs: only needed when the batch is optimised more than once
        old = []
        if a.epochs > 1:
            with torch.no_grad(), autocast:
                for tb, _ in on_mb:
                    old.append(vlm.logprobs(model, tb, temperature=a.temperature)[0].detach())
        refs = []
        if ref is not None:
            with torch.no_grad(), autocast:
                refs = [vlm.logprobs(ref, tb, temperature=a.temperature)[0] for tb, _ in on_mb]

        # 6. the loss, L = xi * L_off + L_on, and one optimizer step per epoch
        stats = dict(on=0.0, off=0.0, clip=0.0, ent=0.0, kl=0.0)
        for epoch in range(a.epochs):
            for k, (tb, advs) in enumerate(on_mb):
                mask = tb["completion_mask"].to(device).float()
                with autocast:
                    logp, ent = vlm.logprobs(model, tb, temperature=a.temperature)
                old_logp = old[k] if old else logp.detach()  # one epoch: pi_old = pi_theta
                adv = torch.tensor(advs, device=device)
                surr, clipped = on_policy_terms(logp, old_logp, adv, mask, a.eps_lo, a.eps_hi)
                loss = -surr / max(T_on, 1.0)
                if ref is not None:
                    kl = kl_k3(logp, refs[k], mask)
                    loss = loss + a.kl_coef * kl / max(T_on, 1.0)
                    stats["kl"] += kl.item() if epoch == 0 else 0.0
                loss.backward()
                if epoch == 0:
                    stats["on"] += loss.item()
                    stats["clip"] += clipped.item()
                    stats["ent"] += (ent * mask).sum().item()
            for tb, advs in lf_mb:
                mask = tb["completion_mask"].to(device).float()
                with autocast:
                    logp, _ = vlm.logprobs(model, tb, temperature=1.0)
                loss = -luffy_terms(logp, torch.tensor(advs, device=device), mask, a.gamma) / max(T_on, 1.0)
                loss.backward()
                stats["on"] += loss.item() if epoch == 0 else 0.0
            for tb, _ in off_mb:
                mask = tb["completion_mask"].to(device).float()
                with autocast:
                    logp, _ = vlm.logprobs(model, tb, temperature=1.0)
                loss = -(logp * mask).sum() / max(T_off, 1.0)   # xi = 1 for every prompt here
                loss.backward()
                stats["off"] += loss.item() if epoch == 0 else 0.0
            vlm.all_reduce_grads(params, world)
            gnorm = torch.nn.utils.clip_grad_norm_(params, a.clip).item()
            opt.step()
            opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()

        # 7. log: the same keys every step
        tot = lambda x: vlm.all_reduce_sum(float(x), world)  # noqa: E731
        n_roll = tot(len(rows))
        # per prompt of the global batch, [record id, successes, xi]: lets a caller split the xi
        # rate and the reward by its own prompt groups (repro.py --setting mixed: easy / hard)
        per_prompt = torch.zeros(len(idx), 2)
        if n:
            per_prompt[rank * per_rank:(rank + 1) * per_rank, 0] = (R.view(-1, n) >= 1).sum(1).float()
        per_prompt[rank * per_rank:(rank + 1) * per_rank, 1] = xi
        per_prompt = vlm.all_reduce_sum(per_prompt, world)
        roll_tokens = tot(sum(len(ids) for _, ids, _ in rows))
        row = {"step": step + 1, "mode": a.mode, "lr": lr_now,
               "reward_mean": tot(R.sum()) / max(n_roll, 1.0),
               "xi_rate": tot(xi.sum()) / a.prompts_per_step,
               "zero_var_rate": tot(zero_var.sum()) / a.prompts_per_step if n else 0.0,
               "clip_frac": tot(stats["clip"]) / max(T_on, 1.0),
               "entropy": tot(stats["ent"]) / max(T_on, 1.0),
               "kl": tot(stats["kl"]) / max(T_on, 1.0),
               "response_len": roll_tokens / max(n_roll, 1.0),
               "loss_on": tot(stats["on"]), "loss_off": tot(stats["off"]), "grad_norm": gnorm,
               "tokens_on": T_on, "tokens_off": T_off,
               "rollout_tok_s": roll_tokens / max(t1 - t0, 1e-9),
               "train_tok_s": (T_on + T_off) * a.epochs / max(t3 - t2, 1e-9),
               "t_sample": t1 - t0, "t_score": t2 - t1, "t_train": t3 - t2,
               "per_prompt": [[prompts[i]["record"]["id"], int(s), int(x)] for i, (s, x) in zip(idx, per_prompt.tolist())]}
        if master:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            n_tokens += roll_tokens + (T_on + T_off) * a.epochs
            bar.log(step + 1, f"step {step + 1}/{a.steps} [{a.mode}] reward {row['reward_mean']:.3f} "
                    f"xi {row['xi_rate']:.2f} zero-var {row['zero_var_rate']:.2f} "
                    f"len {row['response_len']:.0f} on {row['loss_on']:+.4f} off {row['loss_off']:.4f} "
                    f"| sample {t1 - t0:.1f}s score {t2 - t1:.1f}s train {t3 - t2:.1f}s "
                    f"| {n_tokens / (time.perf_counter() - t_start):.0f} tok/s sampled+trained, running")
        done = step + 1
        if done % a.save_every == 0 or done == a.steps:
            vlm.checkpoint(a.out, done, model, proc, opt, vars(a), rank, world, keep=a.keep)
            if master:   # reward, xi, entropy, length, L_on / L_off, grad norm, lr: runs/ahpo/curves.png
                training_curves(os.path.join(a.out, "metrics.jsonl"))
    if master:
        model.eval()
        vlm.save(model, proc, os.path.join(a.out, "final"))
        metrics.close()
        print(f"done: wrote {a.out}/final", file=sys.stderr)
    vlm.dist_close()
    return a.out


if __name__ == "__main__":
    main()
