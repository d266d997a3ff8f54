"""elicit.py: verified traces in the default mode and against a local OpenAI-style endpoint."""
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import elicit
import synth
import tasks
from harness.jsonl import read_records
from tasks import score


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    synth.main(["--split", "train", "--out", str(d / "train"), "--count", "2", "--levels", "1,3",
                "--exclude", "", "--workers", "2"])
    return d


def _load(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_default_mode_keeps_verified_traces_with_their_anchors(pool):
    out = pool / "traces.jsonl"
    res = elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out)])
    records, _ = read_records(str(pool / "train/records.jsonl"))
    traces = _load(out)
    assert res["kept"] == len(traces) == len(records) and res["rejected"] == 0
    assert {t["task"] for t in traces} == set(tasks.TASKS)  # every task of the registry
    for t in traces:
        assert t["verified"] and t["rewriter"] == "none"
        assert score(t["trace"], t), t["id"]
        assert t["trace"].startswith("<think>") and "</think>" in t["trace"]
        assert t["messages"][-1] == {"role": "assistant", "content": t["trace"]}
        state = tasks.state_of(t)
        for s in tasks.task_of(t).skeleton(state):
            if s["kind"] in tasks.base.ANCHOR_KINDS:
                assert s["text"] in t["trace"], (t["id"], s["text"][:80])
        img = t["messages"][0]["content"][0]["image"]
        assert (out.parent / img).exists()  # image paths resolve relative to the traces file
    report = (pool / "traces_report.md").read_text()
    assert "| **all** | %d |" % len(records) in report
    # a rerun does nothing new
    assert elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out)])["kept"] == 0


class _Server:
    """Answers by the problem's hash: right, wrong, no box, malformed once, slow once, 500 once."""

    def __init__(self):
        self.calls, self.lock = {}, threading.Lock()
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                answer = re.search(r"format\):\n(.*)\n\nWrite the reasoning", user, re.S).group(1)
                kind = int(hashlib.sha1(user.encode()).hexdigest(), 16) % 6
                with server.lock:
                    n = server.calls[user] = server.calls.get(user, 0) + 1
                if kind == 3 and n == 1:
                    time.sleep(1.0)  # longer than the client's timeout: one retry
                if kind == 4 and n == 1:
                    self.send_response(500)
                    self.end_headers()
                    return
                if kind == 5 and n == 1:
                    payload = b"{not json"
                else:
                    text = {0: f"<think>I reason.</think>\n\\boxed{{{answer}}}",
                            1: "<think>I reason.</think>\n\\boxed{definitely wrong}",
                            2: "<think>I reason and forget to answer</think>"}.get(
                        kind, f"\\boxed{{{answer}}}")
                    reasoning = "split-out thinking" if kind == 3 else None
                    payload = json.dumps({"choices": [{"message": {
                        "content": text, "reasoning_content": reasoning}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kinds(self):
        return {u: int(hashlib.sha1(u.encode()).hexdigest(), 16) % 6 for u in self.calls}


def test_endpoint_mode_keeps_only_verified_retries_and_caches(pool):
    srv = _Server()
    out = pool / "ep" / "traces.jsonl"
    args = ["--records", str(pool / "train/records.jsonl"), "--out", str(out), "--rewriter", "endpoint",
            "--url", srv.url, "--attempts", "1", "--timeout", "0.5", "--retries", "2",
            "--backoff", "0.01", "--concurrency", "4"]
    res = elicit.main(args)
    kinds = list(srv.kinds().values())
    n = len(kinds)
    want_kept = sum(k in (0, 3, 4, 5) for k in kinds)   # right answers, after retries where needed
    want_rej = sum(k in (1, 2) for k in kinds)
    assert n == len(read_records(str(pool / "train/records.jsonl"))[0])
    assert res["kept"] == want_kept and res["rejected"] == want_rej and res["errors"] == 0
    assert res["stats"]["retried"] == sum(k in (3, 4, 5) for k in kinds) > 0
    traces = _load(out)
    assert all(score(t["trace"], t) for t in traces) and len(traces) == want_kept
    rej = _load(pool / "ep" / "traces.rejects.jsonl")
    assert sorted(r["reason"] for r in rej) == sorted(
        ["wrong answer"] * sum(k == 1 for k in kinds) + ["no answer"] * sum(k == 2 for k in kinds))
    for t in traces:  # reasoning split out by the server is put back inside <think>
        if "split-out thinking" in t["trace"]:
            assert t["trace"].startswith("<think>\nsplit-out thinking")
    # a rerun with the rejects file removed asks again, but every reply comes from the cache
    (pool / "ep" / "traces.rejects.jsonl").unlink()
    before = sum(srv.calls.values())
    res2 = elicit.main(args)
    assert sum(srv.calls.values()) == before            # the server saw nothing new
    assert res2["stats"]["hits"] == want_rej and res2["rejected"] == want_rej and res2["kept"] == 0
    srv.httpd.shutdown()


def test_endpoint_down_fails_fast_with_one_line_and_writes_nothing(pool, tmp_path):
    out = tmp_path / "traces.jsonl"
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out),
                     "--rewriter", "endpoint", "--url", "http://127.0.0.1:9/v1", "--retries", "3",
                     "--backoff", "1", "--limit", "3", "--timeout", "0.5"])
    # one preflight request, not 3 records x 4 tries with back-off (that would take > 7 s)
    assert time.perf_counter() - t0 < 5
    assert "http://127.0.0.1:9/v1" in str(e.value) and "does not answer" in str(e.value)
    assert list(tmp_path.iterdir()) == []   # nothing recorded: a rerun starts clean


def test_every_request_failing_is_a_nonzero_exit(pool, tmp_path):
    class H(BaseHTTPRequestHandler):      # answers the preflight, refuses every rewrite
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    out = tmp_path / "traces.jsonl"
    try:
        with pytest.raises(SystemExit) as e:
            elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out),
                         "--rewriter", "endpoint", "--url", f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                         "--retries", "0", "--limit", "3", "--attempts", "1"])
    finally:
        httpd.shutdown()
    assert "every rewriter request failed (3)" in str(e.value)
    assert not out.exists() or out.read_text() == ""   # nothing recorded as done: a rerun retries


def test_local_model_mode_runs_and_counts_its_rejects(pool, tmp_path):
    import vlm
    vlm.make_tiny(str(tmp_path / "rewriter"), kind="causal", seed=0)
    out = tmp_path / "traces.jsonl"
    res = elicit.main(["--records", str(pool / "train/records.jsonl"), "--out", str(out), "--rewriter", "model",
                       "--model", str(tmp_path / "rewriter"), "--limit", "6", "--attempts", "2",
                       "--max-new-tokens", "8", "--batch-size", "3", "--device", "cpu"])
    # a random tiny model does not produce verified answers: all six are counted as rejects
    assert res["kept"] + res["rejected"] == 6 and res["errors"] == 0
    rej = _load(tmp_path / "traces.rejects.jsonl")
    assert len(rej) == res["rejected"] and all(r["reason"] in ("no answer", "wrong answer") for r in rej)
    assert all(r["attempts"] == 2 for r in rej)
    report = (tmp_path / "traces_report.md").read_text()
    assert f"| **all** | {res['kept']} |" in report


def test_quiet_silences_transformers_bars_in_the_model_rewriter(pool, tmp_path):
    """--quiet holds for transformers' "Loading weights" bar too; the run without it shows the bar
    is there to silence."""
    import os
    import subprocess
    import sys

    import vlm
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vlm.make_tiny(str(tmp_path / "rewriter"), kind="causal", seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    err = {}
    for quiet in (False, True):
        p = subprocess.run([sys.executable, os.path.join(root, "elicit.py"), "--records", str(pool / "train/records.jsonl"),
                            "--out", str(tmp_path / f"q{int(quiet)}/traces.jsonl"), "--rewriter", "model", "--model",
                            str(tmp_path / "rewriter"), "--limit", "2", "--attempts", "1", "--max-new-tokens", "2",
                            "--device", "cpu", *(["--quiet"] if quiet else [])],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        err[quiet] = p.stderr
    assert "Loading weights" in err[False], err[False][-2000:]
    assert "Loading weights" not in err[True] and "it/s]" not in err[True], err[True][-2000:]
    assert "this run: kept 0, rejected 2" in err[True]      # the model ran
