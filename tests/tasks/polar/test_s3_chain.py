"""The daily polar chain ingest -> harmonise -> predict -> publish on an s3:// data root (moto).

The same tiny generated day runs on a local root and on ``s3://bucket/eeflow``: the charts,
quicklooks and polygons on S3 are byte for byte those of the local run; a failure mid-upload of
predict leaves the published chart readable and complete.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest

from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import stages
from tasks.polar.train import train_model
from tasks.stage_result import StageResult
from tasks.storage import POINTER_NAME, download_stage_dir, open_output, read_manifest
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

DAY = "2026-01-15"
PRODUCTS = (".tif", ".png", ".geojson", ".parquet")


@pytest.fixture(scope="module")
def trained_model(polar_patch_dataset: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3_chain_model")
    cfg = tiny_polar_config(root, train={"model": "adhoc_cnn", "epochs": 1, "augment": False,
                                         "width_multiplier": 0.25})
    return Path(train_model(cfg, Path(polar_patch_dataset["datasets"][32]))["model_dir"])


def _cfg(root: str, model: Path | str) -> PolarConfig:
    return PolarConfig.model_validate({
        "data_root": root,
        "seed": 7,
        "dask": {"cluster": "synchronous"},
        "ingest": {"generator": {"lines": 128, "samples": 128, "scenes_per_day": 1}},
        "harmonise": {"chunk": 64},
        "predict": {"model": str(model), "tile": 64},
    })


def _chain(cfg: PolarConfig) -> dict[str, StageResult]:
    return {stage.__name__: stage(cfg, DAY) for stage in (
        stages.ingest_stage, stages.harmonise_stage, stages.predict_stage, stages.publish_stage)}


def pointer_version(final: str) -> str:
    return str(json.loads(s3_filesystem().cat_file(f"{final}/{POINTER_NAME}"))["version"])


def _product_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in PRODUCTS}


def test_daily_chain_on_s3_equals_local_run(
    s3_root: str, trained_model: Path, tmp_path: Path, eeflow_home: Path  # noqa: F811
) -> None:
    local_root = tmp_path / "local"
    local = _chain(_cfg(str(local_root), trained_model))
    fs = s3_filesystem()
    model_url = f"{s3_root}/models/{trained_model.name}"  # predict.model may be an s3:// folder
    files = sorted(p for p in trained_model.rglob("*") if p.is_file())
    fs.put([str(p) for p in files],
           [f"{model_url}/{p.relative_to(trained_model).as_posix()}" for p in files])
    remote = _chain(_cfg(s3_root, model_url))
    assert not (eeflow_home / "work").exists()  # nothing went to a local data root

    published = f"{s3_root}/polar/published/{DAY}"
    assert remote["publish_stage"].outputs["published_dir"] == published
    assert remote["publish_stage"]["latest_day"] == DAY
    import numpy as np
    import xarray as xr

    harmonised = download_stage_dir(f"{s3_root}/polar/harmonise/{DAY}", tmp_path / "harmonise")
    for zarr in sorted((local_root / "polar" / "harmonise" / DAY).glob("*.zarr")):
        with xr.open_zarr(zarr) as want_ds, xr.open_zarr(harmonised / zarr.name) as got_ds:
            for name, variable in want_ds.data_vars.items():
                np.testing.assert_array_equal(got_ds[name].values, variable.values)
    local_predict = local_root / "polar" / "predict" / DAY
    local_published = local_root / "polar" / "published" / DAY
    want = _product_bytes(local_predict)
    assert any(n.endswith(".tif") for n in want) and any(n.endswith(".png") for n in want)
    assert _product_bytes(download_stage_dir(f"{s3_root}/polar/predict/{DAY}",
                                             tmp_path / "predict")) == want
    assert _product_bytes(download_stage_dir(published, tmp_path / "published")) == want
    assert _product_bytes(local_published) == want

    predict_manifest = read_manifest(f"{s3_root}/polar/predict/{DAY}")
    local_manifest = read_manifest(local_predict)
    assert predict_manifest["inputs"] == [f"{s3_root}/polar/harmonise/{DAY}/{Path(p).name}"
                                          for p in local_manifest["inputs"]]
    for got, expected in zip(predict_manifest["products"], local_manifest["products"],
                             strict=True):
        assert got["chart"] == f"{s3_root}/polar/predict/{DAY}/{Path(expected['chart']).name}"
        assert got["pixel_counts"] == expected["pixel_counts"]
    assert read_manifest(published)["counts"] == {"charts": len(
        [n for n in want if n.endswith(".tif")])}

    assert predict_manifest["model_dir"] == model_url
    latest = json.loads(fs.cat_file(f"{s3_root}/polar/published/latest.json"))
    assert latest == {"day": DAY, "path": published}
    # the STAC item on S3: same content as the local one, hrefs resolving to published objects
    (item_url,) = remote["publish_stage"]["stac_items"]
    (local_item_path,) = local["publish_stage"]["stac_items"]
    item = json.loads(fs.cat_file(item_url))
    local_item = json.loads(Path(local_item_path).read_text())
    assert item["properties"] == local_item["properties"] and item["bbox"] == local_item["bbox"]
    assert item["assets"].keys() == local_item["assets"].keys()
    for key, asset in item["assets"].items():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(item_url[5:]),
                                                   asset["href"]))
        assert fs.exists(target), (key, asset["href"])
        assert asset["file:checksum"] == local_item["assets"][key]["file:checksum"]
    self_link = next(link["href"] for link in item["links"] if link["rel"] == "self")
    assert self_link == item_url
    collection = json.loads(fs.cat_file(f"{s3_root}/catalogue/ice-charts/collection.json"))
    assert collection["id"] == "ice-charts"
    assert fs.exists(f"{s3_root}/catalogue/catalog.json")

    # the RDF export of the day's chart reads the S3 output: the same triples as locally
    from tasks.config.common import validate_config
    from tasks.linked_data.stages import rdf_export_stage

    local_rdf = rdf_export_stage(
        validate_config({"use_case": "linked_data", "data_root": str(local_root)}), DAY,
        "ice_chart")
    remote_rdf = rdf_export_stage(
        validate_config({"use_case": "linked_data", "data_root": s3_root}), DAY, "ice_chart")
    rdf_dir = f"{s3_root}/linked_data/rdf/{DAY}/ice_chart"
    assert remote_rdf.outputs["rdf"] == f"{rdf_dir}/{Path(local_rdf.outputs['rdf']).name}"
    assert remote_rdf["triples"] == local_rdf["triples"] > 0
    with open_output(rdf_dir, Path(local_rdf.outputs["rdf"]).name) as handle:
        assert handle.read() == Path(local_rdf.outputs["rdf"]).read_bytes()
    assert read_manifest(rdf_dir)["inputs"] == [
        f"{s3_root}/polar/predict/{DAY}/{Path(p).name}"
        for p in read_manifest(Path(local_rdf.outputs["rdf"]).parent)["inputs"]]

    # the load stage reads the S3 export into an embedded store at an absolute path: the same
    # graph and triple count as the local load, twice without duplicates
    from tasks.linked_data.stages import load_triples_stage

    store = {"store": {"mode": "embedded", "path": str(tmp_path / "store")}}
    local_load = load_triples_stage(validate_config(
        {"use_case": "linked_data", "data_root": str(local_root),
         "store": {"mode": "embedded", "path": str(tmp_path / "local_store")}}), DAY, "ice_chart")
    for _ in range(2):
        remote_load = load_triples_stage(validate_config(
            {"use_case": "linked_data", "data_root": s3_root, **store}), DAY, "ice_chart")
        assert remote_load["graph"] == local_load["graph"]
        assert remote_load["triples"] == local_load["triples"] == local_rdf["triples"]
    assert str(remote_load["rdf"]).startswith(f"{rdf_dir}/.v-")

    # a re-run replaces the day atomically: one version, the same products
    again = stages.publish_stage(_cfg(s3_root, trained_model), DAY)
    assert again["stac_items"] == [item_url]
    for asset in json.loads(fs.cat_file(item_url))["assets"].values():  # the new version's files
        href = posixpath.normpath(posixpath.join(posixpath.dirname(item_url[5:]), asset["href"]))
        assert fs.exists(href) and f"/{pointer_version(published)}/" in href
    assert _product_bytes(download_stage_dir(published, tmp_path / "published2")) == want


def test_predict_failing_mid_upload_keeps_the_published_chart(
    s3_root: str, trained_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    import s3fs

    cfg = _cfg(s3_root, trained_model)
    _chain(cfg)
    fs = s3_filesystem()
    predict_dir = f"{s3_root}/polar/predict/{DAY}"
    published = f"{s3_root}/polar/published/{DAY}"
    pointers = {d: fs.cat_file(f"{d}/{POINTER_NAME}") for d in (predict_dir, published)}
    good = _product_bytes(download_stage_dir(published, tmp_path / "good"))

    real_put_file = s3fs.S3FileSystem._put_file
    uploaded: list[str] = []

    async def flaky_put_file(self, lpath, rpath, *args, **kwargs):
        if len(uploaded) >= 1:
            raise ConnectionError(f"connection reset while uploading {rpath}")
        uploaded.append(rpath)
        return await real_put_file(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_put_file", flaky_put_file)
    with pytest.raises(ConnectionError, match="connection reset"):
        stages.predict_stage(cfg, DAY)
    assert len(uploaded) == 1  # the upload really was half done
    monkeypatch.setattr(s3fs.S3FileSystem, "_put_file", real_put_file)
    assert {d: fs.cat_file(f"{d}/{POINTER_NAME}") for d in pointers} == pointers
    assert _product_bytes(download_stage_dir(published, tmp_path / "after")) == good
    chart = next(n for n in good if n.endswith(".tif"))
    with open_output(predict_dir, chart) as handle:
        assert handle.read() == good[chart]  # the previous predict output is whole too


def test_s3_refusals_are_clear(s3_root: str, tmp_path: Path) -> None:  # noqa: F811
    from tasks.polar.predict import resolve_s3_model_dir

    cfg = _cfg(s3_root, "latest")
    with pytest.raises(FileNotFoundError, match=f"no trained model under {s3_root}/polar/models; "
                                                "run the polar train stage on this data_root"):
        resolve_s3_model_dir(cfg, tmp_path)
    with pytest.raises(ValueError, match="looks in the model registry, but data_root"):
        resolve_s3_model_dir(_cfg(s3_root, "registry:production"), tmp_path)
    with pytest.raises(FileNotFoundError, match="run the harmonise stage for that day first"):
        stages.predict_stage(cfg, DAY)
    with pytest.raises(FileNotFoundError, match=f"{s3_root}/polar/ingest/{DAY} holds no "
                                                "published eeflow output: run the stage that "
                                                "writes 'ingest'"):
        stages.labels_stage(cfg, DAY)
    from tasks.config.common import validate_config
    from tasks.linked_data.stages import load_triples_stage

    with pytest.raises(ValueError, match="store.path 'linked_data/store' is relative to "
                                         "data_root, but "
                                         "data_root .* is on S3"):
        load_triples_stage(validate_config({"use_case": "linked_data", "data_root": s3_root}),
                           DAY, "ice_chart")
    absolute = {"store": {"mode": "embedded", "path": str(tmp_path / "store")}}
    with pytest.raises(FileNotFoundError, match=f"no ice_chart export for {DAY} at {s3_root}/"
                                                "linked_data/rdf"):
        load_triples_stage(validate_config({"use_case": "linked_data", "data_root": s3_root,
                                            **absolute}), DAY, "ice_chart")
