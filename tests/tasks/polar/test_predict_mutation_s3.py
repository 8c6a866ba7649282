"""predict on an ``s3://`` data root (moto), with the hand-made model and scene (issue 19).

``run_predict`` downloads the day's published harmonised scenes, charts them with a local or an
``s3://`` model folder (plain or published by pointer, or ``latest``: the newest published
model by its card's ``created``) and publishes the charts; the manifest and the result name the
S3 locations. The chart's pixels are the hand computation of :mod:`test_predict_mutation_dense`.
Every refusal is checked by its whole message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import predict as pr
from tasks.storage import atomic_dir, download_stage_dir, read_manifest
from tests.tasks.polar.test_predict_mutation_dense import (
    SCENE_ID,
    scene_arrays,
    write_model,
    write_scene,
)
from tests.tasks.polar.test_predict_mutation_products import counts_of, expected_chart
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

DAY = "2026-11-25"


def _cfg(root: str, model: str, **predict: Any) -> PolarConfig:
    return PolarConfig.model_validate({"data_root": root, "dask": {"cluster": "synchronous"},
                                       "predict": {"model": model, "tile": 64, **predict}})


def _put(folder: Path, url: str) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    s3_filesystem().put([str(p) for p in files],
                        [f"{url}/{p.relative_to(folder).as_posix()}" for p in files])


def _publish(folder: Path, url: str) -> None:
    """Publish ``folder`` at ``url`` by pointer (as the stages do on S3)."""
    with atomic_dir(url) as tmp:
        for item in folder.iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy(item, tmp / item.name)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("s3_inputs")
    day = base / "day"
    day.mkdir()
    write_scene(day / "a.zarr", scene_arrays())
    (day / "manifest.json").write_text("{}")
    return {"model": write_model(base / "adhoc_cnn_hand"), "day": day}


def test_run_predict_on_s3_with_an_s3_model_folder(s3_root: str, local: dict[str, Path],  # noqa: F811
                                                   tmp_path: Path, eeflow_home: Path) -> None:
    scene_dir = f"{s3_root}/polar/harmonise/{DAY}"
    _publish(local["day"], scene_dir)
    model_url = f"{s3_root}/models/hand"
    _put(local["model"], model_url)
    result = pr.run_predict(_cfg(s3_root, model_url + "/"), DAY)
    final = f"{s3_root}/polar/predict/{DAY}"
    assert result["out_dir"] == final and result["day"] == DAY
    assert result["model_dir"] == model_url  # as given, normalised
    (product,) = result["products"]
    assert product["chart"] == f"{final}/{SCENE_ID}_chart.tif"
    assert product["quicklook"] == f"{final}/{SCENE_ID}_quicklook.png"
    assert product["polygons"] == f"{final}/{SCENE_ID}_chart.geojson"
    want = expected_chart(scene_arrays())
    assert product["pixel_counts"] == counts_of(want)
    manifest = read_manifest(final)
    assert manifest["inputs"] == [f"{scene_dir}/a.zarr"]
    assert manifest["model_dir"] == model_url and manifest["counts"] == {"scenes": 1}
    assert manifest["products"] == result["products"]
    got = download_stage_dir(final, tmp_path / "charts")
    with rasterio.open(got / f"{SCENE_ID}_chart.tif") as src:
        np.testing.assert_array_equal(src.read(1), want)
    assert not (eeflow_home / "work").exists()


def test_run_predict_on_s3_with_a_local_model(s3_root: str, local: dict[str, Path]) -> None:  # noqa: F811
    _publish(local["day"], f"{s3_root}/polar/harmonise/{DAY}")
    model_url = f"{s3_root}/models/hand"
    final = f"{s3_root}/polar/predict/{DAY}"
    # a local model folder given by argument: named by its path
    again = pr.run_predict(_cfg(s3_root, model_url), DAY, model_dir=local["model"])
    assert again["model_dir"] == str(local["model"])
    assert read_manifest(final)["model_dir"] == str(local["model"])
    # predict.model a local folder: named by its path too
    plain = pr.run_predict(_cfg(s3_root, str(local["model"])), DAY)
    assert plain["model_dir"] == str(local["model"])


def test_latest_model_on_s3_is_the_newest_published_card(s3_root: str,  # noqa: F811
                                                         local: dict[str, Path],
                                                         tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    models = f"{s3_root}/polar/models"
    with pytest.raises(FileNotFoundError) as info:
        pr._latest_s3_model(s3_root)
    assert str(info.value) == (
        f"no trained model under {models}; run the polar train stage on this data_root first or "
        "set predict.model to a model folder")
    for name, created in (("b_old", "2026-11-01T00:00:00+00:00"),
                          ("a_new", "2026-11-20T00:00:00+00:00"),
                          ("c_mid", "2026-11-10T00:00:00+00:00")):
        folder = write_model(tmp_path / name, created=created)
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "best.ckpt").write_text(name)
        _publish(folder, f"{models}/{name}")
    _put(write_model(tmp_path / "unpublished", created="2027-01-01T00:00:00+00:00"),
         f"{models}/unpublished")  # no pointer: not a published model
    undated = write_model(tmp_path / "undated")
    card = json.loads((undated / "model.json").read_text())
    del card["created"]
    (undated / "model.json").write_text(json.dumps(card))
    _publish(undated, f"{models}/undated")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    _publish(broken, f"{models}/0_broken")
    s3_filesystem().pipe(f"{models}/loose.json", b"{}")  # a file, not a folder
    caplog.set_level("WARNING", logger="tasks.polar.predict")
    assert pr._latest_s3_model(s3_root + "/") == f"{models}/a_new"
    assert [r.getMessage() for r in caplog.records if r.name == "tasks.polar.predict"] == [
        f"skipping {models}/0_broken: no readable model.json"]
    # resolve_s3_model_dir downloads the current version of that folder, every file
    scratch = tmp_path / "scratch"
    got = pr.resolve_s3_model_dir(_cfg(s3_root, "latest"), scratch)
    assert got.parent == scratch and got.name.startswith(".v-")
    assert (got / "checkpoints" / "best.ckpt").read_text() == "a_new"
    assert json.loads((got / "model.json").read_text())["created"].startswith("2026-11-20")
    assert (got / "model.pt").read_bytes() == (tmp_path / "a_new" / "model.pt").read_bytes()
    # run_predict with predict.model latest names the newest model's URL
    _publish(local["day"], f"{s3_root}/polar/harmonise/{DAY}")
    result = pr.run_predict(_cfg(s3_root, "latest"), DAY)
    assert result["model_dir"] == f"{models}/a_new"
    assert read_manifest(result["out_dir"])["model_dir"] == f"{models}/a_new"


def test_s3_model_choices_and_refusals(s3_root: str, local: dict[str, Path],  # noqa: F811
                                       tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    given = tmp_path / "given"
    assert pr.resolve_s3_model_dir(_cfg(s3_root, "s3://nowhere/x"), scratch, given) == given
    assert pr.resolve_s3_model_dir(_cfg(s3_root, str(local["model"])), scratch) == local["model"]
    empty = f"{s3_root}/models/empty"
    s3_filesystem().pipe(f"{empty}/notes.txt", b"x")
    with pytest.raises(FileNotFoundError) as info:
        pr.resolve_s3_model_dir(_cfg(s3_root, empty), scratch)
    assert str(info.value) == (f"predict.model {empty!r} holds no model.json; give the s3:// URL "
                               "of a model folder written by the polar train stage")
    with pytest.raises(ValueError) as refused:
        pr.resolve_s3_model_dir(_cfg(s3_root, "registry:production"), scratch)
    assert str(refused.value) == (
        f"predict.model 'registry:production' looks in the model registry, but data_root "
        f"{s3_root!r} is on S3 and the registry is kept on a local data root only; set "
        "predict.model to 'latest', a local model folder or the s3:// URL of one")
    plain = f"{s3_root}/models/plain"
    _put(local["model"], plain)
    got = pr.resolve_s3_model_dir(_cfg(s3_root, plain), scratch)
    assert got == scratch / "plain"
    assert sorted(p.name for p in got.iterdir()) == ["model.json", "model.pt"]
    assert not any(p.name.startswith(".") for p in scratch.iterdir())


def test_run_predict_on_s3_without_scenes(s3_root: str, local: dict[str, Path],  # noqa: F811
                                          tmp_path: Path) -> None:
    cfg = _cfg(s3_root, str(local["model"]))
    scene_dir = f"{s3_root}/polar/harmonise/{DAY}"
    with pytest.raises(FileNotFoundError) as info:
        pr.run_predict(cfg, DAY)
    assert str(info.value) == (f"no harmonised scenes for {DAY} at {scene_dir}; run the "
                               "harmonise stage for that day first")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    only_manifest = tmp_path / "empty_day"
    only_manifest.mkdir()
    (only_manifest / "manifest.json").write_text("{}")
    _publish(only_manifest, scene_dir)
    with pytest.raises(FileNotFoundError) as info:
        pr.run_predict(cfg, DAY)
    assert str(info.value) == (f"no harmonised scenes for {DAY} in {scene_dir}; run the "
                               "harmonise stage for that day first")
    assert not s3_filesystem().exists(f"{s3_root}/polar/predict/{DAY}")
