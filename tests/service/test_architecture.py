"""The shape of the house: `service/` never loads the simulator, and its modules import each other
without a circle. Both are read from the code itself, so a change that breaks them fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The entry points that may reach the simulator, lazily, to run its commands (`simulate`, `replay`,
# `export`) or to start the demo viewers of `artbandit run`.
ENTRY_POINTS = {"service.cli", "service.devstack.local_stack"}


def modules(package: str) -> dict[str, Path]:
    """Every module of `package` by dotted name (a package by its own name)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(path: Path, known: set[str]) -> set[str]:
    """Dotted names `path` imports anywhere in its body (lazy and TYPE_CHECKING imports included);
    `from pkg import name` counts as importing `pkg.name` when that is a module, else `pkg`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    mods = modules(package)
    known = set(mods)
    return {
        name: {t for t in imported(path, known) if t in known and t != name} for name, path in mods.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_find_cycle_sees_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_service_imports_form_no_circle() -> None:
    graph = import_graph("service")
    assert len(graph) > 40  # the walk found the package
    assert find_cycle(graph) is None


def test_policies_import_nothing_of_ours() -> None:
    for name, path in modules("policies").items():
        ours = {m for m in imported(path, set()) if m.split(".")[0] in ("service", "simulator")}
        assert not ours, f"{name} imports {sorted(ours)}"


def test_only_entry_points_mention_the_simulator() -> None:
    for name, path in modules("service").items():
        reaches = {m for m in imported(path, set()) if m.split(".")[0] == "simulator"}
        if name not in ENTRY_POINTS:
            assert not reaches, f"{name} imports {sorted(reaches)}"


@pytest.mark.slow
def test_importing_every_service_module_loads_no_simulator() -> None:
    """In a fresh interpreter: import every module of service/, then look at what got loaded."""
    code = (
        "import importlib, pkgutil, sys, service\n"
        "names = [m.name for m in pkgutil.walk_packages(service.__path__, 'service.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
        "print(' '.join(sorted(m for m in sys.modules if m == 'simulator' or m.startswith('simulator.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    count, loaded = (out.stdout.splitlines() + [""])[:2]
    assert int(count) == len(modules("service")) - 1  # every module but the package itself
    assert loaded == ""
