"""Patch extraction checked patch by patch on hand-made scenes (issue 19).

Two tiny scenes (3 bands stored as incidence, HH, HV; 4 px patch grid) whose backscatter encodes
band, row and column, and label rasters laid out patch by patch with land, invalid pixels, mixed
and unlabelled patches. The accepted origins are recomputed with plain loops, every written patch
is compared with the scene window it names, and the attributes with sums taken here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import tasks.polar.patches as patches_module
from tasks.domain import ice
from tasks.polar.patches import (
    Tile,
    balance_candidates,
    check_scene_pair,
    cut_patches,
    extract_patches,
    find_candidates,
    plan_tiles,
    run_patches,
    shared_chunks,
)
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

NAMES = {c.code: c.name for c in ice.ice_classes()}
# label code of every 4 x 4 patch of scene A (4 x 6 patches)
CODES_A = [[1, 1, 2, 2, 3, 0],
           [1, 4, 4, 5, 3, 3],
           [2, 2, 5, 5, 1, 1],
           [3, 4, 0, 1, 2, 5]]
CODES_B = [[5, 1, 4],
           [2, 3, 3]]


def _backscatter(scene: int, height: int, width: int) -> np.ndarray:
    """(HH, HV, incidence) float32 encoding scene, row and column."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    hh = 1000 * scene + 100 * y + x
    return np.stack([hh, -hh, 30 + x / 8]).astype(np.float32)


def _write_pair(folder: Path, name: str, scene: int, codes: list[list[int]],
                edit: Any = None, px: int = 4) -> tuple[Path, Path]:
    grid = np.array(codes, np.uint8)
    label = np.repeat(np.repeat(grid, px, 0), px, 1)
    height, width = label.shape
    land = np.zeros((height, width), np.uint8)
    valid = np.ones((height, width), np.uint8)
    values = _backscatter(scene, height, width)
    if edit is not None:
        edit(label, land, valid, values)
    stored = values[[2, 0, 1]]  # stored as incidence, HH, HV: read back in BANDS order
    ds = xr.Dataset({"backscatter": (("band", "y", "x"), stored),
                     "land_mask": (("y", "x"), land), "valid_mask": (("y", "x"), valid)},
                    coords={"band": np.array(["incidence", "HH", "HV"], dtype=object)},
                    attrs={"scene_id": f"S1_{name}"})
    scene_path, label_path = folder / f"{name}.zarr", folder / f"{name}_labels.zarr"
    ds.to_zarr(scene_path, mode="w", zarr_format=3, consolidated=False)
    xr.Dataset({"label": (("y", "x"), label)}).to_zarr(label_path, mode="w", zarr_format=3,
                                                        consolidated=False)
    return scene_path, label_path


def _edit_a(label: np.ndarray, land: np.ndarray, valid: np.ndarray, values: np.ndarray) -> None:
    land[5, 10] = 1  # patch (1, 2): land
    valid[11, 1] = 0  # patch (2, 0): invalid
    label[0:4, 12:16] = 2  # patch (0, 3): 12 px class 2, 4 px class 3 (purity 0.75)
    label[3, 12:16] = 3
    label[12:14, 0:4] = 0  # patch (3, 0): 8 px no label, 8 px class 3 (purity 0.5)
    values[0, 6, 21] = np.nan  # in patch (1, 5), which is land below: never cut
    land[7, 22] = 1


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("scenes")
    return [_write_pair(folder, "A", 0, CODES_A, _edit_a), _write_pair(folder, "B", 1, CODES_B)]


def _read(path: Path, name: str) -> np.ndarray:
    return np.asarray(zarr.open_array(str(path / name), mode="r")[...])


def _expected_origins(scene: Path, labels: Path, size: int, stride: int,
                      min_purity: float) -> list[tuple[int, int, int]]:
    """(grid row, grid col, code) of every acceptable patch, by plain loops."""
    land, valid, label = _read(scene, "land_mask"), _read(scene, "valid_mask"), _read(labels,
                                                                                      "label")
    out = []
    for r in range((label.shape[0] - size) // stride + 1):
        for c in range((label.shape[1] - size) // stride + 1):
            win = (slice(r * stride, r * stride + size), slice(c * stride, c * stride + size))
            if land[win].any() or not valid[win].all():
                continue
            counts = np.bincount(label[win].ravel(), minlength=6)
            counts[0] = 0
            code = int(counts.argmax())
            if code and counts[code] / size**2 >= min_purity:
                out.append((r, c, code))
    return out


def test_plan_tiles_and_pixel_windows() -> None:
    tiles = plan_tiles(3, (17, 26), 4, 4, 8)
    assert [(t.row0, t.row1, t.col0, t.col1) for t in tiles] == [
        (0, 2, 0, 2), (0, 2, 2, 4), (0, 2, 4, 6), (2, 4, 0, 2), (2, 4, 2, 4), (2, 4, 4, 6)]
    assert {t.scene_index for t in tiles} == {3}
    assert tiles[4].pixel_window(4, 4) == (slice(8, 16), slice(8, 16))
    assert plan_tiles(0, (10, 10), 4, 2, 3) == [
        Tile(0, r, min(r + 1, 4), c, min(c + 1, 4)) for r in range(4) for c in range(4)]
    assert Tile(0, 1, 3, 2, 4).pixel_window(4, 2) == (slice(2, 8), slice(4, 10))
    assert plan_tiles(0, (3, 30), 4, 4, 8) == []  # smaller than one patch
    assert plan_tiles(0, (4, 4), 4, 4, 1024) == [Tile(0, 0, 1, 0, 1)]


@pytest.mark.parametrize(("stride", "min_purity"), [(4, 0.9), (4, 0.75), (2, 0.6)])
def test_find_candidates_equals_plain_loops(scenes: list[tuple[Path, Path]], stride: int,
                                            min_purity: float) -> None:
    scene, labels = scenes[0]
    expected = _expected_origins(scene, labels, 4, stride, min_purity)
    got = []
    for tile in plan_tiles(0, (16, 24), 4, stride, 8):
        rows = find_candidates(str(scene), str(labels), tile, 4, stride, min_purity)
        assert rows.dtype == np.int32 and rows.shape[1:] == (3,)
        assert all(tile.row0 <= r < tile.row1 and tile.col0 <= c < tile.col1 for r, c, _ in rows)
        got += [tuple(int(v) for v in row) for row in rows]
    assert sorted(got) == expected
    if stride == 4:
        assert ((0, 3, 2) in got) == (min_purity <= 0.75)
        assert not any((r, c) in ((1, 2), (2, 0), (3, 0), (1, 5), (0, 5), (3, 2))
                       for r, c, _ in got)


def test_label_codes_outside_the_classes_are_refused(tmp_path: Path) -> None:
    def bad(label: np.ndarray, *_: Any) -> None:
        label[2, 2] = 6

    scene, labels = _write_pair(tmp_path, "bad", 0, [[1, 2]], bad)
    with pytest.raises(ValueError) as err:
        find_candidates(str(scene), str(labels), Tile(0, 0, 1, 0, 2), 4, 4, 0.5)
    assert str(err.value) == (f"{labels}: label code 6 outside 0..5 (codes of ice_classes.csv)")


def test_cut_patches_in_bands_order_and_non_finite_refused(
        scenes: list[tuple[Path, Path]], tmp_path: Path) -> None:
    scene, _ = scenes[0]
    values = _backscatter(0, 16, 24)
    tile = Tile(0, 2, 4, 2, 4)
    got = cut_patches(str(scene), tile, np.array([[2, 3], [3, 2]]), 4, 4)
    assert got.dtype == np.float32 and got.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(got[0], values[:, 8:12, 12:16])
    np.testing.assert_array_equal(got[1], values[:, 12:16, 8:12])
    strided = cut_patches(str(scene), Tile(0, 1, 3, 1, 3), np.array([[2, 1]]), 4, 2)
    np.testing.assert_array_equal(strided[0], values[:, 4:8, 2:6])

    def nan(label: np.ndarray, land: np.ndarray, valid: np.ndarray, v: np.ndarray) -> None:
        v[1, 2, 6] = np.inf

    bad_scene, _ = _write_pair(tmp_path, "nan", 0, [[1, 1, 1]], nan)
    with pytest.raises(ValueError) as err:
        cut_patches(str(bad_scene), Tile(0, 0, 1, 0, 3), np.array([[0, 0], [0, 1], [0, 2]]), 4, 4)
    assert str(err.value) == (
        f"{bad_scene}: non-finite backscatter in a patch at pixel (y=0, x=4) where valid_mask is "
        "1; the harmonised scene's valid_mask is wrong")


def _candidates(codes: list[int]) -> np.ndarray:
    n = len(codes)
    return np.column_stack([np.zeros(n), np.arange(n) // 3, np.arange(n), np.arange(n) % 5,
                            codes]).astype(np.int32)


def test_balance_counts_caps_schemes_and_order() -> None:
    codes = [1] * 7 + [2] * 3 + [4] * 5 + [5] * 1
    rng = np.random.default_rng(0)
    candidates = _candidates(list(rng.permutation(codes)))
    every = balance_candidates(candidates, balance="none", max_per_class=100,
                               class_scheme="five_class", seed=1)
    assert every.tolist() == candidates.tolist()  # all kept, already in order
    under = balance_candidates(candidates, balance="undersample", max_per_class=100,
                               class_scheme="five_class", seed=1)
    assert np.bincount(under[:, 4], minlength=6).tolist() == [0, 1, 1, 0, 1, 1]
    capped = balance_candidates(candidates, balance="none", max_per_class=4,
                                class_scheme="five_class", seed=1)
    assert np.bincount(capped[:, 4], minlength=6).tolist() == [0, 4, 3, 0, 4, 1]
    binary = balance_candidates(candidates, balance="undersample", max_per_class=100,
                                class_scheme="binary", seed=1)
    assert (binary[:, 4] == 1).sum() == 7 and (binary[:, 4] != 1).sum() == 7
    again = balance_candidates(candidates, balance="undersample", max_per_class=100,
                               class_scheme="binary", seed=1)
    assert again.tolist() == binary.tolist()  # seeded
    other = balance_candidates(candidates, balance="undersample", max_per_class=100,
                               class_scheme="binary", seed=2)
    assert other.tolist() != binary.tolist()
    for chosen in (under, capped, binary):
        rows = [tuple(r) for r in chosen.tolist()]
        assert rows == sorted(rows)  # (scene, tile, row, col)
        assert set(rows) <= {tuple(r) for r in candidates.tolist()}
    empty = balance_candidates(candidates[:0], balance="undersample", max_per_class=5,
                               class_scheme="five_class", seed=0)
    assert empty.shape == (0, 5)
    # order by scene first, then tile, row, column
    mixed = np.array([[1, 0, 0, 0, 1], [0, 2, 0, 0, 1], [0, 1, 5, 0, 1], [0, 1, 4, 9, 1],
                      [0, 1, 4, 2, 1]], np.int32)
    assert balance_candidates(mixed, balance="none", max_per_class=9, class_scheme="five_class",
                              seed=0)[:, :4].tolist() == [[0, 1, 4, 2], [0, 1, 4, 9],
                                                          [0, 1, 5, 0], [0, 2, 0, 0],
                                                          [1, 0, 0, 0]]


def test_shared_chunks_by_hand() -> None:
    # tiles start at rows 0, 5, 6, 14; 17 rows; chunks of 4
    assert shared_chunks([0, 5, 6, 14, 17], 4) == [
        (4, 8, 0, 2), (12, 16, 2, 3), (16, 17, 3, 3)]
    assert shared_chunks([0, 8], 4) == []
    assert shared_chunks([0, 3], 4) == [(0, 3, 0, 0)]


@pytest.mark.parametrize("chunk_bytes", [3 * 3 * 16 * 4, patches_module.OUTPUT_CHUNK_BYTES])
def test_extract_writes_every_chosen_patch(scenes: list[tuple[Path, Path]], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           chunk_bytes: int) -> None:
    monkeypatch.setattr(patches_module, "OUTPUT_CHUNK_BYTES", chunk_bytes)
    out = tmp_path / "p.zarr"
    summary = extract_patches([s for s, _ in scenes], [lab for _, lab in scenes], out, size=4,
                              min_purity=0.9, balance="none", max_per_class=1000, seed=3,
                              dataset_version="vX", tile_px=8)
    expected = []
    for index, (scene, labels) in enumerate(scenes):
        width_tiles = -(-((_read(labels, "label").shape[1] - 4) // 4 + 1) // 2)
        for r, c, code in _expected_origins(scene, labels, 4, 4, 0.9):
            expected.append((index, (r // 2) * width_tiles + c // 2, r, c, code))
    expected.sort()
    n = len(expected)
    assert summary["n_patches"] == n and n > 15
    group = zarr.open_group(str(out), mode="r")
    x = _read(out, "x")
    assert x.shape == (n, 3, 4, 4)
    chunk_n = max(1, chunk_bytes // (3 * 4 * 4 * 4))
    assert zarr.open_array(str(out / "x"), mode="r").chunks == (min(chunk_n, 10**9), 3, 4, 4)
    values = [_backscatter(0, 16, 24), _backscatter(1, 8, 12)]
    for i, (scene_index, _, r, c, _) in enumerate(expected):
        np.testing.assert_array_equal(x[i], values[scene_index][:, 4 * r:4 * r + 4,
                                                                 4 * c:4 * c + 4])
    ds = xr.open_zarr(out)
    assert (ds.x.dims, ds.y.dims, ds.scene.dims, ds.origin.dims) == (
        ("patch", "band", "py", "px"), ("patch",), ("patch",), ("patch", "yx"))
    assert (ds.x.dtype, ds.y.dtype, ds.scene.dtype, ds.origin.dtype) == (
        np.float32, np.uint8, np.int16, np.int32)
    assert _read(out, "y").tolist() == [e[4] for e in expected]
    assert _read(out, "scene").tolist() == [e[0] for e in expected]
    assert _read(out, "origin").tolist() == [[4 * e[2], 4 * e[3]] for e in expected]
    chosen = np.stack([x[i] for i in range(n)]).transpose(1, 0, 2, 3).reshape(3, -1)
    mean = chosen.astype(np.float64).mean(axis=1)
    std = chosen.astype(np.float64).std(axis=1)
    attrs = dict(group.attrs)
    np.testing.assert_allclose(np.asarray(attrs["band_mean"], float), mean, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(attrs["band_std"], float), std, rtol=1e-6)
    counts = {NAMES[k]: sum(e[4] == k for e in expected) for k in NAMES}
    assert attrs["class_counts"] == counts
    assert attrs["candidate_counts"] == attrs["class_counts"]
    assert summary["class_counts"] == attrs["class_counts"]
    assert summary["band_mean"] == attrs["band_mean"] and summary["path"] == str(out)
    assert attrs["bands"] == ["HH", "HV", "incidence"] and attrs["n_patches"] == n
    assert {k: attrs[k] for k in ("patch_size", "stride", "min_purity", "balance",
                                  "balance_scheme", "max_per_class", "seed",
                                  "dataset_version")} == {
        "patch_size": 4, "stride": 4, "min_purity": 0.9, "balance": "none",
        "balance_scheme": "five_class", "max_per_class": 1000, "seed": 3,
        "dataset_version": "vX"}
    assert attrs["scenes"] == ["S1_A", "S1_B"]
    assert attrs["scene_paths"] == [str(s) for s, _ in scenes]
    assert attrs["label_paths"] == [str(lab) for _, lab in scenes]


def test_extract_undersampled_strided_patches(scenes: list[tuple[Path, Path]],
                                              tmp_path: Path) -> None:
    out = tmp_path / "u.zarr"
    scene, labels = scenes[0]
    summary = extract_patches([scene], [labels], out, size=4, stride=2, min_purity=0.6,
                              balance="undersample", max_per_class=3, seed=5, tile_px=6)
    candidates = _expected_origins(scene, labels, 4, 2, 0.6)
    present = sorted({code for _, _, code in candidates})
    per_class = min(3, *(sum(c == k for _, _, c in candidates) for k in present))
    assert summary["n_patches"] == per_class * len(present)
    assert summary["candidate_counts"] == {
        NAMES[k]: sum(c == k for _, _, c in candidates) for k in NAMES}
    y = _read(out, "y")
    origin = _read(out, "origin")
    x = _read(out, "x")
    values = _backscatter(0, 16, 24)
    assert np.bincount(y, minlength=6)[present].tolist() == [per_class] * len(present)
    for i, (r0, c0) in enumerate(origin.tolist()):
        assert (r0 // 2, c0 // 2, int(y[i])) in candidates
        np.testing.assert_array_equal(x[i], values[:, r0:r0 + 4, c0:c0 + 4])
    assert dict(zarr.open_group(str(out), mode="r").attrs)["stride"] == 2


def test_inputs_are_checked_with_clear_messages(scenes: list[tuple[Path, Path]],
                                                tmp_path: Path) -> None:
    scene, labels = scenes[0]
    assert check_scene_pair(scene, labels) == (16, 24)
    with pytest.raises(ValueError) as err:
        extract_patches([scene, scene], [labels], tmp_path / "o.zarr", size=4)
    assert str(err.value) == ("need one label raster per scene and at least one scene; got 2 "
                              "scenes and 1 label rasters")
    with pytest.raises(ValueError, match="at least one scene; got 0 scenes"):
        extract_patches([], [], tmp_path / "o.zarr", size=4)
    with pytest.raises(ValueError) as err:
        extract_patches([scene], [labels], tmp_path / "o.zarr", size=16, min_purity=0.5)
    assert str(err.value) == (
        f"no 16x16 patch of {[str(scene)]} is free of land / invalid pixels with a label purity "
        ">= 0.5; lower patches.min_purity or check the label rasters")
    missing = tmp_path / "nothing.zarr"
    with pytest.raises(FileNotFoundError) as nf:
        check_scene_pair(scene, missing)
    assert str(nf.value) == f"{missing} does not exist; run the harmonise / labels stage first"
    other, other_labels = scenes[1]
    with pytest.raises(ValueError) as err:
        check_scene_pair(scene, other_labels)
    assert str(err.value) == (
        f"{other_labels}: grid (8, 12) differs from scene {scene} grid (16, 24); labels must be "
        "rasterised on the harmonised scene grid")
    with pytest.raises(ValueError) as err:
        check_scene_pair(scene, scene)
    assert str(err.value) == f"{scene}: variable 'label' missing"
    with pytest.raises(ValueError) as err:
        check_scene_pair(labels, labels)
    assert str(err.value) == (
        f"{labels}: variable 'backscatter' missing; a harmonised scene needs "
        "['backscatter', 'land_mask', 'valid_mask']")


def _variant(folder: Path, change: str) -> Path:
    values = _backscatter(0, 8, 8)
    ds = xr.Dataset({"backscatter": (("band", "y", "x"), values),
                     "land_mask": (("y", "x"), np.zeros((8, 8), np.uint8)),
                     "valid_mask": (("y", "x"), np.ones((8, 8), np.uint8))},
                    coords={"band": np.array(["HH", "HV", "incidence"], dtype=object)})
    if change == "band":
        ds = ds.assign_coords(band=np.array(["HH", "VV", "incidence"], dtype=object))
    if change == "dims":
        ds = ds.rename({"band": "channel"})
    encoding = {}
    if change == "cf":
        encoding = {"land_mask": {"scale_factor": 1.0, "add_offset": 0.0, "dtype": "uint8"}}
    path = folder / f"{change}.zarr"
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    return path


def test_scene_contract_messages(tmp_path: Path) -> None:
    labels = tmp_path / "l.zarr"
    xr.Dataset({"label": (("y", "x"), np.ones((8, 8), np.uint8))}).to_zarr(
        labels, zarr_format=3, consolidated=False)
    path = _variant(tmp_path, "band")
    with pytest.raises(ValueError) as err:
        check_scene_pair(path, labels)
    assert str(err.value) == (
        f"{path}: bands ['HV'] missing from 'backscatter' (has ['HH', 'VV', 'incidence'])")
    path = _variant(tmp_path, "dims")
    with pytest.raises(ValueError) as err:
        check_scene_pair(path, labels)
    assert str(err.value) == (f"{path}: 'backscatter' must have dimensions (band, y, x) and a "
                              "'band' coordinate")
    path = _variant(tmp_path, "cf")
    with pytest.raises(ValueError) as err:
        check_scene_pair(path, labels)
    assert str(err.value) == (
        f"{path}: 'land_mask' is stored with CF encoding ['add_offset', 'scale_factor']; write "
        "harmonised scenes / labels without scale or offset")


def test_run_patches_writes_each_size_and_the_manifest(tmp_path: Path) -> None:
    scenes = [_write_pair(tmp_path, "R", 0, [[1, 2, 3, 4, 5, 1], [2, 3, 4, 5, 0, 1]], px=20),
              _write_pair(tmp_path, "Q", 1, [[5, 4, 3, 2, 1]], px=32)]
    cfg = tiny_polar_config(tmp_path, patches={"sizes": [20, 32], "stride": 20,
                                               "max_per_class": 1, "min_purity": 0.9,
                                               "balance": "undersample", "tile_px": 64,
                                               "dataset_version": "vq"})
    result = run_patches(cfg, [s for s, _ in scenes], [lab for _, lab in scenes])
    folder = tmp_path / "polar" / "patches" / "vq"
    assert result["dataset_dir"] == str(folder)
    assert result["datasets"] == {20: str(folder / "patches_20.zarr"),
                                  32: str(folder / "patches_32.zarr")}
    n20 = result["n_patches"][20]
    assert n20 == 5  # two 20 px patches of each class in scene R, capped at one each
    assert _read(folder / "patches_20.zarr", "x").shape == (n20, 3, 20, 20)
    # 32 px at stride 20: only Q's first window (x 0..32, class 5) is pure enough
    assert result["n_patches"][32] == 1
    assert result["class_counts"][32] == {name: int(code == 5) for code, name in NAMES.items()}
    assert _read(folder / "patches_32.zarr", "scene").tolist() == [1]
    assert _read(folder / "patches_32.zarr", "origin").tolist() == [[0, 0]]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "patches"
    assert manifest["inputs"] == {"scenes": [str(s) for s, _ in scenes],
                                  "labels": [str(lab) for _, lab in scenes]}
    assert manifest["counts"] == {"patches_20": n20, "patches_32": 1}
    assert manifest["class_counts"] == {str(s): result["class_counts"][s] for s in (20, 32)}
    assert manifest["dataset_version"] == "vq"
    assert result["class_counts"][20] == {name: 1 for name in NAMES.values()}


def test_defaults_undersample_and_the_log(scenes: list[tuple[Path, Path]], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    scene, labels = scenes[0]
    candidates = _expected_origins(scene, labels, 4, 4, 0.9)
    counts = np.bincount([c for _, _, c in candidates], minlength=6)[1:]
    with caplog.at_level("INFO", logger="tasks.polar.patches"):
        summary = extract_patches([scene], [labels], tmp_path / "d.zarr", size=4)
    assert summary["n_patches"] == 5 * counts.min()  # undersample, min_purity 0.9 by default
    attrs = dict(zarr.open_group(str(tmp_path / "d.zarr"), mode="r").attrs)
    assert (attrs["balance"], attrs["min_purity"], attrs["max_per_class"], attrs["seed"],
            attrs["dataset_version"], attrs["balance_scheme"], attrs["stride"]) == (
        "undersample", 0.9, 4000, 42, "v1", "five_class", 4)
    assert [r.getMessage() for r in caplog.records if r.name == "tasks.polar.patches"] == [
        "patches 4px: 1 tiles over 1 scenes",
        f"patches 4px: {len(candidates)} candidates, {summary['n_patches']} chosen (undersample)"]
