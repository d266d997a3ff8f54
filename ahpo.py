"""Stage 4: AHPO, Adaptive Hybrid Policy Optimization (MM-HELIX section 3.3), and its baselines.

    python ahpo.py                                   # runs/sft/final (or a tiny model) -> runs/ahpo/
    python ahpo.py --mode grpo --model BASE          # Table 2 baselines (grpo, sft, static, luffy) -> runs/<mode>/
    torchrun --nproc_per_node=8 ahpo.py --model runs/sft/final --prompts-per-step 128 \\
        --max-new-tokens 8192 --max-len 10240 --micro-batch-tokens 20480 --grad-checkpointing   # FSDP2, 8 GPUs

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
  - several processes train with FSDP2 (vlm/training.py): gradients are summed over ranks (each
    loss is already divided by its global token count), rollouts decode with the whole model
    gathered, and every rank makes the same number of forward and backward calls.
Paper settings: N = 5, R_hat = 2, 128 prompts a step, no KL. The learning rate, lengths,
temperature and clip values are not published; ours are defaults, not the paper's.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Callable

import tasks
from harness import cli, runs
from harness.chat import read_traces
from harness.jsonl import read_records
from harness.plot import training_curves
from harness.progress import Progress, quiet_libraries


# ---- the methods of Table 2, as one table ------------------------------------------------------------
@dataclass(frozen=True)
class Mode:
    """What a method does in a step. rollouts: sample N rollouts per prompt (the on-policy term
    L_on); expert: whether it reads the expert traces y* ("none"; "optional": a prompt without one
    has xi = 0; "required"); xi: the gate, from each prompt's successes #{i : R_i = 1} and R_hat;
    luffy: the expert trace joins its prompt's group (LUFFY) instead of an NLL term; gated: xi
    depends on R_hat (check_method refuses an R_hat that fixes it); folder: its default run
    folder under runs/."""
    rollouts: bool
    expert: str
    xi: Callable
    luffy: bool = False
    gated: bool = False
    folder: str = ""


def _never(successes, R_hat):
    return torch.zeros(len(successes))


def _always(successes, R_hat):
    return torch.ones(len(successes))


MODES = {
    "ahpo": Mode(rollouts=True, expert="optional", xi=lambda successes, R_hat: (successes < R_hat).float(),
                 gated=True, folder="ahpo"),                               # xi = 1[#correct < R_hat]
    "grpo": Mode(rollouts=True, expert="none", xi=_never, folder="grpo"),   # on-policy only
    "static": Mode(rollouts=True, expert="required", xi=_always, folder="static"),   # fixed hybrid
    "luffy": Mode(rollouts=True, expert="required", xi=_never, luffy=True, folder="luffy"),
    "sft": Mode(rollouts=False, expert="required", xi=_always, folder="ahpo-sft"),   # runs/sft is sft.py's
}


def check_method(args):
    """None, or one line saying why these settings train nothing the mode promises: a term that is
    identically 0, or a mode that is another mode under its name. Run right after parsing, before
    any file is read or model loaded. Settings a mode ignores (--r-hat outside ahpo, --gamma
    outside luffy, --rollouts in mode sft) are not refused: their defaults are always there."""
    mode, m = MODES[args.mode], args.mode
    if mode.rollouts and not mode.luffy and args.n == 1:
        # LUFFY is not refused: its group is the rollout and the expert trace (reward 1), so a
        # failed rollout still gets A < 0 and the expert member A > 0
        return (f"--rollouts 1: mode {m} normalises each reward within its group of N rollouts, so with one "
                f"rollout every advantage is 0 and L_on is identically 0; use --rollouts 2 or more")
    if args.traces == "none" and mode.expert == "required":
        return f"--traces none: mode {m} needs expert traces (its expert term would be identically 0)"
    if mode.gated:
        if args.traces == "none":
            return ("--traces none: with no expert trace xi = 0 for every prompt, so L_off is identically 0 "
                    "and mode ahpo is GRPO: use --mode grpo")
        if args.r_hat > args.n:
            return (f"--r-hat {args.r_hat} > --rollouts {args.n}: a prompt has at most {args.n} successes, so "
                    f"the gate never closes (xi = 1 always): that is static mixing, --mode static")
        if args.r_hat == 0:
            return ("--r-hat 0: no prompt has fewer than 0 successes, so xi = 0 always and L_off is "
                    "identically 0: that is --mode grpo")
    if not mode.rollouts and args.kl_coef > 0:
        return (f"--kl-coef {args.kl_coef:g}: mode {m} samples no rollouts, and the KL term is taken on "
                f"rollout tokens, so it is identically 0; drop --kl-coef")
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--records", default="data/train/records.jsonl", help="prompts (synth.py --split train)")
    g.add_argument("--traces", default="data/traces.jsonl",
                   help="expert traces y* (elicit.py); 'none' only in mode grpo, which reads no trace")
    cli.data_flags(g)
    cli.model_flags(p.add_argument_group("model"), "default: runs/sft/final, else a tiny offline model")
    g = p.add_argument_group("method")
    g.add_argument("--mode", choices=tuple(MODES), default="ahpo",
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
    cli.optimizer_flags(g, "ahpo", schedule="constant", warmup=0, warmup_help="linear warmup steps")
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
    cli.micro_batch_flags(g, size=8)
    cli.distributed_flags(p.add_argument_group("distributed"))
    cli.output_flags(p.add_argument_group("output"), None,
                     "output folder (default: runs/<mode>, runs/ahpo-sft for mode sft; "
                     "runs/sft-<that> for a baseline started from runs/sft/final)", save_every=10)
    args = cli.parse(p, argv)
    problem = check_method(args)
    if problem:
        p.error(problem)
    cli.check_report_to(args.report_to)
    return args


if __name__ == "__main__":
    # `--help` and a bad flag answer before torch and transformers load (seconds; the parser and
    # MODES need neither: MODES calls torch only inside its functions); main() parses again,
    # which costs nothing next to that
    parse_args()

import torch  # noqa: E402

from vlm import modelio, sampler, training  # noqa: E402

# settings a rerun may change and still continue the same run (cli.MAY_DIFFER: they leave the
# maths unchanged). The step budget may grow when the schedule is constant: the prompt order of
# the first k steps does not depend on the budget (prompt_order is a prefix-stable stream).
RUN_OUTPUTS = ("step-*", "final", "metrics.jsonl", "tb", runs.RUN_FILE)


def resolve_defaults(args):
    """--model, --out and --text-only when not given, resolved BEFORE the settings are recorded
    (run.json holds the resolved values): AHPO continues SFT (runs/sft/final if it exists); a
    baseline gets its own folder, runs/<mode>, or runs/sft-<mode> when it starts from SFT (the
    paper's 'SFT then GRPO'), so no two Table 2 methods share a folder; a text-only model gets
    the text questions (the state in words)."""
    if args.model is None and os.path.isdir("runs/sft/final"):
        args.model = "runs/sft/final"
        print("note: starting from runs/sft/final (sft.py's output); pass --model to start elsewhere",
              file=sys.stderr)
    if args.out is None:
        from_sft = args.model is not None and os.path.normpath(args.model) == os.path.normpath("runs/sft/final")
        folder = MODES[args.mode].folder
        args.out = os.path.join("runs", folder if args.mode == "ahpo" or not from_sft else f"sft-{folder}")
    if args.model is not None:
        runs.check_model(args.model)
        args.text_only = args.text_only or runs.model_type(args.model) != "qwen2_5_vl"


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
    """xi per prompt, the mode's gate (MODES) on its successes #{i : R_i = 1}: ahpo
    1[#successes < R_hat]; grpo, luffy 0; static, sft 1. A prompt without an expert trace never
    has the expert term."""
    successes = (R.view(-1, n) >= 1).sum(1) if n else torch.zeros(len(has_expert))
    return MODES[mode].xi(successes, R_hat) * has_expert.float()


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


def expert_nll(logp, mask, xi):
    """xi * L_off, summed: -sum_rows xi_row sum_t log pi_theta(y*_t | x, y*_<t) over the expert
    tokens, each row weighted by its prompt's xi (the caller divides by T_off). logp, mask: (B, L);
    xi: (B,)."""
    return -(xi[:, None] * logp * mask).sum()


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
    experts, mode = {}, MODES[args.mode]
    # grpo never uses y* (xi = 0); every other mode has a file here (check_method refused 'none')
    use_traces = args.traces != "none" and mode.expert != "none"
    if use_traces:
        hint = "make it with: python elicit.py" + ("; or --mode grpo to train without expert traces"
                                                    if mode.expert == "optional" else "")
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
    root = os.path.dirname(os.path.abspath(args.records))
    prompts = [{"record": r, "messages": tasks.messages_for(r, args.text_only, root),
                "expert": experts.get(r["id"])} for r in records]
    if mode.expert == "required" and not any(p["expert"] for p in prompts):
        raise SystemExit(f"error: mode {args.mode} needs expert traces; none matched in {args.traces}")
    if not mode.rollouts:  # the expert term only (mode sft): prompts without a trace teach nothing
        prompts = [p for p in prompts if p["expert"]]
    if not prompts:
        raise SystemExit(f"error: no usable prompts in {args.records}")
    return prompts


def check_lengths(args, proc, prompts, max_len, text_only, master=True):
    """Refuse, before the first step, a run whose rows could be cut: the longest prompt plus
    --max-new-tokens (a rollout's answer and EOS, what the reward read, are its last tokens),
    and prompt + expert trace (its answer is at its end), must fit --max-len. With --drop-long
    the traces that do not fit are dropped (their prompts stay, without the expert term).
    Returns the prompts."""
    mode = MODES[args.mode]
    P = modelio.prompt_lengths(proc, [p["messages"] for p in prompts], drop_images=text_only)
    for p, n in zip(prompts, P):   # kept: the token budgets of the micro-batches are planned from them
        p["prompt_len"] = n
    k = max(range(len(P)), key=P.__getitem__)
    if mode.rollouts and P[k] + args.max_new_tokens > max_len:
        raise SystemExit(f"error: {args.records}: prompt {prompts[k]['record']['id']} of {P[k]} tokens + "
                         f"--max-new-tokens {args.max_new_tokens} = {P[k] + args.max_new_tokens} > --max-len "
                         f"{max_len}: rollouts would be cut; raise --max-len to {P[k] + args.max_new_tokens}")
    ex = [(p, n) for p, n in zip(prompts, P) if p["expert"]]
    if mode.expert != "none" and ex:
        C = modelio.completion_lengths(proc, [p["expert"] for p, _ in ex])
        for (p, _), c in zip(ex, C):
            p["expert_len"] = c
        rows = [n + c for (_, n), c in zip(ex, C)]
        what = modelio.too_long([p["record"] for p, _ in ex], rows, max_len, "expert traces")
        if what:
            if not args.drop_long:
                raise SystemExit(f"error: {args.traces}: {what}; raise --max-len or pass --drop-long")
            if master:
                print(f"note: dropped {what}: their prompts have no expert term", file=sys.stderr)
            for (p, _), n in zip(ex, rows):
                if n > max_len:
                    p["expert"] = None
            prompts = [p for p in prompts if p["expert"] or mode.rollouts]
            if not prompts:
                raise SystemExit(f"error: {args.traces}: every expert trace is longer than --max-len {max_len}")
    # a micro-batch of --micro-batch-tokens must hold any one row: a prompt and one completion
    K = args.micro_batch_tokens
    longest = max(([P[k] + args.max_new_tokens] if mode.rollouts else [])
                  + [p["prompt_len"] + p["expert_len"] for p in prompts if p["expert"] and "expert_len" in p], default=0)
    if K is not None and longest > K:
        raise SystemExit(f"error: --micro-batch-tokens {K}: a row of up to {longest} tokens (a prompt and a "
                         f"rollout of --max-new-tokens or an expert trace) would not fit; rows are "
                         f"never cut: raise --micro-batch-tokens to {longest}")
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
def rollouts(args, run, prompts, idx, step):
    """Sample N rollouts for this rank's chunks of the step's prompts. Returns a list of rows
    (prompt index, completion token ids, completion text), N consecutive rows per prompt."""
    P = len(idx)
    chunk = args.rollout_chunk or P // run.world
    chunks = [idx[c:c + chunk] for c in range(0, P, chunk)]
    mine = [(k, c) for k, c in enumerate(chunks) if k * run.world // len(chunks) == run.rank]
    rows = []
    run.model.eval()
    with training.gathered(run):   # FSDP2: the whole model on every rank until the last token
        for k, c in mine:
            batch = modelio.prompt_batch(run.proc, [prompts[i]["messages"] for i in c], drop_images=run.text_only)
            out = sampler.sample(run.model, run.proc, batch, n=args.n, max_new_tokens=args.max_new_tokens,
                                 temperature=args.temperature, top_p=args.top_p,
                                 seed=chunk_seed(args.seed, step, k))
            for r, (ids, text) in enumerate(zip(out.ids, out.texts)):
                rows.append((c[r // args.n], ids, text))
    run.model.train()
    return rows


ROLLOUT, LUFFY, EXPERT = "rollout", "luffy", "expert"   # the kinds of completion a step trains on


def make_groups(args, run, prompts, idx, step):
    """Steps 1-4 for this rank's share of the global batch `idx`: rollouts, rewards, advantages,
    the gate. Returns one group per prompt, {"messages", "prompt_len", "seqs": [(kind,
    completion, weight, length)]} (a rollout weighted by its A_i, LUFFY's expert member by its
    own A, an expert trace by its prompt's xi; lengths in tokens), and what step 7 logs."""
    mode = MODES[args.mode]
    n = args.n if mode.rollouts else 0
    per_rank = len(idx) // run.world
    my_idx = idx[run.rank * per_rank:(run.rank + 1) * per_rank]
    t0 = time.perf_counter()
    # 1. rollouts: N per prompt, from pi_old (the current weights)
    rows = rollouts(args, run, prompts, idx, step) if n else []
    t1 = time.perf_counter()
    # 2. rewards by the verifier (malformed output scores 0, never raises)
    R = torch.tensor([float(tasks.score(text, prompts[i]["record"])) for i, _, text in rows])
    t2 = time.perf_counter()
    # 3. group-normalised advantages A_i and 4. the gate xi, per prompt of this rank
    has_expert = torch.tensor([prompts[i]["expert"] is not None for i in my_idx])
    xi = gate(R, n, args.r_hat, args.mode, has_expert)
    if n:
        A = group_advantages(R, n, use_std=not args.no_std)
        zero_var = (A.view(-1, n) == 0).all(1).float()   # all rewards equal: A = 0 for the group
    else:
        A, zero_var = torch.zeros(0), torch.zeros(len(my_idx))
    A_expert = None
    if mode.luffy:   # the expert trace is member N + 1 of its group, with reward 1
        A, A_expert = luffy_group(R, n, A, has_expert, use_std=not args.no_std)
    # a completion: (kind, tokens or text, weight, its length in tokens)
    groups = [{"messages": prompts[i]["messages"], "prompt_len": prompts[i].get("prompt_len"), "seqs": []}
              for i in my_idx]
    for k, (i, ids, _) in enumerate(rows):
        groups[k // n]["seqs"].append((ROLLOUT, ids, float(A[k]), len(ids)))
    for j, i in enumerate(my_idx):
        p = prompts[i]
        if mode.luffy and has_expert[j]:
            groups[j]["seqs"].append((LUFFY, p["expert"], float(A_expert[j]), p.get("expert_len")))
        # a prompt with xi = 0 adds xi * L_off = 0, so its trace is not run at all
        elif xi[j] > 0:
            groups[j]["seqs"].append((EXPERT, p["expert"], float(xi[j]), p.get("expert_len")))
    info = dict(R=R, xi=xi, zero_var=zero_var, n_rows=len(rows), roll_tokens=sum(len(ids) for _, ids, _ in rows),
                per_rank=per_rank, t_sample=t1 - t0, t_score=t2 - t1)
    return groups, info


def micro_batches(args, run, groups):
    """The forward passes of steps 5-6, from this rank's groups. --micro-batch-size (today's
    layout): rows of one kind (rollouts, then LUFFY's experts, then expert traces), that many at
    a time, padded. --micro-batch-tokens: by positions, packed (each prompt once, no padding:
    modelio.pack_batch) or, with --no-pack, sorted rows. Each micro-batch: its batch, the kind,
    weight and temperature of each completion (rollouts: the sampling temperature; expert
    tokens: the model's own, T = 1), and what the model computes (positions, padding)."""
    seqs = [(g, i, kind, c, w) for g, grp in enumerate(groups) for i, (kind, c, w, _) in enumerate(grp["seqs"])]
    if args.micro_batch_tokens is None:   # today's layout: one kind per micro-batch, in the order above
        by_kind = [[s for s in seqs if s[2] == kind] for kind in (ROLLOUT, LUFFY, EXPERT)]
        chosen = [part[k:k + args.micro_batch_size] for part in by_kind
                  for k in range(0, len(part), args.micro_batch_size)]
    else:
        sizes = [(grp["prompt_len"], [n for _, _, _, n in grp["seqs"]]) for grp in groups]
        by = {(g, i): s for s in seqs for g, i in [s[:2]]}
        plans = modelio.plan_micro_batches(sizes, tokens=args.micro_batch_tokens, pack=not args.no_pack)
        chosen = [[by[g, i] for g, ii in p["groups"] for i in ii] for p in plans]
    out = []
    for part in chosen:
        kinds = [s[2] for s in part]
        temps = [args.temperature if k == ROLLOUT else 1.0 for k in kinds]
        if args.micro_batch_tokens is not None and not args.no_pack:
            grouped = {}
            for g, i, kind, c, w in part:
                grouped.setdefault(g, []).append(c)
            batch = modelio.pack_batch(run.proc, [(groups[g]["messages"], cs) for g, cs in grouped.items()],
                                       drop_images=run.text_only, max_len=run.max_len)
            positions, padding = batch["input_ids"].shape[1], 0
        else:
            batch = modelio.train_batch(run.proc, [groups[s[0]]["messages"] for s in part], [s[3] for s in part],
                                        drop_images=run.text_only, max_len=run.max_len)
            positions = batch["input_ids"].numel()
            padding = positions - int(batch["attention_mask"].sum())
        out.append(dict(batch=batch, kinds=kinds, w=torch.tensor([s[4] for s in part], device=run.device),
                        # one temperature for the micro-batch when all agree (the numbers of today's path)
                        T=temps[0] if len(set(temps)) == 1 else torch.tensor(temps), positions=positions,
                        padding=padding))
    return out


def _rows(kinds, kind):
    """The rows of a micro-batch of one kind: None when every row is (no indexing, no copy)."""
    sel = [k == kind for k in kinds]
    return None if all(sel) else torch.tensor(sel) if any(sel) else False


def train(args, run, mbs, ref=None):
    """Steps 5-6 on this rank's micro-batches: token counts of the WHOLE global batch, then
    L = xi * L_off + L_on and one optimizer step per epoch. Returns what step 7 logs."""
    policy, world = run.policy, run.world
    pick = lambda t, sel: t if sel is None else t[sel]  # noqa: E731
    count = lambda kind: float(sum(int(pick(mb["batch"]["completion_mask"], s).sum()) for mb in mbs  # noqa: E731
                                   for s in [_rows(mb["kinds"], kind)] if s is not False))
    # 5. token counts T_on, T_off of the WHOLE global batch, before any backward pass
    T_on = training.all_reduce_sum(count(ROLLOUT) + count(LUFFY), world)
    T_off = training.all_reduce_sum(count(EXPERT), world)
    # old log-probs: only needed when the batch is optimised more than once; the reference's for KL
    with_rollouts = [k for k, mb in enumerate(mbs) if ROLLOUT in mb["kinds"]]
    old, refs = {}, {}
    with torch.no_grad(), run.autocast():
        for k in with_rollouts if args.epochs > 1 else ():
            old[k] = modelio.logprobs(policy, mbs[k]["batch"], temperature=mbs[k]["T"])[0].detach()
        for k in with_rollouts if ref is not None else ():
            refs[k] = modelio.logprobs(ref, mbs[k]["batch"], temperature=mbs[k]["T"])[0]
    # every rank makes as many forward + backward calls as the busiest one (FSDP2 gathers and
    # reduces each unit once per call): the gate, LUFFY's experts and token budgets leave ranks
    # with different counts, so the others add calls whose loss is 0 (a one-token row)
    calls = list(enumerate(mbs))
    n_calls = training.equal_calls(len(calls), world)
    if n_calls > len(calls):
        pad = modelio.train_batch(run.proc, [[{"role": "user", "content": "."}]], [[run.proc.eos_id]])
        calls += [(None, dict(batch=pad))] * (n_calls - len(calls))

    # 6. the loss, L = xi * L_off + L_on, and one optimizer step per epoch. Each term is divided
    # by the token count of its WHOLE global batch (T_on, T_off), so the micro-batches of all
    # ranks add up to the gradient of one big batch. Rollouts and LUFFY's expert members make
    # L_on, expert traces make xi * L_off (xi weighs each expert row).
    stats = dict(on=0.0, off=0.0, clip=0.0, ent=0.0, kl=0.0)
    for epoch in range(args.epochs):
        for k, mb in calls:
            if k is None:   # a padding call: gradients of exactly 0, the collectives of a real one
                with run.autocast():
                    logp, _ = modelio.logprobs(policy, mb["batch"])
                (0.0 * logp.sum()).backward()
                continue
            mask = mb["batch"]["completion_mask"].to(run.device).float()
            with run.autocast():
                logp, ent = modelio.logprobs(policy, mb["batch"], temperature=mb["T"])
            L_on, L_off = None, None
            rows = _rows(mb["kinds"], ROLLOUT)
            if rows is not False:    # w: the advantages A_i
                lp, m = pick(logp, rows), pick(mask, rows)
                old_lp = pick(old[k], rows) if old else lp.detach()  # one epoch: pi_old = pi_theta
                surr, clipped = on_policy_terms(lp, old_lp, pick(mb["w"], rows), m, args.eps_lo, args.eps_hi)
                L_on = -surr / max(T_on, 1.0)
                if ref is not None:
                    kl = kl_k3(lp, pick(refs[k], rows), m)
                    L_on = L_on + args.kl_coef * kl / max(T_on, 1.0)
                    stats["kl"] += kl.item() if epoch == 0 else 0.0
                if epoch == 0:
                    stats["clip"] += clipped.item()
                    stats["ent"] += (pick(ent, rows) * m).sum().item()
            rows = _rows(mb["kinds"], LUFFY)
            if rows is not False:    # w: the expert member's advantage
                term = -luffy_terms(pick(logp, rows), pick(mb["w"], rows), pick(mask, rows), args.gamma) / max(T_on, 1.0)
                L_on = term if L_on is None else L_on + term
            rows = _rows(mb["kinds"], EXPERT)
            if rows is not False:    # w: xi of each row's prompt
                L_off = expert_nll(pick(logp, rows), pick(mask, rows), pick(mb["w"], rows)) / max(T_off, 1.0)
            # L = xi * L_off + L_on (xi is inside L_off, row by row)
            loss = L_off + L_on if L_off is not None and L_on is not None else L_on if L_off is None else L_off
            loss.backward()
            if epoch == 0:
                stats["on"] += L_on.item() if L_on is not None else 0.0
                stats["off"] += L_off.item() if L_off is not None else 0.0
        stats["grad_norm"] = training.clip_grads(run, args.max_grad_norm)
        run.opt.step()
        run.opt.zero_grad(set_to_none=True)
    positions = training.all_reduce_sum(float(sum(mb["positions"] for mb in mbs)), world)
    padding = training.all_reduce_sum(float(sum(mb["padding"] for mb in mbs)), world)
    return dict(stats, T_on=T_on, T_off=T_off, positions=positions, padding=padding)


def ahpo_step(args, run, prompts, idx, step, ref=None):
    """One optimizer step of the method (times --epochs) on the global batch `idx` (prompt
    indices; this rank takes its share): steps 1-4 (make_groups), then 5-6 (micro_batches,
    train). Returns what step 7 logs (this rank's sums; main adds them over ranks)."""
    groups, info = make_groups(args, run, prompts, idx, step)
    t2 = time.perf_counter()
    stats = train(args, run, micro_batches(args, run, groups), ref)
    return dict(info, **stats, t_train=time.perf_counter() - t2)


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries(args.quiet)   # --quiet: transformers' loading and saving bars too
    rank, world, device = training.dist_init(args.device, one_process_group=args.offload)
    master = rank == 0
    training.check_distributed(args, world, device)   # --dp-shard, --offload: before any model loads
    if args.prompts_per_step % world:
        raise SystemExit(f"error: --prompts-per-step {args.prompts_per_step} is not divisible by {world} ranks")
    if args.rollout_chunk and (args.prompts_per_step // world) % args.rollout_chunk:
        raise SystemExit("error: --rollout-chunk must divide the prompts of a rank")
    if args.max_len is not None and args.max_new_tokens >= args.max_len:  # before the model loads: no room
        raise SystemExit(f"error: --max-new-tokens {args.max_new_tokens} leaves no room for a prompt in "
                         f"--max-len {args.max_len}: rollouts would be cut before the loss")
    torch.manual_seed(args.seed)
    resolve_defaults(args)
    # ---- data first: a bad file is reported before a model is built ----------------------------
    prompts = load_prompts(args, master)

    # ---- the run folder: continue only a run made with the same settings (run.json is written
    # once every check has passed, below) ------------------------------------------------------
    settings = runs.settings(args, inputs={"records": args.records, "traces": args.traces},
                             model=training.start_model(args))
    runs.check(args.out, settings, may_differ=cli.MAY_DIFFER,
               may_grow=("steps",) if args.schedule == "constant" else (), overwrite=args.no_resume,
               outputs=RUN_OUTPUTS)

    # ---- model: resume > --model > tiny offline model (vlm/training.py: setup) -------------------
    run = training.setup(args, "ahpo", rank, world, device)
    ref = training.load_reference(run) if args.kl_coef > 0 else None   # the starting model, frozen
    prompts = check_lengths(args, run.proc, prompts, run.max_len, run.text_only, master)
    runs.take(args.out, settings, args.no_resume, RUN_OUTPUTS, rank, training.barrier(world))
    schedule = prompt_order(len(prompts), args.prompts_per_step, args.steps, args.seed)
    training.start(run, args, settings)   # the optimizer; from a checkpoint: the weights, its state, the step, the RNG

    bar = Progress(args.steps, f"ahpo [{args.mode}]", unit="step", quiet=args.quiet or not master,
                   start=run.start_step)
    t_start, n_tokens = time.perf_counter(), 0.0   # tokens sampled + tokens trained on, this process
    for step in range(run.start_step, args.steps):
        for g in run.opt.param_groups:
            g["lr"] = lr_now = training.lr_at(step, args.steps, run.lr, args.warmup, args.schedule)
        idx = schedule[step]
        s = ahpo_step(args, run, prompts, idx, step, ref)   # steps 1-6

        # 7. log: the same keys every step
        tot = lambda x: training.all_reduce_sum(float(x), world)  # noqa: E731
        n_roll, T_on, T_off, per_rank = tot(s["n_rows"]), s["T_on"], s["T_off"], s["per_rank"]
        # per prompt of the global batch, [record id, successes, xi]: lets a caller split the xi
        # rate and the reward by its own prompt groups (repro.py --setting mixed: easy / hard)
        per_prompt = torch.zeros(len(idx), 2)
        if s["n_rows"]:
            per_prompt[rank * per_rank:(rank + 1) * per_rank, 0] = (s["R"].view(-1, args.n) >= 1).sum(1).float()
        per_prompt[rank * per_rank:(rank + 1) * per_rank, 1] = s["xi"]
        per_prompt = training.all_reduce_sum(per_prompt, world)
        roll_tokens = tot(s["roll_tokens"])
        rollouts_on = MODES[args.mode].rollouts
        row = {"step": step + 1, "mode": args.mode, "lr": lr_now,
               "reward_mean": tot(s["R"].sum()) / max(n_roll, 1.0),
               "xi_rate": tot(s["xi"].sum()) / args.prompts_per_step,
               "zero_var_rate": tot(s["zero_var"].sum()) / args.prompts_per_step if rollouts_on else 0.0,
               "clip_frac": tot(s["clip"]) / max(T_on, 1.0),
               "entropy": tot(s["ent"]) / max(T_on, 1.0),
               "kl": tot(s["kl"]) / max(T_on, 1.0),
               "response_len": roll_tokens / max(n_roll, 1.0),
               "loss_on": tot(s["on"]), "loss_off": tot(s["off"]), "grad_norm": s["grad_norm"],
               "tokens_on": T_on, "tokens_off": T_off,
               # what the forward passes computed, all ranks, one epoch: positions, the padding share
               "positions": s["positions"], "pad_frac": s["padding"] / max(s["positions"], 1.0),
               "rollout_tok_s": roll_tokens / max(s["t_sample"], 1e-9),
               "train_tok_s": (T_on + T_off) * args.epochs / max(s["t_train"], 1e-9),
               "t_sample": s["t_sample"], "t_score": s["t_score"], "t_train": s["t_train"],
               "per_prompt": [[prompts[i]["record"]["id"], int(n_ok), int(x)]
                              for i, (n_ok, x) in zip(idx, per_prompt.tolist())]}
        training.log_metrics(run, row)
        n_tokens += roll_tokens + (T_on + T_off) * args.epochs
        bar.log(step + 1, f"step {step + 1}/{args.steps} [{args.mode}] reward {row['reward_mean']:.3f} "
                f"xi {row['xi_rate']:.2f} zero-var {row['zero_var_rate']:.2f} "
                f"len {row['response_len']:.0f} on {row['loss_on']:+.4f} off {row['loss_off']:.4f} "
                f"| sample {s['t_sample']:.1f}s score {s['t_score']:.1f}s train {s['t_train']:.1f}s "
                f"| {n_tokens / (time.perf_counter() - t_start):.0f} tok/s sampled+trained, running")
        done = step + 1
        if done % args.save_every == 0 or done == args.steps:
            training.checkpoint(run, args.out, done, args, keep=args.keep)
            if master:   # reward, xi, entropy, length, L_on / L_off, grad norm, lr: runs/ahpo/curves.png
                training_curves(os.path.join(args.out, "metrics.jsonl"))
    training.finish(run, args.out)
    if master:
        print(f"done: wrote {args.out}/final", file=sys.stderr)
    return args.out


if __name__ == "__main__":
    main()
