"""Tests for vlm.py on tiny offline models (built once per session from configs, no network).

What is checked: the hand-written sampler against model.generate (greedy, token for token),
the sampler's log-probs against logprobs() recomputation, one prefill for n samples, seeds,
mixed image / text-only batches, masked vision tokens, save/load round trips, train_batch masks,
and that Qwen2.5-VL's cached rope_deltas cannot leak into our calls.
"""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vlm  # noqa: E402

SEED = 1  # init seed of the tiny models: greedy outputs vary from token to token (checked below)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's
    waiting for a busy core makes their many small ops 10-100x slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(60, 80), (100, 50), (30, 30), (120, 120)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"{i}.png")
    vlm.make_tiny(str(root / "vl"), kind="qwen2_5_vl", seed=SEED)
    vlm.make_tiny(str(root / "lm"), kind="causal", seed=SEED)
    vl = vlm.load(str(root / "vl"))      # the real from_pretrained route
    lm = vlm.load(str(root / "lm"))
    return dict(root=root, vl=vl, lm=lm)


def user(*items):
    content = [{"type": "image", "image": x[1:]} if x.startswith("@") else {"type": "text", "text": x}
               for x in items]
    return [{"role": "user", "content": content}]


def mixed_chats():
    """Prompts of different lengths: three with an image (different sizes), one text-only."""
    return [
        user("@0.png", "Solve the maze. Put the answer in \\boxed{}."),
        [{"role": "system", "content": "You are a careful puzzle solver."},
         {"role": "user", "content": "Is 3 > 2? Answer Yes or No, then explain step by step why."}],
        user("Which way?", "@1.png", "up, down, left or right"),
        user("@3.png", "Count the cells."),
    ]


def text_chats():
    return [[{"role": "user", "content": "Solve puzzle %d: " % i + "move right left up down " * (i + 1)}]
            for i in range(4)]


def generate_greedy(model, proc, batch, n_new, eos_id):
    """model.generate's greedy tokens per row, cut after the first EOS (generate pads after it)."""
    kw = {}
    if batch["image_grid_thw"] is not None:
        kw = dict(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    if proc.kind == "qwen2_5_vl":  # generate needs token types to build 3-axis positions itself
        kw["mm_token_type_ids"] = (batch["input_ids"] == proc.image_token_id).int()
    with torch.no_grad():
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             do_sample=False, max_new_tokens=n_new, eos_token_id=eos_id,
                             pad_token_id=proc.pad_id, suppress_tokens=proc.banned_ids, **kw)
    rows = out[:, batch["input_ids"].shape[1]:].tolist()
    return [r[:r.index(eos_id) + 1] if eos_id in r else r for r in rows]


# -----------------------------------------------------------------------------
# chat format and batches

def test_tiny_tokenizer_and_chat_template(tiny):
    model, proc = tiny["vl"]
    tok = proc.tokenizer
    assert 512 <= len(tok) <= 1000
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    for t in vlm.SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(t) is not None and tok.tokenize(t) == [t]
    text = "<think> Wait, right left up down. </think> Yes No \\boxed{12}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    chat = [{"role": "system", "content": "S"}, *user("@0.png", "Q")]
    assert vlm.render(proc, chat) == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"
                                      "<|vision_start|><|image_pad|><|vision_end|>Q<|im_end|>\n"
                                      "<|im_start|>assistant\n")
    # without a tokenizer template the fixed Qwen format gives the same text
    saved, tok.chat_template = tok.chat_template, None
    try:
        assert vlm.render(proc, chat) == tok.apply_chat_template(
            [{"role": "system", "content": "S"}, {"role": "user", "content": [
                {"type": "image"}, {"type": "text", "text": "Q"}]}],
            tokenize=False, add_generation_prompt=True, chat_template=saved)
    finally:
        tok.chat_template = saved


def test_image_tokens_follow_grid(tiny):
    model, proc = tiny["vl"]
    ids, pv, grid = vlm.encode(proc, user("@0.png", "a", "@3.png", "b"), root=tiny["root"])
    assert grid.shape == (2, 3) and pv.shape[0] == int(grid.prod(-1).sum())
    counts = (grid.prod(-1) // proc.merge_size ** 2).tolist()
    tid = proc.tokenizer.convert_tokens_to_ids
    starts = [i for i, t in enumerate(ids) if t == tid("<|vision_start|>")]
    for s, c in zip(starts, counts):
        assert ids[s + 1:s + 1 + c] == [proc.image_token_id] * c and ids[s + 1 + c] == tid("<|vision_end|>")
    # the patch budget holds: 4 to 64 merged patches of 28 x 28 pixels
    assert all(4 <= c <= 64 for c in counts)
    # min/max pixels are configurable
    small = vlm.Processor(proc.tokenizer, proc.image_processor.__class__(**proc.image_processor.to_dict()),
                          "qwen2_5_vl", model.config, min_pixels=4 * 28 * 28, max_pixels=4 * 28 * 28)
    _, _, g = vlm.encode(small, user("@3.png", "x"), root=tiny["root"])
    assert int(g.prod()) // 4 == 4


def test_prompt_batch_left_pads_and_uses_model_rope_index(tiny):
    model, proc = tiny["vl"]
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    ids, mask = b["input_ids"], b["attention_mask"]
    assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).any()          # left padding
    assert ((ids == proc.pad_id) | (mask == 1)).all()
    mm = (ids == proc.image_token_id).int()
    ref, _ = model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=b["image_grid_thw"],
                                        attention_mask=mask)
    assert b["position_ids"].shape == (3, 4, ids.shape[1]) and torch.equal(b["position_ids"], ref)
    # the text-only row has plain positions on all three axes
    row = b["position_ids"][:, 1][:, mask[1].bool()]
    assert torch.equal(row, torch.arange(row.shape[1]).expand(3, -1))
    # text models: positions counted over non-pad tokens
    _, lproc = tiny["lm"]
    lb = vlm.prompt_batch(lproc, text_chats())
    m = lb["attention_mask"]
    assert torch.equal(lb["position_ids"], ((m.cumsum(-1) - 1) * m)) and lb["pixel_values"] is None


def test_text_model_rejects_images(tiny):
    _, proc = tiny["lm"]
    with pytest.raises(ValueError, match="text-only"):
        vlm.prompt_batch(proc, [user("@0.png", "hi")], root=tiny["root"])
    b = vlm.prompt_batch(proc, [user("@0.png", "hi")], root=tiny["root"], drop_images=True)
    assert proc.image_token_id not in b["input_ids"].tolist()[0]


def test_bad_inputs_say_what_is_wrong(tiny):
    _, proc = tiny["vl"]
    with pytest.raises(ValueError, match="role"):
        vlm.prompt_batch(proc, [[{"role": "robot", "content": "x"}]])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        vlm.prompt_batch(proc, [user("@nope.png", "x")], root=tiny["root"])
    with pytest.raises(ValueError, match="completions"):
        vlm.train_batch(proc, [user("x")], [])
    with pytest.raises(FileNotFoundError, match="local"):
        vlm.load(str(tiny["root"] / "no-such-model"))


def test_train_batch_masks(tiny):
    _, proc = tiny["vl"]
    tok = proc.tokenizer
    answer = "<think> up then left </think> \\boxed{up left}"
    # the second prompt contains the completion text itself: the mask must not be found by search
    prompts = [user("@0.png", "Which moves? Level 3"), user("Say: " + answer + " 3"), user("Which moves?")]
    comps = [answer, answer, [5 + 40, 7 + 40, proc.eos_id]]
    b = vlm.train_batch(proc, prompts, comps, root=tiny["root"])
    ids, mask, comp = b["input_ids"], b["attention_mask"], b["completion_mask"]
    assert (mask[:, 0] == 1).all()                                        # right padding
    want = tok(answer, add_special_tokens=False)["input_ids"] + [proc.eos_id]
    for i, c in enumerate([want, want, comps[2]]):
        n_prompt = len(vlm.encode(proc, prompts[i], tiny["root"])[0])
        assert ids[i][comp[i].bool()].tolist() == c
        assert comp[i].nonzero().squeeze(1).tolist() == list(range(n_prompt, n_prompt + len(c)))
        assert int(mask[i].sum()) == n_prompt + len(c)
    # changing prompt tokens (same length) does not move the completion
    b2 = vlm.train_batch(proc, [user("@0.png", "Which moves? Level 4"), user("Say: " + answer + " 5"),
                               prompts[2]], comps, root=tiny["root"])
    assert b2["input_ids"].shape == ids.shape and not torch.equal(b2["input_ids"], ids)
    assert torch.equal(b2["completion_mask"], comp)
    # max_len never cuts: a row that fits exactly is whole, one token more is an error
    n0 = len(vlm.encode(proc, prompts[2], tiny["root"])[0])
    n2 = n0 + len(comps[2])   # token ids: used as they are
    b3 = vlm.train_batch(proc, [prompts[2]], [comps[2]], root=tiny["root"], max_len=n2)
    assert b3["attention_mask"].sum() == n2
    with pytest.raises(ValueError, match="max_len"):
        vlm.train_batch(proc, [prompts[2]], [comps[2]], root=tiny["root"], max_len=n2 - 1)


# -----------------------------------------------------------------------------
# the sampler

@pytest.mark.parametrize("which", ["vl", "lm"])
def test_greedy_matches_generate(tiny, which):
    model, proc = tiny[which]
    chats = mixed_chats() if which == "vl" else text_chats()
    b = vlm.prompt_batch(proc, chats, root=tiny["root"])
    n_new = 24
    ref = generate_greedy(model, proc, b, n_new, proc.eos_id)
    for fast in (True, False):
        s = vlm.sample(model, proc, b, max_new_tokens=n_new, greedy=True, eos_ids=[proc.eos_id], fast=fast)
        assert s.ids == ref, f"fast={fast}"
    # the tiny model is not degenerate: rows differ and some row varies token to token
    assert len({tuple(r) for r in ref}) > 1 and max(len(set(r)) for r in ref) >= 5
    # rows that stop early: use a frequent token as EOS, so rows end at different steps and
    # finished rows are dropped from the cache mid-way
    counts = np.bincount(sum(ref, []))
    eos = int(counts.argmax())
    ref2 = generate_greedy(model, proc, b, n_new, eos)
    s2 = vlm.sample(model, proc, b, max_new_tokens=n_new, greedy=True, eos_ids=[eos])
    assert s2.ids == ref2
    assert len({len(r) for r in s2.ids}) > 1
    assert s2.finished == [r[-1] == eos for r in s2.ids] and s2.lengths == [len(r) for r in s2.ids]
    never = vlm.sample(model, proc, b, max_new_tokens=n_new, greedy=True, eos_ids=[eos], drop_finished=None)
    assert never.ids == s2.ids


def test_left_padding_does_not_change_a_row(tiny):
    model, proc = tiny["vl"]
    chats = mixed_chats()
    both = vlm.sample(model, proc, vlm.prompt_batch(proc, chats, root=tiny["root"]),
                      max_new_tokens=12, greedy=True)
    for i, c in enumerate(chats):
        alone = vlm.sample(model, proc, vlm.prompt_batch(proc, [c], root=tiny["root"]),
                           max_new_tokens=12, greedy=True)
        assert alone.ids[0] == both.ids[i]
        np.testing.assert_allclose(alone.logprobs[0], both.logprobs[i], atol=1e-5)


@pytest.mark.parametrize("which", ["vl", "lm"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_recomputation(tiny, which, temperature):
    model, proc = tiny[which]
    chats = mixed_chats() if which == "vl" else text_chats()
    n = 2
    s = vlm.sample(model, proc, vlm.prompt_batch(proc, chats, root=tiny["root"]), n=n,
                   max_new_tokens=16, temperature=temperature, top_k=200, top_p=0.95, seed=3)
    tb = vlm.train_batch(proc, [c for c in chats for _ in range(n)], s.ids, root=tiny["root"])
    with torch.no_grad():
        lp, ent = vlm.logprobs(model, tb, temperature=temperature, chunk=7)   # odd chunk on purpose
    comp = tb["completion_mask"].bool()
    got = lp[comp]
    want = torch.tensor([x for row in s.logprobs for x in row])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (lp[~comp] == 0).all() and (ent[comp] > 0).all() and torch.isfinite(ent).all()
    assert float(ent[comp].max()) <= np.log(len(proc.tokenizer)) + 1e-4


def test_logprobs_gradients_flow(tiny):
    model, proc = tiny["vl"]
    tb = vlm.train_batch(proc, mixed_chats()[:2], ["\\boxed{up}", "Yes"], root=tiny["root"])
    lp, ent = vlm.logprobs(model, tb, chunk=3)
    loss = -(lp * tb["completion_mask"]).sum() / tb["completion_mask"].sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.lm_head.weight.grad.abs().sum() > 0 and model.model.visual.merger.mlp[0].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    # same values as without grad (checkpointed chunks change memory, not numbers)
    with torch.no_grad():
        lp2, _ = vlm.logprobs(model, tb, chunk=1024)
    torch.testing.assert_close(lp.detach(), lp2, atol=1e-6, rtol=0)


def test_n_samples_share_one_prefill(tiny):
    model, proc = tiny["vl"]
    calls = []
    h = model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    try:
        b = vlm.prompt_batch(proc, [user("@0.png", "Solve it.")], root=tiny["root"])
        s = vlm.sample(model, proc, b, n=4, max_new_tokens=8, temperature=1.0, seed=0)
    finally:
        h.remove()
    assert len(calls) == 1
    assert len(s.ids) == 4 and s.n == 4 and len({tuple(r) for r in s.ids}) > 1


def test_seeds(tiny):
    model, proc = tiny["vl"]
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    a = vlm.sample(model, proc, b, n=2, max_new_tokens=10, seed=7)
    a2 = vlm.sample(model, proc, b, n=2, max_new_tokens=10, seed=7)
    c = vlm.sample(model, proc, b, n=2, max_new_tokens=10, seed=8)
    assert a.ids == a2.ids and a.logprobs == a2.logprobs
    assert a.ids != c.ids


def test_vision_tokens_are_never_sampled(tiny):
    model, proc = tiny["vl"]
    big = torch.zeros(model.lm_head.out_features)
    big[proc.image_token_id] = 50.0
    big[proc.tokenizer.convert_tokens_to_ids("<|vision_start|>")] = 40.0
    h = model.lm_head.register_forward_hook(lambda mod, inp, out: out + big)
    try:
        b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
        with torch.no_grad():  # the bias works: unmasked, <|image_pad|> is the argmax
            assert model(**{k: b[k] for k in ("input_ids", "attention_mask", "position_ids", "pixel_values",
                                              "image_grid_thw")}).logits[:, -1].argmax(-1).eq(
                proc.image_token_id).all()
        for kw in (dict(greedy=True), dict(temperature=1.0, seed=0), dict(temperature=2.0, seed=1, fast=False)):
            s = vlm.sample(model, proc, b, n=2, max_new_tokens=12, **kw)
            assert not set(proc.banned_ids) & set(sum(s.ids, [])), kw
            assert all(np.isfinite(x) for row in s.logprobs for x in row)
    finally:
        h.remove()


def test_rope_deltas_cannot_leak(tiny):
    model, proc = tiny["vl"]
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    s = vlm.sample(model, proc, b, max_new_tokens=8, greedy=True)
    tb = vlm.train_batch(proc, mixed_chats(), s.ids, root=tiny["root"])
    with torch.no_grad():
        lp, _ = vlm.logprobs(model, tb)
    # a previous generate() leaves its rope_deltas on the model; garbage ones must not matter
    generate_greedy(model, proc, vlm.prompt_batch(proc, [user("@2.png", "x")], root=tiny["root"]), 3, 2)
    assert model.model.rope_deltas is not None
    for stale in (model.model.rope_deltas, torch.tensor([[1234]])):
        model.model.rope_deltas = stale
        s2 = vlm.sample(model, proc, b, max_new_tokens=8, greedy=True)
        with torch.no_grad():
            lp2, _ = vlm.logprobs(model, tb)
        assert s2.ids == s.ids and torch.equal(lp, lp2)
    model.model.rope_deltas = None


def test_save_load_round_trip(tiny, tmp_path):
    model, proc = tiny["vl"]
    vlm.save(model, proc, str(tmp_path))
    model2, proc2 = vlm.load(str(tmp_path))
    assert proc2.kind == "qwen2_5_vl" and (proc2.min_pixels, proc2.max_pixels) == (proc.min_pixels, proc.max_pixels)
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    b2 = vlm.prompt_batch(proc2, mixed_chats(), root=tiny["root"])
    for k in ("input_ids", "attention_mask", "position_ids", "pixel_values", "image_grid_thw"):
        assert torch.equal(b[k], b2[k]), k
    args = {k: b[k] for k in ("input_ids", "attention_mask", "position_ids", "pixel_values", "image_grid_thw")}
    with torch.no_grad():
        assert torch.equal(model(**args).logits, model2(**args).logits)
    lm, lproc = tiny["lm"]
    vlm.save(lm, lproc, str(tmp_path / "lm"))
    lm2, lproc2 = vlm.load(str(tmp_path / "lm"))
    assert lproc2.kind == "causal" and lproc2.image_processor is None
    lb = vlm.prompt_batch(lproc2, text_chats())
    with torch.no_grad():
        assert torch.equal(lm(input_ids=lb["input_ids"]).logits, lm2(input_ids=lb["input_ids"]).logits)


def test_make_tiny_sizes_are_overridable(tmp_path):
    model, proc = vlm.make_tiny(str(tmp_path / "m"), kind="causal", hidden=96, layers=3, heads=6, kv_heads=2)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (96, 3, 6)
    vm, _ = vlm.make_tiny(None, kind="qwen2_5_vl", hidden=96, heads=4, layers=1)
    sec = vm.config.text_config.rope_parameters["mrope_section"]
    assert sum(sec) == 96 // 4 // 2
    with pytest.raises(ValueError, match="kind"):
        vlm.make_tiny(None, kind="llava")


def test_top_k_top_p_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(vlm.sampler._filter(logits, 1, 1.0)[0, 1:]).all()
    assert torch.isfinite(vlm.sampler._filter(logits, 2, 1.0)[0, :2]).all()
    kept = torch.isfinite(vlm.sampler._filter(logits, 0, 0.7)[0])          # p = .64, .24, .09, .03
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(vlm.sampler._filter(logits, 0, 0.5)[0]).tolist() == [True, False, False, False]


def test_positions_must_be_explicit(tiny):
    """Why every forward here passes position_ids: without them (and without mm_token_type_ids)
    transformers 5.24's Qwen2.5-VL silently uses 1-D positions that ignore the images' grid."""
    model, proc = tiny["vl"]
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    args = {k: b[k] for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw")}
    with torch.no_grad():
        ref = model(**args, position_ids=b["position_ids"]).logits
        implicit = model(**args).logits
        typed = model(**args, mm_token_type_ids=(b["input_ids"] == proc.image_token_id).int()).logits
    m = b["attention_mask"].bool()
    assert torch.equal(ref[m], typed[m]) and not torch.allclose(ref[m], implicit[m])
    model.model.rope_deltas = None


def test_sample_from_a_model_in_training(tiny):
    """ahpo.py samples between optimizer steps: train mode and gradient checkpointing (which
    turns transformers' cache off in train mode) must not change samples, and are restored."""
    model, proc = tiny["vl"]
    b = vlm.prompt_batch(proc, mixed_chats(), root=tiny["root"])
    ref = vlm.sample(model, proc, b, max_new_tokens=6, greedy=True)
    model.activation_checkpointing_enable()
    model.train()
    try:
        for fast in (True, False):
            assert vlm.sample(model, proc, b, max_new_tokens=6, greedy=True, fast=fast).ids == ref.ids
            assert model.training
    finally:
        model.activation_checkpointing_disable()
        model.eval()


# ---- the optimizer sft.py and ahpo.py share ----------------------------------------------------------
def _adam_run(opt_cls, dtype, steps=5, lr=1e-3, seed=0, same_grad=False):
    g = torch.Generator().manual_seed(seed)
    # bf16-exact start values, so fp32 and bf16 runs start from the same weights
    w = torch.nn.Parameter((torch.randn(64, 32, generator=g) * 0.02).to(torch.bfloat16).to(dtype))
    opt = opt_cls([w], lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    grad = torch.randn(w.shape, generator=g)
    for _ in range(steps):
        w.grad = (grad if same_grad else torch.randn(w.shape, generator=g)).to(dtype)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return w, opt


def test_master_adamw_is_adamw_on_fp32_parameters():
    ours, _ = _adam_run(vlm.MasterAdamW, torch.float32)
    ref, _ = _adam_run(torch.optim.AdamW, torch.float32)
    assert torch.allclose(ours, ref, atol=1e-7, rtol=1e-6)
    assert not torch.equal(ours, _adam_run(vlm.MasterAdamW, torch.float32, steps=0)[0])  # it did move


def test_master_adamw_moves_bf16_weights_that_plain_adamw_cannot():
    # lr 1e-6 (the real-run AHPO default) on weights near 0.02, a steady gradient: each update is
    # ~1e-6, under half a bf16 ulp (~4e-5), so torch's AdamW on bf16 parameters leaves all weights
    # but the few nearest zero bit-identical, although 200 steps add up to ~2e-4 (over an ulp).
    run = dict(steps=200, lr=1e-6, same_grad=True)
    start, _ = _adam_run(torch.optim.AdamW, torch.bfloat16, steps=0)
    plain, _ = _adam_run(torch.optim.AdamW, torch.bfloat16, **run)
    assert (plain != start).float().mean() < 0.05
    ours, opt = _adam_run(vlm.MasterAdamW, torch.bfloat16, **run)
    master = opt.state[ours]["master"]
    assert master.dtype == torch.float32 and ours.dtype == torch.bfloat16
    ref, _ = _adam_run(torch.optim.AdamW, torch.float32, **run)   # same (bf16-exact) grads in fp32
    # the master follows fp32 AdamW (grads were bf16-rounded in both runs: same values)
    assert torch.allclose(master, ref, atol=1e-6)
    assert torch.equal(ours, master.to(torch.bfloat16))            # the model holds the master, rounded
    assert (ours != start).float().mean() > 0.5                    # and after 200 steps it has moved


def test_master_adamw_state_round_trips_in_fp32(tmp_path):
    w, opt = _adam_run(vlm.MasterAdamW, torch.bfloat16, steps=3)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = vlm.MasterAdamW([w2], lr=1e-3, weight_decay=0.1)
    opt2.load_state_dict(torch.load(tmp_path / "opt.pt"))
    for k in ("master", "exp_avg", "exp_avg_sq"):
        assert opt2.state[w2][k].dtype == torch.float32
        assert torch.equal(opt2.state[w2][k], opt.state[w][k])
    for o, p in ((opt, w), (opt2, w2)):   # one more identical step on both
        p.grad = torch.ones_like(p)
        o.step()
    assert torch.equal(w, w2)


def test_master_adamw_keeps_the_state_names_of_torch_adamw():
    """A checkpoint moves between one process (MasterAdamW) and FSDP2 (torch.optim.AdamW on the fp32
    shards): the moments and the step go by the same names, and the master is the fp32 weight
    (vlm/training.py writes it as the model's weight)."""
    _, ours = _adam_run(vlm.MasterAdamW, torch.bfloat16, steps=2)
    _, theirs = _adam_run(torch.optim.AdamW, torch.float32, steps=2)
    (a,), (b,) = ours.state.values(), theirs.state.values()
    assert set(a) - {"master"} == set(b) and a["master"].dtype == torch.float32
    assert float(a["step"]) == float(b["step"]) == 2.0


def test_lr_schedules_and_the_default_lr_rule(tiny):
    lr = vlm.training.lr_at
    assert [lr(s, 10, 1.0, 2, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]   # warmup, then flat
    cos = [lr(s, 10, 1.0, 2, "cosine") for s in range(10)]
    assert cos[:2] == [0.5, 1.0] and cos[2] == 1.0 and all(a > b for a, b in zip(cos[2:], cos[3:]))
    assert lr(10, 10, 1.0, 0, "cosine") == pytest.approx(0.1)                            # down to 10%
    from harness import cli
    model, _ = tiny["vl"]   # well under 50M parameters: the toy rate, for sft and ahpo alike
    n = sum(p.numel() for p in model.parameters())
    assert cli.default_lr("sft", n) == cli.default_lr("ahpo", n) == 1e-3
    assert cli.default_lr("sft", 7_000_000_000) == 1e-5 and cli.default_lr("ahpo", 7_000_000_000) == 1e-6
    # the rule is written once: the --lr help of both stages says what default_lr does
    import ahpo
    import sft
    for stage, mod in (("sft", sft), ("ahpo", ahpo)):
        p = [a for a in _parser_actions(mod) if "--lr" in a.option_strings][0]
        assert f"default {cli.LR[stage]:g}" in p.help and f"{cli.TOY_LR:g} for a model under 50M" in p.help


def _parser_actions(mod):
    """The argparse actions of a stage's parser, read by parsing --help into a captured parser."""
    import argparse
    seen = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, argv=None, namespace=None):
        seen.extend(self._actions)
        return real(self, [], namespace)
    argparse.ArgumentParser.parse_args = capture
    try:
        mod.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = real
    return seen
