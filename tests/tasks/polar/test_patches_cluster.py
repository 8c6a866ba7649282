"""Patch extraction on a Dask cluster writes the same store as in-process (issue 17, P1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import TransposeCodec
from zarr.core.metadata import ArrayV3Metadata

import tasks.polar.patches as patches_module
from tasks.config.common import DaskConfig
from tasks.dask_cluster import dask_client
from tasks.polar.patches import extract_patches, shared_chunks
from tasks.storage import zarr_array


def test_shared_chunks_lists_every_chunk_no_single_task_writes() -> None:
    # tasks own rows [0, 10), [10, 12), [12, 30), [30, 31); chunks of 5 rows: task 0 writes
    # [0, 10), task 2 writes [15, 30); the rest is joined
    assert shared_chunks([0, 10, 12, 30, 31], 5) == [(10, 15, 1, 2), (30, 31, 3, 3)]
    # a chunk spanning three tasks (two smaller than a chunk), then the short last chunk
    assert shared_chunks([0, 1, 2, 6], 4) == [(0, 4, 0, 2), (4, 6, 2, 2)]
    assert shared_chunks([0, 3, 4, 9], 4) == [(0, 4, 0, 1), (8, 9, 2, 2)]
    assert shared_chunks([0, 8], 4) == []  # one task, whole chunks only
    assert shared_chunks([0, 2, 5, 7], 7) == [(0, 7, 0, 2)]


def _store(path: Path) -> dict[str, object]:
    group = zarr.open_group(path, mode="r")
    return {name: zarr_array(group, name)[:] for name in ("x", "y", "scene", "origin")} | {
        key: group.attrs[key] for key in ("band_mean", "band_std", "class_counts", "n_patches")}


@pytest.mark.parametrize("chunk_patches", [25, 4, 1])
def test_cluster_path_writes_the_in_process_store(
        tmp_path: Path, polar_scene_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        chunk_patches: int) -> None:
    # 32 px tiles with stride 10 hold at most 9 patches: with 25-patch chunks every chunk is
    # joined from three or more tile tasks; with 4-patch chunks tasks also write whole chunks;
    # with 1-patch chunks no chunk is shared (the sums come from tile_sums tasks)
    monkeypatch.setattr(patches_module, "OUTPUT_CHUNK_BYTES", 3 * 20 * 20 * 4 * chunk_patches)
    kwargs: dict[str, Any] = dict(size=20, stride=10, min_purity=0.8, balance="none",
                                  max_per_class=10_000, tile_px=32)
    scene, label = polar_scene_pair
    local = extract_patches([scene], [label], tmp_path / "in_process.zarr", **kwargs)
    cfg = DaskConfig(cluster="local", workers="threads", n_workers=2)
    with dask_client(cfg) as client:
        remote = extract_patches([scene], [label], tmp_path / "cluster.zarr", client=client,
                                 **kwargs)
    assert remote["n_patches"] == local["n_patches"] > 3 * max(chunk_patches, 4)
    assert zarr.open_array(tmp_path / "cluster.zarr" / "x").chunks[0] == chunk_patches
    expected, got = _store(tmp_path / "in_process.zarr"), _store(tmp_path / "cluster.zarr")
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            assert got[name] == value, name


def test_patch_chunks_are_stored_band_major_with_the_same_values(
        tmp_path: Path, polar_scene_pair: tuple[Path, Path]) -> None:
    scene, label = polar_scene_pair
    extract_patches([scene], [label], tmp_path / "p.zarr", size=32, balance="none",
                    min_purity=0.5)
    x = zarr.open_array(tmp_path / "p.zarr" / "x")
    assert isinstance(x.metadata, ArrayV3Metadata)
    assert x.metadata.codecs[0] == TransposeCodec(order=(1, 0, 2, 3))
    hh = np.asarray(zarr.open_array(Path(scene) / "backscatter")[0])  # fixture bands: HH first
    origins = np.asarray(zarr.open_array(tmp_path / "p.zarr" / "origin")[:])
    values = np.asarray(x[:])
    for i in (0, len(values) // 2, len(values) - 1):
        r, c = origins[i]
        np.testing.assert_array_equal(values[i, 0], hh[r:r + 32, c:c + 32])


@pytest.mark.parametrize(("first_index", "chunk_n"), [(0, 4), (3, 4), (5, 7), (2, 50)])
def test_tile_group_task_writes_the_chunks_inside_and_returns_both_ends(
        tmp_path: Path, polar_scene_pair: tuple[Path, Path], first_index: int,
        chunk_n: int) -> None:
    scene, label = (str(p) for p in polar_scene_pair)
    tiles = patches_module.plan_tiles(0, (256, 256), 20, 20, 60)[:4]
    parts = [(scene, tile, patches_module.find_candidates(scene, label, tile, 20, 20, 0.5)[:, :2])
             for tile in tiles]
    counts = [len(origins) for _, _, origins in parts]
    # tiles of 9 patches at most: with 4- and 7-patch chunks some chunk spans two tiles, with
    # 50-patch chunks the group holds no whole chunk
    assert min(counts) > 0 and max(counts) <= 9 < sum(counts) < 50
    expected = np.concatenate([patches_module.cut_patches(s, t, o, 20, 20) for s, t, o in parts])
    n = first_index + len(expected) + chunk_n
    out = tmp_path / "x.zarr"
    zarr.open_group(out, mode="w").create_array(
        "x", shape=(n, 3, 20, 20), chunks=(chunk_n, 3, 20, 20), dtype="float32",
        fill_value=np.nan)
    part = patches_module.cut_and_store_tiles(parts, 20, 20, str(out), first_index, chunk_n)
    c0, c1 = part.full_chunks
    end = first_index + len(expected)
    assert c0 == -(-first_index // chunk_n) * chunk_n
    assert c1 == (max(end // chunk_n * chunk_n, c0))
    written = np.asarray(zarr.open_array(out / "x")[:])
    np.testing.assert_array_equal(written[c0:c1], expected[c0 - first_index:c1 - first_index])
    assert np.isnan(written[:c0]).all() and np.isnan(written[c1:]).all()
    if c1 > c0:
        np.testing.assert_array_equal(part.head, expected[:c0 - first_index])
        np.testing.assert_array_equal(part.tail, expected[c1 - first_index:])
    else:  # no whole chunk: everything comes back as the head
        np.testing.assert_array_equal(part.head, expected)
        assert len(part.tail) == 0
    single = [patches_module.cut_part(s, t, o, 20, 20) for s, t, o in parts]
    np.testing.assert_array_equal(part.band_sum, np.stack([p.band_sum for p in single]))
    np.testing.assert_array_equal(part.band_sum_sq, np.stack([p.band_sum_sq for p in single]))
    for (s, t, o), one in zip(parts, single, strict=True):  # float32 per patch, float64 across
        patches = patches_module.cut_patches(s, t, o, 20, 20).reshape(len(o), 3, -1)
        assert one.band_sum.dtype == one.band_sum_sq.dtype == np.float64
        np.testing.assert_array_equal(one.head.reshape(len(o), 3, -1), patches)
        np.testing.assert_array_equal(one.band_sum, patches.sum(axis=2).sum(axis=0,
                                                                              dtype=np.float64))
        np.testing.assert_array_equal(
            one.band_sum_sq,
            np.einsum("nbk,nbk->nb", patches, patches).sum(axis=0, dtype=np.float64))


@pytest.mark.parametrize(("size", "stride", "split"), [(16, 16, True), (20, 32, True),
                                                       (20, 20, False)])
def test_tile_parts_split_tiles_at_chunk_rows_in_row_order(
        polar_scene_pair: tuple[Path, Path], size: int, stride: int, split: bool) -> None:
    scene, label = (str(p) for p in polar_scene_pair)  # 256 x 256 px, chunks of 128 rows
    tiles = patches_module.plan_tiles(0, (256, 256), size, stride, 256)  # one tile: 2 chunk rows
    assert len(tiles) == 1
    found = patches_module.find_candidates(scene, label, tiles[0], size, stride, 0.0)
    chosen = np.column_stack([np.zeros(len(found), np.int32), np.zeros(len(found), np.int32),
                              found]).astype(np.int32)
    parts = patches_module.tile_parts(tiles, [scene], chosen, stride)
    # the parts cover the chosen rows in order, without gaps
    assert [first for _, first, _ in parts] == [0, *(stop for _, _, stop in parts[:-1])]
    assert parts[-1][2] == len(chosen)
    chunk_row = {first: set(chosen[first:stop, 2] * stride // 128) for _, first, stop in parts}
    if split:  # 128 / stride patch rows per chunk row: one part per chunk row of the tile
        assert len(parts) == 2 and all(len(rows) == 1 for rows in chunk_row.values())
    else:  # 128 is no multiple of the stride 20: the tile is one part
        assert len(parts) == 1
    for tile, first, stop in parts:  # each tile narrowed to exactly its patches' rows / columns
        rows, cols = chosen[first:stop, 2], chosen[first:stop, 3]
        assert (tile.row0, tile.row1, tile.col0, tile.col1) == (
            rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        expected = patches_module.cut_patches(scene, tiles[0], chosen[first:stop, 2:4], size,
                                              stride)
        np.testing.assert_array_equal(
            patches_module.cut_patches(scene, tile, chosen[first:stop, 2:4], size, stride),
            expected)
