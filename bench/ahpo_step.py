"""Where an AHPO step spends its time, and what its training phase costs in each micro-batch layout.

    python bench/ahpo_step.py                    # phases of a step: 5 steps, 8 prompts x N=5, 128 new tokens
    python bench/ahpo_step.py --steps 3 --max-new-tokens 256 --images
    python bench/ahpo_step.py --shape mmhelix    # the training phase at MM-HELIX's shape, per layout

Without --shape: builds a small training pool and rule-based expert traces in a temporary folder,
runs ahpo.py on the tiny offline Qwen2.5-VL, and prints the mean time per step of each phase with
tokens/s, from the run's metrics.jsonl (first step excluded: warm-up).

--shape mmhelix: the training phase alone (steps 5-6: ahpo.micro_batches and ahpo.train), on rows
fixed in advance so that every layout trains on the same ones: 8 prompts of about 1,000 tokens
(text), N = 5 rollouts each of 64 to 640 tokens (drawn once per row), and for 3 of the 8 prompts
(those whose gate opens) an expert trace of 300-600 tokens; advantages from 0/1 rewards drawn
per row. Models: the tiny offline Qwen2.5-VL and a 19M-parameter one built the same way; one CPU
thread. Each layout runs in a process of its own (its peak memory is its own):
  today     --micro-batch-size 8: rows of one kind, 8 at a time in rollout order, padded
  tokens    --micro-batch-tokens K --no-pack: rows sorted by length, K positions with padding
  packed    --micro-batch-tokens K: each prompt once with its completions, no padding
It prints per layout the training phase's time per step (median of --steps after a warm-up),
the positions the model computed against the useful ones (each prompt once, every completion),
the padding share, the prompt positions computed per group, and the peak memory the phase added
(the process's peak resident memory, less what it held before the phase), then ends with
`training phase: <ratio>x today's` for the packed layout on the largest model.
"""
import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = {"tiny": {}, "19M": dict(hidden=512, layers=6, heads=8, kv_heads=4, intermediate=1536, vision_hidden=32)}
LAYOUTS = {"today": ["--micro-batch-size", "8"], "tokens": ["--micro-batch-tokens", "{K}", "--no-pack"],
           "packed": ["--micro-batch-tokens", "{K}"]}


def phases(a):
    """The old report: where a whole step's time goes (sampling, scoring, optimisation)."""
    import ahpo
    import elicit
    import synth
    import vlm
    with tempfile.TemporaryDirectory() as d:
        synth.main(["--split", "train", "--out", f"{d}/train", "--count", "2", "--levels", "1,2",
                    "--exclude", "", *([] if a.images else ["--no-images"])])
        elicit.main(["--records", f"{d}/train/records.jsonl", "--out", f"{d}/traces.jsonl",
                     *([] if a.images else ["--text-only"])])
        vlm.make_tiny(f"{d}/model")
        ahpo.main(["--model", f"{d}/model", "--records", f"{d}/train/records.jsonl",
                   "--traces", f"{d}/traces.jsonl", "--out", f"{d}/run", "--steps", str(a.steps + 1),
                   "--prompts-per-step", str(a.prompts_per_step), "--rollouts", str(a.n),
                   "--max-new-tokens", str(a.max_new_tokens), "--save-every", "1000",
                   *([] if a.images else ["--text-only"])])
        rows = [json.loads(line) for line in open(f"{d}/run/metrics.jsonl")][1:]
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    ts, tc, tt = mean("t_sample"), mean("t_score"), mean("t_train")
    total = ts + tc + tt
    print(f"\nper step ({len(rows)} steps, {a.prompts_per_step} prompts x N={a.n}, "
          f"{'image' if a.images else 'text'} prompts, tiny Qwen2.5-VL, CPU):")
    print(f"  sampling      {ts:7.3f} s  ({100 * ts / total:4.1f}%)  {mean('rollout_tok_s'):8.0f} rollout tok/s")
    print(f"  scoring       {tc:7.3f} s  ({100 * tc / total:4.1f}%)")
    print(f"  optimisation  {tt:7.3f} s  ({100 * tt / total:4.1f}%)  {mean('train_tok_s'):8.0f} train tok/s")
    print(f"sample {ts:.3f}s | score {tc:.3f}s | train {tt:.3f}s | sampling share {100 * ts / total:.0f}%")


def mmhelix_groups(proc, seed=0, prompts=8, n=5, lo=64, hi=640, prompt_tokens=1000, experts=3):
    """The rows of one step at MM-HELIX's shape, the same for every layout (a fixed seed)."""
    import torch

    import ahpo
    import tasks
    from vlm import modelio
    rng = random.Random(seed)
    allowed = [t for t in range(len(proc.tokenizer)) if t not in set(proc.banned_ids) and t != proc.eos_id]
    groups = []
    names = sorted(tasks.TASKS)
    for j in range(prompts):
        task = tasks.get(names[(7 * j) % len(names)])
        inst = task.generate(level=3, seed=j)
        text = task.question(inst.state, text_only=True)
        while len(proc.tokenizer(text, add_special_tokens=False)["input_ids"]) < prompt_tokens:
            text += "\n" + text
        ids = proc.tokenizer(text, add_special_tokens=False)["input_ids"][:prompt_tokens]
        messages = [{"role": "user", "content": proc.tokenizer.decode(ids)}]
        R = torch.tensor([float(rng.random() < 0.3) for _ in range(n)])
        A = ahpo.group_advantages(R, n)
        seqs = []
        for i in range(n):
            c = [rng.choice(allowed) for _ in range(rng.randint(lo, hi) - 1)] + [proc.eos_id]
            seqs.append((ahpo.ROLLOUT, c, float(A[i]), len(c)))
        if j < experts:
            c = [rng.choice(allowed) for _ in range(rng.randint(300, 600) - 1)] + [proc.eos_id]
            seqs.append((ahpo.EXPERT, c, 1.0, len(c)))
        p_len = modelio.prompt_lengths(proc, [messages])[0]
        groups.append({"messages": messages, "prompt_len": p_len, "seqs": seqs})
    return groups


def layout_worker(model, layout, K, steps, out):
    """One layout in this process: warm-up, then `steps` training phases; writes a JSON line."""
    import torch

    import ahpo
    from vlm import training
    torch.set_num_threads(1)
    flags = [f.format(K=K) for f in LAYOUTS[layout]]
    with tempfile.TemporaryDirectory() as d:
        args = ahpo.parse_args(["--model", model, "--out", d, "--device", "cpu", "--lr", "1e-4", *flags])
        run = training.setup(args, "ahpo", 0, 1, torch.device("cpu"))
        training.start(run, args)
        groups = mmhelix_groups(run.proc)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times, s = [], None
        for k in range(steps + 1):
            t0 = time.perf_counter()
            s = ahpo.train(args, run, ahpo.micro_batches(args, run, groups))
            times.append(time.perf_counter() - t0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    useful = sum(g["prompt_len"] + sum(x[3] for x in g["seqs"]) for g in groups)
    prompt = sum(g["prompt_len"] for g in groups)
    mbs = ahpo.micro_batches(args, run, groups)
    with open(out, "a") as f:
        f.write(json.dumps(dict(layout=layout, time=statistics.median(times[1:]), positions=s["positions"],
                                padding=s["padding"], useful=useful, prompt=prompt, micro_batches=len(mbs),
                                groups=len(groups), peak_mb=peak / 1024)) + "\n")


def mmhelix(a):
    import torch  # noqa: F401  (vlm.make_tiny needs it; imported here, not for the old report)

    import vlm
    out = tempfile.mktemp(suffix=".jsonl")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            path = f"{d}/{name}"
            model, _ = vlm.make_tiny(path, seed=0, **MODELS[name])
            n = sum(p.numel() for p in model.parameters())
            for layout in a.layouts.split(","):
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", path, layout, str(a.tokens),
                                    str(a.steps), out], env={**os.environ, "OMP_NUM_THREADS": "1"},
                                   capture_output=True, text=True)
                if p.returncode:
                    raise SystemExit(f"{name} {layout} failed:\n{p.stderr[-3000:]}")
                with open(out) as f:
                    r = json.loads(f.read().splitlines()[-1])
                results[name, layout] = dict(r, params=n)
                print(f"{name} ({n / 1e6:.1f}M) {layout:6}: {r['time']:.2f} s a step, {r['micro_batches']} micro-batches, "
                      f"{r['positions']:.0f} positions computed for {r['useful']} useful "
                      f"({r['positions'] / r['useful']:.2f}x), padding {100 * r['padding'] / r['positions']:.0f}%, "
                      f"peak +{r['peak_mb']:.0f} MB", flush=True)
    os.remove(out)
    print()
    print("| model | layout | training phase (s/step) | vs today | positions computed / useful | padding "
          "| prompt positions per group | peak memory added (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, layout), r in results.items():
        base = results.get((name, "today"), r)
        per_group = (r["positions"] - r["padding"] - (r["useful"] - r["prompt"])) / r["prompt"]
        print(f"| {name} ({r['params'] / 1e6:.1f}M) | {layout} | {r['time']:.2f} | {r['time'] / base['time']:.2f}x "
              f"| {r['positions'] / r['useful']:.2f} | {100 * r['padding'] / r['positions']:.0f}% "
              f"| {per_group:.2f} x the prompt | {r['peak_mb']:.0f} |")
    last = a.models.split(",")[-1]
    if (last, "packed") in results and (last, "today") in results:
        ratio = results[last, "packed"]["time"] / results[last, "today"]["time"]
        print(f"\n{last} model, packed layout (--micro-batch-tokens {a.tokens}): training phase: {ratio:.2f}x today's")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return layout_worker(*sys.argv[2:4], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=("mmhelix",), default=None, help="the training phase at this shape, per layout")
    p.add_argument("--steps", type=int, default=None, help="steps measured (default 5; 2 with --shape)")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--images", action="store_true", help="image prompts (default: text-only)")
    p.add_argument("--models", default="tiny,19M", help="with --shape")
    p.add_argument("--layouts", default="today,tokens,packed", help="with --shape")
    p.add_argument("--tokens", type=int, default=4096, help="with --shape: K of --micro-batch-tokens")
    a = p.parse_args()
    if a.shape:
        a.steps = a.steps or 2
        return mmhelix(a)
    a.steps = a.steps or 5
    return phases(a)


if __name__ == "__main__":
    main()
