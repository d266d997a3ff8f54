"""
vlm.py -- the model side of MM-HELIX, shared by elicit.py, sft.py, ahpo.py and evaluate.py.

One place for: loading a model, the chat format, batching, a hand-written sampler with a
KV cache, per-token log-probs for training, and a tiny offline model for tests and demos.

Two kinds of model, told apart by their config:
  - "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, images + text (the paper's base model)
  - "causal":     any Hugging Face causal LM (AutoModelForCausalLM), text only

Usage:
    import vlm
    vlm.make_tiny("runs/tiny")                                   # offline, ~0.3M parameters
    model, proc = vlm.load("runs/tiny")
    chat = [{"role": "user", "content": [{"type": "image", "image": "images/0.png"},
                                         {"type": "text", "text": "Solve the maze."}]}]
    batch = vlm.prompt_batch(proc, [chat], root="data/bench")    # left-padded prompts
    out = vlm.sample(model, proc, batch, n=5, max_new_tokens=256, temperature=1.0, seed=0)
    out.texts[i * 5 + j]                                         # sample j of prompt i
    tb = vlm.train_batch(proc, [chat] * 5, out.ids, root="data/bench")
    lp, ent = vlm.logprobs(model, tb, temperature=1.0)           # (B, L), 0 off completions

The sampler (nanochat's engine.py is the model to read alongside):
  1. prefill the prompt batch ONCE through the model's forward: images go through the vision
     tower once per prompt; the K/V land in a cache preallocated for the whole call;
  2. repeat the KV cache rows n times (sample j of prompt i is row i*n + j);
  3. sample from softmax(logits / T) with vision tokens masked out, top-k / top-p optional;
  4. stop a row at EOS or max_new_tokens; once a quarter of the rows in the cache are done
     they are dropped from it, so finished rows stop costing compute;
  5. decode one token per row with explicit positions, and go to 3. Qwen2.5-VL positions
     are 3-axis (mrope): the prompt's come from the model's own rope-index function, computed
     once; decoded token t gets (last prompt position + 1 + t) on all three axes. Positions
     are per row, so left padding is harmless.

Simplifications (on purpose):
  - Images only (no video). Image items are {"type": "image", "image": path or PIL image};
    paths are relative to `root` unless absolute.
  - Qwen2.5-VL is the only vision-language family; other models are loaded as text-only
    causal LMs, and images given to them are an error (or dropped with drop_images=True).
    Their templates get each message's content as one string (text items joined in order).
  - The sampler's reported log-prob of a token is log softmax(logits / T) over the full
    vocabulary minus the vision tokens, i.e. BEFORE top-k / top-p truncation; this is what
    `logprobs()` recomputes, so PPO-style ratios compare like with like. Greedy reports T = 1.
  - Completions passed as text are the assistant message: their tokens plus <|im_end|>.
    Prompt and completion are tokenised separately, exactly as the sampler sees them.
  - Decode steps of Qwen2-style decoders (Qwen2, Qwen2.5-VL's text model, Llama) run through
    `_decode_step`, a hand-written loop over the model's own modules (same kernels, same
    numbers as its forward, without the per-call machinery); any other causal LM decodes
    through its forward (also `fast=False`). The KV cache (`_BufferLayer`) is preallocated
    for prompt + max_new_tokens: memory for the longest possible row is taken up front.
  - No CUDA graphs, no torch.compile, no paged cache, no continuous batching: rows that
    finish are dropped, but new prompts do not join a running batch.
"""

import functools
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from PIL import Image
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast,
                          Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Config,
                          Qwen2ForCausalLM, Qwen2VLImageProcessorPil)
from transformers.cache_utils import Cache, DynamicLayer
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

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


def load(path, device=None, dtype=None, min_pixels=None, max_pixels=None, attn_implementation="sdpa"):
    """Load model and processor from a LOCAL folder (never a hub name). Default dtype: bf16 on
    CUDA, fp32 on CPU. min/max_pixels override the saved image budget."""
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
    kind = _model_kind(config)
    cls = Qwen2_5_VLForConditionalGeneration if kind == "qwen2_5_vl" else AutoModelForCausalLM
    model = cls.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                local_files_only=True).to(device).eval()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.chat_template is None and os.path.exists(os.path.join(path, "chat_template.json")):
        with open(os.path.join(path, "chat_template.json")) as f:  # older Qwen2.5-VL folders
            tok.chat_template = json.load(f)["chat_template"]
    improc = None
    if kind == "qwen2_5_vl":
        improc = Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True)
    return model, Processor(tok, improc, kind, model.config, min_pixels, max_pixels)


def save(model, proc, path):
    """Write a folder that load() (and from_pretrained) reads: safetensors, config, tokenizer,
    image processor."""
    model.save_pretrained(path)
    proc.save(path)


# -----------------------------------------------------------------------------
# Chat format: messages -> token ids (+ pixel values)

def _items(message):
    content = message.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise ValueError(f"message content must be a str or a list of items, got {type(content).__name__}")
    return content


def _check(messages):
    if not isinstance(messages, list) or not messages:
        raise ValueError("a conversation is a non-empty list of {'role', 'content'} dicts")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"bad message {m!r}: need role system|user|assistant and content")
        for item in _items(m):
            if not isinstance(item, dict) or item.get("type") not in ("image", "text"):
                raise ValueError(f"bad content item {item!r}: type must be 'image' or 'text'")
            if item["type"] == "image" and "image" not in item:
                raise ValueError(f"image item without an 'image' (path or PIL image): {item!r}")


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
    _check(messages)
    n_images = sum(it["type"] == "image" for m in messages for it in _items(m))
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
              for m in messages for it in _items(m) if it["type"] == "image"]
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
        if isinstance(c, str):
            c_ids = proc.tokenizer(c, add_special_tokens=False)["input_ids"] + [proc.eos_id]
        elif isinstance(c, (list, tuple)) or torch.is_tensor(c):
            c_ids = [int(t) for t in c]
        else:
            raise ValueError(f"a completion must be a str or a list of token ids, got {type(c).__name__}")
        if proc.image_token_id is not None and proc.image_token_id in c_ids:
            raise ValueError(f"a completion contains {IMAGE_PAD}; images belong in the prompt")
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


def _to(batch, device):
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


# -----------------------------------------------------------------------------
# KV cache

class _BufferLayer(DynamicLayer):
    """One layer's K/V in a buffer with room for prompt + max_new_tokens. transformers'
    DynamicLayer grows by torch.cat, copying the whole cache at every step; here a decode step
    writes one column and attention reads a view of the filled part. The prefill's K/V are kept
    as they are; the full-size buffer is allocated when the rows are repeated for the n samples
    (or at the first decode write), after the prefill's activations are gone. Everything else
    (mask sizes, sequence length) is DynamicLayer's, computed from the view."""

    def __init__(self, max_len):
        super().__init__()
        self.max_len, self.n = max_len, 0  # capacity wanted, positions filled

    def update(self, key_states, value_states, *args, **kwargs):
        t = key_states.shape[-2]
        if not self.is_initialized:
            self.kbuf, self.vbuf = key_states, value_states
            self.device, self.is_initialized = key_states.device, True
        else:
            if self.n + t > self.max_len:
                raise RuntimeError(f"KV cache of {self.max_len} positions is full")
            if self.n + t > self.kbuf.shape[2]:
                self._rebuild(torch.arange(self.kbuf.shape[0], device=self.kbuf.device))
            self.kbuf[:, :, self.n:self.n + t] = key_states
            self.vbuf[:, :, self.n:self.n + t] = value_states
        self.n += t
        self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]
        return self.keys, self.values

    def _rebuild(self, rows):
        """Full-size buffers holding the filled part of the given rows (only that part is copied)."""
        for name in ("kbuf", "vbuf"):
            buf = getattr(self, name)
            new = buf.new_empty(len(rows), buf.shape[1], self.max_len, buf.shape[3])
            new[:, :, :self.n] = buf[rows, :, :self.n]
            setattr(self, name, new)
        self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]

    def batch_repeat_interleave(self, repeats):  # row i -> rows i*repeats .. i*repeats + repeats-1
        self._rebuild(torch.arange(self.kbuf.shape[0], device=self.kbuf.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices):
        self._rebuild(indices)


def _new_cache(model, max_len):
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[_BufferLayer(max_len) for _ in range(n_layers)])


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


# Decoders whose one-token step is exactly _decode_step: pre-norm, rotate-half rope on q and k,
# grouped-query sdpa, gated MLP. Llama differs from Qwen2 only in having no q/k/v biases, which
# the projections themselves carry (or not). Each is checked token for token against generate:
# Qwen2 / Qwen2.5-VL in tests/test_vlm.py, Llama (SmolLM2-135M) in tests/test_real_weights.py.
_DECODE_STEP_TYPES = ("qwen2", "qwen2_5_vl_text", "llama")


def _text_decoder(model):
    """The text decoder, if it is one that _decode_step can run by hand, else None."""
    base = model.base_model
    text = getattr(base, "language_model", base)  # Qwen2.5-VL nests its text model
    cfg = getattr(text, "config", None)
    ok = (cfg is not None and cfg.model_type in _DECODE_STEP_TYPES
          # no sliding-window layers (Llama configs carry no layer_types: all full attention)
          and all(t == "full_attention" for t in getattr(cfg, "layer_types", None) or ())
          # rope tables are computed once per call: no rope that rescales with the length seen
          and text.rotary_emb.rope_type not in ("dynamic", "longrope"))
    return text if ok else None


def _decode_step(text, head, cache, tok, cos, sin, key_mask):
    """One token per row through a Qwen2-style decoder (Qwen2, Qwen2.5-VL's text model, Llama), by
    hand: the same modules and kernels as the model's forward for one token, minus its per-call
    machinery (mask building, rope tables, output capture, kwargs plumbing), which costs more
    than the math on small models. tok (R, 1); cos, sin (R, 1, 1, head_dim) for this step;
    key_mask (R, 1, 1, L) bool. tests/test_vlm.py checks it token for token against generate."""
    R = tok.shape[0]
    x = text.embed_tokens(tok)
    for layer, kv in zip(text.layers, cache.layers):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k, v = kv.update(k, v)
        # grouped-query attention without copying K/V: the query heads that share a K/V head
        # act as that head's queries (what transformers' sdpa path does for one token)
        q = q.reshape(R, k.shape[1], -1, a.head_dim)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, scale=a.scaling)
        x = x + a.o_proj(o.reshape(R, 1, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return head(text.norm(x))[:, -1]


# -----------------------------------------------------------------------------
# Sampling

@dataclass
class Samples:
    ids: list        # list[list[int]] completion token ids per row, EOS included if produced
    texts: list      # list[str] decoded, special tokens skipped
    logprobs: list   # list[list[float]] log-prob of each sampled token (see module docstring)
    lengths: list    # list[int] number of completion tokens
    finished: list   # list[bool] True if the row ended with an EOS token
    n: int = 1       # samples per prompt: row r belongs to prompt r // n


def _vision_inputs(batch):
    return {k: batch[k] for k in ("pixel_values", "image_grid_thw") if batch.get(k) is not None}


def _mask_banned(logits, banned):
    if banned is not None and len(banned):
        logits = logits.index_fill(-1, banned, float("-inf"))
    return logits


def _filter(logits, top_k, top_p):
    """Keep the top_k largest logits and the smallest set whose probability reaches top_p."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def _in_eval_mode(fn):
    """Run fn(model, ...) with model.eval(): no dropout, and no gradient checkpointing (which
    would switch the KV cache off in train mode). The caller's mode is restored afterwards."""
    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        was_training = model.training
        model.eval()
        try:
            return fn(model, *args, **kwargs)
        finally:
            model.train(was_training)
    return wrapper


# Decoding grows the key length by one every step. cuDNN attention (torch's first choice on
# Hopper GPUs) builds an execution plan for every new shape, ~0.35 ms of CPU per layer per step:
# 58 ms/step against 18 ms with its plans already cached (Qwen2.5-1.5B dims, 40 rows, H100).
# The other kernels have no per-shape set-up; on CPU the choice is the same as torch's default.
_SAMPLER_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@_in_eval_mode
@torch.inference_mode()
@sdpa_kernel(_SAMPLER_ATTENTION)
def sample(model, proc, batch, n=1, max_new_tokens=256, temperature=1.0, top_p=1.0, top_k=0,
           greedy=False, seed=None, eos_ids=None, drop_finished=0.25, fast=True):
    """Sample n completions per prompt of a prompt_batch() with a KV cache (no model.generate).
    Row i*n + j of the result is sample j of prompt i. eos_ids: tokens that end a row (default:
    <|im_end|> and the model's generation_config EOS). drop_finished: finished rows leave the
    cache once they are this fraction of the rows in it (None: never). fast=False runs decode
    steps through the model's own forward instead of _decode_step (any architecture)."""
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for argmax")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if n < 1 or max_new_tokens < 1:
        raise ValueError(f"need n >= 1 and max_new_tokens >= 1, got n={n}, max_new_tokens={max_new_tokens}")
    device = model.device
    b = _to(batch, device)
    ids, mask, pos = b["input_ids"], b["attention_mask"], b["position_ids"]
    B, Lp = ids.shape
    if eos_ids is None:
        eos_ids = {proc.eos_id}
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos_ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    eos = torch.tensor(sorted(int(e) for e in eos_ids), dtype=torch.long, device=device)
    banned = torch.tensor(proc.banned_ids, dtype=torch.long, device=device)
    T = 1.0 if greedy else float(temperature)
    gen = None
    if seed is not None:
        gen = torch.Generator(device=device).manual_seed(int(seed))
    text = _text_decoder(model) if fast else None
    head = model.get_output_embeddings()

    # 1. prefill once; pixel_values enter here and only here. Positions are always explicit, so
    # the model never reads or writes model.model.rope_deltas (state it keeps between calls).
    cache = _new_cache(model, Lp + max_new_tokens)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                logits_to_keep=1, **_vision_inputs(b))
    logits = out.logits[:, -1].float()
    # 2. n samples per prompt share the prefill: repeat cache rows (row i*n + j), into buffers
    # with room for max_new_tokens (allocated now, after the prefill's activations are freed)
    cache.batch_repeat_interleave(n)
    logits = logits.repeat_interleave(n, dim=0)
    R = B * n
    # decoded token t sits at (last prompt position + 1 + t) on every axis; with the rope index,
    # "last" is the max over axes and tokens, which is also right if a prompt ends on an image
    next_pos = pos.reshape(-1, B, Lp).amax(dim=(0, 2)).repeat_interleave(n) + 1   # (R,)
    keys = torch.ones(R, Lp + max_new_tokens, dtype=torch.bool, device=device)   # key padding mask
    keys[:, :Lp] = mask.repeat_interleave(n, dim=0).bool()
    dec_pos = next_pos[:, None] + torch.arange(max_new_tokens, device=device)    # (R, max_new)
    if pos.dim() == 3:
        dec_pos = dec_pos[None].expand(3, -1, -1)                                  # same on 3 axes
    if text is not None:  # the rotary tables of every decode position, once (cf. nanochat)
        like = torch.empty(0, dtype=model.dtype, device=device)                    # dtype, device
        cos, sin = text.rotary_emb(like, dec_pos)                                   # (R, max_new, D)
        cos, sin = cos[:, None], sin[:, None]                                       # (R, 1, max_new, D)

    live = torch.arange(R, device=device)              # global row of each cache row
    done = torch.zeros(R, dtype=torch.bool, device=device)
    tokens = torch.full((R, max_new_tokens), proc.pad_id, dtype=torch.long, device=device)
    logps = torch.zeros(R, max_new_tokens, device=device)
    steps = 0
    for t in range(max_new_tokens):
        # 3. the distribution actually sampled from: logits / T, vision tokens masked
        logp = _mask_banned(logits / T if T != 1.0 else logits, banned).log_softmax(-1)
        if greedy:
            tok = logp.argmax(-1)
        else:
            probs = _filter(logp, top_k, top_p).softmax(-1)
            tok = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        # finished rows still in the cache keep writing; each row is cut at its first EOS below
        tokens[live, t] = tok
        logps[live, t] = logp.gather(1, tok[:, None]).squeeze(1)
        done[live] |= torch.isin(tok, eos)
        steps = t + 1
        finished = done[live]
        n_finished = int(finished.sum())
        if steps == max_new_tokens or n_finished == len(live):
            break
        # 4. drop finished rows from the cache once they are a good fraction of it: a drop
        # copies the cache once; a finished row left in costs its share of every step
        if drop_finished is not None and n_finished >= max(1.0, drop_finished * len(live)):
            idx = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(idx)
            live, tok, keys, dec_pos = live[idx], tok[idx], keys[idx], dec_pos[..., idx, :]
            if text is not None:
                cos, sin = cos[idx], sin[idx]
        # 5. one decode step with explicit per-row positions (the same value on all 3 axes)
        if text is not None:
            logits = _decode_step(text, head, cache, tok[:, None], cos[:, :, t:t + 1], sin[:, :, t:t + 1],
                                  keys[:, None, None, :Lp + t + 1]).float()
        else:
            logits = model(input_ids=tok[:, None], attention_mask=keys[:, :Lp + t + 1].long(),
                           position_ids=dec_pos[..., t:t + 1], cache=cache, use_cache=True).logits[:, -1].float()
    tokens, logps = tokens[:, :steps].tolist(), logps[:, :steps].tolist()
    eos_set = set(eos.tolist())
    ids_out, lps, fin = [], [], []
    for r in range(R):
        k = next((i + 1 for i, x in enumerate(tokens[r]) if x in eos_set), steps)
        ids_out.append(tokens[r][:k])
        lps.append(logps[r][:k])
        fin.append(k > 0 and tokens[r][k - 1] in eos_set)
    texts = proc.tokenizer.batch_decode(ids_out, skip_special_tokens=True)
    return Samples(ids_out, texts, lps, [len(x) for x in ids_out], fin, n)


# -----------------------------------------------------------------------------
# Log-probs for training (and for checking the sampler)

def _token_logp(head, h, targets, T, banned):
    """log p(target) and entropy for a chunk of hidden states: fp32 logits / T, vision masked."""
    z = _mask_banned(head(h).float() / T, banned)
    logp = z.log_softmax(-1)
    ent = -(logp.exp() * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(-1)  # 0 * -inf -> 0
    return logp.gather(1, targets[:, None]).squeeze(1), ent


def logprobs(model, batch, temperature=1.0, chunk=1024):
    """Per-token log-probs (and entropies) of the completion tokens of a train_batch(), under
    softmax(logits / temperature) with the same positions and masked tokens as sampling.
    The transformer runs once; lm_head runs over completion positions only, `chunk` tokens at
    a time (re-computed in backward under autograd), so (B, L, V) fp32 logits never exist.
    Returns (logp, entropy), both (B, L) fp32, nonzero only where completion_mask is 1.
    Gradients flow when called with grad enabled (sft.py, ahpo.py); wrap in torch.no_grad()
    for old-policy log-probs."""
    b = _to(batch, model.device)
    ids, mask, comp = b["input_ids"], b["attention_mask"], b["completion_mask"]
    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=b["position_ids"],
                              use_cache=False, **_vision_inputs(b)).last_hidden_state
    # the hidden state at t predicts token t + 1
    rows, cols = comp[:, 1:].nonzero(as_tuple=True)
    h, targets = hidden[rows, cols], ids[rows, cols + 1]
    head = model.get_output_embeddings()
    banned = b.get("banned_ids")
    lp, ent = [], []
    for s in range(0, len(targets), chunk):
        args = (head, h[s:s + chunk], targets[s:s + chunk], float(temperature), banned)
        if torch.is_grad_enabled():
            a, e = torch.utils.checkpoint.checkpoint(_token_logp, *args, use_reentrant=False)
        else:
            a, e = _token_logp(*args)
        lp.append(a)
        ent.append(e)
    zeros = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    if not lp:
        return zeros, zeros.clone()
    at = (rows, cols + 1)
    return zeros.index_put(at, torch.cat(lp)), zeros.index_put(at, torch.cat(ent))


# -----------------------------------------------------------------------------
# A tiny offline model (tests, demos, the toy reproduction)

def _corpus():
    """A few hundred sentences in the register of puzzle prompts and reasoning traces."""
    words = ["right", "left", "up", "down", "Yes", "No", "row", "column", "cell", "grid", "move",
             "step", "path", "wall", "start", "goal", "queen", "bridge", "island", "number", "sum"]
    base = [
        "You are given a puzzle. Read the image and solve it step by step.",
        "The grid has 5 rows and 5 columns. Each cell holds a number from 1 to 9.",
        "Move the player up, down, left or right until every box is on a goal.",
        "Find a path from the start S to the exit E that avoids every wall.",
        "Place eight queens so that no two queens attack each other.",
        "Connect the islands with bridges; each island shows how many bridges touch it.",
        "Fill the sudoku so that each row, column and box contains the digits 1-9 once.",
        "Is the statement true? Answer Yes or No.",
        "Put the final answer in \\boxed{} at the end of your response.",
        "<think> Let me read the grid first. Row 1 is 3 1 4 1 5. </think>",
        "<think> Wait, that breaks row 3; go back and try the other branch. </think>",
        "<think> Check: every row sums to 15, every column sums to 15. Good. </think>",
        "The answer is \\boxed{right right down down left}.",
        "The answer is \\boxed{Yes}.", "The answer is \\boxed{No}.",
        "So the shortest path has 12 steps: up, up, right, right, down.",
        "First, list the rules. Second, read the state. Third, search; then verify.",
        "If the queen is at (2, 3), then cells (2, x) and (y, 3) are attacked.",
        "Hmm, this move pushes the box into a corner, which is a dead end. Undo it.",
        "Count the cells: 7 + 8 = 15, and 15 - 6 = 9, so the last cell is 9.",
        "Let's verify the answer against every constraint before writing it down.",
        "The minesweeper board shows 1, 2 and 3 next to hidden cells.",
        "Colour the map with 4 colours so that neighbours differ.",
        "The tower of Hanoi with 3 disks needs 7 moves: A->C, A->B, C->B, A->C, B->A, B->C, A->C.",
        "Answer: \\boxed{[[1, 2], [3, 4]]}", "Answer: \\boxed{(0, 1), (1, 1), (2, 1)}",
        "Nonogram clues: row 1 is 2 1, column 4 is 3.", "Hitori: shade cells so no number repeats.",
        "Kakuro sums: 16 = 7 + 9, 17 = 8 + 9, 3 = 1 + 2.", "A word search hides the word PUZZLE.",
        "The clock reads 10:45; half an hour later it is 11:15.",
        "Step 1: the robot faces north. Step 2: turn left. Step 3: move forward 2.",
    ]
    lines = list(base)
    for i in range(240):  # deterministic variations: digits, moves, boxed answers, Yes/No
        a, b, c = (i * 7) % 10, (i * 13) % 10, (i * 31) % 100
        w = [words[(i * k) % len(words)] for k in (1, 3, 5, 7)]
        lines.append(f"Step {i}: {w[0]} {w[1]} {w[2]} {w[3]}; {a} + {b} = {a + b}, cell ({a}, {b}) = {c}.")
        if i % 2:
            lines.append(f"<think> {w[0].capitalize()} then {w[1]}? Wait, check the {w[2]}. </think> "
                         f"\\boxed{{{' '.join(w)}}}")
        else:
            lines.append(f"Is {c} > {a * b}? \\boxed{{{'Yes' if c > a * b else 'No'}}}")
    return lines


def _tiny_tokenizer(vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=IM_END,
                                   additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, IM_END)])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny(path, kind="qwen2_5_vl", seed=0, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=None,
              vision_hidden=32, vision_layers=2, vocab_size=768, min_pixels=4 * 28 * 28,
              max_pixels=64 * 28 * 28, max_position_embeddings=32768):
    """Build a randomly initialised tiny model with the tiny tokenizer (and image processor),
    save it to `path` with save_pretrained, and return (model, proc) as load(path) would.
    kind: "qwen2_5_vl" (images + text) or "causal" (a Qwen2 text model). Sizes are overridable
    for the toy reproduction; head dim = hidden / heads, even (Qwen2.5-VL: at least 6, as half
    of it is split over the 3 rope axes). path=None builds in memory only."""
    if kind not in ("qwen2_5_vl", "causal"):
        raise ValueError(f"kind must be 'qwen2_5_vl' or 'causal', got {kind!r}")
    head_dim = hidden // heads
    if hidden % heads or heads % kv_heads or head_dim % 2:
        raise ValueError(f"hidden={hidden}, heads={heads}, kv_heads={kv_heads}: need hidden % heads == 0, "
                         "heads % kv_heads == 0 and an even head dim")
    tok = _tiny_tokenizer(vocab_size)
    V = len(tok)
    tid = tok.convert_tokens_to_ids
    text = dict(vocab_size=V, hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=max_position_embeddings, bos_token_id=None,
                eos_token_id=tid(IM_END), pad_token_id=tid(PAD), tie_word_embeddings=False)
    if kind == "qwen2_5_vl":
        # mrope: the head's half-dim is split over (temporal, height, width) frequencies
        half, third = head_dim // 2, -(-head_dim // 2 // 3)
        section = [half - 2 * third, third, third]                 # head dim 16 -> [2, 3, 3]
        if min(section) < 1:
            raise ValueError(f"head dim {head_dim} too small for 3-axis rope")
        text["rope_parameters"] = dict(rope_type="default", rope_theta=1e6, mrope_section=section)
        vision = dict(depth=vision_layers, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                      num_heads=max(1, vision_hidden // 16), out_hidden_size=hidden, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                      fullatt_block_indexes=[vision_layers - 1])
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=tid(IMAGE_PAD),
                                  video_token_id=tid(VIDEO_PAD), vision_start_token_id=tid(VISION_START),
                                  vision_end_token_id=tid(VISION_END), tie_word_embeddings=False)
        cls = Qwen2_5_VLForConditionalGeneration
        improc = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    else:
        config = Qwen2Config(**text)
        cls, improc = Qwen2ForCausalLM, None
    config.get_text_config().pad_token_id = tid(PAD)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        torch.manual_seed(seed)
        model = cls(config).eval()
    model.generation_config.eos_token_id = tid(IM_END)
    model.generation_config.pad_token_id = tid(PAD)
    proc = Processor(tok, improc, kind, model.config)
    if path is not None:
        save(model, proc, path)
    return model, proc


# -----------------------------------------------------------------------------
# Training plumbing shared by sft.py and ahpo.py: processes, gradients, checkpoints, data

def dist_backend(device_type):
    """The process group's backend for a training device: gloo on CPU; on GPUs NCCL for CUDA
    tensors AND gloo for CPU ones. NCCL carries CUDA tensors only, and some reductions are of
    CPU values (token counts, metrics, objects): without the CPU entry they stop the run with
    "No backend type associated with device type cpu" at its first step."""
    return "gloo" if device_type == "cpu" else f"cpu:gloo,{device_type}:nccl"


def dist_init(device=None):
    """(rank, world, device) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (1 process if unset).
    The process group is dist_backend(device.type): gloo on CPU, "cpu:gloo,cuda:nccl" on GPUs."""
    import torch.distributed as dist
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(dist_backend(device.type))
    return rank, world, device


def dist_close():
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(x, world):
    """Sum a tensor (or a float) over ranks; returns the same type."""
    if world == 1:
        return x
    import torch.distributed as dist
    t = x if torch.is_tensor(x) else torch.tensor(float(x), dtype=torch.float64)
    t = t.clone()
    dist.all_reduce(t)
    return t if torch.is_tensor(x) else t.item()


def all_reduce_grads(params, world, bucket_mb=64):
    """Sum gradients over ranks, in flat buckets. Each rank's loss is already divided by the
    GLOBAL token count, so the sum is the gradient of one big batch: no DDP wrapper needed, and
    parameters a rank did not use (the vision tower on a text-only batch) simply count as 0."""
    if world == 1:
        return
    import torch.distributed as dist
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    limit = bucket_mb * 2 ** 20
    for p in params + [None]:
        if p is not None:
            bucket.append(p)
            size += p.grad.numel() * p.grad.element_size()
        if bucket and (p is None or size >= limit):
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat)
            off = 0
            for q in bucket:
                q.grad.copy_(flat[off:off + q.grad.numel()].view_as(q.grad))
                off += q.grad.numel()
            bucket, size = [], 0


def lr_at(step, total, lr, warmup):
    """Linear warmup for `warmup` steps, then cosine decay to 10% of lr at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


def rng_state():
    import random
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s):
    import random
    random.setstate(s["python"])
    torch.set_rng_state(s["torch"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(out, step, model, proc, trainer_state, keep=2, name=None):
    """out/step-N/ (or out/<name>/): a from_pretrained folder + trainer_state.pt for exact
    resume. Keeps the last `keep` step-N folders. Call on rank 0 only."""
    import shutil
    path = os.path.join(out, name or f"step-{step}")
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, proc, tmp)
    torch.save(trainer_state, os.path.join(tmp, "trainer_state.pt"))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)  # a crash mid-save never leaves a half-written step-N behind
    _prune(out, keep)
    return path


def trainable(model, freeze_vision=False, grad_checkpointing=False):
    """Put `model` in training mode (activation checkpointing only acts in it), optionally
    freeze the Qwen2.5-VL vision tower and recompute activations in backward; return the
    parameters to optimise."""
    model.train()
    visual = getattr(getattr(model, "model", None), "visual", None)
    if freeze_vision and visual is not None:
        visual.requires_grad_(False)
    if grad_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return [p for p in model.parameters() if p.requires_grad]


class MasterAdamW(torch.optim.Optimizer):
    """AdamW whose update is made on an fp32 master copy of each low-precision parameter.

    Why: with bf16 weights (the GPU default) the step lr * m / sqrt(v) ~ 1e-6 is far below half
    a bf16 ulp of a weight near 1e-2 (about 4e-5), so plain AdamW on bf16 parameters rounds every
    update away and the model never moves. Here the model keeps bf16 for compute; the optimizer
    keeps, per parameter, an fp32 `master`, `exp_avg` and `exp_avg_sq` (12 bytes), updates the
    master and writes it back rounded. fp32 parameters (CPU) are updated in place, no copy: the
    math is torch.optim.AdamW's (decoupled weight decay, bias correction). The state lives in
    self.state[param] like any optimizer's, so ZeRO-1 shards it and checkpoints carry it."""

    def __init__(self, params, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    st["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    if p.dtype != torch.float32:
                        st["master"] = p.detach().float()
                w = st.get("master", p)
                g = p.grad.float()
                st["step"] += 1
                t = st["step"].item()
                w.mul_(1 - lr * wd)
                st["exp_avg"].lerp_(g, 1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (st["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
                w.addcdiv_(st["exp_avg"], denom, value=-lr / (1 - b1 ** t))
                if w is not p:
                    p.copy_(w)

    def load_state_dict(self, state_dict):
        # torch casts loaded states to the parameter's dtype (bf16 here): put the fp32 ones back
        saved = {i: dict(s) for i, s in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for i, s in saved.items():
            p = params[int(i)]
            for k, v in s.items():
                if k != "step" and torch.is_tensor(v):
                    self.state[p][k] = v.to(p.device, torch.float32)


def make_optimizer(params, lr, weight_decay, zero, world):
    """MasterAdamW, with its states sharded over ranks (ZeRO-1) when `zero` and world > 1."""
    if zero and world > 1:
        from torch.distributed.optim import ZeroRedundancyOptimizer
        return ZeroRedundancyOptimizer(params, optimizer_class=MasterAdamW, lr=lr,
                                       weight_decay=weight_decay, betas=(0.9, 0.95))
    return MasterAdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))


def _shards(opt, world):
    """How many files hold the optimizer state: one per rank under ZeRO-1 (each rank owns a
    partition of the parameters' states), else one (every rank holds the same whole state)."""
    return world if world > 1 and hasattr(opt, "consolidate_state_dict") else 1


def _shard_file(path, rank, shards):
    return os.path.join(path, f"optimizer-{rank}-of-{shards}.pt")


def checkpoint(out, step, model, proc, opt, args, rank, world, keep=2):
    """Collective: every rank calls it. Writes out/step-N: rank 0 the model folder; each rank
    ITS OWN optimizer shard, optimizer-<rank>-of-<world>.pt under ZeRO-1 (else rank 0 the one
    whole state, optimizer-0-of-1.pt); last, rank 0 trainer_state.pt (step, every rank's RNG,
    args), which marks the folder complete, and moves it into place. No rank gathers another's
    shard: at 7B the whole fp32 master + m + v is ~100 GB, a ZeRO shard of 8 ~12 GB."""
    import shutil
    dist = torch.distributed
    path = os.path.join(out, f"step-{step}")
    tmp = path + ".tmp"
    rngs = [rng_state()]
    if world > 1:
        rngs = [None] * world
        dist.all_gather_object(rngs, rng_state())
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        save(model, proc, tmp)
    if world > 1:
        dist.barrier()
    shards = _shards(opt, world)
    if shards > 1:
        torch.save(opt.optim.state_dict(), _shard_file(tmp, rank, shards))  # the local MasterAdamW
    elif rank == 0:
        torch.save(opt.state_dict(), _shard_file(tmp, 0, 1))
    if world > 1:
        dist.barrier()
    if rank == 0:
        state = {"step": step, "rng": rngs, "args": dict(args), "world": world, "optimizer_shards": shards}
        torch.save(state, os.path.join(tmp, "trainer_state.pt"))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)  # a crash mid-save never leaves a half-written step-N behind
        _prune(out, keep)
    if world > 1:
        dist.barrier()


def _prune(out, keep):
    import shutil
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()))
    for s in steps[:-keep] if keep else []:
        shutil.rmtree(os.path.join(out, f"step-{s}"), ignore_errors=True)


def resume(path, opt, rank, world):
    """Load a step-N folder written by checkpoint(): this rank's optimizer shard (only it, memory
    mapped: host memory ~ the shard) and RNG. Returns the trainer state (step, args). A folder
    written by another number of ranks, or with/without ZeRO, is refused in one line: the
    ZeRO partition of the parameters and each rank's RNG stream depend on the world size."""
    st = torch.load(os.path.join(path, "trainer_state.pt"), weights_only=False)
    if "optimizer" in st:   # a checkpoint from before sharding: one consolidated state
        opt.load_state_dict(st["optimizer"])
    else:
        saved_world, shards = st["world"], st["optimizer_shards"]
        if (saved_world, shards) != (world, _shards(opt, world)):
            zero = lambda w, s: f"{w} rank{'s' * (w > 1)}" + (" with --zero" if s > 1 else "")  # noqa: E731
            raise SystemExit(f"error: {path}: written by {zero(saved_world, shards)}, this run has "
                             f"{zero(world, _shards(opt, world))}; resume it with the same, or pass --no-resume")
        sd = torch.load(_shard_file(path, rank if shards > 1 else 0, shards), map_location="cpu",
                        weights_only=False, mmap=True)
        (opt.optim if shards > 1 else opt).load_state_dict(sd)
    set_rng_state(st["rng"][rank] if isinstance(st["rng"], list) else st["rng"])
    return st


def latest_checkpoint(out):
    """The newest out/step-N folder with a trainer state, or None."""
    if not os.path.isdir(out):
        return None
    steps = sorted((int(d[5:]) for d in os.listdir(out) if d.startswith("step-") and d[5:].isdigit()
                    and os.path.exists(os.path.join(out, d, "trainer_state.pt"))))
    return os.path.join(out, f"step-{steps[-1]}") if steps else None


def read_traces(path):
    """Traces written by elicit.py -> (examples, problems). An example is the record with
    `prompt` (the messages before the last) and `completion` (the assistant text); image paths
    are resolved against the traces file's folder. Problems name file, line and field."""
    from tasks.records import jsonl_rows   # the JSONL reading every stage shares (no torch)
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
            _check(msgs[:-1])
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


def row_lengths(proc, prompts, completions=None, drop_images=False):
    """Token counts of prompts (with their image tokens), or of prompt + completion rows as
    train_batch builds them (a str completion gets its <|im_end|>): what --max-len must hold."""
    n = [len(encode(proc, p, None, True, drop_images)[0]) for p in prompts]
    if completions is None:
        return n
    return [k + len(proc.tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for k, c in zip(n, completions)]


def long_rows_by_task(examples, lengths, max_len):
    """{task: count} of the examples whose row is longer than max_len, and the longest row."""
    counts = {}
    for e, n in zip(examples, lengths):
        if n > max_len:
            t = e.get("task") or e.get("category") or "?"
            counts[t] = counts.get(t, 0) + 1
    return counts, max(lengths, default=0)


def open_metrics(path, start_step):
    """metrics.jsonl for appending after `start_step`: rows of steps a crash made after the
    last checkpoint are dropped, so a resumed run's file equals an uninterrupted run's."""
    keep = []
    if start_step and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= start_step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
    f = open(path, "w")
    f.writelines(keep)
    f.flush()
    return f


def default_lr(model, big, small, threshold=50_000_000):
    """`small` for toy models trained from scratch (tests, demos), `big` for real checkpoints."""
    n = sum(p.numel() for p in model.parameters())
    return small if n < threshold else big
