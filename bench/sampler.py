"""
Benchmark: vlm.sample's decode paths (eager, static, CUDA graph) against model.generate, and on a
GPU against the bandwidth limit.

    python bench/sampler.py              # ~105M-parameter Qwen2 causal LM built from a config
    python bench/sampler.py --tiny       # the tiny Qwen2.5-VL of vlm.make_tiny, prompts with images
    python bench/sampler.py --device cuda --shape 1.5b,7b --batch 8,40,80   # issue 21's grid, bf16
    python bench/sampler.py --model /tmp/smollm2       # a model folder (real weights), its own template

Paths: eager (vlm.sampler.decode_step over the filled K/V, the CPU default), static (the same
step with fixed shapes, vlm/graphs.py, run eagerly) and graph (the static step replayed as a
CUDA graph; GPU only, the default there). NOT YET RUN ON A GPU: the graph rows have never been
printed. With --model the prompts are 8 MM-HELIX text questions (level 1 of 8 tasks,
synthesised on the spot) in the model's chat template. Which decode path the sampler takes is
printed: the hand-written step (for the architectures in vlm.sampler.DECODE_STEP_TYPES) or, for
any other architecture, the fallback through the model's own forward (eager only).

Same model, same prompts (left-padded, different lengths), greedy, and every method forced to
generate all --new tokens (no EOS), with the vision tokens masked in all (vlm.sample always
masks them; generate gets suppress_tokens), so all do the same work and their tokens can be
compared. One warm-up call each, then --repeats rounds of calls at 8 and at --new tokens,
interleaved (the machine may be shared: a change in load hits all); the best time counts. A
step's time is (best at --new - best at 8) / (--new - 8): prefill and graph capture cancel out
and are printed apart as the fixed cost of a call.

Bandwidth limit (GPU): the bytes a step must read -- the decoder's and LM head's weights, plus
the K/V of the filled positions averaged over the steps -- divided by the peak bandwidth of a
2 GiB device copy measured in the same run; each path's ms/step is printed as a multiple of it.

Memory: the peak of bytes held by malloc (glibc mallinfo2: in-use arena + mmapped bytes,
sampled every 2 ms by a thread) above what was held before the call: what the call itself
allocates (KV cache, activations, logits), not the weights; unlike RSS it does not depend on
what the allocator kept from earlier calls. On CUDA: torch.cuda.max_memory_allocated above the
allocation before the call (the graph's private pool included).

The last line of each block reads: <fastest sampler path> X ms/step | generate Y ms/step | speed-up Zx
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
        from harness.jsonl import jsonl_rows
        names = "buy_sell_stock,maze,hanoi,sudoku,h_index,twenty_four,word_ladder,lis".split(",")
        synth.main(["--split", "bench", "--tasks", ",".join(names[:max(args.batch)]), "--levels", "1", "--count", "1",
                    "--out", workdir, "--exclude", "", "--workers", "1", "--no-images"])
        chats = [tasks.messages_for(rec, text_only=True) for _, rec, _ in
                 jsonl_rows(os.path.join(workdir, "records.jsonl"))]
    elif args.tiny:
        model, proc = vlm.make_tiny(None, kind="qwen2_5_vl", seed=1)
        rng = np.random.default_rng(0)
        from PIL import Image
        chats = []
        for i in range(max(args.batch)):
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
        chats = [[{"role": "user", "content": f"Solve puzzle {i}: " + "move right, left, up, down. " * (i % 8 + 1)}]
                 for i in range(max(args.batch))]
    model = model.to(args.device, getattr(torch, args.dtype) if args.dtype else
                     (torch.bfloat16 if args.device.startswith("cuda") else torch.float32))
    model.generation_config.eos_token_id = None  # generate must not stop early either
    return model, proc, chats


def run_eager(model, proc, batch, n_new):
    return vlm.sample(model, proc, batch, max_new_tokens=n_new, greedy=True, eos_ids=[], static=False,
                      graphs=False).ids


def run_static(model, proc, batch, n_new):
    return vlm.sample(model, proc, batch, max_new_tokens=n_new, greedy=True, eos_ids=[], static=True,
                      graphs=False).ids


def run_graph(model, proc, batch, n_new):
    return vlm.sample(model, proc, batch, max_new_tokens=n_new, greedy=True, eos_ids=[], graphs=True).ids


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


def peak_bandwidth(device, gib=2, repeats=5):
    """Bytes per second of a large device-to-device copy (read + write), the best of `repeats`:
    the bandwidth a decode step can hope for, measured in the same run as the steps."""
    x = torch.empty(int(gib * 2**30), dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        y.copy_(x)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    del x, y
    return 2 * gib * 2**30 / best


def bytes_per_step(model, rows, prompt_len, n_new):
    """What one decode step must read at least: every weight the step uses (the decoder and the
    LM head; not the vision tower) and the K/V of the positions filled so far, averaged over the
    n_new steps. The static path reads the K/V of the whole capacity (prompt + n_new) instead."""
    text = vlm.sampler.hand_decoder(model)
    used = list(text.parameters()) + [model.get_output_embeddings().weight]
    w = sum(p.numel() * p.element_size() for p in {id(p): p for p in used}.values())
    cfg = text.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * model.dtype.itemsize
    return w, rows * (prompt_len + n_new / 2) * per_token


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a local model folder (vlm.load) instead of random weights")
    ap.add_argument("--tiny", action="store_true", help="the tiny Qwen2.5-VL (with images) instead of ~105M Qwen2")
    ap.add_argument("--batch", default="8", help="prompts per batch, comma-separated for several (8,40,80)")
    ap.add_argument("--new", type=int, default=128, help="new tokens per row (all of them are generated)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per method, interleaved; the best counts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--shape", default="105m",
                    help=f"text model dims (without --tiny), comma-separated: {sorted(SHAPES)}")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    args = ap.parse_args()
    args.batch = [int(x) for x in args.batch.split(",")]
    shapes = args.shape.split(",")
    if bad := [x for x in shapes if x not in SHAPES]:
        ap.error(f"--shape: unknown {bad}, choose from {sorted(SHAPES)}")
    if args.new < 16:
        ap.error("--new must be >= 16 (steps are timed as the difference of two lengths)")
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    bw = peak_bandwidth(args.device) if cuda else None
    if bw:
        print(f"peak bandwidth (2 GiB device copy, read + write): {bw / 1e12:.2f} TB/s")
    else:
        print("graph path and bandwidth limit: need a GPU (--device cuda); CPU runs eager, static, generate")
    for shape in (shapes if not (args.model or args.tiny) else [None]):
        args.shape = shape
        with tempfile.TemporaryDirectory() as workdir:
            model, proc, chats = build(args, workdir)
            for rows in args.batch:
                bench_one(args, model, proc, vlm.prompt_batch(proc, chats[:rows]), rows, bw)
        del model
        if cuda:
            torch.cuda.empty_cache()


def bench_one(args, model, proc, batch, rows, bw):
    """One model at one batch size: every method at two lengths, interleaved; a step's time is
    the difference of the two calls' best times over the steps between them, so the prefill,
    the graph capture and the host-to-device transfers cancel out (they are printed apart)."""
    cuda = model.device.type == "cuda"
    hand = vlm.sampler.hand_decoder(model) is not None
    methods = {"eager": run_eager}
    if hand:
        methods["static"] = run_static
        if cuda:
            methods["graph"] = run_graph
    methods["generate"] = run_generate
    short = 8
    load0 = os.getloadavg()[0]
    for fn in methods.values():
        fn(model, proc, batch, 4)  # warm-up
    times = {k: {short: [], args.new: []} for k in methods}
    peaks, ids = {k: [] for k in methods}, {}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every method
        for k, fn in methods.items():
            for n_new in (short, args.new):
                t, peak, out = timed(fn, model, proc, batch, n_new)
                times[k][n_new].append(t)
                if n_new == args.new:
                    peaks[k].append(peak)
                    ids[k] = out
    best = {k: {n: min(v) for n, v in tk.items()} for k, tk in times.items()}
    step = {k: (b[args.new] - b[short]) / (args.new - short) for k, b in best.items()}
    Lp = batch["input_ids"].shape[1]
    name = (f"{args.model} ({model.config.model_type})" if args.model else
            'tiny Qwen2.5-VL' if args.tiny else 'Qwen2 causal LM ' + args.shape)
    path = ("hand-written decode step (vlm.sampler.decode_step)" if hand else
            f"fallback: the model's own forward (no hand-written step for {model.config.model_type!r})")
    print(f"\nmodel: {name}, {model.dtype}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, {model.device}, "
          f"{torch.get_num_threads()} threads; batch {rows}, prompt {Lp} tokens "
          f"(left-padded), {args.new} new tokens, greedy; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"sampler decode path: {path}")
    limit = None
    if bw and hand:
        w, kv = bytes_per_step(model, rows, Lp, args.new)
        limit = (w + kv) / bw
        print(f"bandwidth limit: {limit * 1e3:.2f} ms/step = ({w / 1e9:.2f} GB weights + {kv / 1e9:.3f} GB K/V, "
              f"mean over the steps) / {bw / 1e12:.2f} TB/s")
    what = "CUDA allocated" if cuda else "malloc'd"
    for k in methods:
        if step[k] <= 0:   # a loaded machine can make the short call the slower one
            print(f"{k:8s}: no step time (the {short}-token call was not faster): "
                  "rerun with more --new / --repeats")
            continue
        ratio = f", {step[k] / limit:.1f}x the limit" if limit else ""
        fixed = best[k][short] - short * step[k]
        print(f"{k:8s}: {step[k] * 1e3:7.2f} ms/step{ratio}; per call {fixed:.2f}s fixed (prefill"
              f"{', capture' if k == 'graph' else ''}) + steps; {rows * args.new / best[k][args.new]:.1f} tok/s "
              f"over {args.new} tokens; peak {what} above start {max(peaks[k]) / 2**20:.1f} MiB")
    for k in methods:
        if k != "eager":
            same = sum(a == b for a, b in zip(ids[k], ids["eager"]))
            print(f"{k} tokens equal eager's: {same} of {rows} rows"
                  + (" (bf16: a near-tie of the random model's argmax can flip)" if cuda else ""))
    if min(step.values()) <= 0:
        return
    fastest = min((k for k in methods if k != "generate"), key=lambda k: step[k])
    print(f"{fastest} {step[fastest] * 1e3:.2f} ms/step | generate {step['generate'] * 1e3:.2f} ms/step | "
          f"speed-up {step['generate'] / step[fastest]:.2f}x")


if __name__ == "__main__":
    main()
