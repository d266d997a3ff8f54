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

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2_5_VLForConditionalGeneration,
                          Qwen2VLImageProcessorPil)
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


def _vision_inputs(batch):
    return {k: batch[k] for k in ("pixel_values", "image_grid_thw") if batch.get(k) is not None}



# -----------------------------------------------------------------------------
# Log-probs for training (and for checking the sampler)

def _token_logp(head, h, targets, T, banned):
    """log p(target) and entropy for a chunk of hidden states: fp32 logits / T, vision masked."""
    z = mask_banned(head(h).float() / T, banned)
    logp = z.log_softmax(-1)
    ent = -(logp.exp() * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(-1)  # 0 * -inf -> 0
    return logp.gather(1, targets[:, None]).squeeze(1), ent


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
    for old-policy log-probs. `model`: a model, or a Policy (then its forward runs)."""
    if isinstance(model, Policy):
        return model(batch, temperature, chunk)
    return _logprobs(model, batch, temperature, chunk)


def _logprobs(model, batch, temperature, chunk, device=None):
    b = _to(batch, device or model.device)
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
