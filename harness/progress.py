"""Progress with rate and ETA on stderr, shared by every long stage (no torch).

    bar = Progress(len(jobs), "synth", unit="inst", quiet=args.quiet)
    for k, job in enumerate(jobs, 1):
        ...
        bar.update(k, kept=n_kept)        # one line, rewritten in place on a terminal
    bar.close()

On a terminal the line is redrawn at most every `min_interval` seconds. When stderr is not a
terminal (a log file, CI) a carriage-return line would pile up, so one line is written each
time another `every_pct` percent is done, plus the last. `quiet=True` prints nothing.
`log(done, text)` is for stages that print one line per step anyway (sft.py, ahpo.py): the
text gains the ETA and is printed on a terminal every time, elsewhere once per `every_pct`.

`quiet_libraries(args.quiet)`, called by a stage before it loads or saves a model, makes --quiet
hold for transformers' and huggingface_hub's own progress bars ("Loading weights", "Writing
model shards") too.
"""
from __future__ import annotations

import os
import sys
import time


def quiet_libraries(quiet: bool) -> None:
    """With `quiet`, no progress bar from transformers or huggingface_hub: set by environment
    for a library not imported yet (and for child processes), and by transformers' own switch
    when it already is. Imports nothing: the harness stays free of torch and transformers.
    Without `quiet` nothing changes (the bars are the libraries' progress lines)."""
    if not quiet:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"     # read by huggingface_hub, and so transformers, at import
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:                            # imported already: the switch it reads per bar
        hf_logging.disable_progress_bar()
    else:
        hub = sys.modules.get("huggingface_hub.utils")
        if hub is not None:
            hub.disable_progress_bars()


def fmt_seconds(s: float) -> str:
    """3725 -> '1h02m', 65 -> '1m05s', 7.2 -> '7s'."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    def __init__(self, total: int, label: str, unit: str = "it", quiet: bool = False,
                 stream=None, every_pct: float = 10.0, min_interval: float = 0.2, start: int = 0):
        self.total, self.label, self.unit, self.quiet = max(int(total), 0), label, unit, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.min_interval = every_pct, min_interval
        # a resumed run counts its rate from where it started, not from zero
        self.start, self.t0 = start, time.perf_counter()
        self.last_pct, self.last_draw, self.drawn = -1.0, 0.0, False

    def eta(self, done: int) -> tuple[float, float]:
        """(rate in units/s, seconds left) from the work done since this object was made."""
        dt = time.perf_counter() - self.t0
        rate = (done - self.start) / dt if dt > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("inf")
        return rate, left

    def text(self, done: int, **extra) -> str:
        rate, left = self.eta(done)
        pct = 100.0 * done / self.total if self.total else 100.0
        more = "".join(f", {v} {k}" for k, v in extra.items())
        return (f"{self.label}: {done}/{self.total} {self.unit} ({pct:.0f}%){more}, "
                f"{rate:.2f} {self.unit}/s, ETA {fmt_seconds(left) if done < self.total else '0s'}")

    def _due(self, done: int, force: bool) -> bool:
        """Whether a non-terminal stream gets a line now: at each `every` percent and the end."""
        pct = 100.0 * done / self.total if self.total else 100.0
        step = pct // self.every if self.every > 0 else pct
        if force or done >= self.total or step > self.last_pct:
            self.last_pct = step
            return True
        return False

    def update(self, done: int, force: bool = False, **extra) -> None:
        if self.quiet:
            return
        if self.tty:
            now = time.perf_counter()
            if not force and done < self.total and now - self.last_draw < self.min_interval:
                return
            self.last_draw, self.drawn = now, True
            print("\r" + self.text(done, **extra) + "\033[K", end="", file=self.stream, flush=True)
        elif self._due(done, force):
            print(self.text(done, **extra), file=self.stream, flush=True)

    def log(self, done: int, text: str) -> None:
        """A step line of its own plus the ETA (terminal: every call; else once per `every`%)."""
        if self.quiet or not (self.tty or self._due(done, False)):
            return
        _, left = self.eta(done)
        print(f"{text} | ETA {fmt_seconds(left) if done < self.total else '0s'}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.drawn and not self.quiet:
            print(file=self.stream, flush=True)
            self.drawn = False
