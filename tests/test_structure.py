"""The layout's promises, checked: the benchmark (tasks/) loads no harness, HTTP, threads,
plots or torch; the harness loads no torch; no import circle and no import back up into a
package's __init__; vlm/sampler.py with vlm/graphs.py runs copied alone into an empty folder."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import import_graph  # noqa: E402


def _loaded(stmt):
    """Modules a fresh interpreter holds after `stmt` that it did not hold before."""
    code = ("import sys; before = set(sys.modules); " + stmt +
            "; print('\\n'.join(sorted(set(sys.modules) - before)))")
    return set(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.split())


def _heavy(loaded):
    return sorted(m for m in loaded if m in import_graph.HEAVY or m.split(".")[0] in import_graph.HEAVY)


def test_import_tasks_loads_no_http_threads_plots_or_torch():
    loaded = _loaded("import tasks; tasks.score('\\\\boxed{1}', {'task': 'lis', 'initial_state': '[1]'})")
    assert "tasks.sudoku" in loaded and "tasks.registry" in loaded      # the benchmark is all there
    assert _heavy(loaded) == [], _heavy(loaded)


def test_harness_loads_no_torch():
    loaded = _loaded("from harness import chat, cli, client, jsonl, plot, progress, report, runs")
    assert not any(m == "torch" or m.startswith("torch.") for m in loaded)
    assert "harness.client" in loaded


def test_no_import_circle_and_no_import_back_up():
    mods = import_graph.modules()
    graph = {m: sorted(import_graph.imports_of(m, p, mods)) for m, p in mods.items()}
    assert import_graph.circles(graph) == []
    back = [(a, b) for a in graph for b in graph[a] if b in import_graph.PACKAGES and a.startswith(b + ".")]
    assert back == []
    # the layers: tasks imports neither the harness nor vlm; the harness never imports vlm;
    # no stage imports another stage
    for a, deps in graph.items():
        top = {d.split(".")[0] for d in deps}
        if a.split(".")[0] == "tasks":
            assert not top & {"harness", "vlm"}, (a, deps)
        if a.split(".")[0] == "harness":
            assert "vlm" not in top, (a, deps)
        if a in import_graph.STAGES:
            assert not top & set(import_graph.STAGES), (a, deps)
    # sampler.py imports nothing of the project but graphs.py (its static step), which imports nothing
    assert graph["vlm.sampler"] == ["vlm.graphs"] and graph["vlm.graphs"] == []


def test_sampler_copied_alone_decodes_as_generate(tmp_path):
    """The copy's own self-check: greedy tokens of decode_step, the model's forward and the static
    step equal model.generate's, on a Qwen2 and a Qwen2.5-VL built from configs, run in a folder
    that holds only sampler.py and graphs.py (no PYTHONPATH, cwd there)."""
    for f in ("sampler.py", "graphs.py"):
        shutil.copy(os.path.join(ROOT, "vlm", f), tmp_path / f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-E", "-s", "sampler.py"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if "greedy tokens" in ln]
    assert len(lines) == 6 and all("equal generate's" in ln for ln in lines), out.stdout
