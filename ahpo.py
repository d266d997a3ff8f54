"""Stage 4: AHPO, Adaptive Hybrid Policy Optimization (MM-HELIX section 3.3), and its baselines.

    python ahpo.py                                   # runs/sft/final (or a tiny model) -> runs/ahpo/
    python ahpo.py --mode grpo --model BASE          # Table 2 baselines (grpo, sft, static, luffy) -> runs/<mode>/
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
  - gradients are summed across ranks by hand (training.all_reduce_grads), no DDP wrapper.
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
from harness import cli, runs
from harness.chat import read_traces
from harness.jsonl import read_records
from harness.plot import training_curves
from harness.progress import Progress
from vlm import modelio, sampler, tiny, training

MODES = ("ahpo", "grpo", "static", "luffy", "sft")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--records", default="data/train/records.jsonl", help="prompts (synth.py --split train)")
    g.add_argument("--traces", default="data/traces.jsonl",
                   help="expert traces y* (elicit.py); 'none': exploration only (xi = 0 always)")
    g.add_argument("--text-only", action="store_true", help="text questions, no images")
    g.add_argument("--max-len", type=cli.positive_int, default=None,
                   help="tokens, prompt + completion in training (default: the model's context length); "
                        "rows are never cut (see --drop-long)")
    g.add_argument("--drop-long", action="store_true",
                   help="expert traces longer than --max-len are dropped (counted per task), not refused")
    g.add_argument("--min-pixels", type=cli.positive_int, default=None,
                   help="pixels, image processor minimum (default: the model's)")
    g.add_argument("--max-pixels", type=cli.positive_int, default=None,
                   help="pixels, image processor maximum (default: the model's)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="default: runs/sft/final, else a tiny offline model")
    g.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: bfloat16 on GPU, float32 on CPU)")
    g.add_argument("--freeze-vision", action="store_true", help="train the language model only")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")
    g = p.add_argument_group("method")
    g.add_argument("--mode", choices=MODES, default="ahpo",
                   help="ahpo, or a Table 2 baseline: grpo (xi = 0), static (xi = 1), sft, luffy")
    g.add_argument("--rollouts", dest="n", type=cli.positive_int, default=5,
                   help="N, rollouts per prompt (paper: 5); not --n, which torchrun would claim")
    g.add_argument("--r-hat", type=cli.nonneg_int, default=2,
                   help="R_hat: expert term on when fewer successes (paper: 2)")
    g.add_argument("--eps-lo", type=cli.nonneg_float, default=0.2, help="clip low: ratio >= 1 - eps_lo")
    g.add_argument("--eps-hi", type=cli.nonneg_float, default=0.28, help="clip high: ratio <= 1 + eps_hi")
    g.add_argument("--no-std", action="store_true", help="advantages R - mean, without / std")
    g.add_argument("--gamma", type=cli.positive_float, default=0.1,
                   help="LUFFY policy shaping f(p) = p / (p + gamma)")
    g.add_argument("--kl-coef", type=cli.nonneg_float, default=0.0,
                   help="KL to the initial model (k3); 0 = off, as the paper")
    g.add_argument("--temperature", type=cli.positive_float, default=1.0, help="rollout temperature")
    g.add_argument("--top-p", type=cli.positive_float, default=1.0, help="rollout nucleus mass")
    g.add_argument("--lr", type=cli.positive_float, default=None,
                   help="learning rate (default 1e-6; 1e-3 for a model under 50M parameters)")
    g.add_argument("--warmup", type=cli.nonneg_int, default=0, help="linear warmup steps")
    g.add_argument("--schedule", choices=training.SCHEDULES, default="constant",
                   help="after warmup: constant, or cosine decay to 10%% of --lr at the last step")
    g.add_argument("--weight-decay", type=cli.nonneg_float, default=0.0, help="AdamW weight decay")
    g.add_argument("--max-grad-norm", type=cli.positive_float, default=1.0,
                   help="clip the gradient's global L2 norm to this (the PPO ratio clip is --eps-lo/--eps-hi)")
    g.add_argument("--seed", type=int, default=0, help="prompt order and rollout seed")
    g = p.add_argument_group("budget")
    g.add_argument("--steps", type=cli.positive_int, default=20, help="optimizer steps (x epochs)")
    g.add_argument("--prompts-per-step", type=cli.positive_int, default=8,
                   help="prompts per step, all ranks (paper: 128)")
    g.add_argument("--epochs", type=cli.positive_int, default=1,
                   help="optimisation epochs per batch (>1: the ratio matters)")
    g.add_argument("--max-new-tokens", type=cli.positive_int, default=256, help="tokens, rollout length budget")
    g.add_argument("--rollout-chunk", type=cli.nonneg_int, default=0,
                   help="prompts per sampler call (0: a rank's share); rollouts of a chunk "
                        "depend only on (seed, step, chunk), so any number of ranks gives the same samples")
    g.add_argument("--micro-batch-size", type=cli.positive_int, default=8,
                   help="sequences per forward pass (does not change the gradient)")
    g = p.add_argument_group("distributed")
    g.add_argument("--zero", action="store_true", help="shard AdamW states over ranks (ZeRO-1)")
    g.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None,
                   help="output folder (default: runs/<mode>, runs/ahpo-sft for mode sft; "
                        "runs/sft-<that> for a baseline started from runs/sft/final)")
    g.add_argument("--save-every", type=cli.positive_int, default=10, help="checkpoint every N steps")
    g.add_argument("--keep", type=cli.nonneg_int, default=2, help="step-N folders kept (0: all)")
    g.add_argument("--overwrite", "--no-resume", dest="no_resume", action="store_true",
                   help="start afresh: remove this folder's earlier checkpoints, final/ and metrics")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


# settings a rerun may change and still continue the same run: they leave the maths unchanged.
# The step budget may grow when the schedule is constant: the prompt order
# of the first k steps does not depend on the budget (prompt_order is a prefix-stable stream).
MAY_DIFFER = ("save_every", "keep", "micro_batch_size", "grad_checkpointing", "device", "no_resume",
              "quiet")
RUN_OUTPUTS = ("step-*", "final", "metrics.jsonl", runs.RUN_FILE)


def default_paths(args):
    """--model and --out when not given: AHPO continues SFT (runs/sft/final if it exists); a
    baseline gets its own folder, runs/<mode>, or runs/sft-<mode> when it starts from SFT (the
    paper's 'SFT then GRPO'), so no two Table 2 methods share a folder."""
    if args.model is None and os.path.isdir("runs/sft/final"):
        args.model = "runs/sft/final"
        print("note: starting from runs/sft/final (sft.py's output); pass --model to start elsewhere",
              file=sys.stderr)
    if args.out is None:
        from_sft = args.model is not None and os.path.normpath(args.model) == os.path.normpath("runs/sft/final")
        name = "ahpo-sft" if args.mode == "sft" else args.mode   # runs/sft is sft.py's
        args.out = os.path.join("runs", name if args.mode == "ahpo" or not from_sft else f"sft-{name}")


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


def expert_nll(logp, mask):
    """L_off's sum: -sum_t log pi_theta(y*_t | x, y*_<t) over the expert tokens (the caller
    divides by T_off). logp, mask: (B, L)."""
    return -(logp * mask).sum()


def luffy_group(R, n, A, has_expert, use_std=True):
    """LUFFY's group: each prompt's expert trace joins its N rollouts as member N + 1 with
    reward 1. Returns the rollouts' advantages (over the N + 1 members where the prompt has an
    expert trace; A, the plain group's, elsewhere) and the expert member's (per prompt; 0
    without a trace)."""
    A, A_expert = A.clone(), torch.zeros(len(has_expert))
    for j in has_expert.nonzero().flatten().tolist():
        Ag = group_advantages(torch.cat([R[j * n:(j + 1) * n], torch.ones(1)]), n + 1, use_std=use_std)
        A[j * n:(j + 1) * n], A_expert[j] = Ag[:n], Ag[-1]
    return A, A_expert


def luffy_terms(logp, A, mask, gamma):
    """LUFFY's off-policy member: sum_t f(pi_theta(y*_t)) A with f(p) = p / (p + gamma), no clip."""
    p = logp.exp()
    return (p / (p + gamma) * A[:, None] * mask).sum()


def kl_k3(logp, ref_logp, mask):
    """Unbiased, non-negative KL estimate per token: exp(ref - logp) - (ref - logp) - 1."""
    d = ref_logp - logp
    return ((torch.exp(d) - d - 1) * mask).sum()


# ---- data -------------------------------------------------------------------------------------------
def load_prompts(args, master):
    if not os.path.exists(args.records):
        raise SystemExit(f"error: {args.records} not found (make it with: python synth.py --split train)")
    records, errors = read_records(args.records)
    for e in errors if master else ():
        print(f"warning: skipped record: {e}", file=sys.stderr)
    if not records:
        raise SystemExit(f"error: no usable records in {args.records}")
    experts = {}
    use_traces = args.traces != "none" and args.mode != "grpo"   # grpo never uses y* (xi = 0)
    if args.traces == "none" and args.mode in ("sft", "luffy", "static"):
        raise SystemExit(f"error: --traces none: mode {args.mode} needs expert traces")
    if use_traces:
        hint = "make it with: python elicit.py" + ("; or --traces none for exploration only (xi = 0)"
                                                    if args.mode == "ahpo" else "")
        if not os.path.isfile(args.traces):
            raise SystemExit(f"error: --traces {args.traces}: not found ({hint})")
        examples, problems = read_traces(args.traces)
        for pr in problems if master else ():
            print(f"warning: skipped trace: {pr}", file=sys.stderr)
        if not examples:
            raise SystemExit(f"error: --traces {args.traces}: no usable trace ({len(problems)} lines skipped)")
        experts = {e["id"]: e["completion"] for e in examples}
        matched = sum(r["id"] in experts for r in records)
        if not matched:
            raise SystemExit(f"error: --traces {args.traces}: none of its {len(experts)} trace ids is a "
                             f"prompt id of {args.records} (first trace id: {next(iter(experts))!r})")
        if master:
            print(f"{matched} of {len(records)} prompts have an expert trace ({args.traces}); "
                  f"the others are exploration only (xi = 0)", file=sys.stderr)
    elif master and args.mode == "ahpo":
        print(f"--traces none: all {len(records)} prompts are exploration only (xi = 0)", file=sys.stderr)
    root = os.path.dirname(os.path.abspath(args.records))
    prompts = [{"record": r, "messages": tasks.messages_for(r, args.text_only, root),
                "expert": experts.get(r["id"])} for r in records]
    if args.mode in ("sft", "luffy", "static") and not any(p["expert"] for p in prompts):
        raise SystemExit(f"error: mode {args.mode} needs expert traces; none matched in {args.traces}")
    if args.mode == "sft":  # the expert term only: prompts without a trace teach nothing
        prompts = [p for p in prompts if p["expert"]]
    if not prompts:
        raise SystemExit(f"error: no usable prompts in {args.records}")
    return prompts


def check_lengths(args, proc, prompts, master=True):
    """Refuse, before the first step, a run whose rows could be cut: the longest prompt plus
    --max-new-tokens (a rollout's answer and EOS, what the reward read, are its last tokens),
    and prompt + expert trace (its answer is at its end), must fit --max-len. With --drop-long
    the traces that do not fit are dropped (their prompts stay, without the expert term).
    Returns the prompts."""
    P = modelio.prompt_lengths(proc, [p["messages"] for p in prompts], drop_images=args.text_only)
    k = max(range(len(P)), key=P.__getitem__)
    if args.mode != "sft" and P[k] + args.max_new_tokens > args.max_len:
        raise SystemExit(f"error: {args.records}: prompt {prompts[k]['record']['id']} of {P[k]} tokens + "
                         f"--max-new-tokens {args.max_new_tokens} = {P[k] + args.max_new_tokens} > --max-len "
                         f"{args.max_len}: rollouts would be cut; raise --max-len to {P[k] + args.max_new_tokens}")
    ex = [(p, n) for p, n in zip(prompts, P) if p["expert"]]
    if args.mode != "grpo" and ex:
        rows = [n + c for (_, n), c in zip(ex, modelio.completion_lengths(proc, [p["expert"] for p, _ in ex]))]
        what = modelio.too_long([p["record"] for p, _ in ex], rows, args.max_len, "expert traces")
        if what:
            if not args.drop_long:
                raise SystemExit(f"error: {args.traces}: {what}; raise --max-len or pass --drop-long")
            if master:
                print(f"note: dropped {what}: their prompts have no expert term", file=sys.stderr)
            for (p, _), n in zip(ex, rows):
                if n > args.max_len:
                    p["expert"] = None
            prompts = [p for p in prompts if p["expert"] or args.mode != "sft"]
            if not prompts:
                raise SystemExit(f"error: {args.traces}: every expert trace is longer than --max-len {args.max_len}")
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
def rollouts(args, model, proc, prompts, idx, step, rank, world):
    """Sample N rollouts for this rank's chunks of the step's prompts. Returns a list of rows
    (prompt index, completion token ids, completion text), N consecutive rows per prompt."""
    P = len(idx)
    chunk = args.rollout_chunk or P // world
    chunks = [idx[c:c + chunk] for c in range(0, P, chunk)]
    mine = [(k, c) for k, c in enumerate(chunks) if k * world // len(chunks) == rank]
    rows = []
    model.eval()
    for k, c in mine:
        batch = modelio.prompt_batch(proc, [prompts[i]["messages"] for i in c], drop_images=args.text_only)
        out = sampler.sample(model, proc, batch, n=args.n, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_p=args.top_p, seed=chunk_seed(args.seed, step, k))
        for r, (ids, text) in enumerate(zip(out.ids, out.texts)):
            rows.append((c[r // args.n], ids, text))
    model.train()
    return rows


def micro_batches(proc, items, size, max_len, drop_images):
    """items: [(messages, completion, extra)] -> [(train_batch, [extra...])]."""
    out = []
    for k in range(0, len(items), size):
        part = items[k:k + size]
        tb = modelio.train_batch(proc, [m for m, _, _ in part], [c for _, c, _ in part],
                                 drop_images=drop_images, max_len=max_len)
        out.append((tb, [e for _, _, e in part]))
    return out


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = training.dist_init(args.device)
    master = rank == 0
    if args.prompts_per_step % world:
        raise SystemExit(f"error: --prompts-per-step {args.prompts_per_step} is not divisible by {world} ranks")
    if args.rollout_chunk and (args.prompts_per_step // world) % args.rollout_chunk:
        raise SystemExit("error: --rollout-chunk must divide the prompts of a rank")
    if args.max_len is not None and args.max_new_tokens >= args.max_len:  # before the model loads: no room
        raise SystemExit(f"error: --max-new-tokens {args.max_new_tokens} leaves no room for a prompt in "
                         f"--max-len {args.max_len}: rollouts would be cut before the loss")
    torch.manual_seed(args.seed)
    default_paths(args)
    if args.model is not None:
        runs.check_model(args.model)
        # a text-only model gets the text questions (the state in words), read from its config
        args.text_only = args.text_only or runs.model_type(args.model) != "qwen2_5_vl"
    # ---- data first: a bad file is reported before a model is built ----------------------------
    prompts = load_prompts(args, master)

    # ---- the run folder: continue only a run made with the same settings (run.json is written
    # once every check has passed, below) ------------------------------------------------------
    start_model = args.model if args.model is not None else f"tiny offline model, seed {args.seed}"
    settings = runs.settings(args, inputs={"records": args.records, "traces": args.traces}, model=start_model)
    runs.check(args.out, settings, may_differ=MAY_DIFFER, may_grow=("steps",) if args.schedule == "constant" else (),
               overwrite=args.no_resume)

    resume = None if args.no_resume else training.latest_checkpoint(args.out)
    if args.model is None:
        args.model = os.path.join(args.out, "tiny-base")
        if master and not os.path.isdir(args.model):
            tiny.make_tiny(args.model, seed=args.seed)
        if world > 1:  # on every rank: one that found the folder already built still waits here
            torch.distributed.barrier()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    pix = {k: v for k, v in (("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v}
    model, proc = modelio.load(resume or args.model, device=device, dtype=dtype, **pix)
    if args.max_len is None:   # every row the model can attend over: none refused on the defaults
        args.max_len = modelio.context_length(model)
    drop = args.text_only or proc.kind != "qwen2_5_vl"
    args.text_only = drop
    ref = None
    if args.kl_coef > 0:  # the reference is the starting model, frozen
        ref, _ = modelio.load(args.model, device=device, dtype=dtype, **pix)
        ref.requires_grad_(False)
    params = training.trainable(model, args.freeze_vision, args.grad_checkpointing)
    lr = args.lr if args.lr is not None else training.default_lr(model, big=1e-6, small=1e-3)
    opt = training.make_optimizer(params, lr, args.weight_decay, args.zero, world)

    prompts = check_lengths(args, proc, prompts, master)
    runs.take(args.out, settings, args.no_resume, RUN_OUTPUTS, rank, training.barrier(world))
    schedule = prompt_order(len(prompts), args.prompts_per_step, args.steps, args.seed)
    start = 0
    if resume:
        start = training.resume(resume, opt, rank, world)["step"]
        if master:
            print(f"resumed from {resume} at step {start}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    metrics = training.open_metrics(os.path.join(args.out, "metrics.jsonl"), start) if master else None
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    n = 0 if args.mode == "sft" else args.n
    bar = Progress(args.steps, f"ahpo [{args.mode}]", unit="step", quiet=args.quiet or not master, start=start)
    t_start, n_tokens = time.perf_counter(), 0.0   # tokens sampled + tokens trained on, this process

    for step in range(start, args.steps):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_now = training.lr_at(step, args.steps, lr, args.warmup, args.schedule)
        idx = schedule[step]
        per_rank = len(idx) // world
        my_idx = idx[rank * per_rank:(rank + 1) * per_rank]

        # 1. rollouts: N per prompt, from pi_old (the current weights)
        rows = rollouts(args, model, proc, prompts, idx, step, rank, world) if n else []
        t1 = time.perf_counter()
        # 2. rewards by the verifier (malformed output scores 0, never raises)
        R = torch.tensor([float(tasks.score(text, prompts[i]["record"])) for i, _, text in rows])
        t2 = time.perf_counter()
        # 3. group-normalised advantages and 4. the gate xi, per prompt of this rank
        has_expert = torch.tensor([prompts[i]["expert"] is not None for i in my_idx])
        xi = gate(R, n, args.r_hat, args.mode, has_expert)
        if n:
            A = group_advantages(R, n, use_std=not args.no_std)
            zero_var = (A.view(-1, n) == 0).all(1).float()   # all rewards equal: A = 0 for the group
        else:
            A, zero_var = torch.zeros(0), torch.zeros(len(my_idx))
        luffy_items = []
        if args.mode == "luffy":
            A, A_expert = luffy_group(R, n, A, has_expert, use_std=not args.no_std)
            luffy_items = [(prompts[i]["messages"], prompts[i]["expert"], float(A_expert[j]))
                           for j, i in enumerate(my_idx) if has_expert[j]]
        on_items = [(prompts[i]["messages"], ids, float(A[k])) for k, (i, ids, _) in enumerate(rows)]
        # the expert traces of prompts with xi = 1; a prompt with xi = 0 has no L_off term, so
        # its trace is not run at all
        off_items = [(prompts[i]["messages"], prompts[i]["expert"], 1.0)
                     for j, i in enumerate(my_idx) if xi[j] > 0]

        on_mb = micro_batches(proc, on_items, args.micro_batch_size, args.max_len, drop)
        lf_mb = micro_batches(proc, luffy_items, args.micro_batch_size, args.max_len, drop)
        off_mb = micro_batches(proc, off_items, args.micro_batch_size, args.max_len, drop)
        # 5. token counts of the WHOLE global batch, before any backward pass
        count = lambda mbs: float(sum(int(tb["completion_mask"].sum()) for tb, _ in mbs))  # noqa: E731
        T_on = training.all_reduce_sum(count(on_mb) + count(lf_mb), world)
        T_off = training.all_reduce_sum(count(off_mb), world)
        # old log-probs: only needed when the batch is optimised more than once
        old = []
        if args.epochs > 1:
            with torch.no_grad(), autocast:
                for tb, _ in on_mb:
                    old.append(modelio.logprobs(model, tb, temperature=args.temperature)[0].detach())
        refs = []
        if ref is not None:
            with torch.no_grad(), autocast:
                refs = [modelio.logprobs(ref, tb, temperature=args.temperature)[0] for tb, _ in on_mb]

        # 6. the loss, L = xi * L_off + L_on, and one optimizer step per epoch. Each term is
        # divided by the token count of its WHOLE global batch (T_on, T_off), so the micro-batches
        # of all ranks add up to the gradient of one big batch. A micro-batch holds one kind of
        # row: rollouts and LUFFY's expert members make L_on, expert traces (xi = 1) make L_off.
        parts = ([("rollouts", k, mb) for k, mb in enumerate(on_mb)] + [("luffy", k, mb) for k, mb in enumerate(lf_mb)]
                 + [("expert", k, mb) for k, mb in enumerate(off_mb)])
        stats = dict(on=0.0, off=0.0, clip=0.0, ent=0.0, kl=0.0)
        for epoch in range(args.epochs):
            for kind, k, (tb, advs) in parts:
                mask = tb["completion_mask"].to(device).float()
                with autocast:  # on-policy rows: the sampling temperature; expert tokens: the model's own (T = 1)
                    logp, ent = modelio.logprobs(model, tb, temperature=args.temperature if kind == "rollouts" else 1.0)
                xi_mb, L_off, L_on = 0.0, 0.0, 0.0   # xi_mb: the xi of this micro-batch's prompts
                if kind == "rollouts":
                    old_logp = old[k] if old else logp.detach()  # one epoch: pi_old = pi_theta
                    surr, clipped = on_policy_terms(logp, old_logp, torch.tensor(advs, device=device), mask,
                                                    args.eps_lo, args.eps_hi)
                    L_on = -surr / max(T_on, 1.0)
                    if ref is not None:
                        kl = kl_k3(logp, refs[k], mask)
                        L_on = L_on + args.kl_coef * kl / max(T_on, 1.0)
                        stats["kl"] += kl.item() if epoch == 0 else 0.0
                    if epoch == 0:
                        stats["clip"] += clipped.item()
                        stats["ent"] += (ent * mask).sum().item()
                elif kind == "luffy":
                    L_on = -luffy_terms(logp, torch.tensor(advs, device=device), mask, args.gamma) / max(T_on, 1.0)
                else:
                    xi_mb, L_off = 1.0, expert_nll(logp, mask) / max(T_off, 1.0)   # only xi = 1 prompts have rows
                loss = xi_mb * L_off + L_on
                loss.backward()
                if epoch == 0:
                    stats["on" if kind != "expert" else "off"] += loss.item()
            training.all_reduce_grads(params, world)
            gnorm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm).item()
            opt.step()
            opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()

        # 7. log: the same keys every step
        tot = lambda x: training.all_reduce_sum(float(x), world)  # noqa: E731
        n_roll = tot(len(rows))
        # per prompt of the global batch, [record id, successes, xi]: lets a caller split the xi
        # rate and the reward by its own prompt groups (repro.py --setting mixed: easy / hard)
        per_prompt = torch.zeros(len(idx), 2)
        if n:
            per_prompt[rank * per_rank:(rank + 1) * per_rank, 0] = (R.view(-1, n) >= 1).sum(1).float()
        per_prompt[rank * per_rank:(rank + 1) * per_rank, 1] = xi
        per_prompt = training.all_reduce_sum(per_prompt, world)
        roll_tokens = tot(sum(len(ids) for _, ids, _ in rows))
        row = {"step": step + 1, "mode": args.mode, "lr": lr_now,
               "reward_mean": tot(R.sum()) / max(n_roll, 1.0),
               "xi_rate": tot(xi.sum()) / args.prompts_per_step,
               "zero_var_rate": tot(zero_var.sum()) / args.prompts_per_step if n else 0.0,
               "clip_frac": tot(stats["clip"]) / max(T_on, 1.0),
               "entropy": tot(stats["ent"]) / max(T_on, 1.0),
               "kl": tot(stats["kl"]) / max(T_on, 1.0),
               "response_len": roll_tokens / max(n_roll, 1.0),
               "loss_on": tot(stats["on"]), "loss_off": tot(stats["off"]), "grad_norm": gnorm,
               "tokens_on": T_on, "tokens_off": T_off,
               "rollout_tok_s": roll_tokens / max(t1 - t0, 1e-9),
               "train_tok_s": (T_on + T_off) * args.epochs / max(t3 - t2, 1e-9),
               "t_sample": t1 - t0, "t_score": t2 - t1, "t_train": t3 - t2,
               "per_prompt": [[prompts[i]["record"]["id"], int(s), int(x)] for i, (s, x) in zip(idx, per_prompt.tolist())]}
        if master:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            n_tokens += roll_tokens + (T_on + T_off) * args.epochs
            bar.log(step + 1, f"step {step + 1}/{args.steps} [{args.mode}] reward {row['reward_mean']:.3f} "
                    f"xi {row['xi_rate']:.2f} zero-var {row['zero_var_rate']:.2f} "
                    f"len {row['response_len']:.0f} on {row['loss_on']:+.4f} off {row['loss_off']:.4f} "
                    f"| sample {t1 - t0:.1f}s score {t2 - t1:.1f}s train {t3 - t2:.1f}s "
                    f"| {n_tokens / (time.perf_counter() - t_start):.0f} tok/s sampled+trained, running")
        done = step + 1
        if done % args.save_every == 0 or done == args.steps:
            training.checkpoint(args.out, done, model, proc, opt, vars(args), rank, world, keep=args.keep)
            if master:   # reward, xi, entropy, length, L_on / L_off, grad norm, lr: runs/ahpo/curves.png
                training_curves(os.path.join(args.out, "metrics.jsonl"))
    if master:
        model.eval()
        modelio.save(model, proc, os.path.join(args.out, "final"))
        metrics.close()
        print(f"done: wrote {args.out}/final", file=sys.stderr)
    training.dist_close()
    return args.out


if __name__ == "__main__":
    main()
