"""LUCAS point reading checked value by value against hand-worked expectations (issue 19).

Each test states the location, source and message a reader must produce for small hand-made rows:
the sentinel and range rules of a coordinate, the GPS -> theoretical fallback, the west flag, the
GeoParquet paths and every refusal with its full message.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from tasks.lucas.points import (
    COORDINATE_SENTINEL,
    LucasInputError,
    _check_points_table,
    _valid_coordinates,
    read_lucas_points,
    resolve_point_locations,
)


def test_valid_coordinates_rules_by_hand() -> None:
    lat = pd.Series([47.5, 88.888888, -88.888888, 88.88889, 88.8889, 90.0, 90.0001, -90.0,
                     0.0, 0.0, 10.0, None, 45.0, 45.0, 45.0, 45.0])
    lon = pd.Series([15.0, 15.0, 15.0, 15.0, 15.0, 15.0, 15.0, 15.0,
                     0.0, 5.0, 180.0, 15.0, -180.0, 180.0001, 88.888888, -88.888888])
    expected = [
        True,   # ordinary
        False,  # latitude sentinel
        False,  # negative sentinel
        False,  # 1.1e-6 from the sentinel: within the 1e-5 tolerance
        True,   # 1.2e-5 from the sentinel: a real latitude
        True,   # the pole itself
        False,  # beyond the pole
        True,   # the south pole
        False,  # (0, 0): the null island placeholder
        True,   # latitude 0 alone is valid
        True,   # the antimeridian itself
        False,  # missing latitude
        True,   # -180
        False,  # beyond the antimeridian
        False,  # longitude sentinel
        False,  # negative longitude sentinel
    ]
    assert _valid_coordinates(lat, lon).tolist() == expected
    text = _valid_coordinates(pd.Series(["47.5", "x", ""]), pd.Series(["15", "15", "15"]))
    assert text.tolist() == [True, False, False]


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "POINT_ID": [1, 2, 3, 4, 5, 6],
        "TH_LAT": [47.5, 47.6, 40.0, 88.888888, 41.0, 42.0],
        "TH_LONG": [15.0, 15.1, 8.0, 88.888888, 9.0, 10.0],
        "GPS_LAT": [47.50001, np.nan, 40.0001, 88.888888, 41.0001, 42.0001],
        "GPS_EW": [1, 1, 2, 8, 2, 2],
        "GPS_LONG": [15.00001, np.nan, 8.0001, 88.888888, -9.0001, 0.0],
        "LC1": ["B11", "B16", "B13", "E20", "B16", "B16"],
    })


def _xy(points: gpd.GeoDataFrame) -> list[tuple[float, float] | None]:
    return [None if g is None else (round(g.x, 6), round(g.y, 6)) for g in points.geometry]


def test_gps_then_theoretical_by_hand(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.points")
    out = resolve_point_locations(_rows(), source="rows.csv")
    assert out.crs.to_epsg() == 4326
    assert out["location_source"].tolist() == ["gps", "theoretical", "gps", "none", "gps", "gps"]
    assert _xy(out) == [
        (15.00001, 47.50001), (15.1, 47.6),
        (-8.0001, 40.0001),  # GPS_EW = 2 and a positive longitude: west
        None,
        (-9.0001, 41.0001),  # already negative: not flipped back
        (0.0, 42.0001),  # longitude 0 with the west flag stays 0
    ]
    assert out["POINT_ID"].tolist() == [1, 2, 3, 4, 5, 6]
    assert out["GPS_EW"].tolist() == [1, 1, 2, 8, 2, 2]  # the input columns are kept
    messages = [r.getMessage() for r in caplog.records]
    assert "rows.csv: 1 point(s) without valid GPS use their theoretical location" in messages


def test_gps_only_and_theoretical_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.points")
    gps = resolve_point_locations(_rows(), "gps")
    assert gps["location_source"].tolist() == ["gps", "none", "gps", "none", "gps", "gps"]
    assert _xy(gps)[1] is None
    theoretical = resolve_point_locations(_rows(), "theoretical")
    assert theoretical["location_source"].tolist() == [
        "theoretical", "theoretical", "theoretical", "none", "theoretical", "theoretical"]
    assert _xy(theoretical) == [(15.0, 47.5), (15.1, 47.6), (8.0, 40.0), None, (9.0, 41.0),
                                (10.0, 42.0)]
    assert not [r for r in caplog.records if "theoretical location" in r.getMessage()]


def test_no_fallback_message_when_every_gps_is_valid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.points")
    rows = _rows().iloc[[0, 2]]
    out = resolve_point_locations(rows)
    assert out["location_source"].tolist() == ["gps", "gps"]
    assert not [r for r in caplog.records if "theoretical location" in r.getMessage()]


def test_gps_columns_only_and_theoretical_columns_only() -> None:
    gps_only = _rows().drop(columns=["TH_LAT", "TH_LONG"])
    out = resolve_point_locations(gps_only)
    assert out["location_source"].tolist() == ["gps", "none", "gps", "none", "gps", "gps"]
    th_only = _rows().drop(columns=["GPS_LAT", "GPS_LONG", "GPS_EW"])
    out = resolve_point_locations(th_only)
    assert out["location_source"].tolist() == [
        "theoretical", "theoretical", "theoretical", "none", "theoretical", "theoretical"]
    no_ew = _rows().drop(columns=["GPS_EW"])
    assert _xy(resolve_point_locations(no_ew))[2] == (8.0001, 40.0001)  # no flag: as written


def test_geometry_column_of_the_input_is_replaced() -> None:
    rows = gpd.GeoDataFrame(_rows(), geometry=[shapely.Point(1, 1)] * 6, crs="EPSG:3035")
    out = resolve_point_locations(rows)
    assert out.crs.to_epsg() == 4326
    assert _xy(out)[0] == (15.00001, 47.50001)
    assert list(out.columns).count("geometry") == 1


def test_geodataframe_without_coordinate_columns() -> None:
    frame = gpd.GeoDataFrame(
        {"POINT_ID": [1, 2, 3], "LC1": ["B11", "B16", "B13"]},
        geometry=[shapely.Point(500_000, 5_261_000), None, shapely.Point()], crs="EPSG:32633",
    )
    out = resolve_point_locations(frame)
    assert out.crs.to_epsg() == 4326
    assert out["location_source"].tolist() == ["geometry", "none", "none"]
    assert out.geometry.iloc[0].x == pytest.approx(15.0, abs=1e-6)
    assert out.geometry.iloc[0].y == pytest.approx(47.5, abs=0.01)
    with pytest.raises(LucasInputError) as err:
        resolve_point_locations(frame.set_crs(None, allow_override=True), source="f.parquet")
    assert str(err.value) == (
        "f.parquet: LUCAS GeoParquet has no CRS and no TH_LAT/TH_LONG or GPS_LAT/GPS_LONG "
        "columns; write it with a CRS (e.g. EPSG:4326)"
    )
    with pytest.raises(LucasInputError) as err:
        resolve_point_locations(pd.DataFrame({"POINT_ID": [1], "LC1": ["B11"]}), source="t.csv")
    assert str(err.value) == (
        "t.csv: no point location: expected columns TH_LAT/TH_LONG and/or GPS_LAT/GPS_LONG "
        "(LUCAS microdata schema); found ['POINT_ID', 'LC1']"
    )
    many = pd.DataFrame({f"c{i}": [1] for i in range(25)})
    with pytest.raises(LucasInputError, match=r"found \['c0', .*'c19'\]$"):
        resolve_point_locations(many)


def test_check_points_table_messages() -> None:
    with pytest.raises(LucasInputError) as err:
        _check_points_table(pd.DataFrame({"LC1": ["B11"]}), "p.csv")
    assert str(err.value) == (
        "p.csv: required LUCAS column 'POINT_ID' is missing; found ['LC1'] (expected the LUCAS "
        "microdata schema)"
    )
    with pytest.raises(LucasInputError) as err:
        _check_points_table(pd.DataFrame({"POINT_ID": [1]}), "p.csv")
    assert "required LUCAS column 'LC1' is missing; found ['POINT_ID']" in str(err.value)
    with pytest.raises(LucasInputError) as err:
        _check_points_table(pd.DataFrame({"POINT_ID": [1, None, None], "LC1": ["a"] * 3}), "p")
    assert str(err.value) == "p: 2 row(s) have an empty POINT_ID"
    ids = [9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3]
    with pytest.raises(LucasInputError) as err:
        _check_points_table(pd.DataFrame({"POINT_ID": ids, "LC1": ["a"] * len(ids)}), "p")
    assert str(err.value) == (
        "p: 6 duplicate POINT_ID value(s), e.g. [4, 5, 6, 7, 8]; every LUCAS point must appear "
        "once (drop repeated survey rows or pick one survey year)"
    )
    _check_points_table(pd.DataFrame({"POINT_ID": [1, 2], "LC1": ["a", "b"]}), "p")


def test_read_csv_types_and_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.points")
    rows = _rows()
    rows["POINT_ID"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    rows["LC1"] = [" b11 ", "B16", "b13", "E20", "B16", "B16"]
    rows["NUTS3"] = ["0012"] * 6
    rows["LU1"] = ["1"] * 6
    rows.to_csv(tmp_path / "p.csv", index=False)
    points = read_lucas_points(tmp_path / "p.csv")
    assert points["POINT_ID"].dtype == "int64"
    assert points["POINT_ID"].tolist() == [1, 2, 3, 4, 5, 6]
    assert points["LC1"].tolist() == ["B11", "B16", "B13", "E20", "B16", "B16"]
    assert points["NUTS3"].tolist() == ["0012"] * 6  # codes stay text: leading zeros kept
    assert points["LU1"].tolist() == ["1"] * 6
    assert points["location_source"].tolist() == ["gps", "theoretical", "gps", "none", "gps",
                                                  "gps"]
    messages = [r.getMessage() for r in caplog.records]
    assert f"read 6 LUCAS points from {tmp_path / 'p.csv'}" in messages
    assert f"{tmp_path / 'p.csv'}: 1 point(s) without valid GPS use their theoretical location" \
        in messages


def test_read_gzip_csv_and_plain_parquet(tmp_path: Path) -> None:
    text = _rows().to_csv(index=False).encode()
    (tmp_path / "p.CSV.GZ").write_bytes(gzip.compress(text))
    zipped = read_lucas_points(tmp_path / "p.CSV.GZ")
    assert zipped["location_source"].tolist()[:4] == ["gps", "theoretical", "gps", "none"]
    _rows().to_parquet(tmp_path / "plain.parquet")  # no geo metadata: a plain table
    plain = read_lucas_points(tmp_path / "plain.parquet")
    assert _xy(plain) == _xy(zipped)
    gpd.GeoDataFrame(
        {"POINT_ID": [7], "LC1": ["b11"]}, geometry=[shapely.Point(15, 47.5)], crs=4326,
    ).to_parquet(tmp_path / "g.GeoParquet")
    geo = read_lucas_points(tmp_path / "g.GeoParquet")
    assert geo["location_source"].tolist() == ["geometry"]
    assert geo["LC1"].tolist() == ["B11"]


def test_read_refusals_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        read_lucas_points(tmp_path / "missing.csv")
    assert str(missing.value) == f"LUCAS points file {tmp_path / 'missing.csv'} does not exist"
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "empty.csv")
    assert str(err.value) == (
        f"{tmp_path / 'empty.csv'}: the LUCAS points CSV is empty (no header, no rows); expected "
        "the LUCAS microdata columns POINT_ID, LC1, TH_LAT/TH_LONG or GPS_LAT/GPS_LONG"
    )
    (tmp_path / "header.csv").write_text("POINT_ID,LC1,TH_LAT,TH_LONG\n")
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "header.csv")
    assert str(err.value) == (
        f"{tmp_path / 'header.csv'}: the LUCAS points file has a header but no points")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "p.txt")
    assert str(err.value) == (
        f"{tmp_path / 'p.txt'}: unsupported LUCAS file type; use .csv or .parquet")
    rows = _rows()
    rows["POINT_ID"] = ["1", "2.5", "x", "4", "5", "6"]
    rows.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "ids.csv")
    assert str(err.value) == (
        f"{tmp_path / 'ids.csv'}: column POINT_ID must hold whole numbers; 2 row(s) do not, "
        "e.g. ['2.5', 'x']"
    )
    _rows().to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "p.csv", crs="EPSG:3035")
    assert str(err.value) == (
        f"{tmp_path / 'p.csv'}: CSV coordinates in EPSG:3035 are not supported; LUCAS CSV columns "
        "TH_LAT/TH_LONG/GPS_LAT/GPS_LONG are WGS84 degrees (points_crs: EPSG:4326)"
    )
    frame = gpd.GeoDataFrame({"POINT_ID": [1], "LC1": ["B11"]},
                             geometry=[shapely.Point(4_700_000, 2_800_000)], crs="EPSG:3035")
    frame.to_parquet(tmp_path / "g.parquet")
    assert read_lucas_points(tmp_path / "g.parquet", crs="EPSG:3035")["location_source"].tolist() \
        == ["geometry"]


def test_sentinel_constant() -> None:
    assert COORDINATE_SENTINEL == 88.888888


def test_nullable_and_text_coordinates() -> None:
    lat = pd.Series([47.5, pd.NA, 47.5, 47.5, 47.5], dtype="Float64")
    lon = pd.Series([15.0, 15.0, pd.NA, 88.0, 89.5], dtype="Float64")
    # 88.0 and 89.5 are 0.89 / 0.61 from the sentinel: real longitudes
    assert _valid_coordinates(lat, lon).tolist() == [True, False, False, True, True]
    text = _valid_coordinates(pd.Series(["47.5", "47.5"]), pd.Series(["15", "east"]))
    assert text.tolist() == [True, False]


def test_nullable_columns_and_text_in_coordinate_columns(tmp_path: Path) -> None:
    rows = pd.DataFrame({
        "POINT_ID": [1, 2, 3, 4, 5],
        "TH_LAT": pd.array([47.5, 47.6, "x", 40.0, 41.0], dtype=object),
        "TH_LONG": pd.array([15.0, "x", 8.0, 8.0, 9.0], dtype=object),
        "GPS_LAT": pd.array(["x", 47.6001, 40.0001, 40.0002, 41.0001], dtype=object),
        "GPS_EW": pd.array([1, "x", 2, 2, 2], dtype=object),
        "GPS_LONG": pd.array([15.0, "x", 8.0001, 0.5, 9.0001], dtype=object),
        "LC1": ["B11"] * 5,
    })
    out = resolve_point_locations(rows)
    assert out["location_source"].tolist() == ["theoretical", "none", "gps", "gps", "gps"]
    # GPS_EW = 2: 0.5 east becomes 0.5 west
    assert _xy(out) == [(15.0, 47.5), None, (-8.0001, 40.0001), (-0.5, 40.0002),
                        (-9.0001, 41.0001)]
    nullable = pd.DataFrame({
        "POINT_ID": [1, 2, 3],
        "TH_LAT": pd.array([47.5, pd.NA, 40.0], dtype="Float64"),
        "TH_LONG": pd.array([15.0, 15.1, 8.0], dtype="Float64"),
        "GPS_LAT": pd.array([pd.NA, 47.6, 40.0001], dtype="Float64"),
        "GPS_EW": pd.array([pd.NA, 1, 2], dtype="Int64"),
        "GPS_LONG": pd.array([pd.NA, 15.1001, 8.0001], dtype="Float64"),
        "LC1": ["B11"] * 3,
    })
    nullable.to_parquet(tmp_path / "n.parquet")
    points = read_lucas_points(tmp_path / "n.parquet")
    assert points["location_source"].tolist() == ["theoretical", "gps", "gps"]
    assert _xy(points) == [(15.0, 47.5), (15.1001, 47.6), (-8.0001, 40.0001)]


def test_exactly_the_coordinate_columns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.points")
    th = resolve_point_locations(pd.DataFrame({"TH_LAT": [47.5], "TH_LONG": [15.0]}))
    assert th["location_source"].tolist() == ["theoretical"]
    gps = resolve_point_locations(pd.DataFrame({"GPS_LAT": [47.5, None],
                                                "GPS_LONG": [15.0, None],
                                                "TH_LAT": [1.0, 2.0], "TH_LONG": [1.0, 2.0]}))
    assert gps["location_source"].tolist() == ["gps", "theoretical"]
    only_gps = resolve_point_locations(pd.DataFrame({"GPS_LAT": [47.5], "GPS_LONG": [15.0]}))
    assert only_gps["location_source"].tolist() == ["gps"]
    assert "<points>: 1 point(s) without valid GPS use their theoretical location" in [
        r.getMessage() for r in caplog.records]


def test_messages_name_the_file_and_cut_long_lists(tmp_path: Path) -> None:
    wide = pd.DataFrame({f"c{i}": [1] for i in range(25)})
    with pytest.raises(LucasInputError) as err:
        _check_points_table(wide, "w.csv")
    assert str(err.value) == (
        f"w.csv: required LUCAS column 'POINT_ID' is missing; found {[f'c{i}' for i in range(20)]}"
        " (expected the LUCAS microdata schema)"
    )
    _rows().drop(columns=["LC1"]).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "p.csv")
    assert str(err.value).startswith(f"{tmp_path / 'p.csv'}: required LUCAS column 'LC1'")
    rows = pd.DataFrame({"POINT_ID": ["a", "b", "c", "d", "e", "f", "g", "1"],
                         "LC1": ["B11"] * 8, "TH_LAT": [47.5] * 8, "TH_LONG": [15.0] * 8})
    rows.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(LucasInputError) as err:
        read_lucas_points(tmp_path / "ids.csv")
    assert str(err.value).endswith("7 row(s) do not, e.g. ['a', 'b', 'c', 'd', 'e']")


def test_empty_lc1_stays_missing(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("POINT_ID,LC1,TH_LAT,TH_LONG\n1,,47.5,15\n2,b16,47.5,15\n")
    points = read_lucas_points(tmp_path / "p.csv")
    assert pd.isna(points["LC1"].iloc[0])
    assert points["LC1"].iloc[1] == "B16"
