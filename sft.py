"""Stage 3: supervised fine-tuning on SERG traces (one process, or several under torchrun).

    python sft.py                                       # tiny offline model, data/traces.jsonl -> runs/sft/
    python sft.py --model /ckpt/Qwen2.5-VL-7B-Instruct --data data/traces.jsonl --lr 1e-5 --epochs 3
    torchrun --nproc_per_node=8 sft.py --model /ckpt/Qwen2.5-VL-7B-Instruct --batch-size 128 \\
        --micro-batch-tokens 8192 --grad-checkpointing --freeze-vision          # FSDP2 over the 8 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --node-rank R --rdzv-endpoint HOST:29500 sft.py ...   # HSDP

The loss is the negative log-likelihood of the assistant turn only (prompt and image tokens
carry no label), summed over tokens and divided by the number of assistant tokens in the
whole optimizer step, across micro-batches and ranks. So gradient accumulation and the
number of processes do not change the gradient: a step is one big batch, cut into pieces.

Several processes train with FSDP2 (vlm/training.py): --dp-shard ranks share one copy of the
model, slices each, and their gradients are summed (not averaged: the loss is already divided
by the global token count).

Writes to --out (default runs/sft/): metrics.jsonl (one line a step, same keys each step),
step-N/ (a DCP checkpoint of weights and optimizer + trainer_state.pt, the last --keep),
final/ (a from_pretrained folder). A rerun into --out continues from the newest step-N
exactly (model, optimizer, schedule, RNG and the data position are restored, so steps k+1..
equal an uninterrupted run), at any number of processes, but only if out/run.json shows the
same result-changing settings; otherwise it names them and stops. `--overwrite` starts afresh.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

from harness import cli, runs
from harness.chat import read_traces
from harness.plot import training_curves
from harness.progress import Progress, quiet_libraries


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--data", default="data/traces.jsonl", help="traces from elicit.py (JSONL)")
    cli.data_flags(g)
    cli.model_flags(p.add_argument_group("model"), "checkpoint folder (default: a tiny offline model)")
    g = p.add_argument_group("method")
    cli.optimizer_flags(g, "sft", schedule="cosine", warmup=None, warmup_help="linear warmup steps (default 3%% of the run)")
    g.add_argument("--seed", type=int, default=0, help="data order and initial model seed")
    g = p.add_argument_group("budget")
    g.add_argument("--epochs", type=cli.positive_float, default=3.0, help="passes over the data")
    g.add_argument("--max-steps", type=cli.nonneg_int, default=0,
                   help="optimizer steps at most (0: as many as --epochs give)")
    g.add_argument("--batch-size", type=cli.positive_int, default=8,
                   help="sequences per optimizer step, all ranks")
    cli.micro_batch_flags(g, size=4)
    cli.distributed_flags(p.add_argument_group("distributed"))
    cli.output_flags(p.add_argument_group("output"), "runs/sft", "output folder", save_every=50)
    args = cli.parse(p, argv)
    cli.check_report_to(args.report_to)
    return args


if __name__ == "__main__":
    # `--help` and a bad flag answer before torch and transformers load (seconds; the parser
    # needs neither); main() parses again, which costs nothing next to that
    parse_args()

import torch  # noqa: E402

from vlm import modelio, training  # noqa: E402

# settings a rerun may change and still continue the same run (cli.MAY_DIFFER: they leave the
# maths unchanged). The step budget is not among them: the cosine schedule spans it.
RUN_OUTPUTS = ("step-*", "final", "metrics.jsonl", "tb", runs.RUN_FILE)


def schedule(examples, lengths, batch_size, epochs, seed):
    """The global batches of the whole run (lists of example indices), a pure function of the
    seed: shuffle, then group similar lengths (sort inside windows of 64 batches) so little is
    spent on padding, then shuffle the batches. Resume re-derives it and skips what was done."""
    rng = random.Random(seed)
    n_epochs = max(1, math.ceil(epochs))
    per_epoch = len(examples) // batch_size
    if per_epoch == 0:
        raise SystemExit(f"error: {len(examples)} examples < --batch-size {batch_size}")
    batches = []
    for _ in range(n_epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        order = order[:per_epoch * batch_size]  # drop the ragged tail: every step is full
        w = 64 * batch_size
        epoch = []
        for s in range(0, len(order), w):
            win = sorted(order[s:s + w], key=lambda i: lengths[i])
            epoch += [win[k:k + batch_size] for k in range(0, len(win), batch_size)]
        rng.shuffle(epoch)
        batches += epoch
    return batches[:max(1, round(epochs * per_epoch))]


def micro_batches(args, run, examples, P, C):
    """This rank's traces of a step as forward passes: --micro-batch-size rows at a time in the
    schedule's order, padded (the default); or --micro-batch-tokens positions at a time, packed
    (modelio.pack_batch: no padding) or, with --no-pack, rows sorted by length. P, C: prompt and
    completion lengths. Returns the batches and the positions and padding they compute."""
    if args.micro_batch_tokens is None:
        plans = modelio.plan_micro_batches([(p, [c]) for p, c in zip(P, C)], size=args.micro_batch_size)
    else:
        plans = modelio.plan_micro_batches([(p, [c]) for p, c in zip(P, C)], tokens=args.micro_batch_tokens,
                                           pack=not args.no_pack)
    out = []
    for plan in plans:
        part = [examples[g] for g, _ in plan["groups"]]
        if args.micro_batch_tokens is not None and not args.no_pack:
            out.append(modelio.pack_batch(run.proc, [(e["prompt"], [e["completion"]]) for e in part],
                                          drop_images=run.text_only, max_len=run.max_len))
        else:
            out.append(modelio.train_batch(run.proc, [e["prompt"] for e in part], [e["completion"] for e in part],
                                           drop_images=run.text_only, max_len=run.max_len))
    return out, sum(p["positions"] for p in plans), sum(p["padding"] for p in plans)


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries(args.quiet)   # --quiet: transformers' loading and saving bars too
    rank, world, device = training.dist_init(args.device, one_process_group=args.offload)
    master = rank == 0
    training.check_distributed(args, world, device)   # --dp-shard, --offload: before any model loads
    if args.batch_size % world:
        raise SystemExit(f"error: --batch-size {args.batch_size} is not divisible by {world} ranks")
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    # ---- data first: a bad file is reported before a model is built ----------------------------
    if not os.path.exists(args.data):
        raise SystemExit(f"error: {args.data} not found (make it with: python elicit.py)")
    examples, problems = read_traces(args.data)
    for pr in problems if master else ():
        print(f"warning: skipped trace: {pr}", file=sys.stderr)
    if not examples:
        raise SystemExit(f"error: no usable traces in {args.data}")
    if len(examples) < args.batch_size:
        raise SystemExit(f"error: {args.data}: {len(examples)} usable traces < --batch-size {args.batch_size}")
    if args.model is not None:
        runs.check_model(args.model)

    # ---- the run folder: continue only a run made with the same settings (run.json is written
    # once every check has passed, below) ------------------------------------------------------
    settings = runs.settings(args, inputs={"data": args.data}, model=training.start_model(args))
    runs.check(args.out, settings, may_differ=cli.MAY_DIFFER, overwrite=args.no_resume, outputs=RUN_OUTPUTS)

    # ---- model: resume > --model > tiny offline model (vlm/training.py: setup) -------------------
    run = training.setup(args, "sft", rank, world, device)
    proc = run.proc
    if proc.kind != "qwen2_5_vl" and not args.text_only and master:
        print("note: text-only model: images are dropped from the prompts (use elicit.py "
              "--text-only for questions that state the puzzle in words)", file=sys.stderr)
    # a trace's answer is at its end: one longer than --max-len is refused or dropped, never cut
    C = modelio.completion_lengths(proc, [e["completion"] for e in examples])   # <|im_end|> included
    P = modelio.prompt_lengths(proc, [e["prompt"] for e in examples], run.text_only)
    rows = [p + c for p, c in zip(P, C)]
    what = modelio.too_long(examples, rows, run.max_len, "traces")
    if what:
        if not args.drop_long:
            raise SystemExit(f"error: {args.data}: {what}; raise --max-len or pass --drop-long")
        if master:
            print(f"note: dropped {what}", file=sys.stderr)
        keep = [n <= run.max_len for n in rows]
        examples, P, C = ([x for x, k in zip(xs, keep) if k] for xs in (examples, P, C))
    if args.micro_batch_tokens is not None and max(p + c for p, c in zip(P, C)) > args.micro_batch_tokens:
        raise SystemExit(f"error: --micro-batch-tokens {args.micro_batch_tokens}: a trace of "
                         f"{max(p + c for p, c in zip(P, C))} tokens (prompt + completion) does not fit; rows "
                         "are never cut: raise --micro-batch-tokens")
    runs.take(args.out, settings, args.no_resume, RUN_OUTPUTS, rank, training.barrier(world))
    lengths = [c - 1 for c in C]   # the completions' own tokens: what the batches are sorted by
    batches = schedule(examples, lengths, args.batch_size, args.epochs, args.seed)
    total = min(len(batches), args.max_steps) if args.max_steps else len(batches)
    warmup = args.warmup if args.warmup is not None else max(1, int(0.03 * total))
    training.start(run, args, settings)   # the optimizer; from a checkpoint: the weights, its state, the step, the RNG

    # ---- training loop ----------------------------------------------------------------------------
    t_start = time.perf_counter()
    bar = Progress(total, "sft", unit="step", quiet=args.quiet or not master, start=run.start_step)
    n_tokens = 0.0
    for step in range(run.start_step, total):
        t0 = time.perf_counter()
        for g in run.opt.param_groups:
            g["lr"] = lr_now = training.lr_at(step, total, run.lr, warmup, args.schedule)
        mine = batches[step][rank::world]  # this rank's share of the global batch
        micro, positions, padding = micro_batches(args, run, [examples[i] for i in mine], [P[i] for i in mine],
                                                  [C[i] for i in mine])
        # the token count of the WHOLE global batch, known before any backward pass
        T = training.all_reduce_sum(float(sum(int(mb["completion_mask"].sum()) for mb in micro)), world)
        # every rank makes as many forward + backward calls as the busiest (FSDP2): a token budget
        # can give ranks different counts, the others add calls whose loss is 0
        n_calls = training.equal_calls(len(micro), world)
        loss_sum = 0.0
        for k in range(n_calls):
            mb = micro[k] if k < len(micro) else micro[0]
            with run.autocast():
                logp, _ = modelio.logprobs(run.policy, mb, temperature=1.0)
            nll = -(logp * mb["completion_mask"].to(logp.device)).sum()
            if k >= len(micro):
                (0.0 * nll).backward()   # a padding call: gradients of exactly 0
                continue
            (nll / T).backward()   # several processes: FSDP2 sums the gradients over ranks
            loss_sum += nll.item()
        gnorm = training.clip_grads(run, args.max_grad_norm)
        run.opt.step()
        run.opt.zero_grad(set_to_none=True)
        loss = training.all_reduce_sum(loss_sum, world) / T
        dt = time.perf_counter() - t0
        done = step + 1
        mem = (torch.cuda.max_memory_allocated(device) / 2 ** 30) if device.type == "cuda" else 0.0
        positions, padding = (training.all_reduce_sum(float(x), world) for x in (positions, padding))
        training.log_metrics(run, {"step": done, "loss": loss, "tokens": int(T), "tokens_per_s": T / dt,
                                   "lr": lr_now, "grad_norm": gnorm, "mem_gb": mem, "seconds": dt,
                                   "epoch": done * args.batch_size / len(examples),
                                   # what the forward passes computed, all ranks: positions, the padding share
                                   "positions": positions, "pad_frac": padding / max(positions, 1.0)})
        n_tokens += T
        bar.log(done, f"step {done}/{total} loss {loss:.4f} lr {lr_now:.2e} gnorm {gnorm:.2f} "
                f"{T / dt:.0f} tok/s (running {n_tokens / (time.perf_counter() - t_start):.0f})")
        if done % args.save_every == 0 or done == total:
            training.checkpoint(run, args.out, done, args, keep=args.keep)
            if master:   # loss, grad norm and lr against the step: runs/sft/curves.png
                training_curves(os.path.join(args.out, "metrics.jsonl"))
    training.finish(run, args.out)
    if master:
        print(f"done: {total} steps in {time.perf_counter() - t_start:.1f}s; wrote {args.out}/final",
              file=sys.stderr)
    return args.out


if __name__ == "__main__":
    main()
