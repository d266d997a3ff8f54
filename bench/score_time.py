"""How long tasks.score takes on replies built to stall it (issue 29): every shape of
tests/reward_shapes.py x every task, at 1 MB by default, each in a child process with a hard
timeout. Prints the worst shape per task and the worst task per shape.

    python bench/score_time.py                    # 1 MB, all 42 tasks, level 5 seed 0
    python bench/score_time.py --size 10000000 --timeout 20
    python bench/score_time.py --tasks crypto_math maze --shapes crypto-quote-items

Each score is timed --repeats times and the fastest kept (other jobs on a shared machine only
add time, never remove it); the budget is 0.1 s per reply. A job that has not answered
after --timeout seconds is killed and shown as such. The exit status is 1 when any job is over
the budget, or when a real answer in a long reply (long-reasoning-then-gold) was not found.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from reward_shapes import REAL, SHAPES, time_jobs  # noqa: E402

from tasks import TASKS, make_record  # noqa: E402

BUDGET_S = 0.1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="reply length in characters")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a job is killed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--level", type=int, default=5)
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--shapes", nargs="*", default=None)
    a = ap.parse_args(argv)
    names = a.tasks or sorted(TASKS)
    shapes = a.shapes or list(SHAPES)
    recs = {n: make_record(TASKS[n], TASKS[n].generate(a.level, 0), ["x.png"] * TASKS[n].n_images)
            for n in names}
    jobs = [(recs[n], s, a.size, a.repeats) for n in names for s in shapes]
    res = time_jobs(jobs, a.timeout)          # every job timed --repeats times

    def show(dt):
        return f">{a.timeout:g} s (killed)" if dt is None else f"{dt * 1000:.1f} ms"

    def key(dt):
        return float("inf") if dt is None else dt

    print(f"score() on {a.size:,}-character replies, level {a.level} seed 0, fastest of {a.repeats}")
    print(f"\n{'task':<20} {'worst shape':<28} time")
    bad = []
    by_shape = {s: [] for s in shapes}
    for (rec, s, _, _), (dt, verdict, _) in zip(jobs, res):
        by_shape[s].append((key(dt), rec["task"], dt))
        if dt is None or dt > BUDGET_S or (s in REAL and verdict is not True):
            bad.append((rec["task"], s, show(dt), verdict))
    for n in names:
        rows = [(key(dt), s, dt) for (rec, s, _, _), (dt, _, _) in zip(jobs, res) if rec["task"] == n]
        _, s, dt = max(rows, key=lambda r: r[0])
        print(f"{n:<20} {s:<28} {show(dt)}")
    print(f"\n{'shape':<28} {'worst task':<20} time")
    for s in shapes:
        _, n, dt = max(by_shape[s], key=lambda r: r[0])
        print(f"{s:<28} {n:<20} {show(dt)}")
    worst = max((key(dt) for dt, _, _ in res), default=0.0)
    print(f"\nworst: {'killed' if worst == float('inf') else f'{worst * 1000:.1f} ms'}; "
          f"budget {BUDGET_S * 1000:.0f} ms")
    for n, s, t, v in bad:
        print(f"OVER BUDGET or WRONG: {n} {s} {t} verdict={v}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
