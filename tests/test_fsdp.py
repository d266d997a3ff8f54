"""FSDP2 (vlm/training.py) on CPU gloo, 2 and 4 processes: the gradient of a step equals one
process's on every mesh, the sampler on a sharded model equals the unsharded one, and every fix
that vlm/training.py makes for FSDP2 has a case that fails without it.

The work is done by tests/fsdp_worker.py under torchrun (one launch checks several meshes: a
launch costs each process an import of torch and transformers). The trap cases (--break) are
marked slow: each starts processes that are meant to fail, one of them by a gloo timeout.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import vlm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tolerance on gradients, one process against several. Both compute the same sums over the
# same tokens, grouped differently: the per-rank partial sums of a micro-batch's loss, the
# reduce-scatter's sums over ranks (in fp32), and the shards' norms. fp32 addition is not
# associative: each sum of n terms moves by up to about sqrt(n) u (u = 2^-24 = 6e-8) when its
# order changes. The tiny model's longest sums (64-wide matmuls over a batch's ~300 tokens, the
# 768-way softmax) have n < 10^4 terms: sqrt(n) u < 6e-6, chained through two layers and the
# head. So the whole gradient agrees to 1e-5 of its norm; a gradient averaged instead of summed
# is off by 1 - 1/world (50% at 2 processes), a lost unit's by 100% of that unit's.
GRAD_RTOL = 1e-5
# The sampler's log-probs, sharded (gathered) model against the plain one: the same weights, the
# same kernels; the gathered copy is a concatenation of shards, equal to the bit. They differ
# only where a reduction's blocking depends on a tensor's allocation (a few ulps of fp32 on log-
# probs of magnitude <= ~10): 1e-5 is the tolerance tests/test_vlm.py uses between the sampler
# and vlm.logprobs for the same reason. Tokens must be equal.
LOGP_ATOL = 1e-5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsdp")
    rng = np.random.default_rng(0)
    (d / "img").mkdir()
    for i, (h, w) in enumerate([(60, 80), (100, 50), (30, 30)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / "img" / f"{i}.png")
    vlm.make_tiny(str(d / "tiny"), seed=1)
    return d


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(d, nproc, *args, timeout=600):
    out = d / f"result-{nproc}-{abs(hash(args))}.json"
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                        f"--master_port={_free_port()}", "tests/fsdp_worker.py", "--model", str(d / "tiny"),
                        "--images", str(d / "img"), "--out", str(out), *args],
                       cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                       timeout=timeout)
    return p, (json.loads(out.read_text()) if p.returncode == 0 and out.exists() else None)


def _check_grads(result, meshes):
    assert set(result["grads"]) == set(meshes)
    for spec, g in result["grads"].items():
        assert g["rel"] <= GRAD_RTOL and g["rel_root"] <= GRAD_RTOL, (spec, g)


def test_four_processes_every_mesh_and_the_sampler(model):
    """4 ranks: (4 x 1) replicas, DDP's layout; (2 x 2) HSDP; (1 x 4) a full shard, as the 1-D
    mesh vlm/training.py builds and as a 2-D one. The batch: images on rank 0 only, 1-3 micro-
    batches a rank, completions of 2-41 tokens against a head chunk of 8. Then the sampler on
    the sharded model (greedy, sampled, static; each rank its own prompts and token budget)
    against the plain model, and a training step after the rollouts."""
    meshes = ["4x1", "2x2", "1x4", "1x4-2d"]
    p, result = worker(model, 4, "--meshes", ",".join(meshes), "--sample")
    assert p.returncode == 0, p.stderr[-3000:]
    _check_grads(result, meshes)
    for rank, s in enumerate(result["sample"]):
        for mode in ("greedy", "sampled", "static"):
            assert s[mode]["ids"] and s[mode]["logp"] <= LOGP_ATOL, (rank, mode, s[mode])
        assert s["grad_rel"] <= GRAD_RTOL, (rank, s["grad_rel"])


def test_two_processes_replicated_and_sharded(model):
    meshes = ["2x1", "1x2"]
    p, result = worker(model, 2, "--meshes", ",".join(meshes))
    assert p.returncode == 0, p.stderr[-3000:]
    _check_grads(result, meshes)


# each fix of vlm/training.py, undone: how the check sees it (a wrong gradient, or an error:
# gloo's collective mismatch, a timeout, FSDP2's own error)
TRAPS = {
    "divide": ("grads", lambda g: abs(g["rel"] - 0.5) < 0.01),          # averaged over 2 ranks
    "root_reshard": ("grads", lambda g: g["rel_root"] == 1.0),          # the root never learns
    "force_sum": ("error", "Cannot use ReduceOp.PREMUL_SUM with Gloo"),
    "unused": ("error", "collective mismatch"),
    "pad": ("error", ("Timed out", "collective mismatch")),   # waits, or meets another collective
    "head_unit": ("error", "collective mismatch"),
    "root_first": ("error", "requires running forward through the root module first"),
    "gathered": ("error", "mixed torch.Tensor and DTensor"),
}


@pytest.mark.slow
@pytest.mark.parametrize("trap", list(TRAPS))
def test_each_fix_undone_fails(model, trap):
    how, what = TRAPS[trap]
    args = ["--sample"] if trap in ("root_first", "gathered") else ["--meshes", "1x2"]
    p, result = worker(model, 2, *args, "--break", trap, "--timeout", "15", timeout=300)
    if how == "grads":
        assert p.returncode == 0, p.stderr[-3000:]
        assert what(result["grads"]["1x2"]), result
    else:
        alternatives = what if isinstance(what, tuple) else (what,)
        assert p.returncode != 0 and any(w in p.stderr for w in alternatives), p.stderr[-3000:]
