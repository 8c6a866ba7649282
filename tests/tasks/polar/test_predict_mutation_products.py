"""predict's chart COG, class polygons, predict_scene and run_predict against hand computations.

The hand-made model and scene of :mod:`test_predict_mutation_dense` give a class map known cell by
cell; here the products written from it are checked value by value: every chart pixel (cell class
+ 1, no data where not valid, 255 on land), transform, CRS, nodata, tags, the pixel counts; the
polygons of a hand-drawn chart (classes, areas, projected and lon/lat coordinates); the region
cut; the results and manifests of ``predict_scene`` / ``run_predict``; the exact error messages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer
from shapely.geometry import box, shape

from tasks.config.common import config_hash
from tasks.config.polar import PredictConfig
from tasks.polar import predict as pr
from tasks.polar.train import load_model
from tasks.region import Region, RegionError
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config
from tests.tasks.polar.test_predict_mutation_dense import (
    CRS,
    HEIGHT,
    SCENE_ID,
    TRANSFORM,
    WIDTH,
    expected_cells,
    scene_arrays,
    write_model,
    write_scene,
)

DAY = "2026-11-25"
PIXEL_KM2 = 0.04 * 0.04
TO_LONLAT = Transformer.from_crs(CRS, "OGC:CRS84", always_xy=True)


def expected_chart(arrays: dict[str, np.ndarray]) -> np.ndarray:
    cells = expected_cells(arrays)
    chart = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)[:HEIGHT, :WIDTH] + 1
    chart[arrays["valid"] == 0] = 0
    chart[arrays["land"] == 1] = 255
    return chart.astype(np.uint8)


def counts_of(chart: np.ndarray) -> dict[str, int]:
    return {"water": int((chart == 1).sum()), "ice": int((chart == 2).sum()),
            "land": int((chart == 255).sum()), "no_data": int((chart == 0).sum())}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("models") / "adhoc_cnn_16_binary_hand")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return scene_arrays()


@pytest.fixture(scope="module")
def scene_zarr(tmp_path_factory: pytest.TempPathFactory, arrays: dict[str, np.ndarray]) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / f"{SCENE_ID}.zarr", arrays)


def region_box(c0: float, r0: float, c1: float, r1: float) -> Any:
    """The scene-grid box of columns c0..c1, rows r0..r1 (fractions allowed), EPSG:3413."""
    x0, y0 = TRANSFORM[0], TRANSFORM[3]
    return box(x0 + 40 * c0, y0 - 40 * r1, x0 + 40 * c1, y0 - 40 * r0)


def lonlat_wkt(polygon: Any) -> str:
    from shapely import segmentize, transform

    dense = segmentize(polygon, 20.0)
    lonlat = transform(dense, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1])))
    return str(lonlat.wkt)


def test_write_chart_cog_pixels_georeference_tags_and_counts(
        scene_zarr: Path, arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    scene = xr.open_zarr(scene_zarr)
    cells = expected_cells(arrays)
    want = expected_chart(arrays)
    for strip_rows, name in ((20, "a"), (1024, "b"), (3, "c")):
        out = tmp_path / f"{name}_chart.tif"
        counts = pr.write_chart_cog(scene, cells, 8, out, CRS, tuple(TRANSFORM), "binary",
                                    strip_rows=strip_rows)
        assert counts == counts_of(want)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(name)) == [out.name]
        with rasterio.open(out) as src:
            np.testing.assert_array_equal(src.read(1), want)
            assert src.transform.to_gdal() == tuple(TRANSFORM)
            assert src.crs.to_epsg() == 3413 and src.nodata == 0 and src.dtypes == ("uint8",)
            assert (src.count, src.height, src.width) == (1, HEIGHT, WIDTH)
            assert src.tags()["class_scheme"] == "binary"
            assert json.loads(src.tags()["classes"]) == {"1": "water", "2": "ice",
                                                         "255": "land"}
            assert src.profile["compress"] == "deflate"
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    counts = pr.write_chart_cog(scene, np.full_like(cells, 3), 8, tmp_path / "f.tif", CRS,
                                tuple(TRANSFORM), "five_class")
    assert counts["land"] == counts_of(want)["land"]
    assert counts["no_data"] == counts_of(want)["no_data"]
    assert sum(counts.values()) == HEIGHT * WIDTH
    assert counts == {**{k: 0 for k in counts}, "land": counts["land"],
                      "no_data": counts["no_data"], next(k for k, v in counts.items()
                                                         if v > 1000 and k != "no_data"):
                          HEIGHT * WIDTH - counts["land"] - counts["no_data"]}
    with rasterio.open(tmp_path / "f.tif") as src:
        assert set(np.unique(src.read(1))) == {0, 4, 255}


def _chart_tif(path: Path, chart: np.ndarray, crs: str | None = CRS) -> Path:
    from affine import Affine

    profile = {"driver": "GTiff", "height": chart.shape[0], "width": chart.shape[1], "count": 1,
               "dtype": "uint8", "transform": Affine.from_gdal(*TRANSFORM), "nodata": 0}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(chart, 1)
    return path


def hand_chart() -> np.ndarray:
    chart = np.ones((20, 30), np.uint8)  # water
    chart[:, :2] = 0  # no data
    chart[4:10, 8:20] = 2  # ice: 72 pixels
    chart[0:4, 24:30] = 255  # land: 24 pixels
    chart[12:16, 22:26] = 7  # a code the scheme does not know: 16 pixels
    return chart


@pytest.mark.parametrize("max_pixels", [2048, 15])
def test_class_polygons_classes_areas_and_coordinates(tmp_path: Path, max_pixels: int) -> None:
    import geopandas as gpd

    tif = _chart_tif(tmp_path / "hand_chart.tif", hand_chart())
    out = tmp_path / "hand_chart.geojson"
    n = pr.write_class_polygons(tif, out, "binary", max_pixels=max_pixels)
    doc = json.loads(out.read_text())
    assert n == len(doc["features"]) == 3
    assert doc["type"] == "FeatureCollection" and doc["name"] == "hand_chart" and "crs" not in doc
    props = sorted((f["properties"] for f in doc["features"]), key=lambda p: p["class_code"])
    assert props == [
        {"class_code": 1, "ice_class": "water", "area_km2": round((600 - 40 - 72 - 24 - 16)
                                                                   * PIXEL_KM2, 4)},
        {"class_code": 2, "ice_class": "ice", "area_km2": round(72 * PIXEL_KM2, 4)},
        {"class_code": 7, "ice_class": "unknown", "area_km2": round(16 * PIXEL_KM2, 4)},
    ]
    projected = gpd.read_parquet(out.with_suffix(".parquet"))
    assert projected.crs.to_epsg() == 3413 and len(projected) == 3
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out.with_suffix(".parquet")).metadata[b"geo"])
    column = meta["columns"][meta["primary_column"]]
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 3413}
    assert "covering" in column  # the bbox covering column of write_covering_bbox
    ice = projected[projected["ice_class"] == "ice"].geometry.iloc[0]
    x0, y0 = TRANSFORM[0], TRANSFORM[3]
    assert ice.equals(box(x0 + 8 * 40, y0 - 10 * 40, x0 + 20 * 40, y0 - 4 * 40))
    water = projected[projected["class_code"] == 1].geometry.iloc[0]
    assert len(water.interiors) == 2 and water.area == pytest.approx(448 * 1600)
    # the lon/lat polygon: the projected one's corners in CRS84, counter-clockwise
    ice_ll = shape(next(f["geometry"] for f in doc["features"]
                        if f["properties"]["class_code"] == 2))
    assert ice_ll.exterior.is_ccw
    lon, lat = TO_LONLAT.transform([x0 + 320, x0 + 800, x0 + 800, x0 + 320],
                                   [y0 - 400, y0 - 400, y0 - 160, y0 - 160])
    assert ice_ll.bounds == pytest.approx((min(lon), min(lat), max(lon), max(lat)), abs=2e-6)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_class_polygons_of_a_decimated_chart_cover_its_extent(tmp_path: Path) -> None:
    import geopandas as gpd

    tif = _chart_tif(tmp_path / "water.tif", np.ones((21, 30), np.uint8))
    out = tmp_path / "water.geojson"
    assert pr.write_class_polygons(tif, out, "binary", max_pixels=15) == 1  # 10 x 15 read
    (polygon,) = gpd.read_parquet(out.with_suffix(".parquet")).geometry
    x0, y0 = TRANSFORM[0], TRANSFORM[3]
    assert polygon.bounds == pytest.approx((x0, y0 - 21 * 40, x0 + 30 * 40, y0))


def test_class_polygons_in_a_crs_without_epsg_code(tmp_path: Path) -> None:
    import geopandas as gpd
    from pyproj import CRS as ProjCRS

    custom = "+proj=stere +lat_0=90 +lat_ts=71 +lon_0=-40 +datum=WGS84 +units=m +no_defs"
    tif = _chart_tif(tmp_path / "custom.tif", hand_chart(), crs=custom)
    assert pr.write_class_polygons(tif, tmp_path / "custom.geojson", "binary") == 3
    projected = gpd.read_parquet(tmp_path / "custom.parquet")
    assert projected.crs is not None and projected.crs.to_epsg() is None
    assert projected.crs.equals(ProjCRS.from_user_input(custom))


def test_class_polygons_clipped_to_a_region_and_a_chart_without_crs(tmp_path: Path) -> None:
    import geopandas as gpd

    tif = _chart_tif(tmp_path / "hand_chart.tif", hand_chart())
    out = tmp_path / "clipped.geojson"
    clip = region_box(10, 0, 30, 20)  # the right two thirds
    assert pr.write_class_polygons(tif, out, "binary", clip_to=clip) == 3
    projected = gpd.read_parquet(out.with_suffix(".parquet"))
    areas = dict(zip(projected["ice_class"], projected["area_km2"], strict=True))
    assert areas == {"water": round((400 - 60 - 24 - 16) * PIXEL_KM2, 4),
                     "ice": round(60 * PIXEL_KM2, 4), "unknown": round(16 * PIXEL_KM2, 4)}
    assert pr.write_class_polygons(tif, tmp_path / "none.geojson", "binary",
                                   clip_to=region_box(0, 0, 2, 20)) == 0  # no data only
    bare = _chart_tif(tmp_path / "bare.tif", hand_chart(), crs=None)
    with pytest.raises(ValueError) as info:
        pr.write_class_polygons(bare, tmp_path / "bare.geojson", "binary")
    assert str(info.value) == f"{bare}: chart without CRS; cannot write lon/lat polygons"


def test_predict_scene_products_and_result(model_dir: Path, scene_zarr: Path,
                                           arrays: dict[str, np.ndarray], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    titles: list[str] = []
    render = pr.render_quicklook

    def recording(chart: Path, png: Path, scheme: str, title: str = "") -> Path:
        titles.append(f"{chart.name} {scheme} {title}")
        return render(chart, png, scheme, title=title)

    monkeypatch.setattr(pr, "render_quicklook", recording)
    out = tmp_path / "nested" / "out"  # parents are made
    caplog.set_level("INFO", logger="tasks.polar.predict")
    result = pr.predict_scene(model_dir, scene_zarr, out, PredictConfig(tile=64))
    want = expected_chart(arrays)
    assert set(result) == {"scene_id", "chart", "quicklook", "polygons", "n_polygons",
                           "pixel_counts", "inference_seconds", "precision",
                           "calibration_seconds", "total_seconds"}
    assert result["scene_id"] == SCENE_ID
    assert result["chart"] == str(out / f"{SCENE_ID}_chart.tif")
    assert result["quicklook"] == str(out / f"{SCENE_ID}_quicklook.png")
    assert result["polygons"] == str(out / f"{SCENE_ID}_chart.geojson")
    assert result["pixel_counts"] == counts_of(want)
    assert result["precision"] == "fp32" and result["calibration_seconds"] == 0.0
    assert 0.0 <= result["inference_seconds"] <= result["total_seconds"] < 60
    for key in ("inference_seconds", "calibration_seconds", "total_seconds"):
        assert result[key] == round(result[key], 2)
    with rasterio.open(result["chart"]) as src:
        np.testing.assert_array_equal(src.read(1), want)
        assert src.transform.to_gdal() == tuple(TRANSFORM)
    features = json.loads(Path(result["polygons"]).read_text())["features"]
    assert result["n_polygons"] == len(features) > 2
    assert {f["properties"]["ice_class"] for f in features} == {"water", "ice"}
    assert titles == [f"{SCENE_ID}_chart.tif binary {SCENE_ID} - adhoc_cnn binary"]
    assert Path(result["quicklook"]).stat().st_size > 100
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{SCENE_ID}_chart.tif", f"{SCENE_ID}_quicklook.png", f"{SCENE_ID}_chart.geojson",
         f"{SCENE_ID}_chart.parquet"])
    import re

    (line,) = [r.getMessage() for r in caplog.records if r.name == "tasks.polar.predict"]
    logged = re.fullmatch(rf"predicted {SCENE_ID} in (\d+\.\d) s \(inference (\d+\.\d) s\): "
                          + re.escape(str(counts_of(want))), line)
    assert logged, line
    assert float(logged[2]) <= float(logged[1]) <= result["total_seconds"] + 0.05
    # a loaded model gives the same chart; a scene without scene_id is named by its folder
    loaded = load_model(model_dir)
    anonymous = tmp_path / "anon.zarr"
    write_scene(anonymous, arrays)
    import zarr

    group = zarr.open_group(str(anonymous), mode="r+")
    del group.attrs["scene_id"]
    again = pr.predict_scene(loaded, anonymous, tmp_path / "again", PredictConfig(tile=128))
    assert again["scene_id"] == "anon" and again["pixel_counts"] == counts_of(want)


def test_predict_scene_refuses_missing_inputs(model_dir: Path, scene_zarr: Path,
                                              tmp_path: Path) -> None:
    missing = tmp_path / "nothing.zarr"
    with pytest.raises(FileNotFoundError) as info:
        pr.predict_scene(model_dir, missing, tmp_path / "o", PredictConfig())
    assert str(info.value) == f"harmonised scene {missing} does not exist"
    for var in ("backscatter", "land_mask", "valid_mask"):
        partial = tmp_path / f"no_{var}.zarr"
        xr.open_zarr(scene_zarr).drop_vars(var).to_zarr(partial)
        with pytest.raises(ValueError) as refused:
            pr.predict_scene(model_dir, partial, tmp_path / "o", PredictConfig())
        assert str(refused.value) == (f"{partial}: variable {var!r} missing; not a harmonised "
                                   "scene")
    assert not (tmp_path / "o").exists()
    other = write_model(tmp_path / "iw_model", input_contract={"modes": ["IW"]})
    with pytest.raises(pr.SceneModelMismatch, match="acquisition mode: model expects IW, "
                                                     "scene is EW"):
        pr.predict_scene(other, scene_zarr, tmp_path / "o", PredictConfig())
    assert not (tmp_path / "o").exists()


def test_predict_scene_cut_to_a_region(model_dir: Path, scene_zarr: Path,
                                       arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    region = Region(__import__("shapely").from_wkt(lonlat_wkt(region_box(20.25, 10.25,
                                                                         60.25, 50.25))))
    out = tmp_path / "cut"
    result = pr.predict_scene(model_dir, scene_zarr, out, PredictConfig(tile=64), region=region)
    want = expected_chart(arrays)[10:51, 20:61].copy()
    want[-1, :] = 0
    want[:, -1] = 0  # cells whose centre is outside the region
    with rasterio.open(result["chart"]) as src:
        np.testing.assert_array_equal(src.read(1), want)
        assert src.transform.to_gdal() == pytest.approx(
            (TRANSFORM[0] + 800, 40.0, 0.0, TRANSFORM[3] - 400, 0.0, -40.0))
        assert src.crs.to_epsg() == 3413 and src.tags()["class_scheme"] == "binary"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert result["pixel_counts"] == counts_of(want)
    record = result["region"]
    assert record["wkt"] == region.wkt and record["crs"] == "OGC:CRS84"
    assert record["cut"]["window"] == [20, 10, 41, 41]
    assert record["cut"]["cells_outside_region"] == 81
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{SCENE_ID}_chart.tif", f"{SCENE_ID}_quicklook.png", f"{SCENE_ID}_chart.geojson",
         f"{SCENE_ID}_chart.parquet"])
    import geopandas as gpd

    polygons = gpd.read_parquet(out / f"{SCENE_ID}_chart.parquet")
    clip = region_box(20.25, 10.25, 60.25, 50.25)
    assert all(clip.buffer(1.0).contains(g) for g in polygons.geometry)
    far = Region(box(10.0, 10.0, 11.0, 11.0))
    with pytest.raises(RegionError, match=f"does not intersect scene {SCENE_ID} "
                                          f"\\({scene_zarr}\\)"):
        pr.predict_scene(model_dir, scene_zarr, tmp_path / "far", PredictConfig(), region=far)
    assert not (tmp_path / "far").exists()


def _day(root: Path, scene_zarr: Path, *names: str) -> Path:
    day_dir = root / "polar" / "harmonise" / DAY
    day_dir.mkdir(parents=True)
    for name in names:
        shutil.copytree(scene_zarr, day_dir / name)
    return day_dir


def test_run_predict_day_manifest_and_result(model_dir: Path, scene_zarr: Path,
                                             arrays: dict[str, np.ndarray],
                                             tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, predict={"model": str(model_dir), "tile": 64})
    day_dir = _day(tmp_path, scene_zarr, "b.zarr", "a.zarr")
    (day_dir / "notes.txt").write_text("not a scene")
    result = pr.run_predict(cfg, DAY)
    final = tmp_path / "polar" / "predict" / DAY
    assert result["out_dir"] == str(final) and result["day"] == DAY
    assert result["model_dir"] == str(model_dir)
    want = counts_of(expected_chart(arrays))
    products = result["products"]
    assert [p["scene_id"] for p in products] == [SCENE_ID, SCENE_ID]
    assert all(p["pixel_counts"] == want for p in products)
    assert products[0]["chart"] == str(final / f"{SCENE_ID}_chart.tif")
    assert products[0]["quicklook"] == str(final / f"{SCENE_ID}_quicklook.png")
    assert products[0]["polygons"] == str(final / f"{SCENE_ID}_chart.geojson")
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["stage"] == "predict"
    assert manifest["inputs"] == [str(day_dir / "a.zarr"), str(day_dir / "b.zarr")]
    assert manifest["config_hash"] == config_hash(cfg.predict)
    assert manifest["counts"] == {"scenes": 2}
    assert manifest["model_dir"] == str(model_dir)
    assert manifest["products"] == products
    assert "region" not in manifest and "scenes_outside_region" not in manifest
    # another model given by argument wins over predict.model
    second = write_model(tmp_path / "second")
    assert pr.run_predict(cfg, DAY, model_dir=second)["model_dir"] == str(second)


def test_run_predict_with_a_region(model_dir: Path, scene_zarr: Path, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    wkt = lonlat_wkt(region_box(20.25, 10.25, 60.25, 50.25))
    cfg = tiny_polar_config(tmp_path, predict={"model": str(model_dir), "tile": 64},
                            ingest={"catalogue": {"area": wkt}})
    day_dir = _day(tmp_path, scene_zarr, "a.zarr")
    far = xr.open_zarr(scene_zarr)
    far.attrs["transform"] = [5_000.0, 40.0, 0.0, -500_000.0, 0.0, -40.0]
    far.attrs["scene_id"] = "FAR"
    far = far.drop_vars(["x", "y"])
    for var in far.variables.values():
        var.encoding.clear()
    far.to_zarr(day_dir / "b.zarr")
    caplog.set_level("WARNING", logger="tasks.polar.predict")
    result = pr.run_predict(cfg, DAY)
    assert [p["scene_id"] for p in result["products"]] == [SCENE_ID]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "tasks.polar.predict"]
    assert f"does not intersect scene FAR ({day_dir / 'b.zarr'})" in warning
    manifest = json.loads((Path(result["out_dir"]) / "manifest.json").read_text())
    assert manifest["counts"] == {"scenes": 2} and manifest["scenes_outside_region"] == 1
    assert manifest["region"] == Region.from_area(wkt).record()  # type: ignore[union-attr]
    assert result["products"][0]["region"]["cut"]["window"] == [20, 10, 41, 41]
    # a region that meets none of the day's scenes: the reasons of every scene
    away = box(10.0, 10.0, 11.0, 11.0).wkt
    cfg_away = tiny_polar_config(tmp_path, predict={"model": str(model_dir), "tile": 64},
                                 ingest={"catalogue": {"area": away}})
    with pytest.raises(RegionError) as info:
        pr.run_predict(cfg_away, DAY)
    lines = str(info.value).split("\n")
    assert len(lines) == 2
    assert f"does not intersect scene {SCENE_ID} ({day_dir / 'a.zarr'})" in lines[0]
    assert f"does not intersect scene FAR ({day_dir / 'b.zarr'})" in lines[1]


def test_run_predict_errors(model_dir: Path, scene_zarr: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_polar_config(tmp_path, predict={"model": str(model_dir), "tile": 64})
    with pytest.raises(FileNotFoundError) as info:
        pr.run_predict(cfg, DAY)
    scene_dir = tmp_path / "polar" / "harmonise" / DAY
    assert str(info.value) == (f"no harmonised scenes for {DAY} in {scene_dir}; run the "
                               "harmonise stage for that day first")
    _day(tmp_path, scene_zarr, "a.zarr")
    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    gone = tiny_polar_config(tmp_path, predict={"model": "models/gone"})
    with pytest.raises(FileNotFoundError) as info:
        pr.run_predict(gone, DAY)
    assert str(info.value) == (
        f"predict.model 'models/gone' ({tmp_path / 'models' / 'gone'}) does not exist; give a "
        "model folder, 'latest', 'registry:<alias>' or 'best:<metric>'")
    assert not (tmp_path / "polar" / "predict").exists()


def test_resolve_model_dir_choices(model_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path / "home"))
    cfg = tiny_polar_config(tmp_path, predict={"model": "models/m"})
    assert pr.resolve_model_dir(cfg, tmp_path / "given") == tmp_path / "given"
    (tmp_path / "home" / "models" / "m").mkdir(parents=True)
    assert pr.resolve_model_dir(cfg) == tmp_path / "home" / "models" / "m"
    absolute = tiny_polar_config(tmp_path, predict={"model": str(model_dir)})
    assert pr.resolve_model_dir(absolute) == model_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tilde = tiny_polar_config(tmp_path, predict={"model": "~/models/m"})
    assert pr.resolve_model_dir(tilde) == tmp_path / "home" / "models" / "m"
    # latest: the newest model folder under {root}/polar/models
    write_model(tmp_path / "polar" / "models" / "old", created="2026-11-01T00:00:00+00:00")
    newest = write_model(tmp_path / "polar" / "models" / "new")
    latest = tiny_polar_config(tmp_path)
    assert latest.predict.model == "latest"
    assert pr.resolve_model_dir(latest) == newest
    seen: list[tuple[str, str, Any]] = []

    def registry(use_case: str, choice: str, cfg: Any) -> Path:
        seen.append((use_case, choice, cfg))
        return tmp_path / "from_registry"

    monkeypatch.setattr(pr, "resolve_registry_reference", registry)
    production = tiny_polar_config(tmp_path, predict={"model": "registry:production"})
    assert pr.resolve_model_dir(production) == tmp_path / "from_registry"
    assert seen == [("polar", "registry:production", production)]


def test_a_chart_larger_than_a_block_is_a_tiled_cog_with_nearest_overviews(
        tmp_path: Path) -> None:
    size, stride = 1040, 8
    rng = np.random.default_rng(3)
    cells = rng.integers(0, 2, (size // stride, size // stride)).astype(np.uint8)
    land = np.zeros((size, size), np.uint8)
    land[:101, :99] = 1  # odd edges: an averaging overview would mix codes there
    valid = np.ones((size, size), np.uint8)
    valid[-63:, :] = 0
    scene = xr.Dataset({"land_mask": (("y", "x"), land), "valid_mask": (("y", "x"), valid)})
    out = tmp_path / "big_chart.tif"
    counts = pr.write_chart_cog(scene, cells, stride, out, CRS, tuple(TRANSFORM), "binary")
    want = np.repeat(np.repeat(cells, stride, axis=0), stride, axis=1) + 1
    want[valid == 0] = 0
    want[land == 1] = 255
    assert counts == counts_of(want)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), want)
        assert src.block_shapes == [(512, 512)]
        assert src.profile["compress"] == "deflate"
        assert src.overviews(1) == [2, 4]
        overview = src.read(1, out_shape=(size // 2, size // 2))
        assert set(np.unique(overview)) == {0, 1, 2, 255}  # nearest: only chart codes
        np.testing.assert_array_equal(overview, want[::2, ::2])


def test_a_region_cut_of_a_large_chart_keeps_nearest_overviews(tmp_path: Path) -> None:
    size, stride = 1040, 8
    rng = np.random.default_rng(4)
    cells = rng.integers(0, 2, (size // stride, size // stride)).astype(np.uint8)
    land = np.zeros((size, size), np.uint8)
    land[:101, :99] = 1
    scene = xr.Dataset({"land_mask": (("y", "x"), land),
                        "valid_mask": (("y", "x"), np.ones((size, size), np.uint8))})
    out = tmp_path / "cut_chart.tif"
    counts, cut = pr._write_cut_chart(scene, cells, stride, out, CRS, tuple(TRANSFORM), "binary",
                                      region_box(0, 0, 1030, 1030))
    want = np.repeat(np.repeat(cells, stride, axis=0), stride, axis=1)[:1030, :1030] + 1
    want[land[:1030, :1030] == 1] = 255
    assert cut["window"] == [0, 0, 1030, 1030] and counts == counts_of(want)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), want)
        assert src.block_shapes == [(512, 512)] and src.profile["compress"] == "deflate"
        assert src.overviews(1) == [2, 4]
        np.testing.assert_array_equal(src.read(1, out_shape=(515, 515)), want[::2, ::2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut_chart.tif"]
