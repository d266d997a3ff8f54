"""
Benchmark: records per second of evaluate.py's endpoint mode against a local server that answers
every request after a fixed delay, at several concurrencies, beside the ideal.

    python bench/endpoint.py                                   # delay 0.5 s, concurrency 1,4,16,64
    python bench/endpoint.py --delay 0.2 --concurrency 1,16,64

The server is a http.server.ThreadingHTTPServer on 127.0.0.1 (an ephemeral port) in a separate
process, so its threads do not share the client's GIL: GET /v1/models lists model "bench", POST
/v1/chat/completions reads the body, sleeps --delay seconds and answers "\\boxed{1}". The records
are synthesised once (synth.py, image mode) into a temporary folder, so every request reads and
base64-encodes its PNGs as a real run does. Each concurrency c runs evaluate.main on the first
max(8c, 32, --min-records) records (rounded up to a multiple of c) into its own --out.

Ideal: c / delay records/s -- c requests always in flight, each taking exactly the server's delay
and nothing else (the client, JSON, images, files cost nothing). Two measured columns: the
request phase alone (the rate evaluate.py prints: `endpoint: ... (X records/s)`) and end to end
(wall clock around evaluate.main: loading records, preflight, scoring, table.md, report.html).
ideal/measured uses the request phase; the issue's target is within 1.3x at concurrency 64.
"""
import argparse
import contextlib
import http.server
import io
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import evaluate  # noqa: E402
import synth  # noqa: E402

REPLY = json.dumps({"choices": [{"message": {"content": "\\boxed{1}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
MODELS = json.dumps({"data": [{"id": "bench"}]}).encode()


def serve(delay, port_pipe):
    """The server process: sends its port back through the pipe, then serves until terminated."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, code, body):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200, MODELS) if self.path.rstrip("/") == "/v1/models" else self._send(404, b"{}")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))   # the whole body, as a server would
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, b"{}")
            time.sleep(delay)
            self._send(200, REPLY)

        def log_message(self, *a):   # one line per request would cost the server and flood the terminal
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256     # the listen backlog: 64 clients connect at once, the default 5 drops some

    srv = Server(("127.0.0.1", 0), Handler)
    port_pipe.send(srv.server_address[1])
    srv.serve_forever()


def run_level(records, url, c, n, out):
    """(request-phase rec/s as evaluate.py printed it, end-to-end rec/s, error or None)."""
    err_buf = io.StringIO()
    argv = ["--records", records, "--endpoint", url, "--endpoint-model", "bench", "--concurrency", str(c),
            "--limit", str(n), "--out", out, "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    error = None
    with contextlib.redirect_stderr(err_buf), contextlib.redirect_stdout(io.StringIO()):
        try:
            evaluate.main(argv)
        except SystemExit as e:      # failed requests (or a refused preflight) exit with a message
            error = str(e.code)
    wall = time.perf_counter() - t0
    m = re.search(r"asked now: (\d+) answered, (\d+) failed.*\(([\d.]+) records/s\)", err_buf.getvalue())
    if not m:
        return None, n / wall, error or "no 'endpoint: ... records/s' line on stderr"
    if int(m.group(2)):   # failures return at once: their rate says nothing about throughput
        return None, None, error or f"{m.group(2)} of {n} requests failed"
    return float(m.group(3)), n / wall, error


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--delay", type=float, default=0.5, help="seconds the server takes per request")
    p.add_argument("--concurrency", default="1,4,16,64", help="comma-separated concurrencies")
    p.add_argument("--min-records", type=int, default=32, help="at least this many records per concurrency")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    # a multiple of c: the last wave is full, so c / delay is the exact ideal for n records
    sizes = {c: math.ceil(max(8 * c, 32, args.min_records) / c) * c for c in levels}
    print(f"cpu_count {os.cpu_count()}, delay {args.delay} s")

    ctx = multiprocessing.get_context("spawn")   # a fresh interpreter: no inherited threads or locks
    recv, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=serve, args=(args.delay, send), daemon=True)
    server.start()
    rows, failed = [], []
    try:
        if not recv.poll(60):
            sys.exit("error: the server process did not report its port within 60 s")
        url = f"http://127.0.0.1:{recv.recv()}/v1"
        with tempfile.TemporaryDirectory(prefix="bench_endpoint_") as d:
            # one pool for all levels: synth's bench split has 42 tasks x 5 levels per --count
            count = math.ceil(max(sizes.values()) / 210)
            with contextlib.redirect_stderr(io.StringIO()):   # synth's per-task table is not ours to print
                synth.main(["--out", os.path.join(d, "data"), "--count", str(count), "--workers", "2", "--quiet"])
            records = os.path.join(d, "data", "records.jsonl")
            for c in levels:
                req, e2e, error = run_level(records, url, c, sizes[c], os.path.join(d, f"c{c}"))
                rows.append((c, sizes[c], c / args.delay, req, e2e))
                if error:
                    failed.append(f"concurrency {c}: {error.splitlines()[0][:300]}")
    finally:
        server.terminate()
        server.join(10)

    head = ("concurrency", "records", "delay s", "ideal rec/s", "measured rec/s (requests)",
            "end-to-end rec/s", "ideal/measured")
    cells = [[str(c), str(n), f"{args.delay:g}", f"{ideal:.1f}", f"{req:.1f}" if req else "-",
              f"{e2e:.1f}" if e2e else "-", f"{ideal / req:.2f}x" if req else "-"] for c, n, ideal, req, e2e in rows]
    width = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]
    for r in [head, ["-" * w for w in width]] + cells:
        print(" | ".join(v.rjust(w) for v, w in zip(r, width)))
    at64 = next((ideal / req for c, _, ideal, req, _ in rows if c == 64 and req), None)
    if at64 is None:
        print("concurrency 64: not measured" + (" (requests failed)" if failed else ""))
    else:
        print(f"concurrency 64: {at64:.2f}x the ideal -- {'within' if at64 <= 1.3 else 'NOT within'} 1.3x")
    for f in failed:
        print(f"error: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
