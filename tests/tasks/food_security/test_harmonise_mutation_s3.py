"""Crop harmonise on an ``s3://`` data root (moto server on 127.0.0.1), value by value (issue 19).

The two-tile archive of test_harmonise_mutation (16 x 16 px acquisitions) is copied to S3 and
harmonised by ``run_harmonise_on_s3`` on a local distributed cluster of one in-process worker:
the region tasks read the GeoTIFFs through GDAL ``/vsis3/`` and write into a new S3 version. Each
tile's store must equal, value by value, ``run_harmonise`` of the same archive on a local disk;
the result, the manifest and the pointer name the S3 version. ``list_s3_acquisitions`` and
``s3_l2a_archive`` are checked against the local lister and with their whole messages.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tasks.food_security import harmonise as hm
from tasks.fs import s3_filesystem
from tasks.sentinel2.l2a import list_acquisitions
from tasks.staging import zarr_store
from tasks.storage import POINTER_NAME, atomic_dir, read_manifest, resolve_stage_dir
from tests.tasks.food_security.test_harmonise_mutation import KEY, _config, archive  # noqa: F401
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

TILES = ["33UWP", "33UXP"]
DASK = {"cluster": "local", "workers": "threads", "n_workers": 1, "threads_per_worker": 2}


def _stores(group: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(array[...]) for name, array in group.arrays()}


def _s3_config(s3_root: str, directory: str, local_archive: Path, **changes: Any) -> Any:  # noqa: F811
    cfg = _config(Path("unused"), local_archive, TILES, **{
        "ingest.directory": directory, "dask": DASK, "harmonise.gap_fill": "nearest",
        **changes})
    cfg.data_root = s3_root
    return cfg


def test_run_harmonise_on_s3_equals_the_local_run(
        archive: Path, s3_root: str, tmp_path: Path) -> None:  # noqa: F811
    fs = s3_filesystem()
    url = f"{s3_root}/archive"
    fs.put(str(archive), url, recursive=True)
    local_cfg = _config(tmp_path, archive, TILES, **{"harmonise.gap_fill": "nearest"})
    local = hm.run_harmonise(local_cfg, "2018-03-01")
    cfg = _s3_config(s3_root, url, archive)
    result = hm.run_harmonise_on_s3(cfg, "2018-03-01")
    final = f"{s3_root}/food_security/harmonise/{KEY}"
    version = str(resolve_stage_dir(final))
    assert version.startswith(f"{final}/.v-") and fs.exists(f"{final}/{POINTER_NAME}")
    assert result == {"output": version, "agronomic_year": KEY, "tiles": {
        tile: {**local["tiles"][tile], "path": f"{version}/{tile}.zarr"} for tile in TILES}}
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(version)) == [
        "33UWP.zarr", "33UXP.zarr", "manifest.json"]
    for tile in TILES:
        got = zarr.open_group(zarr_store(f"{version}/{tile}.zarr", read_only=True), mode="r")
        want = zarr.open_group(local["tiles"][tile]["path"], mode="r")
        got_arrays, want_arrays = _stores(got), _stores(want)
        assert got_arrays.keys() == want_arrays.keys()
        for name, values in want_arrays.items():
            np.testing.assert_array_equal(got_arrays[name], values, err_msg=f"{tile}: {name}")
        assert dict(got.attrs) == dict(want.attrs)
    assert np.isfinite(_stores(got)["reflectance"]).any()
    manifest = read_manifest(final)
    want_manifest = json.loads((Path(local["output"]) / "manifest.json").read_text())
    assert manifest["inputs"] == {"archive": url, "tiles": TILES}
    for key in ("stage", "counts", "agronomic_year", "gap_fill", "masked_scl_classes"):
        assert manifest[key] == want_manifest[key], key


def test_s3_l2a_archive_of_each_source_and_a_missing_ingest(s3_root: str) -> None:  # noqa: F811
    cfg = _s3_config(s3_root, "s3://b/l2a/{agronomic_year}/x", Path("unused"))
    assert hm.s3_l2a_archive(cfg, KEY) == f"s3://b/l2a/{KEY}/x"
    cfg.ingest.source = "generator"
    ingest = f"{s3_root}/food_security/ingest/{KEY}"
    with pytest.raises(FileNotFoundError) as err:
        hm.s3_l2a_archive(cfg, KEY)
    message = str(err.value)
    assert message.startswith(
        f"no ingest output for agronomic year {KEY} at {ingest}: run the ingest stage for "
        "that year first (on the same s3:// data_root); ")
    with atomic_dir(ingest) as tmp:
        (tmp / "l2a").mkdir()
        (tmp / "l2a" / "x.txt").write_text("x")
        (tmp / "manifest.json").write_text("{}")
    version = str(resolve_stage_dir(ingest))
    assert version.startswith(f"{ingest}/.v-")
    assert hm.s3_l2a_archive(cfg, KEY) == f"{version}/l2a"


def test_list_s3_acquisitions_equals_the_local_lister(
        archive: Path, s3_root: str) -> None:  # noqa: F811
    fs = s3_filesystem()
    url = f"{s3_root}/archive"
    fs.put(str(archive), url, recursive=True)
    fs.pipe_file(f"{url}/33UWP/S2_20171001.txt", b"a file, not an acquisition folder")
    start, end = dt.date(2017, 9, 3), dt.date(2017, 11, 2)  # both ends are acquisition dates
    found = hm.list_s3_acquisitions(url, "33UWP", start, end)
    local = list_acquisitions(archive, "33UWP", start, end)
    assert [a.date for a in found] == [a.date for a in local] == [
        dt.date(2017, 9, 3), dt.date(2017, 9, 13), dt.date(2017, 11, 2)]
    for got, want in zip(found, local, strict=True):
        assert (got.item_id, got.tile, got.scale, got.offset) == (
            want.item_id, want.tile, want.scale, want.offset)
        bucket_key = url.removeprefix("s3://")
        assert got.assets.keys() == want.assets.keys()
        for band, path in got.assets.items():
            assert isinstance(path, str)
            assert path == (f"/vsis3/{bucket_key}/33UWP/{got.item_id}/"
                            f"{Path(want.assets[band]).name}")
    assert hm.list_s3_acquisitions(url, "33UWP", dt.date(2017, 9, 4), dt.date(2017, 9, 12)) == []
    assert hm.list_s3_acquisitions(url, "31UAA", start, end) == []  # no such tile folder
    item = found[1].item_id
    fs.rm(f"{url}/33UWP/{item}/{item}.json")
    with pytest.raises(FileNotFoundError) as err:
        hm.list_s3_acquisitions(url, "33UWP", start, end)
    assert str(err.value) == (
        f"{url}/33UWP/{item}: acquisition folder without its STAC item {item}.json; "
        "re-ingest the acquisition or remove the folder")
