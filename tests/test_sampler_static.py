"""The static decode path (vlm/graphs.py) on CPU, in fp32: the same tokens as the eager sampler
and model.generate, with images, left padding, n > 1, and rows that finish at different steps.

The CUDA-graph replay itself needs a GPU (bench/sampler.py, bench/cuda_stages.sh); what it
relies on is checked here: the step is idempotent (warm-up and capture run the current step
again) and every tensor it touches has the same shape at every step of a segment.
"""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vlm  # noqa: E402
from test_vlm import generate_greedy, mixed_chats, one_thread, text_chats, tiny  # noqa: E402,F401
from vlm.graphs import StaticDecoder  # noqa: E402

# Tolerance on log-probs, static against eager. The two run the same operations on the same
# values except attention: the static step attends over the whole capacity (prompt +
# max_new_tokens) with the unwritten columns masked, the eager one over the filled columns only.
# Masked columns get weight exactly 0, but the softmax sums and the weighted sum over V run over
# longer rows, so they are added in a different order: a few ulps (fp32 eps 1.2e-7) per attention
# output, carried through the layers to log-probs of magnitude up to ~10 (log of the vocabulary
# plus the logit spread). 1e-5 is ~10 ulps at that magnitude, and it is the tolerance
# tests/test_vlm.py already accepts between the sampler and vlm.logprobs' recomputation, the
# quantity training uses. Sampled tokens must be EQUAL: a perturbation of ~1e-7 in a probability
# flips a multinomial draw only if the uniform falls within ~1e-7 of a bin edge.
LOGP_ATOL = 1e-5


def setup(tiny, which):
    model, proc = tiny[which]
    chats = mixed_chats() if which == "vl" else text_chats()
    return model, proc, vlm.prompt_batch(proc, chats, root=tiny["root"])


def frequent_eos(model, proc, batch, k):
    """The k most frequent greedy tokens, used as EOS so rows end at different, early steps."""
    ref = generate_greedy(model, proc, batch, 24, proc.eos_id)
    return [int(x) for x in np.argsort(-np.bincount(sum(ref, [])))[:k]]


@pytest.fixture
def keeps(monkeypatch):
    """Counts StaticDecoder.keep calls: proof that rows were dropped between segments."""
    calls = []
    orig = StaticDecoder.keep
    monkeypatch.setattr(StaticDecoder, "keep", lambda self, rows: (calls.append(len(rows)), orig(self, rows))[1])
    return calls


@pytest.mark.parametrize("which", ["vl", "lm"])
def test_static_greedy_matches_eager_and_generate(tiny, which, keeps):
    model, proc, b = setup(tiny, which)
    ref = generate_greedy(model, proc, b, 24, proc.eos_id)
    st = vlm.sample(model, proc, b, max_new_tokens=24, greedy=True, eos_ids=[proc.eos_id], static=True)
    assert st.ids == ref
    # rows that finish at different steps; dropped at segment ends (segment 1: every step)
    eos = frequent_eos(model, proc, b, 2)
    ref2 = [r[:next((i + 1 for i, x in enumerate(r) if x in eos), len(r))]
            for r in generate_greedy(model, proc, b, 24, eos[0])]   # generate stops at one id only
    for segment in (1, 5):
        keeps.clear()
        s = vlm.sample(model, proc, b, max_new_tokens=24, greedy=True, eos_ids=eos, static=True, segment=segment)
        assert s.ids == ref2, segment
        assert keeps, "no row was dropped: the test does not cover compaction"
    assert len({len(r) for r in ref2}) > 1 and min(len(r) for r in ref2) < 20
    masked = vlm.sample(model, proc, b, max_new_tokens=24, greedy=True, eos_ids=eos, static=True,
                        drop_finished=None)
    assert masked.ids == ref2 and masked.finished == [r[-1] in eos for r in ref2]


@pytest.mark.parametrize("which", ["vl", "lm"])
@pytest.mark.parametrize("segment", [1, 4])
def test_static_seeded_sampling_matches_eager(tiny, which, segment, keeps):
    """n > 1, top-k / top-p, rows finishing and being dropped: the same draws in the same order."""
    model, proc, b = setup(tiny, which)
    kw = dict(n=3, max_new_tokens=30, temperature=0.8, top_k=300, top_p=0.97, seed=5,
              eos_ids=frequent_eos(model, proc, b, 6), segment=segment)
    eager = vlm.sample(model, proc, b, **kw)
    static = vlm.sample(model, proc, b, static=True, **kw)
    assert keeps, "no row was dropped: the test does not cover compaction"
    assert static.ids == eager.ids and static.finished == eager.finished
    assert len(set(eager.lengths)) > 2
    got = np.array([x for r in static.logprobs for x in r])
    want = np.array([x for r in eager.logprobs for x in r])
    np.testing.assert_allclose(got, want, atol=LOGP_ATOL, rtol=0)


def test_static_is_the_default_eager_with_segment_1(tiny):
    """The CPU default stays the eager path, bit for bit (bench/fixed_seed.py checks it too)."""
    model, proc, b = setup(tiny, "lm")
    a = vlm.sample(model, proc, b, n=2, max_new_tokens=10, seed=3)
    c = vlm.sample(model, proc, b, n=2, max_new_tokens=10, seed=3, static=False, graphs=False, segment=1)
    assert a.ids == c.ids and a.logprobs == c.logprobs


def test_static_step_is_idempotent(tiny):
    """What capture relies on: warm-up and capture run the current step again, which must
    change nothing (same logits, same K/V, same key mask)."""
    model, proc, b = setup(tiny, "vl")
    seen = []
    orig = StaticDecoder.__call__

    def twice(self, tok, t):
        out = orig(self, tok, t).clone()
        k, v, keys = self.cache.k.clone(), self.cache.v.clone(), self.keys.clone()
        again = orig(self, tok, t)
        seen.append(torch.equal(out, again) and torch.equal(k, self.cache.k) and torch.equal(v, self.cache.v)
                    and torch.equal(keys, self.keys))
        return again
    StaticDecoder.__call__ = twice
    try:
        s = vlm.sample(model, proc, b, max_new_tokens=12, greedy=True, eos_ids=[], static=True)
    finally:
        StaticDecoder.__call__ = orig
    assert len(seen) == 11 and all(seen)
    assert s.ids == vlm.sample(model, proc, b, max_new_tokens=12, greedy=True, eos_ids=[]).ids


def test_static_shapes_do_not_change_between_steps(tiny):
    """A graph replays the shapes it recorded: every module's inputs keep one shape per call."""
    model, proc, b = setup(tiny, "lm")
    shapes, decoding = {}, []

    def record(name):
        def hook(mod, inp, out):   # returns None: a forward hook's return value replaces the output
            if decoding:
                shapes.setdefault(name, set()).add(tuple(tuple(x.shape) for x in inp if torch.is_tensor(x)))
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    orig = StaticDecoder.__call__

    def flagged(self, tok, t):
        decoding.append(t)
        return orig(self, tok, t)
    StaticDecoder.__call__ = flagged
    try:
        vlm.sample(model, proc, b, max_new_tokens=12, greedy=True, eos_ids=[], static=True, drop_finished=None)
    finally:
        StaticDecoder.__call__ = orig
        for h in hooks:
            h.remove()
    assert len(decoding) == 11 and shapes and all(len(s) == 1 for s in shapes.values()), shapes


def test_flags_say_what_is_wrong(tiny):
    model, proc, b = setup(tiny, "lm")
    with pytest.raises(ValueError, match="CUDA device"):
        vlm.sample(model, proc, b, max_new_tokens=2, graphs=True)
    with pytest.raises(ValueError, match="fast=True"):
        vlm.sample(model, proc, b, max_new_tokens=2, static=True, fast=False)
    with pytest.raises(ValueError, match="segment"):
        vlm.sample(model, proc, b, max_new_tokens=2, segment=0)
