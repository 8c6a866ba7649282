import datetime as dt
import hashlib
import json
import re

import numpy as np
import pytest
import rasterio
from lxml import etree

from tasks.sentinel1.generator import generate_ew_grd_scene, surface_backscatter
from tasks.sentinel1.safe import open_safe

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
NAME = re.compile(r"^S1A_EW_GRDM_1SDH_\d{8}T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}$")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_safe_layout_matches_the_esa_product(small_scene):
    safe = small_scene.safe_path
    assert NAME.match(small_scene.scene_id) and safe.name == small_scene.scene_id + ".SAFE"
    manifest = etree.parse(str(safe / "manifest.safe")).getroot()
    hrefs = manifest.xpath("//*[local-name()='fileLocation']/@href")
    assert len(hrefs) == 8  # annotation, calibration, noise, measurement x HH, HV
    for obj in manifest.xpath("//*[local-name()='dataObject']"):
        href = obj.xpath(".//*[local-name()='fileLocation']/@href")[0]
        md5 = obj.xpath(".//*[local-name()='checksum']/text()")[0]
        assert hashlib.md5((safe / href).read_bytes()).hexdigest() == md5
    ann = etree.parse(str(next((safe / "annotation").glob("*-hh-*.xml")))).getroot()
    assert ann.findtext("adsHeader/mode") == "EW" and ann.findtext("adsHeader/productType") == "GRD"
    assert float(ann.findtext("imageAnnotation/imageInformation/rangePixelSpacing")) == 40.0
    noise = etree.parse(str(next((safe / "annotation/calibration").glob("noise-*-hv-*.xml"))))
    assert len(noise.getroot().findall("noiseAzimuthVectorList/noiseAzimuthVector")) == 5
    with rasterio.open(next((safe / "measurement").glob("*-hv-*.tiff"))) as src:
        gcps, crs = src.gcps
        assert src.dtypes[0] == "uint16" and (src.height, src.width) == (200, 240)
        assert len(gcps) > 20 and crs.to_epsg() == 4326


def test_ground_truth_files(small_scene):
    with rasterio.open(small_scene.truth_raster_path) as src:
        truth = src.read(1)
        assert src.crs.to_epsg() == 3413
    assert set(np.unique(truth)) <= {0, 1, 2, 3, 4, 5}
    assert small_scene.class_fractions["land"] == pytest.approx(0.12, abs=0.03)
    for name in ("water", "young", "level_first_year", "deformed"):
        assert small_scene.class_fractions[name] > 0.02, name
    chart = json.loads(small_scene.chart_path.read_text())
    assert chart["crs"]["properties"]["name"].endswith("3413")
    assert {f["properties"]["ice_class"] for f in chart["features"]} <= {1, 2, 3, 4, 5}
    land = json.loads(small_scene.land_mask_path.read_text())
    assert land["features"]


def test_deterministic_by_seed(tmp_path):
    kw = dict(start_time=START, lines=64, samples=96)
    a = generate_ew_grd_scene(tmp_path / "a", seed=5, **kw)
    b = generate_ew_grd_scene(tmp_path / "b", seed=5, **kw)
    c = generate_ew_grd_scene(tmp_path / "c", seed=6, **kw)
    tiff = lambda s: next((s.safe_path / "measurement").glob("*-hh-*.tiff"))  # noqa: E731
    assert _digest(tiff(a)) == _digest(tiff(b))
    assert _digest(a.truth_raster_path) == _digest(b.truth_raster_path)
    assert _digest(tiff(a)) != _digest(tiff(c))


def test_noise_vectors_describe_the_added_noise(tmp_path):
    """HV over calm water is below the noise floor: removing the noise lowers it clearly."""
    scene = generate_ew_grd_scene(
        tmp_path,
        seed=11,
        start_time=START,
        lines=96,
        samples=320,
        land_fraction=0.0,
        difficulty=0.0,
    )
    p = open_safe(scene.safe_path)
    truth = scene.truth_in_image()  # the truth raster is on the map grid; read it per image pixel
    dn = p.read_dn("HV").astype(np.float64)
    a2 = p.calibration_lut("HV").astype(np.float64) ** 2
    noise = p.noise_lut("HV").astype(np.float64)
    sel = dn > 0
    raw = np.mean(dn[sel] ** 2 / a2[sel])
    expected_noise = np.mean(noise[sel] / a2[sel])
    assert raw > expected_noise  # noise dominates the low-backscatter scene
    # averaged over the scene, DN^2 - N recovers the signal: compare to the model sigma0
    table = surface_backscatter()
    water = truth == 1
    if water[sel].mean() > 0.05:
        denoised = np.mean((dn[sel & water] ** 2 - noise[sel & water]) / a2[sel & water])
        assert (
            10 * np.log10(max(denoised, 1e-6))
            < 10 * np.log10(np.mean(dn[sel & water] ** 2 / a2[sel & water])) - 1.0
        )
    assert table["calm_water"].hv_db_35 < -28


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        generate_ew_grd_scene(tmp_path, seed=1, start_time=START, lines=8, samples=8)
    with pytest.raises(ValueError, match="land_fraction"):
        generate_ew_grd_scene(tmp_path, seed=1, start_time=START, land_fraction=0.99)


@pytest.mark.slow
def test_1200_scene_is_fast(tmp_path):
    import time

    t0 = time.perf_counter()
    generate_ew_grd_scene(tmp_path, seed=1, start_time=START, lines=1200, samples=1200)
    assert time.perf_counter() - t0 < 10
