"""run_harmonise on a hand-made ingest day of two tiny products (issue 19).

The ingest folder is written here directly (two copies of the smallest generated product, one
with land polygons, one without and with an all-zero HV noise LUT, plus the ingest manifest), so
the stage runs in seconds. Each scene of the day must be what harmonise_scene makes of that
product alone, and the day's manifest and return value must describe what was written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.polar import harmonise as hm
from tasks.polar.schema import BACKSCATTER_VAR, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.sentinel1.generator import GeneratedScene, generate_ew_grd_scene
from tasks.storage import stage_location, write_manifest, zarr_array

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
DAY = "2026-01-15"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> GeneratedScene:
    return generate_ew_grd_scene(tmp_path_factory.mktemp("tiny"), seed=5, start_time=START,
                                 lines=32, samples=64, land_fraction=0.3)


def _config(root: Path) -> PolarConfig:
    return PolarConfig.model_validate({
        "data_root": str(root),
        "harmonise": {"chunk": 256, "multilook": 3},
        "dask": {"cluster": "synchronous"},
    })


def _ingest_day(scene: GeneratedScene, root: Path, scenes: list[dict[str, Any]] | None) -> Path:
    """Write {root}/polar/ingest/{DAY}/ with products a/ (land) and b/ (no land, HV noise 0)."""
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    ingest = stage_location(root, "polar", "ingest", DAY)
    assert isinstance(ingest, Path)
    name = scene.safe_path.name
    shutil.copytree(scene.safe_path, ingest / "a" / name)
    shutil.copy(scene.land_mask_path, ingest / "a" / "land.geojson")
    shutil.copytree(scene.safe_path, ingest / "b" / name)
    zero_noise_luts(ingest / "b" / name, ["HV"])
    extra: dict[str, Any] = {"run_key": DAY}
    if scenes is not None:
        extra["scenes"] = scenes
    write_manifest(ingest, stage="ingest", inputs={"source": "test"}, config_hash="-",
                   extra=extra)
    return ingest


def _arrays(group: zarr.Group) -> list[np.ndarray]:
    return [np.asarray(zarr_array(group, v)[:])
            for v in (BACKSCATTER_VAR, LAND_MASK_VAR, VALID_MASK_VAR)]


def test_run_harmonise_writes_every_scene_and_a_manifest_of_what_it_wrote(
        scene: GeneratedScene, tmp_path: Path) -> None:
    name = scene.safe_path.name
    scenes = [{"scene_id": "first", "product": f"a/{name}", "land_mask": "a/land.geojson"},
              {"scene_id": "second", "product": f"b/{name}"}]
    ingest = _ingest_day(scene, tmp_path / "root", scenes)
    cfg = _config(tmp_path / "root")
    result = hm.run_harmonise(cfg, dt.date(2026, 1, 15))
    out_dir = stage_location(tmp_path / "root", "polar", "harmonise", DAY)
    assert result["run_key"] == DAY and result["output_dir"] == str(out_dir)
    assert result["n_scenes"] == 2 and set(result) == {"run_key", "output_dir", "n_scenes",
                                                       "scenes"}
    assert sorted(p.name for p in Path(out_dir).iterdir()) == [
        "first.zarr", "manifest.json", "second.zarr"]
    # each scene is what harmonise_scene makes of its product alone
    import dask

    for summary, (product, land) in zip(
            result["scenes"], [(ingest / "a" / name, ingest / "a" / "land.geojson"),
                               (ingest / "b" / name, None)], strict=True):
        with dask.config.set(scheduler="synchronous"):
            alone = hm.harmonise_scene(product, tmp_path / "alone.zarr", cfg.harmonise,
                                       land_mask_path=land)
        got = zarr.open_group(str(Path(summary["zarr"])), mode="r")
        want = zarr.open_group(str(tmp_path / "alone.zarr"), mode="r")
        for a, b in zip(_arrays(got), _arrays(want), strict=True):
            np.testing.assert_array_equal(a, b)
        assert dict(got.attrs) == dict(want.attrs)
        timing = {"zarr", "warp_share"}
        assert {k: v for k, v in summary.items() if k not in timing} == {
            k: v for k, v in alone.items() if k not in timing}
        shutil.rmtree(tmp_path / "alone.zarr")
    first, second = result["scenes"]
    assert first["zarr"] == f"{out_dir}/first.zarr" and second["zarr"] == f"{out_dir}/second.zarr"
    assert first["land_pixels"] > 0 and second["land_pixels"] == 0
    second_attrs = dict(zarr.open_group(f"{out_dir}/second.zarr", mode="r").attrs)
    assert second_attrs["land_mask_source"] == "none"
    assert first["warnings"] == [] and len(second["warnings"]) == 1
    assert second["noise_lut_all_zero"] == ["HV"]
    # the day's manifest
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    assert manifest["stage"] == "harmonise"
    assert manifest["inputs"] == [f"{ingest}/a/{name}", f"{ingest}/b/{name}"]
    assert manifest["config_hash"] == config_hash(cfg.harmonise)
    assert manifest["counts"] == {
        "scenes": 2, "valid_pixels": first["valid_pixels"] + second["valid_pixels"]}
    assert manifest["run_key"] == DAY
    assert manifest["scenes"] == json.loads(json.dumps(result["scenes"]))
    assert manifest["warnings"] == second["warnings"]


def test_run_harmonise_refuses_a_day_without_ingest_or_scenes(
        scene: GeneratedScene, tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _config(root)
    ingest = stage_location(root, "polar", "ingest", DAY)
    with pytest.raises(FileNotFoundError) as missing:
        hm.run_harmonise(cfg, DAY)
    assert str(missing.value) == (
        f"no ingest output for {DAY} at {ingest}: run the ingest stage first "
        f"(eeflow polar ingest --run-date {DAY})")
    listed: list[dict[str, Any]] | None
    for listed in ([], None):  # an empty list, or no "scenes" at all
        if Path(ingest).exists():
            shutil.rmtree(ingest)
        _ingest_day(scene, root, listed)
        with pytest.raises(ValueError) as empty:
            hm.run_harmonise(cfg, DAY)
        assert str(empty.value) == (
            f"ingest manifest {ingest}/manifest.json lists no scenes for {DAY}")
    assert not Path(stage_location(root, "polar", "harmonise", DAY)).exists()
