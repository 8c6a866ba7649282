"""The pieces that let Dask tasks work on S3 without the driver's disk (moto server).

- :func:`tasks.storage.atomic_s3_version`: writers fill a version on S3 in place; the pointer is
  written last; a failure deletes the version and leaves the previous output.
- :func:`tasks.staging.worker_local_copy`: a task's own copy of an ``s3://`` input, once per
  process and run, in that process's temporary folder.
- The polar patches stage on a distributed cluster writes its training set straight into a new
  S3 version: equal to a run through the scratch root, and a failure before the publish leaves
  the previous training set.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import stages
from tasks.staging import (
    WORKER_COPIES_PREFIX,
    drop_worker_copies,
    worker_local_copy,
    write_s3_manifest,
    zarr_store,
)
from tasks.storage import (
    POINTER_NAME,
    atomic_s3_dir,
    atomic_s3_version,
    resolve_stage_dir,
    zarr_array,
)
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config, write_synthetic_scene
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

DAY = "2026-01-15"


def _versions(final: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in s3_filesystem().ls(final)
                  if p.rsplit("/", 1)[-1].startswith(".v-"))


def _write_store(url: str, values: np.ndarray) -> None:
    group = zarr.open_group(zarr_store(url, read_only=False), mode="w", zarr_format=3)
    group.create_array("v", shape=values.shape, chunks=(2,), dtype=values.dtype)[:] = values


def _read_store(url: str) -> np.ndarray:
    return np.asarray(zarr_array(zarr.open_group(zarr_store(url, read_only=True), mode="r"),
                                 "v")[:])


def test_atomic_s3_version_publishes_last_and_a_failure_keeps_the_previous_output(
    s3_root: str,  # noqa: F811
) -> None:
    final = f"{s3_root}/polar/patches/v1"
    with atomic_s3_version(final) as first:
        assert first.startswith(f"{final}/.v-")
        _write_store(f"{first}/a.zarr", np.arange(6))
        write_s3_manifest(first, stage="patches", inputs=["x"], config_hash="h",
                          counts={"n": 6})
        with pytest.raises(FileNotFoundError):  # not published while it is written
            resolve_stage_dir(final)
    assert resolve_stage_dir(final) == first
    pointer = json.loads(s3_filesystem().cat_file(f"{final}/{POINTER_NAME}"))
    assert pointer["manifest"] == f"{first.rsplit('/', 1)[-1]}/manifest.json"
    assert pointer["files"] == 6  # group and array metadata, 3 chunks, the manifest
    np.testing.assert_array_equal(_read_store(f"{final}/{pointer['version']}/a.zarr"),
                                  np.arange(6))

    with pytest.raises(RuntimeError, match="worker died"), atomic_s3_version(final) as second:
        _write_store(f"{second}/a.zarr", np.arange(6) * 10)  # chunks already on S3
        raise RuntimeError("worker died")
    assert resolve_stage_dir(final) == first and _versions(final) == [first.rsplit("/", 1)[-1]]
    np.testing.assert_array_equal(_read_store(f"{first}/a.zarr"), np.arange(6))

    with pytest.raises(ValueError, match="wrote no file"), atomic_s3_version(final):
        pass
    assert resolve_stage_dir(final) == first

    with atomic_s3_version(final) as third:
        _write_store(f"{third}/a.zarr", np.arange(6) + 1)
    assert resolve_stage_dir(final) == third and _versions(final) == [third.rsplit("/", 1)[-1]]


def test_worker_local_copy_downloads_once_per_run_into_the_process_temp(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    fs = s3_filesystem()
    product = f"{s3_root}/ingest/S1A.SAFE"
    fs.pipe_file(f"{product}/manifest.safe", b"<xml/>")
    fs.pipe_file(f"{product}/measurement/hh.tiff", b"\x00\x01")
    fs.pipe_file(f"{s3_root}/ingest/land.geojson", b"{}")
    worker_temp = tmp_path / "worker-temp"
    worker_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(worker_temp))

    copy = worker_local_copy(product, "run1")
    assert copy.name == "S1A.SAFE"
    assert copy.is_relative_to(worker_temp / f"{WORKER_COPIES_PREFIX}run1")
    assert (copy / "manifest.safe").read_bytes() == b"<xml/>"
    assert (copy / "measurement" / "hh.tiff").read_bytes() == b"\x00\x01"
    land = worker_local_copy(f"{s3_root}/ingest/land.geojson", "run1")
    assert land.read_bytes() == b"{}"
    fs.rm(product, recursive=True)
    assert worker_local_copy(product, "run1") == copy  # the run's copy, not downloaded again
    with pytest.raises(FileNotFoundError, match=r"S1A\.SAFE does not exist"):
        worker_local_copy(product, "run2")
    assert worker_local_copy(tmp_path / "local.SAFE", "run1") == tmp_path / "local.SAFE"
    with pytest.raises(ValueError, match="run token"):
        worker_local_copy(f"{s3_root}/ingest/land.geojson", "../x")

    drop_worker_copies("run1")
    assert not (worker_temp / f"{WORKER_COPIES_PREFIX}run1").exists()


def _publish_inputs(root: str, tmp_path: Path) -> None:
    """Publish a synthetic harmonised scene and its labels as the day's outputs on S3."""
    scene, labels = write_synthetic_scene(tmp_path / "scene", "S1A_EW_GRDM_TEST0", height=192,
                                          width=192, seed=0)
    for stage, path in (("harmonise", scene), ("labels", labels)):
        with atomic_s3_dir(f"{root}/polar/{stage}/{DAY}") as tmp:
            shutil.copytree(path, tmp / path.name)


def _cfg(root: str, dask: dict) -> PolarConfig:
    cfg = tiny_polar_config(Path("unused"), patches={"sizes": [32], "tile_px": 64})
    return PolarConfig.model_validate({**cfg.model_dump(mode="json"), "data_root": root,
                                       "dask": dask})


def _arrays(store: object) -> dict[str, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    return {name: np.asarray(array[...]) for name, array in group.arrays()}


@pytest.mark.integration
def test_patches_on_s3_workers_equal_the_staged_run_and_a_failure_keeps_the_previous_set(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    _publish_inputs(s3_root, tmp_path)
    final = f"{s3_root}/polar/patches/vtest"
    staged = stages.patches_stage(_cfg(s3_root, {"cluster": "synchronous"}), DAY)
    reference = _arrays(zarr_store(f"{staged.outputs['dataset_dir']}/patches_32.zarr",
                                   read_only=True))
    assert len(reference["y"]) > 0

    threads = {"cluster": "local", "workers": "threads", "n_workers": 2}
    direct = stages.patches_stage(_cfg(s3_root, threads), DAY)
    version = str(direct.outputs["dataset_dir"])
    assert version == resolve_stage_dir(final) and version != staged.outputs["dataset_dir"]
    assert direct.summary["datasets"] == {"32": f"{version}/patches_32.zarr"}
    ours = _arrays(zarr_store(f"{version}/patches_32.zarr", read_only=True))
    assert ours.keys() == reference.keys()
    for name, values in reference.items():
        np.testing.assert_array_equal(ours[name], values, err_msg=name)
    manifest = json.loads(s3_filesystem().cat_file(f"{version}/manifest.json"))
    assert manifest["stage"] == "patches" and manifest["inputs"]["scenes"][0].startswith("s3://")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("S3 went away before the manifest")

    monkeypatch.setattr("tasks.polar.patches.write_s3_manifest", fail)
    with pytest.raises(OSError, match="went away"):
        stages.patches_stage(_cfg(s3_root, threads), DAY)
    assert resolve_stage_dir(final) == version  # the previous training set stays published
    assert _versions(final) == [version.rsplit("/", 1)[-1]]  # the partial version is gone
