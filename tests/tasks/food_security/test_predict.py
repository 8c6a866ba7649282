import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest_ml import tiny_config as shared_tiny_config  # noqa: E402
from conftest_ml import write_sample_year, write_tile_year  # noqa: E402

from tasks.food_security.predict import (  # noqa: E402
    NODATA_CLASS,
    PredictInputError,
    TileComposites,
    classify_pixels,
    load_crop_model,
    resolve_model_dir,
    run_predict,
)
from tasks.food_security.train import train_crop_model  # noqa: E402

RUN_DATE = "2017-10-15"
YEAR = "2017-09_2018-08"


#: 5-row blocks: block seams cut through the 8-pixel fields, so region merging is exercised.
tiny_config = partial(shared_tiny_config, block_rows=5, predict_batch_size=100)


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fs")
    write_sample_year(root, RUN_DATE, n_train=300, n_val=80, n_test=40)
    write_tile_year(root, RUN_DATE, size=40)
    train_crop_model(tiny_config(root), RUN_DATE)
    return root


@pytest.fixture()
def root(trained_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(trained_root, copy)
    return copy


def expected_classes(root: Path) -> tuple[np.ndarray, np.ndarray]:
    module, meta = load_crop_model(root / f"food_security/models/{YEAR}/lstm")
    source = TileComposites(root / f"food_security/harmonise/{YEAR}/33UVP.zarr", meta["bands"], 12)
    classes, confidence = classify_pixels(module, source.read_rows(0, source.height), 1000)
    return classes.reshape(source.height, source.width), confidence.reshape(source.height, -1)


def test_predict_writes_cog_png_and_fields(root: Path) -> None:
    import geopandas as gpd
    import rasterio
    from scipy import ndimage

    result = run_predict(tiny_config(root), RUN_DATE)
    folder = root / f"food_security/predict/{YEAR}/33UVP"
    assert result["folder"] == str(folder)
    for name in ("crop_map.tif", "confidence.tif", "crop_map.png", "33UVP_instances.parquet",
                 "manifest.json"):
        assert (folder / name).is_file(), name
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    classes, confidence = expected_classes(root)
    with rasterio.open(folder / "crop_map.tif") as ds:
        assert ds.crs.to_epsg() == 32633
        assert ds.transform.to_gdal() == (500000.0, 10.0, 0.0, 5300000.0, 0.0, -10.0)
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA_CLASS
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.colormap(1)[0][:3] == (0x7F, 0xC9, 0x7F)  # grassland green
        np.testing.assert_array_equal(ds.read(1), classes)
    with rasterio.open(folder / "confidence.tif") as ds:
        np.testing.assert_allclose(ds.read(1), confidence, rtol=1e-6)
    fields = gpd.read_parquet(folder / "33UVP_instances.parquet")
    assert fields.crs.to_epsg() == 32633
    # one instance per 4-connected region of one class, across the 5-row block seams
    regions = sum(ndimage.label(classes == c)[1] for c in np.unique(classes))
    assert len(fields) == regions == result["counts"]["instances"]
    assert fields["pixels"].sum() == classes.size
    np.testing.assert_allclose(fields.geometry.area, fields["pixels"] * 100.0)
    assert fields.geometry.is_valid.all()
    assert set(fields["crop_class"]) <= {"grassland", "maize", "legumes", "winter_caraway"}
    assert ((fields["confidence"] > 0) & (fields["confidence"] <= 1)).all()


def test_predict_twice_gives_the_same_outputs(root: Path) -> None:
    import geopandas as gpd
    import rasterio

    cfg = tiny_config(root)
    run_predict(cfg, RUN_DATE)
    folder = root / f"food_security/predict/{YEAR}/33UVP"
    with rasterio.open(folder / "crop_map.tif") as ds:
        first_map = ds.read(1)
    first_fields = gpd.read_parquet(folder / "33UVP_instances.parquet")
    run_predict(cfg, RUN_DATE)
    with rasterio.open(folder / "crop_map.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), first_map)
    second = gpd.read_parquet(folder / "33UVP_instances.parquet")
    assert second.drop(columns="geometry").equals(first_fields.drop(columns="geometry"))
    assert second.geometry.geom_equals(first_fields.geometry).all()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["33UVP"]


def test_predict_marks_missing_values_as_nodata(root: Path) -> None:
    import rasterio
    import zarr

    store = zarr.open_group(str(root / f"food_security/harmonise/{YEAR}/33UVP.zarr"))
    reflectance = store["reflectance"][:]
    reflectance[3, 2, 0:4, 0:6] = np.nan  # a month of one band missing (gap_fill: none)
    store["reflectance"][:] = reflectance
    result = run_predict(tiny_config(root), RUN_DATE)
    with rasterio.open(result["crop_map"]) as ds:
        data = ds.read(1)
    assert (data[0:4, 0:6] == NODATA_CLASS).all() and (data[4:, :] != NODATA_CLASS).all()
    assert result["counts"]["nodata_pixels"] == 24


def test_predict_without_composites_says_run_harmonise(root: Path) -> None:
    model_dir = root / f"food_security/models/{YEAR}/lstm"
    with pytest.raises(PredictInputError, match=r"2018-09_2019-08/33UVP.zarr; run the harmonise"):
        run_predict(tiny_config(root), "2019-01-01", model=str(model_dir))  # a year with no data


def test_predict_without_model_says_run_train(root: Path) -> None:
    with pytest.raises(PredictInputError, match="run the train stage"):
        run_predict(tiny_config(root), RUN_DATE, model="starrnn")


def test_predict_with_missing_band_names_it(root: Path) -> None:
    import zarr

    store = zarr.open_group(str(root / f"food_security/harmonise/{YEAR}/33UVP.zarr"))
    store.attrs["bands"] = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "XX"]
    with pytest.raises(PredictInputError, match=r"lacks bands \['B12'\]"):
        run_predict(tiny_config(root), RUN_DATE)


def test_corrupt_checkpoint_is_a_clear_error(root: Path) -> None:
    (root / f"food_security/models/{YEAR}/lstm/model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(PredictInputError, match="cannot be loaded"):
        run_predict(tiny_config(root), RUN_DATE)


@pytest.fixture(scope="module")
def registered_root(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained root whose SQLite MLflow registry holds the lstm model twice.

    Version 1 (alias ``production``) scores 0.9 on ``val_score``, version 2 (``staging``) 0.1.
    """
    from tasks.experiments.registry import ModelRegistry

    root = tmp_path_factory.mktemp("fs_registry") / "root"
    shutil.copytree(trained_root, root)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        registry = ModelRegistry.from_config(tiny_config(root))
        model_dir = root / f"food_security/models/{YEAR}/lstm"
        registry.register("food_security", model_dir, metrics={"val_score": 0.9},
                          alias="production")
        registry.register("food_security", model_dir, metrics={"val_score": 0.1}, alias="staging")
    return root


@pytest.mark.parametrize(("reference", "version"), [("registry:production", 1),
                                                    ("registry:staging", 2),
                                                    ("best:val_score", 1)])
def test_model_from_the_registry(registered_root: Path, monkeypatch: pytest.MonkeyPatch,
                                 reference: str, version: int) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(registered_root)
    folder = resolve_model_dir(cfg, RUN_DATE, reference)
    assert folder == registered_root / f"registry/cache/eeflow-food_security/v{version}"
    trained = registered_root / f"food_security/models/{YEAR}/lstm"
    assert (folder / "model.ckpt").read_bytes() == (trained / "model.ckpt").read_bytes()
    cfg.predict.model = reference  # the config form works as the argument does
    assert resolve_model_dir(cfg, RUN_DATE) == folder


def test_predict_with_registry_alias_maps_like_the_trained_folder(
        registered_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rasterio

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_predict(tiny_config(registered_root), RUN_DATE, model="registry:production")
    expected, _ = expected_classes(registered_root)
    with rasterio.open(result["crop_map"]) as ds:
        np.testing.assert_array_equal(ds.read(1), expected)


def test_registry_reference_errors_are_clear(registered_root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.experiments.registry import NoModelError, RegistryError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(registered_root)
    with pytest.raises(NoModelError, match=r"eeflow-food_security has no alias 'canary'; "
                                           r"aliases: \['production', 'staging'\]"):
        resolve_model_dir(cfg, RUN_DATE, "registry:canary")
    with pytest.raises(RegistryError, match=r"no food_security model has metric 'val_f9'"):
        resolve_model_dir(cfg, RUN_DATE, "best:val_f9")
    with pytest.raises(ValueError, match=r"'registry:' is incomplete; give an alias"):
        resolve_model_dir(cfg, RUN_DATE, "registry:")
    empty = tiny_config(registered_root / "no_registry_here")
    with pytest.raises(NoModelError, match="no model is registered for use case 'food_security'"):
        resolve_model_dir(empty, RUN_DATE, "registry:production")
