import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasks.food_security.predict import (
    NODATA_CLASS,
    PredictInputError,
    TileComposites,
    classify_pixels,
    load_crop_model,
    resolve_model_dir,
    run_predict,
)
from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config as shared_tiny_config
from tests.tasks.food_security.conftest_ml import write_sample_year, write_tile_year

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
    from tasks.model_registry import ModelRegistry

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
    from tasks.model_registry import NoModelError, RegistryError

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


# --- predict.instances: parcels -------------------------------------------------------------

#: the tiny tile: 40 x 40 px of 10 m from (500000, 5300000), EPSG:32633, 8-px square fields
TILE_LEFT, TILE_TOP, TILE_PX, FIELD_PX = 500000.0, 5300000.0, 40, 8


def write_parcel_map(path: Path, crs: str = "EPSG:4326") -> Path:
    """Write the tile's 25 square fields as parcels, a sliver and a far parcel, in ``crs``.

    The sliver crosses the tile's right edge without holding a pixel centre on the tile; the far
    parcel does not touch the tile.
    """
    import geopandas as gpd
    from shapely.geometry import box

    size = FIELD_PX * 10.0
    fields = [(r, c) for r in range(TILE_PX // FIELD_PX) for c in range(TILE_PX // FIELD_PX)]
    geoms = [box(TILE_LEFT + c * size, TILE_TOP - (r + 1) * size,
                 TILE_LEFT + (c + 1) * size, TILE_TOP - r * size) for r, c in fields]
    right = TILE_LEFT + TILE_PX * 10.0
    geoms += [box(right - 3, TILE_TOP - 50, right + 40, TILE_TOP - 20),
              box(right + 5000, TILE_TOP - 80, right + 5080, TILE_TOP)]
    ids = [9000 + r * 1000 + c for r, c in fields] + [1, 2]
    frame = gpd.GeoDataFrame({"FS_KENNUNG": ids, "SNAR_CODE": 110}, geometry=geoms,
                             crs="EPSG:32633").to_crs(crs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def parcel_config(root: Path, parcel_map: Path | None = None) -> Any:
    cfg = tiny_config(root)
    cfg.predict.instances = "parcels"
    cfg.predict.parcel_map = None if parcel_map is None else str(parcel_map)
    return cfg


def class_probabilities(root: Path) -> np.ndarray:
    """(y, x, class) model probabilities of every pixel of the tiny tile."""
    import torch

    module, meta = load_crop_model(root / f"food_security/models/{YEAR}/lstm")
    source = TileComposites(root / f"food_security/harmonise/{YEAR}/33UVP.zarr", meta["bands"], 12)
    with torch.no_grad():
        probs = module.predict_proba(torch.from_numpy(source.read_rows(0, source.height)))
    return probs.numpy().reshape(source.height, source.width, -1)


def test_parcel_instances_classify_each_parcel_by_its_pixels(root: Path) -> None:
    import geopandas as gpd

    from tasks.lucas.crop_map import read_instances

    # the year's parcel map of the ingest stage is the default source
    write_parcel_map(root / f"food_security/ingest/{YEAR}/parcels.parquet")
    result = run_predict(parcel_config(root), RUN_DATE)
    folder = Path(result["folder"])
    fields = gpd.read_parquet(folder / "33UVP_instances.parquet")
    assert list(fields.columns) == ["instance_id", "parcel_id", "class_index", "crop_class",
                                    "pixels", "area_m2", "confidence", "agreement", "geometry"]
    assert fields.crs.to_epsg() == 32633
    counts = result["counts"]
    # 25 fields + the sliver touch the tile; the sliver holds no pixel centre; the far one is out
    assert len(fields) == counts["instances"] == 25
    assert counts["parcels"] == 26 and counts["parcels_without_pixels"] == 1
    assert 1 not in set(fields["parcel_id"]) and 2 not in set(fields["parcel_id"])
    assert (fields["pixels"] == FIELD_PX**2).all()
    np.testing.assert_allclose(fields["area_m2"], 6400.0, rtol=1e-6)
    assert ((fields["agreement"] > 0) & (fields["agreement"] <= 1)).all()
    classes, _ = expected_classes(root)
    probs = class_probabilities(root)
    class_names = json.loads((folder / "manifest.json").read_text())["classes"]
    for row in fields.itertuples():
        r, c = divmod(row.parcel_id - 9000, 1000)
        window = (slice(r * FIELD_PX, (r + 1) * FIELD_PX), slice(c * FIELD_PX, (c + 1) * FIELD_PX))
        votes = np.bincount(classes[window].ravel(), minlength=len(class_names))
        prob_sums = probs[window].reshape(-1, len(class_names)).sum(axis=0)
        tied = np.flatnonzero(votes == votes.max())
        majority = tied[np.argmax(prob_sums[tied])]
        assert row.class_index == majority and row.crop_class == class_names[majority]
        assert row.agreement == pytest.approx(votes[majority] / FIELD_PX**2)
        assert row.confidence == pytest.approx(prob_sums[majority] / FIELD_PX**2, rel=1e-5)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["instances"] == "parcels"
    assert manifest["inputs"]["parcel_map"].endswith(f"ingest/{YEAR}/parcels.parquet")
    # the LUCAS evaluator reads the file as it reads connected regions
    assert len(read_instances(folder / "33UVP_instances.parquet").class_index) == 25
    # re-running gives the same file content
    run_predict(parcel_config(root), RUN_DATE)
    again = gpd.read_parquet(folder / "33UVP_instances.parquet")
    assert again.drop(columns="geometry").equals(fields.drop(columns="geometry"))
    assert again.geometry.geom_equals(fields.geometry).all()


def test_parcel_instances_skip_no_data_and_honour_min_pixels(root: Path) -> None:
    import geopandas as gpd
    import zarr

    store = zarr.open_group(str(root / f"food_security/harmonise/{YEAR}/33UVP.zarr"))
    reflectance = store["reflectance"][:]
    reflectance[0, 0, 0:8, 0:8] = np.nan  # parcel (0, 0) all no data
    reflectance[0, 0, 8:12, 0:8] = np.nan  # half of parcel (1, 0)
    store["reflectance"][:] = reflectance
    parcel_map = write_parcel_map(root / f"maps/{YEAR}.gpkg", crs="EPSG:31287")
    cfg = parcel_config(root, root / "maps/{agronomic_year}.gpkg")
    cfg.predict.min_instance_pixels = 33
    result = run_predict(cfg, RUN_DATE)
    fields = gpd.read_parquet(result["fields"])
    assert result["counts"]["parcels_without_pixels"] == 2  # the sliver and parcel (0, 0)
    assert result["counts"]["instances_below_min_pixels"] == 1  # parcel (1, 0): 32 pixels
    assert len(fields) == 23 and 9000 not in set(fields["parcel_id"])
    assert 10000 not in set(fields["parcel_id"])
    cfg.predict.min_instance_pixels = 1
    fields = gpd.read_parquet(run_predict(cfg, RUN_DATE)["fields"])
    assert fields.set_index("parcel_id").loc[10000, "pixels"] == 32
    assert parcel_map.is_file()


def test_parcel_instances_without_a_parcel_map_name_the_config_key(root: Path) -> None:
    with pytest.raises(PredictInputError, match=r"parcel map .*parcels.parquet does not exist "
                                                r"\(predict.instances: parcels\); set "
                                                r"predict.parcel_map"):
        run_predict(parcel_config(root), RUN_DATE)
    with pytest.raises(PredictInputError, match=r"nowhere.parquet does not exist"):
        run_predict(parcel_config(root, root / "nowhere.parquet"), RUN_DATE)
    assert not (root / f"food_security/predict/{YEAR}").exists()


def test_default_instances_are_connected_regions(root: Path) -> None:
    assert tiny_config(root).predict.instances == "connected_regions"
    result = run_predict(tiny_config(root), RUN_DATE)
    manifest = json.loads((Path(result["folder"]) / "manifest.json").read_text())
    assert manifest["instances"] == "connected_regions"
    assert "parcel_map" not in manifest["inputs"]


def test_parcel_aggregator_matches_a_hand_computation() -> None:
    """6 x 6 px, 3 parcels + a sliver; fed in 2-row blocks and 2 probability batches per block.

    Classes (9 = no data), parcels A (rows 0-2, cols 0-2), B (rows 0-3, cols 3-5), C (rows 4-5):

        1 1 1 | 0 0 2        A: five 1s, four 2s        -> 1, agreement 5/9
        1 1 2 | 0 2 2        B: six 0s, six 2s (a tie;   -> 2, agreement 6/12
        2 2 2 | 0 2 2           the 2s are surer)
        0 0 0 | 0 0 2        (row 3, cols 0-2: no parcel)
        3 3 3   3 9 9        C: seven 3s, three 0s, two no data -> 3, agreement 7/10
        3 3 3   0 0 0
    """
    from affine import Affine
    from shapely.geometry import box

    from tasks.food_security.parcel_instances import ParcelAggregator

    classes = np.array([[1, 1, 1, 0, 0, 2], [1, 1, 2, 0, 2, 2], [2, 2, 2, 0, 2, 2],
                        [0, 0, 0, 0, 0, 2], [3, 3, 3, 3, 9, 9], [3, 3, 3, 0, 0, 0]],
                       dtype=np.uint8)
    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 60.0)
    parcels = [box(0, 30, 30, 60), box(30, 20, 60, 60), box(0, 0, 60, 20), box(59, 0, 61, 60)]
    probs = np.full((36, 4), 0.4 / 3)
    flat = classes.ravel()
    valid = flat != 9
    probs[valid, flat[valid]] = 0.6
    surer = (flat == 2) & (np.arange(36) % 6 >= 3)  # B's 2s: 0.9 (rest 0.1 / 3)
    probs[surer] = 0.1 / 3
    probs[surer, 2] = 0.9
    aggregator = ParcelAggregator(parcels, transform, width=6, n_classes=4)
    for start in range(0, 6, 2):
        parcel = aggregator.rasterise_rows(start, start + 2).ravel()
        aggregator.add_votes(parcel, classes[start:start + 2], nodata=9)
        pixel = np.flatnonzero(valid[start * 6:(start + 2) * 6])  # as classify_pixels batches
        for batch in (pixel[:5], pixel[5:]):
            aggregator.add_probabilities(parcel[batch], probs[start * 6 + batch])
    frame, counts = aggregator.instances(np.array([11, 22, 33, 44]), ["a", "b", "c", "d"],
                                         "EPSG:32633", min_pixels=1)
    assert counts == {"instances": 3, "parcels": 4, "parcels_without_pixels": 1,
                      "instances_below_min_pixels": 0}
    assert frame["parcel_id"].tolist() == [11, 22, 33]
    assert frame["crop_class"].tolist() == ["b", "c", "d"]
    assert frame["class_index"].tolist() == [1, 2, 3]
    assert frame["pixels"].tolist() == [9, 12, 10]
    np.testing.assert_allclose(frame["agreement"], [5 / 9, 6 / 12, 7 / 10])
    np.testing.assert_allclose(frame["confidence"], [(5 * 0.6 + 4 * 0.4 / 3) / 9,
                                                     (6 * 0.9 + 6 * 0.4 / 3) / 12,
                                                     (7 * 0.6 + 3 * 0.4 / 3) / 10])
    np.testing.assert_allclose(frame["area_m2"], [900.0, 1200.0, 1200.0])
    assert frame.geometry.iloc[1].equals(parcels[1])
