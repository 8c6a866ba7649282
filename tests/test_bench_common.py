"""bench/common.py (issue 17): report() prints the summary line and writes the JSON; every
benchmark in bench/ has a --quick option and reports through bench/common.py. No benchmark runs."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# Not benchmarks: the shared helpers, mutation testing, the byte-identity check of issue 12.
NOT_BENCHMARKS = {"common.py", "mutation.py", "compare_outputs.py"}
BENCHMARKS = sorted(p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHMARKS)


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_common"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_common", None)


def test_report_prints_the_line_and_writes_the_json(common, tmp_path, capsys):
    with common.Timer() as timer:
        subprocess.run([sys.executable, "-c", "sum(range(10**6))"], check=True)
    assert timer.wall_s > 0 and timer.cpu_s > 0  # the child's CPU is counted
    assert timer.cpu_s == pytest.approx(timer.user_s + timer.sys_s)
    path = common.report("p9_example", 1.2345, ">= 1x", True, {"run": timer.as_dict()},
                         baseline="plain loop", results_dir=tmp_path)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("P9: ratio=1.23, goal=>= 1x, met=yes")
    assert path == tmp_path / "p9_example.json"
    doc = json.loads(path.read_text())
    assert doc["ratio"] == 1.2345 and doc["met"] is True and doc["baseline"] == "plain loop"
    assert doc["figures"]["run"]["cpu_s"] == pytest.approx(timer.cpu_s, abs=1e-3)
    machine = doc["machine"]
    assert machine["cores"] >= 1 and len(machine["load_avg_start"]) == 3
    assert {"load_avg_end", "git_rev", "started", "finished"} <= set(machine)


def test_quick_runs_get_their_own_file_and_unmet_goals_say_no(common, tmp_path, capsys):
    path = common.report("queries", None, "none (measured)", None, {}, baseline="b",
                         quick=True, results_dir=tmp_path)
    assert path.name == "queries.quick.json" and json.loads(path.read_text())["quick"] is True
    common.report("p1_patches", 0.5, ">= 0.8x", False, {}, baseline="b", results_dir=tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("queries: ratio=n/a, goal=none (measured), met=n/a")
    assert lines[1].startswith("P1: ratio=0.5, goal=>= 0.8x, met=no")


def test_add_quick_flag(common):
    import argparse

    parser = argparse.ArgumentParser()
    common.add_quick_flag(parser)
    assert parser.parse_args(["--quick"]).quick and not parser.parse_args([]).quick


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_has_quick_and_reports(path):
    tree = ast.parse(path.read_text())
    calls = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
             for node in ast.walk(tree) if isinstance(node, ast.Call)}
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "common"
                for alias in node.names}
    assert "add_quick_flag" in calls, f"{path.name} has no --quick (common.add_quick_flag)"
    reporters = {name for name in imported if name in calls} - {"Timer", "add_quick_flag"}
    assert reporters, f"{path.name} does not call bench/common.py's report()"
