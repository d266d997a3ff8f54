"""Stage 1: tasks -> the MM-HELIX benchmark and training pools (records + images).

    python synth.py                                # data/bench/: 42 tasks x 5 levels x 6 = 1,260
    python synth.py --split train --count 100      # data/train/: disjoint from the benchmark
    python synth.py --tasks sudoku,maze --levels 1,5 --count 2 --out /tmp/demo
    python synth.py --gallery gallery.png          # every renderer at levels 1 and 5, one sheet
    python synth.py --split train --export verl,easyr1,hf   # and the RL engines' data (harness/export.py)
    python synth.py --out data/train --export hf --export-only   # export a folder already made

An instance is a pure function of (task, level, seed): the benchmark takes seeds from 0 and
the training pool from 1,000,000, and each (task, level) walks its seeds in order, skipping
any instance whose public state was already taken (no duplicates in a split) or belongs to
the benchmark (no overlap: the benchmark's states are recomputed, and those in --exclude,
default data/bench/records.jsonl, are read). Output: `records.jsonl` (one record a line, the
official field names plus ours), `images/<id>.png` and `run.json` (the arguments). Work is
spread over processes by (task, level); the output does not depend on the number of processes.
A records.jsonl without a run.json beside it was not written here (official records copied in,
say) and is not replaced without --overwrite.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import tasks
from harness import cli, export, runs
from harness.jsonl import read_records
from harness.progress import Progress
from tasks import TASKS, make_record, state_of

SPLITS = {"bench": 0, "train": 1_000_000}   # first seed of each split
BENCH_COUNT = 6                              # per task and level, as in the paper


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.Help)
    g = p.add_argument_group("data")
    g.add_argument("--split", choices=sorted(SPLITS), default="bench",
                   help="bench (the 1,260-instance benchmark) or train (a pool disjoint from it)")
    g.add_argument("--tasks", type=cli.task_names, default="all", help="comma-separated task names (ours or official)")
    g.add_argument("--levels", type=cli.level_list, default="1,2,3,4,5", help="comma-separated levels")
    g.add_argument("--seed", type=cli.nonneg_int, default=None, help="first seed (default: the split's)")
    g.add_argument("--exclude", default="data/bench/records.jsonl",
                   help="records whose states the train split must avoid (if the file exists)")
    g = p.add_argument_group("budget")
    g.add_argument("--count", type=cli.positive_int, default=BENCH_COUNT, help="instances per task and level")
    g = p.add_argument_group("distributed")
    g.add_argument("--workers", type=cli.positive_int, default=os.cpu_count() or 1, help="processes")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default data/<split>)")
    g.add_argument("--no-images", action="store_true", help="records only (fast; for tests)")
    g.add_argument("--gallery", default=None, metavar="FILE.png",
                   help="draw one image per task at levels 1 and 5 into FILE.png and exit")
    g.add_argument("--export", type=export.formats_arg, default=None, metavar="FORMATS",
                   help=f"also write the records for RL engines, beside records.jsonl: comma-separated, of "
                        f"{', '.join(export.FORMATS)} (verl.parquet, easyr1.parquet, hf/); text-only with --no-images")
    g.add_argument("--export-only", action="store_true",
                   help="generate nothing: write --export for the records already in --out")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a records.jsonl that synth.py did not write (one without run.json beside it)")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    cli.config_flag(g)
    args = cli.parse(p, argv)
    if args.export_only and not args.export:
        p.error("--export-only needs --export FORMATS")
    args.out = args.out or os.path.join("data", args.split)
    args.seed = SPLITS[args.split] if args.seed is None else args.seed
    return args


def select(task, level, first_seed, count, avoid):
    """Walk seeds from `first_seed` and keep the first `count` instances whose public state
    is new and not in `avoid` (a set of canonical hashes). Deterministic."""
    got, seen, seed = [], set(avoid), first_seed
    limit = first_seed + 50 * count + 100
    while len(got) < count:
        if seed >= limit:  # small state spaces (hanoi L1, 4-node graphs) run out of instances
            print(f"\nwarning: {task.name} level {level}: only {len(got)} distinct instances among "
                  f"seeds {first_seed}..{limit - 1} (asked for {count})", file=sys.stderr)
            break
        inst = task.generate(level, seed)
        h = task.canonical(inst.state)
        if h not in seen:
            seen.add(h)
            got.append(inst)
        seed += 1
    return got


def build(job):
    """One (task, level): select instances, render and save images, return records."""
    name, level, args, exclude = job
    task = TASKS[name]
    t0 = time.perf_counter()
    avoid = set(exclude)
    if args.split != "bench":  # the benchmark's own states, recomputed: no overlap by construction
        avoid |= {task.canonical(i.state) for i in select(task, level, SPLITS["bench"], BENCH_COUNT, ())}
    records = []
    for inst in select(task, level, args.seed, args.count, avoid):
        rid = f"{task.name}-L{inst.level}-{inst.seed}"
        paths = []
        if not args.no_images:
            imgs = task.render(inst.state)
            for k, img in enumerate(imgs):
                rel = f"images/{rid}.png" if len(imgs) == 1 else f"images/{rid}_{k}.png"
                # fast zlib level: PNG encoding dominated the time at the default level
                img.save(os.path.join(args.out, rel), "PNG", compress_level=1)
                paths.append(rel)
        records.append(make_record(task, inst, paths))
    return name, level, records, time.perf_counter() - t0


def excluded_hashes(args) -> dict[str, set]:
    out = {}
    if args.split == "bench" or not args.exclude or not os.path.exists(args.exclude):
        return out
    records, errors = read_records(args.exclude)
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    for r in records:
        t = tasks.task_of(r)
        out.setdefault(t.name, set()).add(t.canonical(state_of(r, t)))
    return out


def gallery(path):
    from PIL import Image, ImageDraw
    from tasks.draw import font
    cell, cols = 300, 6
    items = [(t, lv) for t in TASKS.values() for lv in (1, 5)]
    rows = (len(items) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 24)), "white")
    d = ImageDraw.Draw(sheet)
    for k, (t, lv) in enumerate(items):
        img = t.render(t.generate(lv, 0).state)[0]
        img.thumbnail((cell - 8, cell - 8))
        x, y = (k % cols) * cell, (k // cols) * (cell + 24)
        d.text((x + 4, y + 2), f"{t.name} L{lv}", font=font(16), fill="black")
        sheet.paste(img, (x + 4, y + 24))
    sheet.save(path)
    print(f"wrote {path}: {len(items)} images of {len(TASKS)} tasks", file=sys.stderr)


def write_exports(args):
    """The --export formats of args.out's records (harness/export.py); a refusal is one line."""
    t0 = time.perf_counter()
    try:
        written = export.export(args.out, args.export, text_only=args.no_images)
    except export.ExportError as e:
        sys.exit(f"error: {e}")
    print(f"exported {', '.join(written.values())} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    if args.gallery:
        return gallery(args.gallery)
    if args.export:
        try:
            export.require()   # before any work: a missing package costs nothing
        except export.ExportError as e:
            sys.exit(f"error: {e}")
        if args.export_only:   # records made elsewhere (official ones, say) are exported as they are
            return write_exports(args)
    # the records are regenerated whole on every run; only a file this stage made is replaced
    records_path = os.path.join(args.out, "records.jsonl")
    if os.path.exists(records_path) and not os.path.exists(os.path.join(args.out, runs.RUN_FILE)) \
            and not args.overwrite:
        sys.exit(f"error: {records_path} exists but {os.path.join(args.out, runs.RUN_FILE)} does not: not a file "
                 f"synth.py wrote (or its record is gone); pass --overwrite to replace it, or choose another "
                 f"--out; nothing written")
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    runs.write(args.out, runs.settings(args, inputs={"exclude": args.exclude}))
    exclude = excluded_hashes(args)
    jobs = [(n, lv, args, exclude.get(n, set())) for n in args.tasks for lv in args.levels]
    t0 = time.perf_counter()
    results = {}
    bar = Progress(len(jobs), "synth", unit="task-levels", quiet=args.quiet)
    n_done = 0
    with mp.get_context("fork" if sys.platform != "win32" else "spawn").Pool(max(1, args.workers)) as pool:
        for k, (name, level, recs, sec) in enumerate(pool.imap_unordered(build, jobs), 1):
            results[(name, level)] = (recs, sec)
            n_done += len(recs)
            bar.update(k, instances=n_done, **{"inst/s": f"{n_done / (time.perf_counter() - t0):.1f}"})
    bar.close()
    wall = time.perf_counter() - t0
    tmp = os.path.join(args.out, "records.jsonl.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for name in args.tasks:  # registry order, then level, then seed: independent of workers
            for lv in args.levels:
                for r in results[(name, lv)][0]:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
                    n += 1
    os.replace(tmp, records_path)
    print(f"{'task':<22}{'group':<12}{'count':>7}{'seconds':>10}", file=sys.stderr)
    for name in args.tasks:
        cnt = sum(len(results[(name, lv)][0]) for lv in args.levels)
        sec = sum(results[(name, lv)][1] for lv in args.levels)
        print(f"{name:<22}{TASKS[name].group:<12}{cnt:>7}{sec:>10.2f}", file=sys.stderr)
    print(f"wrote {n} records to {args.out}/records.jsonl in {wall:.1f}s: "
          f"{n / max(wall, 1e-9):.1f} instances/s with {args.workers} processes", file=sys.stderr)
    if args.export:
        write_exports(args)
    return n


if __name__ == "__main__":
    main()
