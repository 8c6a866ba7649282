from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from tasks.config.lucas import LucasConfig
from tasks.lucas.crop_map import CropMapError
from tasks.lucas.evaluate import evaluate_against_lucas, points_with_same_class_within
from tasks.lucas.generator import FarmlandLayout, map_instances, write_class_raster
from tasks.lucas.points import LucasInputError, read_lucas_points

UTM = "EPSG:32633"


def test_truth_map_passes_the_radius_rule_and_nearest_is_worse(lucas_dir: Path) -> None:
    report = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "truth.parquet")
    assert report.points_total == 350
    assert report.points_used + sum(report.excluded.values()) == report.points_total
    assert report.excluded["outside_map_extent"] > 0
    assert report.excluded["non_crop_lc1"] > 50
    assert report.gps_fallback_to_theoretical > 0
    assert report.location_sources["theoretical"] == report.gps_fallback_to_theoretical
    assert report.within_radius.overall_accuracy >= 0.97
    # surveyors stand on roads: the nearest instance is often the neighbour field
    assert report.nearest.overall_accuracy < report.within_radius.overall_accuracy - 0.05
    assert report.classes_absent_from_lucas == ["winter_caraway"] or \
        "winter_caraway" in report.classes_absent_from_lucas
    assert report.classes_without_lc1_code == ["winter_caraway"]
    table = report.point_results
    assert len(table) == 350 and table["POINT_ID"].is_unique
    assert (table["status"] == "used").sum() == report.points_used
    matrix = np.array(report.within_radius.confusion)
    assert matrix.sum() == report.points_used
    assert np.trace(matrix) == report.within_radius.correct


def test_model_map_scores_lower_and_report_round_trips(lucas_dir: Path) -> None:
    truth = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "truth.parquet")
    model = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "model.parquet")
    assert model.points_used == truth.points_used
    assert model.within_radius.overall_accuracy < truth.within_radius.overall_accuracy
    assert 0.6 < model.within_radius.overall_accuracy < 0.97
    assert model.within_radius.median_f1 is not None
    again = type(model).model_validate_json(model.model_dump_json())
    assert again.within_radius == model.within_radius


def _two_fields(classes: tuple[str, str] = ("maize", "soy")) -> gpd.GeoDataFrame:
    """Two fields separated by an 8 m road at x = 100..108."""
    return gpd.GeoDataFrame(
        {"crop_class": list(classes)},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(108, 0, 200, 100)], crs=UTM,
    )


def _points(xy: list[tuple[float, float]], lc1: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"POINT_ID": np.arange(1, len(xy) + 1), "LC1": lc1},
        geometry=gpd.points_from_xy(*zip(*xy, strict=True)), crs=UTM,
    )


def test_road_point_rule_versus_nearest() -> None:
    # a maize point seen from the road, 6 m from its field and 2 m from the soy field
    points = _points([(106.0, 50.0)], ["B16"])
    report = evaluate_against_lucas(points, _two_fields())
    assert report.within_radius.overall_accuracy == 1.0
    assert report.nearest.overall_accuracy == 0.0
    assert report.point_results["nearest_class"].tolist() == ["soy"]
    narrow = evaluate_against_lucas(points, _two_fields(), LucasConfig(radius_m=5.0))
    assert narrow.within_radius.overall_accuracy == 0.0
    assert narrow.point_results["predicted_within_radius"].tolist() == ["soy"]
    assert points_with_same_class_within(points, _two_fields(), radius=10) == {1}
    assert points_with_same_class_within(points, _two_fields(), radius=5) == set()


def test_barley_rule() -> None:
    fields = _two_fields(("spring_barley", "maize"))
    points = _points([(50.0, 50.0), (150.0, 50.0)], ["B13", "B16"])
    merged = evaluate_against_lucas(points, fields)
    assert merged.within_radius.overall_accuracy == 1.0
    assert merged.within_radius.per_class["barley"].support == 1
    strict = evaluate_against_lucas(points, fields, LucasConfig(barley_rule="winter_barley"))
    assert strict.within_radius.overall_accuracy == 0.5
    assert strict.classes_absent_from_map == ["winter_barley"]
    assert strict.classes_absent_from_lucas == ["spring_barley"]
    assert strict.within_radius.per_class["winter_barley"].recall == 0.0


def test_exclusion_reasons_are_counted() -> None:
    points = _points(
        [(50, 50), (150, 50), (5000, 50), (60, 60), (70, 70), (80, 80)],
        ["B16", "C10", "B16", "Q42", "", "BX1"],
    )
    points.loc[points.index[-1], "geometry"] = None
    report = evaluate_against_lucas(points, _two_fields())
    assert report.points_used == 1
    assert report.excluded == {
        "missing_lc1": 1, "unknown_lc1": 1, "not_comparable_lc1": 1, "non_crop_lc1": 1,
        "obs_type_filtered": 0, "no_location": 0, "outside_country": 0,
        "outside_map_extent": 1,
    }
    assert report.unknown_lc1_codes == {"Q42": 1}
    with pytest.raises(LucasInputError, match=r"Q42.*on_unknown_lc1"):
        evaluate_against_lucas(points, _two_fields(), LucasConfig(on_unknown_lc1="error"))


def test_no_location_and_obs_type_filter(tmp_path: Path) -> None:
    pd.DataFrame({
        "POINT_ID": [1, 2, 3], "TH_LAT": [47.5, 88.888888, 47.5002], "TH_LONG": [15.0, 88.888888,
                                                                                  15.0002],
        "GPS_LAT": [None, None, None], "GPS_LONG": [None, None, None], "OBS_TYPE": [1, 1, 3],
        "LC1": ["B16", "B16", "B16"],
    }).to_csv(tmp_path / "p.csv", index=False)
    x, y = shapely.get_coordinates(
        gpd.GeoSeries(gpd.points_from_xy([15.0], [47.5]), crs=4326).to_crs(UTM).values
    )[0]
    field = gpd.GeoDataFrame({"crop_class": ["maize"]},
                             geometry=[shapely.box(x - 100, y - 100, x + 100, y + 100)], crs=UTM)
    report = evaluate_against_lucas(tmp_path / "p.csv", field, LucasConfig(obs_types=[1]))
    assert report.excluded["no_location"] == 1
    assert report.excluded["obs_type_filtered"] == 1
    assert report.points_used == 1 and report.within_radius.overall_accuracy == 1.0
    assert report.gps_fallback_to_theoretical == 2


def test_bad_maps(tmp_path: Path) -> None:
    points = _points([(50.0, 50.0)], ["B16"])
    no_crs = _two_fields().set_crs(None, allow_override=True)
    no_crs.to_parquet(tmp_path / "no_crs.parquet")
    with pytest.raises(CropMapError, match="no CRS.*lucas.map_crs"):
        evaluate_against_lucas(points, tmp_path / "no_crs.parquet")
    assumed = evaluate_against_lucas(points, tmp_path / "no_crs.parquet",
                                     LucasConfig(map_crs=UTM))
    assert assumed.within_radius.overall_accuracy == 1.0
    with pytest.raises(CropMapError, match="no CRS"):
        evaluate_against_lucas(points, no_crs)
    _two_fields().iloc[:0].to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(CropMapError, match="empty"):
        evaluate_against_lucas(points, tmp_path / "empty.parquet")
    wrong = _two_fields(("maize", "Mais"))
    wrong.to_parquet(tmp_path / "wrong.parquet")
    with pytest.raises(CropMapError, match=r"unknown class name.*Mais"):
        evaluate_against_lucas(points, tmp_path / "wrong.parquet")
    with pytest.raises(CropMapError, match="unsupported crop map type"):
        evaluate_against_lucas(points, tmp_path / "map.shp")


def test_geographic_map_is_evaluated_in_utm(lucas_dir: Path, layout: FarmlandLayout) -> None:
    points = read_lucas_points(lucas_dir / "points.csv")
    utm = evaluate_against_lucas(points, lucas_dir / "truth.parquet")
    wgs84 = evaluate_against_lucas(points, map_instances(layout).to_crs(4326))
    assert wgs84.evaluation_crs == "EPSG:32633"
    assert abs(wgs84.points_used - utm.points_used) <= 2  # extent box differs slightly
    assert wgs84.within_radius.overall_accuracy == pytest.approx(
        utm.within_radius.overall_accuracy, abs=0.02)


def test_class_raster_map(lucas_dir: Path, layout: FarmlandLayout, tmp_path: Path) -> None:
    raster = write_class_raster(layout, tmp_path / "truth.tif", pixel_m=10.0)
    report = evaluate_against_lucas(lucas_dir / "points.csv", raster)
    vector = evaluate_against_lucas(lucas_dir / "points.csv", lucas_dir / "truth.parquet")
    assert report.points_used == pytest.approx(vector.points_used, abs=3)
    assert report.within_radius.overall_accuracy > 0.95


def test_points_outside_their_country_are_flagged_not_matched(tmp_path: Path) -> None:
    """An Austrian point with latitude and longitude swapped lies in the Indian Ocean."""
    pd.DataFrame({
        "POINT_ID": [1, 2, 3, 4], "NUTS0": ["AT", "AT", "AT", "XX"],
        "TH_LAT": [47.5, 15.0, 47.5001, 15.0], "TH_LONG": [15.0, 47.5, 15.0001, 47.5],
        "LC1": ["B16", "B16", "B16", "B16"],
    }).to_csv(tmp_path / "p.csv", index=False)
    x, y = shapely.get_coordinates(
        gpd.GeoSeries(gpd.points_from_xy([15.0], [47.5]), crs=4326).to_crs(UTM).values
    )[0]
    field = gpd.GeoDataFrame({"crop_class": ["maize"]},
                             geometry=[shapely.box(x - 100, y - 100, x + 100, y + 100)], crs=UTM)
    report = evaluate_against_lucas(tmp_path / "p.csv", field)
    # point 2 (swapped, AT) is flagged; point 4 (unknown code XX) has nothing to be checked against
    assert report.excluded["outside_country"] == 1
    assert report.excluded["outside_map_extent"] == 1 and report.points_used == 2


def test_mostly_swapped_coordinates_fail_with_counts_by_reason(tmp_path: Path) -> None:
    from tasks.lucas.evaluate import require_usable_points

    pd.DataFrame({
        "POINT_ID": [1, 2, 3], "NUTS0": ["AT", "AT", "AT"],
        "TH_LAT": [47.5, 15.0, 15.0001], "TH_LONG": [15.0, 47.5, 47.5001],
        "LC1": ["B16", "B16", "B16"],
    }).to_csv(tmp_path / "p.csv", index=False)
    x, y = shapely.get_coordinates(
        gpd.GeoSeries(gpd.points_from_xy([15.0], [47.5]), crs=4326).to_crs(UTM).values
    )[0]
    field = gpd.GeoDataFrame({"crop_class": ["maize"]},
                             geometry=[shapely.box(x - 100, y - 100, x + 100, y + 100)], crs=UTM)
    report = evaluate_against_lucas(tmp_path / "p.csv", field)
    with pytest.raises(LucasInputError, match=r"'outside_country': 2.*not swapped"):
        require_usable_points(report)


def test_country_bounds_hold_each_country_and_not_its_neighbours_capital() -> None:
    from tasks.lucas.evaluate import country_bounds

    bounds = country_bounds()
    assert len(bounds) == 28
    capitals = {"AT": (16.37, 48.21), "BE": (4.35, 50.85), "ES": (-3.70, 40.42),
                "PT": (-9.14, 38.72), "FI": (24.94, 60.17), "UK": (-0.13, 51.51),
                "CY": (33.38, 35.17), "IE": (-6.26, 53.35)}
    for code, (lon, lat) in capitals.items():
        x0, y0, x1, y1 = bounds.loc[code]
        assert x0 <= lon <= x1 and y0 <= lat <= y1, code
    x0, y0, x1, y1 = bounds.loc["AT"]
    assert not (x0 <= 2.35 <= x1 and y0 <= 48.86 <= y1)  # Paris is not in Austria's box
