"""The STAC catalogue of published products: valid STAC 1.1, links, extensions, idempotent runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from tasks.polar.predict import write_class_polygons
from tasks.stac.catalogue import CatalogueError, publish_run_items
from tasks.stac.products import catalogue_crop_map, catalogue_evaluation, catalogue_ice_charts
from tests.tasks.stac.stac_validation import validate_stac

PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"


def _tif(path: Path, data: np.ndarray, crs: str, x0: float, y0: float, pixel: float,
         nodata: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs, nodata=nodata,
                       transform=from_origin(x0, y0, pixel, pixel)) as dst:
        dst.write(data, 1)
    return path


def _published_day(root: Path, day: str, scenes: list[str]) -> tuple[Path, list[Path]]:
    folder = root / "polar" / "published" / day
    charts = []
    for k, scene in enumerate(scenes):
        chart = np.ones((40, 40), np.uint8)
        chart[5:20, 10:30] = 2
        tif = _tif(folder / f"{scene}_chart.tif", chart, "EPSG:3413",
                   700_000.0 + k * 50_000, -1_000_000.0, 1000.0, 255)
        write_class_polygons(tif, folder / f"{scene}_chart.geojson", "binary")
        (folder / f"{scene}_quicklook.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
        charts.append(tif)
    return folder, charts


def _all_json(root: Path) -> list[dict]:
    def strict(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return [json.loads(p.read_text(), parse_constant=strict)
            for p in sorted((root / "catalogue").rglob("*.json"))]


def test_ice_chart_items_are_valid_stac_with_links_and_extensions(tmp_path):
    folder, charts = _published_day(tmp_path, "2026-01-25", ["S1A_A", "S1A_B"])
    result = catalogue_ice_charts(tmp_path, "2026-01-25", folder, charts, model="m1")
    assert result["n_items"] == 2
    documents = _all_json(tmp_path)
    assert {d["type"] for d in documents} == {"Catalog", "Collection", "Feature"}
    for document in documents:
        assert validate_stac(document) == [], document["id"]
    item = json.loads(Path(result["items"][0]).read_text())
    assert item["stac_version"] == "1.1.0" and item["collection"] == "ice-charts"
    assert {PROJ, RASTER, FILE} <= set(item["stac_extensions"])
    assert item["properties"]["proj:code"] == "EPSG:3413" and "proj:epsg" not in item["properties"]
    assert {link["rel"] for link in item["links"]} == {"root", "parent", "collection", "self"}
    self_link = next(link["href"] for link in item["links"] if link["rel"] == "self")
    assert self_link == Path(result["items"][0]).resolve().as_uri()
    item_dir = Path(result["items"][0]).parent
    for link in item["links"]:
        if link["rel"] != "self":
            assert (item_dir / link["href"]).resolve().is_file()
    assets = item["assets"]
    assert set(assets) == {"chart", "quicklook", "polygons", "polygons_projected"}
    assert assets["polygons"]["type"] == "application/geo+json"
    for asset in assets.values():
        target = (item_dir / asset["href"]).resolve()
        assert target.is_file() and asset["file:size"] == target.stat().st_size
        assert asset["file:checksum"].startswith("1220") and len(asset["file:checksum"]) == 68
    assert assets["chart"]["raster:bands"][0] == {"nodata": 255.0, "data_type": "uint8",
                                                   "spatial_resolution": 1000.0}
    assert assets["chart"]["proj:shape"] == [40, 40]
    lon0, lat0, lon1, lat1 = item["bbox"]
    assert -30 < lon0 < lon1 < 30 and 70 < lat0 < lat1 < 90  # CRS84
    assert shapely.geometry.shape(item["geometry"]).is_valid


def test_rerunning_a_day_replaces_its_items(tmp_path):
    folder, charts = _published_day(tmp_path, "2026-01-25", ["S1A_A", "S1A_B"])
    catalogue_ice_charts(tmp_path, "2026-01-25", folder, charts)
    folder2, charts2 = _published_day(tmp_path, "2026-01-26", ["S1A_C"])
    catalogue_ice_charts(tmp_path, "2026-01-26", folder2, charts2)
    again = catalogue_ice_charts(tmp_path, "2026-01-25", folder, charts[:1])  # one scene now
    collection = json.loads(Path(again["collection"]).read_text())
    items = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert sorted(items) == ["./2026-01-25/S1A_A_chart.json", "./2026-01-26/S1A_C_chart.json"]
    assert len(items) == len(set(items)) == again["n_items"] == 2
    assert collection["extent"]["temporal"]["interval"] == [
        ["2026-01-25T00:00:00Z", "2026-01-26T00:00:00Z"]]
    catalog = json.loads(Path(again["catalog"]).read_text())
    assert [link["href"] for link in catalog["links"] if link["rel"] == "child"] == [
        "./ice-charts/collection.json"]
    for document in _all_json(tmp_path):
        assert validate_stac(document) == []


def test_crop_map_field_instances_and_evaluation_items(tmp_path):
    folder = tmp_path / "food_security" / "predict" / "2017-09_2018-08" / "33UWP"
    classes = np.arange(30 * 30, dtype=np.uint8).reshape(30, 30) % 4
    _tif(folder / "crop_map.tif", classes, "EPSG:32633", 500_000.0, 5_300_000.0, 10.0, 255)
    _tif(folder / "confidence.tif", np.full((30, 30), 0.8, np.float32), "EPSG:32633",
         500_000.0, 5_300_000.0, 10.0, np.nan)
    gpd.GeoDataFrame({"crop_class": ["maize"], "confidence": [0.8]},
                     geometry=[shapely.box(500_000, 5_299_800, 500_100, 5_299_900)],
                     crs="EPSG:32633").to_parquet(folder / "33UWP_instances.parquet")
    result = catalogue_crop_map(tmp_path, "2017-09_2018-08", folder, "33UWP", "lstm")
    evaluation = tmp_path / "food_security" / "evaluate" / "2017-09_2018-08"
    evaluation.mkdir(parents=True)
    (evaluation / "metrics.json").write_text(json.dumps({"overall_accuracy": 0.9}))
    catalogue_evaluation(tmp_path, "food_security", "2017-09_2018-08", evaluation,
                         "food_security_2017-09_2018-08_33UWP_evaluation", period="2017-09_2018-08")
    catalogue_evaluation(tmp_path, "polar", "m1", evaluation, "polar_m1_evaluation",
                         when=dt.datetime(2026, 1, 25, tzinfo=dt.UTC))
    documents = _all_json(tmp_path)
    for document in documents:
        assert validate_stac(document) == [], document["id"]
    crop = json.loads(Path(result["crop-maps"]["items"][0]).read_text())
    assert crop["properties"]["start_datetime"] == "2017-09-01T00:00:00Z"
    assert crop["properties"]["end_datetime"] == "2018-08-31T23:59:59Z"
    assert crop["properties"]["datetime"] is None
    assert crop["properties"]["proj:code"] == "EPSG:32633"
    assert crop["assets"]["confidence"]["raster:bands"][0]["nodata"] == "nan"
    fields = json.loads(Path(result["field-instances"]["items"][0]).read_text())
    assert fields["assets"]["field_instances"]["type"] == "application/vnd.apache.parquet"
    evaluations = [d for d in documents if d.get("properties", {}).get("eeflow:product")
                   == "model_evaluation"]
    assert len(evaluations) == 2 and all(e["geometry"] is None for e in evaluations)
    catalog = next(d for d in documents if d["type"] == "Catalog")
    assert sorted(link["href"] for link in catalog["links"] if link["rel"] == "child") == [
        "./crop-maps/collection.json", "./field-instances/collection.json",
        "./model-evaluations/collection.json"]


def test_the_schemas_reject_yesterdays_hand_made_items():
    legacy = {  # what publish wrote before: STAC 1.0.0, proj:epsg undeclared, no links
        "type": "Feature", "stac_version": "1.0.0", "id": "x", "bbox": [0, 0, 1, 1],
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
        "properties": {"datetime": "2026-01-25T00:00:00Z", "proj:epsg": 3413},
        "assets": {}, "links": [],
    }
    assert validate_stac(legacy)  # wrong version
    legacy["stac_version"] = "1.1.0"
    legacy["stac_extensions"] = [PROJ]
    assert any("proj:epsg" in e or "not" in e for e in validate_stac(legacy))  # removed in v2
    legacy["properties"] = {"datetime": "not a date"}
    legacy["stac_extensions"] = ["https://example.invalid/unknown/v1.0.0/schema.json"]
    errors = validate_stac(legacy)
    assert any("no local schema" in e for e in errors)


def test_unknown_collection_is_refused(tmp_path):
    with pytest.raises(CatalogueError, match="allowed: \\['crop-maps'"):
        publish_run_items(tmp_path, "charts", "2026-01-25", [])
