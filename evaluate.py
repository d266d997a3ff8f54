"""Stage 5: score a model, or a file of responses, on MM-HELIX, in the paper's table layout.

    python evaluate.py                                   # the latest model on data/bench (image mode)
    python evaluate.py --model runs/ahpo/final --text-only
    python evaluate.py --predictions answers.jsonl       # responses made elsewhere: {"id", "response"}
    torchrun --nproc_per_node=8 evaluate.py --model /ckpt/Qwen2.5-VL-7B-Instruct --max-new-tokens 8192

Protocol (paper section 4 / the public evaluation code): the prompt is the question plus a
request to box the final answer; the answer is extracted (box tags, <answer>, \\boxed{},
"Answer:", whole text: last match) and checked by the task's verifier. Accuracy is per
task; a group's score is the mean of its tasks; overall is the mean of all tasks. Image and
text-only modes are reported separately.

Writes to --out (default runs/eval/<model or predictions name>, -text with --text-only):
  predictions.jsonl  one line per record: id, task, level, response, extracted, correct
                     (and answer_only: true for an official record scored by its own answer)
  summary.json       overall (percent), per group, per task, per level, counts, problems
  table.md           the paper's Table 1 layout, then per-task and per-level breakdowns
  report.html        the same, then every instance (image, question, response, verdict) with filters
  run.json           the settings: arguments, model fingerprint, input hashes
A killed model run resumes from its responses.rank*.jsonl: finished records are not redone,
and only when run.json shows the same model, records and generation settings.
Records that cannot be used (bad JSON, unknown task, unparsable state, missing image) are
reported with file, line and field, and left out of the scores; the run goes on (--strict:
it stops). A duplicate prediction id is an error; no usable record writes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import tasks
from tasks import GROUPS, extract_answer, read_records, runs, score
from tasks.progress import Progress
from tasks.report import write_report

DEFAULT_MODELS = ("runs/ahpo/final", "runs/sft/final")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=runs.Help)
    g = p.add_argument_group("data")
    g.add_argument("--records", default="data/bench/records.jsonl", help="records to evaluate on")
    g.add_argument("--predictions", default=None,
                   help="score this JSONL of {id, response} instead of running a model")
    g.add_argument("--text-only", action="store_true", help="ask the text questions (no images)")
    g.add_argument("--limit", type=runs.nonneg_int, default=0,
                   help="evaluate only the first N usable records (0: all)")
    g.add_argument("--min-pixels", type=runs.positive_int, default=None,
                   help="pixels, image processor minimum (default: the model's)")
    g.add_argument("--max-pixels", type=runs.positive_int, default=None,
                   help="pixels, image processor maximum (default: the model's)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="checkpoint folder (default: runs/ahpo/final, "
                   "else runs/sft/final, else a tiny offline model)")
    g.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: bfloat16 on GPU, float32 on CPU)")
    g = p.add_argument_group("method")
    g.add_argument("--temperature", type=runs.nonneg_float, default=0.0,
                   help="0 = greedy (non-thinking models, as in the paper); 0.6 for thinking models")
    g.add_argument("--top-p", type=runs.positive_float, default=1.0, help="nucleus mass (temperature > 0)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (temperature > 0)")
    g = p.add_argument_group("budget")
    g.add_argument("--max-new-tokens", type=runs.positive_int, default=2048,
                   help="tokens, generation budget per response (the paper's thinking models need 8k+)")
    g.add_argument("--batch-size", type=runs.positive_int, default=8, help="prompts per sampler call")
    g = p.add_argument_group("distributed")
    g.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default: runs/eval/<model or predictions "
                   "file name>, with -text for --text-only)")
    g.add_argument("--name", default=None, help="row label in table.md (default: model/file name)")
    g.add_argument("--strict", action="store_true",
                   help="exit non-zero on any problem (skipped record, bad or unmatched prediction)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh: drop the responses an earlier run left in --out")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.predictions is None and args.model is None:
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
    """runs/eval/<name>: each model (or predictions file) gets its own folder, so evaluating
    SFT and then AHPO never mixes their responses."""
    src = args.predictions or args.model
    name = run_name(src) if src else "tiny"
    return os.path.join("runs", "eval", name + ("-text" if args.text_only else ""))


# settings a rerun may change and still reuse the responses already made: they do not change
# a response (with greedy decoding the batch only groups prompts; sampling seeds follow it).
MAY_DIFFER = ("limit", "name", "strict", "overwrite", "device", "predictions", "quiet")


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


def read_responses(path, unique=True):
    """{id: response} from a JSONL; bad lines are reported with file, line and field. With
    `unique`, an id given twice is an error naming both lines (which one is meant is unknown)."""
    if not os.path.isfile(path):
        sys.exit(f"error: predictions file {path} not found")
    out, line_of, problems = {}, {}, []
    for i, obj, bad in tasks.records.jsonl_rows(path):
        if bad:
            problems.append(f"{path}:{i}: field '-': {bad}")
            continue
        if not isinstance(obj, dict) or "id" not in obj:
            problems.append(f"{path}:{i}: field 'id': missing")
            continue
        rid = str(obj["id"])
        if unique and rid in line_of:
            sys.exit(f"error: {path}:{i}: field 'id': duplicate id {rid!r}, also on line {line_of[rid]}")
        line_of[rid] = i
        resp = obj.get("response")
        if not isinstance(resp, str):
            problems.append(f"{path}:{i}: field 'response': expected a string, got "
                            f"{type(resp).__name__}; scored as an empty response")
            resp = ""
        out[rid] = resp
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return out, problems


# ---- scoring --------------------------------------------------------------------------------
def judge(record, response):
    return {"id": record["id"], "task": tasks.task_of(record).name,
            "level": int(record.get("difficulty") or 0), "response": response,
            "extracted": extract_answer(response), "correct": bool(score(response, record)),
            **({"answer_only": True} if tasks.answer_only(record) else {})}


def summarise(rows, mode):
    """Accuracy per task (percent); group = mean of its tasks; overall = mean of all tasks."""
    by_task, by_level = defaultdict(list), defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r["correct"])
        by_level[r["level"]].append(r["correct"])
    per_task = {t: 100.0 * sum(v) / len(v) for t, v in by_task.items()}
    per_group = {}
    for g in GROUPS:
        accs = [per_task[t] for t in per_task if tasks.get(t).group == g]
        if accs:
            per_group[g] = sum(accs) / len(accs)
    overall = sum(per_task.values()) / len(per_task) if per_task else 0.0
    return {"mode": mode, "overall": overall, "per_group": per_group,
            "per_task": dict(sorted(per_task.items())),
            "per_level": {str(k): 100.0 * sum(v) / len(v) for k, v in sorted(by_level.items())},
            "n": len(rows), "n_correct": sum(r["correct"] for r in rows),
            "n_tasks": len(per_task), "tasks_in_registry": len(tasks.TASKS),
            # official records with no usable state, scored against their own answer
            "n_answer_only": sum(bool(r.get("answer_only")) for r in rows)}


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
             f"{summary['n_tasks']} tasks)", "", head, sep, f"| {name} | " + " | ".join(vals) + " |", "",
             "Group = mean of its tasks' accuracies; overall = mean over all tasks (percent).", "",
             "## Per task", "", "| Task | Group | Accuracy |", "|---|---|---|"]
    for t, v in summary["per_task"].items():
        lines.append(f"| {t} | {tasks.get(t).group} | {v:.1f} |")
    lines += ["", "## Per level", "", "| Level | Accuracy |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["per_level"].items()]
    if summary.get("n_answer_only"):
        lines += ["", f"{summary['n_answer_only']} official record(s) had no usable initial_state "
                  "and were scored against their own answer, normalised (not rule-checked)."]
    if summary.get("problems"):
        lines += ["", f"## Problems ({len(summary['problems'])})", ""]
        lines += [f"- {p}" for p in summary["problems"][:50]]
    return "\n".join(lines) + "\n"


def write_outputs(out, rows, mode, name, problems):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    s = summarise(rows, mode)
    s["name"], s["problems"] = name, problems
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(s, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table(s, name))
    return s


# ---- generation -----------------------------------------------------------------------------
def read_rank_files(out):
    """Responses written by every rank of every earlier run into `out` (any number of ranks)."""
    responses, problems = {}, []
    for fn in sorted(os.listdir(out)) if os.path.isdir(out) else ():
        if fn.startswith("responses.rank") and fn.endswith(".jsonl"):
            got, more = read_responses(os.path.join(out, fn), unique=False)
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
    with open(os.path.join(args.out, f"responses.rank{rank}.jsonl"), "a", encoding="utf-8") as f:
        for b in range(0, len(prompts), args.batch_size):
            chunk = prompts[b:b + args.batch_size]
            batch = modelio.prompt_batch(proc, [m for _, m in chunk])
            with torch.no_grad():
                out = sampler.sample(model, proc, batch, n=1, max_new_tokens=args.max_new_tokens,
                                     temperature=max(args.temperature, 1e-6), top_p=args.top_p,
                                     greedy=args.temperature == 0, seed=args.seed + b)
            for (r, _), text, ln in zip(chunk, out.texts, out.lengths):
                f.write(json.dumps({"id": r["id"], "response": text}, ensure_ascii=False) + "\n")
                n_tok += int(ln)
            f.flush()
            k = min(b + args.batch_size, len(prompts))
            bar.update(k, **{"tok/s": f"{n_tok / (time.perf_counter() - t0):.0f}"})
    bar.close()
    return model_path


def main(argv=None):
    args = parse_args(argv)
    mode = "text" if args.text_only else "image"
    # ---- data first: records, then predictions; nothing is written before both are checked ----
    records, problems = load_records(args.records, need_images=not args.text_only and not args.predictions)
    if not records:
        sys.exit(f"error: {args.records}: no usable record ({len(problems)} skipped); nothing written")
    if args.limit:
        records = records[:args.limit]
    root = os.path.dirname(os.path.abspath(args.records))
    if args.predictions:
        responses, more = read_responses(args.predictions)
        problems += more
        name = args.name or os.path.basename(args.predictions)
        known = {r["id"] for r in records}
        unknown = sorted(set(responses) - known)
        for rid in unknown:
            problems.append(f"{args.predictions}: id {rid!r} is not in {args.records}; ignored")
        missing = [r["id"] for r in records if r["id"] not in responses]
        if missing:
            problems.append(f"{len(missing)} records have no response and score 0 "
                            f"(first: {missing[0]})")
        if unknown or missing:
            print(f"warning: {args.predictions}: {len(unknown)} predictions match no record; "
                  f"{len(missing)} records have no prediction (they score 0)", file=sys.stderr)
        if problems and args.strict:
            sys.exit(f"error: --strict: {len(problems)} problems (first: {problems[0]}); nothing written")
        runs.write(args.out, runs.settings(args, inputs={"records": args.records, "predictions": args.predictions}))
    else:
        if problems and args.strict:
            sys.exit(f"error: --strict: {len(problems)} problems (first: {problems[0]}); nothing generated")
        if args.model is not None:
            runs.check_model(args.model)
        # the responses in --out are reused only if the same model made them the same way
        settings = runs.settings(args, inputs={"records": args.records},
                                 model=args.model if args.model is not None else "tiny offline model, seed 0")
        may = MAY_DIFFER + (("batch_size",) if args.temperature == 0 else ())
        old = runs.check(args.out, settings, may_differ=may, overwrite=args.overwrite)
        if old is None and not args.overwrite and read_rank_files(args.out)[0]:
            sys.exit(f"error: {args.out} holds responses of an unrecorded run (no run.json); pass "
                     f"--overwrite to start afresh, or choose another --out")
        from vlm import training
        rank, world, device = training.dist_init(args.device)  # each rank on its own GPU
        # barriers around it: every rank has checked the old run.json, and none reads responses
        # while rank 0 clears them
        training.take_run_folder(args.out, settings, args.overwrite, ("responses.rank*.jsonl", runs.RUN_FILE),
                                 rank, world)
        model_path = generate(args, records, root, rank, world, device)
        name = args.name or model_path
        if world > 1:
            import torch.distributed as dist
            dist.barrier()  # every rank's file is complete before rank 0 reads them
        training.dist_close()
        if rank != 0:
            return None
        responses, more = read_rank_files(args.out)
        problems += more
        if more and args.strict:
            sys.exit(f"error: --strict: {len(more)} unreadable responses (first: {more[0]})")
    rows = [judge(r, responses.get(r["id"], "")) for r in records]
    s = write_outputs(args.out, rows, mode, name, problems)
    write_report(args.out, rows, s, records, root, name)   # report.html beside table.md
    print(open(os.path.join(args.out, "table.md")).read().split("\n## Per task")[0])
    print(f"overall {s['overall']:.1f}% over {s['n_tasks']} tasks ({s['n']} instances, "
          f"{s['n_correct']} correct); wrote {args.out}/", file=sys.stderr)
    return s


if __name__ == "__main__":
    main()
