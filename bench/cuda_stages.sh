#!/usr/bin/env bash
# The CUDA / bf16 paths of every stage at a realistic size, on one GPU, with random weights.
#
#     bash bench/cuda_stages.sh            # writes logs and metrics under $OUT (default /tmp/cuda_stages)
#
# Model: a Qwen2.5-VL built from a config (vlm.make_tiny): Qwen2.5-1.5B's text dims (28 layers,
# hidden 1536, 12 heads, 2 KV heads, MLP 8960) and an 8-block vision tower of width 1280, with the
# tiny 768-token tokenizer; images up to 1024 patches of 28x28. Random weights never emit EOS, so
# every sampled row runs to --max-new-tokens: the timings are the worst case for those lengths.
# What it checks: sft.py, ahpo.py and evaluate.py run on CUDA in bf16 with images; AHPO at the
# real-run learning rate (1e-6) moves the bf16 weights (vlm.MasterAdamW's fp32 masters); then the
# sampler against model.generate at 1.5B and 7B text dims. CPU tests cover correctness; this
# covers what only a GPU shows.
# The CUDA-graph decode path (vlm/graphs.py, opt-in with MMHELIX_CUDA_GRAPHS=1) is UNMEASURED: it
# was written on a machine without a GPU and this script has not run since. AHPO runs twice, with
# the graph path and with the eager path (the default), and prints sampling's time and share of a step.
set -euo pipefail
OUT=${OUT:-/tmp/cuda_stages}
W=/tmp/cuda_stages_work
mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1
log() { echo "[$(date +%T)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

log "model"
python3 - "$W/model" <<'EOF'
import sys, time, torch, vlm
t = time.perf_counter()
with torch.device("cuda"):
    m, _ = vlm.make_tiny(sys.argv[1], kind="qwen2_5_vl", hidden=1536, layers=28, heads=12, kv_heads=2,
                         intermediate=8960, vision_hidden=1280, vision_layers=8,
                         min_pixels=64 * 28 * 28, max_pixels=1024 * 28 * 28)
print(f"{sum(p.numel() for p in m.parameters()) / 1e9:.2f}B parameters, built and saved in {time.perf_counter() - t:.0f}s")
EOF

log "data: 42 tasks x levels 1,2 x 2 (train), 42 x level 1 (bench)"
python3 synth.py --split train --levels 1,2 --count 2 --out "$W/train" --workers 8 > "$OUT/synth.log" 2>&1
python3 synth.py --split bench --levels 1 --count 1 --out "$W/bench" --workers 8 >> "$OUT/synth.log" 2>&1
python3 elicit.py --records "$W/train/records.jsonl" --out "$W/traces.jsonl" > "$OUT/elicit.log" 2>&1
tail -3 "$OUT/elicit.log"

log "sft.py: 6 steps x 16 traces, micro-batch 4, activation checkpointing"
python3 sft.py --model "$W/model" --data "$W/traces.jsonl" --out "$W/sft" --max-steps 6 --batch-size 16 \
    --micro-batch-size 4 --grad-checkpointing --max-len 4096 --drop-long --save-every 1000000 --no-resume \
    > "$OUT/sft.log" 2>&1 || { tail -30 "$OUT/sft.log"; exit 1; }
cp "$W/sft/metrics.jsonl" "$OUT/sft_metrics.jsonl"
tail -2 "$OUT/sft_metrics.jsonl"

log "ahpo.py: 3 steps x 8 prompts x 5 rollouts, 512 new tokens, lr default (1e-6), CUDA-graph decode"
MMHELIX_CUDA_GRAPHS=1 python3 ahpo.py --model "$W/sft/final" --records "$W/train/records.jsonl" --traces "$W/traces.jsonl" \
    --out "$W/ahpo" --steps 3 --prompts-per-step 8 --rollouts 5 --max-new-tokens 512 --grad-checkpointing \
    --drop-long --save-every 1000000 --no-resume > "$OUT/ahpo.log" 2>&1 || { tail -30 "$OUT/ahpo.log"; exit 1; }
cp "$W/ahpo/metrics.jsonl" "$OUT/ahpo_metrics.jsonl"
tail -1 "$OUT/ahpo_metrics.jsonl"

log "ahpo.py again, sampling on the eager path (the default): the before of the graph path"
python3 ahpo.py --model "$W/sft/final" --records "$W/train/records.jsonl" --traces "$W/traces.jsonl" \
    --out "$W/ahpo_eager" --steps 3 --prompts-per-step 8 --rollouts 5 --max-new-tokens 512 --grad-checkpointing \
    --drop-long --save-every 1000000 --no-resume > "$OUT/ahpo_eager.log" 2>&1 || { tail -30 "$OUT/ahpo_eager.log"; exit 1; }
python3 - "$W/ahpo_eager/metrics.jsonl" "$W/ahpo/metrics.jsonl" <<'PY'
import json, sys
for name, path in zip(("eager", "graph"), sys.argv[1:]):
    rows = [r for r in map(json.loads, open(path)) if "t_sample" in r][1:]   # step 1: warm-up
    s = sum(r["t_sample"] for r in rows) / len(rows)
    step = sum(r["t_sample"] + r["t_score"] + r["t_train"] for r in rows) / len(rows)
    print(f"AHPO sampling, {name:5s} path: {s:.1f} s per step, {s / step:.0%} of a {step:.1f} s step "
          f"(mean of steps 2-{len(rows) + 1})")
PY
python3 - "$W/sft/final" "$W/ahpo/final" <<'EOF'
import sys, torch
from safetensors.torch import load_file
import glob
def weights(d):
    out = {}
    for f in sorted(glob.glob(f"{d}/*.safetensors")):
        out.update(load_file(f))
    return out
a, b = weights(sys.argv[1]), weights(sys.argv[2])
n = sum(v.numel() for v in a.values())
changed = sum((a[k] != b[k]).sum().item() for k in a)
print(f"AHPO at lr 1e-6 in bf16: {changed / n:.1%} of {n / 1e9:.2f}B weights changed in 3 steps "
      f"(dtype {next(iter(b.values())).dtype})")
EOF

log "evaluate.py: 42 bench instances with images, 1024 new tokens, batch 42"
python3 evaluate.py --model "$W/ahpo/final" --records "$W/bench/records.jsonl" --out "$W/eval" \
    --max-new-tokens 1024 --batch-size 42 > "$OUT/evaluate.log" 2>&1 || { tail -30 "$OUT/evaluate.log"; exit 1; }
tr "\r" "\n" < "$OUT/evaluate.log" | grep -v "^$" | tail -4

log "bench/sampler.py: eager, static, graph and generate at 1.5B and 7B dims, 8/40/80 rows (bf16)"
python3 bench/sampler.py --device cuda --shape 1.5b,7b --batch 8,40,80 --repeats 3 2>&1 | tee "$OUT/sampler.log" \
    | grep -E "^(peak|model|bandwidth|eager|static|graph|generate)"
log "done"
