"""Reliable-label selection on a hand-made tile: every rule removes exactly the pixels it must.

The tile is 12 x 12 pixels of 10 m; four parcels sit on pixel edges, so the pixel-centre rule, the
10 m inward buffer and the pixel counts below follow from the geometry by hand (issue 19).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import box

from tasks.domain.crops import CROP_CLASSES
from tasks.food_security.labels import RULES, label_tile, robust_outlier_mask
from tasks.food_security.schema import NO_LABEL
from tests.tasks.food_security.s2_pipeline_data import small_config

X0, Y0, PIXEL = 500_000.0, 5_300_000.0, 10.0
SIZE = 12


def _parcel(col0: int, row0: int, col1: int, row1: int):
    """Polygon covering pixel columns col0..col1-1 and rows row0..row1-1."""
    return box(X0 + col0 * PIXEL, Y0 - row1 * PIXEL, X0 + col1 * PIXEL, Y0 - row0 * PIXEL)


@pytest.fixture()
def tile(tmp_path):
    """(composite store, parcels): A grassland, B maize, C winter wheat, D an unknown code."""
    months = 3
    red = np.full((months, SIZE, SIZE), 0.1, dtype=np.float32)
    nir = np.full((months, SIZE, SIZE), 0.3, dtype=np.float32)  # NDVI 0.5
    red[:, 2, 2], nir[:, 2, 2] = 0.45, 0.55  # NDVI 0.1 inside parcel A: an outlier
    red[:, 9, 2] = nir[:, 9, 2] = np.nan  # never observed, inside parcel C
    reflectance = np.stack([red, nir], axis=1)  # (month, band, y, x)
    gap = np.zeros((months, SIZE, SIZE), dtype=bool)
    gap[:, 10, 3] = True  # gap-filled every month inside C: no observation either
    ds = xr.Dataset(
        {
            "reflectance": (("month", "band", "y", "x"), reflectance),
            "gap_filled": (("month", "y", "x"), gap),
            "valid_count": (("month", "y", "x"), (~gap).astype(np.int16)),
        },
        attrs={"crs": "EPSG:32633", "bands": ["B04", "B08"],
               "transform": [X0, PIXEL, 0.0, Y0, 0.0, -PIXEL]},
    )
    store = tmp_path / "33UWP.zarr"
    ds.to_zarr(store, zarr_format=3, consolidated=False)
    parcels = gpd.GeoDataFrame(
        {"SNAR_CODE": [635, 172, 165, 99999], "FS_KENNUNG": [11, 12, 13, 14]},
        geometry=[_parcel(0, 0, 6, 6), _parcel(7, 0, 12, 5), _parcel(0, 7, 6, 12),
                  _parcel(7, 7, 12, 12)],
        crs="EPSG:32633",
    )
    return store, parcels


def _cfg(tmp_path, **overrides):
    return small_config(tmp_path, **{"labels.min_parcel_pixels": 10,
                                     "labels.outlier_filter.min_class_pixels": 5, **overrides})


def _interior(col0: int, row0: int, col1: int, row1: int) -> np.ndarray:
    """Pixels of a parcel whose centre is more than 10 m inside its border."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[row0 + 1:row1 - 1, col0 + 1:col1 - 1] = True
    return mask


def test_each_rule_removes_exactly_its_pixels_and_the_report_counts_them(tmp_path, tile):
    store, parcels = tile
    arrays, report, grid = label_tile(_cfg(tmp_path), "33UWP", store, parcels, tmp_path / "m")
    grass, maize, wheat, other = (CROP_CLASSES.index(c) for c in
                                  ("grassland", "maize", "winter_wheat", "other"))
    declared = np.full((SIZE, SIZE), NO_LABEL)
    parcel_id = np.full((SIZE, SIZE), -1)
    for (c0, r0, c1, r1), cls, pid in (((0, 0, 6, 6), grass, 11), ((7, 0, 12, 5), maize, 12),
                                       ((0, 7, 6, 12), wheat, 13), ((7, 7, 12, 12), other, 14)):
        declared[r0:r1, c0:c1] = cls
        parcel_id[r0:r1, c0:c1] = pid
    np.testing.assert_array_equal(arrays["declared_label"], declared)
    np.testing.assert_array_equal(arrays["parcel_id"], parcel_id)
    # kept: A's 4 x 4 interior less the outlier; C's 4 x 3 interior less the two unobserved
    # pixels; B and D keep 3 x 3 = 9 < 10 pixels after the buffer: tiny
    keep = _interior(0, 0, 6, 6) | _interior(0, 7, 6, 12)
    keep[2, 2] = keep[9, 2] = keep[10, 3] = False
    np.testing.assert_array_equal(arrays["label"], np.where(keep, declared, NO_LABEL))
    assert arrays["label"].dtype == np.int16 and arrays["parcel_id"].dtype == np.int64
    assert report["removed"] == {
        "border_buffer": {"grassland": 36 - 16, "maize": 25 - 9, "winter_wheat": 30 - 12,
                          "other": 25 - 9},
        "tiny_parcel": {"maize": 9, "other": 9},
        "no_observation": {"winter_wheat": 2},
        "outlier": {"grassland": 1},
    }
    assert report["kept"] == {"grassland": 15, "winter_wheat": 10}
    assert report["declared_pixels"] == {"grassland": 36, "maize": 25, "winter_wheat": 30,
                                         "other": 25}
    assert report["parcels"] == 4 and report["outside_parcel_map"] is False
    assert report["unknown_code_parcels"] == 1 and report["unknown_codes"] == {"99999": 1}
    assert grid == {"crs": "EPSG:32633", "transform": [X0, PIXEL, 0.0, Y0, 0.0, -PIXEL],
                    "tile": "33UWP"}


def test_settings_that_switch_rules_off_remove_nothing_for_them(tmp_path, tile):
    store, parcels = tile
    cfg = _cfg(tmp_path, **{"labels.buffer_m": 0.0, "labels.min_parcel_pixels": 1,
                            "labels.outlier_filter.enabled": False})
    arrays, report, _ = label_tile(cfg, "33UWP", store, parcels, tmp_path / "m")
    assert report["removed"] == {rule: {} for rule in RULES} | {
        "no_observation": {"winter_wheat": 2}}
    assert report["kept"] == {"grassland": 36, "maize": 25, "winter_wheat": 28, "other": 25}
    assert (arrays["label"] >= 0).sum() == 36 + 25 + 28 + 25


def test_tiny_rule_counts_pixels_left_after_the_buffer(tmp_path, tile):
    store, parcels = tile
    cfg = _cfg(tmp_path, **{"labels.min_parcel_pixels": 9})  # B and D keep exactly 9: kept
    _, report, _ = label_tile(cfg, "33UWP", store, parcels, tmp_path / "m")
    assert report["removed"]["tiny_parcel"] == {}
    assert report["kept"] == {"grassland": 15, "maize": 9, "winter_wheat": 10, "other": 9}


def test_outlier_z_score_by_hand():
    # class 0: five pixels; months 0-1 observed; pixel 4 is 0.2 below the others
    ndvi = np.array([[0.50, 0.60], [0.52, 0.60], [0.48, 0.60], [0.50, 0.62], [0.30, 0.60]])
    gap = np.zeros((5, 2), dtype=bool)
    gap[4, 1] = True  # its second month is gap-filled: left out of its score
    classes = np.zeros(5, dtype=int)
    # month 0: median 0.50, MAD 0.02 -> z of pixel 4 = 0.6745 * 0.2 / 0.02 = 6.745
    # month 1 (without pixel 4): median 0.60, MAD 0 -> floor 0.02; pixel 3: 0.6745
    z4 = 0.6745 * 0.20 / 0.02
    assert robust_outlier_mask(ndvi, gap, classes, z4 - 0.01, 5).tolist() == [0, 0, 0, 0, 1]
    assert robust_outlier_mask(ndvi, gap, classes, z4 + 0.01, 5).tolist() == [0] * 5
    z1 = (0.6745 * 0.02 / 0.02 + 0.0) / 2  # pixel 1: month 0 |z| 0.6745, month 1 0
    assert robust_outlier_mask(ndvi, gap, classes, z1 - 0.01, 5).tolist() == [0, 1, 1, 1, 1]
    # fewer pixels than min_class_pixels: the class is not filtered
    assert not robust_outlier_mask(ndvi, gap, classes, 0.1, 6).any()
    # each class is compared with its own median: a second class at 0.3 flags nothing
    two = np.concatenate([ndvi[:4], ndvi[:4] - 0.2])
    assert not robust_outlier_mask(two, np.zeros((8, 2), bool), np.repeat([0, 1], 4),
                                   2.0, 4).any()


def test_tile_outside_the_parcel_map_is_empty_or_an_error(tmp_path, tile, caplog):
    from tasks.food_security.labels import OutsideParcelMapError

    store, parcels = tile
    far = parcels.translate(xoff=10_000.0)
    with caplog.at_level("WARNING", logger="tasks.food_security.labels"):
        arrays, report, _ = label_tile(_cfg(tmp_path), "33UWP", store, far, tmp_path / "m")
    for name in ("label", "declared_label"):
        assert arrays[name].dtype == np.int16
        np.testing.assert_array_equal(arrays[name], np.full((SIZE, SIZE), NO_LABEL))
    assert arrays["parcel_id"].dtype == np.int64
    np.testing.assert_array_equal(arrays["parcel_id"], np.full((SIZE, SIZE), -1))
    assert report == {"parcels": 0, "unknown_code_parcels": 0, "unknown_codes": {},
                      "outside_parcel_map": True, "removed": {rule: {} for rule in RULES},
                      "kept": {}, "declared_pixels": {}}
    (message,) = caplog.messages
    assert message.startswith("tile 33UWP (bounds (500000.0, 5299880.0, 500120.0, 5300000.0) "
                              "in EPSG:32633) lies entirely outside the parcel map ")
    assert message.endswith("(bounds (510000, 5299880, 510120, 5300000)): writing it without "
                            "labels")
    cfg = _cfg(tmp_path, **{"labels.outside_parcel_map": "error"})
    with pytest.raises(OutsideParcelMapError,
                       match="; fix the parcel map or set labels.outside_parcel_map: empty$"):
        label_tile(cfg, "33UWP", store, far, tmp_path / "m")


def test_parcels_in_another_crs_names_and_index_ids(tmp_path, tile):
    store, parcels = tile
    reference, _, _ = label_tile(_cfg(tmp_path), "33UWP", store, parcels, tmp_path / "m")
    # lon/lat parcels, no parcel-id column (ids from the index), an unknown code with a known name
    other = parcels.to_crs("EPSG:4326").drop(columns="FS_KENNUNG")
    other.index = [21, 22, 23, 24]
    other["SNAR_CODE"] = [635, 172, 99998, 99999]
    other["SNAR_BEZEICHNUNG"] = ["", "", "WINTERHARTWEIZEN (DURUM)", ""]
    arrays, report, _ = label_tile(_cfg(tmp_path), "33UWP", store, other, tmp_path / "m")
    np.testing.assert_array_equal(arrays["label"], reference["label"])
    np.testing.assert_array_equal(arrays["declared_label"], reference["declared_label"])
    ids = np.where(reference["parcel_id"] >= 0, reference["parcel_id"] + 10, -1)
    np.testing.assert_array_equal(arrays["parcel_id"], ids)
    assert report["unknown_code_parcels"] == 1 and report["unknown_codes"] == {"99999": 1}


def test_too_many_unknown_codes_fail_with_the_codes_listed(tmp_path, tile):
    from tasks.food_security.labels import UnknownCropCodesError

    store, parcels = tile
    parcels = parcels.assign(SNAR_CODE=[635, 99999, 99999, 88888])
    with pytest.raises(UnknownCropCodesError) as raised:
        label_tile(_cfg(tmp_path), "33UWP", store, parcels, tmp_path / "m")
    assert str(raised.value) == (
        "tile 33UWP: 3 of 4 parcels (75%) have crop codes in column 'SNAR_CODE' that the code "
        "lists do not know (more than labels.max_unknown_code_share 50%); most frequent: "
        "'99999' x2, '88888' x1. Check ingest.crop_code_column and that the parcel map is an "
        "INVEKOS map of the right year, or extend the code list (tasks/domain/codelists)"
    )
    # exactly at the share: accepted
    at_share = parcels.assign(SNAR_CODE=[635, 172, 99999, 88888])
    _, report, _ = label_tile(_cfg(tmp_path), "33UWP", store, at_share, tmp_path / "m")
    assert report["unknown_code_parcels"] == 2


def test_rasterise_uses_pixel_centres_and_minus_one_outside():
    from affine import Affine

    from tasks.food_security.labels import rasterise_parcels

    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0)
    empty = rasterise_parcels([], transform, (4, 4))
    assert empty.dtype == np.int32 and (empty == -1).all()
    assert (rasterise_parcels([None], transform, (4, 4)) == -1).all()
    # covers pixel (0, 0)'s centre (5, 35) and touches (0, 1) / (1, 0) without their centres
    got = rasterise_parcels([None, box(0.0, 28.0, 12.0, 40.0)], transform, (4, 4))
    expected = np.full((4, 4), -1)
    expected[0, 0] = 1  # position in the list, the None included
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_outlier_mask_edge_cases():
    flat = np.full((5, 2), 0.5)
    no_gap = np.zeros((5, 2), dtype=bool)
    # mean |z| == max_z is not an outlier
    assert not robust_outlier_mask(flat, no_gap, np.zeros(5, int), 0.0, 5).any()
    # a pixel gap-filled in every month has no score: never an outlier
    gap = no_gap.copy()
    gap[0] = True
    assert not robust_outlier_mask(flat, gap, np.zeros(5, int), 0.5, 5).any()
    # a small class skipped first does not stop the filtering of the next class
    series = np.concatenate([np.full((2, 2), 0.5), np.full((5, 2), 0.5)])
    series[6] = 0.1
    classes = np.array([0, 0, 1, 1, 1, 1, 1])
    flagged = robust_outlier_mask(series, np.zeros((7, 2), bool), classes, 3.5, 5)
    assert flagged.tolist() == [0, 0, 0, 0, 0, 0, 1]
    # the MAD is per month: month 0 is spread (MAD 0.1), month 1 is tight (MAD floor 0.02)
    spread = np.array([[0.3, 0.5], [0.4, 0.5], [0.5, 0.5], [0.6, 0.5], [0.7, 0.6]])
    # pixel 4: month 0 |z| = 0.6745 * 0.2 / 0.1 = 1.349, month 1 = 0.6745 * 0.1 / 0.02 = 3.3725
    z4 = (1.349 + 3.3725) / 2
    got = robust_outlier_mask(spread, np.zeros((5, 2), bool), np.zeros(5, int), z4 - 0.01, 5)
    assert got.tolist() == [0, 0, 0, 0, 1]
    assert not robust_outlier_mask(spread, np.zeros((5, 2), bool), np.zeros(5, int),
                                   z4 + 0.01, 5).any()
