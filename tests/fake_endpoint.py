"""A chat-completions server on 127.0.0.1 for the endpoint tests, in the standard library.

It answers each prompt with that record's gold answer, boxed, except where `faults` says what
the n-th request of a prompt gets instead: "429" (with Retry-After), "500", "503", "400",
"reset" (the connection closed with a TCP reset, no reply), "hang" (no byte for longer than the
client waits), "garbage" (a 200 that is not JSON). Every request is logged: the time, the
record it asked for, what it got and the body it sent.
"""
import base64
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tasks


def request_key(body):
    """What identifies a record in a request: the prompt text and the images' bytes (in image
    mode two records of a task and level can share a question: their state is in the image)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content, ()
    text = "".join(p.get("text", "") for p in content if p["type"] == "text")
    images = tuple(base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
                   for p in content if p["type"] == "image_url")
    return text, images


def record_key(record, text_only, root):
    images = () if text_only else tuple(open(p, "rb").read() for p in tasks.record_images(record, root))
    return tasks.build_prompt(record, text_only), images


class FakeEndpoint:
    def __init__(self, records, root=".", text_only=True, faults=None, delay=0.0, models=("m",), key=None,
                 retry_after="0.2", hang=1.5, reasoning=False):
        self.by_prompt = {record_key(r, text_only, root): r for r in records}
        assert len(self.by_prompt) == len(records), "two records would send the same request"
        self.faults = faults or {}          # {record id: [fault of request 1, of request 2, ...]}
        self.delay, self.models, self.key = delay, list(models), key
        self.retry_after, self.hang, self.reasoning = retry_after, hang, reasoning
        self.log, self.lock, self.n = [], threading.Lock(), {}
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, payload, headers=()):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self):
                if server.key is None or self.headers.get("Authorization") == f"Bearer {server.key}":
                    return True
                self._send(401, {"error": {"message": "invalid api key"}})
                return False

            def do_GET(self):
                if self._authorised():
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self._authorised():
                    return
                rec = server.by_prompt.get(request_key(body))
                rid = rec["id"] if rec else None
                with server.lock:
                    k = server.n[rid] = server.n.get(rid, 0) + 1
                plan = server.faults.get(rid, [])
                fault = plan[k - 1] if k <= len(plan) else "ok"
                with server.lock:
                    server.log.append({"t": time.monotonic(), "id": rid, "got": fault, "body": body,
                                       "auth": self.headers.get("Authorization")})
                time.sleep(server.delay)
                if fault == "429":
                    self._send(429, {"error": {"message": "slow down"}}, [("Retry-After", server.retry_after)])
                elif fault in ("500", "503", "400"):
                    self._send(int(fault), {"error": {"message": f"fault {fault} for this request"}})
                elif fault == "reset":   # SO_LINGER 0: close() sends RST, the client sees a reset
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                elif fault == "hang":
                    time.sleep(server.hang)
                    self.close_connection = True
                elif fault == "garbage":
                    self._send(200, b"<html>proxy error</html>")
                else:
                    answer = rec["answer"] if rec else "?"
                    msg = {"role": "assistant", "content": f"I checked it.\n\\boxed{{{answer}}}"}
                    if server.reasoning:
                        msg["reasoning_content"] = f"thinking about {rid}"
                    n_prompt = len(json.dumps(body["messages"])) // 4
                    self._send(200, {"id": f"c-{rid}-{k}", "object": "chat.completion", "model": body["model"],
                                     "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": n_prompt, "completion_tokens": 7,
                                               "total_tokens": n_prompt + 7}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answered(self):
        """{record id: number of 'ok' replies sent}."""
        out = {}
        for e in self.log:
            if e["got"] == "ok":
                out[e["id"]] = out.get(e["id"], 0) + 1
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
