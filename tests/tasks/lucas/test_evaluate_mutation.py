"""The LUCAS evaluation checked point by point against a hand-worked example (issue 19).

Four fields in UTM 33N and eleven survey points whose status, reference class, radius-rule and
nearest-instance results were worked out by hand from the geometry and the LC1 code list; the
report's counts must equal what the per-point table shows was excluded and used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from tasks.config.lucas import LucasConfig
from tasks.lucas.codelist import load_lc1_mapping
from tasks.lucas.crop_map import CropMapError, instances_from_geodataframe
from tasks.lucas.evaluate import (
    LucasReport,
    classify_points,
    evaluate_against_lucas,
    map_side_classes,
    outside_country,
    points_with_same_class_within,
    report_from_json,
    require_usable_points,
)
from tasks.lucas.points import LucasInputError

UTM = "EPSG:32633"
NA = None


def _fields() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"crop_class": ["maize", "soy", "winter_wheat", "potato"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(108, 0, 200, 100),
                  shapely.box(0, 150, 100, 250), shapely.box(300, 300, 310, 310)],
        crs=UTM,
    )


# POINT_ID, (x, y) or None, LC1 -> status, reference class, correct within 10 m, predicted under
# the radius rule, nearest class, nearest distance, instances within 10 m
_POINTS = [
    # on the road: maize 6 m away (rule met), soy 2 m away (nearest)
    (11, (106.0, 50.0), " b16", "used", "maize", True, "maize", "soy", 2.0, 2),
    # a maize point inside the soy field: soy within, maize 50 m away
    (12, (150.0, 50.0), "B16", "used", "maize", False, "soy", "soy", 0.0, 1),
    # inside the wheat field
    (13, (50.0, 200.0), "B11", "used", "winter_wheat", True, "winter_wheat", "winter_wheat",
     0.0, 1),
    # between maize (20 m) and wheat (30 m): nothing within 10 m, nearest maize
    (14, (50.0, 120.0), "B11", "used", "winter_wheat", False, "maize", "maize", 20.0, 0),
    (15, (5000.0, 50.0), "B16", "outside_map_extent", "maize", NA, NA, NA, np.nan, NA),
    (16, (50.0, 50.0), "C10", "non_crop_lc1", "", NA, NA, NA, np.nan, NA),
    (17, (60.0, 60.0), "", "missing_lc1", "", NA, NA, NA, np.nan, NA),
    (18, (70.0, 70.0), "Q42", "unknown_lc1", "", NA, NA, NA, np.nan, NA),
    (19, (80.0, 80.0), "BX1", "not_comparable_lc1", "", NA, NA, NA, np.nan, NA),
    (20, None, "B16", "no_location", "maize", NA, NA, NA, np.nan, NA),
    # soy 30 m away (nearest and right), wheat 53.9 m, maize 58.3 m: the rule is not met, and
    # with no instance within 10 m the radius rule predicts no_instance
    (21, (150.0, 130.0), "B33", "used", "soy", False, "no_instance", "soy", 30.0, 0),
]


def _points(rows: list[tuple] = _POINTS) -> gpd.GeoDataFrame:
    geometry = [None if r[1] is None else shapely.Point(*r[1]) for r in rows]
    return gpd.GeoDataFrame({"POINT_ID": [r[0] for r in rows], "LC1": [r[2] for r in rows]},
                            geometry=geometry, crs=UTM)


def _column(table: pd.DataFrame, name: str) -> list:
    return [None if pd.isna(v) else v for v in table[name].tolist()]


def test_point_table_by_hand(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.evaluate")
    report = evaluate_against_lucas(_points(), _fields(), map_name="hand")
    table = report.point_results
    assert table["POINT_ID"].tolist() == [r[0] for r in _POINTS]
    assert table["LC1"].tolist() == ["B16", "B16", "B11", "B11", "B16", "C10", "", "Q42", "BX1",
                                     "B16", "B33"]
    assert table["status"].tolist() == [r[3] for r in _POINTS]
    assert table["reference_class"].tolist() == [r[4] for r in _POINTS]
    assert _column(table, "correct_within_radius") == [r[5] for r in _POINTS]
    assert _column(table, "predicted_within_radius") == [r[6] for r in _POINTS]
    assert _column(table, "nearest_class") == [r[7] for r in _POINTS]
    distance = table["nearest_distance_m"].to_numpy()
    np.testing.assert_allclose(distance, [r[8] for r in _POINTS], equal_nan=True)
    assert _column(table, "n_within_radius") == [r[9] for r in _POINTS]
    assert _column(table, "correct_nearest") == [
        False, False, True, False, NA, NA, NA, NA, NA, NA, True]
    assert table["location_source"].tolist() == ["geometry"] * 9 + ["none", "geometry"]
    np.testing.assert_allclose(table["x"], [106, 150, 50, 50, 5000, 50, 60, 70, 80, np.nan, 150])
    np.testing.assert_allclose(table["y"], [50, 50, 200, 120, 50, 50, 60, 70, 80, np.nan, 130])
    assert list(table.columns) == [
        "POINT_ID", "LC1", "reference_class", "status", "location_source", "x", "y",
        "correct_within_radius", "predicted_within_radius", "nearest_class", "correct_nearest",
        "nearest_distance_m", "n_within_radius"]
    assert {c: str(t) for c, t in table.dtypes.items() if c not in ("POINT_ID", "LC1", "x", "y",
                                                                    "reference_class", "status",
                                                                    "location_source")} == {
        "correct_within_radius": "boolean", "predicted_within_radius": "string",
        "nearest_class": "string", "correct_nearest": "boolean", "nearest_distance_m": "float64",
        "n_within_radius": "Int64"}
    messages = [r.getMessage() for r in caplog.records]
    assert "hand: 5 of 11 LUCAS points are evaluated" in messages


def test_report_counts_equal_the_point_table() -> None:
    report = evaluate_against_lucas(_points(), _fields(), map_name="hand")
    table = report.point_results
    assert report.map_name == "hand"
    assert report.points_source == "<GeoDataFrame>"
    assert report.points_total == 11 and report.points_used == 5
    assert report.excluded == {
        "missing_lc1": 1, "unknown_lc1": 1, "not_comparable_lc1": 1, "non_crop_lc1": 1,
        "obs_type_filtered": 0, "no_location": 1, "outside_country": 0, "outside_map_extent": 1,
    }
    counted = table["status"].value_counts().to_dict()
    assert {k: v for k, v in report.excluded.items() if v} == {
        k: v for k, v in counted.items() if k != "used"}
    assert report.location_sources == {"geometry": 10, "none": 1}
    assert report.gps_fallback_to_theoretical == 0
    assert report.unknown_lc1_codes == {"Q42": 1}
    assert report.classes_absent_from_map == []
    assert report.classes_absent_from_lucas == ["potato"]
    assert report.classes_without_lc1_code == ["winter_caraway"]
    assert (report.radius_m, report.nearest_max_distance_m, report.barley_rule) == (
        10.0, 1000.0, "merge")
    assert report.evaluation_crs == "EPSG:32633"
    assert report.mapping_file.endswith("lc1_to_crop_class.csv")
    classes = load_lc1_mapping().evaluation_classes
    # the confusion matrices are the (reference, predicted) counts of the used rows
    used = table[table["status"] == "used"]
    for result, column in ((report.within_radius, "predicted_within_radius"),
                           (report.nearest, "nearest_class")):
        expected = np.zeros((len(classes), len(classes) + 1), "int64")
        for ref, pred in zip(used["reference_class"], used[column], strict=True):
            expected[classes.index(ref), (list(classes) + ["no_instance"]).index(pred)] += 1
        assert result.confusion == expected.tolist()
        assert result.points == 5
    assert report.within_radius.rule == "within_10m"
    assert report.nearest.rule == "nearest_instance"
    assert report.nearest.correct == 2 and report.nearest.overall_accuracy == 0.4
    maize = report.nearest.per_class["maize"]
    assert (maize.support, maize.predicted, maize.recall) == (2, 1, 0.0)


def test_nearest_limit_gives_no_instance() -> None:
    report = evaluate_against_lucas(_points(), _fields(),
                                    LucasConfig(nearest_max_distance_m=25.0, radius_m=5.0))
    table = report.point_results
    used = table[table["status"] == "used"]
    # radius 5: point 11 (maize 6 m away) no longer meets the rule; 21 (soy 30 m) has no
    # instance within 25 m
    assert _column(used, "correct_within_radius") == [False, False, True, False, False]
    assert _column(used, "predicted_within_radius") == ["soy", "soy", "winter_wheat", "maize",
                                                        "no_instance"]
    assert _column(used, "nearest_class") == ["soy", "soy", "winter_wheat", "maize",
                                              "no_instance"]
    assert np.isinf(used["nearest_distance_m"].iloc[-1])
    assert report.within_radius.rule == "within_5m"
    assert report.within_radius.confusion[1][-1] == 0  # maize row, no_instance column
    assert report.within_radius.confusion[10][-1] == 1  # soy row, no_instance column
    assert report.radius_m == 5.0 and report.nearest_max_distance_m == 25.0
    assert points_with_same_class_within(_points(), _fields(), radius=10) == {11, 13}
    assert points_with_same_class_within(_points(), _fields(), radius=30) == {11, 13, 14, 21}


def test_classify_points_order_of_reasons(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.evaluate")
    rows = gpd.GeoDataFrame(
        {"POINT_ID": [1, 2, 3, 4, 5, 6, 7], "LC1": ["B16", "C10", "B16", "B16", "Q1", "Q1", "B33"],
         "OBS_TYPE": [1, 3, 3, 1, 3, 1, "x"],
         "NUTS0": ["AT", "AT", "AT", "AT", "AT", "at ", "AT"]},
        geometry=[shapely.Point(15, 47.5), shapely.Point(15, 47.5), None, None,
                  shapely.Point(15, 47.5), shapely.Point(47.5, 15), shapely.Point(47.5, 15)],
        crs=4326,
    )
    mapping = load_lc1_mapping()
    reference, status, unknown = classify_points(rows, mapping, LucasConfig(obs_types=[1]))
    assert reference.tolist() == ["maize", "", "maize", "maize", "", "", "soy"]
    # non_crop before the OBS_TYPE filter, the filter before the location checks; OBS_TYPE "x" is
    # not a kept type
    assert status.tolist() == ["used", "non_crop_lc1", "obs_type_filtered", "no_location",
                               "unknown_lc1", "unknown_lc1", "obs_type_filtered"]
    assert dict(unknown) == {"Q1": 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "2 LUCAS point(s) have LC1 codes not in the mapping "
        f"{mapping.source}: {{'Q1': 2}}; they are excluded (reason unknown_lc1)"
    ]
    caplog.clear()
    _, status, _ = classify_points(rows, mapping, LucasConfig())  # no OBS_TYPE filter
    assert status.tolist() == ["used", "non_crop_lc1", "no_location", "no_location",
                               "unknown_lc1", "unknown_lc1", "outside_country"]
    assert ("1 LUCAS point(s) lie outside the bounding box of their NUTS0 country {'AT': 1} "
            "(latitude/longitude swapped or a wrong sign?); they are excluded (reason "
            "outside_country)") in [r.getMessage() for r in caplog.records]
    with pytest.raises(LucasInputError) as err:
        classify_points(rows, mapping, LucasConfig(on_unknown_lc1="error"))
    assert str(err.value) == (
        f"2 LUCAS point(s) have LC1 codes not in the mapping {mapping.source}: {{'Q1': 2}}; add "
        "them to the mapping table or set lucas.on_unknown_lc1: exclude"
    )
    without_obs = rows.drop(columns=["OBS_TYPE"])
    _, status, _ = classify_points(without_obs, mapping, LucasConfig(obs_types=[1]))
    assert "obs_type_filtered" not in status.tolist()


def test_outside_country_by_hand() -> None:
    # Austria's box: lon 9.5..17.2, lat 46.3..49.1 (inclusive)
    rows = gpd.GeoDataFrame(
        {"NUTS0": ["AT", " at", "AT", "AT", "AT", "XX", None, "AT", "AT"]},
        geometry=[shapely.Point(9.5, 46.3), shapely.Point(17.2, 49.1), shapely.Point(9.49, 47),
                  shapely.Point(12, 49.11), None, shapely.Point(0, 0), shapely.Point(0, 0),
                  shapely.Point(17.21, 47), shapely.Point(12, 46.29)],
        crs=4326,
    )
    assert outside_country(rows).tolist() == [False, False, True, True, False, False, False,
                                              True, True]
    in_utm = rows.iloc[:4].to_crs(UTM)  # the check is done in WGS84 whatever the points' CRS
    assert outside_country(in_utm).tolist() == [False, False, True, True]
    assert outside_country(rows.drop(columns=["NUTS0"])).tolist() == [False] * 9
    assert outside_country(rows.iloc[:0]).tolist() == []


def test_map_side_classes_of_a_raster(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    data = np.array([[1, 1, 255, 40], [11, 0, 15, 16]], dtype="uint8")
    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=4, height=2, count=1,
                       dtype="uint8", crs=UTM, transform=from_origin(0, 20, 10, 10),
                       nodata=255) as dst:
        dst.write(data, 1)
    from tasks.lucas.crop_map import read_class_raster

    assert map_side_classes(read_class_raster(tmp_path / "m.tif")) == {0, 1, 11, 15}
    assert map_side_classes(instances_from_geodataframe(_fields())) == {1, 11, 4, 6}
    with rasterio.open(tmp_path / "n.tif", "w", driver="GTiff", width=4, height=2, count=1,
                       dtype="uint8", crs=UTM, transform=from_origin(0, 20, 10, 10)) as dst:
        dst.write(data, 1)
    assert map_side_classes(read_class_raster(tmp_path / "n.tif")) == {0, 1, 11, 15}


def test_evaluation_crs_choice_and_reprojection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.lucas.evaluate")
    geographic = _fields().set_geometry(
        _fields().geometry.translate(500_000, 5_261_000)).to_crs(4326)
    points = _points()
    points = points.set_geometry(points.geometry.translate(500_000, 5_261_000))
    report = evaluate_against_lucas(points, geographic)
    assert report.evaluation_crs == "EPSG:32633"
    table = report.point_results
    assert table["status"].tolist()[:5] == ["used"] * 4 + ["outside_map_extent"]
    assert _column(table, "nearest_class")[:4] == ["soy", "soy", "winter_wheat", "maize"]
    np.testing.assert_allclose(table["nearest_distance_m"][:4], [2.0, 0.0, 0.0, 20.0], atol=0.05)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("<GeoDataFrame> is in geographic WGS 84; distances are computed in "
                            "WGS 84 / UTM zone 33N") for m in messages) or any(
        "distances are computed in WGS 84 / UTM zone 33N" in m for m in messages)
    assert "reprojecting 4 instances of map to WGS 84 / UTM zone 33N" in messages
    # an explicit evaluation CRS wins (UTM 34N: the same field, other coordinates)
    other = evaluate_against_lucas(points, geographic, LucasConfig(evaluation_crs="EPSG:32634"))
    assert other.evaluation_crs == "EPSG:32634"
    assert other.point_results["status"].tolist()[:4] == ["used"] * 4


def test_geographic_raster_is_refused(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(tmp_path / "g.tif", "w", driver="GTiff", width=2, height=2, count=1,
                       dtype="uint8", crs="EPSG:4326", transform=from_origin(15, 48, 0.001, 0.001),
                       nodata=255) as dst:
        dst.write(np.ones((2, 2), "uint8"), 1)
    points = gpd.GeoDataFrame({"POINT_ID": [1], "LC1": ["B16"]},
                              geometry=[shapely.Point(15.0005, 47.9995)], crs=4326)
    with pytest.raises(CropMapError) as err:
        evaluate_against_lucas(points, tmp_path / "g.tif")
    assert str(err.value) == (
        f"{tmp_path / 'g.tif'}: the raster is in WGS 84, distances need WGS 84 / UTM zone 33N; "
        "warp it (gdalwarp -t_srs) to a projected CRS or leave lucas.evaluation_crs unset"
    )


def test_points_input_checks_and_map_name() -> None:
    with pytest.raises(LucasInputError) as err:
        evaluate_against_lucas(pd.DataFrame({"POINT_ID": [1], "LC1": ["B16"]}), _fields())
    assert str(err.value) == (
        f"points must be a path or a GeoDataFrame from read_lucas_points, got {pd.DataFrame}")
    with pytest.raises(LucasInputError) as err:
        evaluate_against_lucas(_points().set_crs(None, allow_override=True), _fields())
    assert str(err.value) == (
        "<points>: the points GeoDataFrame has no CRS (LUCAS: EPSG:4326)")
    with pytest.raises(LucasInputError, match="<points>: required LUCAS column 'LC1'"):
        evaluate_against_lucas(_points().drop(columns=["LC1"]), _fields())
    given = _points()
    given["location_source"] = "gps"  # a table from read_lucas_points keeps its sources
    report = evaluate_against_lucas(given, instances_from_geodataframe(_fields(), "x"),
                                    map_name="renamed")
    assert report.map_name == "renamed"
    assert report.location_sources == {"gps": 11}
    unnamed = evaluate_against_lucas(_points(), _fields())
    assert unnamed.map_name == "map"
    assert given["LC1"].tolist()[0] == " b16"  # the caller's table is not changed


def test_require_usable_points_by_hand() -> None:
    report = evaluate_against_lucas(_points(), _fields(), map_name="hand")
    # used 5 + no_location 1 + outside_map_extent 1 = 7 candidates, 6 located
    require_usable_points(report, 6 / 7)
    with pytest.raises(LucasInputError) as err:
        require_usable_points(report, 0.9)
    assert str(err.value) == (
        "<GeoDataFrame>: only 5 of 11 LUCAS points are usable for map 'hand' (6 of 7 crop-coded "
        "points have a valid location, 86% < the required 90%); excluded by reason: "
        "{'missing_lc1': 1, 'no_location': 1, 'non_crop_lc1': 1, 'not_comparable_lc1': 1, "
        "'outside_map_extent': 1, 'unknown_lc1': 1}. Check that TH_LAT/TH_LONG/GPS_LAT/GPS_LONG "
        "are numeric WGS84 degrees (not x10, not swapped) and that the map covers the points; no "
        "report was written"
    )
    country = report.model_copy(update={"excluded": {**report.excluded, "outside_country": 1}})
    # 8 candidates, 6 located: 75 %
    require_usable_points(country, 0.75)
    with pytest.raises(LucasInputError, match=r"\(6 of 8 crop-coded points .* 75% < the required"):
        require_usable_points(country, 0.76)
    nothing_used = report.model_copy(update={"points_used": 0})
    with pytest.raises(LucasInputError, match="only 0 of 11"):
        require_usable_points(nothing_used, 0.0)
    empty = report.model_copy(update={"points_total": 0})
    with pytest.raises(LucasInputError) as err:
        require_usable_points(empty)
    assert str(err.value) == (
        "<GeoDataFrame>: the LUCAS points file holds no points; nothing to compare map 'hand' "
        "with (check the file and lucas.points_path)"
    )
    none = report.model_copy(update={"points_used": 0, "excluded": {}})
    with pytest.raises(LucasInputError, match=r"\(0 of 0 crop-coded points .* 0% < the required"):
        require_usable_points(none, 0.0)


def test_report_json_round_trip_without_table() -> None:
    report = evaluate_against_lucas(_points(), _fields())
    again = report_from_json(report.model_dump(mode="json"))
    assert isinstance(again, LucasReport)
    assert again.model_dump() == report.model_dump()
    with pytest.raises(ValueError) as err:
        _ = again.point_results
    assert str(err.value) == "this report was loaded from JSON and has no per-point table"


def test_wgs84_points_are_projected_longitude_first() -> None:
    # a 200 m maize field centred on 15 E, 47.5 N in UTM 33N; the point at its centre in WGS84
    x, y = shapely.get_coordinates(
        gpd.GeoSeries([shapely.Point(15.0, 47.5)], crs=4326).to_crs(UTM).values)[0]
    field = gpd.GeoDataFrame({"crop_class": ["maize"]},
                             geometry=[shapely.box(x - 100, y - 100, x + 100, y + 100)], crs=UTM)
    points = gpd.GeoDataFrame({"POINT_ID": [1, 2], "LC1": ["B16", "B16"]},
                              geometry=[shapely.Point(15.0, 47.5), shapely.Point()], crs=4326)
    report = evaluate_against_lucas(points, field)
    table = report.point_results
    assert table["status"].tolist() == ["used", "no_location"]
    assert table["x"].iloc[0] == pytest.approx(x, abs=1e-6)
    assert table["y"].iloc[0] == pytest.approx(y, abs=1e-6)
    assert np.isnan(table["x"].iloc[1]) and np.isnan(table["y"].iloc[1])
    assert table["nearest_distance_m"].iloc[0] == 0.0


def test_no_point_used() -> None:
    points = _points([r for r in _POINTS if r[3] != "used"])
    report = evaluate_against_lucas(points, _fields())
    assert report.points_used == 0
    assert report.within_radius.points == 0 and report.within_radius.overall_accuracy is None
    table = report.point_results
    assert table["correct_within_radius"].isna().all()
    assert table["n_within_radius"].isna().all()
    assert (table["status"] != "used").all()
    assert report.classes_absent_from_lucas == ["maize", "potato", "soy", "winter_wheat"]


def test_grassland_the_first_class_is_a_class() -> None:
    # grassland is class 0 of the map: a nearest grassland instance is not "no instance"
    fields = gpd.GeoDataFrame(
        {"crop_class": ["grassland", "maize"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(200, 0, 300, 100)], crs=UTM,
    )
    points = _points([(1, (50.0, 50.0), "E20"), (2, (150.0, 50.0), "B16"),
                      (3, (130.0, 50.0), "B16")])
    report = evaluate_against_lucas(points, fields)
    table = report.point_results
    assert _column(table, "nearest_class") == ["grassland", "grassland", "grassland"]
    assert _column(table, "predicted_within_radius") == ["grassland", "grassland", "grassland"]
    assert _column(table, "correct_within_radius") == [True, False, False]
    assert report.nearest.per_class["grassland"].predicted == 3


def test_same_class_within_default_radius_is_10_m() -> None:
    points = _points([(1, (110.5, 50.0), "B16"), (2, (109.5, 50.0), "B16")])
    field = _fields().iloc[[0, 3]]  # maize, x 0..100, and potato far off (the map's extent)
    assert points_with_same_class_within(points, field) == {2}
    assert points_with_same_class_within(points, field, radius=11) == {1, 2}


def test_radius_rule_counts_only_points_meeting_the_rule() -> None:
    report = evaluate_against_lucas(_points(), _fields())
    met = int(report.point_results["correct_within_radius"].fillna(False).sum())
    assert met == 2  # points 11 and 13
    assert report.within_radius.correct == met


def test_missing_lc1_and_many_unknown_codes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tasks.lucas.evaluate")
    codes = [f"Q{i:02d}" for i in range(12)]
    rows: list[tuple] = [(i + 1, (50.0, 50.0), code) for i, code in enumerate(codes)]
    rows += [(20, (50.0, 50.0), None), (21, (50.0, 50.0), "B16")]
    report = evaluate_against_lucas(_points(rows), _fields())
    assert report.excluded["missing_lc1"] == 1 and report.excluded["unknown_lc1"] == 12
    assert report.unknown_lc1_codes == {c: 1 for c in codes}
    mapping = load_lc1_mapping()
    shown = {c: 1 for c in codes[:10]}
    assert caplog.records[0].getMessage() == (
        f"12 LUCAS point(s) have LC1 codes not in the mapping {mapping.source}: {shown}; they are "
        "excluded (reason unknown_lc1)")


def test_gps_fallback_is_counted_only_with_gps_columns(tmp_path: Path) -> None:
    x, y = shapely.get_coordinates(
        gpd.GeoSeries([shapely.Point(15.0, 47.5)], crs=4326).to_crs(UTM).values)[0]
    field = gpd.GeoDataFrame({"crop_class": ["maize"]},
                             geometry=[shapely.box(x - 500, y - 500, x + 500, y + 500)], crs=UTM)
    pd.DataFrame({
        "POINT_ID": [1, 2, 3], "TH_LAT": [47.5, 47.501, 47.502], "TH_LONG": [15.0, 15.0, 15.0],
        "GPS_LAT": [47.5001, None, 88.888888], "GPS_LONG": [15.0001, None, 88.888888],
        "LC1": ["B16", "B16", "B16"],
    }).to_csv(tmp_path / "gps.csv", index=False)
    report = evaluate_against_lucas(tmp_path / "gps.csv", field)
    assert report.points_source == str(tmp_path / "gps.csv")
    assert report.location_sources == {"gps": 1, "theoretical": 2}
    assert report.gps_fallback_to_theoretical == 2
    pd.DataFrame({"POINT_ID": [1, 2], "TH_LAT": [47.5, 47.501], "TH_LONG": [15.0, 15.0],
                  "LC1": ["B16", "B16"]}).to_csv(tmp_path / "th.csv", index=False)
    report = evaluate_against_lucas(tmp_path / "th.csv", field)
    assert report.location_sources == {"theoretical": 2}
    assert report.gps_fallback_to_theoretical == 0  # no GPS columns: nothing fell back


def test_map_file_settings_are_passed_on(tmp_path: Path) -> None:
    frame = _fields().rename(columns={"crop_class": "kultur"})
    frame.set_crs(None, allow_override=True).to_parquet(tmp_path / "fields.parquet")
    config = LucasConfig(map_crs=UTM, class_column="kultur")
    report = evaluate_against_lucas(_points(), tmp_path / "fields.parquet", config,
                                    map_name="named")
    assert report.map_name == "named" and report.points_used == 5
    assert evaluate_against_lucas(_points(), tmp_path / "fields.parquet", config).map_name == \
        "fields"
    in_memory = evaluate_against_lucas(_points(), frame.set_crs(None, allow_override=True), config)
    assert in_memory.points_used == 5
    _points().to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(LucasInputError, match="CSV coordinates in EPSG:3035 are not supported"):
        evaluate_against_lucas(tmp_path / "p.csv", _fields(), LucasConfig(points_crs="EPSG:3035"))
