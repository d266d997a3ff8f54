"""Stage 5: score a model, an endpoint or a file of responses on MM-HELIX, in the paper's table layout.

    python evaluate.py                                   # the latest model on data/bench (image mode)
    python evaluate.py --model runs/ahpo/final --text-only
    python evaluate.py --endpoint http://localhost:8000/v1 --endpoint-model Qwen2.5-VL-7B-Instruct
    python evaluate.py --endpoint https://api.openai.com/v1 --endpoint-model gpt-4.1 --concurrency 16
    python evaluate.py --export-requests requests.jsonl --endpoint-model gpt-4.1   # for a batch engine
    python evaluate.py --predictions answers.jsonl       # responses made elsewhere: {"id", "response"}
    python evaluate.py --predictions answers.jsonl --tasks sudoku,maze --levels 1,2 --only-predicted
    torchrun --nproc_per_node=8 evaluate.py --model /ckpt/Qwen2.5-VL-7B-Instruct --max-new-tokens 8192

Protocol (paper section 4 / the public evaluation code): one user turn, the record's image(s)
then the prompt `tasks.build_prompt` makes (the question, a blank line, "Please put your final
answer within \\boxed{}."); the answer is extracted (box tags, <answer>, \\boxed{}, "Answer:",
whole text: last match) and checked by the task's verifier. Accuracy is per task; a group's
score is the mean of its tasks; overall is the mean of the tasks scored. Image and text-only
modes are reported separately. The endpoint mode sends exactly what --export-requests writes
(`endpoint_request`): images as data:image/png;base64 image_url parts before the text.

Writes to --out (default runs/eval/<model, endpoint model or predictions name>, -text with --text-only):
  predictions.jsonl  one line per record: id, task, level, response, extracted, correct; and
                     missing (no prediction), failed + error (the request failed), reasoning,
                     finish_reason, usage, latency_s, model and invalid_utf8 (endpoint),
                     answer_only (an official record scored by its own answer)
  summary.json       overall (percent), per group, per task, per level, the selection, counts
                     (missing, failed, empty, cut at max tokens, invalid UTF-8; empty and cut
                     per task too), usage and latency totals, problems
  table.md           the paper's Table 1 layout, then per-task (accuracy, empty, cut) and
                     per-level breakdowns
  report.html        the same, then every instance (image, question, reasoning, response,
                     verdict) with filters
  run.json           the settings: arguments, model fingerprint or endpoint, input hashes
An --out holding one of these names without a run.json was not made here and is refused.
A killed model run resumes from its responses.rank*.jsonl, an endpoint run from its
responses.endpoint.jsonl (one line per reply, written as it arrives): finished records are not
redone, failed requests are retried, and only when run.json shows the same model or endpoint
model, records, prompt and generation settings. An endpoint run with failed requests writes its
files and exits non-zero. Records that cannot be used (bad JSON, unknown task, unparsable
state, missing image) are reported with file, line and field, and left out of the scores; the
run goes on (--strict: it stops). A duplicate prediction id is an error; no usable record
writes nothing.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import tasks
from harness import cli, client, runs
from harness.jsonl import jsonl_rows, open_append, read_records
from harness.progress import Progress, quiet_libraries
from harness.report import write_outputs, write_report
from tasks import extract_answer, score
from tasks.records import BOX_REQUEST

DEFAULT_MODELS = ("runs/ahpo/final", "runs/sft/final")
ENDPOINT_FILE = "responses.endpoint.jsonl"
# an endpoint run stops when its first replies are this many failures that every other request
# would get too: refusals (4xx), or the same server error (5xx) every time
REFUSALS_TO_STOP = 5
# the files evaluate.py writes into --out: a folder holding one of them without a run.json was not
# made by evaluate.py (or lost its record), and is not written into without --overwrite
OUTPUTS = ("predictions.jsonl", "summary.json", "table.md", "report.html", ENDPOINT_FILE,
           "responses.rank*.jsonl")


def json_object(s):
    """argparse type: a JSON object given on the command line."""
    try:
        v = json.loads(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{s!r} is not valid JSON ({e})") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"{s!r} is not a JSON object")
    return v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--records", default="data/bench/records.jsonl", help="records to evaluate on")
    g.add_argument("--tasks", type=cli.task_names, default="all",
                   help="comma-separated task names (ours or official), as synth.py takes them")
    g.add_argument("--levels", type=cli.level_list, default="1,2,3,4,5", help="comma-separated levels")
    g.add_argument("--predictions", default=None,
                   help="score this JSONL of {id, response} (or an OpenAI batch output file) instead "
                        "of running a model")
    g.add_argument("--only-predicted", action="store_true",
                   help="with --predictions: score only the records that have a prediction (default: "
                        "the others score 0, marked missing)")
    g.add_argument("--text-only", action="store_true", help="ask the text questions (no images)")
    g.add_argument("--limit", type=cli.nonneg_int, default=0,
                   help="evaluate only the first N usable records (0: all)")
    g.add_argument("--min-pixels", type=cli.positive_int, default=None,
                   help="pixels, image processor minimum (default: the model's)")
    g.add_argument("--max-pixels", type=cli.positive_int, default=None,
                   help="pixels, image processor maximum (default: the model's)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="checkpoint folder (default: runs/ahpo/final, "
                   "else runs/sft/final, else a tiny offline model)")
    g.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: bfloat16 on GPU, float32 on CPU)")
    g.add_argument("--endpoint", default=None, metavar="URL",
                   help="an OpenAI-compatible server instead of --model, e.g. http://host:8000/v1")
    g.add_argument("--endpoint-model", default=None, metavar="NAME",
                   help="the model name to ask the endpoint for (needed with --endpoint / --export-requests)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's key, sent as a bearer token when "
                        "set (the key is never written anywhere)")
    g.add_argument("--extra-body", type=json_object, default={}, metavar="JSON",
                   help='fields merged into every request; null removes one, e.g. \'{"max_tokens": null, '
                        '"max_completion_tokens": 16384}\' (default: none)')
    g = p.add_argument_group("method")
    g.add_argument("--temperature", type=cli.nonneg_float, default=0.0,
                   help="0 = greedy (non-thinking models, as in the paper); 0.6 for thinking models")
    g.add_argument("--top-p", type=cli.positive_float, default=1.0, help="nucleus mass (temperature > 0)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (temperature > 0)")
    g = p.add_argument_group("budget")
    g.add_argument("--max-new-tokens", type=cli.positive_int, default=2048,
                   help="tokens, generation budget per response (the paper's thinking models need 8k+)")
    g.add_argument("--batch-size", type=cli.positive_int, default=8, help="prompts per sampler call")
    g = p.add_argument_group("distributed")
    g.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    g.add_argument("--concurrency", type=cli.positive_int, default=8, help="endpoint requests in flight")
    g.add_argument("--timeout", type=cli.positive_float, default=1800.0,
                   help="seconds an endpoint request may go without a byte of the reply")
    g.add_argument("--deadline", type=cli.positive_float, default=7200.0,
                   help="seconds one endpoint request may take in all, however its bytes trickle in "
                        "(then it counts as a timeout, and is retried)")
    g.add_argument("--max-retry-wait", type=cli.nonneg_float, default=600.0,
                   help="seconds, the longest Retry-After honoured; a server asking for longer makes the "
                        "request count as failed at once (a rerun asks again)")
    g.add_argument("--retries", type=cli.nonneg_int, default=5,
                   help="retries of an endpoint request (429, 5xx, resets, timeouts)")
    g.add_argument("--backoff", type=cli.nonneg_float, default=2.0,
                   help="seconds, first retry delay, doubled each time (a Retry-After is honoured)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default: runs/eval/<model, endpoint model "
                   "or predictions file name>, with -text for --text-only)")
    g.add_argument("--export-requests", default=None, metavar="FILE",
                   help="write the requests the endpoint mode would send (OpenAI batch format, "
                        "custom_id = record id) to FILE and exit; with --predictions BATCH_OUTPUT, only "
                        "those of the records it has no answer for")
    g.add_argument("--name", default=None, help="row label in table.md (default: model/file name)")
    g.add_argument("--strict", action="store_true",
                   help="exit non-zero on any problem (skipped record, bad or unmatched prediction)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh: drop the responses an earlier run left in --out")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    cli.config_flag(g)
    args = cli.parse(p, argv)
    sources = [f for f, v in (("--model", args.model), ("--endpoint", args.endpoint),
                              ("--predictions", args.predictions)) if v is not None]
    if len(sources) > 1:
        p.error(f"{' and '.join(sources)}: give one source of responses")
    if (args.endpoint or args.export_requests) and not args.endpoint_model:
        p.error(f"{'--endpoint' if args.endpoint else '--export-requests'} needs --endpoint-model")
    if args.export_requests and args.model:
        p.error("--export-requests writes the endpoint mode's requests; it takes no --model")
    if args.only_predicted and not args.predictions:
        p.error("--only-predicted needs --predictions")
    if not sources and not args.export_requests:
        args.model = next((m for m in DEFAULT_MODELS if os.path.isdir(m)), None)
    args.out = args.out or default_out(args)
    return args


def run_name(path):
    """A folder name for a model or predictions file: runs/ahpo/final -> ahpo-final,
    /ckpt/Qwen2.5-VL-7B-Instruct -> Qwen2.5-VL-7B-Instruct, answers.jsonl -> answers."""
    parts = [x for x in os.path.normpath(os.path.abspath(path)).split(os.sep) if x]
    if parts and parts[-1].endswith(".jsonl"):
        parts[-1] = parts[-1][:-len(".jsonl")]
    keep = parts[-2:] if len(parts) > 1 and (parts[-1] == "final" or parts[-1].startswith("step-")) \
        else parts[-1:]
    return "-".join(keep) or "model"


def default_out(args):
    """runs/eval/<name>: each model, endpoint model or predictions file gets its own folder, so
    evaluating SFT and then AHPO never mixes their responses."""
    src = args.predictions or (args.endpoint and args.endpoint_model) or args.model
    name = run_name(src) if src else "tiny"
    return os.path.join("runs", "eval", name + ("-text" if args.text_only else ""))


# settings a rerun may change and still reuse the responses already made: they do not change
# a response (with greedy decoding the batch only groups prompts; sampling seeds follow it), or
# they only choose which records are asked (a selection, a limit) or how fast and how patiently
# (the endpoint's concurrency, timeout, deadline, retries and the longest Retry-After waited
# for: they decide whether a reply arrives, never what it says; the key's variable).
MAY_DIFFER = ("limit", "name", "strict", "overwrite", "device", "predictions", "quiet", "tasks", "levels",
              "only_predicted", "export_requests", "concurrency", "timeout", "retries", "backoff",
              "api_key_env", "deadline", "max_retry_wait")


# ---- reading --------------------------------------------------------------------------------
def load_records(path, need_images):
    if not os.path.exists(path):
        sys.exit(f"error: records file {path} not found (make it with: python synth.py)")
    records, errors = read_records(path, need_images=need_images, answer_only_ok=True)
    for e in errors:
        print(f"warning: skipped record: {e}", file=sys.stderr)
    seen, unique = set(), []
    for r in records:
        if r["id"] in seen:
            errors.append(tasks.RecordError(path, "-", "id", f"duplicate id {r['id']!r}"))
            print(f"warning: {errors[-1]}", file=sys.stderr)
            continue
        seen.add(r["id"])
        unique.append(r)
    return unique, [str(e) for e in errors]


# kept beside a response: model is the name the server answered as, invalid_utf8 the bad byte
# sequences of its reply that were replaced by U+FFFD
EXTRAS = ("reasoning", "finish_reason", "usage", "latency_s", "attempts", "model", "invalid_utf8")


def prediction_of(obj):
    """(id, prediction, problem) of one line of a predictions file. A prediction is
    {"response": text, ...} or {"failed": True, "error": text}. Two shapes are read: ours
    ({"id", "response"}, optionally "reasoning" and the endpoint's EXTRAS, or {"id", "failed",
    "error"}: responses.endpoint.jsonl is one) and an OpenAI batch output line ({"custom_id",
    "response": {"status_code", "body": <chat completion>}, "error"}), which is what a batch
    engine returns for the lines --export-requests writes. problem: (field, message) or None."""
    if not isinstance(obj, dict):
        return None, None, ("-", f"expected a JSON object, got {type(obj).__name__}")
    if "custom_id" in obj:   # a batch output line (its own "id" is the batch's, not the record's)
        rid, resp = obj["custom_id"], obj.get("response")
        err = obj.get("error")
        if err or not isinstance(resp, dict) or resp.get("status_code", 200) != 200:
            msg = err.get("message", err) if isinstance(err, dict) else err
            if not msg and isinstance(resp, dict):   # the body of a 400 or 500 says why
                msg = client.error_text(resp.get("status_code"), json.dumps(resp.get("body") or ""))
            return str(rid), {"failed": True, "error": f"batch: {msg or 'no response'}"}, None
        body = resp.get("body")
        try:
            content, reasoning, finish, usage = client.parse_reply(body)
        except ValueError as e:
            return str(rid), None, ("response.body", str(e))
        model = body.get("model") if isinstance(body.get("model"), str) else None
        pred = {"response": content, **({"reasoning": reasoning} if reasoning else {}),
                **({"finish_reason": finish} if finish else {}), **({"usage": usage} if usage else {}),
                **({"model": model} if model else {})}
        return str(rid), pred, None
    if "id" not in obj:
        return None, None, ("id", "missing")
    rid = str(obj["id"])
    if obj.get("failed"):   # a request that failed, as responses.endpoint.jsonl records it
        return rid, {"failed": True, "error": str(obj.get("error"))}, None
    if "response" not in obj:
        near = [k for k in ("prediction", "answer", "output", "completion", "text", "content") if k in obj]
        hint = (f"the line has {near[0]!r}; evaluate.py reads the key 'response'" if near else
                f"keys: {', '.join(sorted(obj)) or 'none'}")
        return rid, None, ("response", f"missing ({hint})")
    if not isinstance(obj["response"], str):
        return rid, None, ("response", f"expected a string, got {type(obj['response']).__name__}")
    pred = {"response": obj["response"], **{k: obj[k] for k in EXTRAS if k in obj}}
    if not isinstance(pred.get("reasoning", ""), str):
        del pred["reasoning"]
    return rid, pred, None


def read_responses(path, unique=True, warn=True):
    """{id: prediction} from a JSONL (see prediction_of); a bad line is reported with file, line
    and field (on stderr too, with `warn`), and its record has no prediction. A failure never
    replaces an answer, and an answer replaces a failure (a retry's output after the first's).
    With `unique`, an id with two lines that are not failures is an error naming both lines
    (which one is meant is unknown); without, the last such line counts."""
    if not os.path.isfile(path):
        sys.exit(f"error: predictions file {path} not found")
    out, line_of, problems = {}, {}, []
    for i, obj, bad in jsonl_rows(path):
        if bad:
            problems.append(f"{path}:{i}: field '-': {bad}")
            continue
        rid, pred, problem = prediction_of(obj)
        failure = bool(pred and pred.get("failed"))
        if rid is not None and unique and rid in line_of and not failure:
            sys.exit(f"error: {path}:{i}: field 'id': duplicate id {rid!r}, also on line {line_of[rid]}")
        if rid is not None and not failure:
            line_of[rid] = i
        if problem:
            problems.append(f"{path}:{i}: field '{problem[0]}': {problem[1]}"
                            + (f" (record {rid!r} has no prediction)" if rid is not None else ""))
            continue
        if not (pred.get("failed") and rid in out and not out[rid].get("failed")):
            out[rid] = pred
    for p in problems if warn else ():
        print(f"warning: {p}", file=sys.stderr)
    return out, problems


# ---- scoring --------------------------------------------------------------------------------
def judge(record, pred):
    """One row of predictions.jsonl. pred: None (no prediction: missing), {"failed", "error"}
    (the request failed) or {"response", ...}; missing and failed score 0 and say so."""
    row = {"id": record["id"], "task": tasks.task_of(record).name, "level": int(record.get("difficulty") or 0)}
    if pred is None:
        row.update(response=None, extracted="", correct=False, missing=True)
    elif pred.get("failed"):
        row.update(response=None, extracted="", correct=False, failed=True, error=pred["error"])
    else:
        row.update(response=pred["response"], extracted=extract_answer(pred["response"]),
                   correct=bool(score(pred["response"], record)))
        row.update({k: pred[k] for k in EXTRAS if k in pred})
    if tasks.answer_only(record):
        row["answer_only"] = True
    return row


# ---- an endpoint ---------------------------------------------------------------------------
def endpoint_request(args, record, root):
    """The /chat/completions body for `record`, as the endpoint mode sends it and
    --export-requests writes it: one user turn holding the record's images (image mode; each
    a data:image/png;base64 image_url part, in the record's order) and then the text of
    tasks.build_prompt; the generation settings; --extra-body merged last (null removes a field)."""
    body = {"model": args.endpoint_model,
            "messages": client.openai_messages(tasks.messages_for(record, args.text_only, root)),
            "max_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "seed": args.seed}
    for k, v in args.extra_body.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def is_request_file(path):
    """Whether `path` starts as --export-requests writes (an empty file counts): only such a file
    is replaced without --overwrite, never a records file or a batch output named by mistake."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    return False
                return isinstance(obj, dict) and {"custom_id", "method", "url", "body"} <= set(obj)
    return True


def export_requests(args, records, root):
    """--export-requests: one OpenAI batch line per record (custom_id = record id), written to a
    temporary file and renamed, so a half-written file never stands in for the whole. With
    --predictions (a batch's output): only the records it holds no answer for, to send again."""
    if args.predictions:
        answers, _ = read_responses(args.predictions, unique=False, warn=False)
        records = [r for r in records if not _answered(answers.get(r["id"]))]
        if not records:
            print(f"{args.predictions} answers every selected record: no request to send again; nothing written",
                  file=sys.stderr)
            return None
    theirs = not args.overwrite and os.path.isfile(args.export_requests) and not is_request_file(args.export_requests)
    if theirs:
        sys.exit(f"error: --export-requests {args.export_requests}: the file exists and its first line is not a "
                 f"request this option writes; pass --overwrite to replace it, or choose another FILE; nothing written")
    tmp = args.export_requests + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(tmp)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"custom_id": r["id"], "method": "POST", "url": "/v1/chat/completions",
                                "body": endpoint_request(args, r, root)}, ensure_ascii=False) + "\n")
    os.replace(tmp, args.export_requests)
    print(f"wrote {len(records)} requests to {args.export_requests}; score the batch output with "
          f"--predictions", file=sys.stderr)


def read_endpoint_file(path, warn=True):
    """({id: prediction}, problems) from the endpoint responses file: read as any predictions
    file is, so a record answered once is done, and a record that only failed is asked again."""
    return read_responses(path, unique=False, warn=warn) if os.path.isfile(path) else ({}, [])


def _until_interrupted(replies, path, before):
    """The replies, until Ctrl-C: then one line saying what is kept (every reply written so far;
    the requests in flight are dropped and asked again by the rerun) and exit status 130."""
    n = 0
    try:
        for item in replies:
            yield item
            n += 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {before + n} replies are kept in {path}; rerun the same command to "
              f"continue", file=sys.stderr)
        raise SystemExit(130) from None


def _answered(pred):
    return pred is not None and not pred.get("failed")


def systematic(errors, args, n_jobs):
    """Why the endpoint run stops, when its first failures (no reply answered yet) are what
    every request would get: all refusals (4xx, an unasked-for stream), or all the same server
    error (a 5xx with one body: llama.cpp's server answers every image request to a text-only
    model with the same HTTP 500). None when they differ: those may pass."""
    n, rest = len(errors), n_jobs - len(errors)
    if all(not e.retryable for e in errors):
        return f"the endpoint refused the first {n} requests ({errors[-1]}); the other {rest} were not sent"
    same = {e.last for e in errors}
    if len(same) == 1 and all(e.status is not None and e.status >= 500 for e in errors):
        hint = ("; the requests carry images: if the served model reads text only, --text-only may be "
                "what is meant" if not args.text_only else "")
        return (f"the first {n} requests all failed with the same server error ({errors[-1].last}); the other "
                f"{rest} were not sent{hint}")
    return None


def ask_endpoint(args, records, root, key):
    """Ask the endpoint for every record of `records` without an answer in
    out/responses.endpoint.jsonl; each reply (or, once its retries are spent, each failure) is
    appended and flushed as it arrives, so a killed run loses at most the requests in flight."""
    path = os.path.join(args.out, ENDPOINT_FILE)
    f = open_append(path)     # first: it cuts a line a killed run left half-written
    replies, problems = read_endpoint_file(path)
    todo = [r for r in records if not _answered(replies.get(r["id"]))]
    c = client.Client(args.endpoint, key, timeout=args.timeout, retries=args.retries, backoff=args.backoff,
                      deadline=args.deadline, max_wait=args.max_retry_wait)
    jobs = [(r["id"], (lambda r=r: endpoint_request(args, r, root))) for r in todo]  # images read in the workers
    bar = Progress(len(jobs), "evaluate [endpoint]", unit="inst", quiet=args.quiet)
    t0, n_ok, n_bad, stopped, errors, other_name = time.perf_counter(), 0, 0, None, [], None
    n_before = sum(_answered(p) for p in replies.values())
    with f:
        for rid, reply, err in _until_interrupted(c.map(jobs, args.concurrency), path, n_before):
            if err is None:   # the same fields read_endpoint_file gives back on a rerun
                pred = replies[rid] = {"response": reply.content,
                                        **({"reasoning": reply.reasoning} if reply.reasoning else {}),
                                        "finish_reason": reply.finish_reason, "usage": reply.usage,
                                        "latency_s": round(reply.latency_s, 4), "attempts": reply.attempts,
                                        **({"model": reply.model} if reply.model else {}),
                                        **({"invalid_utf8": reply.invalid_utf8} if reply.invalid_utf8 else {})}
                n_ok += 1
                if reply.model and reply.model != args.endpoint_model and other_name is None:
                    other_name = reply.model   # said once: a dated snapshot name is common and harmless
                    print(f"warning: the endpoint answers as model {reply.model!r}, not --endpoint-model "
                          f"{args.endpoint_model!r}; the name of every reply is kept as 'model' in {path}",
                          file=sys.stderr)
            else:
                pred = replies[rid] = {"failed": True, "error": str(err)}
                n_bad += 1
                errors.append(err)
            f.write(json.dumps({"id": rid, **pred}, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(n_ok + n_bad, failed=n_bad)
            # the first replies all fail the way every other request would (a field the server
            # rejects; a server error that is the same every time): none of the others is sent
            if not n_ok and n_bad == REFUSALS_TO_STOP < len(jobs):
                stopped = systematic(errors, args, len(jobs))
                if stopped:
                    break
    bar.close()
    dt = time.perf_counter() - t0
    print(f"endpoint: {n_before} answered before, {n_ok + n_bad} asked now: {n_ok} answered, {n_bad} failed, "
          f"{c.retried} retries, {dt:.1f} s ({(n_ok + n_bad) / dt if dt > 0 else 0:.2f} records/s)", file=sys.stderr)
    return replies, problems, stopped


# ---- a local model --------------------------------------------------------------------------
def read_rank_files(out):
    """Responses written by every rank of every earlier run into `out` (any number of ranks)."""
    responses, problems = {}, []
    for fn in sorted(os.listdir(out)) if os.path.isdir(out) else ():
        if fn.startswith("responses.rank") and fn.endswith(".jsonl"):
            got, more = read_responses(os.path.join(out, fn), unique=False)   # {id: {"response"}}
            responses.update(got)
            problems += more
    return responses, problems


def resolve_model(args):
    if args.model:
        return args.model
    for m in DEFAULT_MODELS:
        if os.path.isdir(m):
            return m
    from vlm import tiny  # torch only where a model runs: prediction-file mode never imports it
    path = os.path.join(args.out, "tiny-model")
    if not os.path.isdir(path):
        tiny.make_tiny(path)
    print(f"note: no --model and no trained checkpoint; using a tiny random model at {path}",
          file=sys.stderr)
    return path


def generate(args, records, root, rank, world, device):
    """Generate responses for this rank's share of `records`, appending to
    out/responses.rank<r>.jsonl after every batch (so a killed run resumes)."""
    import torch
    from vlm import modelio, sampler
    done, _ = read_rank_files(args.out)
    mine = [r for k, r in enumerate(records) if k % world == rank and r["id"] not in done]
    model_path = resolve_model(args)
    model, proc = modelio.load(model_path, device=device, dtype=args.dtype,
                               **{k: v for k, v in (("min_pixels", args.min_pixels),
                                                ("max_pixels", args.max_pixels)) if v})
    if proc.image_processor is None and not args.text_only:
        sys.exit(f"error: {model_path} is a text-only model; pass --text-only")
    # sort by prompt length so a batch wastes little on padding
    prompts = [(r, tasks.messages_for(r, args.text_only, root)) for r in mine]
    prompts.sort(key=lambda x: len(x[1][0]["content"][-1]["text"]))
    t0, n_tok = time.perf_counter(), 0
    bar = Progress(len(prompts), f"evaluate [rank {rank}]", unit="inst", quiet=args.quiet)
    with open_append(os.path.join(args.out, f"responses.rank{rank}.jsonl")) as f:
        for b in range(0, len(prompts), args.batch_size):
            chunk = prompts[b:b + args.batch_size]
            batch = modelio.prompt_batch(proc, [m for _, m in chunk])
            with torch.no_grad():
                out = sampler.sample(model, proc, batch, n=1, max_new_tokens=args.max_new_tokens,
                                     temperature=max(args.temperature, 1e-6), top_p=args.top_p,
                                     greedy=args.temperature == 0, seed=args.seed + b)
            for (r, _), text, ln, fin in zip(chunk, out.texts, out.lengths, out.finished):
                # as an endpoint says it: "length" when the budget ran out before an end token
                f.write(json.dumps({"id": r["id"], "response": text, "finish_reason": "stop" if fin else "length"},
                                   ensure_ascii=False) + "\n")
                n_tok += int(ln)
            f.flush()
            k = min(b + args.batch_size, len(prompts))
            bar.update(k, **{"tok/s": f"{n_tok / (time.perf_counter() - t0):.0f}"})
    bar.close()
    return model_path


def select(args, records, problems):
    """The records of --tasks and --levels (then --limit); a selected task or level without a
    record in the file is reported, not silently absent from the table."""
    every_level = set(args.levels) == set(tasks.LEVELS)   # then a record without a level is kept too
    chosen = [r for r in records if tasks.task_of(r).name in args.tasks
              and (every_level or int(r.get("difficulty") or 0) in args.levels)]
    have_t = {tasks.task_of(r).name for r in chosen}
    have_l = {int(r.get("difficulty") or 0) for r in chosen}
    # named on purpose (not the default 'all'): a task or level the file lacks is said
    if set(args.tasks) != set(tasks.TASKS):
        problems += [f"{args.records}: no record of selected task {t!r}" for t in args.tasks if t not in have_t]
    if not every_level:
        problems += [f"{args.records}: no record of selected level {lv}" for lv in args.levels if lv not in have_l]
    return chosen[:args.limit] if args.limit else chosen


def selection(args):
    return {"tasks": "all" if set(args.tasks) == set(tasks.TASKS) else list(args.tasks),
            "levels": list(args.levels)}


def endpoint_key(args):
    """The key from the environment variable --api-key-env names; None when unset (a local
    server needs none). A variable named explicitly must be set."""
    key = os.environ.get(args.api_key_env) or None
    if key is None and args.api_key_env != "OPENAI_API_KEY":
        sys.exit(f"error: --api-key-env {args.api_key_env}: that environment variable is not set")
    return key


# ---- the three sources of responses, one scorer ----------------------------------------------------
def strict_stop(args, problems, what):
    if problems and args.strict:
        sys.exit(f"error: --strict: {len(problems)} problems (first: {problems[0]}); {what}")


def refuse_foreign(args):
    """An --out that holds a file of evaluate.py's names but no run.json was not made by
    evaluate.py (or lost its record): nothing is written into it without --overwrite."""
    if args.overwrite or os.path.isfile(os.path.join(args.out, runs.RUN_FILE)):
        return
    found = sorted(p for pat in OUTPUTS for p in glob.glob(os.path.join(args.out, pat)))
    if found:
        sys.exit(f"error: {args.out} holds {os.path.basename(found[0])} but no run.json: not a folder evaluate.py "
                 f"wrote (or its record is gone); pass --overwrite to replace its files, or choose another --out; "
                 f"nothing written")


def old_source(out):
    """'endpoint', 'model' or 'predictions': what made the run recorded in out/run.json (None: none)."""
    try:
        with open(os.path.join(out, runs.RUN_FILE)) as f:
            old = json.load(f)["args"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return "predictions" if old.get("predictions") else "endpoint" if old.get("endpoint") else "model"


def from_predictions(args, records, all_ids, problems, extra):
    """--predictions FILE: the responses of a file made elsewhere. Returns (records to score,
    {id: prediction}, name)."""
    responses, more = read_responses(args.predictions)
    problems += more
    if not responses:
        sys.exit(f"error: {args.predictions}: no line holds a usable prediction ({len(more)} problems"
                 + (f"; first: {more[0]}" if more else "") + "); nothing written")
    unknown = sorted(set(responses) - all_ids)
    for rid in unknown:
        problems.append(f"{args.predictions}: id {rid!r} is not in {args.records}; ignored")
    missing = [r["id"] for r in records if r["id"] not in responses]
    if missing:
        problems.append(f"{len(missing)} records of the selection have no prediction and "
                        f"{'are left out' if args.only_predicted else 'score 0'} (first: {missing[0]})")
    if unknown or missing:
        print(f"warning: {args.predictions}: {len(unknown)} predictions match no record; "
              f"{len(missing)} records have no prediction ("
              f"{'left out: --only-predicted' if args.only_predicted else 'they score 0, marked missing'})",
              file=sys.stderr)
    strict_stop(args, problems, "nothing written")
    if args.only_predicted:
        records = [r for r in records if r["id"] in responses]
        extra.update(only_predicted=True, n_left_out=len(missing))
        if not records:
            sys.exit(f"error: {args.predictions}: no prediction for a record of the selection; nothing written")
    ours = {os.path.abspath(p) for pat in OUTPUTS + (runs.RUN_FILE,) for p in glob.glob(os.path.join(args.out, pat))}
    if os.path.abspath(args.predictions) in ours:
        sys.exit(f"error: --predictions {args.predictions} is a file evaluate.py writes in --out {args.out}: "
                 f"scoring it there would replace it; choose another --out; nothing written")
    refuse_foreign(args)
    made_by = old_source(args.out)
    if made_by in ("endpoint", "model") and not args.overwrite:   # its responses would lose their scores
        sys.exit(f"error: {args.out} holds the outputs of a --{made_by} run (run.json); scoring --predictions "
                 f"there would replace them; choose another --out, or pass --overwrite to start afresh; "
                 f"nothing written")
    if args.overwrite:
        runs.clear(args.out, OUTPUTS + (runs.RUN_FILE,))
    settings = runs.settings(args, inputs={"records": args.records, "predictions": args.predictions})
    runs.write(args.out, {**settings, "prompt": BOX_REQUEST})
    return records, responses, args.name or os.path.basename(args.predictions)


def from_endpoint(args, records, root, problems, extra):
    """--endpoint URL: ask an OpenAI-compatible server for every record without a reply in
    --out. Returns ({id: prediction}, name)."""
    strict_stop(args, problems, "nothing asked")
    key = endpoint_key(args)
    # the replies in --out are reused only if the same endpoint model made them the same way
    settings = {**runs.settings(args, inputs={"records": args.records}), "prompt": BOX_REQUEST}
    may = MAY_DIFFER + ("batch_size", "dtype", "min_pixels", "max_pixels")
    runs.check(args.out, settings, may_differ=may, overwrite=args.overwrite)
    refuse_foreign(args)
    path = os.path.join(args.out, ENDPOINT_FILE)
    # asked again below, after the folder is ours: here only whether anything is left to ask
    replies = {} if args.overwrite else read_endpoint_file(path, warn=False)[0]
    if not all(_answered(replies.get(r["id"])) for r in records):
        problem = client.preflight(args.endpoint, key, timeout=min(args.timeout, 10.0), model=args.endpoint_model)
        if problem:
            sys.exit(f"error: --endpoint {problem}; nothing written")
    if args.overwrite:
        runs.clear(args.out, OUTPUTS + (runs.RUN_FILE,))
    runs.write(args.out, settings)
    responses, more, stopped = ask_endpoint(args, records, root, key)
    problems += more
    if stopped:   # the replies written stay for a rerun; no table of mostly unasked records
        sys.exit(f"error: --endpoint {stopped}; fix the request (--export-requests shows what is "
                 f"sent) or the server, then rerun (with --overwrite if a setting changed)")
    served = sorted({p["model"] for p in responses.values() if isinstance(p.get("model"), str)})
    extra["endpoint"] = {"url": args.endpoint, "model": args.endpoint_model,
                         **({"served_as": served} if served else {})}
    return responses, args.name or args.endpoint_model


def from_model(args, records, root, problems):
    """--model PATH (or the latest checkpoint, or a tiny offline model): generate with the
    project's sampler, one share of the records per rank (torchrun). Returns ({id: prediction},
    name) on rank 0, None on the other ranks."""
    strict_stop(args, problems, "nothing generated")
    if args.model is not None:
        runs.check_model(args.model)
    # the responses in --out are reused only if the same model made them the same way
    settings = {**runs.settings(args, inputs={"records": args.records},
                                model=args.model if args.model is not None else "tiny offline model, seed 0"),
                "prompt": BOX_REQUEST}
    may = MAY_DIFFER + (("batch_size",) if args.temperature == 0 else ())
    runs.check(args.out, settings, may_differ=may, overwrite=args.overwrite)
    refuse_foreign(args)
    from vlm import training   # torch only where a model runs
    rank, world, device = training.dist_init(args.device)  # each rank on its own GPU
    # barriers around it: every rank has checked the old run.json, and none reads responses
    # while rank 0 clears them
    runs.take(args.out, settings, args.overwrite, OUTPUTS + (runs.RUN_FILE,), rank, training.barrier(world))
    model_path = generate(args, records, root, rank, world, device)
    training.dist_close()   # its barrier: every rank's file is complete before rank 0 reads them
    if rank != 0:
        return None
    responses, more = read_rank_files(args.out)
    problems += more
    if more and args.strict:
        sys.exit(f"error: --strict: {len(more)} unreadable responses (first: {more[0]})")
    return responses, args.name or model_path


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries(args.quiet)   # --quiet: transformers' loading and saving bars too (model mode)
    # ---- data first: records, then predictions; nothing is written before both are checked ----
    records, problems = load_records(args.records, need_images=not args.text_only and (
        not args.predictions or bool(args.export_requests)))
    if not records:
        sys.exit(f"error: {args.records}: no usable record ({len(problems)} skipped); nothing written")
    all_ids = {r["id"] for r in records}
    records = select(args, records, problems)
    if not records:
        sys.exit(f"error: {args.records}: no record of the selected tasks and levels; nothing written")
    root = os.path.dirname(os.path.abspath(args.records))
    extra = {"selection": selection(args)}
    if args.export_requests:
        return export_requests(args, records, root)
    if args.predictions:
        records, responses, name = from_predictions(args, records, all_ids, problems, extra)
    elif args.endpoint:
        responses, name = from_endpoint(args, records, root, problems, extra)
    else:
        got = from_model(args, records, root, problems)
        if got is None:   # not rank 0: rank 0 scores every rank's responses
            return None
        responses, name = got
    extra["source"] = "predictions" if args.predictions else "endpoint" if args.endpoint else "model"

    # ---- one scorer and one writer for every source ---------------------------------------------
    rows = [judge(r, responses.get(r["id"])) for r in records]
    s = write_outputs(args.out, rows, "text" if args.text_only else "image", name, problems, extra)
    write_report(args.out, rows, s, records, root, name)   # report.html beside table.md
    print(open(os.path.join(args.out, "table.md")).read().split("\n## Per task")[0])
    print(f"overall {s['overall']:.1f}% over {s['n_tasks']} tasks ({s['n']} instances, "
          f"{s['n_correct']} correct); wrote {args.out}/", file=sys.stderr)
    if s["n_failed"]:
        failed = [r for r in rows if r.get("failed")]
        first = failed[0]
        if not args.predictions:
            sys.exit(f"error: {s['n_failed']} of {s['n']} requests failed and score 0 (first: {first['id']}: "
                     f"{first['error']}); the files in {args.out} say so; rerun the same command to retry them")
        # a file made elsewhere: scoring it again asks nothing, so say which requests to send again
        ids = ", ".join(r["id"] for r in failed[:20]) + (f", ... ({len(failed) - 20} more)" if len(failed) > 20 else "")
        sys.exit(f"error: {s['n_failed']} of {s['n']} requests failed in {args.predictions} and score 0 (ids: {ids}; "
                 f"first error: {first['error']}); the files in {args.out} say so. Scoring the file again retries "
                 f"nothing: send those requests again (--export-requests FILE --predictions {args.predictions}, with "
                 f"the first export's settings, writes only the requests without an answer), then score both outputs "
                 f"as one file (an answer replaces a failure of the same id)")
    return s


if __name__ == "__main__":
    main()
