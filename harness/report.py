"""An evaluation's outputs: the numbers (summary.json, table.md) and report.html, a page a
person can look at, one static file beside table.md.

    from harness.report import write_outputs, write_report
    s = write_outputs("runs/eval", rows, "image", name, problems)     # predictions, summary, table
    write_report("runs/eval", rows, s, records, records_root)           # evaluate.py does both
    open runs/eval/report.html in any browser (no network; images by relative path)

The numbers: accuracy per task; a group's score is the mean of its tasks; overall is the mean
of the tasks scored (summarise). table.md is the paper's Table 1 layout, then per task and per
level (table).

The page: the summary in Table 1's layout (group Txt / Img columns, overall), accuracy per
task (with its counts of empty replies and replies cut at max tokens) and per level, then one
entry per instance: image (thumbnail, full size on click), question, the reasoning a server
split out (collapsed), response (collapsed when long), extracted answer, gold answer, verdict,
and a flag on an empty or cut reply. Filters by
group, task, level and verdict and a text search, in plain JavaScript; the filters live in the
URL hash (report.html#task=maze&verdict=wrong), so a filtered view is a link.

Why it opens fast at 1,260 instances with 16k-token responses: an image is fetched only when
its entry comes near the viewport (an IntersectionObserver sets its src), entries off screen
are neither laid out nor painted (content-visibility: auto), and the long responses are not
in the DOM at all: they sit in one JSON block after the page's script (the entries and the
filters work before the browser has read it), parsed the first time a response is opened or
the search is used; long reasonings likewise, in a block of their own.
"""
from __future__ import annotations

import html
import json
import os
import re
from collections import defaultdict

from tasks.base import GROUPS
from tasks.records import record_images
from tasks.registry import TASKS, get

SHORT = 600   # characters of a response or question shown before "show all"

VERDICTS = ("right", "wrong", "missing", "failed")
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:24px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.cols{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
#filters{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ccc;z-index:1}
#filters label{margin-right:12px}
.entry{display:flex;gap:12px;border-bottom:1px solid #e4e4e4;padding:10px 0;
  content-visibility:auto;contain-intrinsic-size:auto 220px}
.entry[hidden]{display:none}
details.resp[open]+pre.head{display:none}
.thumb{flex:0 0 180px}.thumb img{max-width:180px;max-height:180px;cursor:zoom-in;border:1px solid #ddd}
.body{flex:1;min-width:0}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;background:#f8f8f8;padding:6px;font-size:12px}
.verdict{font-weight:bold;padding:1px 8px;border-radius:3px;color:#fff}
.right{background:#2c9f2c}.wrong{background:#d62728}
.verdict.missing{background:#7f7f7f}.verdict.failed{background:#ff7f0e}
.flag{font-size:12px;padding:0 6px;border:1px solid #ff7f0e;border-radius:3px;color:#a04000}
details.reasoning>summary{color:#555;font-size:12px}
.notes li{margin:2px 0}
.kv{margin:2px 0}.kv b{display:inline-block;min-width:90px}
#overlay{position:fixed;inset:0;background:rgba(0,0,0,.8);display:none;align-items:center;
  justify-content:center;z-index:2;cursor:zoom-out}
#overlay img{max-width:95vw;max-height:95vh;background:#fff}
"""

# The page's script. Plain JavaScript, no library. Kept short and free of template syntax.
JS = r"""
(function () {
  var entries = Array.prototype.slice.call(document.querySelectorAll('.entry'));
  var F = {group: 'f-group', task: 'f-task', level: 'f-level', verdict: 'f-verdict'};
  var responses = null;   // parsed on first need: the JSON block can be tens of MB
  function allResponses() {
    if (responses !== null) return responses;
    var el = document.getElementById('responses');   // below this script: parsed after the entries show
    if (!el || document.readyState === 'loading') return {};
    return (responses = JSON.parse(el.textContent));
  }
  function readHash() {
    var h = {}; location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('='); if (i > 0) h[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    Object.keys(F).forEach(function (k) { document.getElementById(F[k]).value = h[k] || ''; });
    document.getElementById('f-search').value = h.q || '';
  }
  function writeHash() {
    var parts = [];
    Object.keys(F).forEach(function (k) {
      var v = document.getElementById(F[k]).value; if (v) parts.push(k + '=' + encodeURIComponent(v));
    });
    var q = document.getElementById('f-search').value; if (q) parts.push('q=' + encodeURIComponent(q));
    history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname);
  }
  function apply() {
    var want = {}; Object.keys(F).forEach(function (k) { want[k] = document.getElementById(F[k]).value; });
    var q = document.getElementById('f-search').value.trim().toLowerCase();
    var resp = q ? allResponses() : null, shown = 0;
    entries.forEach(function (e) {
      var ok = Object.keys(F).every(function (k) { return !want[k] || e.dataset[k] === want[k]; });
      if (ok && q) {
        var text = e.dataset.text || (e.dataset.text = e.textContent.toLowerCase());
        ok = text.indexOf(q) >= 0 || (resp[e.id] || '').toLowerCase().indexOf(q) >= 0;
      }
      e.hidden = !ok; if (ok) shown++;
    });
    document.getElementById('count').textContent = shown + ' of ' + entries.length + ' entries';
  }
  Object.keys(F).forEach(function (k) {
    document.getElementById(F[k]).addEventListener('change', function () { writeHash(); apply(); });
  });
  document.getElementById('f-search').addEventListener('input', function () { writeHash(); apply(); });
  window.addEventListener('hashchange', function () { readHash(); apply(); });
  var reasoning = null;    // the long reasonings, parsed the first time one is opened
  function allReasoning() {
    if (reasoning !== null) return reasoning;
    var el = document.getElementById('reasoning');
    if (!el || document.readyState === 'loading') return {};
    return (reasoning = JSON.parse(el.textContent));
  }
  // a long response or reasoning is filled in the first time it is opened
  document.addEventListener('toggle', function (ev) {
    var d = ev.target, long = d.classList && d.classList.contains('long');
    if (!d.open || d.dataset.filled || !(d.classList.contains('resp') || long)) return;
    var text = (long ? allReasoning() : allResponses())[d.closest('.entry').id];
    if (text === undefined) return;   // opened before the page finished loading: filled next time
    d.querySelector('pre.full').textContent = text;
    d.dataset.filled = '1';
  }, true);
  // thumbnail -> full size in an overlay (the link still works without script)
  var overlay = document.getElementById('overlay');
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('a.zoom');
    if (a) { ev.preventDefault(); overlay.querySelector('img').src = a.getAttribute('href'); overlay.style.display = 'flex'; }
  });
  overlay.addEventListener('click', function () { overlay.style.display = 'none'; });
  // images: fetched when their entry comes within 300 px of the viewport, never before; a
  // filtered-out entry is not displayed, so its image is not fetched either
  var io = 'IntersectionObserver' in window ? new IntersectionObserver(function (seen) {
    seen.forEach(function (s) {
      if (s.isIntersecting) { s.target.src = s.target.dataset.src; io.unobserve(s.target); }
    });
  }, {rootMargin: '300px'}) : null;
  document.querySelectorAll('img[data-src]').forEach(function (im) {
    if (io) io.observe(im); else im.src = im.dataset.src;
  });
  readHash(); apply();
  // a search given in the URL reaches the responses once their block has been read
  document.addEventListener('DOMContentLoaded', function () { if (document.getElementById('f-search').value) apply(); });
  document.body.dataset.ready = '1';
  document.body.dataset.readyMs = Math.round(performance.now());
  // how many thumbnails were loaded by the load event: lazy ones only near the first screen
  window.addEventListener('load', function () {
    document.body.dataset.imagesLoaded = Array.prototype.filter.call(
      document.querySelectorAll('.thumb img'), function (im) { return im.complete && im.naturalWidth > 0; }).length;
  });
})();
"""

# Set before the main script: any uncaught error or console.error later on the page is written
# into the DOM (<html data-errors>), so a test that reads the DOM sees it without a console.
ONERROR = ("window.__errors=[];function __err(m){window.__errors.push(String(m));"
           "document.documentElement.dataset.errors=window.__errors.join(' | ');}"
           "window.addEventListener('error',function(e){__err(e.message);});"
           "var __ce=console.error;console.error=function(){__err([].join.call(arguments,' '));__ce.apply(console,arguments);};")


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _summary_table(summary: dict, name: str) -> str:
    """Table 1's layout, as evaluate.py's table.md: per group Txt | Img, then overall."""
    img = summary.get("mode") == "image"
    head = "".join(f"<th>{esc(g)} Txt</th><th>{esc(g)} Img</th>" for g in GROUPS)
    cells = []
    for g in list(GROUPS) + ["Overall"]:
        v = summary.get("overall") if g == "Overall" else summary.get("per_group", {}).get(g)
        key = "overall" if g == "Overall" else f"group:{g}"
        mine = f'<td data-key="{esc(key)}">{_pct(v)}</td>'
        cells += ["<td>–</td>", mine] if img else [mine, "<td>–</td>"]
    return (f'<table id="summary"><tr><th>Model</th>{head}<th>Overall Txt</th><th>Overall Img</th></tr>'
            f"<tr><td>{esc(name)}</td>{''.join(cells)}</tr></table>")


def _response(text: str) -> str:
    """A short response as it is; a long one as its first SHORT characters, the whole text
    filled in by the script from the responses block when "show all" is opened."""
    text = text or ""
    if len(text) <= SHORT:
        return f'<pre class="resp">{esc(text) or "<i>(empty)</i>"}</pre>'
    return (f'<details class="resp"><summary>{len(text):,} characters: show all</summary>'
            f'<pre class="full"></pre></details><pre class="head">{esc(text[:SHORT])}…</pre>')


def _reasoning(text: str | None) -> str:
    """The reasoning a server split out of the answer (reasoning_content), always collapsed: it
    is where an answer that never reached the content is found. A long one is filled in by the
    script from the reasoning block when opened, as a long response is."""
    if not text:
        return ""
    if len(text) <= SHORT:
        return (f'<details class="reasoning"><summary>reasoning ({len(text):,} characters)</summary>'
                f'<pre>{esc(text)}</pre></details>')
    return (f'<details class="reasoning long"><summary>reasoning ({len(text):,} characters)</summary>'
            f'<pre class="full"></pre></details>')


def _flags(row: dict) -> str:
    """Why a reply scores 0 without a wrong answer in it: empty, cut at max tokens."""
    out = (["empty: no answer text"] if is_empty(row) else []) + (
        ["cut at max tokens (finish_reason length)"] if is_cut(row) else [])
    return "".join(f' <span class="flag">{esc(x)}</span>' for x in out)


def _entry(row: dict, rec: dict, group: str, images: list[tuple[str, bool]], mode: str) -> str:
    verdict = verdict_of(row)
    # no src: the script sets it when the entry comes near the viewport (IntersectionObserver)
    thumbs = "".join(f'<a class="zoom" href="{esc(p)}"><img loading="lazy" decoding="async" '
                     f'data-src="{esc(p)}" alt="{esc(row["id"])}"></a>' if ok else
                     f'<i class="missing">image not found: {esc(p)}</i>' for p, ok in images)
    question = rec.get("question_text") if mode == "text" else rec.get("question")
    question = question or rec.get("question") or ""
    return (f'<div class="entry" id="{esc(row["id"])}" data-group="{esc(group)}" data-task="{esc(row["task"])}" '
            f'data-level="{esc(row["level"])}" data-verdict="{verdict}">'
            f'<div class="thumb">{thumbs or "<i>no image</i>"}</div><div class="body">'
            f'<div class="kv"><b>{esc(row["id"])}</b> <span class="verdict {verdict}">{verdict}</span> '
            f'{esc(group)} / {esc(row["task"])} / level {esc(row["level"])}</div>'
            f'<div class="kv"><b>extracted</b> <code class="extracted">{esc(row.get("extracted"))}</code></div>'
            f'<div class="kv"><b>gold</b> <code class="gold">{esc(rec.get("answer"))}</code></div>'
            f'<details class="question"><summary>question</summary><pre>{esc(question)}</pre></details>'
            + (f'<div class="kv"><b>error</b> <code class="error">{esc(row.get("error"))}</code></div>'
               if verdict == "failed" else
               '<div class="kv"><b>response</b> <i>none: no prediction for this record</i></div>'
               if verdict == "missing" else
               f'<div class="kv"><b>response</b>{_flags(row)}</div>{_reasoning(row.get("reasoning"))}'
               f'{_response(row.get("response") or "")}')
            + "</div></div>")


def verdict_of(row: dict) -> str:
    """right / wrong for a response; missing (no prediction) and failed (the request failed)
    score 0 too, but are not the model's wrong answers, so the report keeps them apart."""
    if row.get("missing"):
        return "missing"
    if row.get("failed"):
        return "failed"
    return "right" if row.get("correct") else "wrong"


def _select(id_, label, values) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return f'<label>{label} <select id="{id_}"><option value="">all</option>{opts}</select></label>'


def write_report(out_dir: str, rows: list[dict], summary: dict, records: list[dict], root: str,
                 name: str | None = None) -> str:
    """Write out_dir/report.html. rows: evaluate.py's judged rows (id, task, level, response,
    extracted, correct); records: the records they came from (question, answer, images);
    root: the folder the records' image paths are relative to. Returns the path."""
    by_id = {r["id"]: r for r in records}
    mode = summary.get("mode", "image")
    name = name or summary.get("name") or "model"
    group_of = {}
    entries, responses, reasoning = [], {}, {}
    for row in rows:
        rec = by_id.get(row["id"], {})
        group_of[row["task"]] = group = group_of.get(row["task"]) or get(row["task"]).group
        # relative to the report, so the folder can be copied; a missing file is said, not shown broken
        images = [(os.path.relpath(p, out_dir).replace(os.sep, "/"), os.path.exists(p)) for p in _images(rec, root)]
        entries.append(_entry(row, rec, group, images, mode))
        if len(row.get("response") or "") > SHORT:
            responses[row["id"]] = row["response"]
        if len(row.get("reasoning") or "") > SHORT:
            reasoning[row["id"]] = row["reasoning"]
    empty, cut = summary.get("per_task_empty", {}), summary.get("per_task_cut", {})
    per_task = "".join(
        f'<tr><td><a href="#task={esc(t)}">{esc(t)}</a></td><td>{esc(group_of.get(t, get(t).group))}</td>'
        f'<td data-key="task:{esc(t)}">{v:.1f}</td><td data-key="empty:{esc(t)}">{empty.get(t, 0)}</td>'
        f'<td data-key="cut:{esc(t)}">{cut.get(t, 0)}</td></tr>' for t, v in summary.get("per_task", {}).items())
    per_level = "".join(f'<tr><td><a href="#level={esc(k)}">{esc(k)}</a></td><td data-key="level:{esc(k)}">{v:.1f}</td></tr>'
                        for k, v in summary.get("per_level", {}).items())
    problems = summary.get("problems") or []
    probs = ("<h2>Problems ({})</h2><ul>{}</ul>".format(len(problems), "".join(f"<li>{esc(p)}</li>" for p in problems[:50]))
             if problems else "")
    tasks_seen = sorted({r["task"] for r in rows})
    # the selection, and records that scored 0 without an answer (evaluate.notes); ** is bold
    notes = "".join("<li>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", esc(n)) + "</li>"
                    for n in summary.get("notes") or [])
    notes = f'<ul class="notes">{notes}</ul>' if notes else ""
    levels = sorted({str(r["level"]) for r in rows}, key=lambda x: int(x) if x.isdigit() else 0)
    # JSON inside <script>: "</script" would end the element and "<!--" can change how the rest
    # is read, so every "<" is written as the JSON escape \u003c (JSON.parse gives it back)
    blob = json.dumps(responses, ensure_ascii=False).replace("<", "\\u003c")
    blob_r = json.dumps(reasoning, ensure_ascii=False).replace("<", "\\u003c")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>MM-HELIX: {esc(name)}</title><style>{CSS}</style><script>{ONERROR}</script></head>
<body>
<h1>MM-HELIX: {esc(name)} ({esc(mode)} mode, <span data-key="n">{summary.get("n", len(rows))}</span> instances,
<span data-key="n_correct">{summary.get("n_correct", 0)}</span> correct, {summary.get("n_tasks", len(tasks_seen))} tasks)</h1>
{notes}{_summary_table(summary, name)}
<p>Group = mean of its tasks' accuracies; overall = mean over all tasks (percent).</p>
<div class="cols"><div><h2>Per task</h2><table id="per-task"><tr><th>Task</th><th>Group</th><th>Accuracy</th>
<th>empty</th><th>cut at max tokens</th></tr>{per_task}</table></div>
<div><h2>Per level</h2><table id="per-level"><tr><th>Level</th><th>Accuracy</th></tr>{per_level}</table></div></div>
{probs}
<h2>Instances</h2>
<div id="filters">{_select("f-group", "group", [g for g in GROUPS if g in group_of.values()])}
{_select("f-task", "task", tasks_seen)}{_select("f-level", "level", levels)}{_select("f-verdict", "verdict", VERDICTS)}
<label>search <input id="f-search" type="search" placeholder="id, question, answer, response"></label>
<span id="count">{len(rows)} of {len(rows)} entries</span></div>
<div id="entries">{"".join(entries)}</div>
<div id="overlay"><img id="full" alt="full size"></div>
<script>{JS}</script>
<script type="application/json" id="responses">{blob}</script>
<script type="application/json" id="reasoning">{blob_r}</script>
</body></html>
"""
    path = os.path.join(out_dir, "report.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path


def _images(rec: dict, root: str) -> list[str]:
    return record_images(rec, root) if rec else []


# ---- the numbers: summary.json, table.md -----------------------------------------------------
def summarise(rows, mode):
    """Accuracy per task (percent); group = mean of its tasks; overall = mean of all tasks."""
    by_task, by_level = defaultdict(list), defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r["correct"])
        by_level[r["level"]].append(r["correct"])
    per_task = {t: 100.0 * sum(v) / len(v) for t, v in by_task.items()}
    per_group = {}
    for g in GROUPS:
        accs = [per_task[t] for t in per_task if get(t).group == g]
        if accs:
            per_group[g] = sum(accs) / len(accs)
    overall = sum(per_task.values()) / len(per_task) if per_task else 0.0
    s = {"mode": mode, "overall": overall, "per_group": per_group,
         "per_task": dict(sorted(per_task.items())),
         "per_level": {str(k): 100.0 * sum(v) / len(v) for k, v in sorted(by_level.items())},
         "n": len(rows), "n_correct": sum(r["correct"] for r in rows),
         "n_tasks": len(per_task), "tasks_in_registry": len(TASKS),
         "n_missing": sum(bool(r.get("missing")) for r in rows),
         "n_failed": sum(bool(r.get("failed")) for r in rows),
         # official records with no usable state, scored against their own answer
         "n_answer_only": sum(bool(r.get("answer_only")) for r in rows),
         # replies without an answer of the model's, which score 0 for a reason worth knowing
         "n_empty": sum(map(is_empty, rows)), "n_cut": sum(map(is_cut, rows)),
         "n_invalid_utf8": sum(bool(r.get("invalid_utf8")) for r in rows),
         "per_task_empty": {t: sum(is_empty(r) for r in rows if r["task"] == t) for t in sorted(by_task)},
         "per_task_cut": {t: sum(is_cut(r) for r in rows if r["task"] == t) for t in sorted(by_task)}}
    usage = [r["usage"] for r in rows if isinstance(r.get("usage"), dict)]
    if usage:   # as the server counted them, summed over the records that report them
        s["usage"] = {k: sum(int(u.get(k) or 0) for u in usage)
                      for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        s["usage"]["n_records"] = len(usage)
    lat = [float(r["latency_s"]) for r in rows if isinstance(r.get("latency_s"), (int, float))]
    if lat:
        s["latency_s"] = {"total": sum(lat), "mean": sum(lat) / len(lat), "max": max(lat), "n_records": len(lat)}
    return s


def is_empty(row) -> bool:
    """A reply with no answer text at all (content null or blank: say, the answer only in the
    reasoning); a missing or failed record is not a reply."""
    return not row.get("missing") and not row.get("failed") and not (row.get("response") or "").strip()


def is_cut(row) -> bool:
    """A reply the budget cut off (finish_reason "length": --max-new-tokens ran out)."""
    return row.get("finish_reason") == "length"


def notes(s):
    """What a reader must know before reading the numbers: the selection, and any record that
    scored 0 without an answer of the model's (missing, failed) or was left out."""
    sel = s.get("selection") or {}
    t = sel.get("tasks", "all")
    out = [f"Selection: tasks {'all' if t == 'all' else ', '.join(t)}; levels "
           f"{', '.join(map(str, sel.get('levels', [])))} ({s['n_tasks']} of the {s['tasks_in_registry']} "
           "tasks scored)."]
    if s.get("only_predicted"):
        out.append(f"Only the {s['n']} records with a prediction are scored (--only-predicted); "
                   f"{s.get('n_left_out', 0)} records of the selection without one are left out.")
    if s.get("n_missing"):
        out.append(f"**{s['n_missing']} of {s['n']} records had no prediction and score 0** "
                   "(marked missing in predictions.jsonl; --only-predicted leaves them out).")
    if s.get("n_failed"):
        again = ("scoring the file again retries nothing: the requests must be sent again where they were made"
                 if s.get("source") == "predictions" else "rerun the same command to retry them")
        out.append(f"**{s['n_failed']} of {s['n']} requests failed and score 0** (marked failed, with "
                   f"their error); {again}.")
    if s.get("n_empty"):
        out.append(f"**{s['n_empty']} of {s['n']} replies are empty** (no answer text, e.g. content null with "
                   "the answer only in the reasoning) and score 0; per task below.")
    if s.get("n_cut"):
        out.append(f"**{s['n_cut']} of {s['n']} replies were cut at max tokens** (finish_reason length: the "
                   "--max-new-tokens budget ran out); per task below.")
    if s.get("n_invalid_utf8"):
        out.append(f"{s['n_invalid_utf8']} replies held bytes that are not UTF-8; they were kept with each bad "
                   "sequence replaced by U+FFFD (field invalid_utf8 in predictions.jsonl).")
    return out


def table(summary, name):
    img = summary["mode"] == "image"
    cell = lambda v: f"{v:.1f}" if v is not None else "–"  # noqa: E731
    head = "| Model | " + " | ".join(f"{g} Txt | {g} Img" for g in GROUPS) + " | Overall Txt | Overall Img |"
    sep = "|" + "---|" * (2 + 2 * len(GROUPS) + 1)
    vals = []
    for g in list(GROUPS) + ["Overall"]:
        v = summary["overall"] if g == "Overall" else summary["per_group"].get(g)
        vals += [cell(None), cell(v)] if img else [cell(v), cell(None)]
    lines = [f"# MM-HELIX: {name} ({summary['mode']} mode, {summary['n']} instances, "
             f"{summary['n_tasks']} tasks)", "", *summary.get("notes", []), "", head, sep,
             f"| {name} | " + " | ".join(vals) + " |", "",
             "Group = mean of its tasks' accuracies; overall = mean over the tasks scored (percent).", "",
             "## Per task", "", "| Task | Group | Accuracy | empty | cut at max tokens |", "|---|---|---|---|---|"]
    empty, cut = summary.get("per_task_empty", {}), summary.get("per_task_cut", {})
    for t, v in summary["per_task"].items():
        lines.append(f"| {t} | {get(t).group} | {v:.1f} | {empty.get(t, 0)} | {cut.get(t, 0)} |")
    lines += ["", "## Per level", "", "| Level | Accuracy |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["per_level"].items()]
    if summary.get("usage") or summary.get("latency_s"):
        u, lat = summary.get("usage") or {}, summary.get("latency_s") or {}
        sec = lambda k: f"{lat[k]:.2f}" if k in lat else "–"  # noqa: E731  (a batch output has no latency)
        lines += ["", "## Endpoint", "", "| prompt tokens | completion tokens | latency, mean (s) | latency, max (s) |",
                  "|---|---|---|---|",
                  f"| {u.get('prompt_tokens', '–')} | {u.get('completion_tokens', '–')} | {sec('mean')} | {sec('max')} |"]
    if summary.get("n_answer_only"):
        lines += ["", f"{summary['n_answer_only']} official record(s) had no usable initial_state "
                  "and were scored against their own answer, normalised (not rule-checked)."]
    if summary.get("problems"):
        lines += ["", f"## Problems ({len(summary['problems'])})", ""]
        lines += [f"- {p}" for p in summary["problems"][:50]]
    return "\n".join(lines) + "\n"


def write_outputs(out, rows, mode, name, problems, extra=None):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    s = summarise(rows, mode)
    s.update(extra or {})
    s["name"], s["problems"] = name, problems
    s["notes"] = notes(s)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(s, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table(s, name))
    return s
