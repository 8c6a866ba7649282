"""Crop harmonise on Dask workers that share no file system with the driver: S3 I/O (moto).

A real ``dask scheduler`` and two ``dask worker`` processes run on 127.0.0.1, each in its own
folder with its own ``TMPDIR``. The crop harmonise stage runs on an ``s3://`` data root through
them while the driver has no usable temporary folder (``tempfile.tempdir`` is a file) and no
local copy of any input exists: the reference run's folder is deleted first. The region tasks
read the published L2A GeoTIFFs through GDAL ``/vsis3/`` and write their zarr chunks into an
unpublished S3 version that the driver publishes by pointer. The composites equal, value by
value, those of an in-process run on a local root, both workers composited regions, and a year
without a published ingest output names the stage to run.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tasks.food_security import stages
from tasks.fs import s3_filesystem
from tasks.staging import gdal_s3_environment, gdal_s3_options, vsis3_path, zarr_store
from tasks.storage import POINTER_NAME, resolve_stage_dir
from tests.integration.test_dask_address import dask_processes
from tests.integration.test_dask_s3 import _arrays, _trapped, _work_done
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, YEAR_KEY, small_config
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TILES = ("33UWP", "33UXP")


def _cfg(root: str, dask: dict[str, Any] | None = None, **changes: Any) -> Any:
    # two tiles (two region tasks, one per worker), a monthly revisit, one clouded month (gap
    # filling): every GeoTIFF read is a request to the moto server
    overrides: dict[str, Any] = {"harmonise.chunk": 32, "ingest.generator.tiles": [
        {"id": "33UWP", "revisit_days": 30, "parcels": 8},
        {"id": "33UXP", "revisit_days": 30, "parcels": 8, "clouded_months": [12]}],
        "samples.split": {"train_tiles": ["33UWP"], "val_tiles": [], "test_tiles": ["33UXP"]},
        "predict.tile": "33UXP", "evaluate.tile": "33UXP", **changes}
    if dask is not None:
        overrides["dask"] = dask
    cfg = small_config(Path("unused"), **overrides)
    cfg.data_root = root
    return cfg


def test_crop_harmonise_on_s3_through_workers_without_a_shared_file_system(
    s3_root: str, tmp_path: Path, eeflow_home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distributed import Client

    local_root = tmp_path / "local"
    local_cfg = _cfg(str(local_root))
    stages.ingest_stage(local_cfg, RUN_DATE)
    local = stages.harmonise_stage(local_cfg, RUN_DATE)
    folder = local_root / "food_security" / "harmonise" / YEAR_KEY
    expected = {tile: _arrays(str(folder / f"{tile}.zarr")) for tile in TILES}
    local_attrs = {tile: dict(zarr.open_group(str(folder / f"{tile}.zarr"), mode="r").attrs)
                   for tile in TILES}
    shutil.rmtree(local_root)  # no local copy of any input is left for a task to read

    logs = tmp_path / "logs"
    logs.mkdir()
    with dask_processes(logs) as address, Client(address) as client:
        cfg = _cfg(s3_root, {"cluster": "address", "address": address})
        with pytest.raises(FileNotFoundError, match="run the ingest stage for that year first"):
            stages.harmonise_stage(cfg, RUN_DATE)
        stages.ingest_stage(cfg, RUN_DATE)  # through the driver's scratch root, as before
        with _trapped(monkeypatch, tmp_path / "trap-harmonise"):
            before = _work_done(client)
            remote = stages.harmonise_stage(cfg, RUN_DATE)
            after = _work_done(client)
        assert len(after) == 2 and all(after[w] > before[w] for w in after), (before, after)
        # the workers' processes keep no GDAL S3 setting after the tasks
        leftover = client.run(lambda: os.environ.get("AWS_S3_ENDPOINT"))
        assert set(leftover.values()) == {os.environ.get("AWS_S3_ENDPOINT")}, leftover

    final = f"{s3_root}/food_security/harmonise/{YEAR_KEY}"
    version = str(resolve_stage_dir(final))
    assert version.startswith(f"{final}/.v-")
    assert remote.outputs["output"] == version
    fs = s3_filesystem()
    assert json.loads(fs.cat_file(f"{final}/{POINTER_NAME}"))["manifest"].endswith(
        "/manifest.json")
    manifest = json.loads(fs.cat_file(f"{version}/manifest.json"))
    assert manifest["stage"] == "harmonise"
    assert manifest["inputs"]["archive"].startswith(f"{s3_root}/food_security/ingest/{YEAR_KEY}/")
    assert manifest["inputs"]["tiles"] == list(TILES)
    # the same statistics as the local run (observations, gap-filled fraction, empty months)
    local_tiles: dict[str, dict[str, Any]] = dict(local.summary["tiles"])  # type: ignore[arg-type]
    remote_tiles: dict[str, dict[str, Any]] = dict(remote.summary["tiles"])  # type: ignore[arg-type]
    assert manifest["counts"] == {t: {k: v for k, v in s.items() if k != "path"}
                                  for t, s in local_tiles.items()}
    assert {t: s["path"] for t, s in remote_tiles.items()} == {
        t: f"{version}/{t}.zarr" for t in TILES}

    for tile in TILES:
        store = zarr_store(f"{version}/{tile}.zarr", read_only=True)
        got = _arrays(store)
        assert got.keys() == expected[tile].keys(), tile
        for name, values in expected[tile].items():
            assert values.size > 0, (tile, name)
            np.testing.assert_array_equal(got[name], values, err_msg=f"{tile}: {name}")
        assert dict(zarr.open_group(store, mode="r").attrs) == local_attrs[tile]
    assert np.isfinite(got["reflectance"]).any()
    assert not (eeflow_home / "work").exists()  # nothing went to a local data root


def test_one_region_on_a_local_cluster_composites_in_process_and_a_failure_publishes_nothing(
    s3_root: str, tmp_path: Path, eeflow_home: Path,  # noqa: F811
) -> None:
    """One tile (one region) on a local cluster: composited in the driver's process, from S3."""
    from tasks.food_security.harmonise import EmptyTileError

    one_tile: dict[str, Any] = {"ingest.generator.tiles": [
        {"id": "33UXP", "revisit_days": 30, "parcels": 8, "clouded_months": [12]}],
        "samples.split": {"train_tiles": ["33UXP"], "val_tiles": [], "test_tiles": []}}
    local_root = tmp_path / "local"
    local_cfg = _cfg(str(local_root), **one_tile)
    stages.ingest_stage(local_cfg, RUN_DATE)
    stages.harmonise_stage(local_cfg, RUN_DATE)
    folder = local_root / "food_security" / "harmonise" / YEAR_KEY
    expected = _arrays(str(folder / "33UXP.zarr"))
    shutil.rmtree(local_root)

    dask = {"cluster": "local", "workers": "threads", "n_workers": 1, "threads_per_worker": 2}
    cfg = _cfg(s3_root, dask, **one_tile)
    stages.ingest_stage(cfg, RUN_DATE)
    final = f"{s3_root}/food_security/harmonise/{YEAR_KEY}"
    before = os.environ.get("AWS_S3_ENDPOINT")
    strict = cfg.model_copy(deep=True)
    strict.harmonise.max_empty_months = 1  # the clouded December fails the tile
    with pytest.raises(EmptyTileError, match="tile 33UXP: no valid"):
        stages.harmonise_stage(strict, RUN_DATE)
    fs = s3_filesystem()
    assert not fs.exists(final) or fs.ls(final) == []  # no pointer, the version deleted
    result = stages.harmonise_stage(cfg, RUN_DATE)
    version = str(resolve_stage_dir(final))
    assert result.outputs["output"] == version
    got = _arrays(zarr_store(f"{version}/33UXP.zarr", read_only=True))
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    assert os.environ.get("AWS_S3_ENDPOINT") == before  # the driver's GDAL setting is gone


def test_s3_acquisitions_list_the_year_and_read_the_same_dn_as_local_files_from_threads(
    s3_root: str, tmp_path: Path,  # noqa: F811
) -> None:
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from affine import Affine
    from rasterio.windows import Window

    from tasks.domain.crops import S2_BANDS
    from tasks.food_security.harmonise import list_s3_acquisitions
    from tasks.sentinel2.l2a import list_acquisitions, read_acquisition_dn, write_acquisition
    from tasks.sentinel2.tiles import TileGrid

    archive = tmp_path / "l2a"
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 500_000, 0, -10, 5_600_000),
                    width=24, height=24)
    rng = np.random.default_rng(3)
    dates = [dt.date(2017, 8, 31), dt.date(2017, 9, 1), dt.date(2018, 3, 5)]
    for date in dates:
        refl = (rng.integers(1, 40, (len(S2_BANDS), 24, 24)) / 100).astype(np.float32)
        scl = rng.choice(np.array([4, 8, 9], np.uint8), (12, 12))
        write_acquisition(archive, grid, date, refl, scl, bands=S2_BANDS)
    fs = s3_filesystem()
    url = f"{s3_root}/l2a"
    fs.put(str(archive), url, recursive=True)
    start, end = dt.date(2017, 9, 1), dt.date(2018, 8, 31)

    found = list_s3_acquisitions(url, "33UWP", start, end)
    local = list_acquisitions(archive, "33UWP", start, end)
    assert [a.date for a in found] == [a.date for a in local] == dates[1:]  # the year only
    assert list_s3_acquisitions(url, "33UXP", start, end) == []  # no such tile folder
    bucket_key = url.removeprefix("s3://")
    assert found[0].band_path("B8A") == f"/vsis3/{bucket_key}/33UWP/{found[0].item_id}/B8A.tif"
    assert found[0].scale == local[0].scale and found[0].offset == local[0].offset

    window = Window(3, 5, 17, 14)  # odd offsets: 20 m bands are cut inside their pixels

    def dn(acquisition: Any) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((len(S2_BANDS), 14, 17), np.uint16)
        return out, read_acquisition_dn(acquisition, S2_BANDS, window, out)

    with gdal_s3_environment(), ThreadPoolExecutor(2) as pool:  # readers on threads of their own
        remote = list(pool.map(dn, found))
    for (got, got_scl), acquisition in zip(remote, local, strict=True):
        want, want_scl = dn(acquisition)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_scl, want_scl)

    fs.rm(f"{url}/33UWP/{found[1].item_id}/{found[1].item_id}.json")
    with pytest.raises(FileNotFoundError, match="without its STAC item"):
        list_s3_acquisitions(url, "33UWP", start, end)


def test_gdal_s3_options_follow_the_eeflow_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("EEFLOW_S3_ENDPOINT", "http://minio:9000")
    assert gdal_s3_options() == {"AWS_S3_ENDPOINT": "minio:9000", "AWS_HTTPS": "NO",
                                 "AWS_VIRTUAL_HOSTING": "FALSE"}
    monkeypatch.setenv("EEFLOW_S3_ENDPOINT", "https://s3.waw3-1.cloudferro.com/")
    assert gdal_s3_options()["AWS_S3_ENDPOINT"] == "s3.waw3-1.cloudferro.com"
    assert gdal_s3_options()["AWS_HTTPS"] == "YES"
    monkeypatch.setenv("EEFLOW_S3_ENDPOINT", "ftp://minio:9000")
    with pytest.raises(ValueError, match="'ftp://minio:9000'.*not an http"):
        gdal_s3_options()
    monkeypatch.delenv("EEFLOW_S3_ENDPOINT")
    assert gdal_s3_options() == {}  # AWS itself: GDAL's defaults
    assert vsis3_path("s3://bucket/a/b.tif") == "/vsis3/bucket/a/b.tif"


def test_gdal_s3_environment_is_seen_by_other_threads_and_removed_by_the_last_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("EEFLOW_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.delenv("AWS_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_HTTPS", raising=False)
    monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "TRUE")  # the user's own setting wins
    seen: list[str | None] = []
    with gdal_s3_environment():
        with gdal_s3_environment():  # a second task's block on the same worker
            pass
        thread = threading.Thread(target=lambda: seen.append(os.environ.get("AWS_S3_ENDPOINT")))
        thread.start()
        thread.join()
        assert os.environ["AWS_HTTPS"] == "NO"
        assert os.environ["AWS_VIRTUAL_HOSTING"] == "TRUE"
    assert seen == ["minio:9000"]
    assert "AWS_S3_ENDPOINT" not in os.environ and "AWS_HTTPS" not in os.environ
    assert os.environ["AWS_VIRTUAL_HOSTING"] == "TRUE"
