"""
vlm -- the model side of MM-HELIX, shared by elicit.py, sft.py, ahpo.py and evaluate.py; one
concern per file, each readable alone:

    vlm/sampler.py   KV-cached sampling: the cache as plain tensors, steps numbered 1-5, a
                     hand-written decode step, a self-check against generate (run the file)
    vlm/graphs.py    the decode step with fixed shapes, replayable as a CUDA graph (opt-in)
    vlm/modelio.py   load / save a model, the chat format, prompt and training batches,
                     per-token log-probs
    vlm/training.py  ranks and collectives, the run setup sft.py and ahpo.py share, lr
                     schedule, MasterAdamW (one process), FSDP2 on a device mesh (several),
                     DCP checkpoints that reshard, metrics.jsonl
    vlm/tiny.py      a tiny offline model (tokenizer trained on the spot, random weights)

The stages import the file they need (`from vlm import sampler`), so a reader knows where each
piece lives; the names below are the same functions, for short scripts and tests:

    import vlm
    vlm.make_tiny("runs/tiny")
    model, proc = vlm.load("runs/tiny")
    out = vlm.sample(model, proc, vlm.prompt_batch(proc, [chat]), n=5, temperature=1.0, seed=0)
"""
from vlm.modelio import (CHAT_TEMPLATE, IM_END, IM_START, IMAGE_PAD, PAD, SPECIAL_TOKENS,  # noqa: F401
                       VIDEO_PAD, VISION_END, VISION_START, VISION_TOKENS, Processor, completion_lengths,
                       context_length, encode, load, logprobs, prompt_batch, prompt_lengths, render, save, too_long,
                       train_batch)
from vlm.sampler import KVCache, Samples, sample  # noqa: F401
from vlm.tiny import make_tiny  # noqa: F401
from vlm.modelio import Policy  # noqa: F401
from vlm.training import (MasterAdamW, all_reduce_sum, dist_backend, dist_close, dist_init,  # noqa: F401
                          latest_checkpoint, lr_at, make_optimizer, open_metrics, rng_state, set_rng_state,
                          trainable)
