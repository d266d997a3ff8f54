"""Bad input, run as a user would (a subprocess per case): each case is refused with the exit
code it should have, one line naming the file, line or field, no traceback, and every file
that existed before keeps its bytes. Cases that fail in the parser or on their data cost a
process start; the few that need a finished run share one tiny run (session fixture)."""
import json
import os
import subprocess
import sys

import pytest
from snapshot import snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OK, ERROR, USAGE = 0, 1, 2     # sys.exit("error: ...") exits 1; argparse's p.error exits 2


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """data/bench, data/train (records, no images), data/traces.jsonl, a finished 1-step SFT
    run (runs/sft), a finished evaluation of tiny model A (runs/eval/a), and odd files."""
    import synth
    import vlm
    d = tmp_path_factory.mktemp("cli")
    few = ["--tasks", "maze,hanoi", "--levels", "1", "--count", "1", "--no-images", "--workers", "1"]
    synth.main(["--out", str(d / "data/bench"), *few])
    synth.main(["--split", "train", "--out", str(d / "data/train"), "--exclude", "", *few])
    _run(d, "elicit.py", "--text-only", check=True)
    _run(d, "elicit.py", "--records", "data/bench/records.jsonl", "--out", "data/bench_traces.jsonl",
         "--text-only", check=True)
    _run(d, "sft.py", "--max-steps", "1", "--batch-size", "1", "--text-only", check=True)
    vlm.make_tiny(str(d / "model_a"), seed=1)
    vlm.make_tiny(str(d / "model_b"), seed=2)
    _run(d, "evaluate.py", "--model", "model_a", "--text-only", "--max-new-tokens", "2",
         "--out", "runs/eval/a", check=True)
    (d / "empty_dir").mkdir()
    (d / "foreign_run").mkdir()      # a folder with a training run's files but no run.json
    (d / "foreign_run/metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (d / "foreign_run/step-3").mkdir()
    (d / "no_weights").mkdir()
    (d / "no_weights/config.json").write_text("{}")
    recs = [json.loads(line) for line in open(d / "data/bench/records.jsonl")]
    pred = [json.dumps({"id": r["id"], "response": f"\\boxed{{{r['answer']}}}"}) for r in recs]
    (d / "pred.jsonl").write_text("\n".join(pred) + "\n")
    (d / "pred_dup.jsonl").write_text("\n".join(pred + [pred[0]]) + "\n")
    (d / "pred_unknown.jsonl").write_text("\n".join(pred[:1] + ['{"id": "nope-L1-0", "response": ""}']) + "\n")
    (d / "garbage.jsonl").write_text("not json\n{\"id\": 1}\n")
    (d / "empty.jsonl").write_text("")
    (d / "cfg_unknown.toml").write_text('batch-size = 1\nbatch = 2\n')
    (d / "cfg_bad.json").write_text('{"args": {"batch_size": 0}}')
    return d


def _run(d, script, *args, check=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    p = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=d, env=env,
                       capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


# (id, script, args, exit code, words the message line must hold, a path that must not appear)
CASES = [
    # synth: counts and lists refused by the parser, records.jsonl left as it was
    ("synth-count-0", "synth.py", ["--out", "data/bench", "--count", "0"], USAGE, ["--count", "at least 1"], None),
    ("synth-count-neg", "synth.py", ["--out", "data/bench", "--count", "-1"], USAGE, ["--count", "-1"], None),
    ("synth-levels-x", "synth.py", ["--levels", "1,x"], USAGE, ["--levels", "'x'"], None),
    ("synth-levels-range", "synth.py", ["--levels", "1,9"], USAGE, ["--levels", "9"], None),
    ("synth-task-unknown", "synth.py", ["--tasks", "nosuchtask"], USAGE, ["--tasks", "nosuchtask"], None),
    # evaluate
    ("eval-pred-missing", "evaluate.py", ["--predictions", "missing.jsonl"], ERROR,
     ["missing.jsonl", "not found"], "runs/eval/missing"),
    ("eval-pred-duplicate", "evaluate.py", ["--predictions", "pred_dup.jsonl"], ERROR,
     ["pred_dup.jsonl:3", "field 'id'", "duplicate", "line 1"], "runs/eval/pred_dup"),
    ("eval-limit-neg", "evaluate.py", ["--predictions", "pred.jsonl", "--limit", "-1"], USAGE,
     ["--limit", "-1"], None),
    ("eval-no-usable-record", "evaluate.py", ["--records", "garbage.jsonl", "--predictions", "pred.jsonl",
     "--out", "runs/eval/a"], ERROR, ["garbage.jsonl", "no usable record"], None),
    ("eval-unknown-ids", "evaluate.py", ["--predictions", "pred_unknown.jsonl"], OK,
     ["1 predictions match no record", "1 records have no prediction"], None),
    ("eval-unknown-ids-strict", "evaluate.py", ["--predictions", "pred_unknown.jsonl", "--strict",
     "--out", "runs/eval/strict"], ERROR, ["--strict", "nope-L1-0"], "runs/eval/strict"),
    ("eval-endpoint-down", "evaluate.py", ["--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "m"], ERROR,
     ["--endpoint http://127.0.0.1:9/v1", "does not answer"], "runs/eval/m"),
    ("eval-endpoint-no-model", "evaluate.py", ["--endpoint", "http://127.0.0.1:9/v1"], USAGE,
     ["--endpoint", "needs --endpoint-model"], None),
    ("eval-export-no-model", "evaluate.py", ["--export-requests", "req.jsonl"], USAGE,
     ["--export-requests", "needs --endpoint-model"], "req.jsonl"),
    ("eval-two-sources", "evaluate.py", ["--model", "model_a", "--predictions", "pred.jsonl"], USAGE,
     ["--model and --predictions", "one source"], None),
    ("eval-extra-body-not-object", "evaluate.py", ["--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "m",
     "--extra-body", "[1]"], USAGE, ["--extra-body", "not a JSON object"], None),
    ("eval-key-variable-unset", "evaluate.py", ["--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "m",
     "--api-key-env", "MMHELIX_UNSET_KEY_VARIABLE"], ERROR, ["MMHELIX_UNSET_KEY_VARIABLE", "not set"], "runs/eval/m"),
    ("eval-levels-range", "evaluate.py", ["--predictions", "pred.jsonl", "--levels", "0,1"], USAGE,
     ["--levels", "[0]"], None),
    ("eval-task-unknown", "evaluate.py", ["--predictions", "pred.jsonl", "--tasks", "maze,mazes"], USAGE,
     ["--tasks", "'mazes'"], None),
    ("eval-model-missing", "evaluate.py", ["--model", "nowhere"], ERROR, ["nowhere", "no such folder"],
     "runs/eval/nowhere"),
    ("eval-model-empty", "evaluate.py", ["--model", "empty_dir"], ERROR, ["empty_dir", "config.json"],
     "runs/eval/empty_dir"),
    ("eval-model-no-weights", "evaluate.py", ["--model", "no_weights"], ERROR, ["no_weights", "weights"],
     "runs/eval/no_weights"),
    ("eval-other-model-same-out", "evaluate.py", ["--model", "model_b", "--text-only", "--max-new-tokens", "2",
     "--out", "runs/eval/a"], ERROR, ["runs/eval/a/run.json", "model weights", "model: model_a -> model_b"], None),
    ("eval-other-budget-same-out", "evaluate.py", ["--model", "model_a", "--text-only", "--max-new-tokens", "3",
     "--out", "runs/eval/a"], ERROR, ["max_new_tokens: 2 -> 3"], None),
    # sft: data before model; a rerun with other settings touches nothing
    ("sft-data-missing", "sft.py", ["--data", "missing.jsonl", "--out", "runs/x"], ERROR,
     ["missing.jsonl", "not found"], "runs/x"),
    ("sft-data-garbage", "sft.py", ["--data", "garbage.jsonl", "--out", "runs/x"], ERROR,
     ["garbage.jsonl", "no usable traces"], "runs/x"),
    ("sft-steps-neg", "sft.py", ["--max-steps", "-1"], USAGE, ["--max-steps", "-1"], None),
    ("sft-batch-0", "sft.py", ["--batch-size", "0"], USAGE, ["--batch-size", "0"], None),
    ("sft-batch-over-data", "sft.py", ["--batch-size", "8", "--out", "runs/x"], ERROR,
     ["data/traces.jsonl", "2 usable traces", "--batch-size 8"], "runs/x"),
    ("sft-model-empty", "sft.py", ["--model", "empty_dir", "--batch-size", "1", "--out", "runs/x"], ERROR,
     ["empty_dir", "config.json"], "runs/x"),
    ("sft-rerun-other-lr", "sft.py", ["--max-steps", "1", "--batch-size", "1", "--text-only", "--lr", "0.5"],
     ERROR, ["runs/sft/run.json", "lr: None -> 0.5"], None),
    ("sft-rerun-other-data", "sft.py", ["--max-steps", "1", "--batch-size", "1", "--text-only",
     "--data", "data/bench_traces.jsonl"], ERROR, ["data: data/traces.jsonl -> data/bench_traces.jsonl",
                                                   "input data"], None),
    # ahpo: traces are required in mode ahpo, and must match prompts
    ("ahpo-traces-missing", "ahpo.py", ["--traces", "missing.jsonl", "--out", "runs/x"], ERROR,
     ["--traces missing.jsonl", "not found", "--mode grpo"], "runs/x"),
    ("ahpo-traces-empty", "ahpo.py", ["--traces", "empty.jsonl", "--out", "runs/x"], ERROR,
     ["--traces empty.jsonl", "no usable trace"], "runs/x"),
    ("ahpo-traces-unmatched", "ahpo.py", ["--traces", "data/bench_traces.jsonl", "--out", "runs/x"], ERROR,
     ["data/bench_traces.jsonl", "none of its", "data/train/records.jsonl"], "runs/x"),
    # ahpo: settings that train nothing the mode promises, refused by the parser (ahpo.check_method)
    ("ahpo-none-for-sft-mode", "ahpo.py", ["--mode", "sft", "--traces", "none", "--out", "runs/x"], USAGE,
     ["--traces none", "mode sft", "needs expert traces"], "runs/x"),
    ("ahpo-traces-none", "ahpo.py", ["--traces", "none", "--out", "runs/x"], USAGE,
     ["--traces none", "xi = 0", "--mode grpo"], "runs/x"),
    ("ahpo-rollouts-1", "ahpo.py", ["--rollouts", "1", "--out", "runs/x"], USAGE,
     ["--rollouts 1", "mode ahpo", "L_on is identically 0"], "runs/x"),
    ("ahpo-rollouts-1-grpo", "ahpo.py", ["--mode", "grpo", "--rollouts", "1", "--out", "runs/x"], USAGE,
     ["--rollouts 1", "mode grpo", "every advantage is 0"], "runs/x"),
    ("ahpo-r-hat-over-rollouts", "ahpo.py", ["--r-hat", "5", "--rollouts", "2", "--out", "runs/x"], USAGE,
     ["--r-hat 5 > --rollouts 2", "never closes", "--mode static"], "runs/x"),
    ("ahpo-r-hat-0", "ahpo.py", ["--r-hat", "0", "--out", "runs/x"], USAGE,
     ["--r-hat 0", "xi = 0 always", "--mode grpo"], "runs/x"),
    ("ahpo-kl-in-sft-mode", "ahpo.py", ["--mode", "sft", "--kl-coef", "0.1", "--out", "runs/x"], USAGE,
     ["--kl-coef 0.1", "mode sft", "no rollouts"], "runs/x"),
    ("ahpo-records-missing", "ahpo.py", ["--records", "missing.jsonl", "--out", "runs/x"], ERROR,
     ["missing.jsonl", "not found"], "runs/x"),
    ("ahpo-rollouts-0", "ahpo.py", ["--rollouts", "0"], USAGE, ["--rollouts", "0"], None),
    # a micro-batch budget that cannot hold one row: refused before any step, never cut
    ("sft-micro-batch-tokens-too-small", "sft.py", ["--micro-batch-tokens", "10", "--batch-size", "1", "--text-only",
     "--model", "model_a", "--out", "runs/x"], ERROR, ["--micro-batch-tokens 10", "tokens (prompt + completion) does not fit"], "runs/x"),
    ("ahpo-micro-batch-tokens-too-small", "ahpo.py", ["--micro-batch-tokens", "10", "--model", "model_a", "--out",
     "runs/x"], ERROR,
     ["--micro-batch-tokens 10", "would not fit", "raise --micro-batch-tokens to"], "runs/x"),
    # a folder that is not this stage's run (no run.json beside its files): refused, left as it was
    ("sft-foreign-folder", "sft.py", ["--out", "foreign_run", "--batch-size", "1"], ERROR,
     ["foreign_run", "metrics.jsonl", "no run.json"], None),
    ("ahpo-foreign-folder", "ahpo.py", ["--out", "foreign_run"], ERROR, ["foreign_run", "step-3", "no run.json"], None),
    # FSDP2's flags, refused before any model loads
    ("sft-dp-shard-not-a-divisor", "sft.py", ["--dp-shard", "3", "--batch-size", "1", "--out", "runs/x"], ERROR,
     ["--dp-shard 3", "does not divide the 1 processes"], "runs/x"),
    ("ahpo-offload-without-gpu", "ahpo.py", ["--offload", "--device", "cpu", "--out", "runs/x"], ERROR,
     ["--offload", "no GPU"], "runs/x"),
    ("sft-dp-shard-0", "sft.py", ["--dp-shard", "0"], USAGE, ["--dp-shard", "0"], None),
    ("ahpo-model-no-weights", "ahpo.py", ["--model", "no_weights", "--out", "runs/x"], ERROR,
     ["no_weights", "weights"], "runs/x"),
    # elicit
    ("elicit-endpoint-down", "elicit.py", ["--rewriter", "endpoint", "--url", "http://127.0.0.1:9/v1",
     "--out", "x/traces.jsonl"], ERROR, ["http://127.0.0.1:9/v1", "does not answer"], "x"),
    ("elicit-limit-neg", "elicit.py", ["--limit", "-2"], USAGE, ["--limit", "-2"], None),
    ("elicit-rerun-other-attempts", "elicit.py", ["--text-only", "--attempts", "3"], ERROR,
     ["data/traces.run.json", "attempts: 1 -> 3"], None),
    # --config FILE: a key the stage lacks, a value its flag refuses, a run.json of another stage;
    # a flag overrides the file (and then differs from the run the file recorded)
    ("config-unknown-key", "sft.py", ["--config", "cfg_unknown.toml"], USAGE,
     ["--config cfg_unknown.toml", "unknown key 'batch'"], None),
    ("config-bad-value", "sft.py", ["--config", "cfg_bad.json", "--out", "runs/x"], USAGE,
     ["--batch-size", "0 must be at least 1", "--config cfg_bad.json"], "runs/x"),
    ("config-missing", "evaluate.py", ["--config", "nope.toml"], USAGE, ["--config nope.toml", "not found"], None),
    ("config-other-stage", "ahpo.py", ["--config", "runs/sft/run.json", "--out", "runs/x"], USAGE,
     ["--config runs/sft/run.json", "unknown key 'batch_size'", "ahpo.py"], "runs/x"),
    ("config-flag-overrides", "sft.py", ["--config", "runs/sft/run.json", "--batch-size", "2"], ERROR,
     ["runs/sft/run.json", "batch_size: 1 -> 2"], None),
    ("config-eval-flag-overrides", "evaluate.py", ["--config", "runs/eval/a/run.json", "--out", "runs/eval/a",
     "--max-new-tokens", "3"], ERROR, ["runs/eval/a/run.json", "max_new_tokens: 2 -> 3"], None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(world, case):
    _, script, args, code, words, absent = case
    before = snapshot(world)
    p = _run(world, script, *args)
    assert p.returncode == code, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if all(w in ln for w in words)]
    assert lines, f"no single line holds {words}:\n{p.stderr[-2000:]}"
    after = snapshot(world)
    changed = [f for f in before if after.get(f) != before[f]]
    assert not changed, changed
    if absent:
        assert not (world / absent).exists(), absent


def test_config_reruns_a_past_run_with_its_settings(world, monkeypatch):
    """A run.json read back by --config gives the settings that wrote it: the rerun check passes
    for sft's and evaluate's runs in the fixture, and for an ahpo run of non-default settings
    (the mode, a renamed dest, switches, floats) recorded here; a flag still overrides the file."""
    import ahpo
    import evaluate
    import sft
    from harness import cli, runs
    from tasks.records import BOX_REQUEST
    from vlm import training
    monkeypatch.chdir(world)
    args = sft.parse_args(["--config", "runs/sft/run.json"])
    new = runs.settings(args, inputs={"data": args.data}, model=training.start_model(args))
    assert runs.check("runs/sft", new, may_differ=cli.MAY_DIFFER) is not None   # not refused, not fresh
    assert json.load(open("runs/sft/run.json"))["args"] == {k: v for k, v in new["args"].items()}

    args = evaluate.parse_args(["--config", "runs/eval/a/run.json", "--out", "runs/eval/a"])
    new = {**runs.settings(args, inputs={"records": args.records}, model=args.model), "prompt": BOX_REQUEST}
    assert runs.differences(json.load(open("runs/eval/a/run.json")), new) == []

    argv = ["--mode", "luffy", "--rollouts", "3", "--gamma", "0.25", "--no-std", "--text-only", "--lr", "3e-4",
            "--seed", "-7", "--out", "runs/luffy"]
    old = ahpo.parse_args(argv)
    ahpo.resolve_defaults(old)
    old = runs.settings(old, inputs={"records": old.records, "traces": old.traces})
    runs.write("runs/luffy", old)
    args = ahpo.parse_args(["--config", "runs/luffy/run.json", "--out", "runs/luffy"])
    ahpo.resolve_defaults(args)
    assert runs.differences(old, runs.settings(args, inputs={"records": args.records, "traces": args.traces})) == []
    assert "config" not in vars(args) and args.n == 3 and args.no_std and args.seed == -7
    assert ahpo.parse_args(["--config", "runs/luffy/run.json", "--rollouts", "4"]).n == 4   # the flag wins


def test_config_file_keys_and_values(tmp_path, capsys):
    """TOML or JSON, flat or under "args", flag names or dests; a switch must be true/false; a
    key given twice is refused; --overwrite is never taken from a file (a note says so)."""
    import synth
    base = ["--out", str(tmp_path / "d")]
    (tmp_path / "a.toml").write_text('tasks = ["maze", "hanoi"]\nlevels = [1, 2]\nno-images = true\ncount = 2\n')
    a = synth.parse_args(["--config", str(tmp_path / "a.toml"), *base])
    assert (a.tasks, a.levels, a.no_images, a.count) == (["maze", "hanoi"], [1, 2], True, 2)
    assert synth.parse_args(["--config", str(tmp_path / "a.toml"), "--count", "3", *base]).count == 3
    (tmp_path / "b.json").write_text('{"args": {"no_images": "yes"}}')
    (tmp_path / "c.json").write_text('{"count": 1, "count_": 2}')
    (tmp_path / "d.json").write_text('{"workers": 1, "workers": 2, "seed": null}')
    for name, words in (("b.json", "not true or false"), ("c.json", "unknown key 'count_'")):
        with pytest.raises(SystemExit) as e:
            synth.parse_args(["--config", str(tmp_path / name)])
        assert e.value.code == USAGE and words in capsys.readouterr().err
    assert synth.parse_args(["--config", str(tmp_path / "d.json")]).workers == 2    # JSON: the last one
    import elicit
    (tmp_path / "e.json").write_text('{"overwrite": true, "limit": 3}')
    e = elicit.parse_args(["--config", str(tmp_path / "e.json")])
    assert e.limit == 3 and e.overwrite is False
    assert "overwrite is not taken from a file" in capsys.readouterr().err
    (tmp_path / "f.json").write_text('{"rollouts": 3, "n": 4}')
    import ahpo
    with pytest.raises(SystemExit):
        ahpo.parse_args(["--config", str(tmp_path / "f.json")])
    assert "keys 'rollouts' and 'n' both set --rollouts" in capsys.readouterr().err


GROUPS = ("data", "model", "method", "budget", "distributed", "output")


@pytest.mark.parametrize("script", ["synth.py", "elicit.py", "sft.py", "ahpo.py", "evaluate.py"])
def test_help_groups_every_option_and_shows_defaults(tmp_path, script):
    p = _run(tmp_path, script, "--help", check=True)
    sections, name = {}, None
    for line in p.stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            name = line[:-1]
            sections[name] = []
        elif name and line.strip().startswith("-"):
            sections[name].append(line.strip().split()[0])
    assert sections.pop("options") == ["-h,"]          # nothing left outside a group
    assert set(sections) <= set(GROUPS) and {"data", "output"} <= set(sections), sections
    assert p.stdout.count("(default:") >= 5
    assert "OPENAI_API_KEY" not in os.environ or os.environ["OPENAI_API_KEY"] not in p.stdout


def test_settings_check_rules(tmp_path):
    """The rerun check itself: what may differ, what may only grow, and the weights fingerprint
    (size + first and last MiB: blind to a copy's new mtime, not to a changed tensor at the end)."""
    from harness import runs
    old = {"args": {"lr": 1e-3, "steps": 4, "save_every": 2}, "inputs": {"data": "aa"}}
    new = {"args": {"lr": 1e-3, "steps": 8, "save_every": 5}, "inputs": {"data": "aa"}}
    assert runs.differences(old, new, may_differ=("save_every",), may_grow=("steps",)) == []
    assert runs.differences(new, old, may_differ=("save_every",), may_grow=("steps",)) == ["steps: 8 -> 4"]
    assert runs.differences(old, {**new, "inputs": {"data": "bb"}}, ("save_every",), ("steps",)) == \
        ["input data: aa -> bb"]
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}")
    blob = bytearray(3 * runs.MB)
    (m / "model.safetensors").write_bytes(bytes(blob))
    f0 = runs.model_fingerprint(str(m))
    os.utime(m / "model.safetensors", (0, 0))
    assert runs.model_fingerprint(str(m)) == f0
    blob[-1] = 1                                   # the last tensor changed
    (m / "model.safetensors").write_bytes(bytes(blob))
    assert runs.model_fingerprint(str(m)) != f0
    (m / "model.safetensors").write_bytes(bytes(blob) + b"\0")   # one byte longer
    assert runs.model_fingerprint(str(m)) != f0
