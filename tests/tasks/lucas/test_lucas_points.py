from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from tasks.lucas.points import LucasInputError, read_lucas_points

DATA = Path(__file__).resolve().parents[2] / "data" / "lucas"


def test_real_2018_rows_and_gps_sentinel_fallback() -> None:
    points = read_lucas_points(DATA / "lucas2018_primary_BE_2points.csv")
    assert points.crs.to_epsg() == 4326
    assert points["POINT_ID"].tolist() == [38863060, 38863102]
    office, visited = points.iloc[0], points.iloc[1]
    # photo-interpreted in the office: GPS = 88.888888 -> theoretical location
    assert office["location_source"] == "theoretical"
    assert office.geometry.y == pytest.approx(50.487792576)
    assert office.geometry.x == pytest.approx(3.862541317)
    assert visited["location_source"] == "gps"
    assert visited.geometry.y == pytest.approx(50.863709)
    assert visited.geometry.x == pytest.approx(3.813208)
    assert visited["LC1"] == "A11"


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "POINT_ID": [1, 2, 3, 4],
        "TH_LAT": [47.5, 47.6, 40.0, 88.888888],
        "TH_LONG": [15.0, 15.1, 8.0, 88.888888],
        "GPS_LAT": [47.50001, None, 40.0001, 88.888888],
        "GPS_EW": [1, 1, 2, 8],
        "GPS_LONG": [15.00001, None, 8.0001, 88.888888],
        "LC1": ["b11", "B16", "B13", "E20"],
    })


def test_location_rules(tmp_path: Path) -> None:
    _rows().to_csv(tmp_path / "p.csv", index=False)
    points = read_lucas_points(tmp_path / "p.csv")
    assert points["location_source"].tolist() == ["gps", "theoretical", "gps", "none"]
    assert points.geometry.iloc[2].x == pytest.approx(-8.0001)  # GPS_EW = 2: west
    assert points.geometry.iloc[3] is None
    assert points["LC1"].tolist() == ["B11", "B16", "B13", "E20"]
    theoretical = read_lucas_points(tmp_path / "p.csv", location="theoretical")
    assert theoretical.geometry.iloc[0].y == pytest.approx(47.5)


def test_geoparquet_round_trip(tmp_path: Path) -> None:
    _rows().to_csv(tmp_path / "p.csv", index=False)
    points = read_lucas_points(tmp_path / "p.csv").drop(columns=["location_source"])
    points.to_parquet(tmp_path / "p.parquet")
    again = read_lucas_points(tmp_path / "p.parquet")
    assert again["location_source"].tolist() == ["gps", "theoretical", "gps", "none"]
    # a GeoParquet with only a geometry (e.g. an ST_LUCAS export in EPSG:3035) keeps it
    only_geom = gpd.GeoDataFrame(
        {"POINT_ID": [7], "LC1": ["B11"]}, geometry=gpd.points_from_xy([4_700_000], [2_800_000]),
        crs="EPSG:3035",
    )
    only_geom.to_parquet(tmp_path / "g.parquet")
    read = read_lucas_points(tmp_path / "g.parquet")
    assert read["location_source"].tolist() == ["geometry"]
    assert 5 < read.geometry.iloc[0].x < 20


def test_duplicate_point_ids_are_an_error(tmp_path: Path) -> None:
    rows = _rows()
    rows.loc[3, "POINT_ID"] = 1
    rows.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(LucasInputError, match=r"duplicate POINT_ID.*\[1\]"):
        read_lucas_points(tmp_path / "p.csv")


def test_missing_columns_are_an_error(tmp_path: Path) -> None:
    _rows().drop(columns=["LC1"]).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(LucasInputError, match="'LC1' is missing"):
        read_lucas_points(tmp_path / "p.csv")
    _rows().drop(columns=["TH_LAT", "TH_LONG", "GPS_LAT", "GPS_LONG"]).to_csv(
        tmp_path / "q.csv", index=False)
    with pytest.raises(LucasInputError, match="no point location"):
        read_lucas_points(tmp_path / "q.csv")
