"""Per-rank GPU memory of the README's real-run commands, from the real model configs.

    python bench/memory_plan.py            # Qwen2.5-VL-3B and -7B, 8 ranks, with and without --zero

Qwen2.5-VL-3B and -7B are built on the meta device (no weights, nothing downloaded) from their
published config.json dimensions, written below; parameter counts come from the built models.
Per rank, in GB (1e9 bytes):
  weights, grads   bf16, 2 bytes a weight each (ZeRO-1 shards neither; grads are freed between
                   steps, so rollouts do not carry them)
  opt              fp32 master + m + v, 12 bytes a weight; divided by the ranks with --zero
  kv               the sampler's KV cache: --rollout-chunk prompts x --rollouts rows, each of
                   --max-len positions, 2 (K, V) x layers x kv_heads x head_dim x 2 bytes
  act              training activations of one micro-batch of rows of --max-len tokens, with
                   --grad-checkpointing: every layer's input kept (L x hidden x 2 bytes a row),
                   one layer recomputed and back-propagated at a time (its ~8 hidden- and 4
                   intermediate-wide tensors, and as much again for their gradients), the
                   4-D attention mask transformers builds for padded batches (L^2 x 2 bytes a
                   row), and vlm.logprobs' lm_head chunks (1024 tokens x vocab x fp32 x 3)
An estimate of activations, not a measurement: allocator fragmentation, NCCL buffers and the
CUDA context come on top, so a plan must leave room (we ask for <= 72 of 80 GB).
"""
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

GB = 1e9
BUDGET = 72.0   # of 80 GB: the rest for the CUDA context, NCCL and fragmentation

VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3,
              patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
              fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu")
CONFIGS = {   # Qwen/Qwen2.5-VL-{3B,7B}-Instruct config.json
    "Qwen2.5-VL-3B": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                          num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                          tie_word_embeddings=True, out_hidden_size=2048),
    "Qwen2.5-VL-7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                          num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                          tie_word_embeddings=False, out_hidden_size=3584),
}
WORLD = 8
# The README's real-run commands (8 ranks), as this script sizes them.
COMMANDS = {
    "sft": dict(micro=1, max_len=8192, kv_rows=0),
    "ahpo": dict(micro=2, max_len=10240, kv_rows=4 * 5),   # --rollout-chunk 4 x --rollouts 5
}


def build(name):
    d = dict(CONFIGS[name])
    tie, out = d.pop("tie_word_embeddings"), d.pop("out_hidden_size")
    text = dict(d, rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[16, 24, 24]),
                tie_word_embeddings=tie)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(VISION, out_hidden_size=out),
                              tie_word_embeddings=tie)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    return model, config.get_text_config()


def plan(n_params, t, micro, max_len, kv_rows, zero, world=WORLD):
    h, i, L, V = t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.vocab_size
    hd = h // t.num_attention_heads
    weights = grads = 2 * n_params / GB
    opt = 12 * n_params / (world if zero else 1) / GB
    kv = kv_rows * max_len * 2 * L * t.num_key_value_heads * hd * 2 / GB
    rows = micro * max_len
    act = (rows * h * 2 * L                        # checkpointed layer inputs
           + 2 * rows * (8 * h + 4 * i) * 2        # one layer recomputed, and its gradients
           + micro * max_len ** 2 * 2              # 4-D attention mask of a padded batch
           + 1024 * V * 4 * 3                      # lm_head chunk: logits, log-softmax, grad
           + 3 * rows * h * 2) / GB                # embeddings, final hidden, gathered hidden
    train = weights + grads + opt + act
    rollout = weights + opt + kv
    return dict(weights=weights, grads=grads, opt=opt, kv=kv, act=act, train=train, rollout=rollout,
                peak=max(train, rollout))


def main():
    print(f"per rank, GB, {WORLD} ranks; fits: peak <= {BUDGET:.0f} of 80 GB")
    print("| model | command | --zero | params | weights | grads | fp32 master+m+v | KV cache | activations "
          "| peak (train / rollout) | fits |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in CONFIGS:
        model, t = build(name)
        n = sum(p.numel() for p in model.parameters())
        for cmd, c in COMMANDS.items():
            for zero in (False, True):
                p = plan(n, t, c["micro"], c["max_len"], c["kv_rows"], zero)
                print(f"| {name} | {cmd} (micro-batch {c['micro']}, {c['max_len']} tokens) | {'yes' if zero else 'no'} "
                      f"| {n / 1e9:.2f}B | {p['weights']:.1f} | {p['grads']:.1f} | {p['opt']:.1f} | {p['kv']:.1f} "
                      f"| {p['act']:.1f} | {p['train']:.1f} / {p['rollout']:.1f} | {'yes' if p['peak'] <= BUDGET else 'NO'} |")
    # evaluate.py (no training): weights and the sampler's KV cache for --batch-size 8 rows of a
    # prompt (up to 2,048 tokens) + --max-new-tokens 16384
    for name in CONFIGS:
        model, t = build(name)
        n = sum(p.numel() for p in model.parameters())
        p = plan(n, t, 0, 2048 + 16384, 8, False)
        print(f"| {name} | evaluate (batch 8, 18432 positions) | - | {n / 1e9:.2f}B | {p['weights']:.1f} | - | - "
              f"| {p['kv']:.1f} | - | {p['rollout'] - p['opt']:.1f} | "
              f"{'yes' if p['rollout'] - p['opt'] <= BUDGET else 'NO'} |")
    print()
    print("AHPO micro-batch sizes, 7B with --zero, rows of 10240 tokens:")
    model, t = build("Qwen2.5-VL-7B")
    n = sum(p.numel() for p in model.parameters())
    for micro in (1, 2, 4, 8):
        p = plan(n, t, micro, 10240, 20, True)
        print(f"  micro-batch {micro}: activations {p['act']:.1f} GB, peak {p['peak']:.1f} GB "
              f"{'fits' if p['peak'] <= BUDGET else 'does NOT fit'}")


if __name__ == "__main__":
    main()
