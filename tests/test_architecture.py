"""The package architecture of tasks/ holds: import contracts kept, no cycles between packages.

The contracts are in pyproject.toml (``[tool.importlinter]``): the layers of tasks/ (each package
imports only the ones below it), tasks/ never importing Airflow, operators/ or dags/, and no import
cycles between the packages of tasks/. Lazy imports inside functions count like any other.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, (
        "an import breaks the package contracts of pyproject.toml [tool.importlinter] "
        f"(fix the import, or move the code to the right layer):\n{result.stdout}{result.stderr}"
    )


def _package_of(module: str) -> str:
    """``tasks.polar.predict`` -> ``tasks.polar``; ``tasks.errors`` -> ``tasks.errors``."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_the_packages_of_tasks():
    graph = grimp.build_graph("tasks", cache_dir=None)
    edges: dict[str, set[str]] = defaultdict(set)
    example: dict[tuple[str, str], str] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            source, target = _package_of(importer), _package_of(imported)
            if source != target and "tasks" not in (source, target):
                edges[source].add(target)
                example.setdefault((source, target), f"{importer} -> {imported}")
    cycles = _cycles(edges)
    lines = [f"{' <-> '.join(cycle)}: " + "; ".join(
        example[(a, b)] for a in cycle for b in cycle if (a, b) in example) for cycle in cycles]
    assert not cycles, "packages of tasks/ import each other:\n" + "\n".join(lines)
