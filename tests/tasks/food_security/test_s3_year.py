"""The crop year's stages on an ``s3://`` data root (moto) equal the same stages on a local root.

ingest -> harmonise -> labels -> samples -> train (tempcnn, tiny) -> predict (one tile) ->
evaluate runs on a local root and on ``s3://bucket/eeflow``
(:func:`tasks.staging.run_staged`): the crop map GeoTIFF and the sample stores are equal, every
stage output is published by pointer with its manifest, the STAC items' asset hrefs resolve on
S3, the results name ``s3://`` URLs, a missing input names the stage to run, and nothing is
written under a local data root.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import numpy as np
import pytest
import zarr

from tasks.food_security import stages
from tasks.fs import s3_filesystem
from tasks.storage import POINTER_NAME, download_stage_dir, read_manifest
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, YEAR_KEY, small_config
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

TILE = "33UVP"


def _cfg(root: str):  # noqa: ANN202
    cfg = small_config(Path(root) if not root.startswith("s3://") else root)  # type: ignore[arg-type]
    cfg.data_root = root
    for key, value in {"layers": 1, "cells": 8, "epochs_phase1": 1, "epochs_phase2": 1,
                       "batch_size": 64, "accelerator": "cpu", "model": "tempcnn"}.items():
        setattr(cfg.train, key, value)
    cfg.evaluate.models = ["tempcnn"]
    return cfg


def _year(cfg) -> dict:  # noqa: ANN001
    results = {}
    for stage in (stages.ingest_stage, stages.harmonise_stage, stages.labels_stage,
                  stages.samples_stage):
        results[stage.__name__] = stage(cfg, RUN_DATE)
    results["train"] = stages.train_stage(cfg, RUN_DATE, model="tempcnn")
    results["predict"] = stages.predict_stage(cfg, RUN_DATE, tile=TILE, model="tempcnn")
    results["evaluate"] = stages.evaluate_stage(cfg, RUN_DATE, model="tempcnn")
    return results


def _zarr_arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[...]) for name, array in group.arrays()}


def test_crop_year_on_s3_equals_local_run(
    s3_root: str, tmp_path: Path, eeflow_home: Path  # noqa: F811
) -> None:
    local_root = tmp_path / "local"
    local = _year(_cfg(str(local_root)))
    remote = _year(_cfg(s3_root))
    assert not (eeflow_home / "work").exists()  # nothing went to a local data root

    fs = s3_filesystem()
    for stage in ("ingest", "harmonise", "labels", "samples", "evaluate"):
        final = f"{s3_root}/food_security/{stage}/{YEAR_KEY}"
        assert fs.exists(f"{final}/{POINTER_NAME}"), stage
        assert read_manifest(final)["stage"] in (stage, f"{stage}_year"), stage
    model_final = f"{s3_root}/food_security/models/{YEAR_KEY}/tempcnn"
    predict_final = f"{s3_root}/food_security/predict/{YEAR_KEY}/{TILE}"
    for final in (model_final, predict_final):
        assert fs.exists(f"{final}/{POINTER_NAME}"), final

    # results name the published versions on S3, not the scratch folders
    version = json.loads(fs.cat_file(f"{predict_final}/{POINTER_NAME}"))["version"]
    crop_map = str(remote["predict"].outputs["crop_map"])
    assert crop_map.startswith(f"{predict_final}/{version}/"), crop_map
    assert str(remote["train"].outputs["model_dir"]).startswith(model_final)

    # the same products: the crop map's bytes, the train / test sample stores' values
    local_map = Path(str(local["predict"].outputs["crop_map"]))
    assert fs.cat_file(crop_map) == local_map.read_bytes()
    samples = download_stage_dir(f"{s3_root}/food_security/samples/{YEAR_KEY}",
                                 tmp_path / "samples")
    local_samples = local_root / "food_security" / "samples" / YEAR_KEY
    for store in ("train.zarr", "test.zarr"):
        ours, theirs = _zarr_arrays(samples / store), _zarr_arrays(local_samples / store)
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{store}/{name}")
    assert remote["evaluate"]["agronomic_year"] == local["evaluate"]["agronomic_year"]

    # the STAC item of the map: on S3, its asset hrefs resolve to the published version's files
    items = [k for k in fs.find(f"{s3_root}/catalogue") if f"/{TILE}" in k and k.endswith(".json")]
    assert items, "the crop map's STAC item was not uploaded"
    item_key = items[0]
    item = json.loads(fs.cat_file(item_key))
    for asset in item["assets"].values():
        href = asset["href"]
        target = href if href.startswith("s3://") else "s3://" + posixpath.normpath(
            posixpath.join(posixpath.dirname(item_key), href))
        assert fs.exists(target), (href, target)
    assert "file://" not in fs.cat_file(f"{s3_root}/catalogue/catalog.json").decode()


def test_a_missing_input_on_s3_names_the_stage_to_run(s3_root: str) -> None:  # noqa: F811
    with pytest.raises(FileNotFoundError) as caught:
        stages.samples_stage(_cfg(s3_root), RUN_DATE)
    message = str(caught.value)
    assert f"{s3_root}/food_security/harmonise/{YEAR_KEY} holds no published eeflow output" \
        in message
    assert "run the stage that writes 'harmonise'" in message


def test_lucas_points_on_s3_are_read_from_a_local_copy(
    s3_root: str, tmp_path: Path  # noqa: F811
) -> None:
    from tasks.lucas.stages import lucas_stage

    cfg = _cfg(str(tmp_path / "root"))
    cfg.lucas.points_path = f"{s3_root}/lucas/points_{{agronomic_year}}.csv"
    with pytest.raises(FileNotFoundError, match=f"LUCAS points {s3_root}/lucas/points_"
                                                f"{YEAR_KEY}.csv \\(lucas.points_path\\) do not "
                                                "exist"):
        lucas_stage(cfg, RUN_DATE)
    source = Path(__file__).resolve().parents[2] / "data/lucas/lucas2018_primary_BE_2points.csv"
    s3_filesystem().put_file(str(source), f"{s3_root}/lucas/points_{YEAR_KEY}.csv")
    # the file was copied from S3: the stage goes on to look for the year's maps
    with pytest.raises(FileNotFoundError, match="no field instances under .*run the predict "
                                                "stage"):
        lucas_stage(cfg, RUN_DATE)


def test_directory_ingest_on_s3_publishes_nothing_and_is_not_an_input(
    s3_root: str, tmp_path: Path  # noqa: F811
) -> None:
    """``ingest.source: directory`` reads the archive in place: no ingest output on S3."""
    from tasks.config.common import validate_config

    cfg = validate_config({"use_case": "food_security", "data_root": s3_root, "ingest": {
        "source": "directory", "directory": str(tmp_path / "l2a"),
        "parcel_map": str(tmp_path / "parcels.parquet")}})
    result = stages.ingest_stage(cfg, RUN_DATE)
    assert result["directory"] == str(tmp_path / "l2a")
    assert not s3_filesystem().exists(f"{s3_root}/food_security/ingest")
    assert stages._io(RUN_DATE, stages._ingested(cfg), ["harmonise"]).inputs == ()
