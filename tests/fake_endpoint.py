"""A chat-completions server on 127.0.0.1 for the endpoint tests, in the standard library.

It answers each prompt with that record's gold answer, boxed, except where `faults` says what
the n-th request of a prompt gets instead: "429" (with Retry-After), "500", "503", "400",
"reset" (the connection closed with a TCP reset, no reply), "hang" (no byte for longer than the
client waits), "garbage" (a 200 that is not JSON), "empty" (content null, the answer only in
reasoning_content), "length" (cut at max tokens: finish_reason "length", no answer yet),
"trickle" (the right reply, one byte every `trickle` seconds), "badutf8" (the right reply with
a byte that is not UTF-8 in its content), "stream" (an unasked-for text/event-stream reply).
Server-wide: `images_500` answers every request that carries an image with the same HTTP 500
(as llama.cpp's server does for a text-only model), `served_as` names another model in every
reply, `models` is what GET /v1/models lists, and any path outside /v1 is a 404. Every request
is logged: the time, the record it asked for, what it got and the body it sent.
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
                 retry_after="0.2", hang=1.5, reasoning=False, images_500=False, served_as=None, trickle=0.05):
        self.by_prompt = {record_key(r, text_only, root): r for r in records}
        assert len(self.by_prompt) == len(records), "two records would send the same request"
        self.faults = faults or {}          # {record id: [fault of request 1, of request 2, ...]}
        self.delay, self.models, self.key = delay, list(models), key
        self.retry_after, self.hang, self.reasoning = retry_after, hang, reasoning
        self.images_500, self.served_as, self.trickle = images_500, served_as, trickle
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
                if self.path != "/v1/models":
                    self._send(404, {"detail": "Not Found"})
                elif self._authorised():
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    with server.lock:
                        server.log.append({"t": time.monotonic(), "id": None, "got": "404", "body": body,
                                           "auth": self.headers.get("Authorization")})
                    self._send(404, {"detail": "Not Found"})
                    return
                if not self._authorised():
                    return
                rec = server.by_prompt.get(request_key(body))
                rid = rec["id"] if rec else None
                with server.lock:
                    k = server.n[rid] = server.n.get(rid, 0) + 1
                plan = server.faults.get(rid, [])
                fault = plan[k - 1] if k <= len(plan) else "ok"
                content = body["messages"][-1]["content"]
                if server.images_500 and not isinstance(content, str) and any(
                        p["type"] == "image_url" for p in content):
                    fault = "images_500"
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
                elif fault == "images_500":   # llama_cpp.server's reply to an image for a text-only model
                    self._send(500, {"error": {"message": 'can only concatenate str (not "list") to str'}})
                elif fault == "stream":
                    chunk = {"id": f"c-{rid}", "object": "chat.completion.chunk", "model": body["model"],
                             "choices": [{"index": 0, "delta": {"content": "I"}, "finish_reason": None}]}
                    data = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    answer = rec["answer"] if rec else "?"
                    msg = {"role": "assistant", "content": f"I checked it.\n\\boxed{{{answer}}}"}
                    finish = "stop"
                    if server.reasoning:
                        msg["reasoning_content"] = f"thinking about {rid}"
                    if fault == "empty":
                        msg = {"role": "assistant", "content": None,
                               "reasoning_content": f"so it is \\boxed{{{answer}}}"}
                    elif fault == "length":
                        msg, finish = {"role": "assistant", "content": "I checked it. So far the"}, "length"
                    elif fault == "badutf8":
                        msg["content"] = "BAD" + msg["content"]
                    n_prompt = len(json.dumps(body["messages"])) // 4
                    data = json.dumps({"id": f"c-{rid}-{k}", "object": "chat.completion",
                                       "model": server.served_as or body["model"],
                                       "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                                       "usage": {"prompt_tokens": n_prompt, "completion_tokens": 7,
                                                 "total_tokens": n_prompt + 7}}).encode()
                    if fault == "badutf8":   # a lone continuation byte: not UTF-8
                        data = data.replace(b"BAD", b"\x80", 1)
                    if fault != "trickle":
                        self._send(200, data)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(server.trickle)
                    except OSError:   # the client gave up on it
                        self.close_connection = True

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
