#!/usr/bin/env bash
# The whole MM-HELIX pipeline on CPU with the tiny offline model, in a few minutes:
# synth -> elicit -> sft -> ahpo -> evaluate, each stage reading what the previous one wrote
# (data/, runs/). Budgets are demo-sized; README.md gives the commands for a real run.
#   bash demo.sh                         # all 42 tasks
#   DEMO_TASKS=maze,hanoi bash demo.sh   # a subset (the end-to-end test uses this)
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # tiny models: one thread is faster on a busy CPU
TASKS="${DEMO_TASKS:-all}"

python synth.py --tasks "$TASKS"                              # data/bench: 6 per task and level
python synth.py --tasks "$TASKS" --split train --count 2      # data/train: disjoint from the bench
python elicit.py                                              # data/traces.jsonl (rule-based SERG)
python sft.py --max-steps 10 --max-len 2048 --drop-long       # runs/sft/final (tiny model from scratch)
python ahpo.py --steps 3 --max-new-tokens 48 --drop-long      # runs/ahpo/final, from runs/sft/final
python evaluate.py --max-new-tokens 32 --batch-size 16        # runs/eval/ahpo-final/table.md, report.html
echo "to look at: runs/eval/ahpo-final/report.html (every instance), runs/sft/curves.png, runs/ahpo/curves.png" >&2
