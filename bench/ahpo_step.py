"""Where an AHPO step spends its time: sampling, scoring, optimisation (tiny model, CPU).

    python bench/ahpo_step.py                    # 5 steps, 8 prompts x N=5, 128 new tokens
    python bench/ahpo_step.py --steps 3 --max-new-tokens 256 --images

Builds a small training pool and rule-based expert traces in a temporary folder, runs
ahpo.py on the tiny offline Qwen2.5-VL, and prints the mean time per step of each phase with
tokens/s, from the run's metrics.jsonl (first step excluded: warm-up).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ahpo  # noqa: E402
import elicit  # noqa: E402
import synth  # noqa: E402
import vlm  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--images", action="store_true", help="image prompts (default: text-only)")
    a = p.parse_args()
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


if __name__ == "__main__":
    main()
