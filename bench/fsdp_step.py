"""Time per training step under FSDP2 against the hand-written data-parallel path it replaced, on
CPU (gloo), at 1, 2 and 4 processes, in one run on one machine.

    python bench/fsdp_step.py                          # sft.py and ahpo.py, tiny and small model
    python bench/fsdp_step.py --stages sft --worlds 1,2 --baseline 9b9451b

The baseline is the project as it was at --baseline (a commit before FSDP2: a bucketed
all-reduce after backward, replicated weights), unpacked with `git archive` into a temporary
folder; both trees run the same commands on the same data, one after the other, so the machine
is the same. A run's step time is the median over its steps 2.. of metrics.jsonl ("seconds" for
sft.py; sampling + scoring + training for ahpo.py), rank 0's; the two trees run alternately,
--repeats times each (ABAB...), and the median of the runs is reported, so that a slow spell of
a shared machine lands on both. Models: the tiny offline Qwen2.5-VL
(0.3M parameters) and a small one built the same way (4.7M), text prompts; SFT rows of up to 1,024
tokens and AHPO rows of up to 2,048 (longer traces dropped), so that a run takes minutes on 2
cores. Prints a table
and, per model and world size, FSDP2's time as a ratio of the baseline's.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"tiny": {}, "small": dict(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1024,
                                    vision_hidden=64, vocab_size=2048)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unpack(rev, into):
    data = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.extractall(into, filter="data")


def launch(tree, world, script, args, env):
    cmd = ([sys.executable, os.path.join(tree, script)] if world == 1 else
           [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}", f"--master_port={free_port()}",
            os.path.join(tree, script)])
    p = subprocess.run(cmd + args, cwd=tree, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{tree}: {script} at {world} failed:\n{p.stderr[-3000:]}")


def step_time(metrics, stage):
    rows = [json.loads(line) for line in open(metrics)][1:]
    key = (lambda r: r["seconds"]) if stage == "sft" else (lambda r: r["t_sample"] + r["t_score"] + r["t_train"])
    return statistics.median(key(r) for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="9b9451b", help="a commit with the hand-written data-parallel path")
    ap.add_argument("--stages", default="sft,ahpo")
    ap.add_argument("--models", default="tiny,small")
    ap.add_argument("--worlds", default="1,2,4")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each tree, alternating")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    worlds = [int(w) for w in a.worlds.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "baseline")
        unpack(a.baseline, base)
        sys.path.insert(0, ROOT)
        import elicit
        import synth
        import vlm
        synth.main(["--split", "train", "--tasks", "buy_sell_stock,lis,hanoi,maze", "--levels", "1,2", "--count", "4",
                    "--out", f"{d}/train", "--exclude", "", "--no-images", "--quiet"])
        elicit.main(["--records", f"{d}/train/records.jsonl", "--out", f"{d}/traces.jsonl", "--text-only", "--quiet"])
        for name in a.models.split(","):
            vlm.make_tiny(f"{d}/{name}", seed=0, **MODELS[name])
        for stage in a.stages.split(","):
            for name in a.models.split(","):
                for world in worlds:
                    times = {"hand-written": [], "FSDP2": []}
                    for label, tree in [("hand-written", base), ("FSDP2", ROOT)] * a.repeats:
                        out = f"{d}/{stage}-{name}-{world}-{label}"
                        common = ["--model", f"{d}/{name}", "--out", out, "--device", "cpu", "--save-every", "1000",
                                  "--text-only", "--lr", "1e-3", "--quiet"]
                        if stage == "sft":
                            args = common + ["--data", f"{d}/traces.jsonl", "--batch-size", "4", "--micro-batch-size",
                                             "1", "--max-steps", str(a.steps + 1), "--max-len", "1024", "--drop-long"]
                        else:
                            args = common + ["--records", f"{d}/train/records.jsonl", "--traces", f"{d}/traces.jsonl",
                                             "--steps", str(a.steps + 1), "--prompts-per-step", "4", "--rollouts", "4",
                                             "--max-new-tokens", "32", "--micro-batch-size", "4", "--max-len", "2048",
                                             "--drop-long", "--rollout-chunk", str(4 // world)]
                        launch(tree, world, f"{stage}.py", args, env)
                        times[label].append(step_time(f"{out}/metrics.jsonl", stage))
                        shutil.rmtree(out)
                    for label, ts in times.items():
                        results[stage, name, world, label] = statistics.median(ts)
                    t_b, t_f = results[stage, name, world, "hand-written"], results[stage, name, world, "FSDP2"]
                    print(f"{stage:4} {name:5} world {world}: hand-written {t_b:.3f} s, FSDP2 {t_f:.3f} s a step: "
                          f"{t_f / t_b:.2f}x", flush=True)
    n = {name: sum(p.numel() for p in vlm.make_tiny(None, **MODELS[name])[0].parameters()) for name in MODELS}
    print()
    print("| stage | model | processes | hand-written (s/step) | FSDP2 (s/step) | FSDP2 / hand-written |")
    print("|---|---|---|---|---|---|")
    for (stage, name, world, label), t in results.items():
        if label == "FSDP2":
            t_b = results[stage, name, world, "hand-written"]
            print(f"| {stage} | {name} ({n[name] / 1e6:.1f}M) | {world} | {t_b:.3f} | {t:.3f} | {t / t_b:.2f}x |")


if __name__ == "__main__":
    main()
