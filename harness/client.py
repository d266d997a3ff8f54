"""An OpenAI-compatible /chat/completions client (vLLM, SGLang, transformers serve, API models)
in the standard library: one place for it, used by elicit.py (the SERG rewriter) and
evaluate.py (endpoint mode). No torch, no SDK.

    from harness import client
    problem = client.preflight("http://localhost:8000/v1", api_key, model="Qwen2.5-VL-7B")
    c = client.Client("http://localhost:8000/v1", api_key, timeout=600, retries=5)
    reply = c.chat({"model": "Qwen2.5-VL-7B", "messages": [...], "max_tokens": 512})
    for key, reply, error in c.map([(key, payload), ...], concurrency=8): ...

What is retried: HTTP 429 and 5xx (and 408), after the server's Retry-After when it sends one,
else after an exponential back-off with jitter; connection errors (refused, reset, closed
early) and timeouts; a 200 whose body is not a chat completion. What is not: any other 4xx
(a bad request, a wrong key, an unknown model), which would fail the same way again. A request
that fails for good raises RequestFailed with the last error, so that the caller records it as
failed (never as an empty answer).
"""
from __future__ import annotations

import base64
import email.utils
import http.client
import json
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

RETRY_STATUS = (408, 429)          # and every 5xx
MAX_DELAY = 60.0                   # seconds: the back-off's ceiling (a Retry-After is honoured whole)


class RequestFailed(RuntimeError):
    """A request that did not succeed: `retryable` False for a refusal (4xx), True when the
    retries ran out on errors that may pass (429, 5xx, resets, timeouts)."""

    def __init__(self, message, attempts, retryable):
        super().__init__(message)
        self.attempts, self.retryable = attempts, retryable


@dataclass
class Reply:
    content: str                   # the answer text ("" when the server sent none)
    reasoning: str | None          # reasoning_content / reasoning, where the server splits it out
    finish_reason: str | None
    usage: dict | None             # prompt_tokens, completion_tokens, ... as the server counted
    latency_s: float               # the successful attempt, from send to the last byte
    attempts: int                  # 1 + retries it took


def headers(api_key):
    h = {"Content-Type": "application/json"}
    if api_key:
        h["Authorization"] = f"Bearer {api_key}"
    return h


def _error_text(e: urllib.error.HTTPError) -> str:
    """'HTTP 400: <the server's message>', the message cut to one short line."""
    try:
        body = e.read().decode("utf-8", "replace")
    except Exception:
        body = ""
    msg = body
    try:
        obj = json.loads(body)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        msg = err.get("message", err) if isinstance(err, dict) else err
    except ValueError:
        pass
    msg = " ".join(str(msg).split())[:300]
    return f"HTTP {e.code}" + (f": {msg}" if msg else "")


def retry_after(value) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_reply(body: dict) -> tuple[str, str | None, str | None, dict | None]:
    """(content, reasoning, finish_reason, usage) of a chat completion; raises ValueError if
    `body` is not one. Content given as a list of parts (some servers) is joined."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise ValueError(f"not a chat completion (no choices): {json.dumps(body)[:200]}")
    choice = body["choices"][0]
    msg = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(msg, dict):
        raise ValueError("not a chat completion (choices[0] has no message)")
    content = msg.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    return str(content), reasoning, choice.get("finish_reason"), usage


class Client:
    """One endpoint; thread-safe. `calls` counts HTTP requests sent, `retried` the retries."""

    def __init__(self, url, api_key=None, timeout=600.0, retries=5, backoff=2.0):
        self.url = url.rstrip("/") + "/chat/completions"
        self.api_key, self.timeout, self.retries, self.backoff = api_key, timeout, retries, backoff
        self.lock = threading.Lock()
        self.calls = self.retried = 0

    def _delay(self, k, after):
        """Seconds to wait before retry k (1, 2, ...): the server's Retry-After when it gave one
        (never sooner), else backoff * 2^(k-1), capped, scaled by a random 0.5-1 (jitter: the
        threads that failed together do not come back together)."""
        if after is not None:
            return after * (1 + 0.1 * random.random())
        return min(MAX_DELAY, self.backoff * 2 ** (k - 1)) * (0.5 + 0.5 * random.random())

    def chat(self, payload: dict) -> Reply:
        data = json.dumps(payload).encode()
        last, after = None, None
        for k in range(self.retries + 1):
            if k:
                with self.lock:
                    self.retried += 1
                time.sleep(self._delay(k, after))
            after = None
            with self.lock:
                self.calls += 1
            t0 = time.perf_counter()
            try:
                req = urllib.request.Request(self.url, data, headers(self.api_key))
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    body = json.loads(r.read().decode("utf-8"))
                content, reasoning, finish, usage = parse_reply(body)
                return Reply(content, reasoning, finish, usage, time.perf_counter() - t0, k + 1)
            except urllib.error.HTTPError as e:
                last = _error_text(e)
                if not (e.code in RETRY_STATUS or e.code >= 500):
                    raise RequestFailed(f"endpoint refused the request: {last}", k + 1, False) from None
                after = retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError) as e:
                # URLError: refused / unreachable; HTTPException: closed mid-reply; OSError: reset;
                # TimeoutError: no byte within `timeout`; ValueError: a 200 that is not a completion
                reason = getattr(e, "reason", None) or e
                last = f"{type(e).__name__}: {reason}"
        raise RequestFailed(f"endpoint failed after {self.retries + 1} tries: {last}", self.retries + 1, True)

    def map(self, jobs, concurrency=8):
        """jobs: [(key, payload or a function that makes it)] -> yields (key, Reply or None,
        RequestFailed or None) as replies arrive, `concurrency` requests in flight. The workers
        are daemon threads fed one job at a time: closing the generator (or Ctrl-C in the
        caller) starts no new request, and a killed caller leaves nothing behind."""
        jobs = list(jobs)
        todo, done, stop = queue.Queue(), queue.Queue(), threading.Event()
        for j in jobs:
            todo.put(j)

        def work():
            while not stop.is_set():
                try:
                    key, payload = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((key, self.chat(payload() if callable(payload) else payload), None))
                except RequestFailed as e:
                    done.put((key, None, e))
                except Exception as e:  # a bug must reach the caller as an error, not hang it
                    done.put((key, None, RequestFailed(f"{type(e).__name__}: {e}", 0, True)))

        for _ in range(min(concurrency, len(jobs))):
            threading.Thread(target=work, daemon=True).start()
        try:
            for _ in jobs:
                yield done.get()
        finally:
            stop.set()


def preflight(url, api_key=None, timeout=10.0, model=None, key_flag="--api-key-env"):
    """One GET of <url>/models before any work: None if a server answers, else one line saying
    why not (nothing listens, a wrong key, and with `model`: a model the server does not list).
    A dead endpoint so fails a run in seconds instead of after every record's retries."""
    req = urllib.request.Request(url.rstrip("/") + "/models", headers=headers(api_key))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return f"{url}: the endpoint refused us (HTTP {e.code}); check the key ({key_flag})"
        return None   # any other answer (e.g. 404: no /models route) means a server is there
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return f"{url}: the endpoint does not answer ({type(e).__name__}: {reason})"
    if model is None:
        return None
    try:
        listed = [m["id"] for m in json.loads(body)["data"] if isinstance(m, dict) and "id" in m]
    except (ValueError, KeyError, TypeError):
        return None   # a listing we cannot read proves nothing either way
    # "models/gemini-x" style ids serve requests for "gemini-x"
    if listed and not any(i == model or i.endswith("/" + model) for i in listed):
        shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
        return f"{url}: the endpoint does not serve model {model!r} (it lists: {shown})"
    return None


# ---- what is sent: our chat messages (images by path) as OpenAI content parts --------------------
MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}


def image_part(path) -> dict:
    """An image file as an OpenAI `image_url` part with a base64 data URL (type from its bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    mime = next((m for sig, m in MIME.items() if data.startswith(sig)), None) or \
        {".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(os.path.splitext(path)[1].lower(), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def openai_messages(messages) -> list[dict]:
    """tasks.messages_for's turns -> OpenAI chat messages: each image item (a path) becomes an
    image_url part in place, so the order is kept; a turn of text only is sent as one string
    (what text-only models' templates expect)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            if all(it.get("type") == "text" for it in content):
                content = "".join(it["text"] for it in content)
            else:
                content = [image_part(it["image"]) if it["type"] == "image" else {"type": "text", "text": it["text"]}
                           for it in content]
        out.append({"role": m["role"], "content": content})
    return out
