"""Files that are not ours (issue 31): each stage's outputs, when a file of that name exists but
the stage did not write it (no run.json beside it, or not its format), are refused in one line
before anything is written, and every file there keeps its bytes; --overwrite replaces them."""
import json
import os

import pytest

import elicit
import evaluate
import synth
from fake_endpoint import FakeEndpoint
from snapshot import snapshot

FOREIGN = '{"id": 1}\n'


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    synth.main(["--split", "train", "--out", str(d / "train"), "--tasks", "maze,lis", "--levels", "1",
                "--count", "2", "--exclude", "", "--no-images", "--workers", "1", "--quiet"])
    return d


def _records(pool):
    return [json.loads(line) for line in open(pool / "train/records.jsonl")]


def _refused(run, folder, *words):
    """run() exits with one line holding every word, and `folder` is left exactly as it was."""
    before = snapshot(folder)
    with pytest.raises(SystemExit) as e:
        run()
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and all(w in msg for w in words), msg
    assert snapshot(folder) == before
    return msg


# ---- elicit.py --------------------------------------------------------------------------------------
def _elicit(pool, out, *extra):
    return elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out), "--text-only",
                        "--quiet", *extra])


@pytest.mark.parametrize("name", ["traces.jsonl", "traces.rejects.jsonl", "traces_report.md"])
def test_elicit_refuses_a_file_it_did_not_write(pool, tmp_path, name):
    """Before: a KeyError traceback from the report, after writing traces.run.json and
    traces.rejects.jsonl beside the file."""
    (tmp_path / name).write_text(FOREIGN)
    _refused(lambda: _elicit(pool, tmp_path / "traces.jsonl"), tmp_path, str(tmp_path / name),
             "traces.run.json", "--overwrite")
    assert sorted(os.listdir(tmp_path)) == [name]
    res = _elicit(pool, tmp_path / "traces.jsonl", "--overwrite")      # replaced on request
    assert res["kept"] == len(_records(pool))
    assert (tmp_path / "traces.run.json").exists() and FOREIGN not in (tmp_path / name).read_text()


def test_elicit_refuses_a_reply_cache_it_did_not_write(pool, tmp_path):
    (tmp_path / "cache.jsonl").write_text(FOREIGN)
    _refused(lambda: _elicit(pool, tmp_path / "traces.jsonl", "--rewriter", "endpoint", "--url",
                             "http://127.0.0.1:9/v1", "--cache", str(tmp_path / "cache.jsonl")),
             tmp_path, f"{tmp_path / 'cache.jsonl'}:1", "reply cache", "--cache")


def test_elicit_cuts_a_half_written_cache_line_and_appends_whole_lines(pool, tmp_path):
    """A killed run's last cache line (no newline) is neither a refusal nor a line the next reply
    runs into: the next run's lines all read back."""
    key = "0" * 64
    cache = tmp_path / "cache.jsonl"
    cache.write_text(json.dumps({"key": key, "reply": "r"}) + '\n{"key": "ab')
    srv = FakeEndpoint([], models=("m",))            # answers every rewrite with \boxed{?}: rejected
    try:
        res = _elicit(pool, tmp_path / "traces.jsonl", "--rewriter", "endpoint", "--url", srv.url,
                      "--endpoint-model", "m", "--cache", str(cache), "--attempts", "1", "--concurrency", "2")
    finally:
        srv.close()
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    assert lines[0] == {"key": key, "reply": "r"} and len(lines) == 1 + len(_records(pool))
    assert res["rejected"] == len(_records(pool)) and res["errors"] == 0


def test_elicit_report_skips_a_line_that_is_not_a_trace(pool, tmp_path):
    """Under a matching run.json, a foreign line in the traces file no longer kills the report."""
    out = tmp_path / "traces.jsonl"
    _elicit(pool, out, "--limit", "2")
    with open(out, "a") as f:
        f.write(FOREIGN)
    res = _elicit(pool, out)
    assert res["kept"] == len(_records(pool)) - 2
    assert f"| **all** | {len(_records(pool))} |" in (tmp_path / "traces_report.md").read_text()


# ---- synth.py ---------------------------------------------------------------------------------------
def test_synth_refuses_a_records_file_it_did_not_write(tmp_path):
    """Official records copied into the folder were silently replaced before."""
    (tmp_path / "records.jsonl").write_text(FOREIGN)
    args = ["--out", str(tmp_path), "--tasks", "maze", "--levels", "1", "--count", "1", "--no-images",
            "--workers", "1", "--quiet"]
    _refused(lambda: synth.main(args), tmp_path, str(tmp_path / "records.jsonl"), "run.json", "--overwrite")
    assert synth.main(args + ["--overwrite"]) == 1
    assert synth.main(args) == 1                 # its own file (run.json beside it) is replaced freely
    assert json.loads((tmp_path / "records.jsonl").read_text())["task"] == "maze"


# ---- evaluate.py ------------------------------------------------------------------------------------
def _pred(pool, tmp_path):
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps({"id": r["id"], "response": f"\\boxed{{{r['answer']}}}"}) + "\n"
                         for r in _records(pool)))
    return ["--records", str(pool / "train/records.jsonl"), "--predictions", str(p), "--quiet"]


def test_evaluate_refuses_an_out_holding_files_it_did_not_write(pool, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text(FOREIGN)
    args = _pred(pool, tmp_path)
    _refused(lambda: evaluate.main([*args, "--out", str(out)]), out, str(out), "predictions.jsonl",
             "no run.json", "--overwrite")
    # the endpoint mode the same, before it asks anything (nothing listens on port 9)
    _refused(lambda: evaluate.main(["--records", str(pool / "train/records.jsonl"), "--endpoint",
                                    "http://127.0.0.1:9/v1", "--endpoint-model", "m", "--text-only",
                                    "--out", str(out)]), out, "predictions.jsonl", "no run.json")
    s = evaluate.main([*args, "--out", str(out), "--overwrite"])
    assert s["overall"] == 100.0 and (out / "run.json").exists()


def test_evaluate_predictions_never_replace_another_runs_outputs_or_their_input(pool, tmp_path):
    args = _pred(pool, tmp_path)
    ep = tmp_path / "ep"
    recs = _records(pool)
    srv = FakeEndpoint(recs)
    try:
        evaluate.main(["--records", str(pool / "train/records.jsonl"), "--endpoint", srv.url, "--endpoint-model",
                       "m", "--text-only", "--out", str(ep), "--quiet"])
    finally:
        srv.close()
    # scoring a file into an endpoint run's folder would replace that run's scores
    _refused(lambda: evaluate.main([*args, "--out", str(ep)]), ep, str(ep), "--endpoint run", "--overwrite")
    # nor is a file scored into the folder it is an output of: it would be overwritten while read
    own = ["--records", str(pool / "train/records.jsonl"), "--predictions", str(ep / "predictions.jsonl")]
    _refused(lambda: evaluate.main([*own, "--out", str(ep)]), ep, "--predictions", "choose another --out")
    # elsewhere it scores as any predictions file
    assert evaluate.main([*own, "--out", str(tmp_path / "rescored")])["overall"] == 100.0


def test_export_requests_replaces_only_its_own_kind_of_file(pool, tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_bytes((pool / "train/records.jsonl").read_bytes())
    common = ["--records", str(pool / "train/records.jsonl"), "--endpoint-model", "m", "--text-only", "--quiet"]
    _refused(lambda: evaluate.main([*common, "--export-requests", str(records)]), tmp_path, str(records),
             "first line is not a request", "--overwrite")
    req = tmp_path / "requests.jsonl"
    evaluate.main([*common, "--export-requests", str(req)])
    evaluate.main([*common, "--export-requests", str(req), "--max-new-tokens", "9"])   # its own: replaced
    assert {json.loads(x)["body"]["max_tokens"] for x in req.read_text().splitlines()} == {9}
