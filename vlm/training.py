"""
vlm/training.py -- what sft.py and ahpo.py share to train on one process or many (torchrun):
ranks and collectives, the learning-rate schedule, the optimizer (fp32 master weights for bf16
models, ZeRO-1 across ranks), sharded checkpoints with exact resume, and the metrics file.

    rank, world, device = dist_init()             # from torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    params = trainable(model, freeze_vision, grad_checkpointing)
    opt = make_optimizer(params, lr, weight_decay, zero, world)
    ... loss.backward() on each micro-batch, the loss divided by the GLOBAL token count ...
    all_reduce_grads(params, world)               # sum over ranks = the gradient of one big batch
    opt.step()
    checkpoint(out, step, model, proc, opt, vars(args), rank, world)   # collective

No DDP wrapper: each rank's loss is already normalised by the token count of the whole global
batch (all_reduce_sum of the counts before any backward), so summing gradients is exact.
"""

import json
import math
import os
import random
import shutil
import sys

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer

from harness import cli
from vlm import modelio, tiny
from vlm.modelio import save


def dist_backend(device_type):
    """The process group's backend for a training device: gloo on CPU; on GPUs NCCL for CUDA
    tensors AND gloo for CPU ones. NCCL carries CUDA tensors only, and some reductions are of
    CPU values (token counts, metrics, objects): without the CPU entry they stop the run with
    "No backend type associated with device type cpu" at its first step."""
    return "gloo" if device_type == "cpu" else f"cpu:gloo,{device_type}:nccl"


def dist_init(device=None):
    """(rank, world, device) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (1 process if unset).
    The process group is dist_backend(device.type): gloo on CPU, "cpu:gloo,cuda:nccl" on GPUs."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(dist_backend(device.type))
    return rank, world, device


def dist_close():
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(x, world):
    """Sum a tensor (or a float) over ranks; returns the same type."""
    if world == 1:
        return x
    t = x if torch.is_tensor(x) else torch.tensor(float(x), dtype=torch.float64)
    t = t.clone()
    dist.all_reduce(t)
    return t if torch.is_tensor(x) else t.item()


def all_reduce_grads(params, world, bucket_mb=64):
    """Sum gradients over ranks, in flat buckets. Each rank's loss is already divided by the
    GLOBAL token count, so the sum is the gradient of one big batch: no DDP wrapper needed, and
    parameters a rank did not use (the vision tower on a text-only batch) simply count as 0."""
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    limit = bucket_mb * 2 ** 20
    for p in params + [None]:
        if p is not None:
            bucket.append(p)
            size += p.grad.numel() * p.grad.element_size()
        if bucket and (p is None or size >= limit):
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat)
            off = 0
            for q in bucket:
                q.grad.copy_(flat[off:off + q.grad.numel()].view_as(q.grad))
                off += q.grad.numel()
            bucket, size = [], 0


def lr_at(step, total, lr, warmup, schedule):
    """Linear warmup for `warmup` steps, then `schedule`: "constant" keeps lr, "cosine" decays
    to 10% of lr at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


def rng_state():
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s):
    random.setstate(s["python"])
    torch.set_rng_state(s["torch"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def trainable(model, freeze_vision=False, grad_checkpointing=False):
    """Put `model` in training mode (activation checkpointing only acts in it), optionally
    freeze the Qwen2.5-VL vision tower and recompute activations in backward; return the
    parameters to optimise."""
    model.train()
    visual = getattr(getattr(model, "model", None), "visual", None)
    if freeze_vision and visual is not None:
        visual.requires_grad_(False)
    if grad_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return [p for p in model.parameters() if p.requires_grad]


class MasterAdamW(torch.optim.Optimizer):
    """AdamW whose update is made on an fp32 master copy of each low-precision parameter.

    Why: with bf16 weights (the GPU default) the step lr * m / sqrt(v) ~ 1e-6 is far below half
    a bf16 ulp of a weight near 1e-2 (about 4e-5), so plain AdamW on bf16 parameters rounds every
    update away and the model never moves. Here the model keeps bf16 for compute; the optimizer
    keeps, per parameter, an fp32 `master`, `exp_avg` and `exp_avg_sq` (12 bytes), updates the
    master and writes it back rounded. fp32 parameters (CPU) are updated in place, no copy: the
    math is torch.optim.AdamW's (decoupled weight decay, bias correction). The state lives in
    self.state[param] like any optimizer's, so ZeRO-1 shards it and checkpoints carry it."""

    def __init__(self, params, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    st["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    if p.dtype != torch.float32:
                        st["master"] = p.detach().float()
                w = st.get("master", p)
                g = p.grad.float()
                st["step"] += 1
                t = st["step"].item()
                w.mul_(1 - lr * wd)
                st["exp_avg"].lerp_(g, 1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (st["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
                w.addcdiv_(st["exp_avg"], denom, value=-lr / (1 - b1 ** t))
                if w is not p:
                    p.copy_(w)

    def load_state_dict(self, state_dict):
        # torch casts loaded states to the parameter's dtype (bf16 here): put the fp32 ones back
        saved = {i: dict(s) for i, s in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for i, s in saved.items():
            p = params[int(i)]
            for k, v in s.items():
                if k != "step" and torch.is_tensor(v):
                    self.state[p][k] = v.to(p.device, torch.float32)


def make_optimizer(params, lr, weight_decay, zero, world):
    """MasterAdamW, with its states sharded over ranks (ZeRO-1) when `zero` and world > 1."""
    if zero and world > 1:
        return ZeroRedundancyOptimizer(params, optimizer_class=MasterAdamW, lr=lr,
                                       weight_decay=weight_decay, betas=(0.9, 0.95))
    return MasterAdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))


def _shards(opt, world):
    """How many files hold the optimizer state: one per rank under ZeRO-1 (each rank owns a
    partition of the parameters' states), else one (every rank holds the same whole state)."""
    return world if world > 1 and hasattr(opt, "consolidate_state_dict") else 1


def _shard_file(path, rank, shards):
    return os.path.join(path, f"optimizer-{rank}-of-{shards}.pt")


def checkpoint(out, step, model, proc, opt, args, rank, world, keep=2):
    """Collective: every rank calls it. Writes out/step-N: rank 0 the model folder; each rank
    ITS OWN optimizer shard, optimizer-<rank>-of-<world>.pt under ZeRO-1 (else rank 0 the one
    whole state, optimizer-0-of-1.pt); last, rank 0 trainer_state.pt (step, every rank's RNG,
    args), which marks the folder complete, and moves it into place. No rank gathers another's
    shard: at 7B the whole fp32 master + m + v is ~100 GB, a ZeRO shard of 8 ~12 GB."""
    path = os.path.join(out, f"step-{step}")
    tmp = path + ".tmp"
    rngs = [rng_state()]
    if world > 1:
        rngs = [None] * world
        dist.all_gather_object(rngs, rng_state())
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        save(model, proc, tmp)
    if world > 1:
        dist.barrier()
    shards = _shards(opt, world)
    if shards > 1:
        torch.save(opt.optim.state_dict(), _shard_file(tmp, rank, shards))  # the local MasterAdamW
    elif rank == 0:
        torch.save(opt.state_dict(), _shard_file(tmp, 0, 1))
    if world > 1:
        dist.barrier()
    if rank == 0:
        state = {"step": step, "rng": rngs, "args": dict(args), "world": world, "optimizer_shards": shards}
        torch.save(state, os.path.join(tmp, "trainer_state.pt"))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)  # a crash mid-save never leaves a half-written step-N behind
        _prune(out, keep)
    if world > 1:
        dist.barrier()


def _prune(out, keep):
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()))
    for s in steps[:-keep] if keep else []:
        shutil.rmtree(os.path.join(out, f"step-{s}"), ignore_errors=True)


def resume(path, opt, rank, world):
    """Load a step-N folder written by checkpoint(): this rank's optimizer shard (only it, memory
    mapped: host memory ~ the shard) and RNG. Returns the trainer state (step, args). A folder
    written by another number of ranks, or with/without ZeRO, is refused in one line: the
    ZeRO partition of the parameters and each rank's RNG stream depend on the world size."""
    st = torch.load(os.path.join(path, "trainer_state.pt"), weights_only=False)
    if "optimizer" in st:   # a checkpoint from before sharding: one consolidated state
        opt.load_state_dict(st["optimizer"])
    else:
        saved_world, shards = st["world"], st["optimizer_shards"]
        if (saved_world, shards) != (world, _shards(opt, world)):
            zero = lambda w, s: f"{w} rank{'s' * (w > 1)}" + (" with --zero" if s > 1 else "")  # noqa: E731
            raise SystemExit(f"error: {path}: written by {zero(saved_world, shards)}, this run has "
                             f"{zero(world, _shards(opt, world))}; resume it with the same, or pass --no-resume")
        sd = torch.load(_shard_file(path, rank if shards > 1 else 0, shards), map_location="cpu",
                        weights_only=False, mmap=True)
        (opt.optim if shards > 1 else opt).load_state_dict(sd)
    set_rng_state(st["rng"][rank] if isinstance(st["rng"], list) else st["rng"])
    return st


def barrier(world):
    """torch.distributed.barrier under several processes, else None: what harness.runs.take
    (which imports no torch) is handed to line the ranks up around run.json."""
    return dist.barrier if world > 1 else None


def latest_checkpoint(out):
    """The newest out/step-N folder with a trainer state, or None."""
    if not os.path.isdir(out):
        return None
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()
                    and os.path.exists(os.path.join(out, d, "trainer_state.pt"))))
    return os.path.join(out, f"step-{steps[-1]}") if steps else None


def open_metrics(path, start_step):
    """metrics.jsonl for appending after `start_step`: rows of steps a crash made after the
    last checkpoint are dropped, so a resumed run's file equals an uninterrupted run's."""
    keep = []
    if start_step and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= start_step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
    f = open(path, "w")
    f.writelines(keep)
    f.flush()
    return f


# ---- one run setup for sft.py and ahpo.py ------------------------------------------------------------
@dataclass
class Run:
    """What a training stage holds once set up: the ranks, the model and its processor, what is
    trained and how, where the run starts. Built by setup() and start(); the stages never write
    their resolved values back into args (run.json records args as given)."""
    rank: int
    world: int
    device: Any
    model: Any                 # the policy: plain (one process) or with its gradients summed by hand
    proc: Any                  # vlm.modelio.Processor
    model_path: str            # the starting model's folder (--model, or the tiny one built here)
    resume: str | None         # the step-N folder this run continues from, if any
    text_only: bool            # images dropped: asked for, or a text-only model
    max_len: int               # --max-len, or the model's context length
    params: list               # the parameters optimised
    lr: float                  # --lr, or the stage's default for this model's size
    dtype: Any = None          # --dtype as a torch dtype (None: bf16 on GPU, fp32 on CPU)
    pixels: dict = None        # min/max_pixels given on the command line
    opt: Any = None            # set by start()
    start_step: int = 0        # steps already done (start(): from the checkpoint)
    metrics: Any = None        # metrics.jsonl, open for appending on rank 0 (start())

    @property
    def master(self):
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on GPU; on CPU a context that does nothing (fp32)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)


def start_model(args):
    """What run.json records as the starting model: --model's folder, or the tiny offline model
    built from --seed."""
    return args.model if args.model is not None else f"tiny offline model, seed {args.seed}"


def setup(args, stage, rank, world, device):
    """The model of a run: the newest step-N of --out to continue (unless --overwrite), else
    --model, else a tiny offline model built in --out/tiny-base; its processor; the parameters to
    train (--freeze-vision, --grad-checkpointing) and the learning rate (--lr, or the stage's
    default for the model's size, harness.cli.default_lr). Every rank calls it."""
    resume = None if args.no_resume else latest_checkpoint(args.out)
    model_path = args.model
    if model_path is None:
        model_path = os.path.join(args.out, "tiny-base")
        if rank == 0 and not os.path.isdir(model_path):
            tiny.make_tiny(model_path, seed=args.seed)
        if world > 1:   # on every rank: one that found the folder already built still waits here
            dist.barrier()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    pixels = {k: v for k, v in (("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v}
    model, proc = modelio.load(resume or model_path, device=device, dtype=dtype, **pixels)
    max_len = args.max_len if args.max_len is not None else modelio.context_length(model)
    params = trainable(model, args.freeze_vision, args.grad_checkpointing)
    n_params = sum(p.numel() for p in model.parameters())
    lr = args.lr if args.lr is not None else cli.default_lr(stage, n_params)
    return Run(rank, world, device, model, proc, model_path, resume,
               text_only=args.text_only or proc.kind != "qwen2_5_vl", max_len=max_len, params=params, lr=lr,
               dtype=dtype, pixels=pixels)


def start(run, args):
    """The optimizer, restored from the checkpoint being continued (and with it the step and
    every rank's RNG), and metrics.jsonl opened on rank 0 after that step. Call it once the run
    folder is taken (harness.runs.take)."""
    run.opt = make_optimizer(run.params, run.lr, args.weight_decay, args.zero, run.world)
    if run.resume:
        run.start_step = resume(run.resume, run.opt, run.rank, run.world)["step"]
        if run.master:
            print(f"resumed from {run.resume} at step {run.start_step}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    if run.master:
        run.metrics = open_metrics(os.path.join(args.out, "metrics.jsonl"), run.start_step)
    return run


def log_metrics(run, row):
    """One row of metrics.jsonl (rank 0), flushed: a killed run keeps every finished step."""
    if run.master:
        run.metrics.write(json.dumps(row) + "\n")
        run.metrics.flush()


def finish(run, out):
    """final/ (a from_pretrained folder) on rank 0, metrics closed, the process group gone."""
    if run.master:
        run.model.eval()
        save(run.model, run.proc, os.path.join(out, "final"))
        run.metrics.close()
    dist_close()
