"""
vlm/modelio.py -- a model and its inputs: loading and saving, the chat format, batches, and
per-token log-probs for training.

    from vlm import modelio as M
    net, proc = M.load("runs/sft/final")                         # a LOCAL folder, never a hub name
    chat = [{"role": "user", "content": [{"type": "image", "image": "images/0.png"},
                                         {"type": "text", "text": "Solve the maze."}]}]
    batch = M.prompt_batch(proc, [chat], root="data/bench")      # left-padded, for vlm/sampler.py
    tb = M.train_batch(proc, [chat], ["<think>...</think> \\boxed{up}"], root="data/bench")
    lp, ent = M.logprobs(net, tb, temperature=1.0)               # (B, L), 0 off completions

Two kinds of model, told apart by their config:
  - "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, images + text (the paper's base model);
  - "causal":     any Hugging Face causal LM (AutoModelForCausalLM), text only.

Simplifications (on purpose):
  - Images only (no video). Image items are {"type": "image", "image": path or PIL image};
    paths are relative to `root` unless absolute.
  - Qwen2.5-VL is the only vision-language family; other models are loaded as text-only
    causal LMs, and images given to them are an error (or dropped with drop_images=True).
    Their templates get each message's content as one string (text items joined in order).
  - Completions passed as text are the assistant message: their tokens plus <|im_end|>.
    Prompt and completion are tokenised separately, exactly as the sampler sees them.
  - Qwen2.5-VL positions are 3-axis (mrope), computed here once per batch by the model's own
    rope-index code, and passed explicitly to every forward (sampling and training alike).
  - Log-probs are log softmax(logits / T) over the vocabulary minus the vision tokens: the
    distribution the sampler draws from (before top-k / top-p), so PPO ratios compare like
    with like.
"""

import functools
import json
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2_5_VLForConditionalGeneration,
                          Qwen2VLImageProcessorPil)
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from harness.chat import check_messages, content_items
from vlm.sampler import mask_banned

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]
VISION_TOKENS = [VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]  # never sampled

# Qwen-style chat template: what the tiny tokenizer carries, and the format used when a
# tokenizer has no template. No default system prompt (Qwen2.5-VL's own template adds one).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)




# -----------------------------------------------------------------------------
# Processor: tokenizer + image processor + what the batching code needs to know

class _RopeIndex:
    """The model's own rope-index code (Qwen2_5_VLModel.get_rope_index) bound to the config
    alone: it reads nothing of the model but config.vision_config, and the batching functions
    have the processor, not the model. tests/test_vlm.py checks it against the model's method."""
    get_rope_index = Qwen2_5_VLModel.get_rope_index
    get_vision_position_ids = Qwen2_5_VLModel.get_vision_position_ids

    def __init__(self, config):
        self.config = config


@dataclass
class Processor:
    """What turns chats into model inputs. Built by load() / make_tiny(); min/max_pixels are
    applied to (and saved with) the image processor."""
    tokenizer: Any                      # a transformers fast tokenizer
    image_processor: Any = None         # Qwen2VLImageProcessorPil; None for text-only models
    kind: str = "causal"                # "qwen2_5_vl" or "causal"
    config: Any = None                  # the model config (Qwen2.5-VL: for the rope index)
    min_pixels: int | None = None       # image budget, in pixels (28 x 28 per merged patch)
    max_pixels: int | None = None

    def __post_init__(self):
        tok = self.tokenizer
        vocab = tok.get_vocab()
        self.eos_id = vocab.get(IM_END, tok.eos_token_id)  # end of an assistant turn
        if self.eos_id is None:
            raise ValueError(f"the tokenizer has neither {IM_END} nor an eos token")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else vocab.get(PAD, self.eos_id)
        # vision tokens present in the vocabulary: masked out when sampling and scoring
        self.banned_ids = sorted(vocab[t] for t in VISION_TOKENS if t in vocab)
        self.image_token_id = vocab.get(IMAGE_PAD)
        if self.kind == "qwen2_5_vl":
            if self.image_processor is None or self.config is None:
                raise ValueError("a qwen2_5_vl Processor needs image_processor and the model config")
            if self.config.image_token_id != self.image_token_id:
                raise ValueError(f"tokenizer's {IMAGE_PAD} id {self.image_token_id} != config.image_token_id "
                                 f"{self.config.image_token_id}")
            size = self.image_processor.size
            self.min_pixels = self.min_pixels or size["shortest_edge"]
            self.max_pixels = self.max_pixels or size["longest_edge"]
            self.image_processor.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
            self.merge_size = self.image_processor.merge_size

    def save(self, path):
        """Write tokenizer (+ image processor) files next to a model's, for from_pretrained."""
        self.tokenizer.save_pretrained(path)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(path)


def _model_kind(config):
    if config.model_type == "qwen2_5_vl":
        return "qwen2_5_vl"
    if hasattr(config, "vision_config"):
        raise ValueError(f"model_type {config.model_type!r} has a vision tower but only qwen2_5_vl is "
                         "supported for images; convert it or load a text-only model")
    return "causal"


def _model_class(config):
    return Qwen2_5_VLForConditionalGeneration if _model_kind(config) == "qwen2_5_vl" else AutoModelForCausalLM


def load(path, device=None, dtype=None, min_pixels=None, max_pixels=None, attn_implementation="sdpa", meta=False):
    """Load model and processor from a LOCAL folder (never a hub name). Default dtype: bf16 on
    CUDA, fp32 on CPU. min/max_pixels override the saved image budget. meta=True builds the
    model from its config on the meta device, weights not read (vlm/training.py fills them in
    after sharding, from rank 0's copy)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no model folder at {path!r} (vlm.load reads local folders only; "
                                "vlm.make_tiny(path) builds an offline one)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    # transformers 5.24's Qwen2.5-VL keeps state between calls: generate() stores
    # model.model.rope_deltas, and a forward WITHOUT position_ids reuses it while decoding with
    # a cache, or silently falls back to 1-D positions when mm_token_type_ids is missing. Every
    # forward in this file passes position_ids, which skips that code: nothing leaks.
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    cls = _model_class(config)
    if meta:
        with torch.device("meta"):
            model = cls._from_config(config, dtype=dtype, attn_implementation=attn_implementation).eval()
    else:
        model = cls.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                    local_files_only=True).to(device).eval()
    return model, load_processor(path, model.config, min_pixels, max_pixels)


def load_processor(path, config, min_pixels=None, max_pixels=None):
    """The tokenizer (and, for Qwen2.5-VL, the image processor) of a model folder."""
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.chat_template is None and os.path.exists(os.path.join(path, "chat_template.json")):
        with open(os.path.join(path, "chat_template.json")) as f:  # older Qwen2.5-VL folders
            tok.chat_template = json.load(f)["chat_template"]
    kind = _model_kind(config)
    improc = None
    if kind == "qwen2_5_vl":
        improc = Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True)
    return Processor(tok, improc, kind, config, min_pixels, max_pixels)


def save(model, proc, path):
    """Write a folder that load() (and from_pretrained) reads: safetensors, config, tokenizer,
    image processor."""
    model.save_pretrained(path)
    proc.save(path)


# -----------------------------------------------------------------------------
# Chat format: messages -> token ids (+ pixel values)

def _open_image(image, root):
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, (str, os.PathLike)):
        raise ValueError(f"an image must be a path or a PIL image, got {type(image).__name__}")
    p = image if os.path.isabs(image) or root is None else os.path.join(root, image)
    if not os.path.exists(p):
        raise FileNotFoundError(f"image {p!r} not found (paths are relative to root={root!r})")
    with Image.open(p) as im:
        return im.convert("RGB")


def render(proc, messages, add_generation_prompt=True):
    """The chat as text, one <|vision_start|><|image_pad|><|vision_end|> per image.
    Qwen2.5-VL's template reads content as a list of items; a text-only model's template (e.g.
    Llama-style ones doing `'<|im_start|>' + message['content']`) reads a string, so for those
    the text items are joined in order. Images reaching a text model are dropped here (encode
    refuses them unless drop_images=True)."""
    def content(c):
        if isinstance(c, str):
            return c
        if proc.kind != "qwen2_5_vl":
            return "".join(it["text"] for it in c if it["type"] == "text")
        # the template sees image items without their payload (PIL objects do not belong in Jinja)
        return [{"type": "image"} if it["type"] == "image" else it for it in c]
    clean = [dict(m, content=content(m["content"])) for m in messages]
    tok = proc.tokenizer
    if tok.chat_template is not None:
        return tok.apply_chat_template(clean, tokenize=False, add_generation_prompt=add_generation_prompt)
    from jinja2 import Template  # a dependency of transformers' chat templates
    return Template(CHAT_TEMPLATE).render(messages=clean, add_generation_prompt=add_generation_prompt)


def encode(proc, messages, root=None, add_generation_prompt=True, drop_images=False):
    """One conversation -> (ids: list[int], pixel_values (P, C*2*14*14) | None, image_grid_thw (I, 3) | None).
    Each image becomes prod(grid_thw) / merge_size**2 <|image_pad|> tokens."""
    check_messages(messages)
    n_images = sum(it["type"] == "image" for m in messages for it in content_items(m))
    if n_images and proc.kind != "qwen2_5_vl":
        if not drop_images:
            raise ValueError(f"this is a text-only model ({proc.kind}) but the conversation has {n_images} "
                             "image(s); pass drop_images=True to drop them")
        messages = [dict(m, content=[it for it in m["content"] if it["type"] != "image"])
                    if not isinstance(m["content"], str) else m for m in messages]
        n_images = 0
    text = render(proc, messages, add_generation_prompt)
    ids = proc.tokenizer(text, add_special_tokens=False)["input_ids"]
    if n_images == 0:
        if proc.image_token_id is not None and proc.image_token_id in ids:
            raise ValueError(f"text contains {IMAGE_PAD} but no image item was given")
        return ids, None, None
    images = [_open_image(it["image"], None if root is None else str(root))
              for m in messages for it in content_items(m) if it["type"] == "image"]
    out = proc.image_processor(images=images, return_tensors="pt")
    grid = out["image_grid_thw"]
    counts = (grid.prod(-1) // proc.merge_size ** 2).tolist()
    slots = [i for i, t in enumerate(ids) if t == proc.image_token_id]
    if len(slots) != len(counts):
        raise ValueError(f"chat template wrote {len(slots)} {IMAGE_PAD} tokens for {len(counts)} images")
    expanded, prev = [], 0
    for slot, c in zip(slots, counts):
        expanded += ids[prev:slot] + [proc.image_token_id] * c
        prev = slot + 1
    return expanded + ids[prev:], out["pixel_values"], grid


# -----------------------------------------------------------------------------
# Batching

def _positions(proc, input_ids, attention_mask, image_grid_thw):
    """Qwen2.5-VL: 3-axis mrope positions (3, B, L) from the model's rope-index code.
    Text models: (B, L) positions counted over non-pad tokens. Pads get position 0."""
    if proc.kind == "qwen2_5_vl":
        mm_type = (input_ids == proc.image_token_id).int()  # 0 text, 1 image
        pos, _ = _RopeIndex(proc.config).get_rope_index(
            input_ids, mm_token_type_ids=mm_type, image_grid_thw=image_grid_thw, attention_mask=attention_mask)
        return pos
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) * attention_mask


def _collate(proc, rows, left):
    """rows: list of token id lists -> (input_ids, attention_mask), padded on the left or right."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), proc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(L - len(r), L) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def _cat_images(encoded):
    pv = [e[1] for e in encoded if e[1] is not None]
    grid = [e[2] for e in encoded if e[2] is not None]
    return (torch.cat(pv), torch.cat(grid)) if pv else (None, None)


def prompt_batch(proc, conversations, root=None, drop_images=False):
    """Prompts for sampling, LEFT-padded (all rows end at the last column).
    Returns input_ids, attention_mask (B, L), position_ids ((3, B, L) or (B, L)),
    pixel_values, image_grid_thw (None without images)."""
    if not conversations:
        raise ValueError("prompt_batch needs at least one conversation")
    enc = [encode(proc, c, root, True, drop_images) for c in conversations]
    ids, mask = _collate(proc, [e[0] for e in enc], left=True)
    pv, grid = _cat_images(enc)
    return dict(input_ids=ids, attention_mask=mask, position_ids=_positions(proc, ids, mask, grid),
                pixel_values=pv, image_grid_thw=grid)


def train_batch(proc, prompts, completions, root=None, drop_images=False, max_len=None):
    """Prompt + completion per row, RIGHT-padded (all rows start at column 0), for scoring.
    completions[i]: str (an assistant message: its tokens + <|im_end|> are appended, as sft.py
    wants) or list[int] (token ids used as they are, e.g. the sampler's output incl. EOS).
    completion_mask is 1 exactly on completion tokens. A row longer than max_len is an error,
    never cut: a trace's answer and a rollout's EOS, what the reward read, are at its end.
    Returns input_ids, attention_mask, completion_mask (B, L), position_ids, pixel_values,
    image_grid_thw, banned_ids (token ids masked out of the distribution, as in sampling)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    rows, comp_lens, enc = [], [], []
    for p, c in zip(prompts, completions):
        e = encode(proc, p, root, True, drop_images)
        c_ids = _completion_ids(proc, c)
        if max_len is not None and len(e[0]) + len(c_ids) > max_len:
            raise ValueError(f"prompt of {len(e[0])} + completion of {len(c_ids)} tokens > max_len={max_len} "
                             "(rows are never cut)")
        enc.append(e)
        rows.append(e[0] + c_ids)
        comp_lens.append((len(e[0]), len(c_ids)))
    ids, mask = _collate(proc, rows, left=False)
    comp = torch.zeros_like(mask)
    for i, (lp, lc) in enumerate(comp_lens):
        comp[i, lp:lp + lc] = 1
    pv, grid = _cat_images(enc)
    return dict(input_ids=ids, attention_mask=mask, completion_mask=comp,
                position_ids=_positions(proc, ids, mask, grid), pixel_values=pv, image_grid_thw=grid,
                banned_ids=torch.tensor(proc.banned_ids, dtype=torch.long))


def pack_batch(proc, groups, root=None, drop_images=False, max_len=None):
    """Several prompts and their completions as ONE row, each prompt once: for training on a
    group (a prompt and its N rollouts, and its expert trace) without running the prompt N times
    and without padding. groups: [(messages, [completion, ...])], a completion as in train_batch
    (str: an assistant message, + <|im_end|>; list[int]: token ids as they are).

    The row is prompt_1, its completions, prompt_2, its completions, ... A token attends to the
    earlier tokens of its own prompt and, in a completion, to the earlier tokens of that same
    completion: a block-diagonal causal mask (attention_mask, (1, 1, L, L) bool), so each
    completion sees exactly what it would see in a row of its own. Positions continue each
    prompt: completion token t sits at (the prompt's last position + 1 + t) on every rope axis,
    as the sampler decoded it, and each prompt's own positions come from the rope index (3-D
    for Qwen2.5-VL images). A prompt with a completion longer than max_len is an error, never
    cut, as in train_batch.

    Returns input_ids (1, L), attention_mask (1, 1, L, L), position_ids, pixel_values,
    image_grid_thw, banned_ids as train_batch does, and for the completions, numbered in order
    s = 0..S-1: completion_mask (S, C) (C: the longest completion), and per completion token,
    in the row's order, tok_at (its position), pred_at (the position whose hidden state
    predicts it: the token before it, the prompt's last for its first token), seq and col (its
    completion and place there); segments: per prompt (start, end, [(start, end) of each of
    its completions]), what packed_attention reads instead of the (L, L) mask. logprobs()
    returns (S, C) log-probs on this grid."""
    row, pos, grp, part, enc = [], [], [], [], []
    tok_at, pred_at, seq, col, lengths, segments = [], [], [], [], [], []
    for g, (messages, completions) in enumerate(groups):
        e = encode(proc, messages, root, True, drop_images)
        enc.append(e)
        p_ids = e[0]
        p_pos = _positions(proc, torch.tensor([p_ids]), torch.ones(1, len(p_ids), dtype=torch.long), e[2])
        start = len(row)
        row += p_ids
        pos.append(p_pos.reshape(-1, len(p_ids)))
        grp += [g] * len(p_ids)
        part += [-1] * len(p_ids)
        nxt = int(p_pos.max()) + 1
        segments.append((start, len(row), []))
        for c in completions:
            c_ids = _completion_ids(proc, c)
            if max_len is not None and len(p_ids) + len(c_ids) > max_len:
                raise ValueError(f"prompt of {len(p_ids)} + completion of {len(c_ids)} tokens > max_len={max_len} "
                                 "(rows are never cut)")
            s = len(lengths)
            at = len(row)
            tok_at += range(at, at + len(c_ids))
            pred_at += [start + len(p_ids) - 1] + list(range(at, at + len(c_ids) - 1))
            seq += [s] * len(c_ids)
            col += range(len(c_ids))
            lengths.append(len(c_ids))
            segments[-1][2].append((len(row), len(row) + len(c_ids)))
            row += c_ids
            pos.append(torch.arange(nxt, nxt + len(c_ids)).expand(pos[-1].shape[0] if pos else 1, -1))
            grp += [g] * len(c_ids)
            part += [s] * len(c_ids)
    L = len(row)
    grp, part = torch.tensor(grp), torch.tensor(part)
    i = torch.arange(L)
    # b visible from a: b <= a, the same group, and b in the prompt or in a's own completion
    mask = (i[None, :] <= i[:, None]) & (grp[None, :] == grp[:, None]) & ((part[None, :] == -1) | (part[None, :] == part[:, None]))
    position_ids = torch.cat(pos, dim=-1)
    position_ids = position_ids[:, None, :] if proc.kind == "qwen2_5_vl" else position_ids
    comp = torch.zeros(len(lengths), max(lengths, default=0), dtype=torch.long)
    for s, n in enumerate(lengths):
        comp[s, :n] = 1
    pv, grid = _cat_images(enc)
    return dict(input_ids=torch.tensor([row]), attention_mask=mask[None, None], position_ids=position_ids,
                pixel_values=pv, image_grid_thw=grid, banned_ids=torch.tensor(proc.banned_ids, dtype=torch.long),
                completion_mask=comp, tok_at=torch.tensor(tok_at, dtype=torch.long),
                pred_at=torch.tensor(pred_at, dtype=torch.long), seq=torch.tensor(seq, dtype=torch.long),
                col=torch.tensor(col, dtype=torch.long), segments=segments)


def _completion_ids(proc, c):
    """A completion's token ids as training appends them: a str is an assistant message (its
    tokens + <|im_end|>); a list of ids is used as it is (the sampler's, EOS included)."""
    if isinstance(c, str):
        ids = proc.tokenizer(c, add_special_tokens=False)["input_ids"] + [proc.eos_id]
    elif isinstance(c, (list, tuple)) or torch.is_tensor(c):
        ids = [int(t) for t in c]
    else:
        raise ValueError(f"a completion must be a str or a list of token ids, got {type(c).__name__}")
    if proc.image_token_id is not None and proc.image_token_id in ids:
        raise ValueError(f"a completion contains {IMAGE_PAD}; images belong in the prompt")
    return ids


def plan_micro_batches(groups, size=None, tokens=None, pack=True):
    """How the rows of a step are cut into micro-batches. groups: per prompt, (prompt tokens,
    [completion tokens, ...]). Returns micro-batches, each a list of (group, [completion, ...])
    indices, and per micro-batch the positions the model will run and how many are padding:

      size=M (no tokens): today's rows, M at a time in the order given, padded to the longest;
      tokens=K, pack=False: rows sorted by length, as many as fit in K positions padding
        included (each row its own prompt + completion);
      tokens=K, pack=True (pack_batch): one row per micro-batch, up to K positions, each
        prompt once with the completions of its group after it, no padding. A group whose
        completions do not fit in the room left goes on in the next row, its prompt again.

    A row (prompt + one completion) longer than K is an error: never cut, never dropped.
    Each micro-batch: {"groups": [(group, [completion, ...])], "positions", "padding",
    "prompt_positions"} (the last three count what the model computes)."""
    rows = [(g, i, p + c) for g, (p, cs) in enumerate(groups) for i, c in enumerate(cs)]
    if tokens is not None:
        longest = max(rows, key=lambda r: r[2], default=None)
        if longest is not None and longest[2] > tokens:
            raise ValueError(f"--micro-batch-tokens {tokens}: a row of {longest[2]} tokens (a prompt of "
                             f"{groups[longest[0]][0]} and a completion of {groups[longest[0]][1][longest[1]]}) "
                             "does not fit; rows are never cut, raise --micro-batch-tokens")
    out = []
    if tokens is None:                                   # today: `size` rows at a time, as given
        for k in range(0, len(rows), size):
            part = rows[k:k + size]
            out.append((part, len(part) * max(r[2] for r in part)))
    elif not pack:                                       # sorted rows under a token budget
        part = []
        for r in sorted(rows, key=lambda r: r[2]):
            if part and (len(part) + 1) * r[2] > tokens:
                out.append((part, len(part) * part[-1][2]))
                part = []
            part.append(r)
        if part:
            out.append((part, len(part) * part[-1][2]))
    else:                                                # packed: each prompt once, no padding
        part, used = [], 0
        for g, (p, cs) in enumerate(groups):
            for i in sorted(range(len(cs)), key=lambda i: -cs[i]):
                here = any(r[0] == g for r in part)
                need = cs[i] + (0 if here else p)
                if part and used + need > tokens:
                    out.append((part, used))
                    part, used, here, need = [], 0, False, p + cs[i]
                part.append((g, i, p + cs[i]))
                used += need
        if part:
            out.append((part, used))
    plans = []
    for part, positions in out:
        by_group = {}
        for g, i, _ in part:
            by_group.setdefault(g, []).append(i)
        packed = tokens is not None and pack
        plans.append(dict(groups=list(by_group.items()), positions=positions,
                          padding=0 if packed else positions - sum(r[2] for r in part),
                          # prompt positions run: once per group in a packed row, once per row else
                          prompt_positions=sum(groups[g][0] for g in by_group) if packed
                          else sum(groups[g][0] for g, _, _ in part)))
    return plans


def _to(batch, device):
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _vision_inputs(batch):
    return {k: batch[k] for k in ("pixel_values", "image_grid_thw") if batch.get(k) is not None}



# -----------------------------------------------------------------------------
# Log-probs for training (and for checking the sampler)

def _token_logp(head, h, targets, T, banned):
    """log p(target) and entropy for a chunk of hidden states: fp32 logits / T, vision masked.
    T: a float, or one temperature per token, (n, 1)."""
    z = mask_banned(head(h).float() / T, banned)
    logp = z.log_softmax(-1)
    ent = -(logp.exp() * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(-1)  # 0 * -inf -> 0
    return logp.gather(1, targets[:, None]).squeeze(1), ent


# Attention over a packed row that computes only what the block mask lets through: each prompt
# causally over itself, then each of its completions over [the prompt, itself]. The dense mask
# of pack_batch costs (prompt + all completions)^2 positions per group, most of them masked (one
# completion never sees another); this costs prompt^2 / 2 + sum of completion x (prompt +
# completion). Registered as an attention implementation of transformers, it is reached
# through the model's own layers (so FSDP2's hooks run as usual), and it is plain sdpa for any
# call without `segments` (sampling's prefill, evaluation).
PACKED_ATTENTION = "mmhelix_packed"


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, segments=None, **kw):
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kw)
    q, k, v = query[0], key[0], value[0]                  # (heads, L, head_dim); K/V may have fewer heads
    gqa = q.shape[0] != k.shape[0]
    sdpa = functools.partial(F.scaled_dot_product_attention, scale=scaling, enable_gqa=gqa)
    out = []
    for ps, pe, completions in segments:
        out.append(sdpa(q[:, ps:pe], k[:, ps:pe], v[:, ps:pe], is_causal=True))
        for cs, ce in completions:
            n, p = ce - cs, pe - ps
            seen = torch.ones(n, p + n, dtype=torch.bool, device=q.device)
            seen[:, p:] = seen[:, p:].tril()
            out.append(sdpa(q[:, cs:ce], torch.cat([k[:, ps:pe], k[:, cs:ce]], 1),
                            torch.cat([v[:, ps:pe], v[:, cs:ce]], 1), attn_mask=seen))
    return torch.cat(out, 1).transpose(0, 1)[None], None   # (1, L, heads, head_dim), as transformers wants


AttentionInterface.register(PACKED_ATTENTION, packed_attention)
AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def use_packed_attention(model):
    """The text decoder's attention becomes packed_attention (sdpa for any ordinary call)."""
    model.set_attn_implementation({"text_config": PACKED_ATTENTION} if hasattr(model.config, "text_config")
                                  else PACKED_ATTENTION)


def _packed_attention_on(model):
    cfg = model.config.get_text_config()
    return getattr(cfg, "_attn_implementation", None) == PACKED_ATTENTION


class Policy(torch.nn.Module):
    """A model and the one forward training needs: the per-token log-probs of a train_batch
    (logprobs below) as this module's forward. Why a module: under FSDP2 (vlm/training.py) it is
    the root unit that holds the model's own parameters (embeddings, vision tower, final norm,
    lm_head; each decoder layer is a unit of its own). Then every call gathers them exactly once,
    whether the batch has images or not and however many chunks the head runs in, so ranks that
    differ in those never differ in their collectives. Sampling uses `.model` itself."""

    def __init__(self, model, device=None):
        super().__init__()
        self.model = model
        self.device = device   # where the inputs go: the model's, unless its weights live elsewhere (--offload)

    def forward(self, batch, temperature=1.0, chunk=1024):
        return _logprobs(self.model, batch, temperature, chunk, self.device)


def logprobs(model, batch, temperature=1.0, chunk=1024):
    """Per-token log-probs (and entropies) of the completion tokens of a train_batch(), under
    softmax(logits / temperature) with the same positions and masked tokens as sampling.
    The transformer runs once; lm_head runs over completion positions only, `chunk` tokens at
    a time (re-computed in backward under autograd), so (B, L, V) fp32 logits never exist.
    Returns (logp, entropy), both (B, L) fp32, nonzero only where completion_mask is 1.
    Gradients flow when called with grad enabled (sft.py, ahpo.py); wrap in torch.no_grad()
    for old-policy log-probs. `model`: a model, or a Policy (then its forward runs).
    A pack_batch() gives (S, C) instead, one row per completion. temperature: a float, or a
    tensor with one per row (train_batch) or per completion (pack_batch)."""
    if isinstance(model, Policy):
        return model(batch, temperature, chunk)
    return _logprobs(model, batch, temperature, chunk)


def _logprobs(model, batch, temperature, chunk, device=None):
    b = _to(batch, device or model.device)
    ids, mask, comp = b["input_ids"], b["attention_mask"], b["completion_mask"]
    extra = {}
    if "segments" in b and _packed_attention_on(model):   # the blocks only, not the (L, L) mask
        extra, mask = {"segments": b["segments"]}, None
    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=b["position_ids"],
                              use_cache=False, **_vision_inputs(b), **extra).last_hidden_state
    if "pred_at" in b:   # pack_batch: one row; its completions' tokens go to their own (S, C) grid
        h, targets = hidden[0, b["pred_at"]], ids[0, b["tok_at"]]
        rows, at = b["seq"], (b["seq"], b["col"])
        zeros = torch.zeros(comp.shape, dtype=torch.float32, device=ids.device)
    else:                # train_batch: the hidden state at t predicts token t + 1 of its row
        rows, cols = comp[:, 1:].nonzero(as_tuple=True)
        h, targets = hidden[rows, cols], ids[rows, cols + 1]
        at = (rows, cols + 1)
        zeros = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    # a temperature per completion (a row's, or a packed completion's): one per token
    T = temperature[rows].to(h.device)[:, None].float() if torch.is_tensor(temperature) else float(temperature)
    head = model.get_output_embeddings()
    banned = b.get("banned_ids")
    lp, ent = [], []
    for s in range(0, len(targets), chunk):
        args = (head, h[s:s + chunk], targets[s:s + chunk], T if isinstance(T, float) else T[s:s + chunk], banned)
        if torch.is_grad_enabled():
            a, e = torch.utils.checkpoint.checkpoint(_token_logp, *args, use_reentrant=False)
        else:
            a, e = _token_logp(*args)
        lp.append(a)
        ent.append(e)
    if not lp:
        return zeros, zeros.clone()
    return zeros.index_put(at, torch.cat(lp)), zeros.index_put(at, torch.cat(ent))


# -----------------------------------------------------------------------------
# Row lengths: what --max-len must hold (rows are never cut)

def context_length(model):
    """The longest row the model's positions cover (its text config's max_position_embeddings):
    sft.py's and ahpo.py's --max-len when none is given."""
    return model.config.get_text_config().max_position_embeddings


def prompt_lengths(proc, prompts, drop_images=False):
    """Token counts of prompts as the sampler and train_batch see them (image tokens included)."""
    return [len(encode(proc, p, None, True, drop_images)[0]) for p in prompts]


def completion_lengths(proc, completions):
    """Token counts of str completions as train_batch appends them (their <|im_end|> included).
    A row is prompt + completion: what --max-len must hold."""
    return [len(proc.tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in completions]


def too_long(examples, lengths, max_len, noun):
    """None if every row fits max_len, else one line for the error or the note: how many of the
    rows are longer, the longest, and the count per task (rows are never cut: refuse or drop)."""
    counts = {}
    for e, n in zip(examples, lengths):
        if n > max_len:
            t = e.get("task") or e.get("category") or "?"
            counts[t] = counts.get(t, 0) + 1
    if not counts:
        return None
    return (f"{sum(counts.values())} of {len(lengths)} {noun} are longer than --max-len {max_len} (longest "
            f"{max(lengths)} tokens; by task: {', '.join(f'{t} {c}' for t, c in sorted(counts.items()))})")
