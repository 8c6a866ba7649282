import datetime as dt
import json

import pytest

from tasks.storage import (
    agronomic_year,
    agronomic_year_key,
    atomic_dir,
    atomic_write_json,
    day_run_key,
    read_manifest,
    stage_dir,
    write_manifest,
    zarr_array,
    zarr_attrs,
)


def test_run_keys():
    assert day_run_key("2026-11-25T06:00:00+00:00") == "2026-11-25"
    assert agronomic_year_key(dt.date(2018, 8, 31)) == "2017-09_2018-08"
    assert agronomic_year_key(dt.date(2017, 9, 1)) == "2017-09_2018-08"
    assert agronomic_year(dt.date(2018, 1, 5)) == (dt.date(2017, 9, 1), dt.date(2018, 8, 31))
    with pytest.raises(ValueError, match="not an ISO date"):
        day_run_key("yesterday")


def test_stage_dir_layout_and_rejects_traversal(tmp_path):
    assert (
        stage_dir(tmp_path, "polar", "predict", "2026-11-25")
        == tmp_path / "polar/predict/2026-11-25"
    )
    with pytest.raises(ValueError, match="run_key"):
        stage_dir(tmp_path, "polar", "predict", "../x")


def test_atomic_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as d:
        (d / "a.txt").write_text("first")
    assert (final / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as d:
            (d / "a.txt").write_text("broken")
            raise RuntimeError("stage failed")
    assert (final / "a.txt").read_text() == "first"
    with atomic_dir(final) as d:
        (d / "b.txt").write_text("second")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folders left


def test_manifest_round_trip(tmp_path):
    write_manifest(tmp_path, stage="x", inputs=["a"], config_hash="abc", counts={"n": 3})
    m = read_manifest(tmp_path)
    assert m["stage"] == "x" and m["counts"] == {"n": 3} and m["config_hash"] == "abc"
    assert m["code_version"]
    with pytest.raises(FileNotFoundError, match="not a complete eeflow stage output"):
        read_manifest(tmp_path / "missing")


def test_atomic_write_json(tmp_path):
    atomic_write_json(tmp_path / "s" / "f.json", {"b": 1, "a": 2})
    assert json.loads((tmp_path / "s" / "f.json").read_text()) == {"a": 2, "b": 1}


def test_zarr_array_and_attrs(tmp_path):
    import numpy as np
    import zarr

    group = zarr.open_group(tmp_path / "t.zarr", mode="w")
    group.create_array("x", data=np.arange(6, dtype=np.int16).reshape(2, 3))
    group.create_group("sub")
    group.attrs["bands"] = ["B04", "B08"]
    array = zarr_array(group, "x")
    assert isinstance(array, zarr.Array)
    assert array.shape == (2, 3)
    assert np.asarray(array[1]).tolist() == [3, 4, 5]
    assert zarr_attrs(group) == {"bands": ["B04", "B08"]}
    with pytest.raises(TypeError, match="'sub' of zarr store .* is a group, not an array"):
        zarr_array(group, "sub")
    with pytest.raises(KeyError):
        zarr_array(group, "missing")
