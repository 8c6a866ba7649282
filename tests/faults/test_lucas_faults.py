"""LUCAS evaluation faults: reports per map survive other runs; unusable points fail loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.config.lucas import LucasConfig
from tasks.lucas.points import LucasInputError
from tasks.lucas.run import run_lucas_evaluation
from tasks.naming import UnsafeNameError
from tests.faults.conftest import snapshot

DAY = "2018-06-30"


def _year(root: Path) -> Path:
    return root / "food_security" / "lucas" / "2017-09_2018-08"


def _evaluate(points: Path, maps: dict[str, Path], root: Path) -> dict:
    return run_lucas_evaluation(LucasConfig(), points, maps, root, DAY)


def test_second_model_keeps_the_first_models_report(lucas_dir, tmp_path):
    _evaluate(lucas_dir / "points.csv", {"truth": lucas_dir / "truth.parquet"}, tmp_path)
    first = snapshot(_year(tmp_path) / "truth")
    summary = _evaluate(lucas_dir / "points.csv", {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    assert snapshot(_year(tmp_path) / "truth") == first
    assert summary["maps_compared"] == ["lstm", "truth"]
    table = (_year(tmp_path) / "comparison.md").read_text()
    assert "| truth |" in table and "| lstm |" in table
    assert json.loads((_year(tmp_path) / "manifest.json").read_text())["counts"]["maps"] == 2


def _corrupt(src: Path, dst: Path, how: str) -> Path:
    table = pd.read_csv(src, dtype=str)
    lat_cols = [c for c in ("TH_LAT", "GPS_LAT") if c in table]
    lon_cols = [c for c in ("TH_LONG", "GPS_LONG") if c in table]
    if how == "text":
        for column in lat_cols + lon_cols:
            table[column] = "n/a"
    elif how == "lat_x10":
        for column in lat_cols:
            table[column] = (table[column].astype(float) * 10).astype(str)
    elif how == "swapped":
        for lat, lon in zip(lat_cols, lon_cols, strict=True):
            table[lat], table[lon] = table[lon].copy(), table[lat].copy()
    table.to_csv(dst, index=False)
    return dst


@pytest.mark.parametrize(
    ("how", "reason"),
    [("text", "no_location"), ("lat_x10", "no_location"), ("swapped", "outside_country")],
)
def test_broken_coordinates_fail_with_counts_and_keep_the_good_report(
    lucas_dir, tmp_path, how, reason
):
    _evaluate(lucas_dir / "points.csv", {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    before = snapshot(_year(tmp_path))
    bad = _corrupt(lucas_dir / "points.csv", tmp_path / f"{how}.csv", how)
    message = rf"only 0 of \d+ LUCAS points are usable.*'{reason}'"
    with pytest.raises(LucasInputError, match=message):
        _evaluate(bad, {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    assert snapshot(_year(tmp_path)) == before


def test_empty_csv_and_header_only_fail_clearly(lucas_dir, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LucasInputError, match=r"empty\.csv: the LUCAS points CSV is empty"):
        _evaluate(empty, {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    header = tmp_path / "header.csv"
    header.write_text((lucas_dir / "points.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(LucasInputError, match="has a header but no points"):
        _evaluate(header, {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    assert not _year(tmp_path).exists()


def test_non_numeric_point_id_names_the_column(lucas_dir, tmp_path):
    table = pd.read_csv(lucas_dir / "points.csv", dtype=str)
    table.loc[3, "POINT_ID"] = "47x12"
    bad = tmp_path / "ids.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(LucasInputError, match=r"column POINT_ID must hold whole numbers.*47x12"):
        _evaluate(bad, {"lstm": lucas_dir / "model.parquet"}, tmp_path)


def test_mostly_unlocated_points_fail_below_the_share(lucas_dir, tmp_path):
    table = pd.read_csv(lucas_dir / "points.csv", dtype=str)
    cut = int(len(table) * 0.7)
    for column in ("TH_LAT", "GPS_LAT"):
        if column in table:
            table.loc[: cut - 1, column] = ""
    bad = tmp_path / "partial.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(LucasInputError, match=r"< the required 50%.*'no_location'"):
        _evaluate(bad, {"lstm": lucas_dir / "model.parquet"}, tmp_path)
    summary = run_lucas_evaluation(LucasConfig(), bad, {"lstm": lucas_dir / "model.parquet"},
                                   tmp_path, DAY, min_usable_share=0.2)
    assert summary["points_used"]["lstm"] > 0


def test_unsafe_map_name_is_refused_before_anything_is_written(lucas_dir, tmp_path):
    with pytest.raises(UnsafeNameError, match=r"map name '\.\./lstm' cannot be used"):
        _evaluate(lucas_dir / "points.csv", {"../lstm": lucas_dir / "model.parquet"}, tmp_path)
    assert not (tmp_path / "food_security").exists()
