"""report.html in a real browser: headless Chromium from the distribution (apt-get install -y
chromium; .ci/run installs it when missing). The page is loaded from disk, its DOM read back
after the script ran (--dump-dom), and a screenshot taken (--screenshot).

    python -m pytest -q tests/test_report.py
    python tests/test_report.py docs/report.png      # the README's screenshot, by the same code

The filters are read from the URL hash, so report.html#task=maze&verdict=wrong dumps the
filtered DOM. One test drives the page like a person (filters, search, opening a response,
clicking a thumbnail, scrolling) over the DevTools protocol, spoken here over a pipe with no
driver package. Skipped, saying why, only where no Chromium binary exists.
"""
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import evaluate  # noqa: E402
import synth  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TASKS = "maze,sudoku,lis,shortest_path"


def find_browser():
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def make_demo(d, markup=True):
    """A small benchmark (4 tasks, levels 1-2, 2 each) scored from a predictions file in which
    every third response is wrong and some are long (markup: one holds HTML-like text):
    d/eval/report.html, summary.json, ..."""
    bench, out = os.path.join(d, "bench"), os.path.join(d, "eval")
    synth.main(["--out", bench, "--tasks", TASKS, "--levels", "1,2", "--count", "2", "--workers", "1"])
    recs = [json.loads(x) for x in open(os.path.join(bench, "records.jsonl"), encoding="utf-8")]
    with open(os.path.join(d, "pred.jsonl"), "w", encoding="utf-8") as f:
        for k, r in enumerate(recs):
            think = "<think>" + "Let me check the rules again. " * (40 if k % 2 else 1) + "</think>\n"
            resp = think + ("\\boxed{not this}" if k % 3 == 0 else "\\boxed{%s}" % r["answer"])
            if markup and k == 1:   # markup in a response is text: it must neither end the data block nor render
                resp = "</script><b>not bold</b> & <!-- <script> " + resp
            f.write(json.dumps({"id": r["id"], "response": resp}) + "\n")
    evaluate.main(["--records", os.path.join(bench, "records.jsonl"), "--predictions",
                   os.path.join(d, "pred.jsonl"), "--out", out, "--name", "demo predictions"])
    return out


def chromium(browser, *args, timeout=60):
    """Run headless Chromium once (own profile folder, so parallel runs do not collide)."""
    with tempfile.TemporaryDirectory() as prof:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={prof}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def screenshot(browser, url, png, size=(1280, 900)):
    p = chromium(browser, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", url)
    assert os.path.exists(png), p.stderr[-2000:]
    return png


class Cdp:
    """The Chrome DevTools protocol over --remote-debugging-pipe (fd 3: commands to the browser,
    fd 4: replies and events from it; messages are JSON ended by a NUL byte).
    Enough of it to load a page, run JavaScript in it and collect its console errors: no
    driver package, no browser download; the browser is the system's Chromium."""

    def __init__(self, browser, size=(1280, 900)):
        r_cmd, self.w = os.pipe()      # we write commands -> chrome reads fd 3
        self.r, w_out = os.pipe()      # chrome writes fd 4 -> we read
        self.prof = tempfile.TemporaryDirectory()
        def fds():   # in the child: our pipe ends become fds 3 and 4 (dup first: they may be 3 or 4 already)
            a, b = os.dup(r_cmd), os.dup(w_out)
            os.dup2(a, 3); os.dup2(b, 4)
        self.p = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                                   f"--user-data-dir={self.prof.name}", f"--window-size={size[0]},{size[1]}"],
                                  close_fds=False, preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r_cmd); os.close(w_out)
        self.buf, self.n, self.events, self.session = b"", 0, [], None

    def _read(self, timeout):
        end = time.time() + timeout
        while b"\0" not in self.buf:
            left = end - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("no reply from the browser")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("browser closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, timeout=30, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait(self, method, timeout=30):
        for k, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(k)
        while True:
            m = self._read(timeout)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def open(self, url):
        t = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=t, flatten=True)["sessionId"]
        self.send("Runtime.enable"); self.send("Page.enable")
        self.send("Page.navigate", url=url)
        self.wait("Page.loadEventFired")

    def js(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def console_errors(self):
        return [m for m in self.events if m.get("method") == "Runtime.exceptionThrown"
                or (m.get("method") == "Runtime.consoleAPICalled" and m["params"]["type"] in ("error", "assert"))]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        self.p.wait(10); os.close(self.r); os.close(self.w); self.prof.cleanup()


class Dom(HTMLParser):
    """What the tests read from a dumped DOM: entries (id, hidden), data-key cells, markers."""

    def __init__(self, text):
        super().__init__()
        self.entries, self.cells, self.attrs, self.imgs = [], {}, {}, []
        self._key, self._count = None, False
        self.count = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("html", "body"):
            self.attrs[tag] = a
        if "entry" in (a.get("class") or "").split():
            self.entries.append({**a, "hidden": "hidden" in a})
        if "data-key" in a:
            self._key = a["data-key"]
        if tag == "img":
            self.imgs.append(a)
        self._count = a.get("id") == "count"

    def handle_data(self, data):
        if self._key:
            self.cells[self._key] = data.strip()
            self._key = None
        if self._count:
            self.count += data


def load(browser, path, fragment=""):
    """(Dom after the page's script ran, console lines Chromium logged) for path#fragment."""
    p = chromium(browser, "--dump-dom", "file://" + os.path.abspath(path) + fragment)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [x for x in p.stderr.splitlines() if ":CONSOLE" in x]
    return Dom(p.stdout), console


def errors_of(dom, console):
    """Every sign of a script error: a console line, an error the page recorded, no ready mark."""
    errs = list(console)
    if dom.attrs.get("html", {}).get("data-errors"):
        errs.append("page: " + dom.attrs["html"]["data-errors"])
    if dom.attrs.get("body", {}).get("data-ready") != "1":
        errs.append("the page's script did not finish")
    return errs


@pytest.fixture(scope="module")
def browser():
    b = find_browser()
    if b is None:
        pytest.skip("no Chromium found: install it with `apt-get install -y chromium` "
                    "(.ci/run does); the report is not browser-tested here")
    return b


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = make_demo(str(tmp_path_factory.mktemp("report")))
    summary = json.load(open(os.path.join(out, "summary.json")))
    rows = [json.loads(x) for x in open(os.path.join(out, "predictions.jsonl"))]
    return out, summary, rows


def test_report_is_self_contained(demo):
    """No network: no external script, style or image; every image link resolves from the folder."""
    out, _, rows = demo
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    dom = Dom(page)
    thumbs = [i for i in dom.imgs if i.get("id") != "full"]   # "full": the overlay, filled on click
    assert len(dom.entries) == len(rows) and len(thumbs) >= len(rows)
    for img in thumbs:
        assert "src" not in img and not os.path.isabs(img["data-src"])   # set when scrolled into view
        assert os.path.exists(os.path.join(out, img["data-src"]))


def test_missing_image_is_said_not_shown_broken(demo, tmp_path):
    out, _, rows = demo
    bench = os.path.join(os.path.dirname(out), "bench")
    copy = tmp_path / "bench"
    shutil.copytree(bench, copy)
    recs = [json.loads(x) for x in open(copy / "records.jsonl")]
    os.remove(copy / recs[0]["images"][0])
    evaluate.main(["--records", str(copy / "records.jsonl"), "--predictions",
                   os.path.join(os.path.dirname(out), "pred.jsonl"), "--out", str(tmp_path / "eval")])
    page = (tmp_path / "eval/report.html").read_text(encoding="utf-8")
    assert page.count("image not found: ") == 1 and page.count("data-src=") == len(rows) - 1


def test_loads_without_console_error_and_summary_matches(browser, demo):
    out, summary, rows = demo
    dom, console = load(browser, os.path.join(out, "report.html"))
    assert errors_of(dom, console) == []
    want = {"overall": summary["overall"], **{f"group:{g}": v for g, v in summary["per_group"].items()},
            **{f"task:{t}": v for t, v in summary["per_task"].items()},
            **{f"level:{k}": v for k, v in summary["per_level"].items()}}
    counts = {**{f"empty:{t}": str(v) for t, v in summary["per_task_empty"].items()},
              **{f"cut:{t}": str(v) for t, v in summary["per_task_cut"].items()}}
    assert set(counts) == {f"{k}:{t}" for k in ("empty", "cut") for t in summary["per_task"]}
    assert dom.cells == {**{k: f"{v:.1f}" for k, v in want.items()}, **counts,
                         "n": str(summary["n"]), "n_correct": str(summary["n_correct"])}
    assert 0 < summary["n_correct"] < summary["n"]      # the demo has both verdicts
    assert sum(not e["hidden"] for e in dom.entries) == len(rows) == summary["n"]
    # lazy images: by the load event only those near the first screen were fetched, not all 16
    assert int(dom.attrs["body"]["data-images-loaded"]) <= len(rows) // 2


def test_error_detection_can_fail(browser, demo, tmp_path):
    """The checks are not vacuous: a page with a broken script is caught by both."""
    out, _, _ = demo
    bad = os.path.join(out, "broken.html")
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    with open(bad, "w", encoding="utf-8") as f:
        f.write(page.replace("readHash(); apply();", "readHash(); apply(); noSuchFunction();"))
    dom, console = load(browser, bad)
    assert any("noSuchFunction" in e for e in errors_of(dom, console))
    c = Cdp(browser)
    try:
        c.open("file://" + bad)
        assert any("noSuchFunction" in json.dumps(e) for e in c.console_errors())
    finally:
        c.close()


def test_a_person_using_the_page(browser, demo):
    """Driven over the DevTools protocol: choose filters, search, open a long response, click a
    thumbnail, scroll; each time read back what the page shows."""
    out, _, rows = demo
    c = Cdp(browser)
    try:
        c.open("file://" + os.path.join(out, "report.html"))
        assert c.console_errors() == []
        shown = "Array.from(document.querySelectorAll('.entry')).filter(e => !e.hidden).map(e => e.id)"
        choose = ("(function (id, v) { var s = document.getElementById(id); s.value = v;"
                  " s.dispatchEvent(new Event('change')); })")
        c.js(choose + "('f-task', 'maze')")
        c.js(choose + "('f-verdict', 'wrong')")
        want = sorted(r["id"] for r in rows if r["task"] == "maze" and not r["correct"])
        assert sorted(c.js(shown)) == want and c.js("location.hash") == "#task=maze&verdict=wrong"
        c.js(choose + "('f-task', '')")
        c.js(choose + "('f-verdict', '')")
        c.js("var q = document.getElementById('f-search'); q.value = 'NOT THIS';"
             "q.dispatchEvent(new Event('input'))")
        assert sorted(c.js(shown)) == sorted(r["id"] for r in rows if "not this" in r["response"])
        c.js("var q = document.getElementById('f-search'); q.value = ''; q.dispatchEvent(new Event('input'))")
        assert len(c.js(shown)) == len(rows)
        # a long response: not in the DOM until opened, then exactly the response
        long_row = next(r for r in rows if len(r["response"]) > 600 and "</script>" in r["response"])
        sel = f"document.getElementById('{long_row['id']}').querySelector('details.resp')"
        assert c.js(sel + ".querySelector('pre.full').textContent") == ""
        c.js(sel + ".open = true")
        deadline = time.time() + 10
        while c.js(sel + ".querySelector('pre.full').textContent") != long_row["response"]:
            assert time.time() < deadline, "the response was not filled in"
            time.sleep(0.05)
        # thumbnail -> the full-size image in the overlay
        c.js("document.querySelector('.entry a.zoom').click()")
        assert c.js("getComputedStyle(document.getElementById('overlay')).display") == "flex"
        assert c.js("document.getElementById('full').getAttribute('src')") == \
            c.js("document.querySelector('.entry a.zoom').getAttribute('href')")
        c.js("document.getElementById('overlay').click()")
        assert c.js("getComputedStyle(document.getElementById('overlay')).display") == "none"
        # the last entry's image is fetched only once it is scrolled into view
        last = "document.querySelector('.entry:last-child img')"
        assert c.js(last + ".getAttribute('src')") is None
        c.js("document.querySelector('.entry:last-child').scrollIntoView()")
        deadline = time.time() + 10
        while not c.js(last + ".complete && " + last + ".naturalWidth > 0"):
            assert time.time() < deadline, "the last image was not loaded after scrolling to it"
            time.sleep(0.05)
        assert c.console_errors() == []
    finally:
        c.close()


@pytest.mark.parametrize("fragment,keep", [
    ("#task=maze&verdict=wrong", lambda r: r["task"] == "maze" and not r["correct"]),
    ("#group=Algorithms", lambda r: r["task"] == "lis"),
    ("#level=2&verdict=right", lambda r: r["level"] == 2 and r["correct"]),
    ("#q=not%20this", lambda r: "not this" in r["response"]),   # text search reaches responses
])
def test_filter_leaves_exactly_the_matching_entries(browser, demo, fragment, keep):
    out, _, rows = demo
    dom, console = load(browser, os.path.join(out, "report.html"), fragment)
    assert errors_of(dom, console) == []
    shown = {e["id"] for e in dom.entries if not e["hidden"]}
    expected = {r["id"] for r in rows if keep(r)}
    assert expected and shown == expected
    assert dom.count.strip() == f"{len(expected)} of {len(rows)} entries"


def test_screenshot_is_not_blank(browser, demo, tmp_path):
    from PIL import Image
    out, _, _ = demo
    png = screenshot(browser, "file://" + os.path.join(out, "report.html"), str(tmp_path / "shot.png"))
    img = Image.open(png).convert("RGB")
    assert img.size == (1280, 900)
    colors = img.getcolors(maxcolors=1 << 20)
    # a blank page is one colour; text, tables and verdict badges give hundreds (anti-aliasing)
    assert colors is None or len(colors) > 50
    # and the page is not all background: at least 2% of pixels are not white
    assert sum(n for n, c in colors or [] if c != (255, 255, 255)) > 0.02 * img.size[0] * img.size[1] \
        or colors is None


if __name__ == "__main__":
    # python tests/test_report.py docs/report.png: the README's screenshot, made as the test makes it
    dest = sys.argv[1] if len(sys.argv) > 1 else "docs/report.png"
    b = find_browser() or sys.exit("error: no Chromium found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as d:
        out = make_demo(d, markup=False)
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        screenshot(b, "file://" + os.path.join(out, "report.html"), dest, size=(1200, 1000))
    print(f"wrote {dest} ({os.path.getsize(dest) // 1024} KB)")


def test_missing_and_failed_records_have_their_own_verdicts(browser, demo, tmp_path):
    """A partial predictions file with a failed batch line: the filter's new verdicts leave
    exactly those entries, and the page says how many there are before the numbers."""
    out, _, rows = demo
    bench = os.path.join(os.path.dirname(out), "bench")
    lines = [json.loads(x) for x in open(os.path.join(os.path.dirname(out), "pred.jsonl"))]
    missing = {x["id"] for x in lines[:3]}
    failed = lines[3]["id"]
    kept = [x for x in lines[4:]] + [{"custom_id": failed, "response": None, "error": {"message": "timed out"}}]
    pred = tmp_path / "partial.jsonl"
    pred.write_text("".join(json.dumps(x) + "\n" for x in kept))
    with pytest.raises(SystemExit, match="1 of 16 requests failed"):
        evaluate.main(["--records", os.path.join(bench, "records.jsonl"), "--predictions", str(pred),
                       "--out", str(tmp_path / "eval")])
    page = str(tmp_path / "eval/report.html")
    for fragment, want in (("#verdict=missing", missing), ("#verdict=failed", {failed})):
        dom, console = load(browser, page, fragment)
        assert errors_of(dom, console) == []
        assert {e["id"] for e in dom.entries if not e["hidden"]} == want, fragment
    html = open(page, encoding="utf-8").read()
    assert "<b>3 of 16 records had no prediction and score 0</b>" in html
    assert "<b>1 of 16 requests failed and score 0</b>" in html and "batch: timed out" in html
