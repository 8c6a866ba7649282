"""The polar training chain ingest -> harmonise -> labels -> patches -> train on ``s3://`` (moto).

labels, patches and train work on local files; on an ``s3://`` data root they run through a
scratch root (:func:`tasks.staging.run_staged`). The labels and the training set on S3 equal
those of the same day on a local root; the trained model folder is published under
``polar/models/{name}`` by its pointer and charts the day through the S3 predict path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import stages
from tasks.storage import POINTER_NAME, download_stage_dir, read_manifest
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

DAY = "2026-01-15"


def _cfg(root: str) -> PolarConfig:
    cfg = tiny_polar_config(Path("unused"), ingest={"generator": {
        "lines": 256, "samples": 256, "scenes_per_day": 1}}, harmonise={"chunk": 64},
        patches={"sizes": [32], "stride": 8, "min_purity": 0.5},
        train={"model": "adhoc_cnn", "width_multiplier": 0.25, "augment": False})
    return cfg.model_copy(update={"data_root": root, "seed": 7})


def _chain(cfg: PolarConfig) -> dict:
    results = {stage.__name__: stage(cfg, DAY) for stage in (
        stages.ingest_stage, stages.harmonise_stage, stages.labels_stage, stages.patches_stage)}
    results["train"] = stages.train_stage(cfg, DAY)
    return results


def _arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[...]) for name, array in group.arrays()}


def test_training_chain_on_s3_equals_local_run(
    s3_root: str, tmp_path: Path, eeflow_home: Path  # noqa: F811
) -> None:
    local_root = tmp_path / "local"
    local = _chain(_cfg(str(local_root)))
    remote = _chain(_cfg(s3_root))
    assert not (eeflow_home / "work").exists()

    fs = s3_filesystem()
    labels = download_stage_dir(f"{s3_root}/polar/labels/{DAY}", tmp_path / "labels")
    local_labels = local_root / "polar" / "labels" / DAY
    scenes = sorted(p.name for p in local_labels.glob("*.zarr"))
    assert scenes and sorted(p.name for p in labels.glob("*.zarr")) == scenes
    for scene in scenes:
        ours = xr.open_zarr(labels / scene)
        theirs = xr.open_zarr(local_labels / scene)
        for name in theirs.data_vars:
            np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)

    patches = download_stage_dir(f"{s3_root}/polar/patches/vtest", tmp_path / "patches")
    ours, theirs = (_arrays(patches / "patches_32.zarr"),
                    _arrays(local_root / "polar" / "patches" / "vtest" / "patches_32.zarr"))
    assert ours.keys() == theirs.keys() and len(ours["y"]) > 0
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)

    model_dir = str(remote["train"].outputs["model_dir"])
    name = Path(str(local["train"].outputs["model_dir"])).name.split("_2")[0]
    final = model_dir.rsplit("/.v-", 1)[0]
    assert final.startswith(f"{s3_root}/polar/models/{name}_"), model_dir
    assert fs.exists(f"{final}/{POINTER_NAME}")
    assert fs.exists(f"{model_dir}/model.json") and fs.exists(f"{model_dir}/model.pt")

    # the S3 predict path charts the day with the model trained on S3: by its folder URL and as
    # 'latest' (the newest card under polar/models on S3)
    cfg = _cfg(s3_root)
    cfg.predict.tile = 64
    for choice in (final, "latest"):
        cfg.predict.model = choice
        charted = stages.predict_stage(cfg, DAY)
        manifest = read_manifest(f"{s3_root}/polar/predict/{DAY}")
        assert manifest["model_dir"] == final, choice
    assert str(charted.outputs["out_dir"]).startswith(f"{s3_root}/polar/predict/{DAY}")


def test_patches_on_s3_without_labels_name_the_stage_to_run(s3_root: str) -> None:  # noqa: F811
    cfg = _cfg(s3_root)
    stages.ingest_stage(cfg, DAY)
    stages.harmonise_stage(cfg, DAY)
    with pytest.raises(FileNotFoundError, match=r"polar/labels/2026-01-15 holds no published "
                                                r"eeflow output: run the stage that writes "
                                                r"'labels'"):
        stages.patches_stage(cfg, DAY)
