"""The stride == size candidate counts (pure patches without a histogram) equal the general path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tasks.polar.patches as patches_module


def _label_and_bad() -> tuple[np.ndarray, np.ndarray]:
    # a 3 x 4 grid of 8 px patches (window 24 x 32 px, plus 5 px that belong to no patch)
    label = np.full((29, 37), 3, dtype=np.uint8)
    label[0:8, 0:8] = 0  # pure "no label"
    label[0:8, 8:16] = 4  # pure, one bad pixel below
    label[0:8, 16:24] = 2
    label[3, 20] = 5  # mixed: 63 x 2, 1 x 5
    label[8:16, 0:8] = np.arange(64).reshape(8, 8) % 4  # mixed, a four-way tie
    label[16:24, 24:32] = 1
    label[20:24, 24:32] = 5  # mixed: a 32 / 32 tie between 1 and 5
    label[24:, :] = 7  # outside every patch: must not count
    bad = np.zeros(label.shape, dtype=bool)
    bad[5, 12] = True
    bad[16:24, 8:16] = True  # a bad pure patch
    bad[24:, :] = True  # outside every patch
    return label, bad


def test_aligned_counts_equal_general_counts_on_pure_mixed_bad_and_tied_patches() -> None:
    label, bad_pixels = _label_and_bad()
    bad_a, counts_a = patches_module._patch_counts_aligned(bad_pixels, label, 8, 8)
    bad_g, counts_g = patches_module._patch_counts(bad_pixels, label, 8, 8, 8)
    assert bad_a.shape == bad_g.shape == (3, 4)
    np.testing.assert_array_equal(bad_a, bad_g)
    assert bad_a[0, 1] and bad_a[2, 1] and bad_a.sum() == 2
    good = ~bad_g
    np.testing.assert_array_equal(counts_a[good], counts_g[good])
    assert counts_a[0, 0].tolist() == [64, 0, 0, 0, 0, 0, 0, 0]
    assert counts_a[0, 2].tolist() == [0, 0, 63, 0, 0, 1, 0, 0]
    assert counts_a[1, 0].tolist() == [16, 16, 16, 16, 0, 0, 0, 0]
    assert counts_a[2, 3].tolist() == [0, 32, 0, 0, 0, 32, 0, 0]
    assert counts_a[1, 3].tolist() == [0, 0, 0, 64, 0, 0, 0, 0]


def test_find_candidates_batch_returns_each_tiles_candidates_in_order(
        polar_scene_pair: tuple[Path, Path]) -> None:
    scene, label = (str(p) for p in polar_scene_pair)
    tiles = patches_module.plan_tiles(0, (256, 256), 32, 32, 96)
    jobs = [(scene, label, tile, 32, 32, 0.6) for tile in tiles]
    batch = patches_module.find_candidates_batch(jobs)
    assert len(batch) == len(tiles) > 1
    for job, rows in zip(jobs, batch, strict=True):
        np.testing.assert_array_equal(rows, patches_module.find_candidates(*job))
    assert sum(len(rows) for rows in batch) > 0


@pytest.mark.parametrize("size", [8, 5])
def test_aligned_counts_match_on_random_windows(size: int) -> None:
    rng = np.random.default_rng(size)
    label = np.repeat(np.repeat(rng.integers(0, 6, (9, 11)), size, 0), size, 1).astype(np.uint8)
    noisy = rng.random(label.shape) < 0.01
    label[noisy] = rng.integers(0, 6, int(noisy.sum()))
    bad_pixels = rng.random(label.shape) < 0.003
    bad_a, counts_a = patches_module._patch_counts_aligned(bad_pixels, label, size, 6)
    bad_g, counts_g = patches_module._patch_counts(bad_pixels, label, size, size, 6)
    np.testing.assert_array_equal(bad_a, bad_g)
    np.testing.assert_array_equal(counts_a[~bad_g], counts_g[~bad_g])
    assert (counts_g.max(axis=-1) == size * size)[~bad_g].any()  # pure patches
    assert (counts_g.max(axis=-1) < size * size)[~bad_g].any()  # mixed patches
