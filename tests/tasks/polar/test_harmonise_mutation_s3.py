"""run_harmonise on an ``s3://`` data root (moto server on 127.0.0.1) (issue 19).

The hand-made ingest day of test_harmonise_mutation_run (two copies of the smallest generated
product, one with land, one without and with an all-zero HV noise LUT) is published on S3 by
pointer, then harmonised twice: with the synchronous scheduler (the ingest output downloaded
once, the day written through a local temporary and uploaded) and with a local distributed
cluster of one in-process worker (``_harmonise_on_workers``: tasks read the products from S3 and
write their tiles straight into a new S3 version). Each published scene must equal, value by
value, ``harmonise_scene`` of its product on a local disk, in several tiles; the day's manifest
and the return value must name the S3 locations.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tasks import staging
from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.fs import s3_filesystem
from tasks.polar import harmonise as hm
from tasks.polar.schema import BACKSCATTER_VAR, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.sentinel1.generator import GeneratedScene
from tasks.staging import zarr_store
from tasks.storage import (
    POINTER_NAME,
    atomic_dir,
    read_manifest,
    resolve_stage_dir,
    zarr_array,
)
from tests.tasks.polar.test_harmonise_mutation_run import DAY, _ingest_day, scene  # noqa: F401
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

CHUNK = 64  # the smallest chunk harmonise allows


def _config(root: str, dask: dict[str, Any]) -> PolarConfig:
    return PolarConfig.model_validate({
        "data_root": root,
        "harmonise": {"chunk": CHUNK, "multilook": 3},
        "dask": dask,
    })


@pytest.fixture(scope="module")
def local_day(scene: GeneratedScene,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingest day on a local disk (products a/ with land, b/ without)."""
    name = scene.safe_path.name
    scenes = [{"scene_id": "first", "product": f"a/{name}", "land_mask": "a/land.geojson"},
              {"scene_id": "second", "product": f"b/{name}"}]
    return _ingest_day(scene, tmp_path_factory.mktemp("local"), scenes)


@pytest.fixture(scope="module")
def alone(local_day: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, tuple[Path, dict[str, Any]]]:
    """harmonise_scene of each local product by itself: {scene id: (store, summary)}."""
    import dask

    cfg = _config("unused", {"cluster": "synchronous"}).harmonise
    name = next((local_day / "a").glob("*.SAFE")).name
    out = tmp_path_factory.mktemp("alone")
    found = {}
    for sid, folder, land in (("first", "a", local_day / "a" / "land.geojson"),
                              ("second", "b", None)):
        with dask.config.set(scheduler="synchronous"):
            found[sid] = (out / f"{sid}.zarr", hm.harmonise_scene(
                local_day / folder / name, out / f"{sid}.zarr", cfg, land_mask_path=land))
    return found


def _publish(local_day: Path, s3_root: str) -> str:  # noqa: F811
    """Publish a copy of the local ingest day on S3 (pointer layout); return its URL."""
    url = f"{s3_root}/polar/ingest/{DAY}"
    with atomic_dir(url) as tmp:
        shutil.copytree(local_day, tmp, dirs_exist_ok=True)
    return url


def _arrays(store: Any) -> dict[str, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    return {v: np.asarray(zarr_array(group, v)[...])
            for v in (BACKSCATTER_VAR, LAND_MASK_VAR, VALID_MASK_VAR)}


def _check_day(result: dict[str, Any], cfg: PolarConfig, s3_root: str,  # noqa: F811
               ingest_url: str, name: str,
               alone: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Every scene on S3 equals harmonise_scene of its local product; manifest and result."""
    out_dir = f"{s3_root}/polar/harmonise/{DAY}"
    version = str(resolve_stage_dir(out_dir))
    assert version.startswith(f"{out_dir}/.v-")
    assert s3_filesystem().exists(f"{out_dir}/{POINTER_NAME}")
    assert result["run_key"] == DAY and result["output_dir"] == out_dir
    assert result["n_scenes"] == 2 and set(result) == {"run_key", "output_dir", "n_scenes",
                                                       "scenes"}
    listed = sorted(p.rsplit("/", 1)[-1] for p in s3_filesystem().ls(version))
    assert listed == ["first.zarr", "manifest.json", "second.zarr"]
    for summary, sid in zip(result["scenes"], ("first", "second"), strict=True):
        alone_path, alone_summary = alone[sid]
        assert summary["zarr"] == f"{out_dir}/{sid}.zarr"
        got_store = zarr_store(f"{version}/{sid}.zarr", read_only=True)
        got, want = _arrays(got_store), _arrays(str(alone_path))
        assert want[BACKSCATTER_VAR].shape[1:] == (65, 67)  # 2 x 2 tiles of CHUNK
        for var in want:
            np.testing.assert_array_equal(got[var], want[var], err_msg=f"{sid}: {var}")
        got_attrs = dict(zarr.open_group(got_store, mode="r").attrs)
        want_attrs = dict(zarr.open_group(str(alone_path), mode="r").attrs)
        # the land file is named where it was read on S3 (the ingest version), also when the
        # driver read a download of it; the rest is the same as the local run's
        source = str(got_attrs.pop("land_mask_source"))
        ingest_version = str(resolve_stage_dir(ingest_url))
        assert source == (f"{ingest_version}/a/land.geojson" if sid == "first" else "none")
        want_attrs.pop("land_mask_source")
        assert got_attrs == want_attrs
        timing = {"zarr", "warp_share"}
        assert {k: v for k, v in summary.items() if k not in timing} == {
            k: v for k, v in alone_summary.items() if k not in timing}
        assert 0.0 <= summary["warp_share"] <= 1.0
    first, second = result["scenes"]
    assert first["land_pixels"] > 0 and second["land_pixels"] == 0
    assert second["noise_lut_all_zero"] == ["HV"] and len(second["warnings"]) == 1
    manifest = read_manifest(out_dir)
    assert manifest["stage"] == "harmonise"
    assert manifest["inputs"] == [f"{ingest_url}/a/{name}", f"{ingest_url}/b/{name}"]
    assert manifest["config_hash"] == config_hash(cfg.harmonise)
    assert manifest["counts"] == {
        "scenes": 2, "valid_pixels": first["valid_pixels"] + second["valid_pixels"]}
    assert manifest["run_key"] == DAY
    assert manifest["scenes"] == result["scenes"]
    assert manifest["warnings"] == second["warnings"]


@pytest.mark.parametrize("dask", [
    {"cluster": "synchronous"},
    {"cluster": "local", "workers": "threads", "n_workers": 1, "threads_per_worker": 2},
], ids=["downloaded", "on-workers"])
def test_run_harmonise_on_s3_equals_each_scene_harmonised_locally(
        local_day: Path, alone: dict[str, tuple[Path, dict[str, Any]]],
        s3_root: str, dask: dict[str, Any],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On workers, the copies are dropped; a failing drop is logged and the day still stands."""
    def drop_then_fail(run_token: str) -> None:
        staging.drop_worker_copies(run_token)
        raise OSError("worker disk gone")

    monkeypatch.setattr(hm, "drop_worker_copies", drop_then_fail)
    ingest_url = _publish(local_day, s3_root)
    cfg = _config(s3_root, dask)
    with caplog.at_level(logging.WARNING, logger=hm.__name__):
        result = hm.run_harmonise(cfg, DAY)
    _check_day(result, cfg, s3_root, ingest_url, next((local_day / "a").glob("*.SAFE")).name, alone)
    dropped = [re.fullmatch(r"could not drop the workers' input copies of run ([0-9a-f]{32}): "
                            r"worker disk gone", m) for m in caplog.messages]
    tokens = [m.group(1) for m in dropped if m]
    if dask["cluster"] == "synchronous":  # no workers: nothing to drop
        assert tokens == []
        return
    assert len(tokens) == 1
    copies = Path(tempfile.gettempdir()) / f"{staging.WORKER_COPIES_PREFIX}{tokens[0]}"
    assert not copies.exists()
