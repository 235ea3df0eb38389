"""The project's modules import one another without a cycle, and flows/ and tasks/ never import
sandbox/ (issue 14): read from the source's import statements, every one (also those inside
functions), so a cycle hidden behind a lazy import counts too."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "tasks", "config", "deployments", "sandbox")
SCRIPT_DIRS = ("bench",)   # scripts run with their own folder on sys.path: `import quality_common`
TOP_MODULES = ("ebops_cli",)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = f.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    for folder in SCRIPT_DIRS:
        for f in sorted((REPO / folder).glob("*.py")):
            found[f"{folder}.{f.stem}"] = f
    for name in TOP_MODULES:
        found[name] = REPO / f"{name}.py"
    return found


def _targets(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    script_dir = name.partition(".")[0] if name.partition(".")[0] in SCRIPT_DIRS else None
    out: set[str] = set()

    def add(dotted: str) -> None:
        if script_dir and f"{script_dir}.{dotted}" in modules:
            dotted = f"{script_dir}.{dotted}"
        while dotted and dotted not in modules:   # `import a.b.c` of a name inside a module
            dotted = dotted.rpartition(".")[0]
        if dotted:
            out.add(dotted)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:   # `from tasks import calendar` imports the module tasks.core.calendar
                full = f"{base}.{alias.name}"
                add(full if full in modules or (script_dir and f"{script_dir}.{full}" in modules) else base)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _targets(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_project_and_its_imports():
    graph = _graph()
    assert {"flows.cli", "tasks.backup.verify.fingerprint", "bench.quality_bench", "ebops_cli"} <= set(graph)
    assert "tasks.backup.verify.fingerprint_rowtext" in graph["tasks.backup.verify.fingerprint"]
    assert "bench.quality_common" in graph["bench.quality_naive"]
    assert {"flows.cli", "sandbox.cli"} <= graph["ebops_cli"]
    assert "tasks.core.timetable" in graph["deployments.schedules"]   # `from tasks.core import timetable`
    # the scan finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_flows_and_tasks_never_import_the_sandbox():
    bad = {name: sorted(t for t in targets if t == "sandbox" or t.startswith("sandbox."))
           for name, targets in _graph().items() if name.split(".")[0] in ("flows", "tasks")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_tasks_import_neither_flows_nor_deployments():
    """flows -> tasks -> config: a building block never reaches back up to what composes it."""
    bad = {name: sorted(t for t in targets if t.split(".")[0] in ("flows", "deployments"))
           for name, targets in _graph().items() if name.split(".")[0] == "tasks"}
    assert {k: v for k, v in bad.items() if v} == {}


def test_config_imports_neither_flows_nor_tasks():
    bad = {name: sorted(t for t in targets if t.split(".")[0] in ("flows", "tasks", "sandbox"))
           for name, targets in _graph().items() if name.split(".")[0] == "config"}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_ebops_command_still_has_the_sandbox_commands():
    ebops = Path(sys.executable).parent / "ebops"
    res = subprocess.run([str(ebops), "--help"], capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and "sandbox" in res.stdout and "demo" in res.stdout, res.stdout + res.stderr
    res = subprocess.run([str(ebops), "sandbox", "--help"], capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and all(c in res.stdout for c in ("up", "down", "status", "env")), res.stdout + res.stderr


def test_no_two_test_modules_share_a_name():
    """pytest imports tests/unit and tests/integration by basename (no packages): two files of one
    name stop the whole run at collection."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
