"""Read back what a run's --report-to tensorboard wrote, with TensorBoard's own reader, and
compare it with the run's metrics.jsonl and run.json (tests/test_sft.py, tests/test_ahpo.py)."""
import json
import os

import pytest


def check_tensorboard(out):
    """Every number of every metrics.jsonl row is a scalar at its step (float32, as TensorBoard
    stores it), no other scalar is there, and the hparams hold run.json's settings."""
    np = pytest.importorskip("numpy")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    ea = EventAccumulator(os.path.join(out, "tb"))
    ea.Reload()
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    numbers = {k for r in rows for k, v in r.items()
               if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert set(ea.Tags()["scalars"]) == numbers
    for k in numbers:
        assert [(e.step, e.value) for e in ea.Scalars(k)] == [(r["step"], float(np.float32(r[k]))) for r in rows], k
    settings = json.load(open(os.path.join(out, "run.json")))
    content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams

    def want(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else \
            v if isinstance(v, (bool, str)) else json.dumps(v)
    got = {k: getattr(h, h.WhichOneof("kind")) for k, h in hp.items()}
    assert got == {**{k: want(v) for k, v in settings["args"].items()},
                   **{f"input {k}": want(v) for k, v in settings["inputs"].items()},
                   **{k: want(v) for k, v in settings.items() if k not in ("args", "inputs")}}
    assert "settings/text_summary" in ea.Tags()["tensors"]
    return rows
