"""Fixed-seed outputs of the model side and of every training stage, to prove a refactor changed
nothing: sampler tokens and log-probs, the first steps' losses and parameter checksums of sft.py
and of each ahpo.py mode, and evaluate.py's predictions.

    python bench/fixed_seed.py --save before.json     # before the change
    python bench/fixed_seed.py --check before.json    # after: exit 1 and name every difference

Everything runs on CPU in fp32 on one thread with a tiny offline model, so a rerun on the same
machine gives the same bits; compare files made on the same machine (another CPU may round
differently). About a minute on 2 cores.
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import ahpo  # noqa: E402
import elicit  # noqa: E402
import evaluate  # noqa: E402
import sft  # noqa: E402
import synth  # noqa: E402
import tasks  # noqa: E402
import vlm  # noqa: E402



def checksum(folder):
    """sha256 over every tensor of a saved model (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    for f in sorted(x for x in os.listdir(folder) if x.endswith(".safetensors")):
        tensors = load_file(os.path.join(folder, f))
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def metrics(path):
    rows = [json.loads(line) for line in open(path)]
    # times and rates (t_sample, tokens_per_s, eta_s, ...) measure the machine, not the result
    return [{k: v for k, v in r.items() if not (k.startswith("t_") or k.endswith("_s") or k == "seconds")} for r in rows]


def quiet(fn, argv):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return fn(argv)


def sampler_outputs(d):
    model, proc = vlm.make_tiny(os.path.join(d, "tiny-vl"), seed=3)
    from PIL import Image
    Image.new("RGB", (90, 60), (200, 30, 30)).save(os.path.join(d, "red.png"))
    chats = [[{"role": "user", "content": "Find the shortest path, then box it."}],
             [{"role": "user", "content": [{"type": "image", "image": os.path.join(d, "red.png")},
                                           {"type": "text", "text": "What colour?"}]}],
             [{"role": "user", "content": "Yes or No?"}]]
    batch = vlm.prompt_batch(proc, chats)
    out = {}
    for name, kw in {"greedy": dict(greedy=True), "seeded": dict(n=3, temperature=1.0, seed=11),
                     "top_p": dict(n=2, temperature=0.8, top_p=0.9, seed=5),
                     "forward_path": dict(n=2, temperature=1.0, seed=7, fast=False)}.items():
        s = vlm.sample(model, proc, batch, max_new_tokens=24, **kw)
        out[name] = {"ids": s.ids, "logprobs": s.logprobs, "finished": s.finished}
    tb = vlm.train_batch(proc, [c for c in chats for _ in range(3)], out["seeded"]["ids"])
    with torch.no_grad():
        lp, ent = vlm.logprobs(model, tb, temperature=1.0)
    out["logprobs_fn"] = {"logp": lp.tolist(), "entropy": ent.tolist()}
    return out


def run_ahpo(d, mode, name, *extra):
    quiet(ahpo.main, [*extra, "--mode", mode, "--model", f"{d}/base", "--records", f"{d}/train/records.jsonl",
                      "--traces", f"{d}/traces.jsonl", "--out", f"{d}/{name}", "--steps", "3",
                      "--prompts-per-step", "4", "--rollouts", "3", "--max-new-tokens", "16",
                      "--micro-batch-size", "3", "--lr", "1e-3", "--max-len", "8192", "--device", "cpu"])


def stage_outputs(d):
    few = ["--tasks", "buy_sell_stock,maze,lis", "--levels", "1,2", "--count", "2"]
    quiet(synth.main, [*few, "--out", f"{d}/bench", "--exclude", ""])
    quiet(synth.main, ["--split", "train", *few, "--out", f"{d}/train", "--exclude", f"{d}/bench/records.jsonl"])
    quiet(elicit.main, ["--records", f"{d}/train/records.jsonl", "--out", f"{d}/traces.jsonl"])
    vlm.make_tiny(f"{d}/base", seed=0)
    out = {}
    quiet(sft.main, ["--model", f"{d}/base", "--data", f"{d}/traces.jsonl", "--out", f"{d}/sft",
                     "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "2", "--max-len", "8192",
                     "--lr", "1e-3", "--device", "cpu"])
    out["sft"] = {"metrics": metrics(f"{d}/sft/metrics.jsonl"), "params": checksum(f"{d}/sft/final")}
    # a random tiny model never answers right, so every advantage would be 0 and the on-policy
    # term would be untested: a pseudo-reward (a hash bit of the response) gives mixed groups
    real_score = tasks.score
    tasks.score = lambda text, record: hashlib.sha256(text.encode()).digest()[0] % 2 == 0
    try:
        runs = [(mode, f"ahpo-{mode}", ()) for mode in ahpo.MODES]
        runs.append(("ahpo", "ahpo-epochs2-kl", ("--epochs", "2", "--kl-coef", "0.1")))  # ratio, clip, KL
        for mode, name, extra in runs:
            run_ahpo(d, mode, name, *extra)
            out[name] = {"metrics": metrics(f"{d}/{name}/metrics.jsonl"), "params": checksum(f"{d}/{name}/final")}
    finally:
        tasks.score = real_score
    quiet(evaluate.main, ["--model", f"{d}/ahpo-ahpo/final", "--records", f"{d}/bench/records.jsonl",
                          "--out", f"{d}/eval", "--max-new-tokens", "16", "--device", "cpu"])
    out["evaluate"] = [{k: r[k] for k in ("id", "response", "extracted", "correct") if k in r}
                       for r in map(json.loads, open(f"{d}/eval/predictions.jsonl"))]
    return out


def diff(a, b, path=""):
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} -> {type(b).__name__}"]
    if isinstance(a, dict):
        return [x for k in sorted(set(a) | set(b)) for x in
                ([f"{path}/{k}: only in one"] if (k in a) != (k in b) else diff(a[k], b[k], f"{path}/{k}"))]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} -> {len(b)}"]
        return [x for i, (u, v) in enumerate(zip(a, b)) for x in diff(u, v, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", metavar="FILE.json", help="record the outputs")
    g.add_argument("--check", metavar="FILE.json", help="compare with a recorded file")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        got = {"sampler": sampler_outputs(d), **stage_outputs(d)}
    if args.save:
        with open(args.save, "w") as f:
            json.dump(got, f)
        print(f"saved {args.save}: " + ", ".join(sorted(got)))
        return 0
    want = json.load(open(args.check))
    problems = diff(want, json.loads(json.dumps(got)))
    for line in problems[:40]:
        print(line)
    print(f"{len(problems)} differences" if problems else f"identical to {args.check}: " + ", ".join(sorted(got)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
