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
early), timeouts and a 200 whose body is not a chat completion. What is not: any other 4xx (a
bad request, a wrong key, an unknown model), which would fail the same way again; a streamed
reply nobody asked for (text/event-stream: the server streams by default, and will again); a
Retry-After longer than `max_wait`; and, before any request has been answered, the same HTTP
500 body for the third time (a server that cannot take this kind of request at all, such as a
text-only server sent images: every request would be retried in full for nothing). A request
that fails for good raises RequestFailed with the last error, so that the caller records it as
failed (never as an empty answer).

Two clocks bound a request: `timeout` is how long the socket may go without a byte, `deadline`
how long one attempt may take in all (a reply trickled a byte at a time never trips the first).
A reply that is not valid UTF-8 is kept, its bad bytes replaced by U+FFFD and counted
(Reply.invalid_utf8): a deterministic server would send the same bytes on every retry.
"""
from __future__ import annotations

import base64
import email.utils
import http.client
import json
import os
import queue
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

RETRY_STATUS = (408, 429)          # and every 5xx
MAX_DELAY = 60.0                   # seconds: the back-off's ceiling (a Retry-After is honoured up to max_wait)
NOTE_AFTER = 5.0                   # seconds: a wait at least this long is said on stderr
# A 5xx that says "come back later" (a gateway or an overloaded server) is not counted as the
# server refusing a kind of request: 502, 503 and 504, and any reply with a Retry-After.
PASSING_STATUS = (502, 503, 504)
SAME_ERROR_TRIP = 3                # identical other-5xx replies, before any answer, that stop the retries


class RequestFailed(RuntimeError):
    """A request that did not succeed: `retryable` False for a refusal (4xx, an unasked-for
    stream), True when the retries ran out on errors that may pass (429, 5xx, resets,
    timeouts). `last` is the last error's text, `status` its HTTP status (None when no HTTP
    reply came: a reset, a timeout)."""

    def __init__(self, message, attempts, retryable, last=None, status=None):
        super().__init__(message)
        self.attempts, self.retryable, self.last, self.status = attempts, retryable, last, status


@dataclass
class Reply:
    content: str                   # the answer text ("" when the server sent none)
    reasoning: str | None          # reasoning_content / reasoning, where the server splits it out
    finish_reason: str | None
    usage: dict | None             # prompt_tokens, completion_tokens, ... as the server counted
    latency_s: float               # the successful attempt, from send to the last byte
    attempts: int                  # 1 + retries it took
    model: str | None = None       # the name the server answered as (its reply's "model")
    invalid_utf8: int = 0          # bad byte sequences (or lone surrogates) replaced by U+FFFD


def headers(api_key):
    h = {"Content-Type": "application/json"}
    if api_key:
        h["Authorization"] = f"Bearer {api_key}"
    return h


def error_text(status, raw) -> str:
    """'HTTP 400: <the server's message>', the message cut to one short line."""
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    msg = body
    try:
        obj = json.loads(body)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        msg = err.get("message", err) if isinstance(err, dict) else err
    except ValueError:
        pass
    msg = " ".join(str(msg).split())[:300]
    return f"HTTP {status}" + (f": {msg}" if msg else "")


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


def seconds(s: float) -> str:
    """A wait as a person reads it: '0.3 s', '12 s', '600 s'."""
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(s):
    """(text, n): lone surrogates (a JSON escape such as \\ud800 that pairs with nothing) replaced
    by U+FFFD and counted; such a string could not be written to a UTF-8 file at all."""
    if not isinstance(s, str):
        return s, 0
    n = len(_SURROGATE.findall(s))
    return (_SURROGATE.sub("\ufffd", s) if n else s), n


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


# ---- the transport: urllib, with every socket of a request known, so a deadline can close it -------
_local = threading.local()   # per thread: the sockets of the request being made, the record's key


def _watch(sock):
    socks = getattr(_local, "socks", None)
    if socks is not None:
        socks.append(sock)


class _Watched(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _WatchedTLS(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _HTTP(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_Watched, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_WatchedTLS, req, context=self._context)


_opener = None


def opener():
    """urllib's opener (proxies from the environment as urlopen has them) whose connections
    register their socket with the calling thread."""
    global _opener
    if _opener is None:
        _opener = urllib.request.build_opener(_HTTP(), _HTTPS())
    return _opener


def _shut(socks):
    for s in socks:
        try:   # the plain socket's shutdown, also for TLS: the reading thread owns the TLS state
            socket.socket.shutdown(s, socket.SHUT_RDWR)
        except OSError:
            pass


def post(url, data, hdrs, timeout, deadline):
    """One POST: (status, headers, body bytes), for an error status too. `timeout`: seconds the
    socket may wait for a byte; `deadline`: seconds the whole exchange may take, past which its
    socket is shut and TimeoutError raised."""
    socks, expired = [], threading.Event()

    def expire():
        expired.set()
        _shut(socks)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    _local.socks = socks
    timer.start()
    try:
        req = urllib.request.Request(url, data, hdrs)
        try:
            with opener().open(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:   # an error status: its body is read under the deadline too
            try:
                raw = e.read() if e.fp is not None else b""
            finally:
                e.close()
            return e.code, e.headers, raw
    except (OSError, http.client.HTTPException, ValueError):
        if expired.is_set():
            raise TimeoutError(f"no whole reply within the deadline of {seconds(deadline)}") from None
        raise
    finally:
        timer.cancel()
        _local.socks = None


def decode_reply(raw: bytes, content_type: str, asked_stream=False):
    """(the body as JSON, invalid UTF-8 sequences replaced) of a 200. Raises RequestFailed for a
    stream (not retried: a server that streams by default will again; this client reads whole
    replies only) and ValueError for a body that is not JSON (retried: a proxy's error page may
    pass)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "text/event-stream":
        why = ('the request asked for one ("stream": true), and this client reads whole replies only: '
               'remove it from the request' if asked_stream else
               'it was not asked for; if the server streams by default, ask for "stream": false '
               "(evaluate.py: --extra-body '{\"stream\": false}')")
        raise RequestFailed(f"the endpoint sent a stream (Content-Type text/event-stream): {why}", 1, False,
                            "text/event-stream", 200)
    try:
        text, bad = raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        # every bad sequence becomes one U+FFFD; a U+FFFD the server sent itself is not counted
        text = raw.decode("utf-8", "replace")
        bad = text.count("\ufffd") - raw.count("\ufffd".encode())
    try:
        return json.loads(text), bad
    except ValueError:
        head = " ".join(text[:200].split())
        raise ValueError(f"a 200 whose body is not JSON (Content-Type {ctype or 'none'}): {head!r}") from None


class Client:
    """One endpoint; thread-safe. `calls` counts HTTP requests sent, `retried` the retries,
    `answered` the requests that got a reply. `note` gets the lines said while waiting (stderr)."""

    def __init__(self, url, api_key=None, timeout=600.0, retries=5, backoff=2.0, deadline=7200.0,
                 max_wait=600.0, note=None):
        self.url = url.rstrip("/") + "/chat/completions"
        self.api_key, self.timeout, self.retries, self.backoff = api_key, timeout, retries, backoff
        self.deadline, self.max_wait = deadline, max_wait
        self.note = note or (lambda line: print(line, file=sys.stderr, flush=True))
        self.lock = threading.Lock()
        self.calls = self.retried = self.answered = 0
        self.same = {}                  # other-5xx error text -> times seen before any answer
        self.last_note, self.unsaid = -1e9, 0

    def _delay(self, k, after):
        """Seconds to wait before retry k (1, 2, ...): the server's Retry-After when it gave one
        (never sooner), else backoff * 2^(k-1), capped, scaled by a random 0.5-1 (jitter: the
        threads that failed together do not come back together)."""
        if after is not None:
            return after * (1 + 0.1 * random.random())
        return min(MAX_DELAY, self.backoff * 2 ** (k - 1)) * (0.5 + 0.5 * random.random())

    def _say_wait(self, wait, k, why):
        """One line for a long wait, so a stalled run says what it waits for; at most one line
        per NOTE_AFTER seconds (a rate limit hits every request at once), the others counted."""
        with self.lock:
            now = time.monotonic()
            if now - self.last_note < NOTE_AFTER:
                self.unsaid += 1
                return
            more = f" ({self.unsaid} other waits since the last such line)" if self.unsaid else ""
            self.last_note, self.unsaid = now, 0
        key = getattr(_local, "key", None)
        self.note(f"note: waiting {seconds(wait)} before retry {k} of {self.retries}"
                  f"{f' of {key}' if key is not None else ''}: {why}{more}")

    def _same_error(self, text):
        """Whether `text` (an HTTP 500-like error) has now come back SAME_ERROR_TRIP times
        before any request was answered: then it is what this server says to every request."""
        with self.lock:
            if self.answered:
                return False
            self.same[text] = self.same.get(text, 0) + 1
            return self.same[text] >= SAME_ERROR_TRIP

    def chat(self, payload: dict) -> Reply:
        data = json.dumps(payload).encode()
        last, after, status = None, None, None
        for k in range(self.retries + 1):
            if k:
                if after is not None and after > self.max_wait:
                    raise RequestFailed(
                        f"endpoint asked for a wait of {seconds(after)} (Retry-After, after {last}), longer "
                        f"than the {seconds(self.max_wait)} allowed (--max-retry-wait): counted as failed",
                        k, True, last, status)
                with self.lock:
                    self.retried += 1
                wait = self._delay(k, after)
                if wait >= NOTE_AFTER:
                    self._say_wait(wait, k, f"the server asked for it (Retry-After) after {last}"
                                   if after is not None else f"back-off after {last}")
                time.sleep(wait)
            after, status = None, None
            with self.lock:
                self.calls += 1
            t0 = time.perf_counter()
            try:
                code, hdrs, raw = post(self.url, data, headers(self.api_key), self.timeout, self.deadline)
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError) as e:
                # URLError: refused / unreachable; HTTPException: closed mid-reply; OSError: reset;
                # TimeoutError: no byte within `timeout`, or no whole reply within `deadline`
                reason = getattr(e, "reason", None) or e
                last = f"{type(e).__name__}: {reason}"
                continue
            if code >= 300:
                last, status = error_text(code, raw), code
                if not (code in RETRY_STATUS or code >= 500):
                    raise RequestFailed(f"endpoint refused the request: {last}", k + 1, False, last, code)
                after = retry_after(hdrs.get("Retry-After") if hdrs else None)
                if code >= 500 and code not in PASSING_STATUS and after is None and self._same_error(last):
                    raise RequestFailed(f"endpoint gave the same error {SAME_ERROR_TRIP} times before answering "
                                        f"any request: {last}; not retried", k + 1, True, last, code)
                continue
            try:
                body, bad = decode_reply(raw, hdrs.get("Content-Type") if hdrs else "", bool(payload.get("stream")))
                content, reasoning, finish, usage = parse_reply(body)
            except RequestFailed as e:
                raise RequestFailed(str(e), k + 1, False, e.last, e.status) from None
            except ValueError as e:   # a 200 that is not a completion: a proxy's page may pass
                last = f"ValueError: {e}"
                continue
            content, n1 = clean_text(content)
            reasoning, n2 = clean_text(reasoning)
            model = body.get("model") if isinstance(body.get("model"), str) else None
            with self.lock:
                self.answered += 1
            return Reply(content, reasoning, finish, usage, time.perf_counter() - t0, k + 1,
                         clean_text(model)[0], bad + n1 + n2)
        raise RequestFailed(f"endpoint failed after {self.retries + 1} tries: {last}", self.retries + 1, True,
                            last, status)

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
                _local.key = key   # named in the lines said while waiting
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
    """One GET of <url>/models before any work: None if an OpenAI-compatible API answers, else
    one line saying why not (nothing listens, a wrong key, no such API at this URL, and with
    `model`: a model the server does not list under exactly that name). A dead endpoint so fails
    a run in seconds instead of after every record's retries."""
    base = url.rstrip("/")
    req = urllib.request.Request(base + "/models", headers=headers(api_key))
    try:
        with opener().open(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return f"{url}: the endpoint refused us (HTTP {e.code}); check the key ({key_flag})"
        if e.code == 404:   # a server, but no OpenAI API here: every request would 404 too
            versioned = re.search(r"/v\d+[a-z0-9]*(/|$)", urllib.parse.urlsplit(base).path)
            hint = (f"did you mean {base}/v1?" if not versioned else
                    "check the URL: it must be the API's base, the part before /chat/completions")
            return f"{url}: {base}/models answered HTTP 404 (no OpenAI-compatible API at this URL); {hint}"
        return None   # any other answer means a server is there
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return f"{url}: the endpoint does not answer ({type(e).__name__}: {reason})"
    if model is None:
        return None
    try:
        listed = [m["id"] for m in json.loads(body)["data"] if isinstance(m, dict) and "id" in m]
    except (ValueError, KeyError, TypeError):
        return None   # a listing we cannot read proves nothing either way
    # the name must be listed exactly: it goes into every request and into run.json. One
    # exception: Gemini's OpenAI API lists "models/gemini-x" and serves requests for "gemini-x"
    if listed and model not in listed and f"models/{model}" not in listed:
        shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
        near = [i for i in listed if i.rstrip("/").split("/")[-1] == model]
        hint = f"; did you mean --endpoint-model {near[0]}?" if near else ""
        return f"{url}: the endpoint does not serve model {model!r} (it lists: {shown}){hint}"
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
