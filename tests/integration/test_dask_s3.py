"""Dask ``address`` mode with workers that share no file system: stage I/O on S3 (a moto server).

A real ``dask scheduler`` and two ``dask worker`` processes run on 127.0.0.1, each in its own
folder with its own ``TMPDIR``. The polar harmonise and patches stages run on an ``s3://`` data
root through them while the driver has no usable temporary folder (``tempfile.tempdir`` is a
file), and no local copy of any input exists anywhere: the reference run's folder is deleted
first. A task that read a local path, or a driver that staged inputs into a scratch folder,
fails the run. The harmonised scenes and the training set on S3 equal, value by value, those of
an in-process run on a local root, both workers computed part of each stage, and the workers'
copies of the input product are gone afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import stages
from tasks.staging import WORKER_COPIES_PREFIX, zarr_store
from tasks.storage import POINTER_NAME, resolve_stage_dir
from tests.integration.test_dask_address import dask_processes
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DAY = "2026-01-15"


def _cfg(root: str, dask: dict[str, Any] | None = None) -> PolarConfig:
    cfg = tiny_polar_config(Path("unused"), ingest={"generator": {
        "lines": 256, "samples": 256, "scenes_per_day": 1}}, harmonise={"chunk": 128},
        patches={"sizes": [32, 20], "stride": 8, "min_purity": 0.5, "tile_px": 128})
    data = {**cfg.model_dump(mode="json"), "data_root": root, "seed": 7}
    if dask is not None:
        data["dask"] = dask
    return PolarConfig.model_validate(data)


def _arrays(store: Any) -> dict[str, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    return {name: np.asarray(array[...]) for name, array in group.arrays()}


def _local_outputs(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """The harmonised scenes and training sets of the local run, in memory."""
    found = {}
    for scene in sorted((root / "polar" / "harmonise" / DAY).glob("*.zarr")):
        found[f"harmonise/{scene.name}"] = _arrays(str(scene))
    for size in (32, 20):
        name = f"patches_{size}.zarr"
        found[f"patches/{name}"] = _arrays(str(root / "polar" / "patches" / "vtest" / name))
    return found


def _work_done(client: Any) -> dict[str, int]:
    return dict(client.run(lambda dask_worker: dask_worker.state.transition_counter))


def test_harmonise_and_patches_on_s3_through_workers_without_a_shared_file_system(
    s3_root: str, tmp_path: Path, eeflow_home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distributed import Client

    local_root = tmp_path / "local"
    local_cfg = _cfg(str(local_root))
    # Dask's nanny starts workers with one BLAS thread (OMP/MKL/OPENBLAS_NUM_THREADS=1); with
    # more, the geocoding rounds the last bit of ~0.1 % of the backscatter values differently
    # (up to 4e-6 dB). The reference runs with one BLAS thread too.
    with threadpool_limits(limits=1):
        for stage in (stages.ingest_stage, stages.harmonise_stage, stages.labels_stage,
                      stages.patches_stage):
            stage(local_cfg, DAY)
    expected = _local_outputs(local_root)
    shutil.rmtree(local_root)  # no local copy of any input is left for a task to read

    logs = tmp_path / "logs"
    logs.mkdir()
    with dask_processes(logs) as address, Client(address) as client:
        cfg = _cfg(s3_root, {"cluster": "address", "address": address})
        stages.ingest_stage(cfg, DAY)
        with _trapped(monkeypatch, tmp_path / "trap-harmonise"):
            before = _work_done(client)
            harmonised = stages.harmonise_stage(cfg, DAY)
            after = _work_done(client)
        assert len(after) == 2 and all(after[w] > before[w] for w in after), (before, after)
        stages.labels_stage(cfg, DAY)  # labels still run on the driver's scratch root
        with _trapped(monkeypatch, tmp_path / "trap-patches"):
            patches = stages.patches_stage(cfg, DAY)
            done = _work_done(client)
        assert all(done[w] > after[w] for w in done), (after, done)
        # the copies of the input product in the workers' own TMPDIRs were dropped
        left = sorted(p.name for p in logs.glob(f"proc-*/tmp/{WORKER_COPIES_PREFIX}*"))
        assert left == []

    harmonise_url = f"{s3_root}/polar/harmonise/{DAY}"
    assert harmonised.outputs["output_dir"] == harmonise_url
    version = str(resolve_stage_dir(harmonise_url))
    patches_version = str(patches.outputs["dataset_dir"])
    assert patches_version == str(resolve_stage_dir(f"{s3_root}/polar/patches/vtest"))
    assert patches_version.startswith(f"{s3_root}/polar/patches/vtest/.v-")
    fs = s3_filesystem()
    assert fs.exists(f"{s3_root}/polar/patches/vtest/{POINTER_NAME}")
    assert fs.exists(f"{patches_version}/manifest.json")

    remote = {}
    for key in expected:
        kind, name = key.split("/")
        where = version if kind == "harmonise" else patches_version
        remote[key] = _arrays(zarr_store(f"{where}/{name}", read_only=True))
    assert remote.keys() == expected.keys() and len(expected) == 3
    for key, arrays in expected.items():
        assert remote[key].keys() == arrays.keys(), key
        for name, values in arrays.items():
            assert values.size > 0, (key, name)
            np.testing.assert_array_equal(remote[key][name], values, err_msg=f"{key}: {name}")
    assert not (eeflow_home / "work").exists()  # nothing went to a local data root


class _trapped:
    """Within the block this process has no usable temporary folder (see the module doc)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, trap: Path) -> None:
        self.monkeypatch = monkeypatch
        self.trap = trap

    def __enter__(self) -> None:
        self.trap.write_text("not a folder: the driver may not stage files here")
        self.previous = tempfile.tempdir
        self.monkeypatch.setattr(tempfile, "tempdir", str(self.trap))
        with pytest.raises(OSError):
            tempfile.mkdtemp()

    def __exit__(self, *exc: object) -> None:
        tempfile.tempdir = self.previous
