"""Run a stage under torchrun on CPU as if the ranks were on GPUs, for the 2-rank tests.

    python -m torch.distributed.run --nproc_per_node=2 tests/launch.py sft.py --device cpu ...

The process group is built by vlm.training.dist_init's GPU branch, exactly as on a GPU node, with one
substitution: NCCL does not exist on CPU, so every "<device>:nccl" entry becomes
"<device>:gloo" FOR THAT DEVICE TYPE ONLY (a bare "nccl" becomes "cuda:gloo"). A group that
maps only cuda then refuses a CPU tensor with "No backend type associated with device type
cpu", as NCCL would; the computation itself stays on CPU. So a 2-rank stage test run through
here fails if any collective relies on a device type the GPU group does not carry.

With GRADS_OUT=<path>, rank 0 saves the summed gradients of the first optimizer step there
(gathered whole from FSDP2's shards), before any optimizer step: the tests of several processes
against one compare those.
"""
import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import vlm  # noqa: E402


def _cpu_for_nccl(backend):
    entries = backend.split(",")
    if len(entries) == 1 and ":" not in backend:
        return "cuda:gloo" if backend == "nccl" else backend
    return ",".join(e.replace(":nccl", ":gloo") for e in entries)


def _gpu_like_dist_init(device=None, one_process_group=False):
    """vlm.training.dist_init on its GPU branch (cuda 'available', set_device a no-op), computing on CPU."""
    init, avail, setdev = dist.init_process_group, torch.cuda.is_available, torch.cuda.set_device
    dist.init_process_group = lambda backend=None, *a, **k: init(_cpu_for_nccl(backend), *a, **k)
    torch.cuda.is_available, torch.cuda.set_device = (lambda: True), (lambda d: None)
    try:
        rank, world, _ = _dist_init(None)
    finally:
        dist.init_process_group, torch.cuda.is_available, torch.cuda.set_device = init, avail, setdev
    return rank, world, torch.device("cpu")


def _grads_saving(clip_grads):
    path, done = os.environ.get("GRADS_OUT"), []

    def wrapped(run, max_norm):
        if path and not done:
            # the summed gradient of the first step, before clipping and before any optimizer
            # step: under FSDP2 each rank holds its shards (DTensors), gathered whole here (a
            # collective: every rank takes part); an unused parameter (the vision tower on text)
            # has no gradient on one process and zeros under FSDP2: the same gradient
            full = [(p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad) if p.grad is not None
                    else None for p in run.params]
            if int(os.environ.get("RANK", 0)) == 0:
                torch.save([g.detach().double().clone() if g is not None
                            else torch.zeros(tuple(p.shape), dtype=torch.float64) for g, p in zip(full, run.params)],
                           path)
        done.append(1)
        return clip_grads(run, max_norm)
    return wrapped


# the stages call vlm.training.<function>: patch it there
_dist_init = vlm.training.dist_init
if int(os.environ.get("WORLD_SIZE", 1)) > 1:
    vlm.training.dist_init = _gpu_like_dist_init
vlm.training.clip_grads = _grads_saving(vlm.training.clip_grads)
stage = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(os.path.join(ROOT, stage), run_name="__main__")
