from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr

from tasks.domain.crops import CROP_CLASSES
from tasks.food_security.labels import (
    RULES,
    OutsideParcelMapError,
    robust_outlier_mask,
    run_labels,
)
from tasks.food_security.schema import NO_LABEL
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, pipeline_run


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return pipeline_run(tmp_path_factory, upto="labels")


def test_labels_follow_schema_and_buffer_drops_borders(labelled):
    cfg, results = labelled
    ds = xr.open_zarr(results["labels"]["tiles"]["33UWP"]["path"], consolidated=False).load()
    assert ds.label.dtype == np.int16 and ds.parcel_id.dtype == np.int64
    assert ds.label.shape == (64, 64)
    label, declared, pid = ds.label.values, ds.declared_label.values, ds.parcel_id.values
    assert ((label == NO_LABEL) | (label == declared)).all()
    assert (label >= 0).sum() > 0.3 * (declared >= 0).sum()
    # a pixel next to a different parcel is never a reliable label (10 m inward buffer)
    edge = np.zeros_like(pid, dtype=bool)
    edge[:, 1:] |= pid[:, 1:] != pid[:, :-1]
    edge[1:, :] |= pid[1:, :] != pid[:-1, :]
    assert (label[edge] == NO_LABEL).all()


def test_report_counts_removed_pixels_per_rule_and_class(labelled):
    cfg, results = labelled
    report = json.loads(Path(results["labels"]["report"]).read_text())
    tile = report["tiles"]["33UWP"]
    assert set(tile["removed"]) == set(RULES)
    assert sum(tile["removed"]["border_buffer"].values()) > 0
    for crop_class, declared in tile["declared_pixels"].items():
        removed = sum(tile["removed"][r].get(crop_class, 0) for r in RULES)
        assert removed + tile["kept"].get(crop_class, 0) == declared


def test_outlier_filter_flags_a_deviating_series():
    rng = np.random.default_rng(0)
    ndvi = (0.5 + 0.02 * rng.standard_normal((50, 12))).astype(np.float32)
    ndvi[7] = 0.1  # bare patch in a grassland parcel
    gap = np.zeros((50, 12), dtype=bool)
    flagged = robust_outlier_mask(ndvi, gap, np.zeros(50, dtype=int), 3.5, 20)
    assert flagged.tolist() == [i == 7 for i in range(50)]
    assert not robust_outlier_mask(ndvi, gap, np.zeros(50, dtype=int), 3.5, 60).any()


def _directory_config(cfg, results, tmp_path, parcels):
    path = tmp_path / "parcels_{agronomic_year}.parquet"
    parcels.to_parquet(str(path).replace("{agronomic_year}", results["labels"]["agronomic_year"]))
    data = cfg.model_dump(mode="json")
    # own data root (labels written there), sharing the session's harmonise output
    (tmp_path / "root" / "food_security").mkdir(parents=True)
    (tmp_path / "root" / "food_security" / "harmonise").symlink_to(
        Path(results["harmonise"]["output"]).parent)
    data["data_root"] = str(tmp_path / "root")
    data["ingest"].update(source="directory", directory=results["generate"]["archive"],
                          parcel_map=str(path))
    return type(cfg).model_validate(data)


def test_unknown_code_becomes_other_with_a_warning_count(labelled, tmp_path):
    cfg, results = labelled
    parcels = gpd.read_parquet(results["generate"]["parcel_map"])
    first = parcels.index[parcels["tile"] == "33UWP"][0]
    parcels.loc[first, ["SNAR_CODE", "SNAR_BEZEICHNUNG"]] = [4711, "UNBEKANNT"]
    dcfg = _directory_config(cfg, results, tmp_path, parcels)
    out = run_labels(dcfg, RUN_DATE)
    assert out["tiles"]["33UWP"]["unknown_code_parcels"] == 1
    report = json.loads(Path(out["report"]).read_text())["tiles"]["33UWP"]
    assert report["unknown_codes"] == {"4711": 1}
    ds = xr.open_zarr(out["tiles"]["33UWP"]["path"], consolidated=False)
    pid = parcels.loc[first, "FS_KENNUNG"]
    declared = ds.declared_label.values[ds.parcel_id.values == pid]
    assert declared.size and (declared == CROP_CLASSES.index("other")).all()


def test_tile_outside_parcel_map_error_or_empty(labelled, tmp_path):
    cfg, results = labelled
    parcels = gpd.read_parquet(results["generate"]["parcel_map"])
    parcels = parcels[parcels["tile"] != "33UVP"]
    dcfg = _directory_config(cfg, results, tmp_path, parcels)
    out = run_labels(dcfg, RUN_DATE)
    assert out["tiles"]["33UVP"]["outside_parcel_map"] is True
    ds = xr.open_zarr(out["tiles"]["33UVP"]["path"], consolidated=False)
    assert int(ds.label.max()) == NO_LABEL
    dcfg.labels.outside_parcel_map = "error"
    with pytest.raises(OutsideParcelMapError, match="tile 33UVP .* entirely outside"):
        run_labels(dcfg, RUN_DATE)
