"""tasks/lucas/run.py: the reports of run_lucas_evaluation and the year's comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.config.lucas import LucasConfig
from tasks.lucas.evaluate import evaluate_against_lucas
from tasks.lucas.report import comparison_markdown
from tasks.lucas.run import run_lucas_evaluation
from tasks.storage import read_manifest


def test_run_writes_reports_atomically_and_idempotently(lucas_dir: Path, tmp_path: Path) -> None:
    maps = {"truth": lucas_dir / "truth.parquet", "lstm": lucas_dir / "model.parquet"}
    summary = run_lucas_evaluation(LucasConfig(), lucas_dir / "points.csv", maps, tmp_path,
                                   "2018-06-30")
    out = tmp_path / "food_security" / "lucas" / "2017-09_2018-08"
    assert summary["output"] == str(out)
    manifest = read_manifest(out)
    assert manifest["stage"] == "lucas" and manifest["counts"]["maps"] == 2
    for name in maps:
        for file in ("report.json", "per_class.md", "points.parquet",
                     "confusion_within_radius.png", "confusion_nearest.png"):
            assert (out / name / file).stat().st_size > 0
    table = (out / "comparison.md").read_text()
    assert "| truth |" in table and "| lstm |" in table and "OA % (10 m)" in table
    first = json.loads((out / "comparison.json").read_text())
    run_lucas_evaluation(LucasConfig(), lucas_dir / "points.csv", maps, tmp_path, "2018-07-01")
    assert json.loads((out / "comparison.json").read_text()) == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["2017-09_2018-08"]


def test_comparison_needs_the_same_points(lucas_dir: Path) -> None:
    a = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "truth.parquet")
    b = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "model.parquet",
                               LucasConfig(radius_m=20))
    with pytest.raises(ValueError, match="different points or settings"):
        comparison_markdown([a, b])
