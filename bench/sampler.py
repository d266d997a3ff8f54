"""
Benchmark: vlm.sample (hand-written prefill + KV-cache decode) against model.generate.

    python bench/sampler.py              # ~105M-parameter Qwen2 causal LM built from a config
    python bench/sampler.py --tiny       # the tiny Qwen2.5-VL of vlm.make_tiny, prompts with images
    python bench/sampler.py --device cuda --shape 7b   # Qwen2.5-7B's text dims, bf16 (random weights)
    python bench/sampler.py --model /tmp/smollm2       # a model folder (real weights), its own template

With --model the prompts are 8 MM-HELIX text questions (level 1 of 8 tasks, synthesised on the
spot) in the model's chat template. Which decode path the sampler takes is printed: the
hand-written step (`vlm.sampler.decode_step`, for the architectures in vlm.sampler.DECODE_STEP_TYPES) or, for
any other architecture, the fallback through the model's own forward.

Same model, same prompts (batch 8, left-padded, different lengths), greedy, and both forced to
generate all --new tokens (no EOS), with the vision tokens masked in both (vlm.sample always
masks them; generate gets suppress_tokens), so both do the same work and their tokens can be
compared. One warm-up call each, then --repeats calls of each, interleaved (the machine may be
shared: a change in load hits both); the best time counts.

Memory: the peak of bytes held by malloc (glibc mallinfo2: in-use arena + mmapped bytes,
sampled every 2 ms by a thread) above what was held before the call: what the call itself
allocates (KV cache, activations, logits), not the weights; unlike RSS it does not depend on
what the allocator kept from earlier calls. On CUDA: torch.cuda.max_memory_allocated above the
allocation before the call.

The last line reads: sampler X tok/s | generate Y tok/s | speed-up Zx
"""
import argparse
import ctypes
import os
import sys
import tempfile
import threading
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vlm  # noqa: E402

class _MallInfo2(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2


def malloced():
    """Bytes currently held by malloc (torch's CPU tensors live there)."""
    mi = _libc.mallinfo2()
    return mi.uordblks + mi.hblkhd


class PeakMemory:
    """Peak bytes allocated while the block runs, above those allocated when it started."""

    def __init__(self, cuda):
        self.cuda = cuda

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self.high = malloced()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._watch, daemon=True)
        self.t.start()
        return self

    def _watch(self):
        while not self.stop.wait(0.002):
            self.high = max(self.high, malloced())

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.t.join()
            self.peak = max(self.high, malloced()) - self.base


# text-model dims (the tiny tokenizer's 768-token vocabulary, so the LM head is small)
SHAPES = {"105m": dict(hidden=768, layers=12, heads=12, kv_heads=4, intermediate=3072),
          "1.5b": dict(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960),   # Qwen2.5-1.5B
          "7b": dict(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944)}    # Qwen2.5-7B


def build(args, workdir):
    """Model, processor and a prompt batch; deterministic, so both child processes agree."""
    if args.model:
        model, proc = vlm.load(args.model, device=args.device, dtype=getattr(torch, args.dtype) if args.dtype else None)
        import synth
        import tasks
        from tasks.records import jsonl_rows
        names = "buy_sell_stock,maze,hanoi,sudoku,h_index,twenty_four,word_ladder,lis".split(",")
        synth.main(["--split", "bench", "--tasks", ",".join(names[:args.batch]), "--levels", "1", "--count", "1",
                    "--out", workdir, "--exclude", "", "--workers", "1", "--no-images"])
        chats = [tasks.messages_for(rec, text_only=True) for _, rec, _ in
                 jsonl_rows(os.path.join(workdir, "records.jsonl"))]
    elif args.tiny:
        model, proc = vlm.make_tiny(None, kind="qwen2_5_vl", seed=1)
        rng = np.random.default_rng(0)
        from PIL import Image
        chats = []
        for i in range(args.batch):
            content = [{"type": "text", "text": f"Puzzle {i}: " + "find the path. " * (i % 4 + 1)}]
            if i % 4 != 3:  # one prompt in four is text-only
                path = os.path.join(workdir, f"{i}.png")
                Image.fromarray(rng.integers(0, 255, (40 + 20 * i, 60, 3), dtype=np.uint8)).save(path)
                content.insert(0, {"type": "image", "image": path})
            chats.append([{"role": "user", "content": content}])
    else:
        dims = SHAPES[args.shape]
        with torch.device(args.device):   # built where it runs (a 7B model in fp32 is 30 GB)
            model, proc = vlm.make_tiny(None, kind="causal", seed=1, **dims)
        chats = [[{"role": "user", "content": f"Solve puzzle {i}: " + "move right, left, up, down. " * (i + 1)}]
                 for i in range(args.batch)]
    model = model.to(args.device, getattr(torch, args.dtype) if args.dtype else
                     (torch.bfloat16 if args.device.startswith("cuda") else torch.float32))
    model.generation_config.eos_token_id = None  # generate must not stop early either
    return model, proc, vlm.prompt_batch(proc, chats)


def run_sampler(model, proc, batch, n_new):
    return vlm.sample(model, proc, batch, max_new_tokens=n_new, greedy=True, eos_ids=[]).ids


def run_generate(model, proc, batch, n_new):
    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if proc.kind == "qwen2_5_vl":
        kw["mm_token_type_ids"] = (batch["input_ids"] == proc.image_token_id).int()
        if batch["pixel_values"] is not None:
            kw.update(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    with torch.inference_mode():
        out = model.generate(**kw, do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                             eos_token_id=None, pad_token_id=proc.pad_id, suppress_tokens=proc.banned_ids)
    return out[:, batch["input_ids"].shape[1]:].tolist()


def timed(fn, model, proc, batch, n_new):
    with PeakMemory(model.device.type == "cuda") as mem:
        t0 = time.perf_counter()
        ids = fn(model, proc, batch, n_new)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter() - t0
    assert all(len(r) == n_new for r in ids), "a row stopped early"
    return t, mem.peak, ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a local model folder (vlm.load) instead of random weights")
    ap.add_argument("--tiny", action="store_true", help="the tiny Qwen2.5-VL (with images) instead of ~105M Qwen2")
    ap.add_argument("--batch", type=int, default=8, help="prompts per batch")
    ap.add_argument("--new", type=int, default=128, help="new tokens per row (all of them are generated)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per method, interleaved; the best counts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="105m", help="text model dims (without --tiny)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        model, proc, batch = build(args, workdir)
        methods = {"sampler": run_sampler, "generate": run_generate}
        for fn in methods.values():
            fn(model, proc, batch, 4)  # warm-up
        times, peaks, ids = {k: [] for k in methods}, {k: [] for k in methods}, {}
        for _ in range(args.repeats):  # interleaved, so a change in machine load hits both
            for k, fn in methods.items():
                t, peak, ids[k] = timed(fn, model, proc, batch, args.new)
                times[k].append(t)
                peaks[k].append(peak)
    tok = args.batch * args.new
    best = {k: min(v) for k, v in times.items()}
    name = (f"{args.model} ({model.config.model_type})" if args.model else
            'tiny Qwen2.5-VL' if args.tiny else 'Qwen2 causal LM ' + args.shape)
    path = ("hand-written decode step (vlm.sampler.decode_step)" if vlm.sampler.hand_decoder(model) is not None else
            f"fallback: the model's own forward (no hand-written step for {model.config.model_type!r})")
    print(f"model: {name}, {model.dtype}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, {model.device}, "
          f"{torch.get_num_threads()} threads; batch {args.batch}, prompt {batch['input_ids'].shape[1]} tokens "
          f"(left-padded), {args.new} new tokens, greedy; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    what = "CUDA allocated" if model.device.type == "cuda" else "malloc'd"
    for k in methods:
        print(f"{k:8s}: best {best[k]:.2f}s of {[round(t, 2) for t in times[k]]}, {tok / best[k]:.1f} tok/s, "
              f"{best[k] / args.new * 1e3:.2f} ms/step; peak {what} above start {max(peaks[k]) / 2**20:.1f} MiB")
    print(f"sampler decode path: {path}")
    print(f"same tokens: {ids['sampler'] == ids['generate']}")
    print(f"sampler {tok / best['sampler']:.1f} tok/s | generate {tok / best['generate']:.1f} tok/s | "
          f"speed-up {best['generate'] / best['sampler']:.2f}x")


if __name__ == "__main__":
    main()
