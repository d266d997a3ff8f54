"""The command line pieces every stage shares: argparse types that refuse a bad value in the
parser (one line, before anything loads), one help layout, the shared flag groups of sft.py and
ahpo.py, and the default learning rates. No torch: a stage builds its parser from this module
before it imports anything heavy, so `--help` and a bad flag answer at once.

    from harness import cli
    p = argparse.ArgumentParser(description=..., formatter_class=cli.Help)
    p.add_argument("--steps", type=cli.positive_int, default=20)
"""
from __future__ import annotations

import argparse

from tasks.base import LEVELS
from tasks.registry import TASKS, get


# ---- argparse: refuse bad values in the parser, one line each ------------------------------------
class Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default (unless its help already
    says what the default is, e.g. 'default 1e-5; 1e-3 for the tiny model')."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def _number(cast, kind, ok, rule, name):
    """An argparse type: cast the text, then refuse a value that breaks `rule`, in one line."""
    def parse(s):
        try:
            v = cast(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not {kind}") from None
        if not ok(v):   # written so that NaN fails too
            raise argparse.ArgumentTypeError(f"{v} {rule}")
        return v
    parse.__name__ = name
    return parse


positive_int = _number(int, "an integer", lambda v: v >= 1, "must be at least 1", "positive_int")   # counts, budgets
nonneg_int = _number(int, "an integer", lambda v: v >= 0, "must not be negative", "nonneg_int")     # 0: off or all
positive_float = _number(float, "a number", lambda v: v > 0, "must be greater than 0", "positive_float")
nonneg_float = _number(float, "a number", lambda v: v >= 0, "must not be negative", "nonneg_float")


def int_list(s):
    """argparse type: '1,2,5' -> [1, 2, 5]; names the item that is not an integer."""
    out = []
    for item in s.split(","):
        try:
            out.append(int(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} in {s!r} is not an integer") from None
    return out


def task_names(s):
    """argparse type: 'all' or comma-separated task names (ours or the official category) ->
    our names, in the order given (once each); names the one that is unknown."""
    if s.strip() == "all":
        return list(TASKS)
    names = []
    for item in (x.strip() for x in s.split(",")):
        if not item:
            continue
        try:
            names.append(get(item).name)
        except KeyError as e:
            raise argparse.ArgumentTypeError(e.args[0]) from None
    if not names:
        raise argparse.ArgumentTypeError(f"{s!r} names no task")
    return list(dict.fromkeys(names))


def level_list(s):
    """argparse type: '1,2,5' -> [1, 2, 5], each one of the five difficulty levels."""
    levels = int_list(s)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad} not in {list(LEVELS)}")
    return list(dict.fromkeys(levels))
