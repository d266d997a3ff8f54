"""How much do bf16 gradients lose? One GRPO batch, accumulated and reduced three ways.

    python bench/grad_precision.py              # ~1 min on 2 CPU cores

The README's 7B AHPO command on 8 ranks: 128 prompts x 5 rollouts = 80 rows a rank, in
micro-batches of 2 (bench/memory_plan.py): 40 micro-batch gradients a rank, 8 ranks summed.
A small Qwen2 model (vlm.make_tiny, causal, hidden 128, 4 layers) in bf16 computes each
micro-batch's gradient of L_on (group-normalised advantages from 0/1 rewards, so within a
group they cancel by construction), with the loss divided by the global token count T_on as
in ahpo.py. Rollouts are random token sequences: precision depends on the sums, not on what
the tokens say. The micro-batch gradients are then accumulated and reduced:
  bf16            as today: .grad accumulated in bf16, then a bf16 all-reduce (ring order,
                  each partial sum rounded to bf16)
  fp32 reduce     bf16 accumulation over micro-batches, the all-reduce in fp32
  fp32 accumulate each micro-batch's bf16 gradient added into an fp32 buffer, fp32 reduce
against the exact sum (float64) of the same micro-batch gradients, and, for scale, against
the same batch's gradient from the fp32 model. Prints cosine similarity and relative norm
error ||g - g_ref|| / ||g_ref||.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ahpo  # noqa: E402
import vlm  # noqa: E402

RANKS, ROWS_PER_RANK, MICRO, N = 8, 80, 2, 5
PROMPT, COMPLETION = 24, 40


def batch(proc, g):
    """One rank's rows: random prompt and completion ids, 0/1 rewards, group advantages."""
    V = len(proc.tokenizer)
    prompts = [[{"role": "user", "content": " ".join(["cell"] * PROMPT)}] for _ in range(ROWS_PER_RANK)]
    comps = [torch.randint(10, V - 40, (COMPLETION,), generator=g).tolist() + [proc.eos_id]
             for _ in range(ROWS_PER_RANK)]
    R = (torch.rand(ROWS_PER_RANK, generator=g) < 0.4).float()
    return prompts, comps, ahpo.group_advantages(R, N)


def micro_grads(model, proc, prompts, comps, A, T_on):
    """Yield each micro-batch's gradient (a flat tensor in the model's dtype)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for k in range(0, len(prompts), MICRO):
        tb = vlm.train_batch(proc, prompts[k:k + MICRO], comps[k:k + MICRO])
        mask = tb["completion_mask"].float()
        logp, _ = vlm.logprobs(model, tb)
        surr, _ = ahpo.on_policy_terms(logp, logp.detach(), A[k:k + MICRO], mask, 0.2, 0.28)
        (-surr / T_on).backward()
        yield torch.cat([p.grad.reshape(-1) for p in params])
        for p in params:
            p.grad = None


def compare(g, ref):
    g, ref = g.double(), ref.double()
    return torch.nn.functional.cosine_similarity(g, ref, dim=0).item(), ((g - ref).norm() / ref.norm()).item()


def main():
    torch.manual_seed(0)
    model32, proc = vlm.make_tiny(None, kind="causal", hidden=128, layers=4, heads=4, kv_heads=2, seed=0)
    model16, _ = vlm.make_tiny(None, kind="causal", hidden=128, layers=4, heads=4, kv_heads=2, seed=0)
    model16.to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    data = [batch(proc, g) for _ in range(RANKS)]
    T_on = float(sum(sum(len(c) for c in comps) for _, comps, _ in data))
    exact, ref32 = 0, 0
    per_rank_bf16, per_rank_fp32 = [], []
    for prompts, comps, A in data:
        acc16, acc32 = None, None
        for gm in micro_grads(model16, proc, prompts, comps, A, T_on):
            acc16 = gm.clone() if acc16 is None else acc16 + gm          # bf16 + bf16 -> bf16
            acc32 = gm.float() if acc32 is None else acc32 + gm.float()
            exact = exact + gm.double()
        per_rank_bf16.append(acc16)
        per_rank_fp32.append(acc32)
        for gm in micro_grads(model32, proc, prompts, comps, A, T_on):
            ref32 = ref32 + gm.double()

    def ring(parts, dtype):  # each partial sum rounded to the reduce dtype, as a ring all-reduce does
        s = parts[0].to(dtype)
        for p in parts[1:]:
            s = s + p.to(dtype)
        return s

    results = {"bf16 accumulate + bf16 reduce (today)": ring(per_rank_bf16, torch.bfloat16),
               "bf16 accumulate + fp32 reduce": ring(per_rank_bf16, torch.float32),
               "fp32 accumulate + fp32 reduce": ring(per_rank_fp32, torch.float32)}
    n = exact.numel()
    print(f"small Qwen2 model, {n} parameters; {RANKS} ranks x {ROWS_PER_RANK // MICRO} micro-batches of {MICRO} "
          f"rows ({PROMPT}+{COMPLETION + 1} tokens), N = {N}; T_on = {T_on:.0f}")
    print("| gradient | vs exact sum of the bf16 micro-batch grads: cosine | rel. norm error "
          "| vs the fp32 model: cosine | rel. norm error |")
    print("|---|---|---|---|---|")
    for name, g in results.items():
        c, e = compare(g, exact)
        c2, e2 = compare(g, ref32)
        print(f"| {name} | {c:.6f} | {e:.2e} | {c2:.6f} | {e2:.2e} |")
    c2, e2 = compare(exact, ref32)
    print(f"| exact sum of the bf16 micro-batch grads | 1 | 0 | {c2:.6f} | {e2:.2e} |")


if __name__ == "__main__":
    main()
