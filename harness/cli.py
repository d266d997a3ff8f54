"""The command line pieces every stage shares: argparse types that refuse a bad value in the
parser (one line, before anything loads), one help layout, the shared flag groups of sft.py and
ahpo.py, and the default learning rates. No torch: a stage builds its parser from this module
before it imports anything heavy, so `--help` and a bad flag answer at once.

    from harness import cli
    p = argparse.ArgumentParser(description=..., formatter_class=cli.Help)
    p.add_argument("--steps", type=cli.positive_int, default=20)
    cli.config_flag(p.add_argument_group("output"))
    args = cli.parse(p, argv)      # p.parse_args, with --config FILE's settings under the flags
"""
from __future__ import annotations

import argparse
import json
import os
import sys

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


# ---- the flags sft.py and ahpo.py share -------------------------------------------------------
SCHEDULES = ("constant", "cosine")
# The default peak learning rate, per stage: real checkpoints take small steps; a model under
# TOY_PARAMS parameters (the tiny offline model, the toy reproduction's) is trained from
# scratch and needs large ones.
LR = {"sft": 1e-5, "ahpo": 1e-6}
TOY_LR, TOY_PARAMS = 1e-3, 50_000_000


def default_lr(stage, n_params):
    """--lr when none is given: LR[stage], or TOY_LR for a model under TOY_PARAMS parameters."""
    return TOY_LR if n_params < TOY_PARAMS else LR[stage]


def data_flags(g):
    """What a row of training is and how long it may be (sft.py, ahpo.py)."""
    g.add_argument("--text-only", action="store_true", help="text questions, no images")
    g.add_argument("--max-len", type=positive_int, default=None,
                   help="tokens, prompt + completion in training (default: the model's context length); "
                        "a row is never cut (see --drop-long)")
    g.add_argument("--drop-long", action="store_true",
                   help="drop traces longer than --max-len (counted per task) instead of refusing the run")
    g.add_argument("--min-pixels", type=positive_int, default=None,
                   help="pixels, image processor minimum (default: the model's)")
    g.add_argument("--max-pixels", type=positive_int, default=None,
                   help="pixels, image processor maximum (default: the model's)")


def model_flags(g, model_help):
    g.add_argument("--model", default=None, help=model_help)
    g.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: bfloat16 on GPU, float32 on CPU)")
    g.add_argument("--freeze-vision", action="store_true", help="train the language model only")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")


def optimizer_flags(g, stage, schedule, warmup, warmup_help):
    """Learning rate and its schedule, weight decay, gradient clipping, the seed."""
    g.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate (default {LR[stage]:g}; {TOY_LR:g} for a model under "
                        f"{TOY_PARAMS // 1_000_000}M parameters)")
    g.add_argument("--warmup", type=nonneg_int, default=warmup, help=warmup_help)
    other = [s for s in SCHEDULES if s != schedule][0]
    g.add_argument("--schedule", choices=SCHEDULES, default=schedule,
                   help=f"after warmup: {schedule} (the default) or {other}; cosine decays to 10%% of "
                        "--lr at the last step")
    g.add_argument("--weight-decay", type=nonneg_float, default=0.0, help="AdamW weight decay")
    g.add_argument("--max-grad-norm", type=positive_float, default=1.0,
                   help="clip the gradient's global L2 norm to this")


def micro_batch_flags(g, size):
    """How a step's rows are cut into forward passes: none of these changes the gradient."""
    g.add_argument("--micro-batch-size", type=positive_int, default=size,
                   help="rows per forward pass, padded to the longest (when --micro-batch-tokens is not given)")
    g.add_argument("--micro-batch-tokens", type=positive_int, default=None,
                   help="positions per forward pass instead: each prompt once with its completions after it, "
                        "no padding (see --no-pack); the faster choice where completion lengths vary")
    g.add_argument("--no-pack", action="store_true",
                   help="with --micro-batch-tokens: rows of their own, sorted by length, padded (for attention "
                        "kernels that take no block mask)")


def distributed_flags(g):
    """Several processes (torchrun) train with FSDP2 on a ("replicate", "shard") device mesh."""
    g.add_argument("--dp-shard", type=positive_int, default=None,
                   help="processes that hold one copy of the model between them, each a slice; the world "
                        "size / K copies are replicas (default: the processes of one node, LOCAL_WORLD_SIZE; "
                        "1: every process holds all of it, DDP's layout; the world size: one full shard)")
    g.add_argument("--offload", action="store_true",
                   help="keep the sharded weights, gradients and optimizer states in CPU memory between "
                        "uses (FSDP2's CPUOffloadPolicy; on one GPU too): slower, for a model the GPUs "
                        "cannot hold (bench/memory_plan.py says when)")
    g.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")


# --report-to: where sft.py and ahpo.py mirror metrics.jsonl, and the import each one needs (what
# torch.utils.tensorboard's SummaryWriter imports; wandb itself), checked before the model loads
REPORTERS = {"tensorboard": ("tensorboard", "tensorboard.summary.writer.event_file_writer"), "wandb": ("wandb",)}


def report_targets(s):
    """argparse type: 'none', or comma-separated REPORTERS -> 'tensorboard', 'tensorboard,wandb'
    (a string: run.json records it as given, and --config reads it back as a flag)."""
    names = [x.strip() for x in s.split(",") if x.strip()]
    if names in ([], ["none"]):
        return "none"
    bad = [n for n in names if n not in REPORTERS]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of none, {', '.join(REPORTERS)}")
    return ",".join(dict.fromkeys(names))


def check_report_to(targets):
    """Exit with one line if a --report-to target's package cannot be imported: before the model
    loads (the packages are optional; nothing imports them at start-up)."""
    import importlib
    for name in targets.split(",") if targets != "none" else ():
        for module in REPORTERS[name]:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise SystemExit(f"error: --report-to {name} needs the {name} package, which does not import "
                                 f"here ({e}): pip install {name}, or drop --report-to {name}") from None


def output_flags(g, out, out_help, save_every):
    g.add_argument("--out", default=out, help=out_help)
    g.add_argument("--save-every", type=positive_int, default=save_every, help="checkpoint every N steps")
    g.add_argument("--keep", type=nonneg_int, default=2, help="step-N folders kept (0: all)")
    g.add_argument("--overwrite", "--no-resume", dest="no_resume", action="store_true",
                   help="start afresh: remove this folder's earlier checkpoints, final/ and metrics")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    g.add_argument("--report-to", type=report_targets, default="none", metavar="{none,tensorboard,wandb}",
                   help="also log every metrics.jsonl number and the run's settings to TensorBoard (<out>/tb) "
                        "or Weights & Biases (project $WANDB_PROJECT, default mm-helix; WANDB_MODE=offline "
                        "works), or both, comma-separated; each is an optional package")
    config_flag(g)


# settings a rerun of sft.py or ahpo.py may change and still continue the same run: they leave
# the maths unchanged (--dp-shard and --offload only where the numbers live and the order of
# their sums: a checkpoint reshards onto any layout; --report-to only where the numbers are
# also logged; --config is never recorded, parse() drops it, and is listed for a reader)
MAY_DIFFER = ("save_every", "keep", "micro_batch_size", "micro_batch_tokens", "no_pack", "grad_checkpointing",
              "device", "no_resume", "quiet", "dp_shard", "offload", "report_to", "config")


# ---- --config FILE: a past run's settings (or a file of the same keys) under the flags ------------
# never taken from a file, with why: the first two delete a run's files (a run.json records
# them, so a note says they were left out); a key is never kept in a file
NOT_FROM_FILE = {"no_resume": "it deletes a run's files: pass --overwrite on the command line",
                 "overwrite": "it deletes a run's files: pass --overwrite on the command line",
                 "config": "a file does not name another",
                 "api_key": "a key is never read from a file: set $OPENAI_API_KEY or pass --api-key"}
RUN_KEYS = ("inputs", "model weights", "prompt")   # run.json's other sections: derived, not settings
_noted = set()


def config_flag(g):
    g.add_argument("--config", metavar="FILE", default=None,
                   help="settings from FILE: a run.json this stage wrote (elicit: <out>.run.json), or a "
                        "*.toml or JSON file of the same keys (flag names or their dest, flat or under \"args\"); "
                        "flags given here override it; --overwrite is never read from a file")


def _keys(p):
    """{key: action}: every option a file may set, by its dest ('n', 'r_hat', as run.json
    records it) and by each long name without dashes, in either spelling ('rollouts', 'r-hat')."""
    keys = {}
    for a in p._actions:
        if not a.option_strings or a.dest == "help":
            continue
        names = {a.dest} | {o.lstrip("-") for o in a.option_strings if o.startswith("--")}
        for name in names | {n.replace("-", "_") for n in names}:
            keys[name] = a
    return keys


def read_config(path):
    """The settings of a --config file: {key: value}. A str (one line) if it cannot be used."""
    if not os.path.isfile(path):
        return "not found"
    with open(path, "rb") as f:
        raw = f.read()
    toml = path.endswith(".toml")
    try:
        if toml:
            import tomllib   # Python 3.11+
            d = tomllib.loads(raw.decode("utf-8"))
        else:
            d = json.loads(raw)
    except ImportError:
        return "reading TOML needs Python 3.11 (tomllib); write the settings as JSON"
    except ValueError as e:   # JSONDecodeError, TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return f"not valid {'TOML' if toml else 'JSON'} ({e})"
    if not isinstance(d, dict):
        return "not a JSON object of settings"
    if isinstance(d.get("args"), dict):   # a run.json, or settings nested as a run.json nests them
        other = [k for k in d if k != "args" and k not in RUN_KEYS]
        if other:
            return f"unknown key {other[0]!r} beside \"args\""
        d = d["args"]
    return d


def _option_text(value):
    """A file's value as the text a flag takes: lists comma-joined (as --tasks, --levels take
    them), objects as JSON (--extra-body), numbers as Python writes them."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def config_argv(p, path):
    """The flags a --config file stands for, to be parsed before the command line's (which
    override them). Exits with one line naming the file and the key for a key the stage does
    not have, a switch that is not true/false, or a key given twice."""
    d = read_config(path)
    if isinstance(d, str):
        p.error(f"--config {path}: {d}")
    keys, argv, seen = _keys(p), [], {}
    for key, value in d.items():
        action = keys.get(key)
        if action is None and key not in NOT_FROM_FILE:
            p.error(f"--config {path}: unknown key {key!r} (not a setting of {p.prog})")
        dest = action.dest if action is not None else key
        if dest in NOT_FROM_FILE:
            if value and (path, dest) not in _noted and os.environ.get("RANK", "0") == "0":
                print(f"note: --config {path}: {key} is not taken from a file ({NOT_FROM_FILE[dest]})",
                      file=sys.stderr)
                _noted.add((path, dest))
            continue
        if dest in seen:
            p.error(f"--config {path}: keys {seen[dest]!r} and {key!r} both set {action.option_strings[0]}")
        seen[dest] = key
        flag = next(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                p.error(f"--config {path}: {key}: {value!r} is not true or false ({flag} is a switch)")
            argv += [flag] if value else []
        elif value is None:   # run.json records a setting left unset (its default) as null
            if action.default is not None:
                p.error(f"--config {path}: {key}: null is not a value of {flag}")
        else:
            argv.append(f"{flag}={_option_text(value)}")
    return argv


def parse(p, argv=None):
    """p.parse_args(argv), with --config FILE: the file's settings as flags before argv's, so a
    flag given here overrides the file and every value passes the parser's own checks (a file's
    bad value is refused as the flag is, naming the file). The namespace holds no `config`: a
    run records the settings, not where they came from."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    path = getattr(args, "config", None)
    if path:
        prefix = config_argv(p, path)
        error = p.error
        p.error = lambda msg: error(f"{msg} (from --config {path})")
        try:
            p.parse_args(prefix)        # the file's values alone: an error here is the file's
        finally:
            del p.error
        args = p.parse_args(prefix + argv)
    if hasattr(args, "config"):
        del args.config
    return args
