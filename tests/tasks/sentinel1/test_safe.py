import datetime as dt
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tasks.sentinel1.safe import (
    MissingPolarisationError,
    SafeFormatError,
    WrongModeError,
    WrongProductTypeError,
    open_safe,
)

REAL = Path(__file__).resolve().parents[2] / "data" / "s1_safe"
IW_GRD = (
    REAL / "sarsen" / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
)
EW_SLC = (
    REAL
    / "xarray-sentinel"
    / "S1A_EW_SLC__1SDH_20210403T122536_20210403T122630_037286_046484_8152.SAFE"
)
START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)


def test_real_iw_grd_manifest_and_annotation():
    p = open_safe(IW_GRD)
    assert (p.mission, p.mode, p.product_type) == ("S1B", "IW", "GRD")
    assert p.polarisations == ("VV", "VH")
    assert p.start_time.isoformat().startswith("2021-12-23T05:11:22")
    assert p.footprint.bounds == pytest.approx((11.865704, 40.876698, 15.321935, 42.780445))
    assert p.shape == (16705, 26102)
    assert p.pixel_spacing == (10.0, 10.0)
    grid = p.geolocation_grid()
    assert grid.line.size == 210
    inc = p.incidence_angle((slice(0, 40), slice(0, 26102, 1)))
    assert inc.shape == (40, 26102)
    assert 30.0 < inc.min() < 31.0 and 45.5 < inc.max() < 46.5


def test_real_calibration_and_noise_luts():
    p = open_safe(IW_GRD)
    lut = p.calibration_lut("VV", (slice(0, 2), slice(0, 41)))
    assert lut[0, 0] == pytest.approx(663.8558, rel=1e-6)
    assert lut[0, 40] == pytest.approx(663.5805, rel=1e-6)
    noise = p.noise("VV")
    assert len(noise.range_vectors.lines) == 27 and len(noise.azimuth_blocks) == 3
    assert not noise.all_zero and p.zero_noise_luts(["VV"]) == {}
    power = p.noise_lut("VV", (slice(0, 1), slice(0, 1)))
    assert power[0, 0] == pytest.approx(2375.788 * 1.091791, rel=1e-5)
    # the IW1/IW2 block boundary is a step in the noise power
    step = p.noise_lut("VV", (slice(0, 1), slice(8889, 8891)))[0]
    assert abs(step[1] - step[0]) > 50


def test_real_iw_product_is_rejected_for_ew_pipeline():
    p = open_safe(IW_GRD)
    with pytest.raises(WrongModeError, match="mode is 'IW', expected 'EW'"):
        p.require_mode("EW")
    with pytest.raises(MissingPolarisationError, match="HH is missing"):
        p.require_polarisations(("HH", "HV"))
    # VH is listed in the manifest but its files are not in the fixture
    with pytest.raises(MissingPolarisationError, match="missing from the product"):
        p.require_polarisations(("VV", "VH"))
    with pytest.raises(SafeFormatError, match="measurement"):
        p.read_dn("VV", (slice(0, 2), slice(0, 2)))


def test_real_ew_slc_annotation():
    p = open_safe(EW_SLC)
    assert (p.mode, p.product_type, p.polarisations) == ("EW", "SLC", ("HH", "HV"))
    p.require_mode("EW")
    with pytest.raises(WrongProductTypeError, match="'SLC', expected 'GRD'"):
        p.require_product_type("GRD")
    ann = p.annotation("HH")
    assert (ann.swath, ann.lines, ann.samples) == ("EW1", 19856, 8185)
    assert ann.geolocation.line.size == 378
    inc = p.incidence_angle((slice(0, 10), slice(0, 8185, 1)))
    assert 19.0 < inc.min() < 20.0 and 28.0 < inc.max() < 29.0
    assert p.footprint.bounds[1] > 76


def test_generated_scene_reads_back(small_scene):
    p = open_safe(small_scene.safe_path)
    assert (p.mission, p.mode, p.product_type) == ("S1A", "EW", "GRD")
    p.require_mode("EW").require_product_type("GRD").require_polarisations(("HH", "HV"))
    assert p.shape == (200, 240) and p.pixel_spacing == (40.0, 40.0)
    assert p.start_time == START
    dn = p.read_dn("HV", (slice(10, 20), slice(100, 130)))
    assert dn.dtype == np.uint16 and dn.shape == (10, 30) and dn.min() > 0
    inc = p.incidence_angle()
    assert inc.min() == pytest.approx(19.0, abs=0.05) and inc.max() == pytest.approx(47.0, abs=0.05)
    assert np.all(np.diff(inc[0]) > 0)  # near range at sample 0
    # generated swaths are curved (not an affine image of the map grid): see test_geocode.py
    _, rms = p.affine_to("EPSG:3413")
    assert 0 < rms < 40.0


def test_zip_product_reads_like_the_folder(small_scene, tmp_path):
    folder = small_scene.safe_path
    archive = tmp_path / f"{folder.stem}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*"):
            zf.write(f, f.relative_to(folder.parent))
    a, b = open_safe(folder), open_safe(archive)
    assert b.name == a.name and b.polarisations == a.polarisations
    window = (slice(5, 25), slice(0, 240))
    np.testing.assert_array_equal(a.read_dn("HH", window), b.read_dn("HH", window))
    np.testing.assert_array_equal(a.noise_lut("HV", window), b.noise_lut("HV", window))


def _copy(scene, tmp_path: Path) -> Path:
    dst = tmp_path / scene.safe_path.name
    shutil.copytree(scene.safe_path, dst)
    return dst


def test_truncated_xml_names_the_file(small_scene, tmp_path):
    safe = _copy(small_scene, tmp_path)
    noise_file = next((safe / "annotation" / "calibration").glob("noise-*-hv-*.xml"))
    noise_file.write_bytes(noise_file.read_bytes()[:500])
    p = open_safe(safe)
    with pytest.raises(SafeFormatError, match=noise_file.name):
        p.noise_lut("HV")
    manifest = safe / "manifest.safe"
    manifest.write_text(manifest.read_text()[:300])
    with pytest.raises(SafeFormatError, match="manifest.safe.*not well-formed"):
        open_safe(safe)


def test_truncated_tiff_names_the_file(small_scene, tmp_path):
    safe = _copy(small_scene, tmp_path)
    tiff = next((safe / "measurement").glob("*-hh-*.tiff"))
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 3])
    with pytest.raises(SafeFormatError, match=tiff.name):
        open_safe(safe).read_dn("HH")


def test_missing_product_path():
    with pytest.raises(SafeFormatError, match="no such SAFE"):
        open_safe("/nonexistent/S1A_X.SAFE")


@pytest.mark.parametrize("legacy_format", [False, True])
def test_all_zero_noise_lut_is_reported(small_scene, tmp_path, legacy_format):
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    safe = tmp_path / small_scene.safe_path.name
    shutil.copytree(small_scene.safe_path, safe)
    assert open_safe(safe).zero_noise_luts(["HH", "HV"]) == {}
    assert not open_safe(safe).noise("HH").all_zero
    (edited,) = zero_noise_luts(safe, ["HV"], legacy_format=legacy_format)
    product = open_safe(safe)
    noise = product.noise("HV")
    assert noise.all_zero and not product.noise("HH").all_zero
    assert noise.format == ("IPF < 2.9" if legacy_format else "IPF >= 2.9")
    assert (len(noise.azimuth_blocks) == 0) == legacy_format
    assert product.zero_noise_luts(["HH", "hv"]) == {
        "HV": f"annotation/calibration/{edited.name}"}
    assert not product.noise_lut("HV").any()  # what noise removal would subtract


def test_azimuth_zero_noise_lut_counts_as_zero(small_scene):
    import dataclasses

    noise = open_safe(small_scene.safe_path).noise("HH")
    zeroed = tuple(dataclasses.replace(b, values=b.values * 0) for b in noise.azimuth_blocks)
    assert dataclasses.replace(noise, azimuth_blocks=zeroed).all_zero
