"""Real Sentinel-2 L2A inputs: product metadata, the BOA offset rule per provider, SCL, windows
over HTTP and SAFE products with JPEG 2000 / GeoTIFF bands (fixtures: tests/data/SOURCES)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin
from rasterio.windows import Window

from tasks.sentinel2.l2a import (
    acquisition_from_item,
    read_bands,
    read_masked_bands,
    read_scl,
    scl_valid_mask,
)
from tasks.sentinel2.metadata import (
    SCL_CLASSES,
    L2AMetadataError,
    read_product_metadata,
    read_tile_metadata,
    safe_reflectance_scaling,
    stac_reflectance_scaling,
)
from tasks.sentinel2.safe import read_safe
from tests.tasks.sentinel2.range_server import serve_directory

DATA = Path(__file__).resolve().parents[2] / "data"
SAFE = DATA / "stac_s2_l2a" / "S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126.SAFE"
GRANULE = SAFE / "GRANULE" / "L2A_T33XWJ_A026649_20220413T150756"
COGS = DATA / "s2_l2a_raster" / "S2A_34SGA_20200318_0_L2A"
EARTH_SEARCH = DATA / "stac_s2_l2a" / "pystac-client" / "test_multiple_collections.yaml"
CDSE_PC = (DATA / "stac_s2_l2a" / "xcube-stac"
           / "StacDataStoreTest.test_get_data_types_for_data.yaml")
DEFAULT_MASKED_SCL = [0, 1, 3, 8, 9, 10, 11]  # tasks.config.food_security HarmoniseConfig default
#: Pixel count per SCL class of the real SCL COG (its SOURCES.md).
SCL_COUNTS = {0: 78354, 4: 5, 5: 9146, 6: 16253, 7: 1, 8: 97963, 9: 25954, 10: 73725}


def _bodies(cassette: Path) -> list[dict]:
    recorded = yaml.safe_load(cassette.read_text())
    return [json.loads(i["response"]["body"]["string"]) for i in recorded["interactions"]]


def _earth_search_item() -> dict:
    return _bodies(EARTH_SEARCH)[0]["features"][0]


def _cdse_item() -> dict:
    return _bodies(CDSE_PC)[6]


def _planetary_computer_item() -> dict:
    return _bodies(CDSE_PC)[8]


def test_real_product_metadata_baseline_04():
    mtd = read_product_metadata(SAFE / "MTD_MSIL2A.xml")
    assert mtd.processing_baseline == "04.00" and mtd.product_type == "S2MSI2A"
    assert mtd.tile == "33XWJ" and mtd.spacecraft == "Sentinel-2B"
    assert mtd.quantification_value == 10000.0
    assert set(mtd.boa_add_offset_dn) == {
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"
    }
    assert set(mtd.boa_add_offset_dn.values()) == {-1000}
    assert (mtd.nodata_dn, mtd.saturated_dn) == (0, 65535)
    assert mtd.scl_classes == {
        0: "nodata", 1: "saturated_defective", 2: "dark_feature_shadow", 3: "cloud_shadow",
        4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
        8: "cloud_medium_proba", 9: "cloud_high_proba", 10: "thin_cirrus", 11: "snow_ice",
    }
    assert set(mtd.scl_classes) == set(SCL_CLASSES)  # the legend the SCL mask checks against
    assert mtd.image_format == "GeoTIFF"  # this product (processing centre ESRI) lists GeoTIFF
    assert mtd.image_files[("B04", 10)].endswith("IMG_DATA/R10m/T33XWJ_20220413T150759_B04_10m.tif")
    assert mtd.image_files[("SCL", 20)].endswith("R20m/T33XWJ_20220413T150759_SCL_20m.tif")
    assert len(mtd.image_files) == 36
    assert mtd.cloud_cover == pytest.approx(98.944211)
    lons, lats = zip(*mtd.footprint_lonlat, strict=True)
    assert 80.1 < min(lats) and max(lats) < 80.2 and 14.9 < min(lons) and max(lons) < 17.8
    scaling = safe_reflectance_scaling(mtd, "B8A")
    assert (scaling.scale, scaling.offset) == (pytest.approx(1e-4), pytest.approx(-0.1))


def test_real_tile_metadata():
    tile = read_tile_metadata(GRANULE / "MTD_TL.xml")
    assert tile.epsg == 32633
    assert tile.size == {10: (10980, 10980), 20: (5490, 5490), 60: (1830, 1830)}
    assert tile.origin[10] == (499980.0, 8900040.0)


def test_not_an_l2a_metadata_file_is_named(tmp_path):
    with pytest.raises(L2AMetadataError, match="MTD_TL.xml: root element"):
        read_product_metadata(GRANULE / "MTD_TL.xml")


@pytest.mark.parametrize(
    ("fixture", "band_key", "band", "offset", "rule"),
    [
        # Earth Search v1, baseline 05.09, raster:bands offset -0.1 AND boa_offset_applied: true:
        # the pixels already carry the offset, so it is not applied a second time.
        ("earth_search", "red", "B04", 0.0, "earthsearch:boa_offset_applied"),
        # CDSE STAC 1.1 item, processing:version 05.11, raster:offset -0.1: offset applies once.
        ("cdse", "B04_10m", "B04", -0.1, "processing baseline 05.11"),
        # Planetary Computer, baseline 02.12 (before 04.00): no offset.
        ("planetary_computer", "B04", "B04", 0.0, "processing baseline 02.12"),
    ],
)
def test_offset_decision_per_real_item(fixture, band_key, band, offset, rule):
    item = {"earth_search": _earth_search_item, "cdse": _cdse_item,
            "planetary_computer": _planetary_computer_item}[fixture]()
    acquisition = acquisition_from_item(item, f"https://example.invalid/{item['id']}.json")
    assert acquisition.scale[band] == pytest.approx(1e-4)
    assert acquisition.offset[band] == pytest.approx(offset)
    assert acquisition.offset_rule[band] == rule
    assert str(acquisition.assets[band]) == item["assets"][band_key]["href"]
    assert "SCL" in acquisition.assets


def test_earth_search_item_maps_common_names_and_never_double_applies():
    item = _earth_search_item()
    assert item["properties"]["earthsearch:boa_offset_applied"] is True
    assert item["assets"]["nir08"]["raster:bands"][0]["offset"] == -0.1
    acquisition = acquisition_from_item(item, "https://example.invalid/item.json")
    assert acquisition.tile == "13TDE" and str(acquisition.date) == "2023-10-08"
    assert set(acquisition.offset.values()) == {0.0}
    assert str(acquisition.assets["B8A"]).endswith("/B8A.tif")  # COG, not the -jp2 twin
    flag_dropped = {k: v for k, v in item["properties"].items()
                    if k != "earthsearch:boa_offset_applied"}
    rule = stac_reflectance_scaling(flag_dropped, item["assets"]["nir08"])
    assert rule.offset == pytest.approx(-0.1)  # without the flag the baseline (05.09) rules


def test_item_without_any_offset_evidence_is_refused():
    with pytest.raises(L2AMetadataError, match="cannot tell whether the BOA offset"):
        stac_reflectance_scaling({"datetime": "2020-01-01T00:00:00Z"}, {"href": "B04.tif"},
                                 source="item X asset 'B04'")


def test_scl_classes_of_the_real_scl_cog():
    with rasterio.open(COGS / "SCL.tif") as src:
        scl = src.read(1)
        assert src.crs.to_epsg() == 32634 and src.res == (200.0, 200.0)
    values, counts = np.unique(scl, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == SCL_COUNTS
    valid = scl_valid_mask(scl, DEFAULT_MASKED_SCL)
    assert int(valid.sum()) == SCL_COUNTS[4] + SCL_COUNTS[5] + SCL_COUNTS[6] + SCL_COUNTS[7]
    with pytest.raises(ValueError, match=r"\[12\] are not SCL classes"):
        scl_valid_mask(scl, [8, 12])


def _served_item() -> dict:
    """An Earth Search v0 style item for the served COGs (hrefs relative to the item URL)."""
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": "S2A_34SGA_20200318_0_L2A",
        "properties": {
            "datetime": "2020-03-18T09:11:33Z",
            "sentinel:product_id": "S2A_MSIL2A_20200318T085701_N0214_R007_T34SGA_20200318T115254",
            "s2:mgrs_tile": "34SGA",
        },
        "assets": {"B8A": {"href": "B8A.tif"}, "SCL": {"href": "SCL.tif"}},
    }


def test_cog_window_over_http_fetches_a_fraction_of_the_file(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    window = Window(2000, 3000, 640, 640)  # 10 m units = 32 x 32 pixels of the 200 m COG
    with rasterio.open(COGS / "B8A.tif") as src:
        dn = src.read(1, window=Window(100, 150, 32, 32))
    with rasterio.open(COGS / "SCL.tif") as src:
        scl = src.read(1, window=Window(100, 150, 32, 32))
    with serve_directory(COGS) as (base, sent, requests):
        acquisition = acquisition_from_item(_served_item(), f"{base}/item.json")
        assert acquisition.assets["B8A"] == f"{base}/B8A.tif"
        assert acquisition.offset_rule["B8A"] == "processing baseline 02.14"
        reflectance = read_bands(acquisition, ["B8A"], window)
        masked = read_masked_bands(acquisition, ["B8A"], DEFAULT_MASKED_SCL, window)
    size = (COGS / "B8A.tif").stat().st_size
    assert 0 < sent["/B8A.tif"] < size / 4, (sent, size)
    print(f"window read over HTTP: {sent['/B8A.tif']} of {size} bytes of B8A.tif")
    assert any(r is not None and r.startswith("bytes=") for _, r in requests)
    expected = np.repeat(np.repeat(dn, 20, 0), 20, 1).astype(np.float32) * np.float32(1e-4)
    expected[np.repeat(np.repeat(dn, 20, 0), 20, 1) == 0] = np.nan
    np.testing.assert_allclose(reflectance[0], expected, rtol=1e-6)  # baseline 02.14: no offset
    cloudy = np.isin(np.repeat(np.repeat(scl, 20, 0), 20, 1), DEFAULT_MASKED_SCL)
    assert cloudy.any() and np.isnan(masked[0][cloudy]).all()
    np.testing.assert_array_equal(masked[0][~cloudy], reflectance[0][~cloudy])


def _make_safe(tmp_path: Path, image_format: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """The real product + tile metadata with small stand-in rasters at the listed paths.

    Real B8A DN and SCL classes (a 32 x 32 crop of the real COGs) are placed on the real tile grid
    (EPSG:32633, origin from MTD_TL.xml); ``image_format`` JPEG2000 is the CDSE layout (the copy's
    Granule ``imageFormat`` is set to it), GeoTIFF what this product itself lists.
    """
    safe = tmp_path / SAFE.name
    (safe / GRANULE.relative_to(SAFE)).mkdir(parents=True)
    mtd = (SAFE / "MTD_MSIL2A.xml").read_text()
    if image_format == "JPEG2000":
        mtd = mtd.replace('imageFormat="GeoTIFF"', 'imageFormat="JPEG2000"')
    (safe / "MTD_MSIL2A.xml").write_text(mtd)
    shutil.copy(GRANULE / "MTD_TL.xml", safe / GRANULE.relative_to(SAFE) / "MTD_TL.xml")
    with rasterio.open(COGS / "B8A.tif") as src:
        dn20 = src.read(1, window=Window(300, 200, 32, 32))
    with rasterio.open(COGS / "SCL.tif") as src:
        scl20 = src.read(1, window=Window(300, 200, 32, 32))
    tile = read_tile_metadata(GRANULE / "MTD_TL.xml")
    driver, ext = ("JP2OpenJPEG", ".jp2") if image_format == "JPEG2000" else ("GTiff", ".tif")
    for (band, res), relative in read_product_metadata(safe / "MTD_MSIL2A.xml").image_files.items():
        if res == 60:
            continue
        assert relative.endswith(ext)
        data = scl20 if band == "SCL" else dn20
        if res == 10:
            data = np.repeat(np.repeat(data, 2, 0), 2, 1)
        path = safe / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"QUALITY": "100", "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
        with rasterio.open(
            path, "w", driver=driver, width=data.shape[1], height=data.shape[0], count=1,
            dtype=data.dtype, crs=f"EPSG:{tile.epsg}",
            transform=from_origin(*tile.origin[res], res, res), nodata=0, **options,
        ) as dst:
            dst.write(data, 1)
    return safe, dn20, scl20


@pytest.mark.parametrize("image_format", ["JPEG2000", "GeoTIFF"])
def test_safe_product_reads_bands_with_the_products_own_offset(tmp_path, image_format):
    safe, dn20, scl20 = _make_safe(tmp_path, image_format)
    acquisition = read_safe(safe)
    assert acquisition.tile == "33XWJ" and str(acquisition.date) == "2022-04-13"
    assert Path(acquisition.assets["B04"]).parent.name == "R10m"
    assert Path(acquisition.assets["SCL"]).parent.name == "R20m"
    assert acquisition.offset_rule["B04"] == "MTD_MSIL2A.xml BOA_ADD_OFFSET"
    reflectance = read_bands(acquisition, ["B04", "B8A"])
    dn10 = np.repeat(np.repeat(dn20, 2, 0), 2, 1).astype(np.float32)
    expected = (dn10 - 1000.0) / 10000.0  # (DN + BOA_ADD_OFFSET) / QUANTIFICATION
    expected[dn10 == 0] = np.nan
    assert reflectance.shape == (2, 64, 64)
    np.testing.assert_allclose(reflectance[0], expected, rtol=1e-6)  # lossless JP2: exact DN
    np.testing.assert_allclose(reflectance[1], expected, rtol=1e-6)
    np.testing.assert_array_equal(read_scl(acquisition), np.repeat(np.repeat(scl20, 2, 0), 2, 1))


def test_safe_with_a_missing_band_names_the_file(tmp_path):
    safe, _, _ = _make_safe(tmp_path, "JPEG2000")
    b11 = next(safe.rglob("*_B11_20m.jp2"))
    b11.unlink()
    with pytest.raises(FileNotFoundError, match=r"B11_20m\.jp2: band B11 listed"):
        read_safe(safe)


def test_jp2_without_a_jp2_driver_says_so(tmp_path, monkeypatch):
    safe, _, _ = _make_safe(tmp_path, "JPEG2000")
    monkeypatch.setattr("rasterio.drivers.raster_driver_extensions", lambda: {"tif": "GTiff"})
    with pytest.raises(L2AMetadataError, match="no JP2 driver"):
        read_bands(read_safe(safe), ["B04"])
