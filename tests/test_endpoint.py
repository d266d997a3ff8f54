"""evaluate.py --endpoint against a local server (tests/fake_endpoint.py, 127.0.0.1 only): faults
survived, every record answered exactly once, nothing lost on a kill, nothing re-requested on a
rerun, failures kept as failures, the key never written, images sent as the record's bytes, and
--export-requests equal to what is sent."""
import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import evaluate
import synth
import tasks
from fake_endpoint import FakeEndpoint
from snapshot import snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = "maze,buy_sell_stock,graph_isomorphism,h_index"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("ep")
    synth.main(["--out", str(d), "--tasks", TASKS, "--levels", "1,2", "--count", "1", "--workers", "1",
                "--quiet"])
    return d


def _records(bench):
    return [json.loads(line) for line in open(bench / "records.jsonl")]


def _args(bench, srv, out, *extra):
    return ["--records", str(bench / "records.jsonl"), "--endpoint", srv.url, "--endpoint-model", "m",
            "--text-only", "--out", str(out), "--timeout", "0.5", "--retries", "3", "--backoff", "0.01",
            "--concurrency", "4", "--quiet", *extra]


def _lines(path):
    return [json.loads(line) for line in open(path)]


def test_faults_are_survived_and_every_record_answered_once(bench, tmp_path):
    recs = _records(bench)
    kinds = ["429", "500", "reset", "hang", "garbage", "503"]
    faults = {r["id"]: [kinds[i % len(kinds)]] for i, r in enumerate(recs) if i < len(kinds)}
    faults[recs[-1]["id"]] = ["429", "500", "reset"]                 # three faults in a row, then right
    srv = FakeEndpoint(recs, faults=faults, reasoning=True)
    try:
        s = evaluate.main(_args(bench, srv, tmp_path / "out"))
        first = (tmp_path / "out/predictions.jsonl").read_bytes()
        n = len(srv.log)
        again = evaluate.main(_args(bench, srv, tmp_path / "out"))   # asks nothing, reads the file
    finally:
        srv.close()
    assert len(srv.log) == n and (tmp_path / "out/predictions.jsonl").read_bytes() == first
    assert again == s
    assert s["overall"] == 100.0 and s["n"] == len(recs) and s["n_failed"] == 0
    # exactly one right reply sent per record, and one line per record in the responses file
    assert srv.answered() == {r["id"]: 1 for r in recs}
    got = _lines(tmp_path / "out" / evaluate.ENDPOINT_FILE)
    assert sorted(x["id"] for x in got) == sorted(r["id"] for r in recs)
    att = {x["id"]: x["attempts"] for x in got}
    assert all(att[rid] == len(plan) + 1 for rid, plan in faults.items()), att
    # Retry-After (0.2 s) honoured: the retry after a 429 came no sooner
    for rid in [rid for rid, plan in faults.items() if plan[0] == "429"]:
        t = [e["t"] for e in srv.log if e["id"] == rid]
        assert t[1] - t[0] >= 0.2, (rid, t)
    # reasoning and usage kept per record and summed
    rows = _lines(tmp_path / "out/predictions.jsonl")
    assert all(r["reasoning"] == f"thinking about {r['id']}" for r in rows)
    assert s["usage"]["completion_tokens"] == 7 * len(recs) and s["usage"]["n_records"] == len(recs)
    assert s["usage"]["prompt_tokens"] == sum(x["usage"]["prompt_tokens"] for x in got)
    assert s["latency_s"]["n_records"] == len(recs) and s["latency_s"]["total"] > 0
    # the name each reply came back under is kept (here the one asked for)
    assert json.load(open(tmp_path / "out/summary.json"))["endpoint"] == {"url": srv.url, "model": "m",
                                                                          "served_as": ["m"]}
    assert {x["model"] for x in got} == {"m"}


def test_a_request_that_keeps_failing_is_recorded_as_failed_and_retried_next_run(bench, tmp_path):
    recs = _records(bench)
    bad, refused = recs[0]["id"], recs[1]["id"]
    srv = FakeEndpoint(recs, faults={bad: ["503"] * 3, refused: ["400"]})
    out = tmp_path / "out"
    try:
        with pytest.raises(SystemExit) as e:
            evaluate.main(_args(bench, srv, out, "--retries", "2"))
        assert "2 of 8 requests failed" in str(e.value) and "rerun the same command" in str(e.value)
        rows = {r["id"]: r for r in _lines(out / "predictions.jsonl")}
        assert rows[bad]["failed"] and rows[bad]["response"] is None and not rows[bad]["correct"]
        assert "HTTP 503" in rows[bad]["error"] and "after 3 tries" in rows[bad]["error"]
        # a 400 is not retried: it would fail the same way; the server's message is kept
        assert "HTTP 400: fault 400 for this request" in rows[refused]["error"]
        assert sum(e["id"] == refused for e in srv.log) == 1
        summary = json.load(open(out / "summary.json"))
        assert summary["n_failed"] == 2 and summary["overall"] < 100
        assert "**2 of 8 requests failed and score 0**" in (out / "table.md").read_text()
        html = (out / "report.html").read_text()
        assert html.count('data-verdict="failed"') == 2 and '<option value="failed">' in html
        n_before = len(srv.log)
        s = evaluate.main(_args(bench, srv, out))      # the server has recovered
    finally:
        srv.close()
    assert s["overall"] == 100.0 and s["n_failed"] == 0
    assert sorted(e["id"] for e in srv.log[n_before:]) == sorted([bad, refused])   # only those two


def test_kill_mid_run_then_rerun_requests_nothing_twice(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs, delay=0.4)
    out = tmp_path / "out"
    path = out / evaluate.ENDPOINT_FILE
    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "evaluate.py"),
                          *_args(bench, srv, out, "--concurrency", "2")], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (path.exists() and len(path.read_text().splitlines()) >= 3):
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        written = {x["id"] for x in _lines(path)}
        assert 3 <= len(written) < len(recs)
        n_before = len(srv.log)
        s = evaluate.main(_args(bench, srv, out))
    finally:
        if p.poll() is None:
            p.kill()
        srv.close()
    asked_again = [e["id"] for e in srv.log[n_before:]]
    assert not set(asked_again) & written                      # nothing written was asked again
    assert sorted(set(asked_again) | written) == sorted(r["id"] for r in recs)
    assert s["overall"] == 100.0 and s["n"] == len(recs)
    assert sorted(x["id"] for x in _lines(path)) == sorted(r["id"] for r in recs)   # one line each


def test_a_half_written_last_line_is_cut_and_its_record_asked_again(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs)
    out = tmp_path / "out"
    try:
        evaluate.main(_args(bench, srv, out, "--limit", "3"))
        path = out / evaluate.ENDPOINT_FILE
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:2]) + lines[2][:25])    # killed while writing line 3
        n_before = len(srv.log)
        s = evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    assert s["overall"] == 100.0 and s["problems"] == []
    assert len(srv.log) - n_before == len(recs) - 2
    assert len(_lines(out / evaluate.ENDPOINT_FILE)) == len(recs)


def test_image_mode_sends_each_records_png_before_the_prompt(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs, root=str(bench), text_only=False)
    args = _args(bench, srv, tmp_path / "out")
    args.remove("--text-only")
    try:
        s = evaluate.main(args)
    finally:
        srv.close()
    assert s["mode"] == "image" and s["overall"] == 100.0
    by_id = {r["id"]: r for r in recs}
    for e in srv.log:
        (turn,) = e["body"]["messages"]
        parts = turn["content"]
        rec = by_id[e["id"]]
        assert [p["type"] for p in parts] == ["image_url"] * len(rec["images"]) + ["text"]
        assert parts[-1]["text"] == tasks.build_prompt(rec) and parts[-1]["text"].endswith(
            "Please put your final answer within \\boxed{}.")
        for p, img in zip(parts, rec["images"]):
            head, data = p["image_url"]["url"].split(",", 1)
            assert head == "data:image/png;base64"
            assert base64.b64decode(data) == (bench / img).read_bytes()


def test_export_requests_are_exactly_what_is_sent_and_their_batch_output_scores(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs, root=str(bench), text_only=False)
    common = ["--records", str(bench / "records.jsonl"), "--endpoint-model", "m", "--max-new-tokens", "64",
              "--temperature", "0.6", "--seed", "3", "--extra-body", '{"top_p": null, "min_p": 0.05}', "--quiet"]
    try:
        s = evaluate.main(["--endpoint", srv.url, "--out", str(tmp_path / "ep"), *common])
    finally:
        srv.close()
    export = tmp_path / "requests.jsonl"
    assert evaluate.main(["--export-requests", str(export), *common]) is None
    lines = _lines(export)
    assert [x["custom_id"] for x in lines] == [r["id"] for r in recs]
    assert {x["method"] for x in lines} == {"POST"} and {x["url"] for x in lines} == {"/v1/chat/completions"}
    sent = {e["id"]: e["body"] for e in srv.log}
    assert {x["custom_id"]: x["body"] for x in lines} == sent
    body = lines[0]["body"]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.6 and body["seed"] == 3
    assert "top_p" not in body and body["min_p"] == 0.05                # --extra-body: null removes
    # what a batch engine gives back for these lines: OpenAI's batch output format, one error
    out_lines = [{"id": f"b{i}", "custom_id": x["custom_id"], "error": None,
                  "response": {"status_code": 200, "body": {"choices": [{"message": {
                      "content": f"\\boxed{{{r['answer']}}}" if i % 2 else "no idea"}}],
                      "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}}}
                 for i, (x, r) in enumerate(zip(lines, recs))]
    out_lines[0] = {"id": "b0", "custom_id": recs[0]["id"], "response": None,
                    "error": {"code": "server_error", "message": "the batch worker died"}}
    batch = tmp_path / "batch_output.jsonl"
    batch.write_text("".join(json.dumps(x) + "\n" for x in out_lines))
    with pytest.raises(SystemExit) as e:   # a failed line fails the run, after writing its files
        evaluate.main(["--records", str(bench / "records.jsonl"), "--predictions", str(batch),
                       "--out", str(tmp_path / "b"), "--quiet"])
    assert "1 of 8 requests failed" in str(e.value) and "the batch worker died" in str(e.value)
    # a batch output carries usage but no latency: the table says so, not "nan"
    table = (tmp_path / "b/table.md").read_text()
    assert "| – | – |" in table.split("## Endpoint")[1] and "nan" not in table
    rows = _lines(tmp_path / "b/predictions.jsonl")
    assert [r["correct"] for r in rows] == [bool(i % 2) for i in range(len(recs))]
    assert rows[0]["failed"] and "the batch worker died" in rows[0]["error"]
    assert s["n_correct"] == len(recs)


def test_preflight_fails_fast_in_one_line_and_writes_nothing(bench, tmp_path):
    recs = _records(bench)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:        # nothing listens on port 9
        evaluate.main(["--records", str(bench / "records.jsonl"), "--endpoint", "http://127.0.0.1:9/v1",
                       "--endpoint-model", "m", "--out", str(out), "--retries", "5", "--backoff", "1"])
    assert time.perf_counter() - t0 < 5 and "does not answer" in str(e.value) and "\n" not in str(e.value)
    srv = FakeEndpoint(recs, key="right-key", models=("served-a", "served-b"))
    try:
        os.environ["MMHELIX_TEST_WRONG_KEY"] = "wrong-key"
        with pytest.raises(SystemExit) as e:
            evaluate.main(["--records", str(bench / "records.jsonl"), "--endpoint", srv.url, "--endpoint-model",
                           "served-a", "--api-key-env", "MMHELIX_TEST_WRONG_KEY", "--out", str(out)])
        assert "HTTP 401" in str(e.value) and "--api-key-env" in str(e.value)
        os.environ["MMHELIX_TEST_WRONG_KEY"] = "right-key"
        with pytest.raises(SystemExit) as e:
            evaluate.main(["--records", str(bench / "records.jsonl"), "--endpoint", srv.url, "--endpoint-model",
                           "m", "--api-key-env", "MMHELIX_TEST_WRONG_KEY", "--out", str(out)])
        assert "does not serve model 'm'" in str(e.value) and "served-a, served-b" in str(e.value)
    finally:
        del os.environ["MMHELIX_TEST_WRONG_KEY"]
        srv.close()
    assert srv.log == [] and not out.exists()
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--records", str(bench / "records.jsonl"), "--endpoint", srv.url, "--endpoint-model", "m",
                       "--api-key-env", "MMHELIX_NO_SUCH_VARIABLE", "--out", str(out)])
    assert "MMHELIX_NO_SUCH_VARIABLE" in str(e.value) and "not set" in str(e.value) and not out.exists()


def test_the_key_is_sent_but_never_written(bench, tmp_path, monkeypatch):
    recs = _records(bench)
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("MMHELIX_TEST_KEY", secret)
    srv = FakeEndpoint(recs, key=secret)
    out = tmp_path / "out"
    try:
        s = evaluate.main(_args(bench, srv, out, "--api-key-env", "MMHELIX_TEST_KEY"))
    finally:
        srv.close()
    assert s["overall"] == 100.0 and {e["auth"] for e in srv.log} == {f"Bearer {secret}"}
    for p in out.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    assert json.load(open(out / "run.json"))["args"]["api_key_env"] == "MMHELIX_TEST_KEY"


@pytest.mark.parametrize("change,word", [(["--endpoint-model", "m2"], "endpoint_model: m -> m2"),
                                         (["--temperature", "0.5"], "temperature: 0.0 -> 0.5"),
                                         (["--max-new-tokens", "99"], "max_new_tokens: 2048 -> 99"),
                                         (["--extra-body", '{"top_k": 5}'], "extra_body: {} -> {'top_k': 5}")])
def test_a_rerun_with_other_settings_is_refused_and_touches_nothing(bench, tmp_path, change, word):
    recs = _records(bench)
    srv = FakeEndpoint(recs, models=("m", "m2"))
    out = tmp_path / "out"
    try:
        evaluate.main(_args(bench, srv, out, "--limit", "2"))
        before, n = snapshot(out), len(srv.log)
        args = _args(bench, srv, out)
        i = args.index(change[0]) if change[0] in args else None
        if i is not None:
            args[i + 1] = change[1]
        else:
            args += change
        with pytest.raises(SystemExit) as e:
            evaluate.main(args)
        after = snapshot(out)
        # the selection, concurrency and retries may change: the replies made stay valid
        s = evaluate.main(_args(bench, srv, out, "--concurrency", "1", "--retries", "1", "--tasks", "maze"))
    finally:
        srv.close()
    assert word in str(e.value) and "run.json" in str(e.value)
    assert len(srv.log) - n == 2 - sum(r["task"] == "maze" for r in recs[:2])  # the new maze record only
    assert s["n"] == 2 and set(s["per_task"]) == {"maze"}
    assert before == after and len(before) >= 6     # the refused run touched no file


def test_endpoint_mode_never_imports_torch(bench, tmp_path):
    """Scoring an API model needs no torch: evaluate.py imports it only where a local model runs."""
    recs = _records(bench)
    srv = FakeEndpoint(recs)
    code = ("import sys, evaluate; evaluate.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    try:
        p = subprocess.run([sys.executable, "-c", code, *_args(bench, srv, tmp_path / "out")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    finally:
        srv.close()
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(_lines(tmp_path / "out/predictions.jsonl")) == len(recs)


def test_a_request_every_reply_refuses_stops_the_run_after_a_few(bench, tmp_path):
    """A field the server rejects (a 400 for every request) would fail every record the same way:
    after the first few refusals nothing more is sent, and a rerun asks for everything left."""
    recs = _records(bench)
    srv = FakeEndpoint(recs, faults={r["id"]: ["400"] for r in recs})
    out = tmp_path / "out"
    try:
        with pytest.raises(SystemExit) as e:
            evaluate.main(_args(bench, srv, out, "--concurrency", "1"))
        assert f"refused the first {evaluate.REFUSALS_TO_STOP} requests" in str(e.value)
        # at most the one request in flight (concurrency 1) was sent besides; its reply is dropped.
        # It may reach the server after the run returned: wait until the log stops growing
        n_first, t_end = -1, time.monotonic() + 5
        while n_first != len(srv.log) and time.monotonic() < t_end:
            n_first = len(srv.log)
            time.sleep(0.3)
        assert evaluate.REFUSALS_TO_STOP <= n_first <= evaluate.REFUSALS_TO_STOP + 1 < len(recs)
        assert len(_lines(out / evaluate.ENDPOINT_FILE)) == evaluate.REFUSALS_TO_STOP
        assert not (out / "predictions.jsonl").exists()
        srv.faults = {}                              # the request fixed
        s = evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    assert s["overall"] == 100.0 and len(srv.log) == n_first + len(recs)


def test_ctrl_c_exits_at_once_in_one_line_and_keeps_the_replies(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs, delay=3.0)
    out = tmp_path / "out"
    path = out / evaluate.ENDPOINT_FILE
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "evaluate.py"),
                          *_args(bench, srv, out, "--concurrency", "2", "--timeout", "30")],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (path.exists() and len(path.read_text().splitlines()) >= 2):
            time.sleep(0.02)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)    # the next 2 requests have just been sent: 3 s from a reply
        err = p.communicate(timeout=30)[1]
        waited = time.monotonic() - t0
        kept = len(_lines(path))
        srv.delay = 0.0
        s = evaluate.main(_args(bench, srv, out))
    finally:
        if p.poll() is None:
            p.kill()
        srv.close()
    # at once: not after the 3 s the requests in flight still had (2 s of margin for a slow machine)
    assert p.returncode == 130 and waited < 1.0 and "Traceback" not in err, (waited, err[-2000:])
    assert f"interrupted: {kept} replies are kept in {path}" in err and kept >= 2
    assert all("response" in x for x in _lines(path)[:kept])
    # the rerun completed the rest; only the (at most 2) requests in flight were asked twice
    counts = srv.answered()
    assert s["overall"] == 100.0 and set(counts) == {r["id"] for r in recs}
    assert sum(counts.values()) - len(recs) <= 2


# ---- the rough corners a real server showed (issue 31): each case against the fault server ------------
def _image_args(bench, srv, out, *extra):
    args = _args(bench, srv, out, *extra)
    args.remove("--text-only")
    return args


def _settle(srv, t_max=5.0):
    """The log once it stops growing: a request in flight when a run returns may still arrive."""
    n, t_end = -1, time.monotonic() + t_max
    while n != len(srv.log) and time.monotonic() < t_end:
        n = len(srv.log)
        time.sleep(0.3)
    return n


def test_the_same_server_error_for_every_image_request_stops_the_run_and_names_text_only(bench, tmp_path):
    """llama.cpp's server answers every image request to a text-only model with one HTTP 500: the
    run stops after the first few, retries almost nothing, and says --text-only may be meant."""
    from harness import client
    recs = _records(bench)
    srv = FakeEndpoint(recs, root=str(bench), text_only=False, images_500=True)
    out = tmp_path / "out"
    try:
        with pytest.raises(SystemExit) as e:
            evaluate.main(_image_args(bench, srv, out, "--retries", "5"))
        n_sent = _settle(srv)
    finally:
        srv.close()
    msg = str(e.value)
    assert "the first 5 requests all failed with the same server error" in msg and "\n" not in msg
    assert 'HTTP 500: can only concatenate str (not "list") to str' in msg and "--text-only may be" in msg
    # each record asked at most once, but for the replies before the same error was seen 3 times
    # (6 tries a record, 48 requests, before); at least the 5 failures the run stopped on
    assert evaluate.REFUSALS_TO_STOP <= n_sent <= len(recs) + client.SAME_ERROR_TRIP - 1
    assert len(_lines(out / evaluate.ENDPOINT_FILE)) == evaluate.REFUSALS_TO_STOP
    assert not (out / "predictions.jsonl").exists()


def test_a_server_error_that_passes_is_retried_not_taken_for_a_refusal(bench, tmp_path):
    """The same HTTP 500 twice, then answers: under the trip count, so retried as before."""
    recs = _records(bench)
    srv = FakeEndpoint(recs, faults={recs[0]["id"]: ["500"], recs[1]["id"]: ["500"]})
    try:
        s = evaluate.main(_args(bench, srv, tmp_path / "out", "--concurrency", "1"))
    finally:
        srv.close()
    assert s["overall"] == 100.0 and s["n_failed"] == 0


def test_empty_and_cut_replies_are_counted_per_task_and_the_reasoning_shown(bench, tmp_path):
    recs = _records(bench)
    a, b, c = recs[0], recs[1], recs[2]
    assert a["task"] == b["task"] != c["task"]
    srv = FakeEndpoint(recs, faults={a["id"]: ["empty"], b["id"]: ["length"], c["id"]: ["empty"]})
    out = tmp_path / "out"
    try:
        s = evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    # content null with the answer only in the reasoning, and a reply cut at max tokens: both score 0
    assert s["n_correct"] == len(recs) - 3 and s["n_failed"] == 0
    assert s["n_empty"] == 2 and s["n_cut"] == 1
    assert s["per_task_empty"] == {t: (t in (a["task"], c["task"])) * 1 for t in s["per_task"]}
    assert s["per_task_cut"] == {t: (t == b["task"]) * 1 for t in s["per_task"]}
    assert json.load(open(out / "summary.json"))["per_task_cut"] == s["per_task_cut"]
    table = (out / "table.md").read_text()
    assert "| Task | Group | Accuracy | empty | cut at max tokens |" in table
    assert f"| {a['task']} | {tasks.get(a['task']).group} | 0.0 | 1 | 1 |" in table
    assert "**2 of 8 replies are empty**" in table and "**1 of 8 replies were cut at max tokens**" in table
    html = (out / "report.html").read_text()
    assert f'<td data-key="empty:{a["task"]}">1</td>' in html and f'<td data-key="cut:{b["task"]}">1</td>' in html
    # the reasoning, where the empty reply's answer is, is on the page, collapsed
    entry = html.split(f'id="{a["id"]}"')[1].split('<div class="entry"')[0]
    assert '<details class="reasoning"><summary>reasoning' in entry and "so it is \\boxed{" in entry
    assert "empty: no answer text" in entry
    assert "cut at max tokens" in html.split(f'id="{b["id"]}"')[1].split('<div class="entry"')[0]


def test_a_long_retry_after_is_said_and_capped(bench, tmp_path, monkeypatch, capsys):
    from harness import client
    recs = _records(bench)
    srv = FakeEndpoint(recs, faults={recs[0]["id"]: ["429"]}, retry_after="100")
    try:
        t0 = time.monotonic()
        with pytest.raises(SystemExit) as e:     # 100 s asked, 1 s allowed: failed at once
            evaluate.main(_args(bench, srv, tmp_path / "a", "--max-retry-wait", "1"))
        waited = time.monotonic() - t0
        row = {r["id"]: r for r in _lines(tmp_path / "a/predictions.jsonl")}[recs[0]["id"]]
        n_asked = sum(x["id"] == recs[0]["id"] for x in srv.log)
        # a wait said on stderr: here from 0.1 s on (NOTE_AFTER), with what is waited for
        monkeypatch.setattr(client, "NOTE_AFTER", 0.1)
        srv.retry_after = "0.3"
        srv.faults = {recs[1]["id"]: ["429"]}
        srv.n.clear()                            # the fault plans count from this run's requests
        capsys.readouterr()
        s = evaluate.main(_args(bench, srv, tmp_path / "b"))
        err = capsys.readouterr().err
    finally:
        srv.close()
    # 100 s would have been waited before; 10 s leaves a loaded machine a wide margin
    assert waited < 10 and "1 of 8 requests failed" in str(e.value)
    assert row["failed"] and "Retry-After" in row["error"] and "100 s" in row["error"]
    assert "--max-retry-wait" in row["error"] and n_asked == 1
    assert s["overall"] == 100.0
    said = [ln for ln in err.splitlines() if ln.startswith("note: waiting")]
    assert len(said) == 1 and recs[1]["id"] in said[0], err
    assert "Retry-After" in said[0] and "HTTP 429: slow down" in said[0] and "0.3 s" in said[0]


def test_a_trickled_reply_meets_the_deadline(bench, tmp_path):
    """One byte every 0.05 s never trips --timeout (seconds without a byte), and the whole reply
    would take about 20 s; --deadline 1 cuts each try at 1 s."""
    recs = _records(bench)
    slow, never = recs[0]["id"], recs[1]["id"]
    srv = FakeEndpoint(recs, faults={slow: ["trickle"], never: ["trickle", "trickle"]})
    out = tmp_path / "out"
    try:
        with pytest.raises(SystemExit) as e:
            evaluate.main(_args(bench, srv, out, "--deadline", "1", "--retries", "1"))
    finally:
        srv.close()
    assert "1 of 8 requests failed" in str(e.value)
    got = {x["id"]: x for x in _lines(out / evaluate.ENDPOINT_FILE)}
    assert got[slow]["attempts"] == 2 and "\\boxed{" in got[slow]["response"]
    assert got[never]["failed"] and "deadline of 1.0 s" in got[never]["error"]
    t = [x["t"] for x in srv.log if x["id"] == slow]
    assert 1.0 <= t[1] - t[0] < 10, t      # cut at the deadline, far from the 20 s the reply takes


def test_invalid_utf8_is_replaced_kept_and_counted(bench, tmp_path):
    """A server that sends a bad byte sends it on every try: the reply is kept (the byte replaced
    by U+FFFD) at the first try and counted, where before every retry failed."""
    recs = _records(bench)
    bad = recs[0]["id"]
    srv = FakeEndpoint(recs, faults={bad: ["badutf8"] * 4})
    out = tmp_path / "out"
    try:
        s = evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    assert s["overall"] == 100.0 and s["n_failed"] == 0 and s["n_invalid_utf8"] == 1
    row = {r["id"]: r for r in _lines(out / "predictions.jsonl")}[bad]
    assert row["response"].startswith("\ufffdI checked it.") and row["invalid_utf8"] == 1
    assert row["attempts"] == 1 and sum(x["id"] == bad for x in srv.log) == 1
    assert "1 replies held bytes that are not UTF-8" in (out / "table.md").read_text()


def test_preflight_wants_the_exact_model_name(bench, tmp_path):
    """A server listing /path/to/smollm does not serve 'smollm': refused before anything is
    written, with the listed name offered; the listed name itself runs."""
    from harness import client
    recs = _records(bench)
    srv = FakeEndpoint(recs, models=("/path/to/smollm",))
    out = tmp_path / "out"
    try:
        args = _args(bench, srv, out)
        args[args.index("--endpoint-model") + 1] = "smollm"
        with pytest.raises(SystemExit) as e:
            evaluate.main(args)
        assert srv.log == [] and not out.exists()
        args[args.index("--endpoint-model") + 1] = "/path/to/smollm"
        s = evaluate.main(args)
        # Gemini's style, "models/<name>" listed and "<name>" served, still passes
        srv.models = ["models/gemini-x"]
        assert client.preflight(srv.url, model="gemini-x") is None
        assert "does not serve model 'gemini'" in client.preflight(srv.url, model="gemini")
    finally:
        srv.close()
    assert "does not serve model 'smollm'" in str(e.value) and "\n" not in str(e.value)
    assert "did you mean --endpoint-model /path/to/smollm?" in str(e.value)
    assert s["overall"] == 100.0


def test_a_url_without_v1_fails_preflight_with_the_fix_and_writes_nothing(bench, tmp_path):
    recs = _records(bench)
    srv = FakeEndpoint(recs)
    out = tmp_path / "out"
    bare = srv.url[:-len("/v1")]
    try:
        args = _args(bench, srv, out)
        args[args.index("--endpoint") + 1] = bare
        with pytest.raises(SystemExit) as e:
            evaluate.main(args)
        assert srv.log == [] and not out.exists()
        s = evaluate.main(_args(bench, srv, out))     # the corrected URL is not refused
    finally:
        srv.close()
    msg = str(e.value)
    assert "HTTP 404" in msg and f"did you mean {srv.url}?" in msg and "\n" not in msg
    assert s["overall"] == 100.0


def test_the_served_model_name_is_kept_and_a_difference_said_once(bench, tmp_path, capsys):
    recs = _records(bench)
    srv = FakeEndpoint(recs, served_as="m-2025-01-01")
    out = tmp_path / "out"
    try:
        s = evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    err = capsys.readouterr().err
    said = [ln for ln in err.splitlines() if "answers as model" in ln]
    assert len(said) == 1 and "'m-2025-01-01'" in said[0] and "--endpoint-model 'm'" in said[0], err
    assert {x["model"] for x in _lines(out / evaluate.ENDPOINT_FILE)} == {"m-2025-01-01"}
    assert {r["model"] for r in _lines(out / "predictions.jsonl")} == {"m-2025-01-01"}
    assert s["endpoint"]["served_as"] == ["m-2025-01-01"] and s["overall"] == 100.0


def test_an_unasked_for_stream_is_named_and_not_retried(bench, tmp_path):
    recs = _records(bench)
    rid = recs[0]["id"]
    srv = FakeEndpoint(recs, faults={rid: ["stream"] * 4})
    out = tmp_path / "out"
    try:
        with pytest.raises(SystemExit) as e:
            evaluate.main(_args(bench, srv, out))
    finally:
        srv.close()
    assert "1 of 8 requests failed" in str(e.value)
    row = {r["id"]: r for r in _lines(out / "predictions.jsonl")}[rid]
    assert "text/event-stream" in row["error"] and '"stream": false' in row["error"]
    assert "JSONDecodeError" not in row["error"] and sum(x["id"] == rid for x in srv.log) == 1


def test_a_batch_outputs_failures_are_named_kept_and_sent_again(bench, tmp_path):
    """A batch output's failed lines (HTTP 500 and 400 with their bodies, an expired line): each
    keeps its message, the exit names every failed custom_id and does not promise that scoring
    again retries anything; --export-requests with --predictions writes just those requests,
    and their output scored after the first's replaces the failures."""
    recs = _records(bench)

    def answer(r):
        return {"id": f"b-{r['id']}", "custom_id": r["id"], "error": None, "response": {
            "status_code": 200, "body": {"model": "m", "choices": [{"message": {
                "content": f"\\boxed{{{r['answer']}}}"}, "finish_reason": "stop"}]}}}
    lines = [answer(r) for r in recs]
    lines[0]["response"] = {"status_code": 500, "body": {"error": {"message": "the model crashed",
                                                                  "type": "server_error"}}}
    lines[1]["response"] = {"status_code": 400, "body": {"error": {"message": "max_tokens is too large"}}}
    lines[2] = {"id": "b-2", "custom_id": recs[2]["id"], "response": None,
                "error": {"code": "batch_expired", "message": "the batch expired"}}
    batch = tmp_path / "batch_output.jsonl"
    batch.write_text("".join(json.dumps(x) + "\n" for x in lines))
    common = ["--records", str(bench / "records.jsonl"), "--quiet"]
    with pytest.raises(SystemExit) as e:
        evaluate.main([*common, "--predictions", str(batch), "--out", str(tmp_path / "b")])
    msg = str(e.value)
    assert "3 of 8 requests failed" in msg and all(r["id"] in msg for r in recs[:3])
    assert "rerun the same command" not in msg and "Scoring the file again retries nothing" in msg
    rows = {r["id"]: r for r in _lines(tmp_path / "b/predictions.jsonl")}
    assert rows[recs[0]["id"]]["error"] == "batch: HTTP 500: the model crashed"
    assert rows[recs[1]["id"]]["error"] == "batch: HTTP 400: max_tokens is too large"
    assert rows[recs[2]["id"]]["error"] == "batch: the batch expired"
    table = (tmp_path / "b/table.md").read_text()
    assert "rerun the same command" not in table and "scoring the file again retries nothing" in table
    # the requests to send again: exactly the three failed ones
    retry = tmp_path / "retry.jsonl"
    evaluate.main([*common, "--export-requests", str(retry), "--predictions", str(batch), "--endpoint-model", "m"])
    assert [x["custom_id"] for x in _lines(retry)] == [r["id"] for r in recs[:3]]
    # their output after the first's: every failure replaced by its answer
    both = tmp_path / "both.jsonl"
    both.write_text(batch.read_text() + "".join(json.dumps(answer(r)) + "\n" for r in recs[:3]))
    s = evaluate.main([*common, "--predictions", str(both), "--out", str(tmp_path / "c")])
    assert s["overall"] == 100.0 and s["n_failed"] == 0
