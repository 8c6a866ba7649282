from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from tasks.polar import schema
from tasks.polar.patches import extract_patches, run_patches
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config


def test_run_patches_writes_contract(polar_patch_dataset: dict) -> None:
    out = Path(polar_patch_dataset["dataset_dir"])
    assert out == polar_patch_dataset["root"] / "polar" / "patches" / "vtest"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "patches"
    for size in (32, 20):
        ds = xr.open_zarr(out / f"patches_{size}.zarr")
        n = ds.sizes["patch"]
        assert n == polar_patch_dataset["n_patches"][size] > 0
        assert ds["x"].shape == (n, 3, size, size) and ds["x"].dtype == np.float32
        assert set(np.unique(ds["y"].values)) <= {1, 2, 3, 4, 5}
        attrs = ds.attrs
        assert attrs["bands"] == list(schema.BANDS)
        assert attrs["patch_size"] == size and attrs["dataset_version"] == "vtest"
        x = ds["x"].values
        assert np.isfinite(x).all()
        np.testing.assert_allclose(attrs["band_mean"], x.mean(axis=(0, 2, 3)), rtol=1e-4)
        np.testing.assert_allclose(attrs["band_std"], x.std(axis=(0, 2, 3)), rtol=1e-3)
        counts = attrs["class_counts"]
        assert sum(counts.values()) == n
        # undersampled to the rarest class, capped at max_per_class=60
        assert len({v for v in counts.values() if v}) == 1 and max(counts.values()) <= 60
        assert attrs["scenes"] == ["S1A_EW_GRDM_TEST0", "S1B_EW_GRDM_TEST1"]


def test_patches_exclude_land_and_match_labels(polar_patch_dataset: dict,
                                               polar_scene_pair: tuple[Path, Path]) -> None:
    ds = xr.open_zarr(Path(polar_patch_dataset["datasets"][32]))
    scene = xr.open_zarr(polar_scene_pair[0])
    labels = xr.open_zarr(polar_scene_pair[1])
    land = scene["land_mask"].values
    label = labels["label"].values
    hh = scene["backscatter"].sel(band="HH").values
    for i in np.flatnonzero(ds["scene"].values == 0)[:20]:
        r, c = ds["origin"].values[i]
        assert land[r:r + 32, c:c + 32].sum() == 0
        window = label[r:r + 32, c:c + 32]
        assert (window == ds["y"].values[i]).mean() >= 0.9
        np.testing.assert_array_equal(ds["x"].values[i, 0], hh[r:r + 32, c:c + 32])


def test_extract_is_deterministic_and_stride_and_none_balance(
        tmp_path: Path, polar_scene_pair: tuple[Path, Path]) -> None:
    kwargs = dict(size=20, stride=10, min_purity=0.8, balance="none", max_per_class=10_000,
                  seed=3, tile_px=64)
    a = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "a.zarr", **kwargs)
    b = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "b.zarr",
                        **{**kwargs, "tile_px": 512})
    assert a["n_patches"] == b["n_patches"] and a["class_counts"] == a["candidate_counts"]
    ga, gb = zarr.open_group(tmp_path / "a.zarr"), zarr.open_group(tmp_path / "b.zarr")
    order_a = np.lexsort(ga["origin"][:].T[::-1])
    order_b = np.lexsort(gb["origin"][:].T[::-1])
    np.testing.assert_array_equal(ga["x"][:][order_a], gb["x"][:][order_b])
    np.testing.assert_array_equal(ga["y"][:][order_a], gb["y"][:][order_b])
    np.testing.assert_array_equal(ga["origin"][:] % 10, 0)
    # binary balancing: equal water / ice counts
    c = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "c.zarr",
                        size=32, class_scheme="binary", balance="undersample")
    water = c["class_counts"]["water"]
    assert water > 0 and water == sum(c["class_counts"].values()) - water


def test_rerun_replaces_version_atomically(tmp_path: Path, polar_scene_pair) -> None:
    cfg = tiny_polar_config(tmp_path, patches={"sizes": [32]})
    first = run_patches(cfg, [polar_scene_pair[0]], [polar_scene_pair[1]])
    second = run_patches(cfg, [polar_scene_pair[0]], [polar_scene_pair[1]])
    assert first == second
    siblings = sorted(p.name for p in Path(first["dataset_dir"]).parent.iterdir())
    assert siblings == ["vtest"]
    # a failing re-run keeps the previous version in place
    before = zarr.open_group(first["datasets"][32])["x"][:]
    with pytest.raises(FileNotFoundError, match="missing_labels.zarr"):
        run_patches(cfg, [polar_scene_pair[0]], [tmp_path / "missing_labels.zarr"])
    np.testing.assert_array_equal(zarr.open_group(first["datasets"][32])["x"][:], before)
    assert sorted(p.name for p in Path(first["dataset_dir"]).parent.iterdir()) == ["vtest"]


def test_bad_inputs_raise_clear_errors(tmp_path: Path, polar_scene_pair) -> None:
    scene, labels = polar_scene_pair
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        extract_patches([scene], [tmp_path / "missing.zarr"], tmp_path / "o.zarr", size=32)
    with pytest.raises(ValueError, match="one label raster per scene"):
        extract_patches([scene], [], tmp_path / "o.zarr", size=32)
    empty = xr.open_zarr(labels).load()
    empty["label"][:] = 0
    empty.to_zarr(tmp_path / "empty.zarr", mode="w")
    with pytest.raises(ValueError, match="min_purity"):
        extract_patches([scene], [tmp_path / "empty.zarr"], tmp_path / "o.zarr", size=32)
    small = xr.open_zarr(labels).isel(y=slice(0, 100)).load()
    small.to_zarr(tmp_path / "small.zarr", mode="w")
    with pytest.raises(ValueError, match="differs from scene"):
        extract_patches([scene], [tmp_path / "small.zarr"], tmp_path / "o.zarr", size=32)


def test_run_patches_on_local_dask_cluster(tmp_path: Path, polar_scene_pair) -> None:
    cfg = tiny_polar_config(tmp_path, patches={"sizes": [32], "tile_px": 128},
                            dask={"cluster": "local", "n_workers": 1, "memory_limit": "1GiB"})
    local = run_patches(cfg, [polar_scene_pair[0]], [polar_scene_pair[1]])
    sync_cfg = tiny_polar_config(tmp_path / "sync", patches={"sizes": [32], "tile_px": 128})
    sync = run_patches(sync_cfg, [polar_scene_pair[0]], [polar_scene_pair[1]])
    np.testing.assert_array_equal(zarr.open_group(local["datasets"][32])["x"][:],
                                  zarr.open_group(sync["datasets"][32])["x"][:])


def test_tile_tasks_and_driver_share_chunks_correctly(
        tmp_path: Path, polar_scene_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.polar.patches as patches_module

    kwargs = dict(size=20, stride=10, min_purity=0.8, balance="none", max_per_class=10_000,
                  tile_px=64)
    ref = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "ref.zarr",
                          **kwargs)
    monkeypatch.setattr(patches_module, "OUTPUT_CHUNK_BYTES", 3 * 20 * 20 * 4 * 7)  # 7 patches
    small = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]],
                            tmp_path / "small.zarr", **kwargs)
    assert zarr.open_array(tmp_path / "small.zarr" / "x").chunks[0] == 7
    assert small["n_patches"] == ref["n_patches"]
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "small.zarr")["x"][:],
                                  zarr.open_group(tmp_path / "ref.zarr")["x"][:])
    np.testing.assert_allclose(small["band_mean"], ref["band_mean"])


def test_aligned_candidate_counts_equal_general_path(
        tmp_path: Path, polar_scene_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.polar.patches as patches_module

    rng = np.random.default_rng(5)
    label = rng.integers(0, 6, (96, 128)).astype(np.uint8)
    label[:40] = 2  # pure patches
    bad_pixels = rng.random(label.shape) < 0.002
    bad_a, counts_a = patches_module._patch_counts_aligned(bad_pixels, label, 32, 6)
    bad_g, counts_g = patches_module._patch_counts(bad_pixels, label, 32, 32, 6)
    np.testing.assert_array_equal(bad_a, bad_g)
    assert bad_g.any() and not bad_g.all()
    np.testing.assert_array_equal(counts_a[~bad_g], counts_g[~bad_g])
    # end to end: the stride == size fast path gives the same training set as the general one
    kwargs = dict(size=32, min_purity=0.6, balance="none", max_per_class=10_000, tile_px=96)
    fast = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "f.zarr",
                           **kwargs)
    monkeypatch.setattr(patches_module, "_patch_counts_aligned",
                        lambda b, lab, size, n: patches_module._patch_counts(b, lab, size, size, n))
    general = extract_patches([polar_scene_pair[0]], [polar_scene_pair[1]], tmp_path / "g.zarr",
                              **kwargs)
    assert fast["n_patches"] == general["n_patches"] > 0
    for name in ("x", "y", "origin"):
        np.testing.assert_array_equal(zarr.open_group(tmp_path / "f.zarr")[name][:],
                                      zarr.open_group(tmp_path / "g.zarr")[name][:])
