"""MM-HELIX as an RL environment (issue 35): synth.py --export (harness/export.py) and the reward
functions of tasks/reward.py, on every task.

One tiny benchmark (42 tasks x levels 1 and 5, one instance each, with images) is generated
and exported once; its rows are read back as the engines read them (pyarrow, `datasets`) and
scored through verl_score, easyr1_score and trl_reward. TRL's own trainer runs in
tests/test_rl_trl.py (slow), verl's own dataset class in tests/test_rl_verl.py (slow, when a
verl venv exists).
"""
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("datasets", reason="the export's optional packages: pip install --no-deps -r requirements-test.txt")
pytest.importorskip("pyarrow", reason="the export's optional packages: pip install --no-deps -r requirements-test.txt")

from test_response_styles import wrong  # noqa: E402   # a rule-breaking answer in the gold's own spelling

import synth  # noqa: E402
from harness import export as ex  # noqa: E402
from tasks import TASKS, build_prompt, record_images, score  # noqa: E402
from tasks import reward as rw  # noqa: E402
from snapshot import snapshot  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = sorted(TASKS)


def _copy_records(src, dst, images=True):
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "records.jsonl"), dst)
    if images:
        shutil.copytree(os.path.join(src, "images"), os.path.join(dst, "images"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """gen/: generated with --export verl,easyr1,hf; again/: the same records exported from the
    existing folder (--export-only); text/: the same records exported text-only."""
    d = tmp_path_factory.mktemp("rl")
    synth.main(["--out", str(d / "gen"), "--levels", "1,5", "--count", "1", "--workers", "2", "--quiet",
                "--export", "verl,easyr1,hf"])
    _copy_records(d / "gen", d / "again")
    synth.main(["--out", str(d / "again"), "--export", "hf,verl,easyr1", "--export-only", "--quiet"])
    _copy_records(d / "gen", d / "text", images=False)
    ex.export(str(d / "text"), ["verl", "easyr1", "hf"], text_only=True)
    recs = [json.loads(line) for line in open(d / "gen" / "records.jsonl")]
    return d, recs


def _parquet(path):
    import pyarrow.parquet as pq
    return pq.read_table(path).to_pylist()


def _hf(path):
    import datasets
    return datasets.load_from_disk(str(path))


@pytest.fixture(scope="module")
def rows(world):
    """Every format's rows as plain Python (images as raw bytes), by record id."""
    d, _ = world
    out = {}
    for mode, folder in (("image", "gen"), ("text", "text")):
        verl = _parquet(d / folder / "verl.parquet")
        easy = _parquet(d / folder / "easyr1.parquet")
        hf = _hf(d / folder / "hf").with_format("arrow")[:].to_pylist()   # arrow: images stay bytes
        out[mode] = {"verl": {r["extra_info"]["id"]: r for r in verl},
                     "easyr1": {r["id"]: r for r in easy},
                     "hf": {r["id"]: r for r in hf}}
    return out


def test_every_task_is_exported_once_a_record_in_file_order(world, rows):
    d, recs = world
    assert {r["task"] for r in recs} == set(TASKS) and len(recs) == 2 * len(TASKS)
    ids = [r["id"] for r in recs]
    for mode in ("image", "text"):
        for fmt in ("verl", "easyr1", "hf"):
            assert list(rows[mode][fmt]) == ids, (mode, fmt)
    verl = _parquet(d / "gen" / "verl.parquet")
    assert [r["extra_info"]["index"] for r in verl] == list(range(len(recs)))


@pytest.mark.parametrize("name", NAMES)
def test_gold_scores_1_wrong_and_random_score_0_through_each_engine_function(name, world, rows):
    _, recs = world
    rng = random.Random(name)
    for rec in (r for r in recs if r["task"] == name):
        gold = f"<think>Check every rule.</think> The answer is \\boxed{{{rec['answer']}}}."
        bad = f"\\boxed{{{wrong(name, rec['answer'])}}}"
        junk = [rng.randbytes(300), rng.randbytes(2000).decode("latin-1"), "", None, 7, ["\\boxed{"]]
        for mode in ("image", "text"):
            v, e, h = (rows[mode][f][rec["id"]] for f in ("verl", "easyr1", "hf"))
            gt_v, gt_e, gt_h = v["reward_model"]["ground_truth"], e["answer"], h["ground_truth"]
            assert gt_v == gt_e == gt_h == rw.ground_truth(rec)        # the whole record travels
            assert v["data_source"] == f"mm-helix/{name}" and v["reward_model"]["style"] == "rule"
            assert v["extra_info"]["level"] == e["level"] == h["level"] == rec["difficulty"]
            for reply, want in [(gold, 1.0), (bad, 0.0)] + [(j, 0.0) for j in junk]:
                assert rw.verl_score(v["data_source"], reply, gt_v, v["extra_info"]) == want, (mode, reply)
                one = {"response": reply, "response_length": 9, "ground_truth": gt_e}
                assert rw.easyr1_score(one) == {"overall": want, "accuracy": want}
                assert rw.easyr1_score([one, one]) == [{"overall": want, "accuracy": want}] * 2
                assert rw.trl_reward([reply], ground_truth=[gt_h], id=[h["id"]]) == [want]
                # TRL's conversational completions: a list of assistant messages
                assert rw.trl_reward([[{"role": "assistant", "content": reply}]], ground_truth=[gt_h]) == [want]
                assert want == float(score(reply, rec))


@pytest.mark.parametrize("name", NAMES)
def test_row_images_are_the_records_png_bytes_and_prompts_are_the_projects(name, world, rows):
    d, recs = world
    for rec in (r for r in recs if r["task"] == name):
        pngs = []
        for p in record_images(rec, str(d / "gen")):
            with open(p, "rb") as f:
                pngs.append(f.read())
        assert len(pngs) == TASKS[name].n_images
        v, e, h = (rows["image"][f][rec["id"]] for f in ("verl", "easyr1", "hf"))
        for row in (v, e, h):
            assert [im["bytes"] for im in row["images"]] == pngs
            assert all(im["path"] is None for im in row["images"])
        # verl and EasyR1: one <image> per image, first, as our own prompt puts them; then the prompt
        assert v["prompt"] == [{"role": "user", "content": "<image>" * len(pngs) + build_prompt(rec)}]
        assert e["problem"] == "<image>" * len(pngs) + build_prompt(rec)
        assert h["prompt"] == [{"role": "user", "content": build_prompt(rec)}]
        # text-only: question_text, no images anywhere
        tv, te, th = (rows["text"][f][rec["id"]] for f in ("verl", "easyr1", "hf"))
        text = build_prompt(rec, text_only=True)
        assert rec["question_text"].rstrip() in text
        assert tv["prompt"][0]["content"] == te["problem"] == th["prompt"][0]["content"] == text
        assert "images" not in tv and "images" not in te and "images" not in th


def test_export_is_deterministic_and_the_same_from_an_existing_folder(world):
    d, _ = world
    gen, again = snapshot(d / "gen"), snapshot(d / "again")
    outs = [p for p in gen if p.endswith(".parquet") or p.startswith("hf" + os.sep)]
    assert {"verl.parquet", "easyr1.parquet", os.path.join("hf", "state.json")} <= set(outs)
    assert all(gen[p] == again[p] for p in outs), [p for p in outs if gen[p] != again.get(p)]
    # and a second export over the first writes the same bytes, leaving no temporary behind
    ex.export(str(d / "again"), ["verl", "easyr1", "hf"])
    assert snapshot(d / "again") == again


def test_verl_parquet_reads_back_with_the_nested_types_verl_uses(world):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    d, recs = world
    schema = pq.read_schema(d / "gen" / "verl.parquet")
    s = pa.string()
    assert schema.field("data_source").type == s and schema.field("ability").type == s
    assert schema.field("prompt").type == pa.list_(pa.struct([("role", s), ("content", s)]))
    assert schema.field("images").type == pa.list_(pa.struct([("bytes", pa.binary()), ("path", s)]))
    assert schema.field("reward_model").type == pa.struct([("style", s), ("ground_truth", s)])
    info = schema.field("extra_info").type
    assert {info.field(k).type for k in ("id", "task", "answer")} == {s}
    assert info.field("index").type == info.field("level").type == pa.int64()
    # as verl reads it: datasets.load_dataset("parquet"), images decoded to PIL (the Image feature)
    ds = datasets.load_dataset("parquet", data_files=str(d / "gen" / "verl.parquet"), split="train",
                               cache_dir=str(d / "hf-cache"))
    assert len(ds) == len(recs)
    assert isinstance(ds.features["images"].feature, datasets.Image)
    row = ds[0]
    assert row["reward_model"]["style"] == "rule" and row["extra_info"]["id"] == recs[0]["id"]
    assert row["prompt"][0]["role"] == "user" and isinstance(row["prompt"][0]["content"], str)
    from PIL import Image
    with Image.open(record_images(recs[0], str(d / "gen"))[0]) as im:
        assert row["images"][0].size == im.size
    # the hf folder: TRL's conversational prompt, a list of datasets.Image
    hf = _hf(d / "gen" / "hf")
    assert isinstance(hf.features["images"].feature, datasets.Image)
    assert hf[0]["prompt"] == [{"role": "user", "content": build_prompt(recs[0])}]
    easy = pq.read_schema(d / "gen" / "easyr1.parquet")
    assert easy.names[:3] == ["problem", "answer", "images"]


# ---- the ground truth's version: refused, never mis-scored ---------------------------------------------
def test_a_row_of_another_format_is_refused_in_one_line_by_each_function(world):
    _, recs = world
    rec = recs[0]
    gold = f"\\boxed{{{rec['answer']}}}"
    other = json.dumps({"format": "mm-helix/0", "record": rec})
    calls = [lambda gt: rw.verl_score("mm-helix/x", gold, gt, {}),
             lambda gt: rw.easyr1_score({"response": gold, "response_length": 3, "ground_truth": gt}),
             lambda gt: rw.easyr1_score([{"response": gold, "response_length": 3, "ground_truth": gt}]),
             lambda gt: rw.trl_reward([gold], ground_truth=[gt])]
    for call in calls:
        assert call(rw.ground_truth(rec)) in (1.0, {"overall": 1.0, "accuracy": 1.0},
                                               [{"overall": 1.0, "accuracy": 1.0}], [1.0])
        with pytest.raises(rw.GroundTruthError) as e:
            call(other)
        msg = str(e.value)
        assert "\n" not in msg and "'mm-helix/0'" in msg and rec["id"] in msg and rw.FORMAT in msg
        # not an MM-HELIX row at all: the gold string alone, another engine's data
        for foreign in (rec["answer"], json.dumps({"answer": rec["answer"]}), None, b"\x00\xff"):
            with pytest.raises(rw.GroundTruthError, match="not an MM-HELIX export row"):
                call(foreign)
    with pytest.raises(rw.GroundTruthError, match="no 'ground_truth' column"):
        rw.trl_reward([gold], id=[rec["id"]])


def test_completion_text_reads_assistant_turns_only():
    gold_rec = {"task": "lis", "initial_state": "[1]"}
    assert rw.completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                                  {"type": "image"}, {"type": "text", "text": "b"}]}]) == "a\nb"
    # a tool's output holding a box is not the model's answer
    convo = [{"role": "assistant", "content": "let me look"}, {"role": "tool", "content": "\\boxed{1}"}]
    assert rw.completion_text(convo) == "let me look"
    assert rw.trl_reward([convo], ground_truth=[rw.ground_truth(gold_rec)]) == [0.0]
    assert rw.trl_reward([convo + [{"role": "assistant", "content": "\\boxed{1}"}]],
                         ground_truth=[rw.ground_truth(gold_rec)]) == [1.0]
    for odd in (None, 3, [None, 4], [{"content": object()}], {"role": "assistant", "content": "\\boxed{1}"}):
        assert isinstance(rw.completion_text(odd), str)


# ---- imports: no torch, and loadable by file path as verl and EasyR1 load a reward function ---------------
def _fresh(code, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_reward_loads_by_file_path_from_anywhere_without_torch(tmp_path):
    """verl (custom_reward_function.path) and EasyR1 (reward_function=PATH:NAME) import the file by
    path, under a module name of their own, from their own working directory."""
    path = os.path.join(ROOT, "tasks", "reward.py")
    gt = rw.ground_truth({"task": "lis", "initial_state": "[3, 1, 2]"})
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('custom_reward_fn', {path!r})\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['custom_reward_fn'] = m\n"
            "spec.loader.exec_module(m)\n"
            f"print(m.verl_score('mm-helix/lis', '\\\\boxed{{2}}', {gt!r}), "
            f"m.easyr1_score([{{'response': 'no', 'response_length': 1, 'ground_truth': {gt!r}}}]), "
            "any(k == 'torch' or k.startswith('torch.') for k in sys.modules))\n")
    p = _fresh(code, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split("\n")[0] == "1.0 [{'overall': 0.0, 'accuracy': 0.0}] False"


def test_export_module_imports_no_datasets_pyarrow_or_torch_until_an_export_runs():
    p = _fresh("import sys; from harness import export; import tasks.reward; "
               "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'datasets', 'pyarrow')))", ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]"


def test_a_missing_package_is_one_line_naming_it(world, monkeypatch, capsys):
    d, _ = world
    monkeypatch.setitem(sys.modules, "datasets", None)     # what an environment without it does
    before = snapshot(d / "text")
    with pytest.raises(ex.ExportError, match="needs the 'datasets' package") as e:
        ex.export(str(d / "text"), ["hf"], text_only=True)
    assert "\n" not in str(e.value)
    with pytest.raises(SystemExit) as e:                 # synth.py: before it generates anything
        synth.main(["--out", str(d / "none"), "--export", "verl", "--quiet"])
    assert "needs the 'datasets' package" in str(e.value.code) and not (d / "none").exists()
    assert snapshot(d / "text") == before


# ---- bad input: one line, the exit code, nothing written --------------------------------------------
def _synth(cwd, *args):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "synth.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _one_line(p, *words):
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    assert [ln for ln in p.stderr.splitlines() if all(w in ln for w in words)], p.stderr[-2000:]


def _refused(capsys, *argv):
    """synth.main in this process (a subprocess costs seconds of imports): (exit code, stderr)."""
    with pytest.raises(SystemExit) as e:
        synth.main(list(argv))
    err = capsys.readouterr().err
    if isinstance(e.value.code, str):      # sys.exit("error: ..."): printed by the interpreter, exit 1
        return 1, err + e.value.code
    return e.value.code, err


def _has_line(err, *words):
    assert [ln for ln in err.splitlines() if all(w in ln for w in words)], err[-2000:]


def test_a_broken_line_names_the_file_and_line_and_writes_nothing(world, tmp_path):
    """As a user runs it (a subprocess): exit 1, one line, no traceback, no file touched."""
    d, recs = world
    lines = [json.dumps(r) for r in recs[:3]]
    (tmp_path / "records.jsonl").write_text(lines[0] + "\n" + lines[1][:40] + "\n" + lines[2] + "\n")
    (tmp_path / "verl.parquet").write_bytes(b"an earlier export")     # left as it was
    before = snapshot(tmp_path)
    p = _synth(tmp_path, "--out", ".", "--no-images", "--export", "verl,easyr1,hf", "--export-only")
    assert p.returncode == 1
    _one_line(p, "records.jsonl:2", "not valid JSON")
    assert snapshot(tmp_path) == before and not (tmp_path / "hf").exists()


def test_a_missing_image_and_a_duplicate_id_name_their_line_and_field(world, tmp_path, capsys):
    d, recs = world
    shutil.copytree(d / "gen" / "images", tmp_path / "images")
    os.remove(tmp_path / recs[1]["images"][0])
    out = ["--out", str(tmp_path), "--export-only", "--quiet", "--export"]
    cases = [([recs[0], recs[1], recs[2]], "hf", ["records.jsonl:2", "field 'images'", "missing image"]),
             ([recs[0], recs[2], recs[0]], "verl", ["records.jsonl:3", "field 'id'", "duplicate of line 1"]),
             # records made with --no-images, exported as if they had images
             ([{**recs[0], "images": []}], "easyr1", ["records.jsonl:1", "field 'images'", "--no-images"])]
    for lines, fmt, words in cases:
        (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        before = snapshot(tmp_path)
        code, err = _refused(capsys, *out, fmt)
        assert code == 1
        _has_line(err, *words)
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("value,words", [("verl,parquet", ["--export", "'parquet'", "known: verl, easyr1, hf"]),
                                         ("", ["--export", "names no export", "known: verl, easyr1, hf"])])
def test_an_unknown_export_is_refused_in_one_line_listing_the_known(tmp_path, capsys, value, words):
    code, err = _refused(capsys, "--out", str(tmp_path / "x"), "--export", value)
    assert code == 2 and not (tmp_path / "x").exists()
    _has_line(err, *words)


def test_export_only_needs_export_and_an_existing_folder(tmp_path, capsys):
    code, err = _refused(capsys, "--out", str(tmp_path / "x"), "--export-only")
    assert code == 2
    _has_line(err, "--export-only", "needs --export")
    code, err = _refused(capsys, "--out", str(tmp_path / "x"), "--export", "hf", "--export-only")
    assert code == 1 and not (tmp_path / "x").exists()
    _has_line(err, "records.jsonl", "not found")
