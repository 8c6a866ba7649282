from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tasks.domain.crops import CROP_CLASSES
from tasks.food_security.samples import run_samples, select_pixels
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, YEAR_KEY, pipeline_run


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    return pipeline_run(tmp_path_factory, upto="samples")


def test_splits_by_tile_follow_schema(sampled):
    cfg, results = sampled
    out = results["samples"]
    assert out["output"].endswith(f"samples/{YEAR_KEY}")
    for split, tiles in (("train", ["33UWP"]), ("val", ["33UXP"]), ("test", ["33UVP"])):
        ds = xr.open_zarr(out["splits"][split]["path"], consolidated=False).load()
        n = ds.sizes["sample"]
        assert n > 0 and ds.x.shape == (n, 12, 10) and ds.x.dtype == np.float32
        assert ds.y.dtype == np.int16 and set(np.unique(ds.tile.values)) == set(tiles)
        assert ds.attrs["class_names"] == list(CROP_CLASSES)
        counts = ds.attrs["class_counts"]
        assert sum(counts.values()) == n
        assert all(counts[c] == int((ds.y.values == i).sum()) for i, c in enumerate(CROP_CLASSES))
        assert ds.attrs["dataset_version"] == "v1" and len(ds.attrs["band_mean"]) == 10
        assert np.isfinite(ds.x.values).all()
        labels = xr.open_zarr(results["labels"]["tiles"][tiles[0]]["path"], consolidated=False)
        np.testing.assert_array_equal(labels.label.values[ds.row.values, ds.col.values],
                                      ds.y.values)
    train = xr.open_zarr(out["splits"]["train"]["path"], consolidated=False).load()
    np.testing.assert_allclose(train.attrs["band_mean"],
                               train.x.values.reshape(-1, 10).mean(axis=0), rtol=1e-4)


def test_max_per_class_caps_and_is_seeded():
    labels = {"A": np.array([[0, 0, 0, 1], [-1, 0, 1, 1]], dtype=np.int16),
              "B": np.array([[0, 0, -1, 2]], dtype=np.int16)}
    a = select_pixels(labels, 2, np.random.default_rng(1))
    b = select_pixels(labels, 2, np.random.default_rng(1))
    assert all(np.array_equal(a[t], b[t]) for t in labels)
    chosen = np.concatenate([labels[t].ravel()[a[t]] for t in sorted(labels)])
    assert sorted(np.bincount(chosen).tolist()) == [1, 2, 2]


def test_rerun_gives_identical_samples(sampled):
    cfg, results = sampled
    before = xr.open_zarr(results["samples"]["splits"]["val"]["path"], consolidated=False).load()
    again = run_samples(cfg, RUN_DATE)
    after = xr.open_zarr(again["splits"]["val"]["path"], consolidated=False).load()
    xr.testing.assert_identical(before, after)
