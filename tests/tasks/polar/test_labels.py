import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from tasks.config.polar import PolarConfig
from tasks.domain.ice import ice_classes
from tasks.polar.harmonise import run_harmonise
from tasks.polar.ingest import ingest_day
from tasks.polar.labels import binary_lookup, rasterise_chart, run_labels
from tasks.polar.schema import LABEL_BINARY_VAR, LABEL_VAR
from tasks.storage import read_manifest


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("EEFLOW_HOME", str(home))
    cfg = PolarConfig.model_validate(
        {
            "ingest": {"generator": {"lines": 96, "samples": 128, "scenes_per_day": 1}},
            "harmonise": {"chunk": 64},
            "dask": {"cluster": "synchronous"},
        }
    )
    ingest = ingest_day(cfg, "2026-01-15")
    harmonise = run_harmonise(cfg, "2026-01-15")
    yield cfg, ingest, harmonise
    mp.undo()


def test_binary_merge_follows_the_code_list():
    table = binary_lookup()
    for c in ice_classes():
        assert table[c.code] == (1 if c.binary_name == "water" else 2)
    assert table[0] == 0


def test_rasterised_chart_equals_the_truth(day):
    _, ingest, harmonise = day
    scene = ingest["scenes"][0]
    out = Path(ingest["output_dir"])
    like = xr.open_zarr(harmonise["scenes"][0]["zarr"], decode_coords="all")
    label, binary = rasterise_chart(out / scene["chart"], like)
    with rasterio.open(out / scene["truth"]) as src:
        truth = src.read(1)
    valid = like.valid_mask.values == 1
    np.testing.assert_array_equal(label[valid], truth[valid])
    assert (label[~valid] == 0).all()
    np.testing.assert_array_equal(binary, binary_lookup()[label])


def test_bad_chart_codes_are_rejected(day, tmp_path):
    _, ingest, harmonise = day
    chart = json.loads((Path(ingest["output_dir"]) / ingest["scenes"][0]["chart"]).read_text())
    chart["features"][0]["properties"]["ice_class"] = 9
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(chart))
    like = xr.open_zarr(harmonise["scenes"][0]["zarr"])
    with pytest.raises(ValueError, match=r"unknown ice_class codes \[9\]"):
        rasterise_chart(bad, like)
    for f in chart["features"]:
        f["properties"] = {"kind": "x"}
    bad.write_text(json.dumps(chart))
    with pytest.raises(ValueError, match="no 'ice_class' property"):
        rasterise_chart(bad, like)


def test_run_labels_writes_the_schema(day):
    cfg, ingest, _ = day
    result = run_labels(cfg, "2026-01-15")
    assert result["n_scenes"] == 1
    ds = xr.open_zarr(result["scenes"][0]["zarr"], decode_coords="all")
    assert ds[LABEL_VAR].dtype == np.uint8 and ds[LABEL_BINARY_VAR].dtype == np.uint8
    assert ds.attrs["scene_id"] == ingest["scenes"][0]["scene_id"]
    assert ds.rio.crs.to_epsg() == 3413
    assert set(np.unique(ds[LABEL_BINARY_VAR].values)) <= {0, 1, 2}
    # the map grid covers the curved 96 x 128 swath: larger than the image
    assert sum(result["scenes"][0]["class_counts"].values()) == ds.sizes["y"] * ds.sizes["x"]
    assert read_manifest(result["output_dir"])["counts"]["scenes"] == 1
