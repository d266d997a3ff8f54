"""
vlm/sampler.py -- KV-cached sampling of n completions per prompt, with the cache as plain tensors.

    python vlm/sampler.py        # self-check: greedy tokens against model.generate (tiny model)

    out = sample(model, proc, batch, n=5, max_new_tokens=256, temperature=1.0, seed=0)
    out.texts[i * 5 + j]         # sample j of prompt i

`batch` is a LEFT-padded prompt batch (vlm.modelio.prompt_batch): input_ids, attention_mask,
position_ids ((3, B, L) for Qwen2.5-VL's 3-axis rope, (B, L) for text models), and optionally
pixel_values / image_grid_thw. `proc` is read for four things only: eos_id, pad_id, banned_ids
(vision tokens, never sampled) and tokenizer (to decode). Nothing else of this project is
needed: the file imports only torch (and transformers in its self-check), so it can be copied
on its own, with graphs.py beside it for the static / CUDA-graph step.

The steps, numbered as in `sample` (nanochat's engine.py is the model to read alongside):
  1. prefill the prompts ONCE through the model's own forward: images go through the vision
     tower once per prompt, the 3-axis positions come in with the batch; its K/V are copied
     into a KVCache, plain tensors sized for prompt + max_new_tokens;
  2. repeat the cache rows n times (sample j of prompt i is row i*n + j);
  3. sample from softmax(logits / T) with vision tokens masked out, top-k / top-p optional;
  4. stop a row at EOS or max_new_tokens; once a quarter of the rows in the cache are done
     they are dropped from it, so finished rows stop costing compute;
  5. decode one token per row with explicit positions, and go to 3. Decoded token t gets
     (last prompt position + 1 + t) on every rope axis. Positions are per row, so left
     padding is harmless.

The one decision point: `hand_decoder(model)` says whether step 5 runs by hand (`decode_step`,
a loop over the model's own modules, for the types in DECODE_STEP_TYPES) or through the
model's forward with transformers' DynamicCache (any other causal LM; also `fast=False`).
Both give the same tokens; the hand-written one skips the forward's per-call machinery
(mask building, rope tables, output capture), which costs more than the maths on small models.

Simplifications (on purpose):
  - The reported log-prob of a token is log softmax(logits / T) over the full vocabulary minus
    the vision tokens, BEFORE top-k / top-p truncation: what training recomputes, so PPO ratios
    compare like with like. Greedy reports T = 1.
  - Memory for the longest possible row is taken up front (prompt + max_new_tokens).
  - No torch.compile, no paged cache, no continuous batching: rows that finish are dropped,
    but new prompts do not join a running batch.

Static shapes and CUDA graphs (vlm/graphs.py): `static=True` runs step 5 with every shape fixed
(attention over the whole capacity, the write column a device tensor); `graphs=True` replays
that step as a CUDA graph. Same tokens as the eager step in fp32 on CPU
(tests/test_sampler_static.py); the graph path has NOT yet run on a GPU, so it is off unless
asked for: graphs=True, or MMHELIX_CUDA_GRAPHS=1 in the environment for the stages' runs (it
is meant to become the default on CUDA once bench/cuda_stages.sh has measured it).
"""

import functools
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass
class Samples:
    ids: list        # list[list[int]] completion token ids per row, EOS included if produced
    texts: list      # list[str] decoded, special tokens skipped
    logprobs: list   # list[list[float]] log-prob of each sampled token (see the docstring)
    lengths: list    # list[int] number of completion tokens
    finished: list   # list[bool] True if the row ended with an EOS token
    n: int = 1       # samples per prompt: row r belongs to prompt r // n


class KVCache:
    """K and V of every layer: two tensors (layers, rows, kv_heads, capacity, head_dim), and
    `n`, the number of positions filled. Attention reads the view [..., :n, :]."""

    def __init__(self, k, v, n):
        self.k, self.v, self.n = k, v, n

    @classmethod
    def from_prefill(cls, past, capacity, repeats):
        """Copy the prefill's K/V (a transformers cache, one (B, H, Lp, D) pair a layer) into
        tensors with room for `capacity` positions, each row repeated `repeats` times (step 2)."""
        k0 = past.layers[0].keys
        B, H, Lp, D = k0.shape
        shape = (len(past.layers), B * repeats, H, capacity, D)
        # zeros, not garbage, in the columns not written yet: the static path reads them (with
        # weight exactly 0), and 0 * NaN would be NaN
        k, v = k0.new_zeros(shape), k0.new_zeros(shape)
        for i, layer in enumerate(past.layers):
            k[i, :, :, :Lp] = layer.keys.repeat_interleave(repeats, dim=0)
            v[i, :, :, :Lp] = layer.values.repeat_interleave(repeats, dim=0)
        return cls(k, v, Lp)

    def keep(self, rows):
        """Keep only these rows (finished rows leave, step 4); only the filled part is copied."""
        k, v = self.k.new_zeros(self.k[:, rows].shape), self.v.new_zeros(self.v[:, rows].shape)
        k[..., :self.n, :] = self.k[:, rows, :, :self.n]
        v[..., :self.n, :] = self.v[:, rows, :, :self.n]
        self.k, self.v = k, v


# Decoders whose one-token step is exactly decode_step: pre-norm, rotate-half rope on q and k,
# grouped-query sdpa, gated MLP. Llama differs from Qwen2 only in having no q/k/v biases, which
# the projections themselves carry (or not). Each is checked token for token against generate:
# Qwen2 / Qwen2.5-VL in tests/test_vlm.py, Llama (SmolLM2-135M) in tests/test_real_weights.py.
DECODE_STEP_TYPES = ("qwen2", "qwen2_5_vl_text", "llama")


def hand_decoder(model):
    """The text decoder if decode_step can run it by hand, else None (the fallback)."""
    base = model.base_model
    text = getattr(base, "language_model", base)  # Qwen2.5-VL nests its text model
    cfg = getattr(text, "config", None)
    ok = (cfg is not None and cfg.model_type in DECODE_STEP_TYPES
          # no sliding-window layers (Llama configs carry no layer_types: all full attention)
          and all(t == "full_attention" for t in getattr(cfg, "layer_types", None) or ())
          # rope tables are computed once per call: no rope that rescales with the length seen
          and text.rotary_emb.rope_type not in ("dynamic", "longrope"))
    return text if ok else None


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def decode_step(text, head, cache, tok, cos, sin, key_mask, col=None):
    """Step 5 by hand: one token per row through the decoder's own modules. tok (R, 1);
    cos, sin (R, 1, 1, head_dim) for this position. Two ways to use the cache:
      col=None: write this token's K/V at column cache.n of every layer, attend over the
        columns filled so far (key_mask (R, 1, 1, n + 1) bool), then advance cache.n;
      col a (1,) long tensor: write at that column (index_copy_, so the column may live on the
        device) and attend over the whole capacity, key_mask (R, 1, 1, capacity) hiding the
        columns not written yet; cache.n is left to the caller. Every shape is then the same
        at every step: what vlm/graphs.py captures in a CUDA graph."""
    R, t = tok.shape[0], cache.n
    x = text.embed_tokens(tok)
    for i, layer in enumerate(text.layers):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(R, 1, -1, a.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if col is None:
            cache.k[i, :, :, t:t + 1] = k
            cache.v[i, :, :, t:t + 1] = v
            k, v = cache.k[i, :, :, :t + 1], cache.v[i, :, :, :t + 1]
        else:
            k, v = cache.k[i].index_copy_(2, col, k), cache.v[i].index_copy_(2, col, v)
        # grouped-query attention without copying K/V: the query heads that share a K/V head
        # act as that head's queries (what transformers' sdpa path does for one token)
        q = q.reshape(R, k.shape[1], -1, a.head_dim)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, scale=a.scaling)
        x = x + a.o_proj(o.reshape(R, 1, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    if col is None:
        cache.n = t + 1
    return head(text.norm(x))[:, -1]


def mask_banned(logits, banned):
    """-inf at the banned ids (vision tokens): they are never sampled, and vlm/modelio.py's
    logprobs() masks them the same way, so training scores the distribution sampled from."""
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
           greedy=False, seed=None, eos_ids=None, drop_finished=0.25, fast=True, static=None, graphs=None,
           segment=None):
    """Sample n completions per prompt of a left-padded prompt batch; returns Samples, whose
    row i*n + j is sample j of prompt i. eos_ids: tokens that end a row (default: proc.eos_id
    and the model's generation_config EOS). drop_finished: finished rows leave the cache once
    they are this fraction of the rows in it (None: never). fast=False decodes through the
    model's own forward (the fallback) even where decode_step covers the architecture.
    static: decode with fixed shapes (vlm/graphs.py; same tokens, attention over the whole
    capacity); graphs: replay that step as a CUDA graph (not yet run on a GPU). Default: off;
    MMHELIX_CUDA_GRAPHS=1 turns both on for CUDA devices where decode_step covers the model.
    segment: finished
    rows are looked at (stop when all are done, drop) every `segment` steps; between those
    the GPU needs no host sync. Default 32 with graphs, else 1 (every step, as before)."""
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for argmax")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if n < 1 or max_new_tokens < 1:
        raise ValueError(f"need n >= 1 and max_new_tokens >= 1, got n={n}, max_new_tokens={max_new_tokens}")
    device = model.device
    b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    ids, mask, pos = b["input_ids"], b["attention_mask"], b["position_ids"]
    vision = {k: b[k] for k in ("pixel_values", "image_grid_thw") if b.get(k) is not None}
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
    text = hand_decoder(model) if fast else None   # the one decision point: by hand, or fallback
    if graphs is None:   # opt-in until measured on a GPU (see the module docstring)
        graphs = (os.environ.get("MMHELIX_CUDA_GRAPHS") == "1" and device.type == "cuda"
                  and text is not None and static is not False)
    static = graphs if static is None else static
    if graphs and (device.type != "cuda" or not static):
        raise ValueError(f"graphs=True needs a CUDA device and static=True (device {device}, static={static})")
    if static and text is None:
        raise ValueError(f"static=True needs fast=True and a model type in {DECODE_STEP_TYPES}")
    segment = (32 if graphs else 1) if segment is None else int(segment)
    if segment < 1:
        raise ValueError(f"segment must be >= 1, got {segment}")
    head = model.get_output_embeddings()

    # 1. prefill once; pixel_values enter here and only here. Positions are always explicit, so
    # the model never reads or writes model.model.rope_deltas (state it keeps between calls).
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                logits_to_keep=1, **vision)
    logits = out.logits[:, -1].float()
    # 2. n samples per prompt share the prefill: repeat the cache rows (row i*n + j)
    if text is not None:
        cache = KVCache.from_prefill(out.cache, Lp + max_new_tokens, n)
    else:
        cache = out.cache
        cache.batch_repeat_interleave(n)
    del out
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
    if static:  # vlm/graphs.py: undecoded columns start masked, the step unmasks its own
        try:                   # as vlm/sampler.py
            from .graphs import StaticDecoder
        except ImportError:    # this file copied alone, with graphs.py beside it
            from graphs import StaticDecoder
        fixed = keys.clone()
        fixed[:, Lp:] = False
        dec = StaticDecoder(decode_step, text, head, cache, fixed, cos, sin, Lp, graphs=graphs)

    live = torch.arange(R, device=device)              # global row of each cache row
    done = torch.zeros(R, dtype=torch.bool, device=device)
    tokens = torch.full((R, max_new_tokens), proc.pad_id, dtype=torch.long, device=device)
    logps = torch.zeros(R, max_new_tokens, device=device)
    steps = 0
    for t in range(max_new_tokens):
        # 3. the distribution actually sampled from: logits / T, vision tokens masked
        logp = mask_banned(logits / T if T != 1.0 else logits, banned).log_softmax(-1)
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
        # inside a segment, finished rows decode on (cut at their EOS below) and nothing syncs
        if steps % segment == 0 or steps == max_new_tokens:
            finished = done[live]
            n_finished = int(finished.sum())
            if steps == max_new_tokens or n_finished == len(live):
                break
            # 4. drop finished rows from the cache once they are a good fraction of it: a drop
            # copies the cache once; a finished row left in costs its share of every step
            if drop_finished is not None and n_finished >= max(1.0, drop_finished * len(live)):
                idx = (~finished).nonzero().squeeze(1)
                if static:
                    dec.keep(idx)
                elif text is not None:
                    cache.keep(idx)
                    cos, sin = cos[idx], sin[idx]
                else:
                    cache.batch_select_indices(idx)
                live, tok, keys, dec_pos = live[idx], tok[idx], keys[idx], dec_pos[..., idx, :]
        # 5. one decode step with explicit per-row positions (the same value on all 3 axes)
        if static:
            logits = dec(tok, t)
        elif text is not None:
            logits = decode_step(text, head, cache, tok[:, None], cos[:, :, t:t + 1], sin[:, :, t:t + 1],
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
# Self-check (nanochat-style): python vlm/sampler.py

def _self_check():
    """Greedy tokens of every decode path (decode_step, the model's forward, the static step)
    against model.generate, on tiny random models built from configs: a Qwen2, and a Qwen2.5-VL
    on text prompts (3-axis positions); two left-padded prompts. It imports only torch and
    transformers, so it runs wherever this file is copied (graphs.py beside it for the static
    step). Prints one line per case and fails loudly on a mismatch."""
    from types import SimpleNamespace

    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Config,
                              Qwen2ForCausalLM)
    V, pad, eos, vision = 96, 0, 1, [92, 93, 94, 95]          # vision: start, end, image, video
    text = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
                tie_word_embeddings=False)
    torch.manual_seed(0)
    models = {
        "qwen2": Qwen2ForCausalLM(Qwen2Config(**text)),
        "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            text_config={**text, "rope_parameters": dict(rope_type="default", rope_theta=1e4, mrope_section=[2, 1, 1])},
            vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=1, out_hidden_size=32,
                               fullatt_block_indexes=[0]),
            vision_start_token_id=vision[0], vision_end_token_id=vision[1], image_token_id=vision[2],
            video_token_id=vision[3], tie_word_embeddings=False)),
    }
    decode = lambda rows, skip_special_tokens=True: [" ".join(map(str, r)) for r in rows]  # noqa: E731
    proc = SimpleNamespace(eos_id=eos, pad_id=pad, banned_ids=vision, tokenizer=SimpleNamespace(batch_decode=decode))
    ids = torch.tensor([[5, 17, 33, 48, 9], [pad, pad, 21, 60, 7]])
    mask = (ids != pad).long()
    pos = (mask.cumsum(-1) - 1).clamp(min=0) * mask
    for kind, model in models.items():
        model.eval()
        kw = {"mm_token_type_ids": torch.zeros_like(ids)} if kind == "qwen2_5_vl" else {}
        # generate builds 3-axis positions itself; the sampler never samples vision tokens, so
        # generate is told to suppress them too
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False,
                             eos_token_id=eos, pad_token_id=pad, suppress_tokens=vision, **kw)[:, ids.shape[1]:].tolist()
        ref = [r[:r.index(eos) + 1] if eos in r else r for r in ref]
        batch = dict(input_ids=ids, attention_mask=mask,
                     position_ids=pos[None].expand(3, -1, -1) if kind == "qwen2_5_vl" else pos)
        for fast, static in ((True, False), (False, False), (True, True)):
            got = sample(model, proc, batch, max_new_tokens=16, greedy=True, eos_ids=[eos], fast=fast,
                         static=static).ids
            path = "static step" if static else "decode_step" if fast else "model forward"
            print(f"{kind:>10} {path:<13}: greedy tokens {'equal' if got == ref else 'DIFFER from'} generate's "
                  f"({sum(map(len, got))} tokens over {len(got)} rows)")
            assert got == ref, (got, ref)


if __name__ == "__main__":
    _self_check()
