from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from scipy.ndimage import binary_erosion

from tasks.config.polar import PredictConfig
from tasks.polar.predict import (
    SceneModelMismatch,
    ScenePredictor,
    predict_scene,
    run_predict,
    scene_model_mismatches,
)
from tasks.polar.quicklook import CHART_LAND, CHART_NODATA
from tasks.polar.train import input_contract, load_model, train_model
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained_model(polar_patch_dataset: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model_root")
    cfg = tiny_polar_config(root, train={"model": "adhoc_cnn", "epochs": 6, "augment": False,
                                         "width_multiplier": 0.25, "learning_rate": 3e-3,
                                         "early_stopping_patience": 3})
    return Path(train_model(cfg, Path(polar_patch_dataset["datasets"][32]))["model_dir"])


def test_predict_scene_products(trained_model: Path, polar_scene_pair, tmp_path: Path) -> None:
    scene_zarr, label_zarr = polar_scene_pair
    result = predict_scene(trained_model, scene_zarr, tmp_path, PredictConfig(tile=96))
    with rasterio.open(result["chart"]) as src:
        assert src.driver == "GTiff" and src.crs.to_epsg() == 3413
        assert src.transform.to_gdal() == tuple(xr.open_zarr(scene_zarr).attrs["transform"])
        assert src.overviews(1) or src.width <= 512
        chart = src.read(1)
        assert src.tags()["class_scheme"] == "binary"
    scene = xr.open_zarr(scene_zarr)
    land = scene["land_mask"].values == 1
    valid = scene["valid_mask"].values == 1
    assert (chart[land] == CHART_LAND).all()
    assert (chart[~valid & ~land] == CHART_NODATA).all()
    assert set(np.unique(chart[valid & ~land])) <= {1, 2}
    # agreement with the binary labels where labelled
    labels = xr.open_zarr(label_zarr)["label_binary"].values
    scored = valid & ~land & (labels > 0)
    # away from class boundaries (where windows mix classes) both classes are found
    interior = [binary_erosion(labels == c, np.ones((33, 33), bool)) & scored for c in (1, 2)]
    recall = [(chart[inside] == c).mean() for c, inside in zip((1, 2), interior, strict=True)]
    assert min(recall) > 0.9, recall
    assert (chart[scored] == labels[scored]).mean() > 0.85
    with rasterio.open(result["chart"]) as src:
        assert src.profile["blockxsize"] == 512 or src.width < 512
    geo = json.loads(Path(result["polygons"]).read_text())
    assert "crs" not in geo  # RFC 7946: CRS84 lon/lat; the EPSG:3413 polygons are in the parquet
    assert Path(result["polygons"]).with_suffix(".parquet").is_file()
    names = {f["properties"]["ice_class"] for f in geo["features"]}
    assert {"water", "ice"} <= names and "land" not in names  # land is masked
    assert Path(result["quicklook"]).stat().st_size > 1000
    assert result["pixel_counts"]["land"] == int(land.sum())


def test_dense_matches_per_window_classification(trained_model: Path, polar_scene_pair) -> None:
    loaded = load_model(trained_model)
    scene = xr.open_zarr(polar_scene_pair[0])
    predictor = ScenePredictor(loaded, tile=64)
    cells = predictor.class_map(scene, progress=False)
    assert cells.shape == (32, 32)
    big_tile = ScenePredictor(loaded, tile=1024).class_map(scene, progress=False)
    # tiling with halos does not change the result
    np.testing.assert_array_equal(cells, big_tile)
    rng = np.random.default_rng(0)
    sample = np.stack([rng.integers(2, 28, 60), rng.integers(4, 26, 60)], axis=1)
    naive = predictor.classify_windows(scene, sample)
    assert (naive == cells[sample[:, 0], sample[:, 1]]).mean() > 0.9


def test_run_predict_atomic_day(trained_model: Path, polar_scene_pair, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, predict={"model": str(trained_model), "tile": 128})
    day_dir = tmp_path / "polar" / "harmonise" / "2026-11-25"
    day_dir.mkdir(parents=True)
    shutil.copytree(polar_scene_pair[0], day_dir / polar_scene_pair[0].name)
    first = run_predict(cfg, "2026-11-25")
    out = Path(first["out_dir"])
    assert out == tmp_path / "polar" / "predict" / "2026-11-25"
    assert (out / "manifest.json").is_file()
    assert all(Path(first["products"][0][k]).is_file() for k in ("chart", "quicklook", "polygons"))
    before = sorted(p.name for p in out.iterdir())
    # a broken scene makes the re-run fail and leaves the published chart in place
    broken = day_dir / "S1Z_BROKEN.zarr"
    xr.open_zarr(polar_scene_pair[0]).drop_vars("land_mask").to_zarr(broken)
    with pytest.raises(ValueError, match="land_mask"):
        run_predict(cfg, "2026-11-25")
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(FileNotFoundError, match="no harmonised scenes for 2026-11-26"):
        run_predict(cfg, "2026-11-26")
    latest_cfg = tiny_polar_config(tmp_path / "empty")
    (tmp_path / "empty" / "polar" / "harmonise" / "2026-11-25").mkdir(parents=True)
    shutil.copytree(polar_scene_pair[0], tmp_path / "empty" / "polar" / "harmonise" /
                    "2026-11-25" / "s.zarr")
    with pytest.raises(FileNotFoundError, match="no trained model"):
        run_predict(latest_cfg, "2026-11-25")


def test_predict_model_choice_resolves_relative_to_eeflow_home(tmp_path, monkeypatch):
    from tasks.config.common import validate_config
    from tasks.polar.predict import resolve_model_dir

    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    (tmp_path / "models" / "m1").mkdir(parents=True)
    cfg = validate_config({"use_case": "polar", "predict": {"model": "models/m1"}})
    assert resolve_model_dir(cfg) == tmp_path / "models" / "m1"
    assert resolve_model_dir(cfg, tmp_path / "other") == tmp_path / "other"
    cfg.predict.model = "models/missing"
    with pytest.raises(FileNotFoundError, match="registry:<alias>"):
        resolve_model_dir(cfg)
    cfg.predict.model = "registry:"  # the shared registry resolver checks the form first
    with pytest.raises(ValueError, match=r"'registry:' is incomplete; give an alias"):
        resolve_model_dir(cfg)


# ------------------------------------------------------------------ scene / model guard (issue 13)
def _variant(scene_zarr: Path, out: Path, attrs: dict | None = None,
             nan_bands: tuple[str, ...] = (), drop_attrs: tuple[str, ...] = ()) -> Path:
    """A copy of ``scene_zarr`` with attributes changed / dropped and bands set to NaN."""
    scene = xr.open_zarr(scene_zarr).load()
    scene.attrs.update(attrs or {})
    for key in drop_attrs:
        scene.attrs.pop(key, None)
    for band in nan_bands:
        scene["backscatter"].loc[{"band": band}] = np.nan
    for var in scene.variables.values():
        var.encoding.clear()
    scene.to_zarr(out, mode="w")
    return out


def test_model_card_records_input_contract(trained_model: Path) -> None:
    card = json.loads((trained_model / "model.json").read_text())
    contract = card["input_contract"]
    assert contract["modes"] == ["EW"]  # from the training scenes' names S1A_EW_GRDM_...
    assert contract["pixel_spacings_m"] == [40.0]
    assert contract["crs"] == ["EPSG:3413"]
    assert contract["bands"] == card["bands"] and contract["patch_size"] == card["patch_size"]
    assert set(contract["source"].values()) == {"training scenes"}


def test_predict_refuses_iw_mislabelled_scene(trained_model, polar_scene_pair, tmp_path) -> None:
    """The issue's case: an IW VV raster named HH/HV, 20 m, UTM, no incidence -> refused."""
    scene = _variant(polar_scene_pair[0], tmp_path / "iw.zarr", nan_bands=("incidence",),
                     attrs={"mode": "IW", "scene_id": "S1A_IW_GRDH_1SDV_FAKE",
                            "pixel_spacing_m": 20.0, "crs": "EPSG:32633"})
    with pytest.raises(SceneModelMismatch) as err:
        predict_scene(trained_model, scene, tmp_path / "out", PredictConfig(tile=96))
    message = str(err.value)
    assert str(scene) in message and str(trained_model) in message
    assert "acquisition mode: model expects EW, scene is IW" in message
    assert "pixel spacing: model expects 40 m, scene has 20 m" in message
    assert "CRS: model expects EPSG:3413, scene is EPSG:32633" in message
    assert "harmonise.required_mode" in message  # what to do
    assert not (tmp_path / "out").exists()  # nothing published


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"mode": "IW"}, "acquisition mode: model expects EW, scene is IW"),
    ({"pixel_spacing_m": 20.0}, "pixel spacing: model expects 40 m, scene has 20 m"),
    ({"crs": "EPSG:3995"}, "CRS: model expects EPSG:3413, scene is EPSG:3995"),
])
def test_predict_refuses_each_mismatching_field(trained_model, polar_scene_pair, tmp_path,
                                                attrs, expected) -> None:
    scene = _variant(polar_scene_pair[0], tmp_path / "v.zarr", attrs=attrs)
    with pytest.raises(SceneModelMismatch, match="does not fit model") as err:
        predict_scene(trained_model, scene, tmp_path / "out", PredictConfig(tile=96))
    assert expected in str(err.value)
    assert str(err.value).count("\n  - ") == 1  # only that field


def test_predict_refuses_unknown_mode(trained_model, polar_scene_pair, tmp_path) -> None:
    scene = _variant(polar_scene_pair[0], tmp_path / "v.zarr", attrs={"scene_id": "scene_x"},
                     drop_attrs=("mode",))
    with pytest.raises(SceneModelMismatch, match=r"scene is unknown \(no 'mode' attribute"):
        predict_scene(trained_model, scene, tmp_path / "out", PredictConfig(tile=96))


def test_predict_refuses_missing_band(trained_model, polar_scene_pair, tmp_path) -> None:
    scene = xr.open_zarr(polar_scene_pair[0]).load()
    scene = scene.isel(band=[0, 1]).assign_coords(band=np.array(["HH", "VV"], dtype=object))
    for var in scene.variables.values():
        var.encoding.clear()
    scene.to_zarr(tmp_path / "vv.zarr")
    with pytest.raises(SceneModelMismatch) as err:
        predict_scene(trained_model, tmp_path / "vv.zarr", tmp_path / "out", PredictConfig())
    assert "bands: model needs ['HH', 'HV', 'incidence']" in str(err.value)
    assert "['HV', 'incidence'] missing" in str(err.value)


@pytest.mark.parametrize("band", ["HV", "incidence"])
def test_predict_refuses_all_nan_band(trained_model, polar_scene_pair, tmp_path, band) -> None:
    scene = _variant(polar_scene_pair[0], tmp_path / "nan.zarr", nan_bands=(band,))
    with pytest.raises(SceneModelMismatch, match=rf"\['{band}'\] are all NaN") as err:
        predict_scene(trained_model, scene, tmp_path / "out", PredictConfig(tile=64))
    assert "S1A_EW_GRDM_TEST0" in str(err.value) and "Re-run harmonise" in str(err.value)
    assert not any((tmp_path / "out").glob("*chart*"))


def test_old_model_card_without_contract(trained_model, polar_scene_pair, tmp_path) -> None:
    """A card written before input_contract: derived from its training set, else the defaults."""
    old = tmp_path / "old_model"
    shutil.copytree(trained_model, old)
    card = json.loads((old / "model.json").read_text())
    del card["input_contract"]
    (old / "model.json").write_text(json.dumps(card))
    assert input_contract(card)["source"]["modes"] == "training scenes"
    card["dataset_path"] = str(tmp_path / "gone.zarr")
    (old / "model.json").write_text(json.dumps(card))
    assert input_contract(card)["modes"] == ["EW"]
    assert input_contract(card)["source"]["modes"] == "harmonise settings"
    predict_scene(old, polar_scene_pair[0], tmp_path / "ok", PredictConfig(tile=128))
    scene = _variant(polar_scene_pair[0], tmp_path / "iw.zarr", attrs={"mode": "IW"})
    with pytest.raises(SceneModelMismatch, match="model expects EW, scene is IW"):
        predict_scene(old, scene, tmp_path / "out", PredictConfig(tile=128))


def test_scene_model_mismatches_pure() -> None:
    contract = {"modes": ["EW"], "pixel_spacings_m": [40.0], "crs": ["EPSG:3413"],
                "bands": ["HH", "HV", "incidence"]}
    attrs = {"scene_id": "S1B_EW_GRDM_1SDH_X", "crs": "epsg:3413",
             "transform": [0, 40.2, 0, 0, 0, -40.2]}
    assert scene_model_mismatches(attrs, ["HH", "HV", "incidence"], contract) == []
    wkt = 'PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",' \
          '6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],' \
          'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],' \
          'PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],' \
          'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],' \
          'AUTHORITY["EPSG","32633"]]'
    problems = scene_model_mismatches({**attrs, "crs": wkt}, ["HH", "HV", "incidence"], contract)
    assert problems == ["CRS: model expects EPSG:3413, scene is EPSG:32633"]
