"""Run settings: what made a run folder, and whether a rerun may continue it. No torch.

    from harness import runs
    s = runs.settings(args, inputs={"data": args.data}, model=args.model)
    runs.check(args.out, s, may_differ=("save_every", "keep"), overwrite=args.no_resume)  # refuse early
    ... every other check of data and model ...
    runs.take(args.out, s, overwrite=args.no_resume, outputs=RUN_OUTPUTS)   # then write run.json

A stage writes its resolved settings (arguments, the starting model with a fingerprint of its
weights, the content hashes of its input files) to <out>/run.json. A rerun into the same
folder continues only when every setting that changes results matches; each stage names the
few that may differ (save and log frequency, batch sizes that leave the maths unchanged, a
step budget that may grow). Otherwise the stage exits before any work, naming each differing
setting as `old -> new`, and touches nothing; --overwrite starts afresh. run.json is written
only once every check has passed, so a run refused later writes nothing that would stand in
the way of its corrected rerun.

Also here: the check of a model folder before anything is built. The argparse pieces every
stage shares are in harness/cli.py.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil

RUN_FILE = "run.json"
MB = 1 << 20


# ---- fingerprints ---------------------------------------------------------------------------------
def file_sha256(path):
    """Content hash of an input file (records, traces, predictions): the whole file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MB), b""):
            h.update(block)
    return h.hexdigest()


WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def weights_files(path):
    return sorted(f for pat in WEIGHTS for f in glob.glob(os.path.join(path, pat))
                  if os.path.basename(f) != "trainer_state.pt" and os.path.isfile(f))


def model_fingerprint(path):
    """A model folder's fingerprint: config.json's full hash, and per weights file its size and
    the sha256 of its first and last MiB (a 7B model's 15 GB are not read in full; a retrained
    or replaced checkpoint changes the bytes at both ends: the header and the last tensors)."""
    h = hashlib.sha256()
    with open(os.path.join(path, "config.json"), "rb") as f:
        h.update(f.read())
    for w in weights_files(path):
        size = os.path.getsize(w)
        h.update(f"{os.path.basename(w)}:{size}".encode())
        with open(w, "rb") as f:
            h.update(f.read(MB))
            if size > MB:
                f.seek(max(MB, size - MB))
                h.update(f.read(MB))
    return h.hexdigest()[:16]


def model_problem(path, flag="--model"):
    """None if `path` looks like a loadable model folder, else one line naming what is missing."""
    if not os.path.exists(path):
        return f"error: {flag} {path}: no such folder"
    if not os.path.isdir(path):
        return f"error: {flag} {path}: not a folder (a model is a from_pretrained folder)"
    if not os.path.isfile(os.path.join(path, "config.json")):
        return f"error: {flag} {path}: no config.json in the folder"
    try:
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        return f"error: {flag} {path}: config.json is not valid JSON ({e})"
    if not weights_files(path):
        return f"error: {flag} {path}: no weights file (*.safetensors or *.bin) in the folder"
    return None


def check_model(path, flag="--model"):
    """Exit with one line if `path` is not a usable model folder; before anything is built."""
    msg = model_problem(path, flag)
    if msg:
        raise SystemExit(msg)


def model_type(path):
    """config.json's model_type ('qwen2_5_vl', 'qwen2', ...), read without loading the model."""
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f).get("model_type")


# ---- settings and the rerun check -------------------------------------------------------------------
def settings(args, inputs=None, model=None, skip=("out",)):
    """The resolved settings of a run: its arguments (all but `skip`), the content hash of
    each input file ({name: path}; a missing one is recorded as absent), the model folder and
    its fingerprint (or a label such as 'tiny offline model, seed 0' when it is built here)."""
    kept = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    files = {}
    for name, path in (inputs or {}).items():
        files[name] = (file_sha256(path) if path and os.path.isfile(path) else None)
    s = {"args": kept, "inputs": files}
    if model is not None:
        s["model weights"] = model if not os.path.isdir(str(model)) else model_fingerprint(model)
    return json.loads(json.dumps(s, default=str))   # as it will read back from run.json


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in ("args", "inputs") and not prefix:
            out.update(_flat(v, "" if k == "args" else "input "))
        else:
            out[key] = v
    return out


def differences(old, new, may_differ=(), may_grow=()):
    """['name: old -> new', ...] for each result-changing setting that differs. `may_differ`
    names settings free to change; `may_grow` names numbers that may only increase."""
    o, n = _flat(old), _flat(new)
    diff = []
    for k in sorted(set(o) | set(n)):
        if k in may_differ or o.get(k) == n.get(k):
            continue
        if k in may_grow and isinstance(o.get(k), (int, float)) and isinstance(n.get(k), (int, float)) \
                and n[k] >= o[k]:
            continue
        diff.append(f"{k}: {o.get(k, '(unset)')} -> {n.get(k, '(unset)')}")
    return diff


def _read_file(path):
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise SystemExit(f"error: {path}: not valid JSON ({e}); pass --overwrite to start afresh") from None


def check(out, new, may_differ=(), may_grow=(), overwrite=False, run_file=None, outputs=()):
    """Read-only: exit with every differing setting if `out` holds a run made otherwise.
    Returns the old settings (None for a fresh folder or with --overwrite). `outputs`: the
    names (globs) the stage writes into `out`; a folder holding any of them but no run.json is
    not this stage's (or its run.json is gone): refused, since continuing it or writing over it
    would mix another run's files into this one."""
    path = run_file or os.path.join(out, RUN_FILE)
    old = None if overwrite else _read_file(path)
    if old is None:
        found = [] if overwrite else sorted(os.path.basename(p) for pat in outputs
                                            for p in glob.glob(os.path.join(out, pat)))
        if found:
            raise SystemExit(f"error: {out} holds {', '.join(found[:3])} but no {RUN_FILE}: not a run of this "
                             f"stage's settings; choose another --out, or pass --overwrite to start afresh")
        return None
    diff = differences(old, new, may_differ, may_grow)
    if diff:
        raise SystemExit(f"error: {path} was made with other settings (rerun with the old values "
                         f"to continue it, pass --overwrite to start afresh, or choose another "
                         f"--out); differing: " + "; ".join(diff))
    return old


def write(out, new, run_file=None):
    """Record the settings (atomically: a crash never leaves half a run.json)."""
    path = run_file or os.path.join(out, RUN_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(new, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def clear(out, patterns):
    """--overwrite: remove an earlier run's outputs (only the names a stage writes) so no old
    checkpoint, response or metric is mistaken for the new run's."""
    for pat in patterns:
        for p in glob.glob(os.path.join(out, pat)):
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def take(out, settings, overwrite, outputs, rank=0, barrier=None):
    """Take the run folder, once every check has passed (check() refused a mismatch earlier,
    before any work): with `overwrite` rank 0 clears the folder's earlier `outputs`, then
    writes run.json. A run refused by a later check (a trace too long, say) has written
    nothing, so its corrected rerun is not refused for differing from it. Under several
    processes every rank calls it with a `barrier` (torch.distributed.barrier): every rank has
    read the old run.json before rank 0 writes, and none goes on before it has."""
    if barrier is not None:
        barrier()
    if rank == 0:
        if overwrite:
            clear(out, outputs)
        write(out, settings)
    if barrier is not None:
        barrier()
