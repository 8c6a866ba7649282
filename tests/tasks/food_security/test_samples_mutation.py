"""The samples stage checked value by value on hand-made stage outputs (issue 19).

Three tiny tiles (3 x 4 pixels, 12 months, 10 bands) whose reflectance encodes tile, month, band,
row and column, so every sample's time series, label, parcel and gap flag can be recomputed from
its row and column; the class counts, band statistics and manifest are compared with what the
stage wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tasks.domain.crops import CROP_CLASSES, S2_BANDS
from tasks.food_security.samples import gather_tile_samples, run_samples, select_pixels
from tasks.storage import stage_dir, write_manifest
from tests.tasks.food_security.s2_pipeline_data import small_config

KEY = "2017-09_2018-08"
RUN_DATE = "2018-03-01"
MONTHS = [f"{y}-{m:02d}" for y, m in [(2017, 9), (2017, 10), (2017, 11), (2017, 12)]
          + [(2018, m) for m in range(1, 9)]]
TILES = {"33UWP": 0, "33UXP": 1, "33UVP": 2}  # split order: train, val, test
# labels per tile (-1 = no reliable label); classes 1 maize, 4 winter wheat, 11 soy, 0 grassland
LABELS = {
    "33UWP": [[1, 1, -1, 4], [1, 4, 4, -1], [-1, 11, 1, 0]],
    "33UXP": [[4, -1, -1, -1], [-1, -1, 11, -1], [-1, -1, -1, 4]],
    "33UVP": [[0, 0, 0, -1], [-1, -1, -1, -1], [-1, -1, -1, 1]],
}


def _refl(tile: Any, month: Any, band: Any, row: Any, col: Any) -> Any:
    """Reflectance encoding tile, month, band, row and column (scalars or arrays)."""
    return 0.5 * tile + month / 100 + band / 1000 + row / 10_000 + col / 100_000


def _gap(month: int, row: int, col: int) -> int:
    return int((month + row + col) % 3 == 0)


def _write_stage(root: Path, cfg: Any) -> None:
    import zarr

    harmonised = stage_dir(root, cfg.use_case, "harmonise", KEY)
    labelled = stage_dir(root, cfg.use_case, "labels", KEY)
    m, b, r, c = np.meshgrid(np.arange(12), np.arange(10), np.arange(3), np.arange(4),
                             indexing="ij")
    for tile, t in TILES.items():
        comp = zarr.open_group(str(harmonised / f"{tile}.zarr"), mode="w")
        comp.attrs["months"] = MONTHS
        refl = comp.create_array("reflectance", shape=(12, 10, 3, 4), dtype="float32")
        refl[:] = _refl(t, m, b, r, c).astype("float32")
        gap = comp.create_array("gap_filled", shape=(12, 3, 4), dtype="uint8")
        gap[:] = ((m[:, 0] + r[:, 0] + c[:, 0]) % 3 == 0).astype("uint8")
        lab = zarr.open_group(str(labelled / f"{tile}.zarr"), mode="w")
        lab.create_array("label", shape=(3, 4), dtype="int16")[:] = np.array(LABELS[tile])
        parcel = 100 * (t + 1) + np.arange(12).reshape(3, 4)
        lab.create_array("parcel_id", shape=(3, 4), dtype="int64")[:] = parcel
    write_manifest(harmonised, stage="harmonise", inputs=[], config_hash="h")
    write_manifest(labelled, stage="labels", inputs=[], config_hash="l")


def _config(root: Path, **overrides: Any) -> Any:
    return small_config(root, **{"samples.max_per_class": None, **overrides})


def _expected(tile: str) -> list[tuple[int, int, int]]:
    """(row, col, label) of the labelled pixels of a tile, in row / column order."""
    grid = LABELS[tile]
    return [(r, c, grid[r][c]) for r in range(3) for c in range(4) if grid[r][c] != -1]


@pytest.fixture
def stages(tmp_path: Path) -> tuple[Path, Any]:
    cfg = _config(tmp_path)
    _write_stage(tmp_path, cfg)
    return tmp_path, cfg


def test_two_train_tiles_and_an_empty_split(tmp_path: Path) -> None:
    import zarr

    cfg = _config(tmp_path, **{"samples.split": {"train_tiles": ["33UXP", "33UWP"],
                                                 "val_tiles": [], "test_tiles": ["33UVP"]}})
    _write_stage(tmp_path, cfg)
    out = run_samples(cfg, RUN_DATE)
    train = out["splits"]["train"]
    assert train["tiles"] == ["33UXP", "33UWP"] and train["n_samples"] == 9 + 3
    ds = xr.open_zarr(train["path"], consolidated=False).load()
    # tiles in sorted order, each in row / column order
    expected = [("33UWP", r, c, k) for r, c, k in _expected("33UWP")] + [
        ("33UXP", r, c, k) for r, c, k in _expected("33UXP")]
    assert list(zip(ds.tile.values.tolist(), ds.row.values.tolist(), ds.col.values.tolist(),
                    ds.y.values.tolist(), strict=True)) == expected
    values = np.array([[[_refl(TILES[t], mm, bb, r, c) for bb in range(10)] for mm in range(12)]
                       for t, r, c, _ in expected], dtype="float32")
    np.testing.assert_array_equal(ds.x.values, values)
    np.testing.assert_allclose(out["band_mean"], values.reshape(-1, 10).mean(axis=0), rtol=1e-6)
    assert ds.parcel_id.values.tolist() == [100 * (TILES[t] + 1) + 4 * r + c
                                            for t, r, c, _ in expected]
    assert zarr.open_array(str(Path(train["path"]) / "x"), mode="r").chunks == (12, 12, 10)
    assert train["class_counts"] == {"grassland": 1, "maize": 4, "winter_wheat": 5, "soy": 2}

    val = out["splits"]["val"]
    assert val == {"path": str(Path(out["output"]) / "val.zarr"), "n_samples": 0,
                   "class_counts": {}, "tiles": []}
    empty = xr.open_zarr(val["path"], consolidated=False).load()
    assert dict(empty.sizes) == {"sample": 0, "month": 12, "band": 10}
    assert empty.x.shape == (0, 12, 10) and empty.gap_filled.shape == (0, 12)
    assert (empty.x.dtype, empty.y.dtype, empty.row.dtype, empty.col.dtype,
            empty.parcel_id.dtype, empty.gap_filled.dtype) == (
        np.float32, np.int16, np.int32, np.int32, np.int64, np.uint8)
    assert empty.tile.dtype.kind == "U"
    assert empty.attrs["n_samples"] == 0 and empty.attrs["tiles"] == []
    assert empty.attrs["class_counts"] == dict.fromkeys(CROP_CLASSES, 0)
    assert empty.attrs["months"] == MONTHS
    assert zarr.open_array(str(Path(val["path"]) / "x"), mode="r").chunks == (1, 12, 10)
    manifest = json.loads((Path(out["output"]) / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 12, "val": 0, "test": 4}
    assert manifest["class_counts"]["val"] == {}


def test_every_sample_is_the_pixel_it_names(stages: tuple[Path, Any]) -> None:
    root, cfg = stages
    out = run_samples(cfg, RUN_DATE)
    final = stage_dir(root, "food_security", "samples", KEY)
    assert out["output"] == str(final) and out["agronomic_year"] == KEY
    assert out["dataset_version"] == "v1"
    for split, tile in (("train", "33UWP"), ("val", "33UXP"), ("test", "33UVP")):
        info = out["splits"][split]
        assert info["path"] == str(final / f"{split}.zarr") and info["tiles"] == [tile]
        ds = xr.open_zarr(info["path"], consolidated=False).load()
        expected = _expected(tile)
        assert ds.sizes["sample"] == info["n_samples"] == len(expected)
        assert list(zip(ds.row.values.tolist(), ds.col.values.tolist(), ds.y.values.tolist(),
                        strict=True)) == expected
        assert ds.tile.values.tolist() == [tile] * len(expected)
        t = TILES[tile]
        for i, (r, c, _) in enumerate(expected):
            want = np.array([[_refl(t, mm, bb, r, c) for bb in range(10)] for mm in range(12)],
                            dtype="float32")
            np.testing.assert_array_equal(ds.x.values[i], want)
            assert ds.gap_filled.values[i].tolist() == [_gap(mm, r, c) for mm in range(12)]
            assert int(ds.parcel_id.values[i]) == 100 * (t + 1) + 4 * r + c
        assert (ds.x.dtype, ds.y.dtype, ds.row.dtype, ds.col.dtype, ds.parcel_id.dtype,
                ds.gap_filled.dtype) == (np.float32, np.int16, np.int32, np.int32, np.int64,
                                         np.uint8)
        counts = {CROP_CLASSES[k]: sum(e[2] == k for e in expected) for k in range(16)}
        assert info["class_counts"] == {k: v for k, v in counts.items() if v}
        assert ds.attrs["class_counts"] == counts and ds.attrs["n_samples"] == len(expected)
        assert ds.attrs["split"] == split and ds.attrs["tiles"] == [tile]
        assert ds.attrs["months"] == MONTHS and ds.month.values.tolist() == MONTHS
        assert ds.attrs["bands"] == list(S2_BANDS) and ds.band.values.tolist() == list(S2_BANDS)
        assert ds.attrs["class_names"] == list(CROP_CLASSES)
        assert ds.attrs["agronomic_year"] == KEY and ds.attrs["dataset_version"] == "v1"


def test_band_statistics_are_those_of_the_train_samples(stages: tuple[Path, Any]) -> None:
    _, cfg = stages
    out = run_samples(cfg, RUN_DATE)
    train = [(r, c) for r, c, _ in _expected("33UWP")]
    values = np.array([[[_refl(0, mm, bb, r, c) for bb in range(10)] for mm in range(12)]
                       for r, c in train], dtype="float32").reshape(-1, 10)
    np.testing.assert_allclose(out["band_mean"], values.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out["band_std"], values.std(axis=0), rtol=1e-5)
    for split in ("train", "val", "test"):
        ds = xr.open_zarr(out["splits"][split]["path"], consolidated=False)
        np.testing.assert_allclose(ds.attrs["band_mean"], values.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(ds.attrs["band_std"], values.std(axis=0), atol=1e-6)
        assert ds.attrs["band_mean"] == np.round(out["band_mean"], 6).tolist()
        assert ds.attrs["band_std"] == np.round(out["band_std"], 6).tolist()


def test_manifest_counts_what_was_written(stages: tuple[Path, Any]) -> None:
    root, cfg = stages
    out = run_samples(cfg, RUN_DATE)
    manifest = json.loads((Path(out["output"]) / "manifest.json").read_text())
    assert manifest["stage"] == "samples"
    assert manifest["counts"] == {"train": 9, "val": 3, "test": 4}
    assert manifest["class_counts"]["train"] == {"grassland": 1, "maize": 4, "winter_wheat": 3,
                                                 "soy": 1}
    assert manifest["class_counts"]["val"] == {"winter_wheat": 2, "soy": 1}
    assert manifest["class_counts"]["test"] == {"grassland": 3, "maize": 1}
    assert manifest["agronomic_year"] == KEY and manifest["dataset_version"] == "v1"
    assert manifest["inputs"] == {
        "harmonise": str(stage_dir(root, "food_security", "harmonise", KEY)),
        "labels": str(stage_dir(root, "food_security", "labels", KEY))}


def test_cap_per_class_is_seeded_and_kept_in_pixel_order(tmp_path: Path) -> None:
    cfg = _config(tmp_path, **{"samples.max_per_class": 1})
    _write_stage(tmp_path, cfg)
    out = run_samples(cfg, RUN_DATE)
    ds = xr.open_zarr(out["splits"]["train"]["path"], consolidated=False).load()
    # one pixel of each of the four train classes, sorted by position
    assert sorted(ds.y.values.tolist()) == [0, 1, 4, 11]
    flat = (ds.row.values * 4 + ds.col.values).tolist()
    assert flat == sorted(flat)
    labels = np.array(LABELS["33UWP"])
    assert labels[ds.row.values, ds.col.values].tolist() == ds.y.values.tolist()
    again = run_samples(cfg, RUN_DATE)
    ds2 = xr.open_zarr(again["splits"]["train"]["path"], consolidated=False).load()
    assert ds2.row.values.tolist() == ds.row.values.tolist()
    assert again["splits"]["test"]["class_counts"] == {"grassland": 1, "maize": 1}


def test_select_pixels_by_hand() -> None:
    labels = {"B": np.array([[0, -1], [2, 2]], np.int16), "A": np.array([[2, -1, 0]], np.int16)}
    every = select_pixels(labels, None, np.random.default_rng(0))
    assert {t: v.tolist() for t, v in every.items()} == {"A": [0, 2], "B": [0, 2, 3]}
    capped = select_pixels(labels, 2, np.random.default_rng(0))
    chosen = np.concatenate([labels[t].ravel()[capped[t]] for t in sorted(capped)])
    assert sorted(chosen.tolist()) == [0, 0, 2, 2]  # class 2 has 3 pixels: 2 kept; class 0 both
    assert all(np.all(np.diff(v) > 0) for v in capped.values())
    assert all(v.dtype == np.int64 for v in capped.values())
    exact = select_pixels(labels, 3, np.random.default_rng(0))
    assert {t: v.tolist() for t, v in exact.items()} == {"A": [0, 2], "B": [0, 2, 3]}
    assert select_pixels({}, 5, np.random.default_rng(0)) == {}
    empty = select_pixels({"A": np.full((2, 2), -1, np.int16)}, 5, np.random.default_rng(0))
    assert empty["A"].tolist() == []


def test_gather_reads_row_blocks(stages: tuple[Path, Any]) -> None:
    root, _ = stages
    comp = stage_dir(root, "food_security", "harmonise", KEY) / "33UXP.zarr"
    lab = stage_dir(root, "food_security", "labels", KEY) / "33UXP.zarr"
    pixels = np.array([0, 6, 11])  # (0, 0), (1, 2), (2, 3)
    for block_rows in (1, 2, 16):
        got = gather_tile_samples(comp, lab, pixels, block_rows)
        assert got["row"].tolist() == [0, 1, 2] and got["col"].tolist() == [0, 2, 3]
        assert got["y"].tolist() == [4, 11, 4]
        assert got["parcel_id"].tolist() == [200, 206, 211]
        assert float(got["x"][1, 3, 5]) == pytest.approx(_refl(1, 3, 5, 1, 2), rel=1e-6)
        assert float(got["x"][2, 11, 9]) == pytest.approx(_refl(1, 11, 9, 2, 3), rel=1e-6)
        assert got["gap_filled"][2].tolist() == [_gap(mm, 2, 3) for mm in range(12)]


def test_missing_labels_and_empty_train_split(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _write_stage(tmp_path, cfg)
    store = stage_dir(tmp_path, "food_security", "labels", KEY) / "33UXP.zarr"
    import shutil

    shutil.rmtree(store)
    with pytest.raises(FileNotFoundError) as missing:
        run_samples(cfg, RUN_DATE)
    assert str(missing.value) == (
        f"{store} is missing: tile 33UXP has no labels for {KEY}; re-run labels")
    cfg = _config(tmp_path / "b")
    _write_stage(tmp_path / "b", cfg)
    import zarr

    lab = zarr.open_group(str(stage_dir(tmp_path / "b", "food_security", "labels", KEY)
                              / "33UWP.zarr"), mode="r+")
    label = lab["label"]
    assert isinstance(label, zarr.Array)
    label[:] = np.full((3, 4), -1, np.int16)
    with pytest.raises(ValueError) as empty:
        run_samples(cfg, RUN_DATE)
    assert str(empty.value) == (
        f"agronomic year {KEY}: the train tiles ['33UWP'] have no reliable label; check "
        "labels/report.json (parcel map coverage, buffer, outlier filter)"
    )


def test_the_seeded_choice_order_and_the_log(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from tasks.config.common import config_hash

    cfg = _config(tmp_path, **{"samples.max_per_class": 1})
    _write_stage(tmp_path, cfg)
    with caplog.at_level("INFO", logger="tasks.food_security.samples"):
        out = run_samples(cfg, RUN_DATE)
    # the generator of (seed, 7) serves train, val and test in that order
    rng = np.random.default_rng([cfg.seed, 7])
    for split, tile in (("train", "33UWP"), ("val", "33UXP"), ("test", "33UVP")):
        chosen = select_pixels({tile: np.array(LABELS[tile], np.int16)}, 1, rng)[tile]
        ds = xr.open_zarr(out["splits"][split]["path"], consolidated=False).load()
        assert (ds.row.values * 4 + ds.col.values).tolist() == chosen.tolist(), split
    assert [r.getMessage() for r in caplog.records] == [
        f"samples {KEY} train: 4", f"samples {KEY} val: 2", f"samples {KEY} test: 2"]
    manifest = json.loads((Path(out["output"]) / "manifest.json").read_text())
    assert manifest["config_hash"] == config_hash(cfg)
    # each input stage must be complete (its manifest written)
    for stage in ("harmonise", "labels"):
        (stage_dir(tmp_path, "food_security", stage, KEY) / "manifest.json").unlink()
        with pytest.raises(FileNotFoundError, match="manifest.json"):
            run_samples(cfg, RUN_DATE)
        write_manifest(stage_dir(tmp_path, "food_security", stage, KEY), stage=stage, inputs=[],
                       config_hash="h")


def test_a_class_at_the_cap_draws_nothing_from_the_generator() -> None:
    # class 0 has exactly the cap: kept whole, no draw; class 1 then gets the generator's first
    labels = {"A": np.array([[0, 0, 1, 1, 1, 1]], np.int16)}
    chosen = select_pixels(labels, 2, np.random.default_rng(0))["A"].tolist()
    first_draw = np.random.default_rng(0).choice(np.array([2, 3, 4, 5]), 2, replace=False)
    assert chosen == [0, 1, *sorted(first_draw.tolist())] == [0, 1, 4, 5]
