"""One process of the FSDP2 checks (tests/test_fsdp.py runs it under torchrun on CPU gloo).

    python -m torch.distributed.run --nproc_per_node 4 tests/fsdp_worker.py --model DIR --images DIR \\
        --out result.json --meshes 4x1,2x2,1x4 [--sample] [--break TRAP]

--meshes: for each (replicas x shards) layout (RxS; 1xW is the 1-D mesh vlm/training.py builds,
1xW-2d the same as a 2-D mesh), shard the model as vlm/training.py does and take
one step's gradient over a global batch split UNEVENLY over the ranks: some ranks hold image
rows and others text only, micro-batch counts differ (the short ranks pad with zero-loss calls,
training.equal_calls), completions are longer than one chunk of the head (chunk = 8 tokens
here). Every rank also computes the same batch on one unsharded copy: the reference. Rank 0
writes the relative error of the whole gradient, and of the root unit's parameters alone.
--sample: the sampler on the sharded model (inside training.gathered) against the unsharded
model, greedy, sampled and static, every rank with its own prompts and token budget (so they
decode different numbers of steps).
--break TRAP undoes one of the fixes vlm/training.py makes, to show the check fails without it:
  divide        FSDP2's default averaging of gradients (no set_gradient_divide_factor(1.0))
  force_sum     no set_force_sum_reduction_for_comms: FSDP2's pre-scaled sums, which gloo lacks
  unused        no set_reduce_scatter_unused_params: ranks without images skip the vision reduce
  root_reshard  the root keeps its parameters after forward (FSDP2's default): the parameters
                an optimizer takes after the first forward are then the root's gathered copies
  root_first    no first forward through the root before the rollouts (--sample then trains)
  pad           ranks make different numbers of forward/backward calls
  gathered      the rollouts decode on the sharded model
  head_unit     the layout the Policy root replaces: lm_head a unit of its own, model.model another
"""
import argparse
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.distributed.fsdp import FSDPModule  # noqa: E402

from vlm import modelio, sampler, training  # noqa: E402

CHUNK = 8   # head chunk: completions of up to 41 tokens run 1-6 chunks, different per rank


def rows(proc, images):
    """The global batch: (chat, completion token ids), images on rows 0-2, text on the rest."""
    g = torch.Generator().manual_seed(0)
    allowed = [t for t in range(len(proc.tokenizer)) if t not in set(proc.banned_ids)]
    out = []
    for i, n in enumerate([3, 41, 5, 17, 12, 2, 25, 9, 30, 6]):
        text = {"type": "text", "text": f"Puzzle {i}: which way? " + "left right " * i}
        content = [{"type": "image", "image": os.path.join(images, f"{i % 3}.png")}, text] if i < 3 else [text]
        ids = [allowed[int(k)] for k in torch.randint(len(allowed), (n,), generator=g)]
        out.append(([{"role": "user", "content": content}], ids))
    return out


def layout(world):
    """Micro-batches (lists of row indices) per rank: unequal counts, images on rank 0 only."""
    if world == 2:
        return [[[0, 1], [2], [3, 4], [5]], [[6, 7, 8], [9]]]
    return [[[0], [1, 2], [3]], [[4, 5, 6]], [[7], [8]], [[9]]]


def step_grads(policy, proc, parts, T, pad):
    """One step's backward over this rank's micro-batches (loss / the global token count), then
    as many zero-loss calls as the busiest rank has more; returns nothing (grads are in place)."""
    # the count is agreed BEFORE any call: a rank still in its calls' collectives must not meet
    # another rank's all-reduce of the count
    n = training.equal_calls(len(parts), dist.get_world_size()) if pad else len(parts)
    for mb in parts:
        logp, _ = policy(modelio.train_batch(proc, [r[0] for r in mb], [r[1] for r in mb]), 1.0, CHUNK)
        (-(logp * modelio.train_batch(proc, [r[0] for r in mb], [r[1] for r in mb])["completion_mask"]).sum()
         / T).backward()
    for _ in range(n - len(parts)):
        logp, _ = policy(modelio.train_batch(proc, [parts[0][0][0]], [[proc.eos_id]]), 1.0, CHUNK)
        (0.0 * logp.sum()).backward()


def full_grads(params):
    return [(p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad) if p.grad is not None
            else torch.zeros(tuple(p.shape)) for p in params]


def head_unit_layout(policy, mesh):
    """The layout modelio.Policy replaces: every layer, model.model and lm_head each a unit, and
    logprobs run through the model itself (lm_head called once per chunk)."""
    from torch.distributed.fsdp import fully_shard
    model = policy.model
    for layer in training.decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model.model, mesh=mesh)
    fully_shard(model.lm_head, mesh=mesh)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)
            m.set_reduce_scatter_unused_params(True)
            m.set_force_sum_reduction_for_comms(True)
    return lambda tb, T, chunk: modelio._logprobs(model, tb, T, chunk)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--meshes", default="")
    p.add_argument("--sample", action="store_true")
    p.add_argument("--break", dest="trap", default=None)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=a.timeout))
    rank, world, device = training.dist_init("cpu")
    if a.trap == "divide":
        FSDPModule.set_gradient_divide_factor = lambda self, factor: None
    if a.trap == "force_sum":
        FSDPModule.set_force_sum_reduction_for_comms = lambda self, on: None
    if a.trap == "unused":
        FSDPModule.set_reduce_scatter_unused_params = lambda self, on, recurse=True: None
    if a.trap == "root_first":
        training.root_first = lambda policy, proc: None
    if a.trap == "root_reshard":
        import torch.distributed.fsdp as fsdp
        real = fsdp.fully_shard

        def keep_root(module, **kw):   # FSDP2's default for a root: keep its parameters after forward
            if isinstance(module, modelio.Policy):
                kw.pop("reshard_after_forward", None)
            return real(module, **kw)
        fsdp.fully_shard = keep_root

    ref_model, proc = modelio.load(a.model, device="cpu")
    ref = modelio.Policy(ref_model)
    batch = rows(proc, a.images)
    parts = [[batch[i] for i in mb] for mb in layout(world)[rank]]
    every = [[batch[i] for i in mb] for r in layout(world) for mb in r]
    T = float(sum(len(r[1]) for r in batch))          # the global token count (a completion's tokens)
    for mb in every:                                  # the reference: one process, the whole batch
        logp, _ = ref(modelio.train_batch(proc, [r[0] for r in mb], [r[1] for r in mb]), 1.0, CHUNK)
        (-(logp * modelio.train_batch(proc, [r[0] for r in mb], [r[1] for r in mb])["completion_mask"]).sum()
         / T).backward()
    want = [q.grad if q.grad is not None else torch.zeros_like(q) for q in ref.parameters()]
    root_names = {n for n, _ in ref.named_parameters() if ".layers." not in n}
    result = {"world": world, "grads": {}}

    for spec in [s for s in a.meshes.split(",") if s]:
        replicas, shards = map(int, spec.split("-")[0].split("x"))
        mesh = training.device_mesh(world, shards, device)     # (1 x world): 1-D, ("shard",)
        if spec.endswith("-2d"):                                # the same layout as a 2-D mesh
            from torch.distributed.device_mesh import init_device_mesh
            mesh = init_device_mesh("cpu", (replicas, shards), mesh_dim_names=("replicate", "shard"))
        if a.trap == "head_unit":
            policy, _ = modelio.load(a.model, device="cpu")
            policy = modelio.Policy(policy)
            run_lp = head_unit_layout(policy, mesh)
            policy.requires_grad_(True)
        else:
            policy = training.load_sharded(a.model, rank, mesh, device, torch.float32, False, {}, False, False)[0]
            run_lp = None
        params = list(policy.parameters())    # as vlm/training.py's setup takes them, for the optimizer
        if run_lp is not None:
            for mb in parts:
                tb = modelio.train_batch(proc, [r[0] for r in mb], [r[1] for r in mb])
                (-(run_lp(tb, 1.0, CHUNK)[0] * tb["completion_mask"]).sum() / T).backward()
        else:
            step_grads(policy, proc, parts, T, pad=a.trap != "pad")
        got = full_grads(params)
        names = [n for n, _ in policy.named_parameters()]
        rel = lambda sel: (sum(((g - w) ** 2).sum() for n, g, w in zip(names, got, want) if sel(n)) ** 0.5  # noqa: E731
                           / sum((w ** 2).sum() for n, w in zip(names, want) if sel(n)) ** 0.5).item()
        result["grads"][spec] = {"rel": rel(lambda n: True), "rel_root": rel(lambda n: n in root_names),
                                 "mesh": [replicas, shards]}
        dist.barrier()

    if a.sample:
        mesh = training.device_mesh(world, world, device)
        policy = training.load_sharded(a.model, rank, mesh, device, torch.float32, False, {}, False, False)[0]
        run = training.Run(rank, world, device, policy.model, policy, proc, a.model, None, False, 4096, [], 0.0,
                           sharded=True, dp_shard=world)
        chats = [c for c, _ in batch[rank::world]][:3]
        pb = modelio.prompt_batch(proc, chats)
        budget = 6 + 5 * rank                  # ranks decode different numbers of tokens
        same = {}
        for name, kw in {"greedy": dict(greedy=True), "sampled": dict(n=2, temperature=1.0, seed=rank),
                         "static": dict(greedy=True, static=True)}.items():
            want_s = sampler.sample(ref_model, proc, pb, max_new_tokens=budget, **kw)
            ctx = training.gathered(run) if a.trap != "gathered" else _nothing()
            with ctx:
                got_s = sampler.sample(policy.model, proc, pb, max_new_tokens=budget, **kw)
            same[name] = {"ids": got_s.ids == want_s.ids,
                          "logp": max(abs(x - y) for u, v in zip(got_s.logprobs, want_s.logprobs)
                                      for x, y in zip(u, v)) if got_s.ids == want_s.ids else None}
        # then a training step, as ahpo.py's follows its rollouts: the same gradient as one process
        params = [q for q in policy.parameters()]
        step_grads(policy, proc, parts, T, pad=True)
        got = full_grads(params)
        same["grad_rel"] = (sum(((g - w_) ** 2).sum() for g, w_ in zip(got, want)) ** 0.5
                            / sum((w_ ** 2).sum() for w_ in want) ** 0.5).item()
        every_rank = [None] * world
        dist.all_gather_object(every_rank, same)
        result["sample"] = every_rank
    if rank == 0:
        with open(a.out, "w") as f:
            json.dump(result, f)
    training.dist_close()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
