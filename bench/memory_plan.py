"""Per-rank GPU memory of sft.py and ahpo.py under FSDP2, from the real model configs.

    python bench/memory_plan.py            # Qwen2.5-VL 3B, 7B, 32B; 1 x 8 and 2 x 8 GPUs of 80 GB; --dp-shard 8, 16, 1
    python bench/memory_plan.py --markdown # the README's table

The models are built on the meta device (no weights, nothing downloaded) from their published
config.json dimensions, written below; parameter counts come from the built models, split into
the units vlm/training.py shards: each decoder layer, and the root (embeddings, vision tower,
final norm, lm_head). The 32B's vision tower is taken to be the 7B's (32 blocks, 1280 wide)
with out_hidden_size 5120; its published intermediate width differs by under 2% (~0.01B
parameters). N parameters, K = --dp-shard, GB = 1e9 bytes. Per rank:

  states     what a rank keeps between steps, its 1/K slice: fp32 weights (the masters, 4 N/K),
             fp32 gradients (4 N/K), AdamW's m and v (8 N/K): 16 N/K. With --offload they live
             in host memory (16 N/K per rank of host RAM) and the GPU holds none of it.
             One process without --offload (no FSDP2): bf16 weights and gradients (4 N) and
             MasterAdamW's fp32 master, m and v (12 N): 16 N.
  gathered   training, the units FSDP2 gathers at a time: the root's bf16 weights, their bf16
             gradients and the fp32 copy reduced at the end of backward (8 bytes a root weight),
             and two decoder layers (the one running and the one prefetched; bf16 weights and
             gradients: 8 bytes a layer weight)
  act        activations of one micro-batch of rows of --max-len tokens with
             --grad-checkpointing: every layer's input kept (L x hidden x 2 bytes a token), one
             layer recomputed and back-propagated at a time (its ~8 hidden- and 4
             intermediate-wide tensors, and as much again for their gradients), the 4-D
             attention mask of a padded batch (L^2 x 2 bytes a row), the head's 1,024-token
             chunks (1024 x vocab x fp32 x 3)
  model      rollouts: the whole model gathered in bf16 (2 N), for the sampler's decode steps
  kv         the sampler's KV cache: --rollout-chunk prompts x --rollouts rows, each of --max-len
             positions: 2 (K, V) x layers x kv_heads x head_dim x 2 bytes

  peak = max(train = states + gathered + act, rollout = states + model + kv)

An estimate, not a measurement: allocator fragmentation, NCCL buffers and the CUDA context come
on top, so a plan must leave room; one fits when its peak is at most 72 of 80 GB.
"""
import argparse

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

GB = 1e9
BUDGET = 72.0   # of 80 GB: the rest for the CUDA context, NCCL and fragmentation

VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3,
              patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
              fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu")
CONFIGS = {   # Qwen/Qwen2.5-VL-{3B,7B,32B}-Instruct config.json (text dimensions)
    "3B": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "32B": dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False),
}
# The README's real-run commands, as this script sizes them.
COMMANDS = {
    "sft": dict(micro=1, max_len=8192, kv_rows=0),
    "ahpo": dict(micro=2, max_len=10240, kv_rows=4 * 5),   # --rollout-chunk 4 x --rollouts 5
}
# (GPUs, --dp-shard): one node of 8, two nodes of 8, and one GPU
LAYOUTS = [(8, 8), (8, 1), (16, 8), (16, 16), (16, 1), (1, 1)]


def build(name):
    d = dict(CONFIGS[name])
    tie = d.pop("tie_word_embeddings")
    text = dict(d, rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[16, 24, 24]),
                tie_word_embeddings=tie)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(VISION, out_hidden_size=d["hidden_size"]),
                              tie_word_embeddings=tie)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    n = sum(p.numel() for p in model.parameters())
    layer = sum(p.numel() for p in model.model.language_model.layers[0].parameters())
    return dict(n=n, layer=layer, root=n - layer * d["num_hidden_layers"], text=config.get_text_config())


def plan(m, world, dp_shard, offload, micro, max_len, kv_rows):
    t, n = m["text"], m["n"]
    h, i, L, V = t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.vocab_size
    hd = h // t.num_attention_heads
    fsdp = world > 1 or offload
    states = 0.0 if offload else 16 * n / (dp_shard if fsdp else 1) / GB
    gathered = (8 * m["root"] + 8 * 2 * m["layer"]) / GB if fsdp else 0.0   # one process: all is resident
    rows = micro * max_len
    act = (rows * h * 2 * L + 2 * rows * (8 * h + 4 * i) * 2 + micro * max_len ** 2 * 2
           + 1024 * V * 4 * 3 + 3 * rows * h * 2) / GB if micro else 0.0
    model = 2 * n / GB if fsdp else 0.0            # one process: its bf16 weights are in `states`
    kv = kv_rows * max_len * 2 * L * t.num_key_value_heads * hd * 2 / GB
    train, rollout = states + gathered + act, states + model + kv
    host = 16 * n / dp_shard / GB * min(world, 8) if offload else 0.0   # per node of 8 (or fewer) GPUs
    return dict(states=states, gathered=gathered, act=act, model=model, kv=kv, train=train,
                rollout=rollout if kv_rows else 0.0, peak=max(train, rollout if kv_rows else 0.0), host=host)


def rows():
    for name in CONFIGS:
        m = build(name)
        for cmd, c in COMMANDS.items():
            for world, k in LAYOUTS:
                for offload in (False, True):
                    p = plan(m, world, k, offload, c["micro"], c["max_len"], c["kv_rows"])
                    yield name, m, cmd, world, k, offload, p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="the README's summary table only")
    a = ap.parse_args()
    if not a.markdown:
        print(f"per rank, GB; fits: peak <= {BUDGET:.0f} of 80 GB; host: offloaded states per node")
        print("| model | command | GPUs | --dp-shard | --offload | states | gathered | activations | model (rollout) "
              "| KV cache | peak (train / rollout) | host | fits |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, m, cmd, world, k, off, p in rows():
            print(f"| {name} ({m['n'] / 1e9:.2f}B) | {cmd} | {world} | {k} | {'yes' if off else 'no'} | {p['states']:.1f} "
                  f"| {p['gathered']:.1f} | {p['act']:.1f} | {p['model']:.1f} | {p['kv']:.1f} "
                  f"| {p['train']:.1f} / {p['rollout']:.1f} | {p['host']:.0f} | {'yes' if p['peak'] <= BUDGET else 'NO'} |")
        return
    # the summary: the peak of each layout, without and with --offload
    print(f"Peak GB per rank, without / with --offload (✗: over {BUDGET:.0f} of 80 GB)")
    print()
    head = " | ".join(f"{w} GPU{'s' * (w > 1)}, --dp-shard {k}" for w, k in LAYOUTS)
    print(f"| model | command | {head} |")
    print("|---|---|" + "---|" * len(LAYOUTS))
    by = {}
    for name, m, cmd, world, k, off, p in rows():
        by[name, cmd, world, k, off] = p
    for name in CONFIGS:
        for cmd in COMMANDS:
            cells = []
            for world, k in LAYOUTS:
                a_, b_ = by[name, cmd, world, k, False], by[name, cmd, world, k, True]
                mark = lambda p: f"{p['peak']:.0f}" + ("" if p["peak"] <= BUDGET else " ✗")  # noqa: E731
                cells.append(f"{mark(a_)} / {mark(b_)}")
            print(f"| {name} | {cmd} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
