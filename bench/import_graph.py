"""The project's import graph, read from the source (ast): modules, arrows, circles, arrows that
run back up into a package's __init__, and what `import tasks` loads.

    python bench/import_graph.py          # a summary
    python bench/import_graph.py --edges  # every arrow too

An arrow is any import of a project module, at the top of a file or inside a function (a lazy
import is still a dependency a copy of the file must carry). A circle is a strongly connected
set of more than one module. "Back up" is a submodule importing its own package's __init__
(`from . import x` or `from tasks import get` inside tasks/), which makes the package's import
order matter.
"""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tasks", "vlm", "harness")
# what a verifier never needs: HTTP, threads, plotting and the report, torch, the harness
HEAVY = ("urllib", "http", "socket", "threading", "concurrent", "queue", "torch", "harness", "tasks.client",
         "tasks.plot", "tasks.report", "tasks.progress", "tasks.runs")
STAGES = ("synth", "elicit", "sft", "ahpo", "evaluate", "repro")


def modules():
    out = {}
    for pkg in PACKAGES:
        d = os.path.join(ROOT, pkg)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith(".py"):
                name = pkg if f == "__init__.py" else f"{pkg}.{f[:-3]}"
                out[name] = os.path.join(d, f)
    for s in STAGES:
        if os.path.exists(os.path.join(ROOT, f"{s}.py")):
            out[s] = os.path.join(ROOT, f"{s}.py")
    return out


def imports_of(name, path, known):
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg = name if name in PACKAGES else name.rsplit(".", 1)[0] if "." in name else ""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known and m != name}


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def loaded_by_import_tasks():
    code = ("import sys; before = set(sys.modules); import tasks; "
            "print('\\n'.join(sorted(m for m in set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def main():
    mods = modules()
    graph = {m: sorted(imports_of(m, p, mods)) for m, p in mods.items()}
    arrows = [(a, b) for a in graph for b in graph[a]]
    back = [(a, b) for a, b in arrows if b in PACKAGES and a.startswith(b + ".")]
    print(f"{len(mods)} modules, {len(arrows)} arrows")
    cs = circles(graph)
    print(f"circles: {len(cs)}" + "".join(f"\n  {' <-> '.join(c)}" for c in cs))
    print(f"arrows back up into a package's __init__: {len(back)}" + "".join(f"\n  {a} -> {b}" for a, b in back))
    loaded = loaded_by_import_tasks()
    heavy = [m for m in loaded if m in HEAVY or m.split(".")[0] in HEAVY]
    print(f"`import tasks` loads {len(loaded)} modules; HTTP, threads, plots, reports, torch, harness among them: "
          f"{', '.join(heavy) or 'none'}")
    if "--edges" in sys.argv:
        for a, b in arrows:
            print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
