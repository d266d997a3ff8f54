"""Chat messages, and the SERG traces elicit.py writes (read by sft.py and ahpo.py).

A conversation is a list of {"role": system|user|assistant, "content": str | [item, ...]};
an item is {"type": "text", "text": ...} or {"type": "image", "image": path or PIL image}.
(tasks.messages_for writes a record's prompt in this form.)

    from harness.chat import read_traces
    examples, problems = read_traces("data/traces.jsonl")   # problems name file, line and field
"""
from __future__ import annotations

import os

from harness.jsonl import jsonl_rows


def content_items(message):
    content = message.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise ValueError(f"message content must be a str or a list of items, got {type(content).__name__}")
    return content


def check_messages(messages):
    if not isinstance(messages, list) or not messages:
        raise ValueError("a conversation is a non-empty list of {'role', 'content'} dicts")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"bad message {m!r}: need role system|user|assistant and content")
        for item in content_items(m):
            if not isinstance(item, dict) or item.get("type") not in ("image", "text"):
                raise ValueError(f"bad content item {item!r}: type must be 'image' or 'text'")
            if item["type"] == "image" and "image" not in item:
                raise ValueError(f"image item without an 'image' (path or PIL image): {item!r}")


def read_traces(path):
    """Traces written by elicit.py -> (examples, problems). An example is the record with
    `prompt` (the messages before the last) and `completion` (the assistant text); image paths
    are resolved against the traces file's folder. Problems name file, line and field."""
    examples, problems = [], []
    root = os.path.dirname(os.path.abspath(path))
    for i, rec, bad in jsonl_rows(path):
        if bad:
            problems.append(f"{path}:{i}: field '-': {bad}")
            continue
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list) or len(msgs) < 2:
            problems.append(f"{path}:{i}: field 'messages': missing or shorter than 2 turns")
            continue
        last = msgs[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant" or not isinstance(last.get("content"), str):
            problems.append(f"{path}:{i}: field 'messages': the last turn must be an assistant string")
            continue
        try:
            check_messages(msgs[:-1])
        except ValueError as e:
            problems.append(f"{path}:{i}: field 'messages': {e}")
            continue
        prompt = [dict(m, content=m["content"] if isinstance(m["content"], str) else
                       [dict(it, image=it["image"] if not isinstance(it.get("image"), str)
                             or os.path.isabs(it["image"]) else os.path.join(root, it["image"]))
                        if it["type"] == "image" else it for it in m["content"]])
                  for m in msgs[:-1]]
        examples.append({**rec, "prompt": prompt, "completion": last["content"], "line": i})
    return examples, problems
