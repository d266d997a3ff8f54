"""TRL's own GRPOTrainer on our hf export (issue 35): two steps on CPU, a tiny text model built
here and loaded by path, the text-only hf export of graph isomorphism (Yes/No answers) and
tasks.reward.trl_reward. The rewards TRL logs must equal tasks.score on the completions it
generated, scored here against the records file.

A random tiny model never writes a boxed answer, so every reward would be 0 and a broken
reward could not show. The model is therefore programmed, not trained: its layers add nothing
(o_proj and down_proj zero), so the next token depends on the current one only, and the
embedding and output matrices make a chain: after the prompt, `\\boxed{`, then `Yes` or `No`
with equal odds, then `}` and EOS. Half the completions are right, and which half is TRL's
sampling. trl is a pinned test-only package (requirements-test.txt).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import synth
from tasks import score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _program(path):
    """Make the tiny Qwen2 at `path` a chain of next-token rules (see the module doc); returns the
    two completions it can write."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Q"}], add_generation_prompt=True, tokenize=False)
    start = tok.encode(prompt, add_special_tokens=False)[-1]
    targets = ["\\boxed{Yes}", "\\boxed{No}"]
    nxt = {}
    for t in targets:
        seq = [start] + tok.encode(t, add_special_tokens=False) + [tok.eos_token_id]
        for a, b in zip(seq, seq[1:]):
            nxt.setdefault(a, set()).add(b)
    branches = [a for a, bs in nxt.items() if len(bs) > 1]
    assert len(branches) == 1 and len(nxt[branches[0]]) == 2, nxt    # one fork: Yes or No
    H = model.config.hidden_size
    assert len(nxt) <= H
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        head.zero_()
        for k, (a, bs) in enumerate(sorted(nxt.items())):
            emb[a] = 0.0
            emb[a, k] = 1.0      # RMSNorm makes it sqrt(H) at k: the logit of each b is 3 sqrt(H) = 24
            for b in bs:
                head[b, k] = 3.0
    model.save_pretrained(path)
    return targets


@pytest.mark.slow
def test_trls_grpo_trainer_two_steps_logs_the_rewards_tasks_score_gives(tmp_path):
    from vlm.tiny import make_tiny
    data = tmp_path / "data"
    synth.main(["--out", str(data), "--tasks", "graph_isomorphism", "--levels", "1", "--count", "4",
                "--workers", "1", "--no-images", "--quiet", "--export", "hf"])
    recs = {r["id"]: r for r in map(json.loads, open(data / "records.jsonl"))}
    assert sorted(r["answer"] for r in recs.values()) == ["No", "No", "Yes", "Yes"]
    model = tmp_path / "model"
    make_tiny(str(model), kind="causal")
    targets = _program(str(model))
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "trl.json"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "trl_worker.py"), str(model), str(data / "hf"),
                        str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    got = json.loads(out.read_text())
    calls, logs = got["calls"], got["log_history"]
    assert [c["step"] for c in calls] == [0, 1] and all(len(c["completions"]) == 8 for c in calls)
    assert all(t in targets for c in calls for t in c["completions"])       # the programmed model ran
    logged = [h["rewards/mmhelix/mean"] for h in logs if "rewards/mmhelix/mean" in h]
    assert len(logged) == 2
    every = []
    for c, mean in zip(calls, logged):
        # scored here, from the records file, by id: not through the ground truth TRL carried
        want = [float(score(text, recs[rid])) for text, rid in zip(c["completions"], c["ids"])]
        assert c["rewards"] == want
        assert mean == pytest.approx(sum(want) / len(want), abs=1e-6)
        every += want
    assert 0.0 in every and 1.0 in every            # both outcomes occurred: the check had teeth
    shutil.rmtree(tmp_path / "trl.json.run", ignore_errors=True)
