"""
vlm/training.py -- what sft.py and ahpo.py share to train on one process or many (torchrun):
ranks and collectives, the run setup, the learning-rate schedule, the optimizer, FSDP2 on a
device mesh, DCP checkpoints that reshard, and the metrics file.

    rank, world, device = dist_init()                     # torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    run = setup(args, "ahpo", rank, world, device)        # the model, processor, what is trained
    ... checks that need the processor; harness.runs.take(...) ...
    start(run, args)                                      # the optimizer; resume from step-N
    loop: loss = modelio.logprobs(run.policy, batch) ...; (loss / T_global).backward()
          clip_grads(run, max_norm); run.opt.step()
    checkpoint(run, out, step, args)                      # collective: DCP, any world size resumes it
    finish(run, out)                                      # final/: a from_pretrained folder

One process (and no --offload): the plain model, nothing wrapped. On GPU its weights are bf16
and MasterAdamW keeps the fp32 master copy beside AdamW's moments.

Several processes: FSDP2 (torch.distributed.fsdp.fully_shard) on a 2-D device mesh
("replicate", "shard"). --dp-shard K ranks hold one copy of the model between them, each a 1/K
slice; the world size / K copies are replicas (K = 1: every rank holds all of it, DDP's layout;
K = world: a full shard; K = the GPUs of a node, the default: HSDP, sharded inside a node and
replicated across nodes). The fp32 sharded parameters are the master weights: forward and
backward compute in bf16 (MixedPrecisionPolicy(param_dtype=bf16)), gradients are reduced in
fp32, and plain torch.optim.AdamW updates the shards. The units: every decoder layer, and
modelio.Policy, the root, holding the rest (embeddings, vision tower, norm, lm_head).

What FSDP2 needs from this project, each found on CPU gloo (torch 2.13) and tested
(tests/test_fsdp.py):
  - gradients are SUMMED over ranks, not averaged: every loss here is already divided by the
    token count of the whole global batch (set_gradient_divide_factor(1.0));
  - gloo has no PREMUL_SUM: on CPU every reduction is a plain sum (set_force_sum_reduction_for_comms);
  - a rank whose batch has no image leaves the vision tower without gradients: they are
    reduce-scattered as zeros all the same (set_reduce_scatter_unused_params), or the ranks'
    collectives would not match;
  - the root is modelio.Policy, whose forward is the whole of logprobs(): lm_head's chunks run
    inside one unit, so ranks with different completion lengths make the same collectives;
  - every rank runs the same number of forward and backward calls in a step (equal_calls);
  - the root frees its gathered parameters after every forward, as the layers do (FSDP2's
    default keeps a root's until backward): while a unit is gathered, module.parameters() gives
    the gathered copies, so an optimizer built after the first forward (the one root_first
    makes) would update tensors FSDP2 throws away, and the root would never learn;
  - rollouts decode with the whole model gathered once (gathered(): unshard every unit, keep it
    through the decode steps, reshard after), so ranks may decode different numbers of tokens.
"""

import contextlib
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

from harness import cli
from vlm import modelio, tiny


# ---- ranks and collectives ---------------------------------------------------------------------------
def dist_backend(device_type):
    """The process group's backend for a training device: gloo on CPU; on GPUs NCCL for CUDA
    tensors AND gloo for CPU ones. NCCL carries CUDA tensors only, and some reductions are of
    CPU values (token counts, metrics, objects): without the CPU entry they stop the run with
    "No backend type associated with device type cpu" at its first step."""
    return "gloo" if device_type == "cpu" else f"cpu:gloo,{device_type}:nccl"


def dist_init(device=None, one_process_group=False):
    """(rank, world, device) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (1 process if unset).
    The process group is dist_backend(device.type): gloo on CPU, "cpu:gloo,cuda:nccl" on GPUs.
    One process gets a group of its own only when asked (FSDP2 with --offload on one GPU)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if (world > 1 or one_process_group) and not dist.is_initialized():
        if world > 1:
            dist.init_process_group(dist_backend(device.type))
        else:   # plain `python sft.py --offload`: no torchrun, no rendezvous to read
            dist.init_process_group(dist_backend(device.type), store=dist.HashStore(), rank=0, world_size=1)
    return rank, world, device


def dist_close():
    """Every rank reaches the barrier before any tears its connections down: a rank that
    destroys the group and exits while another is still writing its files can end in gloo's
    "terminate called without an active exception" (seen once in 53 four-process sft.py runs
    on CPU). evaluate.py relies on the barrier too: rank 0 reads every rank's responses after it."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(world):
    """torch.distributed.barrier under several processes, else None: what harness.runs.take
    (which imports no torch) is handed to line the ranks up around run.json."""
    return dist.barrier if world > 1 else None


def all_reduce_sum(x, world):
    """Sum a tensor (or a float) over ranks; returns the same type."""
    if world == 1:
        return x
    t = x if torch.is_tensor(x) else torch.tensor(float(x), dtype=torch.float64)
    t = t.clone()
    dist.all_reduce(t)
    return t if torch.is_tensor(x) else t.item()


def equal_calls(n, world):
    """The number of forward + backward calls every rank makes: the most any rank needs (FSDP2
    gathers and reduces each unit once per call, so a rank with fewer calls would leave the
    others waiting). A rank pads its own with calls that add nothing (a zero loss)."""
    if world == 1:
        return n
    t = torch.tensor(float(n))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


# ---- schedule and RNG --------------------------------------------------------------------------------
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


# ---- what is trained, and the one-process optimizer --------------------------------------------------
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
    """AdamW whose update is made on an fp32 master copy of each low-precision parameter: the
    optimizer of the one-process path (under FSDP2 the fp32 shards are the masters).

    Why: with bf16 weights (the GPU default) the step lr * m / sqrt(v) ~ 1e-6 is far below half
    a bf16 ulp of a weight near 1e-2 (about 4e-5), so plain AdamW on bf16 parameters rounds every
    update away and the model never moves. Here the model keeps bf16 for compute; the optimizer
    keeps, per parameter, an fp32 `master`, `exp_avg` and `exp_avg_sq` (12 bytes), updates the
    master and writes it back rounded. fp32 parameters (CPU) are updated in place, no copy: the
    math is torch.optim.AdamW's (decoupled weight decay, bias correction), and so are the names
    of its states, so a checkpoint moves between this and FSDP2's AdamW."""

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
                if "step" not in st:   # a master may be there already: read from a checkpoint
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    st["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    if p.dtype != torch.float32 and "master" not in st:
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


def make_optimizer(params, lr, weight_decay, sharded):
    """MasterAdamW on one process; torch.optim.AdamW on FSDP2's fp32 shards. The same update."""
    if sharded:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95), eps=1e-8)
    return MasterAdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))


# ---- FSDP2 on a device mesh --------------------------------------------------------------------------
def dp_shard_of(args, world):
    """--dp-shard, by default the processes of one node (torchrun's LOCAL_WORLD_SIZE), and the
    check that it divides the world: the mesh is (world / dp_shard replicas) x (dp_shard shards)."""
    k = args.dp_shard if args.dp_shard is not None else int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if world % k:
        raise SystemExit(f"error: --dp-shard {k} does not divide the {world} processes (the mesh is "
                         f"replicas x shards = {world}); use a divisor of {world}")
    return k


def device_mesh(world, dp_shard, device):
    """The ("replicate", "shard") mesh; 1-D ("shard",) when there is one replica."""
    from torch.distributed.device_mesh import init_device_mesh
    if dp_shard == world:
        return init_device_mesh(device.type, (world,), mesh_dim_names=("shard",))
    return init_device_mesh(device.type, (world // dp_shard, dp_shard), mesh_dim_names=("replicate", "shard"))


def decoder_layers(model):
    """The text decoder's layers (Qwen2.5-VL nests its text model as .language_model)."""
    base = model.base_model
    return getattr(base, "language_model", base).layers


def shard(policy, mesh, compute_dtype, offload):
    """fully_shard every decoder layer, then the Policy root (the rest of the model), with the
    settings the module docstring explains. In place; returns the FSDP units, root last."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=None if compute_dtype == torch.float32 else compute_dtype,
                              reduce_dtype=torch.float32)
    kw = dict(mesh=mesh, mp_policy=mp, offload_policy=CPUOffloadPolicy() if offload else OffloadPolicy())
    units = [fully_shard(layer, **kw) for layer in decoder_layers(policy.model)]
    # the root too frees its parameters after forward (FSDP2's default keeps a root's until
    # backward): outside a forward every parameter is then a shard, which is what the optimizer
    # must hold (see the module docstring)
    units.append(fully_shard(policy, reshard_after_forward=True, **kw))
    for u in units:
        u.set_gradient_divide_factor(1.0)            # losses are divided by the global token count
        u.set_reduce_scatter_unused_params(True)     # the vision tower on a text-only rank
        if mesh.device_type == "cpu":
            u.set_force_sum_reduction_for_comms(True)   # gloo has no PREMUL_SUM
    return units


def load_sharded(path, rank, mesh, device, compute_dtype, offload, pixels, freeze_vision, grad_checkpointing):
    """A Policy sharded over the mesh, its weights read once: rank 0 reads the folder in fp32 on
    the CPU, the other ranks build the model on the meta device (no memory), all shard, and rank
    0's tensors are sent to every rank's shards (and its buffers to every rank, rotary tables
    included). Host memory: one fp32 copy, on rank 0's host, not one per rank."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    model, proc = modelio.load(path, device="cpu", dtype=torch.float32, meta=rank != 0, **pixels)
    trainable(model, freeze_vision, grad_checkpointing)
    full = model.state_dict() if rank == 0 else {}
    # buffers (rotary tables: not in the state dict, computed at construction, so garbage on the
    # meta ranks), by module: each is sent from rank 0 and set on the compute device
    slots = [(mod, b) for _, mod in model.named_modules() for b, t in mod._buffers.items() if t is not None]
    values = [mod._buffers[b].clone() for mod, b in slots] if rank == 0 else None
    policy = modelio.Policy(model, device)   # offloaded weights sit in host memory: inputs go to `device`
    units = shard(policy, mesh, compute_dtype, offload)
    policy.to_empty(device="cpu" if offload else device)   # offloaded shards live in CPU memory
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for k, (mod, b) in enumerate(slots):
        t = values[k].to(device) if rank == 0 else torch.empty_like(mod._buffers[b], device=device)
        dist.broadcast(t, src=0)
        mod._buffers[b] = t
    del full, values
    root_first(policy, proc)
    return policy, proc, units


def root_first(policy, proc):
    """FSDP2 takes as its root the first unit that runs forward. The rollouts run the decoder
    layers before any training forward, which would make each layer a root of its own (and the
    first training forward then fails): so the Policy runs first, once, on a one-token row."""
    with torch.no_grad():
        policy(modelio.train_batch(proc, [[{"role": "user", "content": "."}]], [[proc.eos_id]]))


def units_of(run):
    from torch.distributed.fsdp import FSDPModule
    return [m for m in run.policy.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(run):
    """The whole model unsharded on every rank (bf16 on GPU) while the block runs: the rollouts.
    A decode step calls the layers' own modules token by token, so no unit may reshard or gather
    in between: ranks then decode different numbers of tokens without a collective. Resharded
    after. One process: nothing to do."""
    if not run.sharded:
        yield
        return
    units = units_of(run)
    for u in units:
        u.set_reshard_after_forward(False, recurse=False)
        u.unshard()
    try:
        yield
    finally:
        for u in units:
            u.reshard()
            u.set_reshard_after_forward(True, recurse=False)


def clip_grads(run, max_norm):
    """Clip the gradient's global L2 norm (over every shard and rank) to max_norm; returns the
    norm before clipping, as a float."""
    norm = torch.nn.utils.clip_grad_norm_(run.params, max_norm)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


# ---- checkpoints: DCP, resharded on resume -------------------------------------------------------------
def _trained_state(run):
    """{"model": {name: fp32 weight}, "optim": {name: {exp_avg, exp_avg_sq, step}}}, keyed by the
    parameter names of the model, so that any world size and any --dp-shard reads it: under
    FSDP2 the tensors are the shards (DTensors) and DCP writes each rank's part; on one process
    they are whole (a bf16 model's weights are MasterAdamW's fp32 masters)."""
    model, optim = {}, {}
    for name, p in run.model.named_parameters():
        st = run.opt.state.get(p, {})
        model[name] = st["master"] if "master" in st else p.detach().float()   # .float(): a no-op on fp32
        if "step" in st:
            optim[name] = {k: v for k, v in st.items() if k != "master"}
    return {"model": model, "optim": optim}


def checkpoint(run, out, step, args, keep=2):
    """Collective: every rank calls it. Writes out/step-N: the model's weights and the optimizer's
    states with DCP (torch.distributed.checkpoint: each rank writes its own shards, a replica's
    once), then, on rank 0, trainer_state.pt (step, world, --dp-shard, every rank's RNG, args),
    which marks the folder complete, and moves it into place (a crash mid-save leaves no
    half-written step-N). step-N is for resuming; final/ is the from_pretrained folder."""
    import torch.distributed.checkpoint as dcp
    path = os.path.join(out, f"step-{step}")
    tmp = path + ".tmp"
    rngs = [rng_state()]
    if run.world > 1:
        rngs = [None] * run.world
        dist.all_gather_object(rngs, rng_state())
    if run.master:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    if run.world > 1:
        dist.barrier()
    dcp.save(_trained_state(run), checkpoint_id=tmp, no_dist=not run.sharded)
    if run.master:
        state = {"step": step, "rng": rngs, "args": dict(vars(args)), "world": run.world, "dp_shard": run.dp_shard}
        torch.save(state, os.path.join(tmp, "trainer_state.pt"))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        _prune(out, keep)
    if run.world > 1:
        dist.barrier()


def _prune(out, keep):
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()))
    for s in steps[:-keep] if keep else []:
        shutil.rmtree(os.path.join(out, f"step-{s}"), ignore_errors=True)


def latest_checkpoint(out):
    """The newest out/step-N folder with a trainer state, or None."""
    if not os.path.isdir(out):
        return None
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()
                    and os.path.exists(os.path.join(out, d, "trainer_state.pt"))))
    return os.path.join(out, f"step-{steps[-1]}") if steps else None


def read_trainer_state(path):
    st = torch.load(os.path.join(path, "trainer_state.pt"), weights_only=False)
    if "dp_shard" not in st:   # written before DCP (a from_pretrained step-N and optimizer-*.pt files)
        raise SystemExit(f"error: {path}: a checkpoint of the hand-written data-parallel path this version "
                         "no longer reads; continue it with the version that wrote it, or pass --overwrite")
    return st


def resume(run, path):
    """Load a step-N folder written by checkpoint(), at this run's world size and --dp-shard,
    whatever they were: DCP reshards the weights and the optimizer's states onto this run's
    layout. Each rank's RNG is restored when the world size is the same; otherwise the streams
    start afresh from (seed, step, rank), and one line says so (the model and data position are
    what make the next step; the RNG only draws what the seeds do not fix). Returns the step."""
    import torch.distributed.checkpoint as dcp
    st = read_trainer_state(path)
    saved = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    target = _trained_state(run)
    # the states to read: every one the checkpoint has, for a parameter this run trains. A
    # parameter that never had a gradient there (the vision tower of a text-only run on one
    # process) has none and starts its moments here, as it would have there
    masters = {}
    for name, p in run.model.named_parameters():
        w = target["model"][name]
        if w.dtype != torch.float32:     # a bf16 model on one process: read its fp32 master
            masters[name] = target["model"][name] = torch.empty_like(w, dtype=torch.float32)
        if p.requires_grad and f"optim.{name}.exp_avg" in saved:
            target["optim"][name] = {"step": torch.tensor(0.0),
                                     "exp_avg": torch.zeros_like(w, dtype=torch.float32),
                                     "exp_avg_sq": torch.zeros_like(w, dtype=torch.float32)}
    dcp.load(target, checkpoint_id=path, no_dist=not run.sharded)
    for name, p in run.model.named_parameters():
        state = dict(target["optim"].get(name, {}))
        if name in masters:      # the bf16 weight is the master rounded; MasterAdamW keeps the master
            with torch.no_grad():
                p.copy_(masters[name])
            state["master"] = masters[name]
        if state:
            run.opt.state[p] = state
    same = (st["world"], st["dp_shard"]) == (run.world, run.dp_shard)
    if same:
        set_rng_state(st["rng"][run.rank])
    else:
        seed = (run.seed * 1_000_003 + st["step"]) * 1009 + run.rank
        torch.manual_seed(seed)
        random.seed(seed)
        if run.master:
            print(f"note: {path} was written by {st['world']} process(es) at --dp-shard {st['dp_shard']}; "
                  f"this run has {run.world} at --dp-shard {run.dp_shard}: the weights and optimizer states "
                  "are resharded, and each rank's random stream starts from the seed", file=sys.stderr)
    return st["step"]


# ---- one run setup for sft.py and ahpo.py ------------------------------------------------------------
@dataclass
class Run:
    """What a training stage holds once set up: the ranks, the model and its processor, what is
    trained and how, where the run starts. Built by setup() and start(); the stages never write
    their resolved values back into args (run.json records args as given)."""
    rank: int
    world: int
    device: Any
    model: Any                 # the Hugging Face model: sampling, saving, parameter names
    policy: Any                # modelio.Policy(model): the forward of training (FSDP2's root unit)
    proc: Any                  # vlm.modelio.Processor
    model_path: str            # the starting model's folder (--model, or the tiny one built here)
    resume: str | None         # the step-N folder this run continues from, if any
    text_only: bool            # images dropped: asked for, or a text-only model
    max_len: int               # --max-len, or the model's context length
    params: list               # the parameters optimised
    lr: float                  # --lr, or the stage's default for this model's size
    seed: int = 0
    sharded: bool = False      # FSDP2 (several processes, or --offload)
    dp_shard: int = 1          # ranks that hold one copy of the model between them
    dtype: Any = None          # --dtype as a torch dtype (None: bf16 on GPU, fp32 on CPU)
    pixels: dict = None        # min/max_pixels given on the command line
    opt: Any = None            # set by start()
    start_step: int = 0        # steps already done (start(): from the checkpoint)
    metrics: Any = None        # metrics.jsonl, open for appending on rank 0 (start())
    reporters: Any = None      # --report-to: Reporters on rank 0 (start()), else None

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


def check_distributed(args, world, device):
    """The distributed flags against this launch, before any model loads: --dp-shard must divide
    the world size; --offload needs a GPU (it keeps the shards in CPU memory between a GPU's
    uses: on a CPU-only run there is nothing to offload from). Returns --dp-shard, resolved."""
    if args.offload and device.type != "cuda":
        raise SystemExit(f"error: --offload keeps weights, gradients and optimizer states in CPU memory "
                         f"between the GPU's uses; this run has no GPU (device {device.type}): drop --offload")
    return dp_shard_of(args, world)


def setup(args, stage, rank, world, device):
    """The model of a run: --model, else a tiny offline model built in --out/tiny-base (a run
    that continues from --out/step-N loads its weights in start()); its processor; the
    parameters to train (--freeze-vision, --grad-checkpointing) and the learning rate (--lr, or
    the stage's default for the model's size, harness.cli.default_lr). One process: the plain
    model. Several (or --offload): FSDP2 on the mesh (shard). Every rank calls it."""
    resume_from = None if args.no_resume else latest_checkpoint(args.out)
    model_path = args.model
    if model_path is None:
        model_path = os.path.join(args.out, "tiny-base")
        if rank == 0 and not os.path.isdir(model_path):
            tiny.make_tiny(model_path, seed=args.seed)
        if world > 1:   # on every rank: one that found the folder already built still waits here
            dist.barrier()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    pixels = {k: v for k, v in (("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v}
    dp_shard = dp_shard_of(args, world)
    sharded = world > 1 or args.offload
    if sharded:
        compute = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        mesh = device_mesh(world, dp_shard, device)
        policy, proc = load_sharded(model_path, rank, mesh, device, compute, args.offload, pixels,
                                    args.freeze_vision, args.grad_checkpointing)[:2]
        model = policy.model
    else:
        model, proc = modelio.load(model_path, device=device, dtype=dtype, **pixels)
        trainable(model, args.freeze_vision, args.grad_checkpointing)
        policy = modelio.Policy(model)
    if getattr(args, "micro_batch_tokens", None) and not getattr(args, "no_pack", False):
        modelio.use_packed_attention(model)   # packed rows: attention over the blocks only
    params = [p for p in policy.parameters() if p.requires_grad]
    if sharded and not all(type(p).__name__ == "DTensor" for p in params):   # see shard()
        raise RuntimeError("FSDP2: a unit is still gathered; the optimizer would hold copies FSDP2 discards")
    max_len = args.max_len if args.max_len is not None else modelio.context_length(model)
    n_params = sum(p.numel() for p in model.parameters())   # a shard's DTensor counts the whole
    lr = args.lr if args.lr is not None else cli.default_lr(stage, n_params)
    return Run(rank, world, device, model, policy, proc, model_path, resume_from,
               text_only=args.text_only or proc.kind != "qwen2_5_vl", max_len=max_len, params=params, lr=lr,
               seed=args.seed, sharded=sharded, dp_shard=dp_shard, dtype=dtype, pixels=pixels)


def load_reference(run):
    """The starting model, frozen, laid out as the policy is (KL to the initial model)."""
    if run.sharded:
        compute = run.dtype or (torch.bfloat16 if run.device.type == "cuda" else torch.float32)
        mesh = device_mesh(run.world, run.dp_shard, run.device)
        ref = load_sharded(run.model_path, run.rank, mesh, run.device, compute, False, run.pixels,
                           False, False)[0]
    else:
        ref = modelio.Policy(modelio.load(run.model_path, device=run.device, dtype=run.dtype, **run.pixels)[0])
    ref.requires_grad_(False)
    if modelio._packed_attention_on(run.model):   # the same batches as the policy's
        modelio.use_packed_attention(ref.model)
    return ref


def start(run, args, settings=None):
    """The optimizer, restored from the checkpoint being continued (weights, states, the step,
    the RNG), and metrics.jsonl opened on rank 0 after that step, with its --report-to mirrors
    (which record `settings`, run.json's). Call it once the run folder is taken
    (harness.runs.take)."""
    run.opt = make_optimizer(run.params, run.lr, args.weight_decay, run.sharded)
    if run.resume:
        run.start_step = resume(run, run.resume)
        if run.master:
            print(f"resumed from {run.resume} at step {run.start_step}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    if run.master:
        run.metrics = open_metrics(os.path.join(args.out, "metrics.jsonl"), run.start_step)
        targets = getattr(args, "report_to", "none")
        if targets != "none":
            run.reporters = Reporters(targets.split(","), args.out, settings or {"args": vars(args)},
                                      run.start_step)
    return run


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


def log_metrics(run, row):
    """One row of metrics.jsonl (rank 0), flushed: a killed run keeps every finished step; and
    its numbers to --report-to's mirrors."""
    if run.master:
        run.metrics.write(json.dumps(row) + "\n")
        run.metrics.flush()
        if run.reporters is not None:
            run.reporters.log(row)


def _hparam(v):
    """A setting as TensorBoard's hparams take it: a number, a string or a bool; JSON otherwise."""
    return v if isinstance(v, (bool, int, float, str)) else json.dumps(v)


class Reporters:
    """--report-to on rank 0: TensorBoard (a SummaryWriter on <out>/tb) and/or Weights & Biases
    get the run's settings once (TensorBoard: as hparams, and as text) and every metrics.jsonl
    row's numbers under the row's own keys at its step. A row's other fields are left to
    metrics.jsonl: ahpo's mode is a setting already, and its per_prompt lists (record id,
    successes, xi per prompt) are no curve. The packages are imported here, after
    harness.cli.check_report_to has found them."""

    def __init__(self, targets, out, settings, start_step):
        self.tb = self.wandb = None
        if "tensorboard" in targets:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
            # a run continued from step-k drops what a crash logged after step k, as
            # open_metrics drops those rows: events at step > k are purged
            self.tb = SummaryWriter(os.path.join(out, "tb"), purge_step=start_step + 1 if start_step else None)
            flat = {k: _hparam(v) for k, v in settings.get("args", {}).items()}
            flat.update({f"input {k}": _hparam(v) for k, v in settings.get("inputs", {}).items()})
            flat.update({k: _hparam(v) for k, v in settings.items() if k not in ("args", "inputs")})
            for summary in hparams(flat, {}):
                self.tb.file_writer.add_summary(summary)
            self.tb.add_text("settings", "    " + json.dumps(settings, indent=1).replace("\n", "\n    "))
            self.tb.flush()
        if "wandb" in targets:
            import wandb
            self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "mm-helix"),
                                    name=os.path.basename(os.path.abspath(out)), config=settings, dir=out)

    def log(self, row):
        numbers = {k: v for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tb is not None:
            for k, v in numbers.items():
                self.tb.add_scalar(k, v, global_step=row["step"])
            self.tb.flush()   # as metrics.jsonl: a killed run keeps every finished step
        if self.wandb is not None:
            self.wandb.log(numbers, step=row["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def save_final(run, path):
    """A from_pretrained folder (safetensors, config, tokenizer, image processor) that vLLM and
    evaluate.py load. Under FSDP2 the whole state is gathered to rank 0's CPU (full_state_dict,
    cpu_offload: one rank holds it, in host memory) and written in the compute dtype (bf16 on
    GPU), as one process writes its bf16 model. Collective under FSDP2."""
    if run.sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        sd = get_model_state_dict(run.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if run.master:
            dtype = run.dtype or (torch.bfloat16 if run.device.type == "cuda" else torch.float32)
            run.model.save_pretrained(path, state_dict={k: v.to(dtype) for k, v in sd.items()})
            run.proc.save(path)
    elif run.master:
        run.model.eval()
        modelio.save(run.model, run.proc, path)


def finish(run, out):
    """final/, metrics closed, the process group gone."""
    save_final(run, os.path.join(out, "final"))
    if run.master:
        run.metrics.close()
        if run.reporters is not None:
            run.reporters.close()
    dist_close()
