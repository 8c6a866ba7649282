import datetime as dt
import shutil
from pathlib import Path

import pytest

from tasks.config.polar import PolarConfig
from tasks.polar.ingest import NoScenesError, ingest_day
from tasks.sentinel1.generator import generate_ew_grd_scene
from tasks.sentinel1.safe import open_safe
from tasks.storage import read_manifest

IW_GRD = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "s1_safe"
    / "sarsen"
    / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
)


def _cfg(**ingest):
    gen = {"lines": 64, "samples": 96, "scenes_per_day": 2}
    gen.update(ingest.pop("generator", {}))
    return PolarConfig.model_validate({"ingest": {"generator": gen, **ingest}})


def test_generator_day_is_written_and_rerun_replaces_it(eeflow_home):
    cfg = _cfg()
    first = ingest_day(cfg, "2026-01-15")
    out = Path(first["output_dir"])
    assert first["n_scenes"] == 2 and out.name == "2026-01-15"
    manifest = read_manifest(out)
    assert manifest["counts"]["scenes"] == 2
    for scene in manifest["scenes"]:
        product = open_safe(out / scene["product"])
        assert product.start_time.date() == dt.date(2026, 1, 15)
        assert (out / scene["chart"]).is_file() and (out / scene["land_mask"]).is_file()
    again = ingest_day(cfg, "2026-01-15")
    assert [s["scene_id"] for s in again["scenes"]] == [s["scene_id"] for s in first["scenes"]]
    assert len(list(out.glob("*.SAFE"))) == 2  # replaced, not duplicated
    other = ingest_day(cfg, "2026-01-16")
    assert {s["scene_id"] for s in other["scenes"]}.isdisjoint(
        {s["scene_id"] for s in first["scenes"]}
    )


def test_generator_places_scenes_in_the_aoi(eeflow_home):
    cfg = _cfg(aoi_bbox=(10.0, 78.0, 12.0, 79.0), generator={"scenes_per_day": 1})
    result = ingest_day(cfg, "2026-01-15")
    product = open_safe(Path(result["output_dir"]) / result["scenes"][0]["product"])
    assert product.footprint.intersects(__import__("shapely").geometry.box(10, 78, 12, 79))


def test_empty_day_raises_naming_day_and_source(eeflow_home):
    with pytest.raises(
        NoScenesError, match=r"2026-01-15 from source 'generator'.*scenes_per_day is 0"
    ):
        ingest_day(_cfg(generator={"scenes_per_day": 0}), "2026-01-15")


def test_directory_source_filters_day_mode_and_aoi(eeflow_home, tmp_path):
    src = tmp_path / "products"
    src.mkdir()
    scene = generate_ew_grd_scene(
        src,
        seed=3,
        lines=64,
        samples=96,
        center_lonlat=(5.0, 78.0),
        start_time=dt.datetime(2026, 1, 15, 6, tzinfo=dt.UTC),
    )
    generate_ew_grd_scene(
        src, seed=4, lines=64, samples=96, start_time=dt.datetime(2026, 1, 16, 6, tzinfo=dt.UTC)
    )
    shutil.copytree(IW_GRD, src / IW_GRD.name)  # IW: rejected with its reason
    cfg = _cfg(source="directory", directory=str(src))
    result = ingest_day(cfg, "2026-01-15")
    assert [s["scene_id"] for s in result["scenes"]] == [scene.scene_id]
    assert result["scenes"][0]["chart"].endswith(".chart.geojson")
    assert result["skipped"]["other_day"] == 1
    with pytest.raises(NoScenesError, match="outside aoi_bbox"):
        ingest_day(
            _cfg(source="directory", directory=str(src), aoi_bbox=(100, 10, 110, 20)), "2026-01-15"
        )
    with pytest.raises(NoScenesError, match="mode is 'IW', expected 'EW'"):
        ingest_day(cfg, "2021-12-23")
    # a failed ingest leaves the previous good day in place
    assert (Path(result["output_dir"]) / "manifest.json").is_file()


def test_directory_must_exist(eeflow_home, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest_day(_cfg(source="directory", directory=str(tmp_path / "nope")), "2026-01-15")
