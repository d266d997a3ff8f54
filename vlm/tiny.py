"""
vlm/tiny.py -- a tiny offline model for tests, demos and the toy reproduction: a byte-level BPE
tokenizer trained on the spot on a few hundred sentences, and a randomly initialised
Qwen2.5-VL (or Qwen2 text model), saved with save_pretrained so that everything downstream
loads it by path as it would a real checkpoint. Nothing is downloaded.

    from vlm.tiny import make_tiny
    model, proc = make_tiny("runs/tiny")          # ~0.2M parameters, a from_pretrained folder
    model, proc = make_tiny("runs/tiny-text", kind="causal")
"""

import torch
from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Config,
                          Qwen2ForCausalLM, Qwen2VLImageProcessorPil)

from vlm.modelio import (CHAT_TEMPLATE, IM_END, IMAGE_PAD, PAD, SPECIAL_TOKENS, VIDEO_PAD, VISION_END, VISION_START,
                       Processor, save)


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
