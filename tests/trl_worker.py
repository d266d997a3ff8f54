"""Run by tests/test_rl_trl.py in a fresh process (HF_HUB_OFFLINE=1 set before anything loads):
TRL's own GRPOTrainer trains a model folder for two steps on an hf export with
tasks.reward.trl_reward, on CPU. Writes what the reward function was given and returned, and
the trainer's log history, as JSON.

    python tests/trl_worker.py MODEL_DIR HF_DIR OUT.json
"""
import json
import sys

import datasets
from trl import GRPOConfig, GRPOTrainer

from tasks.reward import completion_text, trl_reward

CALLS = []


def mmhelix(completions, **columns):
    """trl_reward, with what TRL handed it and what it returned kept for the test."""
    rewards = trl_reward(completions, **columns)
    CALLS.append({"step": columns["trainer_state"].global_step, "ids": list(columns["id"]),
                  "completions": [completion_text(c) for c in completions], "rewards": rewards})
    return rewards


def main():
    model, hf, out = sys.argv[1:]
    args = GRPOConfig(output_dir=out + ".run", per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=12, max_steps=2, learning_rate=1e-6, beta=0.0, logging_steps=1,
                      report_to="none", save_strategy="no", use_cpu=True, bf16=False, seed=0, temperature=1.0,
                      disable_tqdm=True, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=mmhelix, args=args, train_dataset=datasets.load_from_disk(hf))
    trainer.train()
    with open(out, "w") as f:
        json.dump({"calls": CALLS, "log_history": trainer.state.log_history}, f)


if __name__ == "__main__":
    main()
