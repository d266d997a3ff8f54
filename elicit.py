"""Stage 2: SERG (Step-Elicited Response Generation): verified reflective traces for SFT/AHPO.

    python elicit.py                                    # rule-based CoT from the solver skeletons
    python elicit.py --rewriter endpoint --url http://localhost:8000/v1 --endpoint-model Qwen3-235B-A22B
    python elicit.py --rewriter model --model /ckpt/Qwen2.5-7B-Instruct --attempts 4

For each training instance (data/train/records.jsonl, written by `synth.py --split train`):
  1. the task's solver gives a skeleton: the rules, the state as read, the intermediate states
     ("anchors"), the dead ends it really hit and its backtracks, a check, the answer;
  2. a rewriter turns it into reasoning: `none` writes the skeleton out as plain step-by-step
     text (the paper's rule-based CoT ablation); `model`/`endpoint` ask a language model to
     rewrite it into natural reflective reasoning that keeps every anchor (the paper used
     Qwen3-235B), as `<think>...</think>` and the boxed answer;
  3. the trace is kept only if its extracted final answer passes the task's verifier.
Rewrites that fail are retried up to --attempts times (the paper kept 99.8% at pass@16).

Writes data/traces.jsonl (the record + `messages` for sft.py with images by path relative
to the traces file, `trace`, `rewriter`, `n_tokens`, `verified`), data/traces.rejects.jsonl
(what was rejected and why) and data/traces_report.md (per task: kept, rejected by reason,
mean length). A rerun skips instances already kept or rejected; rewriter errors (network,
timeouts) are not recorded, so a rerun retries them; endpoint replies are cached on disk so
a rerun never pays twice for the same request.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict

import tasks
from harness import cli, client, runs
from harness.jsonl import open_append, read_records
from harness.progress import Progress, quiet_libraries
from tasks import extract_answer, record_images, state_of
from tasks.base import ANCHOR_KINDS

REWRITE_SYSTEM = (
    "You turn a solver's terse working into the reasoning of a careful person solving the "
    "problem for the first time. Think out loud in the first person. Keep every intermediate "
    "state the solver reached (the lines marked ANCHOR) with its exact values, in order. Where "
    "the solver hit a dead end and went back, show the doubt, the check that fails and the "
    "change of plan. Add brief moments of self-checking (re-reading a rule, verifying a step). "
    "Do not mention a solver, a skeleton or these instructions.")

REWRITE_USER = """Problem:
{question}

Solver's working, step by step:
{steps}

Required final answer (exactly this, in the required format):
{answer}

Write the reasoning inside <think> ... </think>, then give the final answer once more after
</think> as \\boxed{{...}}, written exactly in the required format."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--records", default="data/train/records.jsonl", help="training pool")
    g.add_argument("--text-only", action="store_true", help="use the text questions in `messages`")
    g.add_argument("--limit", type=cli.nonneg_int, default=0, help="only the first N records (0: all)")
    g = p.add_argument_group("method")
    g.add_argument("--rewriter", choices=("none", "model", "endpoint"), default="none",
                   help="none: the skeleton as text; model: a local model; endpoint: an OpenAI-compatible server")
    g.add_argument("--temperature", type=cli.nonneg_float, default=0.7, help="rewriter sampling temperature")
    g.add_argument("--max-trace-tokens", type=cli.positive_int, default=16384,
                   help="tokens (words and marks); longer traces are rejected")
    g = p.add_argument_group("budget")
    g.add_argument("--attempts", type=cli.positive_int, default=None,
                   help="rewrites tried per instance until one verifies (default 1 for none, 4 otherwise)")
    g.add_argument("--max-new-tokens", type=cli.positive_int, default=8192, help="tokens, rewriter budget")
    g = p.add_argument_group("model", "the local rewriter (--rewriter model)")
    g.add_argument("--model", default=None, help="checkpoint folder of the rewriter")
    g.add_argument("--batch-size", type=cli.positive_int, default=8, help="prompts per batch")
    g.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    g = p.add_argument_group("distributed", "the endpoint rewriter (--rewriter endpoint)")
    g.add_argument("--url", default=None, help="base URL, e.g. http://host:8000/v1")
    g.add_argument("--endpoint-model", default="default", help="model name to ask for")
    g.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", ""),
                   help="bearer token (default: $OPENAI_API_KEY; never written to disk)")
    g.add_argument("--concurrency", type=cli.positive_int, default=16, help="requests in flight")
    g.add_argument("--timeout", type=cli.positive_float, default=600.0,
                   help="seconds a request may go without a byte of the reply")
    g.add_argument("--deadline", type=cli.positive_float, default=7200.0,
                   help="seconds one request may take in all, however its bytes trickle in")
    g.add_argument("--max-retry-wait", type=cli.nonneg_float, default=600.0,
                   help="seconds, the longest Retry-After honoured; longer fails the request (a rerun asks again)")
    g.add_argument("--retries", type=cli.nonneg_int, default=4, help="retries per request")
    g.add_argument("--backoff", type=cli.nonneg_float, default=2.0,
                   help="seconds, first retry delay, doubled each time")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="data/traces.jsonl",
                   help="traces file (report, rejects and <name>.run.json beside it)")
    g.add_argument("--cache", default=None, help="endpoint reply cache (default: <out minus .jsonl>.cache.jsonl)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh: remove the traces, rejects and report of an earlier run "
                        "(the reply cache is kept: it is keyed by the request)")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    cli.config_flag(g)
    args = cli.parse(p, argv)
    if args.attempts is None:
        args.attempts = 1 if args.rewriter == "none" else 4
    if args.rewriter == "endpoint" and not args.url:
        p.error("--rewriter endpoint needs --url")
    if args.rewriter == "model" and not args.model:
        p.error("--rewriter model needs --model")
    args.cache = args.cache or re.sub(r"\.jsonl$", "", args.out) + ".cache.jsonl"
    return args


# ---- skeleton -> text -----------------------------------------------------------------------
def n_tokens(text: str) -> int:
    """Approximate token count (words and punctuation marks), tokenizer-free."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def skeleton_text(steps) -> str:
    """The skeleton as reasoning (rewriter `none`): rules, reading, steps, check, answer."""
    out, k = [], 0
    for s in steps:
        kind, text = s["kind"], s["text"]
        if kind == "rule":
            out.append(f"Rule: {text}")
        elif kind == "read":
            out.append(f"Reading the problem: {text}")
        elif kind == "step":
            k += 1
            out.append(f"Step {k}: {text}")
        elif kind == "backtrack":
            out.append(f"Wait, this leads nowhere: {text} Going back.")
        elif kind == "check":
            out.append(f"Let me check: {text}")
        elif kind == "answer":
            out.append(f"So the final answer is:\n{text}")
    return "\n".join(out)


def skeleton_for_prompt(steps) -> str:
    lines = []
    for s in steps:
        tag = "ANCHOR " if s["kind"] in ANCHOR_KINDS else ""
        lines.append(f"- [{tag}{s['kind']}] {s['text']}")
    return "\n".join(lines)


def assemble(reasoning: str, answer: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n\\boxed{{{answer}}}"


def normalise_reply(content: str, reasoning: str | None = None) -> str:
    """Servers that split thinking out (`reasoning_content`) get it put back in <think>."""
    content = content or ""
    if reasoning and "<think>" not in content:
        content = f"<think>\n{reasoning.strip()}\n</think>\n\n{content.strip()}"
    if "<think>" not in content and "</think>" in content:
        content = "<think>\n" + content
    return content


# ---- rewriters ------------------------------------------------------------------------------
def preflight(args):
    """One request before the pool: an endpoint that does not answer fails the run in
    seconds, with one line, instead of after every record's retries."""
    problem = client.preflight(args.url, args.api_key, timeout=min(args.timeout, 10.0), key_flag="--api-key")
    if problem:
        sys.exit(f"error: --url {problem}")


CACHE_KEY = re.compile(r"[0-9a-f]{64}")


def read_cache(path):
    """{request key: reply} from the endpoint reply cache. Every line must be one this stage
    wrote ({"key": sha256 of the request, "reply": text}): any other line means --cache names a
    file elicit.py did not write, and the run stops (one line, before anything is written)
    rather than append to it. A last line without its newline is one a killed run was writing:
    ignored here, cut before the next append."""
    cache = {}
    if not os.path.exists(path):
        return cache
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            ok = isinstance(obj, dict) and set(obj) == {"key", "reply"} and isinstance(obj["reply"], str) \
                and isinstance(obj["key"], str) and CACHE_KEY.fullmatch(obj["key"])
        except ValueError:
            obj, ok = None, False
        if ok:
            cache[obj["key"]] = obj["reply"]
        elif i == len(lines) and obj is None:
            continue   # half-written by a killed run
        else:
            sys.exit(f"error: --cache {path}:{i}: not a line of elicit.py's reply cache (expected "
                     f'{{"key": <sha256>, "reply": <text>}}); choose another --cache; nothing written')
    return cache


class EndpointRewriter:
    """An OpenAI-compatible /chat/completions endpoint (vLLM, SGLang...) through harness/client.py,
    with an on-disk cache of replies keyed by the request."""

    def __init__(self, args, cache=None):
        self.args = args
        self.client = client.Client(args.url, args.api_key, timeout=args.timeout, retries=args.retries,
                                    backoff=args.backoff, deadline=args.deadline, max_wait=args.max_retry_wait)
        self.cache, self.hits = (read_cache(args.cache) if cache is None else cache), 0

    calls = property(lambda self: self.client.calls)
    retried = property(lambda self: self.client.retried)

    def payload(self, messages, attempt):
        args = self.args
        return {"model": args.endpoint_model, "messages": messages, "temperature": args.temperature,
                "max_tokens": args.max_new_tokens, "seed": attempt}

    @staticmethod
    def key(payload):
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def rewrite_many(self, jobs):
        """jobs: [(key, messages, attempt)] -> yields (key, reply or None, error or None).
        Errors are reported and retried on the next run, never fatal."""
        ask = []
        for rid, messages, attempt in jobs:
            payload = self.payload(messages, attempt)
            reply = self.cache.get(self.key(payload))
            if reply is not None:
                self.hits += 1
                yield rid, reply, None
            else:
                ask.append((rid, payload))
        payloads = dict(ask)
        with open_append(self.args.cache) as f:   # a line a killed run left half-written is cut first
            for rid, got, err in self.client.map(ask, self.args.concurrency):
                if err is not None:
                    yield rid, None, str(err)
                    continue
                reply = normalise_reply(got.content, got.reasoning)
                key = self.key(payloads[rid])
                self.cache[key] = reply
                f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")
                f.flush()
                yield rid, reply, None


class ModelRewriter:
    """A local model run with the project's own sampler (vlm/sampler.py), in batches."""

    def __init__(self, args):
        # torch only where a model runs: the rule-based and endpoint rewriters never import it
        from vlm import modelio, sampler
        self.args, self.modelio, self.sampler = args, modelio, sampler
        self.model, self.proc = modelio.load(args.model, device=args.device)
        self.tokenizer = self.proc.tokenizer

    def rewrite_many(self, jobs):
        import torch
        args = self.args
        for b in range(0, len(jobs), args.batch_size):
            chunk = jobs[b:b + args.batch_size]
            batch = self.modelio.prompt_batch(self.proc, [m for _, m, _ in chunk])
            with torch.no_grad():
                out = self.sampler.sample(self.model, self.proc, batch, n=1, max_new_tokens=args.max_new_tokens,
                                          temperature=args.temperature, seed=1000 * chunk[0][2] + b)
            for (key, _, _), text in zip(chunk, out.texts):
                yield key, normalise_reply(text), None


# ---- the stage ------------------------------------------------------------------------------
def load_done(path):
    done = set()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                try:
                    done.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    print(f"warning: {path}:{i}: unreadable line (kept, not counted)", file=sys.stderr)
    return done


def judge(trace, record, task, state, max_tokens):
    """(verified, reason). Reasons: 'no answer', 'wrong answer', 'too long'."""
    ans = extract_answer(trace)
    if not ans:
        return False, "no answer"
    if not task.verify(ans, state):
        return False, "wrong answer"
    if n_tokens(trace) > max_tokens:
        return False, "too long"
    return True, "kept"


def trace_record(record, trace, args, rewriter_name, root_rel):
    user = tasks.messages_for(record, text_only=args.text_only, root=root_rel)
    return {**record, "messages": user + [{"role": "assistant", "content": trace}],
            "trace": trace, "rewriter": rewriter_name, "n_tokens": n_tokens(trace), "verified": True}


def report(args, out_dir):
    """Per task: kept, rejected by reason, mean length; from the files on disk (all runs)."""
    kept, rej, lens = Counter(), defaultdict(Counter), defaultdict(list)
    for path, is_kept in ((args.out, True), (rejects_path(args), False)):
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                    if is_kept:
                        task, n = obj["task"], int(obj["n_tokens"])
                    else:
                        task, reason = obj["task"], obj["reason"]
                except (ValueError, KeyError, TypeError):
                    continue   # not a line of ours (load_done has said so); the report counts what is
                if is_kept:
                    kept[task] += 1
                    lens[task].append(n)
                else:
                    rej[task][reason] += 1
    reasons = ("wrong answer", "no answer", "too long")
    lines = ["# SERG traces", "", f"rewriter: {args.rewriter}; file: {args.out}", "",
             "| task | kept | " + " | ".join(reasons) + " | kept % | mean tokens |",
             "|---|---|" + "---|" * len(reasons) + "---|---|"]
    tot_k, tot_r = 0, Counter()
    for t in sorted(set(kept) | set(rej)):
        r = rej[t]
        n = kept[t] + sum(r.values())
        tot_k += kept[t]
        tot_r.update(r)
        mean = sum(lens[t]) / len(lens[t]) if lens[t] else 0
        lines.append(f"| {t} | {kept[t]} | " + " | ".join(str(r[x]) for x in reasons)
                     + f" | {100 * kept[t] / max(n, 1):.1f} | {mean:.0f} |")
    n = tot_k + sum(tot_r.values())
    lines.append(f"| **all** | {tot_k} | " + " | ".join(str(tot_r[x]) for x in reasons)
                 + f" | {100 * tot_k / max(n, 1):.1f} | |")
    path = report_path(args)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, tot_k, tot_r


def rejects_path(args):
    return re.sub(r"\.jsonl$", "", args.out) + ".rejects.jsonl"


def report_path(args):
    out_dir = os.path.dirname(os.path.abspath(args.out))
    return os.path.join(out_dir, re.sub(r"\.jsonl$", "", os.path.basename(args.out)) + "_report.md")


def run_json_path(args):
    return re.sub(r"\.jsonl$", "", args.out) + ".run.json"


# settings a rerun may change and still add to the same traces file: where and how fast (or how
# patiently: the deadline, the longest Retry-After) requests go, and how many records are taken.
# The records file may grow (a larger pool): an id is a pure function of (task, level, seed), and
# finished ids are skipped.
MAY_DIFFER = ("limit", "url", "concurrency", "timeout", "retries", "backoff", "cache", "device",
              "overwrite", "input records", "quiet", "deadline", "max_retry_wait")


def refuse_foreign(args, old):
    """Refuse (one line, before anything is written) a traces, rejects or report file that has
    no run.json beside it: elicit.py did not write it (a records file named as --out, say), or
    its record is gone; a rerun would append traces to it, or replace it. --overwrite replaces."""
    if old is not None or args.overwrite:
        return
    for path in (args.out, rejects_path(args), report_path(args)):
        if os.path.exists(path):
            sys.exit(f"error: {path} exists but {run_json_path(args)} does not: not a file elicit.py wrote "
                     f"(or its record is gone); pass --overwrite to replace it, or choose another --out; "
                     f"nothing written")


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries(args.quiet)   # --quiet: transformers' loading bars too (the model rewriter)
    if not os.path.exists(args.records):
        sys.exit(f"error: {args.records} not found (make it with: python synth.py --split train)")
    records, errors = read_records(args.records)
    for e in errors:
        print(f"warning: skipped record: {e}", file=sys.stderr)
    if args.limit:
        records = records[:args.limit]
    if not records:
        sys.exit(f"error: {args.records}: no usable record ({len(errors)} skipped)")
    if args.rewriter == "model":
        runs.check_model(args.model)
    # the traces file continues only an earlier run made the same way (its run.json beside it)
    run_file = run_json_path(args)
    settings = runs.settings(args, inputs={"records": args.records}, skip=("out", "api_key"),
                             model=args.model if args.rewriter == "model" else None)
    unused = () if args.rewriter != "none" else ("temperature", "max_new_tokens", "model", "batch_size",
                                              "endpoint_model")
    old = runs.check(None, settings, may_differ=MAY_DIFFER + unused, overwrite=args.overwrite, run_file=run_file)
    refuse_foreign(args, old)
    cache = read_cache(args.cache) if args.rewriter == "endpoint" else None
    if args.rewriter == "endpoint" and (args.overwrite or {r["id"] for r in records}
                                     - load_done(args.out) - load_done(rejects_path(args))):
        preflight(args)   # before anything is written: a dead endpoint leaves the folder as it was
    if args.overwrite:
        for path in (args.out, rejects_path(args), report_path(args), run_file):
            if os.path.exists(path):
                os.remove(path)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    runs.write(None, settings, run_file=run_file)
    # images in `messages` are stored relative to the traces file, where sft.py resolves them
    rec_root = os.path.dirname(os.path.abspath(args.records))
    root_rel = os.path.relpath(rec_root, out_dir)
    done = load_done(args.out) | load_done(rejects_path(args))
    todo = [r for r in records if r["id"] not in done]
    print(f"{len(records)} records, {len(records) - len(todo)} done before, {len(todo)} to do",
          file=sys.stderr)
    for r in todo:  # a missing image is reported, not silently trained on without it
        if not args.text_only:
            missing = [p for p in record_images(r, rec_root) if not os.path.exists(p)]
            if missing:
                print(f"warning: {args.records}: record {r['id']}: field 'images': missing {missing[0]}",
                      file=sys.stderr)
    rewriter = (None if args.rewriter == "none" else EndpointRewriter(args, cache) if args.rewriter == "endpoint"
                else ModelRewriter(args))
    who = args.endpoint_model if args.rewriter == "endpoint" else args.model
    name = args.rewriter if args.rewriter == "none" else f"{args.rewriter}:{who}"
    info = {}
    for r in todo:
        task = tasks.task_of(r)
        state = state_of(r, task)
        steps = task.skeleton(state)
        info[r["id"]] = (r, task, state, steps)
    t0 = time.perf_counter()
    n_kept, n_rej, n_err = 0, 0, 0
    pending = list(info)
    last_reason = {}
    bar = Progress(len(pending), "elicit", unit="inst", quiet=args.quiet)
    with open(args.out, "a", encoding="utf-8") as fk, open(rejects_path(args), "a", encoding="utf-8") as fr:
        for attempt in range(args.attempts):
            if not pending:
                break
            if rewriter is None:
                replies = ((rid, assemble(skeleton_text(info[rid][3]), info[rid][3][-1]["text"]), None)
                           for rid in pending)
            else:
                jobs = []
                for rid in pending:
                    r, task, state, steps = info[rid]
                    user = REWRITE_USER.format(question=r.get("question_text") or r["question"],
                                               steps=skeleton_for_prompt(steps), answer=steps[-1]["text"])
                    jobs.append((rid, [{"role": "system", "content": REWRITE_SYSTEM},
                                       {"role": "user", "content": user}], attempt))
                replies = rewriter.rewrite_many(jobs)
            still = []
            for rid, trace, err in replies:
                r, task, state, _ = info[rid]
                if err is not None:
                    n_err += 1
                    print(f"warning: {r['id']}: rewriter error: {err} (will retry on rerun)", file=sys.stderr)
                    bar.update(n_kept + n_rej + n_err, kept=n_kept, rejected=n_rej, errors=n_err)
                    continue
                ok, reason = judge(trace, r, task, state, args.max_trace_tokens)
                if ok:
                    fk.write(json.dumps(trace_record(r, trace, args, name, root_rel), ensure_ascii=False) + "\n")
                    fk.flush()
                    n_kept += 1
                else:
                    last_reason[rid] = (reason, trace)
                    still.append(rid)
                # done: kept, failed for good (last attempt), or a rewriter error (retried on rerun)
                rej = n_rej + (len(still) if attempt == args.attempts - 1 else 0)
                bar.update(n_kept + rej + n_err, kept=n_kept, rejected=rej, errors=n_err)
            for rid in still if attempt == args.attempts - 1 else ():
                reason, trace = last_reason[rid]
                fr.write(json.dumps({"id": rid, "task": info[rid][1].name, "reason": reason,
                                     "attempts": args.attempts, "trace": trace[:4000]}, ensure_ascii=False) + "\n")
                n_rej += 1
            fr.flush()
            pending = still
    bar.close()
    path, tot_k, tot_r = report(args, out_dir)
    dt = time.perf_counter() - t0
    extra = ""
    if isinstance(rewriter, EndpointRewriter):
        extra = f"; endpoint calls {rewriter.calls}, retries {rewriter.retried}, cache hits {rewriter.hits}"
    print(f"this run: kept {n_kept}, rejected {n_rej}, errors {n_err} in {dt:.1f}s{extra}\n"
          f"all runs: kept {tot_k}, rejected {sum(tot_r.values())} ({dict(tot_r)}); report {path}",
          file=sys.stderr)
    if n_err and not n_kept and not n_rej:
        sys.exit(f"error: every rewriter request failed ({n_err}); nothing kept (see the warnings "
                 f"above); a rerun retries them")
    return {"kept": n_kept, "rejected": n_rej, "errors": n_err,
            "stats": {k: getattr(rewriter, k, 0) for k in ("calls", "retried", "hits")}}


if __name__ == "__main__":
    main()
