"""Reward functions for the RL engines (verl, EasyR1, TRL's GRPOTrainer): each scores a reply
with tasks.score against the record that the row carries. No torch, no engine imports.

    # verl: the file's path (or pkg://tasks.reward with this checkout on PYTHONPATH)
    reward.custom_reward_function.path=/path/to/mm-helix/tasks/reward.py
    reward.custom_reward_function.name=verl_score
    # EasyR1 (worker.reward.reward_type batch or sequential: both are served)
    worker.reward.reward_function=/path/to/mm-helix/tasks/reward.py:easyr1_score
    # TRL
    from tasks.reward import trl_reward
    GRPOTrainer(model=..., reward_funcs=trl_reward, train_dataset=datasets.load_from_disk("data/train/hf"))

What travels: `python synth.py --export ...` (harness/export.py) writes the same ground truth
into every row, `ground_truth(record)`: JSON {"format": FORMAT, "record": <the whole record>}.
The record is what a verifier needs (a gold string is not enough: many puzzles have several
valid answers). It is verl's reward_model.ground_truth, EasyR1's `answer` column and the hf
export's `ground_truth` column.

What never raises, and what does:
- the reply (the model's text, the only thing that changes while training) is never a reason
  to raise: anything that is not a correct answer (empty, malformed, random bytes, None, a
  chat message of any shape) scores 0.0;
- a ground truth that is not this format (written by another version of this code, or not an
  MM-HELIX row at all) raises GroundTruthError, one line naming the row and what to do. It is
  a setup mistake that holds for every row of the data, not a bad reply: raising stops the
  run at its first reward call with the reason on the last line of the traceback, where
  scoring 0 would train for hours on a constant reward (GRPO's advantages all 0, nothing
  learnt) with the reason in one log line among many workers'. A row is refused, never
  scored under rules it was not written for.
"""
from __future__ import annotations

import json
import os
import sys

if not __package__:
    # Loaded by file path, as verl (custom_reward_function.path) and EasyR1 (reward_function=
    # PATH:NAME) load a reward function: make this checkout's `tasks` importable.
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, _ROOT)
    _other = getattr(sys.modules.get("tasks"), "__file__", None)
    if _other and os.path.dirname(os.path.abspath(_other)) != os.path.join(_ROOT, "tasks"):
        raise ImportError(f"{__file__}: another module named 'tasks' is already loaded ({_other}); "
                          f"load this reward as pkg://tasks.reward with {_ROOT} first on PYTHONPATH")

from tasks.scoring import score  # noqa: E402  (absolute: this file also runs outside its package)

# The ground truth's layout. Bump it when the payload or the meaning of a record field that a
# verifier reads changes, so that rows exported before are refused rather than misread.
FORMAT = "mm-helix/1"
DATA_SOURCE = "mm-helix"        # verl's data_source is DATA_SOURCE/<task> (per-task metrics)


class GroundTruthError(ValueError):
    """A row whose ground truth this code cannot score (another format, or not ours): one line."""


def ground_truth(record: dict) -> str:
    """The ground truth of a record, as every export writes it (JSON, keys sorted: the same
    record gives the same bytes)."""
    return json.dumps({"format": FORMAT, "record": record}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))


def record_of(truth) -> dict:
    """The record inside a ground truth (the JSON text, or the same already parsed), or
    GroundTruthError saying in one line why it cannot be scored here."""
    payload = truth
    if isinstance(truth, (bytes, bytearray)):
        truth = truth.decode("utf-8", "replace")
    if isinstance(truth, str):
        try:
            payload = json.loads(truth)
        except ValueError:
            payload = None
    if not isinstance(payload, dict) or "format" not in payload:
        shown = repr(truth)[:60]
        raise GroundTruthError(f"mm-helix reward: ground truth {shown} is not an MM-HELIX export row "
                               f"(format {FORMAT}); train on what `python synth.py --export` writes")
    rec = payload.get("record")
    rid = rec.get("id", "?") if isinstance(rec, dict) else "?"
    if payload["format"] != FORMAT:
        raise GroundTruthError(f"mm-helix reward: row {rid} was exported in format {payload['format']!r}, "
                               f"this code reads {FORMAT!r}: re-export the data with this checkout "
                               f"(python synth.py --out DIR --export-only --export ...) or score with the one "
                               f"that wrote it")
    if not isinstance(rec, dict):
        raise GroundTruthError(f"mm-helix reward: ground truth in format {FORMAT} has no record object")
    return rec


def reward(reply, truth) -> float:
    """1.0 if `reply` answers the record in `truth` correctly, else 0.0. Never raises on the
    reply; GroundTruthError on a ground truth of another format (see the module's note)."""
    return 1.0 if score(reply, record_of(truth)) else 0.0


# ---- verl ---------------------------------------------------------------------------------------
def verl_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl's custom reward function: verl passes data_source, the decoded reply, the row's
    reward_model.ground_truth and extra_info (and, in some reward managers, more keywords,
    accepted and unused). Returns 1.0 or 0.0."""
    return reward(solution_str, ground_truth)


# ---- EasyR1 -------------------------------------------------------------------------------------
def easyr1_score(reward_inputs, **kwargs):
    """EasyR1's reward function. Each input is {"response", "response_length", "ground_truth"};
    reward_type=batch passes a list and takes a list back, reward_type=sequential passes one
    dict and takes one back. A score is {"overall", "accuracy"}, both 1.0 or 0.0 (no format
    term: the final-answer rule of tasks.score is the only one)."""
    def one(item):
        truth = item.get("ground_truth") if isinstance(item, dict) else None
        acc = reward(item.get("response") if isinstance(item, dict) else None, truth)
        return {"overall": acc, "accuracy": acc}
    if isinstance(reward_inputs, dict):
        return one(reward_inputs)
    return [one(item) for item in reward_inputs]


# ---- TRL ----------------------------------------------------------------------------------------
def completion_text(completion) -> str:
    """The text of a TRL completion: a string as it is; a conversational one (a list of
    messages) as its assistant turns' text in order, parts of a structured content joined
    (tool turns left out: a tool's output is not the model's answer). Never raises."""
    if isinstance(completion, str):
        return completion
    try:
        if isinstance(completion, dict):
            completion = [completion]
        texts = []
        for msg in completion:
            if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(p["text"] for p in content
                             if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
        return "\n".join(texts)
    except Exception:
        return ""


def trl_reward(completions, ground_truth=None, **columns) -> list[float]:
    """TRL's reward_funcs entry: GRPOTrainer passes the completions (strings, or lists of chat
    messages for a conversational dataset) and every column of the dataset as a list, so
    `ground_truth` comes from the hf export. Returns one 1.0 / 0.0 a completion."""
    if ground_truth is None:
        raise GroundTruthError("mm-helix reward: trl_reward got no 'ground_truth' column; train on the hf "
                               "export (python synth.py --export hf), which carries it")
    if len(ground_truth) != len(completions):
        raise GroundTruthError(f"mm-helix reward: {len(completions)} completions but {len(ground_truth)} "
                               f"ground truths")
    return [reward(completion_text(c), t) for c, t in zip(completions, ground_truth)]
