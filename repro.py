"""A CPU toy reproduction of MM-HELIX Table 2: AHPO against GRPO, SFT, SFT-then-GRPO, LUFFY and
static mixing, with a small model trained from scratch (no download, no GPU).

    python repro.py --quick                              # CI smoke run: tiny sizes, 1 seed, < 1 minute
    python repro.py                                      # the full toy run (3 seeds, ~25 min on 2 cores)
    python repro.py --results-dir repro/results          # ... and copy table + plots there
    python repro.py --target-levels 4 --rollouts 5 --out runs/repro-sparse   # sparser rewards
    python repro.py --setting mixed                      # easy and hard prompts, by the base's measured success
    python repro.py --quick --setting mixed              # its CI smoke run

The protocol (issue 11), every stage called through its own `main(argv)`:
  1. data (synth.py, elicit.py --text-only): held-out evaluation sets first, from the bench split
     (seeds from 0); then the training pools from the train split with `--exclude` set to the
     evaluation records, so no public state is shared (checked again here by canonical hash);
  2. base model (tiny.make_tiny, a text-only Qwen2 "causal" model, then sft.py from scratch) on
     verified traces of the GENERAL tasks at easy levels plus the TARGET tasks at level 1;
  3. from that base, the same budget (optimizer steps x prompts per step) for each method on the
     TARGET tasks at harder levels with elicit.py's expert traces:
        grpo, sft, static, luffy, ahpo   ahpo.py --mode ...
        sft-then-grpo                    sft.py for half the steps, then ahpo.py --mode grpo for half
  4. evaluate.py --text-only on held-out target instances (in-domain) and held-out general tasks
     (forgetting), for each seed: greedy, and the mean of --samples samples at temperature 1; a
     Markdown table in Table 2's layout (one per measure), reward and xi-rate curves (Pillow
     PNGs) and the wall time of each run.

Compact traces (said in the output too): elicit.py's rule-based traces are 200-650 tokens with the
tiny tokenizer, far beyond what a model this size can learn to reproduce in minutes, and rollouts
of that length would not fit the CPU budget. So each VERIFIED elicit.py trace is cut to its
conclusion: the assistant turn keeps only elicit's final `\\boxed{answer}` (the same answer the
verifier accepted). `--trace-style full` keeps the whole trace.

Compact prompts: the platform's text questions are 160-400 tokens of instructions around the
state; a model this small spends its budget reading them. With `--prompt-style compact` (the
default) each record's text question is "<task>: <state>" (plus the boxed-answer request every
prompt gets), 35-80 tokens for the targets. `--prompt-style full` keeps the platform's questions.

Mixed difficulty (--setting mixed, issue 20): AHPO's gate decides per prompt, so the training pool
must hold prompts the base already solves (2 of 5 rollouts right) and prompts it cannot. The
candidates are the targets at levels 1-4; the base's sampled success is MEASURED per instance
(--probe-samples samples at temperature 1), and an instance is easy at >= --easy-min, hard below
--hard-max, else unused. The pool is equal parts easy and hard; the held-out targets are split the
same way (measured too). Reported per method, mean and 95% t-interval over seeds: held-out
accuracy on easy and on hard instances, general accuracy, and the xi rate on easy and on hard
prompts over the steps (from ahpo.py's per_prompt log), plus the mechanism check (AHPO's xi on easy
against hard) and AHPO against static mixing, paired by seed.

Everything lands in --out (default runs/repro/): data/, base/, <method>-s<seed>/ (metrics.jsonl,
eval-*/, log.txt), table.md, results.json, reward.png, xi_rate.png.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time

import tasks
from harness.plot import plot

METHODS = ("grpo", "sft", "sft-then-grpo", "luffy", "static", "ahpo")
LABELS = {"base": "Base (SFT from scratch)", "grpo": "GRPO", "sft": "SFT", "sft-then-grpo": "SFT then GRPO",
          "luffy": "LUFFY", "static": "Static hybrid", "ahpo": "AHPO"}
PAPER = {"base": (6.3, 36.5), "grpo": (9.0, 36.7), "sft": (23.8, 29.9), "sft-then-grpo": (23.3, 36.7),
         "luffy": (9.1, 35.4), "ahpo": (24.9, 42.2)}   # Table 2, Qwen2.5-VL-7B (static: not in the table)

# Two settings. Targets have short integer answers whose range grows with the level (LIS 2-4 at level
# 1, 6-8 at level 3; H-index 3-5, then 12-14), so a base that saw only level 1 rarely hits level 3
# (sparse rewards), yet can hit it by sampling. Chosen after pilots (closing note of issue 11): at
# hidden 64 / 2 layers with the platform's full prompts, no method learned the targets at all.
SETTINGS = {
    "full": dict(targets="lis,h_index", target_levels="3", general="graph_isomorphism,hills_valleys",
                 general_levels="1,2", base_count=300, target_count=200, eval_count=30,
                 hidden=128, layers=4, heads=4, kv_heads=2, base_steps=600, base_batch=32, base_lr=2e-3,
                 steps=60, prompts=8, rollouts=8, lr=5e-4, max_new_tokens=8, samples=4, seeds="1,2,3"),
    "quick": dict(targets="lis,h_index", target_levels="3", general="graph_isomorphism,hills_valleys",
                  general_levels="1", base_count=8, target_count=6, eval_count=1,
                  hidden=32, layers=1, heads=2, kv_heads=1, base_steps=10, base_batch=8, base_lr=3e-3,
                  steps=2, prompts=4, rollouts=3, lr=1e-3, max_new_tokens=8, samples=1, seeds="1"),
}
# Mixed difficulty (issue 20): the full setting's base, targets at levels 1-4 as candidates (the base
# saw level 1 in its SFT, so some instances should be easy; levels 3-4 rarely are), the paper's N = 5.
# probe_samples: samples per instance for the base's measured success; train_half / eval_half: at
# most this many easy and as many hard instances in the training pool / each held-out half.
# Sizes chosen to fit ~45 minutes on a loaded 2-core machine with 5 seeds: a pilot at 24 steps and 2
# samples took 6 minutes for the base and under 3 minutes a seed (6 methods, about 8 s of training each)
# on a quiet machine, but a step took 10x longer (3 s) once other jobs loaded it; 32 steps then took
# 12 minutes for all 5 seeds (the base reused).
SETTINGS["mixed"] = dict(SETTINGS["full"], target_levels="1,2,3,4", target_count=40, eval_count=15,
                         steps=64, rollouts=5, samples=2, seeds="1,2,3,4,5", base_epochs=3.0,
                         probe_samples=10, easy_min=0.4, hard_max=0.05, train_half=40, eval_half=20)
# base_epochs: sft.py --epochs, which caps --base-steps (3, sft.py's default, as in the full setting).
# The quick base is trained longer than --quick's (300 steps of a 1-layer model, seconds) so that
# some level-1 instances are measurably easy and the split has two halves to test.
SETTINGS["mixed-quick"] = dict(SETTINGS["quick"], target_levels="1,4", target_count=6, eval_count=4,
                               base_steps=300, base_lr=1e-2, base_epochs=100.0, rollouts=5, probe_samples=10, easy_min=0.4, hard_max=0.05,
                               train_half=4, eval_half=4)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
        18: 2.101, 19: 2.093, 20: 2.086}   # Student t, 0.975 quantile by degrees of freedom (t tables)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the CI setting: tiny sizes, 1 seed, few steps")
    p.add_argument("--setting", choices=("full", "mixed"), default="full",
                   help="full: one target level (--target-levels); mixed: easy and hard prompts by measured base success")
    p.add_argument("--out", default=None, help="output folder (default runs/repro, runs/repro-quick with --quick)")
    p.add_argument("--results-dir", default=None, help="copy table.md, results.json and the plots here")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--report-only", action="store_true",
                   help="no training: rebuild table.md and the plots from --out's results.json (e.g. a partial run)")
    p.add_argument("--trace-style", choices=("compact", "full"), default="compact",
                   help="compact: elicit's verified trace cut to its boxed answer; full: unchanged")
    p.add_argument("--prompt-style", choices=("compact", "full"), default="compact",
                   help="compact: '<task>: <state>' as the text question; full: the platform's question text")
    for k, v in SETTINGS["mixed"].items():   # every setting can be overridden; defaults from --quick/--setting
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=None,
                       help=f"(full: {SETTINGS['full'][k]})" if k in SETTINGS["full"] else f"(mixed: {v})")
    a = p.parse_args(argv)
    key = ("mixed-" if a.setting == "mixed" else "") + ("quick" if a.quick else "")
    base = SETTINGS[key.strip("-") or "full"]
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.setting == "mixed" and not 0 <= a.hard_max < a.easy_min <= 1:
        p.error(f"--hard-max {a.hard_max} must be below --easy-min {a.easy_min}, both in [0, 1]")
    a.out = a.out or ("runs/repro" + ("-mixed" if a.setting == "mixed" else "") + ("-quick" if a.quick else ""))
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.methods = [m for m in a.methods.split(",") if m]
    bad = [m for m in a.methods if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {bad}")
    return a


# ---- helpers ---------------------------------------------------------------------------------------
def call(stage, argv, log):
    """Run a stage's main(argv) in this process (no re-import cost), its stderr/stdout to `log`."""
    import importlib
    mod = importlib.import_module(stage)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stderr(f), contextlib.redirect_stdout(f):
        print(f"$ python {stage}.py {' '.join(map(str, argv))}", file=f, flush=True)
        t = time.perf_counter()
        mod.main([str(x) for x in argv])
        return time.perf_counter() - t


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def state_hashes(path):
    return {(r["task"], tasks.get(r["task"]).canonical(tasks.state_of(r))) for r in read_jsonl(path)}


# ---- 1. data ---------------------------------------------------------------------------------------
def compact_prompts(path):
    """--prompt-style compact: each record's text question becomes "<task>: <state>" (the boxed-answer
    request is still appended by tasks.build_prompt). Every stage reads the text prompt from
    question_text, so this one rewrite reaches elicit, ahpo's rollouts and evaluate alike."""
    rows = read_jsonl(path)
    for r in rows:
        r["question_text"] = f"{r['task']}: {r['initial_state']}"
    write_jsonl(path, rows)


def make_data(a, d, log):
    os.makedirs(d, exist_ok=True)
    sets = {  # name: (split, tasks, levels, count)
        "eval_target": ("bench", a.targets, a.target_levels, a.eval_count),
        "eval_general": ("bench", a.general, a.general_levels, a.eval_count),
        "base_train": ("train", a.general + "," + a.targets, None, a.base_count),
        "target_train": ("train", a.targets, a.target_levels, a.target_count),
    }
    for name, (split, tk, lv, n) in sets.items():
        for sub in ("", "_g", "_t"):   # a rerun with other settings must not resume stale files
            shutil.rmtree(os.path.join(d, name + sub), ignore_errors=True)
        if name == "base_train":   # general tasks at their easy levels + targets at level 1: two calls
            for sub, (t2, l2) in {"g": (a.general, a.general_levels), "t": (a.targets, "1")}.items():
                call("synth", ["--split", "train", "--tasks", t2, "--levels", l2, "--count", n, "--no-images",
                               "--exclude", os.path.join(d, "eval_all.jsonl"), "--out", os.path.join(d, f"{name}_{sub}")], log)
            rows = read_jsonl(os.path.join(d, f"{name}_g", "records.jsonl")) + \
                read_jsonl(os.path.join(d, f"{name}_t", "records.jsonl"))
            os.makedirs(os.path.join(d, name), exist_ok=True)
            write_jsonl(os.path.join(d, name, "records.jsonl"), rows)
            if a.prompt_style == "compact":
                compact_prompts(os.path.join(d, name, "records.jsonl"))
            continue
        argv = ["--split", split, "--tasks", tk, "--levels", lv, "--count", n, "--no-images", "--out", os.path.join(d, name)]
        if split == "train" and a.setting == "mixed":   # level 1 is also in base_train: other instances
            write_jsonl(os.path.join(d, "exclude_mixed.jsonl"), read_jsonl(os.path.join(d, "eval_all.jsonl"))
                        + read_jsonl(os.path.join(d, "base_train", "records.jsonl")))
            argv += ["--exclude", os.path.join(d, "exclude_mixed.jsonl")]
        elif split == "train":
            argv += ["--exclude", os.path.join(d, "eval_all.jsonl")]
        call("synth", argv, log)
        if a.prompt_style == "compact":
            compact_prompts(os.path.join(d, name, "records.jsonl"))
        if name == "eval_general":   # one exclude file with every held-out state
            write_jsonl(os.path.join(d, "eval_all.jsonl"), read_jsonl(os.path.join(d, "eval_target", "records.jsonl"))
                        + read_jsonl(os.path.join(d, "eval_general", "records.jsonl")))
    held = state_hashes(os.path.join(d, "eval_all.jsonl"))
    for name in ("base_train", "target_train"):
        overlap = held & state_hashes(os.path.join(d, name, "records.jsonl"))
        if overlap:
            raise SystemExit(f"error: {name} shares {len(overlap)} states with the evaluation sets")
    if a.setting == "mixed":
        overlap = state_hashes(os.path.join(d, "base_train", "records.jsonl")) & \
            state_hashes(os.path.join(d, "target_train", "records.jsonl"))
        if overlap:
            raise SystemExit(f"error: target_train shares {len(overlap)} states with base_train")
    # expert traces (SERG, rule-based rewriter), verified by the task checkers
    notes = {}
    for name in ("base_train", "target_train"):
        rec = os.path.join(d, name, "records.jsonl")
        full = os.path.join(d, name, "traces_full.jsonl")
        call("elicit", ["--records", rec, "--out", full, "--text-only"], log)
        rows = read_jsonl(full)
        lens = [r.get("n_tokens", 0) for r in rows]
        if a.trace_style == "compact":
            for r in rows:   # keep elicit's own final answer line only (its verified \boxed{...})
                text = r["messages"][-1]["content"]
                r["messages"][-1]["content"] = text[text.rindex("\\boxed{"):].strip()
        write_jsonl(os.path.join(d, name, "traces.jsonl"), rows)
        notes[name] = dict(records=len(read_jsonl(rec)), traces=len(rows),
                           mean_full_tokens=round(sum(lens) / max(len(lens), 1)))
    return notes


# ---- 2-3. training runs ------------------------------------------------------------------------------
def evaluate(a, model, run_dir, data, log):
    """Greedy accuracy (the paper's kind of number) and, as a smoother second measure, the mean
    accuracy of a.samples samples at temperature 1 (seeds 0..samples-1). A tiny model answers
    mostly from a per-task prior, so its greedy answer is one constant per task and greedy
    accuracy moves in steps when that constant flips; the sampled accuracy shows how much
    probability the right answers gained. A fresh output folder each time (evaluate.py resumes
    from old responses otherwise); batch 8."""
    acc = {}
    sets = ((("in_domain_easy", "eval_easy"), ("in_domain_hard", "eval_hard")) if a.setting == "mixed"
            else (("in_domain", "eval_target"),)) + (("general", "eval_general"),)
    for key, name in sets:
        sampled = []
        for k in range(-1, a.samples):   # -1: greedy
            out = os.path.join(run_dir, f"eval-{key}" + (f"-t1-s{k}" if k >= 0 else ""))
            shutil.rmtree(out, ignore_errors=True)
            call("evaluate", ["--records", os.path.join(data, name, "records.jsonl"), "--model", model, "--text-only",
                              "--out", out, "--max-new-tokens", a.max_new_tokens, "--batch-size", 8]
                 + (["--temperature", 1.0, "--seed", k] if k >= 0 else []), log)
            with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
                summary = json.load(f)
            overall = summary["overall"]   # the mean over tasks
            if a.setting == "mixed" and key != "general":   # easy / hard are sets of instances, their
                overall = 100 * summary["n_correct"] / max(summary["n"], 1)   # task mix uneven: per instance
            if k < 0:
                acc[key] = overall
            else:
                sampled.append(overall)
        if sampled:
            acc[key + "_sampled"] = statistics.fmean(sampled)
    return acc


def train_base(a, out, data, log):
    from vlm import tiny
    d = os.path.join(out, "base")
    t = time.perf_counter()
    if not os.path.isdir(os.path.join(d, "final")):   # an existing base is reused (same --out)
        tiny.make_tiny(os.path.join(d, "init"), kind="causal", seed=0, hidden=a.hidden, layers=a.layers,
                       heads=a.heads, kv_heads=a.kv_heads)
        call("sft", ["--model", os.path.join(d, "init"), "--data", os.path.join(data, "base_train", "traces.jsonl"),
                     "--out", d, "--max-steps", a.base_steps, "--batch-size", a.base_batch,
                     "--micro-batch-size", a.base_batch, "--lr", a.base_lr, "--text-only", "--save-every", 10 ** 6,
                     "--no-resume", "--seed", 0] + (["--epochs", a.base_epochs] if a.setting == "mixed" else []), log)
        wall = time.perf_counter() - t
    else:   # reused from an earlier run of the same --out: its logged step times
        wall = sum(r["seconds"] for r in read_jsonl(os.path.join(d, "metrics.jsonl")))
        print(f"reusing {d}/final (delete it to retrain the base)", flush=True)
    if a.setting == "mixed":   # the easy / hard split needs the trained base
        split_by_base(a, os.path.join(d, "final"), data)
    acc = evaluate(a, os.path.join(d, "final"), d, data, log)
    return dict(method="base", seed=0, wall_s=round(wall, 1), **acc)


# ---- mixed difficulty: easy and hard by the base's measured sampled success ----------------------------
def base_successes(a, model_dir, records, seed):
    """{record id: successes of a.probe_samples samples at temperature 1 from the base}, batches of
    16 prompts, the rollouts' own prompt and sampler (ahpo.py), scored by the task verifier."""
    import torch
    import vlm
    model, proc = vlm.load(model_dir, device="cpu")
    model.eval()
    K, got = a.probe_samples, {}
    for k in range(0, len(records), 16):
        part = records[k:k + 16]
        batch = vlm.prompt_batch(proc, [tasks.messages_for(r, True) for r in part], drop_images=True)
        with torch.no_grad():
            out = vlm.sample(model, proc, batch, n=K, max_new_tokens=a.max_new_tokens, temperature=1.0,
                             seed=seed + k)
        for j, r in enumerate(part):
            got[r["id"]] = sum(bool(tasks.score(t, r)) for t in out.texts[j * K:(j + 1) * K])
    return got


def split_by_base(a, model_dir, data):
    """Measure the base on every candidate (training pool and held-out targets), keep instances
    with rate >= easy_min (easy) or < hard_max (hard); the pool takes as many easy as hard (at
    most train_half each, a seeded draw), each held-out half at most eval_half. Writes
    data/mixed_train (records + their traces), data/eval_easy, data/eval_hard, data/probe.json."""
    import random
    K, probe = a.probe_samples, {"probe_samples": a.probe_samples, "easy_min": a.easy_min, "hard_max": a.hard_max}
    for name, pool, cap, seed in (("train", "target_train", a.train_half, 0), ("eval", "eval_target", a.eval_half, 10 ** 6)):
        recs = read_jsonl(os.path.join(data, pool, "records.jsonl"))
        succ = base_successes(a, model_dir, recs, seed)
        groups = {}
        for r in recs:   # per (task, level): the measured rate, for the table header
            g = groups.setdefault(f"{r['task']} L{r['difficulty']}", [0, 0])
            g[0] += succ[r["id"]]
            g[1] += K
        easy = [r for r in recs if succ[r["id"]] / K >= a.easy_min]
        hard = [r for r in recs if succ[r["id"]] / K < a.hard_max]
        for label, part in (("easy", easy), ("hard", hard)):
            if not part:
                raise SystemExit(f"error: no {label} instance in {pool} (base sampled success "
                                 f"{'>= ' + str(a.easy_min) if label == 'easy' else '< ' + str(a.hard_max)} "
                                 f"over {K} samples) among {len(recs)}; per task/level: {groups}")
        rng = random.Random(seed)
        rng.shuffle(easy)
        rng.shuffle(hard)
        n_e, n_h = (min(len(easy), len(hard), cap),) * 2 if name == "train" else (min(len(easy), cap), min(len(hard), cap))
        easy, hard = easy[:n_e], hard[:n_h]
        rate = lambda rs: round(100 * sum(succ[r["id"]] for r in rs) / (K * len(rs)), 1)  # noqa: E731
        probe[name] = {"candidates": len(recs), "per_task_level": {g: round(100 * s / n, 1) for g, (s, n) in groups.items()},
                       "easy_ids": [r["id"] for r in easy], "hard_ids": [r["id"] for r in hard],
                       "easy_rate": rate(easy), "hard_rate": rate(hard),
                       "easy_min_rate": min(100 * succ[r["id"]] / K for r in easy),
                       "hard_max_rate": max(100 * succ[r["id"]] / K for r in hard), "successes": succ}
        if name == "train":
            os.makedirs(os.path.join(data, "mixed_train"), exist_ok=True)
            write_jsonl(os.path.join(data, "mixed_train", "records.jsonl"), easy + hard)
            ids = {r["id"] for r in easy + hard}
            write_jsonl(os.path.join(data, "mixed_train", "traces.jsonl"),
                        [t for t in read_jsonl(os.path.join(data, pool, "traces.jsonl")) if t["id"] in ids])
        else:
            for label, part in (("easy", easy), ("hard", hard)):
                os.makedirs(os.path.join(data, f"eval_{label}"), exist_ok=True)
                write_jsonl(os.path.join(data, f"eval_{label}", "records.jsonl"), part)
    with open(os.path.join(data, "probe.json"), "w", encoding="utf-8") as f:
        json.dump(probe, f, indent=1)
    return probe


def split_metrics(a, run_dir, probe):
    """From a run's metrics.jsonl per_prompt rows: xi rate and rollout reward over all steps, and
    per step, on the easy and on the hard training prompts."""
    rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    out = {}
    for label in ("easy", "hard"):
        ids = set(probe["train"][f"{label}_ids"])
        per_step = []
        for r in rows:
            mine = [(s, x) for i, s, x in r["per_prompt"] if i in ids]
            per_step.append((r["step"], len(mine), sum(x for _, x in mine), sum(s for s, _ in mine)))
        n = sum(m for _, m, _, _ in per_step)
        out[f"xi_{label}"] = 100 * sum(x for _, _, x, _ in per_step) / max(n, 1)
        out[f"reward_{label}"] = 100 * sum(s for _, _, _, s in per_step) / max(n * a.rollouts, 1)
        out[f"curve_xi_{label}"] = [(st, x / m if m else None) for st, m, x, _ in per_step]
        out[f"curve_reward_{label}"] = [(st, s / (m * a.rollouts) if m else None) for st, m, _, s in per_step]
    return out


def train_method(a, method, seed, base, out, data, log):
    d = os.path.join(out, f"{method}-s{seed}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    pool = "mixed_train" if a.setting == "mixed" else "target_train"
    records = os.path.join(data, pool, "records.jsonl")
    traces = os.path.join(data, pool, "traces.jsonl")
    common = ["--records", records, "--traces", traces, "--prompts-per-step", a.prompts, "--rollouts", a.rollouts,
              "--max-new-tokens", a.max_new_tokens, "--lr", a.lr, "--text-only", "--seed", seed,
              "--save-every", 10 ** 6, "--no-resume"]
    t = time.perf_counter()
    if method == "sft-then-grpo":   # the same budget: half the steps each
        s1 = a.steps // 2
        call("sft", ["--model", base, "--data", traces, "--out", os.path.join(d, "sft"), "--max-steps", s1,
                     "--batch-size", a.prompts, "--micro-batch-size", a.prompts, "--lr", a.lr, "--warmup", 0,
                     "--text-only", "--save-every", 10 ** 6, "--no-resume", "--seed", seed], log)
        call("ahpo", ["--mode", "grpo", "--model", os.path.join(d, "sft", "final"), "--out", d,
                      "--steps", a.steps - s1] + common, log)
    else:
        call("ahpo", ["--mode", method, "--model", base, "--out", d, "--steps", a.steps] + common, log)
    wall = time.perf_counter() - t
    acc = evaluate(a, os.path.join(d, "final"), d, data, log)
    if a.setting == "mixed":   # sft-then-grpo: its GRPO half (the SFT half has xi = 1 by construction)
        with open(os.path.join(data, "probe.json"), encoding="utf-8") as f:
            acc.update(split_metrics(a, d, json.load(f)))
    return dict(method=method, seed=seed, wall_s=round(wall, 1), **acc)


# ---- 4. table and plots ------------------------------------------------------------------------------
def mean_spread(xs):
    m = statistics.fmean(xs)
    return m, (statistics.pstdev(xs) if len(xs) > 1 else 0.0)


def table_rows(a, rows, ind_key, gen_key, extra=True):
    """Table 2's rows for one pair of accuracy keys; extra: the wall-time and paper columns."""
    base = next(r for r in rows if r["method"] == "base")
    tail = " Wall time / run (s) | Paper (MM-HELIX / general) |" if extra else ""
    lines = [f"| Method | In-domain acc (targets L{a.target_levels.replace(',', '/')}) | General acc (forgetting) "
             f"| In-domain change vs base | General change vs base |{tail}",
             "|---|---|---|---|---|" + ("---|---|" if extra else "")]
    pm = lambda m, s: f"{m:.1f} ± {s:.1f}"  # noqa: E731
    more = f" {base['wall_s']:.0f} | {PAPER['base'][0]} / {PAPER['base'][1]} |" if extra else ""
    lines.append(f"| {LABELS['base']} | {base[ind_key]:.1f} | {base[gen_key]:.1f} | - | - |{more}")
    for m in a.methods:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        ind, gen = mean_spread([r[ind_key] for r in rs]), mean_spread([r[gen_key] for r in rs])
        dind = mean_spread([r[ind_key] - base[ind_key] for r in rs])
        dgen = mean_spread([r[gen_key] - base[gen_key] for r in rs])
        paper = f"{PAPER[m][0]} / {PAPER[m][1]}" if m in PAPER else "-"
        more = f" {statistics.fmean([r['wall_s'] for r in rs]):.0f} | {paper} |" if extra else ""
        lines.append(f"| {LABELS[m]} | {pm(*ind)} | {pm(*gen)} | {dind[0]:+.1f} | {dgen[0]:+.1f} |{more}")
    return lines


def sparse_note(base):
    note = f"greedy accuracy {base['in_domain']:.1f}%"
    if "in_domain_sampled" in base:   # = the expected reward of one rollout at temperature 1
        note += f", sampled accuracy (the reward rate of a rollout) {base['in_domain_sampled']:.1f}%"
    return note


def table(a, rows, notes, base_sparse):
    n_seeds = len(a.seeds)
    lines = table_rows(a, rows, "in_domain", "general")
    if all("in_domain_sampled" in r for r in rows):
        lines += ["", f"Sampled accuracy: the mean over {a.samples} samples at temperature 1 per instance "
                      f"(evaluate.py --temperature 1 --seed 0..{a.samples - 1}), same runs and instances:", ""]
        lines += table_rows(a, rows, "in_domain_sampled", "general_sampled", extra=False)
    style = ("elicit.py verified traces cut to their final \\boxed{} answer" if a.trace_style == "compact"
             else "elicit.py traces unchanged")
    head = [f"# Toy Table 2 ({'quick' if a.quick else 'full'} setting)", "",
            f"Accuracy in percent (evaluate.py --text-only, greedy, mean over tasks), mean ± population std over "
            f"{n_seeds} seed(s) {a.seeds}; the base is one model (seed 0). Targets: {a.targets} at levels "
            f"{a.target_levels} ({a.eval_count} held-out bench-split instances per task and level); general: "
            f"{a.general} at levels {a.general_levels}. Budget per method: {a.steps} steps x {a.prompts} prompts "
            f"x {a.rollouts} rollouts, lr {a.lr}, {a.max_new_tokens} new tokens.",
            f"Model: text-only Qwen2 from scratch, hidden {a.hidden}, {a.layers} layers; base SFT {a.base_steps} steps "
            f"x {a.base_batch}. Traces: {a.trace_style} ({style}); prompts: {a.prompt_style} "
            f"({'<task>: <state>' if a.prompt_style == 'compact' else 'the platform text questions'}); "
            f"data: {json.dumps(notes)}.",
            f"Base on held-out target instances (how sparse the rewards start): {base_sparse}", ""]
    return "\n".join(head + lines) + "\n"


def t_interval(xs):
    """(mean, half-width of the 95% Student t interval over seeds); one seed: width 0 (none)."""
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, 0.0
    t = T975.get(len(xs) - 1, T975[20])   # beyond 20 degrees of freedom: t_20, slightly wide
    return m, t * statistics.stdev(xs) / len(xs) ** 0.5


def mixed_table(a, rows, probe, notes):
    """The mixed setting's Table 2: held-out accuracy on easy / hard targets, general accuracy, the
    xi rate on easy / hard training prompts; then the mechanism check and AHPO against static."""
    base = next(r for r in rows if r["method"] == "base")
    base_steps = len(read_jsonl(os.path.join(a.out, "base", "metrics.jsonl")))   # what sft.py ran
    ci = lambda xs: "{:.1f} ± {:.1f}".format(*t_interval(xs)) if len(xs) > 1 else f"{xs[0]:.1f}"  # noqa: E731
    tr, ev = probe["train"], probe["eval"]
    pct = lambda d: ", ".join(f"{g} {v:.0f}%" for g, v in d.items())  # noqa: E731
    n_seeds = len(a.seeds)
    head = [f"# Toy Table 2, mixed difficulty ({'quick' if a.quick else 'full'} setting)", "",
            f"Accuracy and rates in percent, mean ± half-width of the 95% Student t interval over {n_seeds} seed(s) "
            f"{a.seeds} (t with n-1 degrees of freedom, sample std; one seed: no interval); the base is one model "
            f"(seed 0). Budget per method: {a.steps} steps x {a.prompts} prompts x {a.rollouts} rollouts, lr {a.lr}, "
            f"{a.max_new_tokens} new tokens, R_hat 2. Model: text-only Qwen2 from scratch, hidden {a.hidden}, "
            f"{a.layers} layers; base SFT {base_steps} steps (--base-steps {a.base_steps}, at most "
            f"{a.base_epochs:g} epochs) x {a.base_batch} on {a.general} (levels "
            f"{a.general_levels}) and {a.targets} level 1. Data: {json.dumps(notes)}.", "",
            f"**Easy and hard, measured.** The base's sampled success per instance: {a.probe_samples} samples at "
            f"temperature 1 each (the rollouts' sampler). Easy: >= {100 * a.easy_min:.0f}%, hard: < "
            f"{100 * a.hard_max:.0f}%, other instances unused. Candidates {a.targets} at levels {a.target_levels}.",
            f"- Training pool ({tr['candidates']} candidates; per task and level {pct(tr['per_task_level'])}): "
            f"{len(tr['easy_ids'])} easy (measured {tr['easy_rate']:.1f}%, lowest {tr['easy_min_rate']:.0f}%) + "
            f"{len(tr['hard_ids'])} hard (measured {tr['hard_rate']:.1f}%, highest {tr['hard_max_rate']:.0f}%).",
            f"- Held-out targets, bench split ({ev['candidates']} candidates; per task and level "
            f"{pct(ev['per_task_level'])}): {len(ev['easy_ids'])} easy (measured {ev['easy_rate']:.1f}%) and "
            f"{len(ev['hard_ids'])} hard (measured {ev['hard_rate']:.1f}%).", "",
            "| Method | In-domain easy | In-domain hard | General (forgetting) | xi rate, easy prompts "
            "| xi rate, hard prompts | Reward, easy prompts | Reward, hard prompts | Wall time / run (s) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {LABELS['base']} | {base['in_domain_easy']:.1f} | {base['in_domain_hard']:.1f} | {base['general']:.1f} "
            f"| - | - | {tr['easy_rate']:.1f} | {tr['hard_rate']:.1f} | {base['wall_s']:.0f} |"]
    by = {m: [r for r in rows if r["method"] == m] for m in a.methods}
    for m, rs in by.items():
        if not rs:
            continue
        rew = (ci([r["reward_easy"] for r in rs]), ci([r["reward_hard"] for r in rs])) if m != "sft" else ("-", "-")
        head.append(f"| {LABELS[m]} | {ci([r['in_domain_easy'] for r in rs])} | {ci([r['in_domain_hard'] for r in rs])} "
                    f"| {ci([r['general'] for r in rs])} | {ci([r['xi_easy'] for r in rs])} | {ci([r['xi_hard'] for r in rs])} "
                    f"| {rew[0]} | {rew[1]} | {statistics.fmean(r['wall_s'] for r in rs):.0f} |")
    head += ["", "Held-out accuracy is greedy (evaluate.py). xi rate and reward: over all steps, the share of "
             "easy (hard) prompt draws with the expert term on, and the rollouts' success on them (SFT: no rollouts; "
             "SFT then GRPO: its GRPO half). Base reward: its measured sampled success on the pool. In-domain accuracy is "
             "per instance (n_correct / n: the halves mix tasks unevenly), general accuracy evaluate.py's overall "
             "(the mean over tasks)."]
    if all("in_domain_easy_sampled" in r for r in rows):
        head += ["", f"Sampled accuracy (mean over {a.samples} samples at temperature 1 per instance, same runs):", "",
                 "| Method | In-domain easy | In-domain hard | General |", "|---|---|---|---|",
                 f"| {LABELS['base']} | {base['in_domain_easy_sampled']:.1f} | {base['in_domain_hard_sampled']:.1f} "
                 f"| {base['general_sampled']:.1f} |"]
        for m, rs in by.items():
            if rs:
                head.append(f"| {LABELS[m]} | {ci([r['in_domain_easy_sampled'] for r in rs])} "
                            f"| {ci([r['in_domain_hard_sampled'] for r in rs])} | {ci([r['general_sampled'] for r in rs])} |")
    head += ["", "## Mechanism check: AHPO's gate on easy against hard prompts", ""]
    ah = sorted(by.get("ahpo", []), key=lambda r: r["seed"])
    if ah:
        e, h = t_interval([r["xi_easy"] for r in ah]), t_interval([r["xi_hard"] for r in ah])
        d = t_interval([r["xi_hard"] - r["xi_easy"] for r in ah])
        verdict = ("falls well below (under half)" if d[0] - d[1] > 0 and e[0] <= h[0] / 2 else
                   "falls below" if d[0] - d[1] > 0 else "does not fall measurably below")
        pm = (lambda m: f"{m[0]:.1f} ± {m[1]:.1f}") if len(ah) > 1 else (lambda m: f"{m[0]:.1f}")  # noqa: E731
        how = "paired by seed, 95% t" if len(ah) > 1 else "one seed: no interval"
        head.append(f"AHPO's xi rate on easy prompts is {pm(e)}%, on hard prompts {pm(h)}%: hard minus easy "
                    f"{pm(d)} points ({how}), easy / hard = {e[0] / max(h[0], 1e-9):.2f}. The easy "
                    f"rate {verdict} the hard rate.")
    st = sorted(by.get("static", []), key=lambda r: r["seed"])
    pairs = [(x, y) for x in ah for y in st if x["seed"] == y["seed"]]
    if pairs:
        head += ["", "AHPO minus static mixing, paired by seed (95% t):", ""]
        for key, name in (("in_domain_easy", "in-domain easy"), ("in_domain_hard", "in-domain hard"),
                          ("general", "general"), ("in_domain_easy_sampled", "in-domain easy, sampled"),
                          ("in_domain_hard_sampled", "in-domain hard, sampled"), ("general_sampled", "general, sampled")):
            if not all(key in x and key in y for x, y in pairs):
                continue
            d = t_interval([x[key] - y[key] for x, y in pairs])
            word = ("one seed: no interval" if len(pairs) < 2 else "AHPO higher" if d[0] - d[1] > 0
                    else "static higher" if d[0] + d[1] < 0 else "no difference resolved")
            head.append(f"- {name}: {d[0]:+.1f}" + (f" ± {d[1]:.1f}" if len(pairs) > 1 else "") + f" ({word})")
    return "\n".join(head) + "\n"


def mixed_curves(a, rows, key, skip=()):
    """Seed-mean per-step curve of a split_metrics curve key, per method (a step without such a
    prompt in a seed is left out of that step's mean)."""
    series = {}
    for m in a.methods:
        rs = [r for r in rows if r["method"] == m and key in r]
        if m in skip or not rs:
            continue
        off = a.steps // 2 if m == "sft-then-grpo" else 0
        steps = sorted({st for r in rs for st, _ in r[key]})
        pts = []
        for st in steps:
            vals = [v for r in rs for s2, v in r[key] if s2 == st and v is not None]
            pts.append((off + st, statistics.fmean(vals) if vals else None))
        series[LABELS[m]] = pts
    return series


def curves(a, out, key, skip=()):
    """Seed-mean curve of a metrics.jsonl key per method (sft-then-grpo: its GRPO half, after the SFT steps)."""
    series = {}
    for m in a.methods:
        if m in skip:
            continue
        per_seed = []
        for s in a.seeds:
            f = os.path.join(out, f"{m}-s{s}", "metrics.jsonl")
            if os.path.exists(f):
                per_seed.append([r[key] for r in read_jsonl(f)])
        if per_seed:
            n = min(len(x) for x in per_seed)
            off = a.steps // 2 if m == "sft-then-grpo" else 0
            series[LABELS[m]] = [(off + i + 1, statistics.fmean(x[i] for x in per_seed)) for i in range(n)]
    return series


def write_readme(results_dir, table_md, command):
    """results_dir/README.md: how the committed table and plots were made, then the table itself."""
    text = ["# Toy Table 2: committed results of repro.py", "",
            "Made on CPU (2 cores), every number written by the script (nothing edited by hand), with:", "",
            f"    {command}", "",
            "Seeds: the base model is trained with seed 0 (sft.py --seed 0, tiny.make_tiny seed 0); each method "
            "runs once per seed listed in the table header (ahpo.py / sft.py --seed). Held-out sets: synth.py "
            "--split bench (seeds from 0); training pools: synth.py --split train (seeds from 1,000,000) with "
            "--exclude set to the held-out records. Files: table.md, results.json (every run: accuracies, wall "
            "time, arguments), reward.png and xi_rate.png (seed-mean curves from each run's metrics.jsonl).", "",
            table_md]
    with open(os.path.join(results_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(text))


def main(argv=None):
    a = parse_args(argv)
    import torch
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out = a.out
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "log.txt")
    t0 = time.perf_counter()
    say = lambda msg: print(f"[repro {time.perf_counter() - t0:6.0f}s] {msg}", flush=True)  # noqa: E731
    data = os.path.join(out, "data")
    if a.report_only:
        with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        done = {(r["method"], r["seed"]) for r in rows}
        a.seeds = [s for s in a.seeds if any((m, s) in done for m in a.methods)]
        notes = {n: dict(traces=len(read_jsonl(os.path.join(data, n, "traces.jsonl"))))
                 for n in ("base_train", "target_train") + (("mixed_train",) if a.setting == "mixed" else ())}
        return report(a, out, rows, notes, sparse_note(rows[0]) if a.setting != "mixed" else "",
                      argv, t0, say)
    notes = make_data(a, data, log)
    say(f"data: {notes}")
    rows = [train_base(a, out, data, log)]
    base = os.path.join(out, "base", "final")
    say("base: " + " ".join(f"{k} {v:.1f}" for k, v in rows[0].items() if k.startswith(("in_domain", "general")))
        + f" ({rows[0]['wall_s']}s)")
    base_sparse = sparse_note(rows[0]) if a.setting != "mixed" else ""
    for seed in a.seeds:
        for m in a.methods:
            r = train_method(a, m, seed, base, out, data, os.path.join(out, f"log-{m}-s{seed}.txt"))
            rows.append(r)
            say(f"{m} seed {seed}: " + " ".join(f"{k} {v:.1f}" for k, v in r.items()
                                                 if k.startswith(("in_domain", "general", "xi_"))) + f" ({r['wall_s']}s)")
            with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
                json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    return report(a, out, rows, notes, base_sparse, argv, t0, say)


def report(a, out, rows, notes, base_sparse, argv, t0, say):
    if a.setting == "mixed":
        with open(os.path.join(out, "data", "probe.json"), encoding="utf-8") as f:
            md = mixed_table(a, rows, json.load(f), notes)
    else:
        md = table(a, rows, notes, base_sparse)
    md += f"\nTotal wall time: {time.perf_counter() - t0:.0f} s. Command: `python repro.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n"
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(md)
    if a.setting == "mixed":   # the same two files, each split into an easy and a hard panel
        plot(os.path.join(out, "reward.png"), [
            (f"Rollout reward, {g} prompts (mean over seeds)", mixed_curves(a, rows, f"curve_reward_{g}", skip=("sft",)),
             "reward") for g in ("easy", "hard")])
        plot(os.path.join(out, "xi_rate.png"), [
            (f"xi rate, {g} prompts: expert term on", mixed_curves(a, rows, f"curve_xi_{g}"), "xi")
            for g in ("easy", "hard")])
    else:
        plot(os.path.join(out, "reward.png"), [("Rollout reward (mean over seeds)",
                                                curves(a, out, "reward_mean", skip=("sft",)), "reward")])
        # sft samples no rollouts: no reward curve
        plot(os.path.join(out, "xi_rate.png"), [("xi rate: prompts with the expert term on", curves(a, out, "xi_rate"), "xi")])
    print(md)
    if a.results_dir:
        os.makedirs(a.results_dir, exist_ok=True)
        for f in ("table.md", "results.json", "reward.png", "xi_rate.png"):
            shutil.copy(os.path.join(out, f), os.path.join(a.results_dir, f))
        write_readme(a.results_dir, md, "python repro.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    say("done")
    return out


if __name__ == "__main__":
    main()
