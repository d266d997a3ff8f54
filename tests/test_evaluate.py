"""evaluate.py in prediction-file mode (no model): the protocol and the table's arithmetic."""
import json
import random

import pytest

import evaluate
import synth
import tasks


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    synth.main(["--out", str(d), "--count", "2", "--workers", "2"])
    return d


def _records(bench):
    return [json.loads(line) for line in open(bench / "records.jsonl")]


def _run(bench, tmp_path, lines, *extra):
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(x if isinstance(x, str) else json.dumps(x) + "\n" for x in lines))
    s = evaluate.main(["--records", str(bench / "records.jsonl"), "--predictions", str(pred),
                       "--out", str(tmp_path / "out"), *extra])
    return s


def test_gold_answers_in_several_wrappings_score_100(bench, tmp_path):
    wraps = ["\\boxed{%s}", "<think>x</think>\n\\boxed{\\text{%s}}", "<answer>%s</answer>",
             "<|begin_of_box|>%s<|end_of_box|>", "Answer: %s"]
    recs = _records(bench)
    s = _run(bench, tmp_path, [{"id": r["id"], "response": wraps[i % len(wraps)] % r["answer"]}
                               for i, r in enumerate(recs)])
    assert s["overall"] == 100.0 and s["n"] == len(recs) == s["n_correct"]
    assert all(v == 100.0 for v in s["per_group"].values())
    rows = [json.loads(line) for line in open(tmp_path / "out/predictions.jsonl")]
    assert len(rows) == len(recs) and all(r["correct"] for r in rows)
    assert set(rows[0]) == {"id", "task", "level", "response", "extracted", "correct"}


def test_empty_garbage_and_shuffled_answers(bench, tmp_path):
    recs = _records(bench)
    junk = ["", "\\boxed{}", "I give up", "\\boxed{" + "9" * 5000 + "}", "<answer></answer>"]
    s = _run(bench, tmp_path, [{"id": r["id"], "response": junk[i % len(junk)]} for i, r in enumerate(recs)])
    assert s["overall"] == 0.0 and s["n_correct"] == 0
    # answers shuffled across tasks: the score equals what score() says for each pair
    rng = random.Random(0)
    answers = [r["answer"] for r in recs]
    rng.shuffle(answers)
    expected = [tasks.score("\\boxed{%s}" % a, r) for a, r in zip(answers, recs)]
    s = _run(bench, tmp_path, [{"id": r["id"], "response": "\\boxed{%s}" % a} for a, r in zip(answers, recs)])
    assert s["n_correct"] == sum(expected) < len(recs)


def test_table_numbers_are_the_means_they_claim(bench, tmp_path):
    recs = _records(bench)
    rng = random.Random(1)
    lines = [{"id": r["id"], "response": "\\boxed{%s}" % r["answer"] if rng.random() < 0.5 else "no"}
             for r in recs]
    s = _run(bench, tmp_path, lines)
    rows = [json.loads(line) for line in open(tmp_path / "out/predictions.jsonl")]
    per_task = {}
    for r in rows:
        per_task.setdefault(r["task"], []).append(r["correct"])
    acc = {t: 100 * sum(v) / len(v) for t, v in per_task.items()}
    assert s["per_task"] == pytest.approx(acc)
    for g, names in tasks.groups().items():
        if names:
            assert s["per_group"][g] == pytest.approx(sum(acc[t] for t in names) / len(names))
    assert s["overall"] == pytest.approx(sum(acc.values()) / len(acc))
    for lv in range(1, 6):
        got = [r["correct"] for r in rows if r["level"] == lv]
        assert s["per_level"][str(lv)] == pytest.approx(100 * sum(got) / len(got))
    table = (tmp_path / "out/table.md").read_text()
    row = [ln for ln in table.splitlines() if ln.startswith("| pred.jsonl |")]
    assert len(row) == 1 and row[0].endswith(f"| {s['overall']:.1f} |")
    assert json.load(open(tmp_path / "out/summary.json"))["overall"] == pytest.approx(s["overall"])


def test_bad_lines_are_reported_not_fatal(bench, tmp_path):
    recs = _records(bench)
    lines = ["{broken\n", {"response": "no id"}, {"id": recs[0]["id"], "response": 5},
             {"id": "nope", "response": "x"}] + [{"id": r["id"], "response": "\\boxed{%s}" % r["answer"]}
                                                  for r in recs[1:]]
    s = _run(bench, tmp_path, lines)
    probs = "\n".join(s["problems"])
    assert "pred.jsonl:1: field '-'" in probs and "pred.jsonl:2: field 'id'" in probs
    assert "pred.jsonl:3: field 'response'" in probs and "'nope'" in probs
    assert s["n_correct"] == len(recs) - 1


def test_official_records_score_unchanged(tmp_path):
    # An official-style record: official category, no `task`, no `meta`, only official fields.
    t = tasks.get("BestTimeToBuyAndSellStock")
    rec = {"id": "official-1", "category": "BestTimeToBuyAndSellStock", "images": ["images/x.png"],
           "question": "q", "question_text": "q", "answer": "7", "difficulty": 2,
           "metric_info": "{}", "initial_state": "[7, 1, 5, 3, 6, 4]"}
    p = tmp_path / "off.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "official-1", "response": "\\boxed{7}"}) + "\n")
    s = evaluate.main(["--records", str(p), "--predictions", str(pred), "--out", str(tmp_path / "o")])
    assert s["overall"] == 100.0 and t.solve([7, 1, 5, 3, 6, 4]) == 7


# ---- model mode on the tiny model ------------------------------------------------------------------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import vlm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    synth.main(["--out", str(d / "bench"), "--tasks", "maze,buy_sell_stock,graph_isomorphism",
                "--levels", "1,2", "--count", "2", "--workers", "1"])
    vlm.make_tiny(str(d / "model"), seed=3)
    return d


def _model_args(d, out, *extra):
    return ["--model", str(d / "model"), "--records", str(d / "bench/records.jsonl"), "--out", str(d / out),
            "--max-new-tokens", "6", "--batch-size", "4", *extra]


@pytest.mark.parametrize("mode", ["image", "text"])
def test_model_mode_runs_end_to_end(small, mode):
    extra = ["--text-only"] if mode == "text" else []
    s = evaluate.main(_model_args(small, f"m-{mode}", *extra, "--name", "tiny"))
    rows = [json.loads(line) for line in open(small / f"m-{mode}/predictions.jsonl")]
    assert s["mode"] == mode and s["n"] == len(rows) == 12 and s["n_tasks"] == 3
    assert all(r["correct"] in (True, False) for r in rows)
    assert sum(len(r["response"]) for r in rows) > 0  # responses were generated (--name once skipped it)
    assert "| tiny |" in (small / f"m-{mode}/table.md").read_text()


def test_model_mode_takes_the_selection(small):
    s = evaluate.main(_model_args(small, "m-sel", "--text-only", "--tasks", "maze", "--levels", "2"))
    rows = [json.loads(line) for line in open(small / "m-sel/predictions.jsonl")]
    assert s["n"] == len(rows) == 2 and {(r["task"], r["level"]) for r in rows} == {("maze", 2)}
    assert s["selection"] == {"tasks": ["maze"], "levels": [2]} and s["n_missing"] == 0


def test_resume_does_not_redo_finished_records(small, monkeypatch):
    full = evaluate.main(_model_args(small, "r-full"))
    out = small / "r-cut"
    out.mkdir()
    part = (small / "r-full/responses.rank0.jsonl").read_text().splitlines()
    (out / "responses.rank0.jsonl").write_text("\n".join(part[:5]) + "\n")  # a run killed after 5
    (out / "run.json").write_bytes((small / "r-full/run.json").read_bytes())  # written at its start
    rows_sampled = []
    real = vlm.sampler.sample

    def counting(model, proc, batch, **kw):
        rows_sampled.append(batch["input_ids"].shape[0])
        return real(model, proc, batch, **kw)
    monkeypatch.setattr(vlm.sampler, "sample", counting)   # where evaluate.py calls it
    resumed = evaluate.main(_model_args(small, "r-cut"))
    assert sum(rows_sampled) == 12 - 5
    for k in ("overall", "per_task", "per_level", "n", "n_correct"):
        assert resumed[k] == full[k], k


def test_two_processes_give_the_same_predictions_as_one(small):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "evaluate.py", *_model_args(small, "p1")], cwd=ROOT, check=True,
                   env=env, capture_output=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29555",
                    "evaluate.py", *_model_args(small, "p2")], cwd=ROOT, check=True, env=env, capture_output=True)
    a = [json.loads(line) for line in open(small / "p1/predictions.jsonl")]
    b = [json.loads(line) for line in open(small / "p2/predictions.jsonl")]
    assert a == b and len(a) == 12


# ---- coverage said, not hidden: selection, missing records, keys, JSON errors ------------------------
def _task_records(bench, names, levels=None):
    return [r for r in _records(bench) if r["task"] in names and (levels is None or r["difficulty"] in levels)]


def test_a_partial_file_is_scored_over_its_selection(bench, tmp_path):
    # 4 right answers on 2 tasks at level 1: the whole benchmark would call it a few percent
    part = _task_records(bench, {"maze", "sudoku"}, {1})
    assert len(part) == 4
    lines = [{"id": r["id"], "response": "\\boxed{%s}" % r["answer"]} for r in part]
    s = _run(bench, tmp_path, lines)
    n = len(_records(bench))
    assert s["n"] == n and s["n_missing"] == n - 4 and s["n_correct"] == 4 and s["overall"] < 5
    rows = [json.loads(line) for line in open(tmp_path / "out/predictions.jsonl")]
    miss = [r for r in rows if r.get("missing")]
    assert len(miss) == n - 4 and all(r["response"] is None and not r["correct"] for r in miss)
    assert f"**{n - 4} of {n} records had no prediction and score 0**" in (tmp_path / "out/table.md").read_text()
    html = (tmp_path / "out/report.html").read_text()
    assert html.count('data-verdict="missing"') == n - 4 and '<option value="missing">' in html
    # the same file over its own selection: 100, and the table says which tasks and levels
    s = _run(bench, tmp_path, lines, "--tasks", "sudoku,Maze", "--levels", "1")
    assert s["overall"] == 100.0 and s["n"] == 4 and s["n_missing"] == 0 and set(s["per_task"]) == {"maze", "sudoku"}
    assert s["selection"] == {"tasks": ["sudoku", "maze"], "levels": [1]}
    assert "Selection: tasks sudoku, maze; levels 1 (2 of the 42 tasks scored)." in (tmp_path / "out/table.md").read_text()
    # --only-predicted: the records without a prediction are left out, and the header says so
    s = _run(bench, tmp_path, lines, "--only-predicted")
    assert s["overall"] == 100.0 and s["n"] == 4 and s["n_left_out"] == n - 4 and s["only_predicted"]
    head = (tmp_path / "out/table.md").read_text().split("| Model |")[0]
    assert f"Only the 4 records with a prediction are scored (--only-predicted); {n - 4} records" in head
    s = _run(bench, tmp_path, lines, "--levels", "1,2", "--tasks", "maze")
    assert s["n"] == 4 and s["n_missing"] == 2 and s["per_level"] == {"1": 100.0, "2": 0.0}


def test_a_selection_the_file_lacks_is_said(bench, tmp_path):
    recs = _task_records(bench, {"maze"}, {1})
    p = tmp_path / "maze.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": r["id"], "response": "\\boxed{%s}" % r["answer"]}) + "\n" for r in recs))
    s = evaluate.main(["--records", str(p), "--predictions", str(pred), "--out", str(tmp_path / "o"),
                       "--tasks", "maze,lis", "--levels", "1,3"])
    assert s["overall"] == 100.0
    assert any("no record of selected task 'lis'" in x for x in s["problems"])
    assert any("no record of selected level 3" in x for x in s["problems"])
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--records", str(p), "--predictions", str(pred), "--out", str(tmp_path / "o2"),
                       "--tasks", "lis"])
    assert "no record of the selected tasks and levels" in str(e.value) and not (tmp_path / "o2").exists()


def test_a_line_with_another_key_or_bad_json_is_named(bench, tmp_path):
    recs = _records(bench)
    lines = ['{"id": "%s", "response": \n' % recs[0]["id"], {"id": recs[1]["id"], "prediction": "\\boxed{1}"},
             {"id": recs[2]["id"], "answer": "1"}, {"id": recs[3]["id"]}] + \
        [{"id": r["id"], "response": "\\boxed{%s}" % r["answer"]} for r in recs[4:]]
    s = _run(bench, tmp_path, lines)
    probs = "\n".join(s["problems"])
    assert "pred.jsonl:1: field '-': not valid JSON at column" in probs
    assert ("pred.jsonl:2: field 'response': missing (the line has 'prediction'; evaluate.py reads the key "
            "'response')") in probs
    assert "pred.jsonl:3: field 'response': missing (the line has 'answer'" in probs
    assert "pred.jsonl:4: field 'response': missing (keys: id)" in probs
    assert s["n_missing"] == 4 and s["n_correct"] == len(recs) - 4
    # a file in which no line holds a response is refused whole: its numbers would all be 0
    (tmp_path / "x").mkdir()
    with pytest.raises(SystemExit) as e:
        _run(bench, tmp_path / "x", [{"id": r["id"], "prediction": "1"} for r in recs])
    assert "no line holds a usable prediction" in str(e.value) and "'prediction'" in str(e.value)
    assert not (tmp_path / "x" / "out").exists()


def test_a_record_without_a_level_is_kept_unless_levels_are_chosen(tmp_path):
    rec = {"id": "official-2", "category": "BestTimeToBuyAndSellStock", "question": "q", "answer": "7",
           "initial_state": "[7, 1, 5, 3, 6, 4]"}
    p = tmp_path / "off.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "official-2", "response": "\\boxed{7}"}) + "\n")
    s = evaluate.main(["--records", str(p), "--predictions", str(pred), "--out", str(tmp_path / "o")])
    assert s["overall"] == 100.0 and s["n"] == 1
    with pytest.raises(SystemExit, match="no record of the selected tasks and levels"):
        evaluate.main(["--records", str(p), "--predictions", str(pred), "--out", str(tmp_path / "o"), "--levels", "1"])


# ---- --quiet holds for the libraries' progress bars too ---------------------------------------------
def test_quiet_silences_transformers_bars(small, tmp_path):
    """Without --model the tiny model is built (save_pretrained: "Writing model shards") and loaded
    ("Loading weights"): transformers' bars on stderr, unless --quiet. The run without --quiet
    shows the bars are there to silence (else this test could not fail)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    err = {}
    for quiet in (False, True):
        out = tmp_path / f"q{int(quiet)}"
        p = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), "--records",
                            str(small / "bench/records.jsonl"), "--text-only", "--limit", "2", "--max-new-tokens", "2",
                            "--out", str(out), *(["--quiet"] if quiet else [])],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        err[quiet] = p.stderr
    assert "Writing model shards" in err[False] and "Loading weights" in err[False], err[False][-2000:]
    assert "Writing model shards" not in err[True] and "Loading weights" not in err[True], err[True][-2000:]
    assert "it/s]" not in err[True] and "evaluate [rank 0]" not in err[True]
