"""Run under a Python that has verl (tests/test_rl_verl.py starts it): verl's own RLHFDataset reads
exported verl.parquet files, and verl's own reward path (load_reward_manager with
reward.custom_reward_function pointing at tasks/reward.py by file path, the "naive" reward
manager, a DataProto built with verl's collate_fn) scores replies. Prints one JSON object.

    python tests/verl_worker.py JOB.json     # {"image": parquet, "text": parquet, "processor": dir,
                                             #  "tokenizer": dir, "reward": path, "replies": {id: [text, ...]},
                                             #  "cache": dir, "old": parquet of another format}
"""
import json
import sys

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoProcessor, AutoTokenizer

from verl import DataProto
from verl.trainer.ppo.reward import load_reward_manager
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn


def rows(parquet, tokenizer, processor, cache):
    cfg = OmegaConf.create({"prompt_key": "prompt", "image_key": "images", "max_prompt_length": 100_000,
                            "filter_overlong_prompts": False, "cache_dir": cache, "return_raw_chat": True})
    ds = RLHFDataset(parquet, tokenizer, cfg, processor=processor)
    items = [ds[i] for i in range(len(ds))]
    out = []
    for it in items:
        content = it["raw_prompt"][0]["content"]
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        else:
            parts = content
        rendered = (processor or tokenizer).apply_chat_template(it["raw_prompt"], add_generation_prompt=True,
                                                              tokenize=False)
        out.append({"id": it["extra_info"]["id"], "index": int(it["index"]),
                    "parts": [p["type"] for p in parts],
                    "image_sizes": [list(p["image"].size) for p in parts if p["type"] == "image"],
                    "text": "".join(p["text"] for p in parts if p["type"] == "text"),
                    "image_pads": rendered.count("<|image_pad|>")})
    return items, out


def score(items, tokenizer, reward_path, replies):
    """Each reply of each row through verl's reward manager, as the trainer's batch carries it."""
    config = OmegaConf.create({"reward": {"custom_reward_function": {"path": reward_path, "name": "verl_score",
                                                                     "reward_kwargs": {}},
                                          "reward_manager": {"source": "register", "name": "naive"}}})
    manager = load_reward_manager(config, tokenizer)
    out = []
    for it in items:
        batch = collate_fn([it])   # non-tensor columns as verl's dataloader makes them
        for reply in replies[it["extra_info"]["id"]]:
            ids = torch.tensor([tokenizer.encode(reply, add_special_tokens=False)])
            data = DataProto.from_dict(
                tensors={"responses": ids, "attention_mask": torch.ones_like(ids)},
                non_tensors={k: batch[k] for k in ("data_source", "reward_model", "extra_info")})
            try:
                got = manager.loop.run_until_complete(manager.run_single(data))["reward_score"]
            except Exception as e:       # a refused row: the message verl's run would end with
                got = f"{type(e).__name__}: {e}"
            out.append({"id": it["extra_info"]["id"], "reply": reply, "score": got})
    return out


def main():
    job = json.load(open(sys.argv[1]))
    tok = AutoTokenizer.from_pretrained(job["tokenizer"])
    proc = AutoProcessor.from_pretrained(job["processor"])
    img_items, img_rows = rows(job["image"], proc.tokenizer, proc, job["cache"])
    txt_items, txt_rows = rows(job["text"], tok, None, job["cache"])
    result = {"image_rows": img_rows, "text_rows": txt_rows,
              "image_scores": score(img_items, proc.tokenizer, job["reward"], job["replies"]),
              "text_scores": score(txt_items, tok, job["reward"], job["replies"]),
              "np_object": isinstance(collate_fn(txt_items)["reward_model"], np.ndarray)}
    if job.get("old"):   # rows of another ground-truth format: what verl's run stops with
        old_items, _ = rows(job["old"], tok, None, job["cache"])
        result["old_scores"] = score(old_items, tok, job["reward"], job["replies"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
