"""The package architecture of tasks/ holds: import contracts kept, no cycles at any level.

The contracts are in pyproject.toml (``[tool.importlinter]``): the layers of tasks/ (each package
imports only the ones below it), tasks/ never importing Airflow, operators/ or dags/, and no import
cycles between sibling packages / modules, in tasks/ and inside each of its packages (e.g.
tasks.linked_data.store, .server, .geosparql). Lazy imports inside functions count like any other.
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


def _child_of(package: str, module: str) -> str:
    """The direct child of ``package`` holding ``module``.

    (``tasks.linked_data``, ``tasks.linked_data.geosparql.engine``) -> its ``.geosparql``.
    """
    return ".".join(module.split(".")[: package.count(".") + 2])


def _sibling_edges(graph: grimp.ImportGraph, package: str) -> dict[tuple[str, str], str]:
    """(importer child, imported child) of ``package`` -> one import behind it, as an example."""
    edges: dict[tuple[str, str], str] = {}
    inside = package + "."
    for importer in sorted(m for m in graph.modules if m.startswith(inside)):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith(inside):
                source, target = _child_of(package, importer), _child_of(package, imported)
                if source != target:
                    edges.setdefault((source, target), f"{importer} -> {imported}")
    return edges


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


def test_sibling_edges_group_by_direct_child():
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.a.x", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a.x", imported="p.b", line_number=1, line_contents="import p.b")
    graph.add_import(importer="p.b", imported="p.a.x", line_number=1, line_contents="import p.a.x")
    graph.add_import(importer="p.c", imported="p.b", line_number=1, line_contents="import p.b")
    edges = _sibling_edges(graph, "p")
    assert set(edges) == {("p.a", "p.b"), ("p.b", "p.a"), ("p.c", "p.b")}
    assert _sibling_edges(graph, "p.a") == {}
    assert _cycles(_adjacency(edges)) == [["p.a", "p.b"]]


def _adjacency(edges: dict[tuple[str, str], str]) -> dict[str, set[str]]:
    adjacency: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        adjacency[source].add(target)
    return adjacency


def test_no_import_cycle_at_any_level_of_tasks():
    """No cycle between the packages of tasks/, nor between the modules of any package in it."""
    graph = grimp.build_graph("tasks", cache_dir=None)
    packages = sorted(
        m for m in graph.modules if any(o.startswith(m + ".") for o in graph.modules)
    )
    assert "tasks.linked_data.geosparql" in packages
    lines = []
    for package in packages:
        edges = _sibling_edges(graph, package)
        for cycle in _cycles(_adjacency(edges)):
            examples = [edges[(a, b)] for a in cycle for b in cycle if (a, b) in edges]
            lines.append(f"in {package}: {' <-> '.join(cycle)}: " + "; ".join(examples))
    assert not lines, (
        "modules / packages of tasks/ import each other (move the shared piece into a lower "
        "module):\n" + "\n".join(lines)
    )
