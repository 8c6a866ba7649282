"""The SAFE reader checked against the XML itself (issue 19).

Every value the reader returns for the real products in tests/data is compared with the same
element read here by the standard library's ElementTree (namespace wildcards, not lxml and
``local-name()``); the LUTs at their annotated lines/pixels equal the annotated values; the error
messages are checked whole on copies of the real products edited one element at a time. A tiny
uint16 GeoTIFF written here stands in for the measurement (the fixtures carry annotations only).
"""

from __future__ import annotations

import datetime as dt
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tasks.sentinel1 import safe as sm
from tasks.sentinel1.safe import SafeFormatError, open_safe

DATA = Path(__file__).resolve().parents[2] / "data"
IW_GRD = (DATA / "s1_safe" / "sarsen"
          / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
EW_GRDM = (DATA / "s1_ew_grd"
           / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE")
EW_SLC = (DATA / "s1_safe" / "xarray-sentinel"
          / "S1A_EW_SLC__1SDH_20210403T122536_20210403T122630_037286_046484_8152.SAFE")
IW_STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
IW_ANNOTATION = f"annotation/{IW_STEM}.xml"
IW_CALIBRATION = f"annotation/calibration/calibration-{IW_STEM}.xml"
IW_NOISE = f"annotation/calibration/noise-{IW_STEM}.xml"
IW_MEASUREMENT = f"measurement/{IW_STEM}.tiff"


def _first(root: ET.Element, path: str) -> str:
    """Text of the first element at ``path`` (``a/b``, any namespace), searched anywhere."""
    found = root.find(".//" + "/".join("{*}" + p for p in path.split("/")))
    assert found is not None, path
    return (found.text or "").strip()


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


@pytest.fixture(scope="module")
def iw() -> sm.SafeProduct:
    return open_safe(IW_GRD)


@pytest.fixture
def iw_copy(tmp_path: Path) -> Path:
    target = tmp_path / IW_GRD.name
    shutil.copytree(IW_GRD, target)
    return target


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


# ------------------------------------------------------------------------------------ manifest
@pytest.mark.parametrize("product", [IW_GRD, EW_GRDM, EW_SLC])
def test_manifest_fields_equal_the_xml(product: Path) -> None:
    p = open_safe(product)
    root = ET.parse(product / "manifest.safe").getroot()
    assert p.mission == "S1" + _first(root, "platform/number")
    assert p.mode == _first(root, "instrumentMode/mode")
    assert p.product_type == _first(root, "productType")
    pols = [e.text for e in root.findall(".//{*}transmitterReceiverPolarisation")]
    assert p.polarisations == tuple(pols) and len(pols) == 2
    start = _first(root, "acquisitionPeriod/startTime")
    assert p.start_time == dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
    assert p.stop_time == dt.datetime.fromisoformat(
        _first(root, "acquisitionPeriod/stopTime")).replace(tzinfo=dt.UTC)
    assert p.start_time.tzinfo is dt.UTC and p.stop_time > p.start_time
    pairs = [tuple(map(float, v.split(","))) for v in _first(root, "footPrint/coordinates").split()]
    assert list(p.footprint.exterior.coords)[:-1] == [(lon, lat) for lat, lon in pairs]
    assert p.absolute_orbit == int(root.findall(".//{*}orbitNumber")[0].text or "")
    kinds = {"s1Level1ProductSchema": "annotation", "s1Level1CalibrationSchema": "calibration",
             "s1Level1NoiseSchema": "noise", "s1Level1MeasurementSchema": "measurement"}
    want: dict[str, dict[str, list[str]]] = {k: {} for k in kinds.values()}
    for obj in root.findall(".//{*}dataObject"):
        kind = kinds.get(obj.get("repID", ""))
        location = obj.find(".//{*}fileLocation")
        if kind is None or location is None:
            continue
        href = location.get("href", "").removeprefix("./")
        pol = next(t for t in href.rsplit("/", 1)[-1].split("-") if t in {"hh", "hv", "vv", "vh"})
        pol = pol.upper()
        want[kind].setdefault(pol, []).append(href)
    assert p.files == {k: {pol: sorted(v) for pol, v in per.items()} for k, per in want.items()}
    assert p.name == product.name.removesuffix(".SAFE") == p.scene_id
    assert repr(p) == f"SafeProduct({p.name!r}, mode={p.mode}, type={p.product_type})"
    assert p.summary() == {
        "name": p.name, "mission": p.mission, "mode": p.mode, "product_type": p.product_type,
        "polarisations": list(pols), "start_time": p.start_time.isoformat(),
        "stop_time": p.stop_time.isoformat(), "footprint_wkt": p.footprint.wkt}


def test_iw_manifest_values_by_hand(iw: sm.SafeProduct) -> None:
    """The values read off manifest.safe by eye."""
    assert (iw.mission, iw.mode, iw.product_type, iw.polarisations) == (
        "S1B", "IW", "GRD", ("VV", "VH"))
    assert iw.start_time == dt.datetime(2021, 12, 23, 5, 11, 22, 594441, tzinfo=dt.UTC)
    assert iw.absolute_orbit == 30148
    assert iw.files["measurement"]["VV"] == [IW_MEASUREMENT]
    assert iw.files["noise"]["VH"] == [
        "annotation/calibration/noise-s1b-iw-grd-vh-20211223t051122-20211223t051147-030148-"
        "039993-002.xml"]
    assert "rfi" not in iw.files  # other representation kinds are ignored


# ---------------------------------------------------------------------------------- annotation
@pytest.mark.parametrize(("product", "pol"), [(IW_GRD, "VV"), (EW_GRDM, "HH"), (EW_SLC, "hh")])
def test_annotation_fields_equal_the_xml(product: Path, pol: str) -> None:
    p = open_safe(product)
    ann = p.annotation(pol)
    rel = p.files["annotation"][pol.upper()][0]
    root = ET.parse(product / rel).getroot()
    assert ann.file == rel
    header = root.find("adsHeader")
    assert header is not None
    assert ann.mission == header.findtext("missionId")
    assert ann.product_type == header.findtext("productType")
    assert ann.polarisation == (header.findtext("polarisation") or "").upper() == pol.upper()
    assert ann.mode == header.findtext("mode") and ann.swath == header.findtext("swath")
    assert ann.start_time == dt.datetime.fromisoformat(
        header.findtext("startTime") or "").replace(tzinfo=dt.UTC)
    assert ann.stop_time == dt.datetime.fromisoformat(
        header.findtext("stopTime") or "").replace(tzinfo=dt.UTC)
    assert ann.absolute_orbit == int(header.findtext("absoluteOrbitNumber") or "")
    info = root.find("imageAnnotation/imageInformation")
    assert info is not None
    assert ann.lines == int(info.findtext("numberOfLines") or "")
    assert ann.samples == int(info.findtext("numberOfSamples") or "")
    assert ann.range_pixel_spacing == float(info.findtext("rangePixelSpacing") or "")
    assert ann.azimuth_pixel_spacing == float(info.findtext("azimuthPixelSpacing") or "")
    mid = info.findtext("incidenceAngleMidSwath")
    assert ann.incidence_angle_mid_swath == (float(mid) if mid else None)
    assert ann.pass_direction == root.findtext("generalAnnotation/productInformation/pass")
    points = root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    grid = ann.geolocation
    for attr, tag in [("line", "line"), ("pixel", "pixel"), ("latitude", "latitude"),
                      ("longitude", "longitude"), ("height", "height"),
                      ("incidence_angle", "incidenceAngle")]:
        np.testing.assert_array_equal(getattr(grid, attr),
                                      [float(pt.findtext(tag) or "") for pt in points])
    assert p.annotation(pol) is ann  # parsed once


def test_ew_grdm_annotation_values_by_hand() -> None:
    p = open_safe(EW_GRDM)
    ann = p.annotation("HH")
    assert (ann.mission, ann.product_type, ann.mode, ann.swath) == ("S1A", "GRD", "EW", "EW")
    assert ann.range_pixel_spacing == ann.azimuth_pixel_spacing == 40.0
    assert ann.pass_direction in {"Ascending", "Descending"}
    assert ann.geolocation.line.size == 483 and ann.geolocation.height.max() > 600
    assert p.shape == (ann.lines, ann.samples)
    assert p.pixel_spacing == (40.0, 40.0)
    assert p.reference_polarisation == "HH"  # HV annotation not in the fixture
    assert p.geolocation_grid() is ann.geolocation


def test_geolocation_helpers_reproduce_the_tie_points(iw: sm.SafeProduct) -> None:
    grid = iw.geolocation_grid("vv")
    assert iw.gcps()[:2] == [
        (grid.pixel[0], grid.line[0], grid.longitude[0], grid.latitude[0], grid.height[0]),
        (grid.pixel[1], grid.line[1], grid.longitude[1], grid.latitude[1], grid.height[1])]
    assert len(iw.gcps()) == grid.line.size
    # the incidence angle at tie points inside the image is the annotated one (float32)
    inside = (grid.line < iw.shape[0]) & (grid.pixel < iw.shape[1])
    for k in np.flatnonzero(inside)[[0, 7, 50, -1]]:
        row, col = int(grid.line[k]), int(grid.pixel[k])
        got = iw.incidence_angle((slice(row, row + 1), slice(col, col + 1)), pol="VV")
        assert got.shape == (1, 1) and got.dtype == np.float32
        assert got[0, 0] == pytest.approx(grid.incidence_angle[k], abs=1e-4)
    # grouped into range vectors line by line, pixel order kept
    vectors = grid.as_range_vectors(grid.height)
    np.testing.assert_array_equal(vectors.lines, np.unique(grid.line))
    first = grid.line == grid.line.min()
    np.testing.assert_array_equal(vectors.pixels[0], np.sort(grid.pixel[first]))
    np.testing.assert_array_equal(vectors.values[0], grid.height[first][np.argsort(
        grid.pixel[first], kind="stable")])


def test_affine_to_is_least_squares_through_the_corner_shifted_tie_points(
        iw: sm.SafeProduct) -> None:
    from pyproj import Transformer

    transform, rms = iw.affine_to("EPSG:32633")
    grid = iw.geolocation_grid()
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(
        grid.longitude, grid.latitude)
    design = np.column_stack([grid.pixel + 0.5, grid.line + 0.5, np.ones_like(grid.pixel)])
    cx, *_ = np.linalg.lstsq(design, x, rcond=None)
    cy, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(transform[:6], [*cx, *cy], rtol=1e-9)
    want_rms = np.sqrt(np.mean((design @ cx - x) ** 2 + (design @ cy - y) ** 2))
    assert rms == pytest.approx(want_rms, rel=1e-9)
    assert 100.0 < rms < 1000.0  # a 250 km IW scene in UTM 33: close to, not quite, affine


# ------------------------------------------------------------------------------------ LUTs
def test_calibration_luts_equal_the_xml(iw: sm.SafeProduct) -> None:
    cal = iw.calibration("vv")
    root = ET.parse(IW_GRD / IW_CALIBRATION).getroot()
    assert cal.file == IW_CALIBRATION
    assert cal.absolute_calibration_constant == float(
        _first(root, "calibrationInformation/absoluteCalibrationConstant")) == 1.393
    vectors = root.findall("calibrationVectorList/calibrationVector")
    assert set(cal.luts) == {"sigmaNought", "betaNought", "gamma", "dn"}
    for name, lut in cal.luts.items():
        np.testing.assert_array_equal(lut.lines, [int(v.findtext("line") or "") for v in vectors])
        for k in (0, 5, len(vectors) - 1):
            np.testing.assert_array_equal(lut.pixels[k], _numbers(vectors[k].findtext("pixel")
                                                                  or ""))
            np.testing.assert_array_equal(lut.values[k], _numbers(vectors[k].findtext(name)
                                                                  or ""))
    # at an annotated line and pixel, the LUT is the annotated value; elsewhere between them
    line = int(vectors[1].findtext("line") or "")
    pixels = _numbers(vectors[1].findtext("pixel") or "")
    for kind in ("sigmaNought", "gamma"):
        row = iw.calibration_lut("VV", (slice(line, line + 1), slice(0, int(pixels[3]) + 1)),
                                 kind=kind)[0]
        want = _numbers(vectors[1].findtext(kind) or "")
        assert row.dtype == np.float32
        np.testing.assert_allclose(row[pixels[:4].astype(int)], want[:4], rtol=1e-6)
    assert iw.calibration("VV") is cal


def test_missing_calibration_kind_lists_the_available(iw: sm.SafeProduct) -> None:
    with pytest.raises(SafeFormatError) as info:
        iw.calibration_lut("VV", kind="sigma")
    assert str(info.value) == (f"{IW_GRD}/{IW_CALIBRATION}: no sigma LUT; available: "
                               "['betaNought', 'dn', 'gamma', 'sigmaNought']")


def test_noise_luts_equal_the_xml(iw: sm.SafeProduct) -> None:
    noise = iw.noise("vv")
    root = ET.parse(IW_GRD / IW_NOISE).getroot()
    assert noise.file == IW_NOISE and noise.format == "IPF >= 2.9" and not noise.all_zero
    vectors = root.findall("noiseRangeVectorList/noiseRangeVector")
    np.testing.assert_array_equal(noise.range_vectors.lines,
                                  [int(v.findtext("line") or "") for v in vectors])
    for k in (0, len(vectors) - 1):
        np.testing.assert_array_equal(noise.range_vectors.pixels[k],
                                      _numbers(vectors[k].findtext("pixel") or ""))
        np.testing.assert_array_equal(noise.range_vectors.values[k],
                                      _numbers(vectors[k].findtext("noiseRangeLut") or ""))
    blocks = root.findall("noiseAzimuthVectorList/noiseAzimuthVector")
    assert len(noise.azimuth_blocks) == len(blocks) == 3
    for block, xml in zip(noise.azimuth_blocks, blocks, strict=True):
        assert block.swath == xml.findtext("swath")
        assert (block.first_line, block.last_line, block.first_sample, block.last_sample) == tuple(
            int(xml.findtext(t) or "") for t in ("firstAzimuthLine", "lastAzimuthLine",
                                                 "firstRangeSample", "lastRangeSample"))
        np.testing.assert_array_equal(block.lines, _numbers(xml.findtext("line") or ""))
        np.testing.assert_array_equal(block.values, _numbers(xml.findtext("noiseAzimuthLut")
                                                             or ""))
    # at line 0, pixel 0: range LUT value x the IW1 azimuth value
    power = iw.noise_lut("VV", (slice(0, 1), slice(0, 1)))
    want = noise.range_vectors.values[0][0] * noise.azimuth_blocks[0].values[0]
    assert power.dtype == np.float32 and power[0, 0] == pytest.approx(want, rel=1e-6)
    assert iw.noise("VV") is noise


def test_all_zero_needs_every_range_or_every_azimuth_value_zero(iw: sm.SafeProduct) -> None:
    import dataclasses

    noise = iw.noise("VV")
    rv = noise.range_vectors
    one_zero_vector = dataclasses.replace(rv, values=(rv.values[0] * 0, *rv.values[1:]))
    assert not dataclasses.replace(noise, range_vectors=one_zero_vector).all_zero
    all_zero = dataclasses.replace(rv, values=tuple(v * 0 for v in rv.values))
    assert dataclasses.replace(noise, range_vectors=all_zero).all_zero
    assert dataclasses.replace(noise, range_vectors=all_zero, azimuth_blocks=()).all_zero
    blocks = noise.azimuth_blocks
    one_block = (dataclasses.replace(blocks[0], values=blocks[0].values * 0), *blocks[1:])
    assert not dataclasses.replace(noise, azimuth_blocks=one_block).all_zero
    assert not dataclasses.replace(noise, azimuth_blocks=()).all_zero
    assert iw.zero_noise_luts(["vv"]) == {}


def test_legacy_noise_format_and_zero_luts(iw_copy: Path) -> None:
    """IPF < 2.9: noiseVectorList/noiseVector/noiseLut, no azimuth vectors."""
    noise_xml = iw_copy / IW_NOISE
    text = noise_xml.read_text()
    start = text.index("<noiseAzimuthVectorList")
    end = text.index("</noiseAzimuthVectorList>") + len("</noiseAzimuthVectorList>")
    text = (text[:start] + text[end:]).replace("noiseRangeVector", "noiseVector").replace(
        "noiseRangeLut", "noiseLut")
    noise_xml.write_text(text)
    p = open_safe(iw_copy)
    noise = p.noise("VV")
    assert noise.format == "IPF < 2.9" and noise.azimuth_blocks == ()
    power = p.noise_lut("VV", (slice(0, 1), slice(0, 1)))
    assert power[0, 0] == pytest.approx(noise.range_vectors.values[0][0], rel=1e-6)
    # zero every LUT value: reported by file
    root = ET.parse(noise_xml).getroot()
    for lut in root.iter("noiseLut"):
        lut.text = " ".join("0" for _ in (lut.text or "").split())
    ET.ElementTree(root).write(noise_xml)
    p = open_safe(iw_copy)
    assert p.zero_noise_luts(["vv", "VV"]) == {"VV": IW_NOISE}


# --------------------------------------------------------------------------------- checks
def test_requirements_pass_and_chain(iw: sm.SafeProduct) -> None:
    assert iw.require_mode("iw") is iw
    assert iw.require_product_type("grd") is iw
    with pytest.raises(sm.MissingPolarisationError) as info:
        iw.require_polarisations(["vv"])  # annotation present, measurement not in the fixture
    assert str(info.value) == (
        f"{IW_GRD}/{IW_MEASUREMENT}: measurement file of polarisation VV is listed in "
        "manifest.safe but missing from the product")


def test_requirement_messages(iw: sm.SafeProduct) -> None:
    with pytest.raises(sm.WrongModeError) as mode:
        iw.require_mode("EW")
    assert str(mode.value) == (
        f"{IW_GRD}: acquisition mode is 'IW', expected 'EW' (eeflow's polar pipeline needs "
        "Sentinel-1 Extended Wide swath products)")
    with pytest.raises(sm.WrongProductTypeError) as kind:
        iw.require_product_type("SLC")
    assert str(kind.value) == f"{IW_GRD}: product type is 'GRD', expected 'SLC'"
    with pytest.raises(sm.MissingPolarisationError) as pol:
        iw.require_polarisations(("hh", "VV"))
    assert str(pol.value) == (
        f"{IW_GRD}: polarisation HH is missing; the product has ['VV', 'VH'] but ['hh', 'VV'] "
        "are required (EW dual-pol products are 1SDH: HH+HV)")


def test_missing_files_are_named(iw: sm.SafeProduct, iw_copy: Path) -> None:
    with pytest.raises(SafeFormatError) as info:
        iw.annotation("vh")
    assert str(info.value) == (
        f"{IW_GRD}/annotation/s1b-iw-grd-vh-20211223t051122-20211223t051147-030148-039993-"
        "002.xml: annotation file of polarisation VH is missing")
    with pytest.raises(sm.MissingPolarisationError) as info2:
        iw.noise("HH")
    assert str(info2.value) == (
        f"{IW_GRD}: manifest.safe lists no noise file for polarisation HH; polarisations with "
        "noise: ['VH', 'VV']")
    with pytest.raises(sm.MissingPolarisationError) as info3:
        iw.require_polarisations(["VH"])
    assert str(info3.value) == (
        f"{IW_GRD}/annotation/s1b-iw-grd-vh-20211223t051122-20211223t051147-030148-039993-"
        "002.xml: annotation file of polarisation VH is listed in manifest.safe but missing "
        "from the product")
    with pytest.raises(sm.MissingPolarisationError, match=r"HH is missing; the product has "
                       r"\['VV', 'VH'\] but \['HH'\] are required"):
        iw.require_polarisations(["HH"])
    (iw_copy / IW_ANNOTATION).unlink()
    with pytest.raises(SafeFormatError) as info4:
        _ = open_safe(iw_copy).shape
    assert str(info4.value) == f"{iw_copy}: no product annotation file is present"


def test_missing_path_and_non_products(tmp_path: Path) -> None:
    with pytest.raises(SafeFormatError) as info:
        open_safe(tmp_path / "S1A_X.SAFE")
    assert str(info.value) == f"{tmp_path / 'S1A_X.SAFE'}: no such SAFE folder or zip file"
    junk = tmp_path / "S1A_X.zip"
    junk.write_bytes(b"PK not a zip")
    with pytest.raises(SafeFormatError) as info:
        open_safe(junk)
    assert str(info.value) == f"{junk}: not a SAFE folder or a zip file (bad or truncated zip?)"
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("A.SAFE/manifest.safe", "<a/>")
        zf.writestr("B.SAFE/manifest.safe", "<a/>")
        zf.writestr("readme.txt", "x")
    with pytest.raises(SafeFormatError) as info:
        open_safe(two)
    assert str(info.value) == (f"{two}: a Sentinel-1 zip must hold exactly one <PRODUCT>.SAFE "
                               "folder, found ['A.SAFE', 'B.SAFE']")
    none = tmp_path / "none.zip"
    with zipfile.ZipFile(none, "w") as zf:
        zf.writestr("readme.txt", "x")
    with pytest.raises(SafeFormatError, match=r"exactly one <PRODUCT>.SAFE folder, found none$"):
        open_safe(none)
    empty = tmp_path / "E.SAFE"
    empty.mkdir()
    with pytest.raises(SafeFormatError) as info:
        open_safe(empty)
    assert str(info.value) == f"{empty}/manifest.safe: file is missing from the product"


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*")):
            zf.write(f, f.relative_to(folder.parent))
    return archive


def test_zip_reads_like_the_folder_and_names_members(tmp_path: Path) -> None:
    archive = _zip(IW_GRD, tmp_path / "product.zip")
    a, b = open_safe(IW_GRD), open_safe(archive)
    assert b.name == a.name and b.files == a.files and b.footprint.equals(a.footprint)
    np.testing.assert_array_equal(b.calibration_lut("VV", (slice(0, 3), slice(0, 50))),
                                  a.calibration_lut("VV", (slice(0, 3), slice(0, 50))))
    assert sm._SafeFiles(archive).gdal_path(IW_MEASUREMENT) == (
        f"/vsizip/{archive.resolve()}/{IW_GRD.name}/{IW_MEASUREMENT}")
    assert sm._SafeFiles(IW_GRD).gdal_path(IW_MEASUREMENT) == f"{IW_GRD}/{IW_MEASUREMENT}"
    with pytest.raises(SafeFormatError) as info:
        b.annotation("VH")
    assert str(info.value) == (
        f"{archive}!{IW_GRD.name}/annotation/s1b-iw-grd-vh-20211223t051122-20211223t051147-"
        "030148-039993-002.xml: annotation file of polarisation VH is missing")


def test_corrupt_zip_member_is_named(tmp_path: Path) -> None:
    archive = _zip(IW_GRD, tmp_path / "product.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(f"{IW_GRD.name}/{IW_NOISE}")
    start = info.header_offset + 30 + len(info.filename.encode()) + 100
    data[start:start + 50] = b"\0" * 50  # stored uncompressed: the CRC no longer matches
    archive.write_bytes(bytes(data))
    with pytest.raises(SafeFormatError) as err:
        open_safe(archive).noise("VV")
    assert str(err.value).startswith(
        f"{archive}!{IW_GRD.name}/{IW_NOISE}: cannot be read from the zip: ")


# ------------------------------------------------------------------------- edited manifests
@pytest.mark.parametrize(("old", "new", "message"), [
    ("<safe:familyName>SENTINEL-1</safe:familyName>",
     "<safe:familyName>SENTINEL-2</safe:familyName>",
     "{desc}: platform family is 'SENTINEL-2', expected 'SENTINEL-1'"),
    ("<safe:number>B</safe:number>", "", "{desc}: required element "
     "\"//*[local-name()='platform']/*[local-name()='number']\" is missing"),
    ("40.876698,14.925448 41.281048", "40.876698;14.925448 41.281048",
     "{desc}: footprint gml:coordinates '40.876698;14.925448 41.281048,11.865704 "
     "42.780445,12.189661 42.376778,15.321935' is not 'lat,lon lat,lon ...'"),
    ('href="./annotation/s1b-iw-grd-vv', 'href="../annotation/s1b-iw-grd-vv',
     "{desc}: dataObject 'products1biwgrdvv20211223t05112220211223t051147030148039993001' href "
     "'../annotation/" + IW_STEM + ".xml' points outside the product {path}; a SAFE product "
     "only links files inside its own folder (corrupt or tampered manifest.safe?)"),
])
def test_bad_manifests_are_refused_by_name(iw_copy: Path, old: str, new: str,
                                           message: str) -> None:
    _edit(iw_copy / "manifest.safe", old, new)
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy)
    assert str(info.value) == message.format(desc=f"{iw_copy}/manifest.safe", path=iw_copy)


def test_manifest_edge_cases(iw_copy: Path) -> None:
    manifest = iw_copy / "manifest.safe"
    # no orbit number -> None; a file without a polarisation in its name or a location is skipped
    text = manifest.read_text()
    text = text.replace('<safe:orbitNumber type="start">30148</safe:orbitNumber>', "")
    text = text.replace('<safe:orbitNumber type="stop">30148</safe:orbitNumber>', "")
    text = text.replace(f'href="./annotation/calibration/calibration-{IW_STEM}.xml"',
                        'href="./annotation/calibration/calibration-s1b-iw-grd-xx.xml"')
    text = text.replace(f'href="./annotation/calibration/noise-{IW_STEM}.xml"', "")
    text = text.replace("<safe:startTime>2021-12-23T05:11:22.594441</safe:startTime>",
                        "<safe:startTime>2021-12-23T05:11:22.594441Z</safe:startTime>")
    manifest.write_text(text)
    p = open_safe(iw_copy)
    assert p.absolute_orbit is None
    assert sorted(p.files["calibration"]) == ["VH"] and sorted(p.files["noise"]) == ["VH"]
    assert sorted(p.files["measurement"]) == ["VH", "VV"]  # listed after the skipped ones
    assert p.start_time == dt.datetime(2021, 12, 23, 5, 11, 22, 594441, tzinfo=dt.UTC)


@pytest.mark.parametrize("href", ["/etc/passwd-vv-.xml", "C:/x-vv-.xml", "", "a\\..\\..\\b-vv-",
                                  "C:"])
def test_escaping_hrefs_are_refused(iw_copy: Path, href: str) -> None:
    files = sm._SafeFiles(iw_copy)
    with pytest.raises(SafeFormatError) as info:
        files.check_inside(href, "file")
    assert str(info.value) == (
        f"file {href!r} points outside the product {iw_copy}; a SAFE product only links files "
        "inside its own folder (corrupt or tampered manifest.safe?)")
    files.check_inside("annotation/x.xml", "file")  # inside: no error
    files.check_inside("x", "file")  # a one-character name is no drive letter
    with pytest.raises(SafeFormatError) as exists_info:
        files.exists(href)
    assert str(exists_info.value) == str(info.value)  # exists checks with the word "file"
    (iw_copy / "link.xml").symlink_to(IW_GRD / "manifest.safe")
    with pytest.raises(SafeFormatError, match=r"^file 'link.xml' points outside the product"):
        files.check_inside("link.xml", "file")
    assert not files.exists("annotation")  # a folder is not a file


# ----------------------------------------------------------------------- edited annotations
@pytest.mark.parametrize(("old", "new", "message"), [
    ("<numberOfLines>16705</numberOfLines>", "<numberOfLines>16705.5</numberOfLines>",
     "{desc}: bad value in product annotation: invalid literal for int() with base 10: "
     "'16705.5'"),
    ("<missionId>S1B</missionId>", "",
     "{desc}: required element \"*[local-name()='adsHeader']/*[local-name()='missionId']\" is "
     "missing"),
    ("<height>", "<height>x", None),
    ("<geolocationGridPoint>", "<notAPoint>", None),
])
def test_bad_annotations_are_refused_by_name(iw_copy: Path, old: str, new: str,
                                             message: str | None) -> None:
    path = iw_copy / IW_ANNOTATION
    if old == "<geolocationGridPoint>":
        text = path.read_text().replace("<geolocationGridPoint>", "<notAPoint>").replace(
            "</geolocationGridPoint>", "</notAPoint>")
        path.write_text(text)
        message = "{desc}: geolocationGrid has no geolocationGridPoint"
    else:
        _edit(path, old, new)
    if old == "<height>":
        first = ET.parse(IW_GRD / IW_ANNOTATION).getroot().find(".//geolocationGridPoint/height")
        assert first is not None
        message = "{desc}: geolocation height 'x" + (first.text or "").strip() + \
            "' is not a number"
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).annotation("VV")
    assert message is not None
    assert str(info.value) == message.format(desc=f"{iw_copy}/{IW_ANNOTATION}")


def test_annotation_without_optional_elements(iw_copy: Path) -> None:
    path = iw_copy / IW_ANNOTATION
    text = path.read_text()
    for tag in ("pass", "incidenceAngleMidSwath"):
        start = text.index(f"<{tag}>")
        text = text[:start] + text[text.index(f"</{tag}>") + len(f"</{tag}>"):]
    path.write_text(text)
    ann = open_safe(iw_copy).annotation("VV")
    assert ann.pass_direction is None
    assert ann.incidence_angle_mid_swath is None


def test_truncated_and_non_numeric_luts(iw_copy: Path) -> None:
    cal = iw_copy / IW_CALIBRATION
    cal.write_bytes(cal.read_bytes()[:1000])
    with pytest.raises(SafeFormatError, match=r"^" + str(iw_copy) + "/" + IW_CALIBRATION
                       + r": not well-formed XML \(truncated or corrupt\?\): "):
        open_safe(iw_copy).calibration("VV")
    noise = iw_copy / IW_NOISE
    _edit(noise, "<noiseRangeLut count=", "<noiseRangeLut bad=\"1\" count=")
    text = noise.read_text()
    k = text.index("<noiseRangeLut bad")
    k = text.index(">", k) + 1
    noise.write_text(text[:k] + "abc " + text[k:])
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).noise("VV")
    assert str(info.value) == (
        f"{iw_copy}/{IW_NOISE}: element noiseRangeLut holds non-numeric values: could not "
        "convert string to float: 'abc'")


def test_calibration_edge_cases(iw_copy: Path) -> None:
    path = iw_copy / IW_CALIBRATION
    original = path.read_text()
    # no constant -> 1.0, no dn vectors -> no dn LUT (dn is optional)
    text = original.replace("<absoluteCalibrationConstant>1.393000e+00"
                            "</absoluteCalibrationConstant>", "")
    while "<dn " in text:
        start = text.index("<dn ")
        text = text[:start] + text[text.index("</dn>", start) + len("</dn>"):]
    path.write_text(text)
    cal = open_safe(iw_copy).calibration("VV")
    assert cal.absolute_calibration_constant == 1.0
    assert set(cal.luts) == {"sigmaNought", "betaNought", "gamma"}
    # a zero sigma0 value is refused; a vector with one value too few is named
    k = original.index("<sigmaNought count=")
    k = original.index(">", k) + 1
    path.write_text(original[:k] + "0 " + original[k:].split(" ", 1)[1])
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).calibration("VV")
    assert str(info.value) == f"{iw_copy}/{IW_CALIBRATION}: sigmaNought LUT holds values <= 0"
    path.write_text(original[:k] + original[k:].split(" ", 1)[1])
    with pytest.raises(SafeFormatError, match=r"^" + str(iw_copy) + "/" + IW_CALIBRATION
                       + r": sigmaNought LUT: "):
        open_safe(iw_copy).calibration("VV")
    vectors_start = original.index("<calibrationVectorList")
    vectors_end = original.index("</calibrationVectorList>") + len("</calibrationVectorList>")
    path.write_text(original[:vectors_start] + original[vectors_end:])
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).calibration("VV")
    assert str(info.value) == (
        f"{iw_copy}/{IW_CALIBRATION}: calibrationVectorList has no calibrationVector")


def test_noise_without_vectors_is_refused(iw_copy: Path) -> None:
    path = iw_copy / IW_NOISE
    text = path.read_text()
    path.write_text(text.replace("<noiseRangeVector>", "<other>").replace(
        "</noiseRangeVector>", "</other>"))
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).noise("VV")
    assert str(info.value) == (
        f"{iw_copy}/{IW_NOISE}: neither noiseRangeVectorList/noiseRangeVector nor "
        "noiseVectorList/noiseVector found")


# ------------------------------------------------------------------------------ measurement
def _tiny_measurement(safe: Path, lines: int = 6, samples: int = 9,
                      dtype: str = "uint16") -> np.ndarray:
    """Shrink the annotation to lines x samples and write that measurement GeoTIFF."""
    import rasterio

    _edit(safe / IW_ANNOTATION, "<numberOfLines>16705</numberOfLines>",
          f"<numberOfLines>{lines}</numberOfLines>")
    _edit(safe / IW_ANNOTATION, "<numberOfSamples>26102</numberOfSamples>",
          f"<numberOfSamples>{samples}</numberOfSamples>")
    dn = (np.arange(lines * samples).reshape(lines, samples) * 7 + 3).astype(dtype)
    (safe / "measurement").mkdir()
    with rasterio.open(safe / IW_MEASUREMENT, "w", driver="GTiff", height=dn.shape[0],
                       width=dn.shape[1], count=1, dtype=dtype) as dst:
        dst.write(dn, 1)
    return dn


def test_read_dn_reads_the_window(iw_copy: Path) -> None:
    dn = _tiny_measurement(iw_copy)
    p = open_safe(iw_copy)
    assert p.shape == (6, 9)
    np.testing.assert_array_equal(p.read_dn("vv"), dn)
    got = p.read_dn("VV", (slice(2, 5), slice(1, 7)))
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, dn[2:5, 1:7])
    p.require_polarisations(["VV"])  # now every listed VV file is present


def test_read_dn_refuses_other_sizes_types_and_corrupt_files(iw_copy: Path) -> None:
    _tiny_measurement(iw_copy, 6, 9, dtype="int16")
    tiff = iw_copy / IW_MEASUREMENT
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).read_dn("VV")
    assert str(info.value) == f"{tiff}: measurement dtype int16, expected uint16"
    _edit(iw_copy / IW_ANNOTATION, "<numberOfLines>6</numberOfLines>",
          "<numberOfLines>5</numberOfLines>")
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).read_dn("VV")
    assert str(info.value) == (
        f"{tiff}: measurement is 6x9 but the annotation says 5x9 (lines x samples)")
    tiff.write_bytes(b"II*\0" + b"\0" * 20)
    with pytest.raises(SafeFormatError, match=r"^" + str(tiff) + r": cannot read the "
                       r"measurement GeoTIFF \(truncated or corrupt\?\): "):
        open_safe(iw_copy).read_dn("VV")


def test_parse_time_and_local_xpath() -> None:
    assert sm.parse_time("2021-12-23T05:11:22.594441") == dt.datetime(
        2021, 12, 23, 5, 11, 22, 594441, tzinfo=dt.UTC)
    assert sm.parse_time("2021-12-23T05:11:22Z") == dt.datetime(2021, 12, 23, 5, 11, 22,
                                                               tzinfo=dt.UTC)
    assert sm._local("a/b") == "*[local-name()='a']/*[local-name()='b']"
    assert sm._local("../a/.") == "../*[local-name()='a']/."
    np.testing.assert_array_equal(sm._floats(" 1 2.5e1\n3 ", "f", "w"), [1.0, 25.0, 3.0])
    assert sm._floats(None, "f", "w").size == 0


def _edit_noise_vector(safe: Path, vector: str, child: str, text: str | None) -> None:
    """Set (or, with None, remove) ``child`` of the first ``vector`` of the VV noise file."""
    path = safe / IW_NOISE
    tree = ET.parse(path)
    first = tree.getroot().find(f".//{vector}")
    assert first is not None
    element = first.find(child)
    assert element is not None
    if text is None:
        first.remove(element)
    else:
        element.text = text
    tree.write(path)


@pytest.mark.parametrize(("vector", "child", "text", "message"), [
    ("noiseRangeVector", "line", None, "required element \"*[local-name()='line']\" is missing"),
    ("noiseRangeVector", "pixel", None,
     "required element \"*[local-name()='pixel']\" is missing"),
    ("noiseRangeVector", "pixel", "0 40 x1", "element pixel holds non-numeric values: could not "
     "convert string to float: 'x1'"),
    ("noiseRangeVector", "noiseRangeLut", None,
     "required element \"*[local-name()='noiseRangeLut']\" is missing"),
    ("noiseRangeVector", "noiseRangeLut", "1.0 2.0",
     "vector 0 (line 0): 657 pixels but 2 values"),
    ("noiseAzimuthVector", "swath", None,
     "required element \"*[local-name()='swath']\" is missing"),
    ("noiseAzimuthVector", "firstAzimuthLine", None,
     "required element \"*[local-name()='firstAzimuthLine']\" is missing"),
    ("noiseAzimuthVector", "lastAzimuthLine", None,
     "required element \"*[local-name()='lastAzimuthLine']\" is missing"),
    ("noiseAzimuthVector", "firstRangeSample", None,
     "required element \"*[local-name()='firstRangeSample']\" is missing"),
    ("noiseAzimuthVector", "lastRangeSample", None,
     "required element \"*[local-name()='lastRangeSample']\" is missing"),
    ("noiseAzimuthVector", "line", None,
     "required element \"*[local-name()='line']\" is missing"),
    ("noiseAzimuthVector", "line", "0 10 ten", "element line holds non-numeric values: could "
     "not convert string to float: 'ten'"),
    ("noiseAzimuthVector", "noiseAzimuthLut", None,
     "required element \"*[local-name()='noiseAzimuthLut']\" is missing"),
    ("noiseAzimuthVector", "noiseAzimuthLut", "1.0 one", "element noiseAzimuthLut holds "
     "non-numeric values: could not convert string to float: 'one'"),
])
def test_bad_noise_vectors_are_named(iw_copy: Path, vector: str, child: str, text: str | None,
                                     message: str) -> None:
    _edit_noise_vector(iw_copy, vector, child, text)
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).noise("VV")
    assert str(info.value) == f"{iw_copy}/{IW_NOISE}: {message}"


def test_windows_of_a_small_product(iw_copy: Path) -> None:
    """On a 6 x 9 product: every LUT / angle window is the full array's sub-block."""
    _tiny_measurement(iw_copy)
    p = open_safe(iw_copy)
    assert p.measurement_path("vv") == f"{iw_copy}/{IW_MEASUREMENT}"
    window = (slice(2, 5), slice(1, 7))
    for full, part in [
        (p.incidence_angle(), p.incidence_angle(window)),
        (p.incidence_angle(pol="VV"), p.incidence_angle(window, pol="VV")),
        (p.calibration_lut("VV"), p.calibration_lut("VV", window)),
        (p.calibration_lut("VV", kind="gamma"), p.calibration_lut("VV", window, kind="gamma")),
        (p.noise_lut("VV"), p.noise_lut("VV", window)),
    ]:
        assert full.shape == (6, 9) and part.shape == (3, 6)
        np.testing.assert_array_equal(part, full[window])
    assert not np.array_equal(p.calibration_lut("VV", kind="gamma"), p.calibration_lut("VV"))


def test_windows_of_the_real_luts_on_a_6_by_9_image(iw: sm.SafeProduct,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The real product's LUTs with its image size taken as 6 x 9: windows are sub-blocks.

    Kept in memory (no copy, no GeoTIFF), this is the fastest test of the windows, so mutmut
    (fastest tests first) runs it before the real-size ones: a LUT method that drops its window
    fails here at once instead of interpolating the real 16705 x 26102 image until its time limit.
    """
    monkeypatch.setattr(sm.SafeProduct, "shape", property(lambda self: (6, 9)))
    window = (slice(2, 5), slice(1, 7))
    for method, kwargs in [(iw.incidence_angle, {}), (iw.incidence_angle, {"pol": "VV"}),
                           (iw.calibration_lut, {"pol": "VV"}),
                           (iw.calibration_lut, {"pol": "VV", "kind": "gamma"}),
                           (iw.noise_lut, {"pol": "VV"})]:
        full, part = method(**kwargs), method(window=window, **kwargs)
        assert full.shape == (6, 9) and part.shape == (3, 6) and part.dtype == np.float32
        np.testing.assert_array_equal(part, full[window])


def test_gdal_path_refuses_escaping_files(iw_copy: Path) -> None:
    with pytest.raises(SafeFormatError) as info:
        sm._SafeFiles(iw_copy).gdal_path("../x-vv-.tiff")
    assert str(info.value) == (
        f"file '../x-vv-.tiff' points outside the product {iw_copy}; a SAFE product only "
        "links files inside its own folder (corrupt or tampered manifest.safe?)")


def _xp(path: str) -> str:
    return "/".join(f"*[local-name()='{p}']" for p in path.split("/"))


@pytest.mark.parametrize(("element", "xpath"), [
    ("<safe:familyName>SENTINEL-1</safe:familyName>", "//" + _xp("platform/familyName")),
    ("<s1sarl1:mode>IW</s1sarl1:mode>", "//" + _xp("instrumentMode/mode")),
    ("<s1sarl1:productType>GRD</s1sarl1:productType>", "//*[local-name()='productType']"),
    ("<safe:startTime>2021-12-23T05:11:22.594441</safe:startTime>",
     "//" + _xp("acquisitionPeriod/startTime")),
    ("<safe:stopTime>2021-12-23T05:11:47.593146</safe:stopTime>",
     "//" + _xp("acquisitionPeriod/stopTime")),
    ("<gml:coordinates>40.876698,14.925448 41.281048,11.865704 42.780445,12.189661 "
     "42.376778,15.321935</gml:coordinates>", "//" + _xp("footPrint/coordinates")),
])
def test_missing_manifest_elements_are_named(iw_copy: Path, element: str, xpath: str) -> None:
    _edit(iw_copy / "manifest.safe", element, "")
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy)
    assert str(info.value) == f"{iw_copy}/manifest.safe: required element {xpath!r} is missing"


def test_empty_manifest_values_stay_empty(iw_copy: Path) -> None:
    manifest = iw_copy / "manifest.safe"
    _edit(manifest, "<s1sarl1:mode>IW</s1sarl1:mode>", "<s1sarl1:mode> </s1sarl1:mode>")
    _edit(manifest, "<s1sarl1:productType>GRD</s1sarl1:productType>",
          "<s1sarl1:productType></s1sarl1:productType>")
    _edit(manifest, "<s1sarl1:transmitterReceiverPolarisation>VH<",
          "<s1sarl1:transmitterReceiverPolarisation><")
    _edit(manifest, '<safe:orbitNumber type="stop">30148<', '<safe:orbitNumber type="stop">30149<')
    text = manifest.read_text()
    start = text.index("<gml:coordinates>") + len("<gml:coordinates>")
    manifest.write_text(text[:start] + text[text.index("</gml:coordinates>"):])
    p = open_safe(iw_copy)
    assert (p.mode, p.product_type, p.polarisations) == ("", "", ("VV", ""))
    assert p.footprint.is_empty
    assert p.absolute_orbit == 30148  # the start orbit
    with pytest.raises(sm.WrongModeError, match="acquisition mode is '', expected 'EW'"):
        p.require_mode("EW")


def test_objects_after_one_without_location_are_still_listed(iw_copy: Path) -> None:
    _edit(iw_copy / "manifest.safe", f'href="./annotation/calibration/noise-{IW_STEM}.xml"', "")
    p = open_safe(iw_copy)
    assert sorted(p.files["noise"]) == ["VH"]
    assert sorted(p.files["calibration"]) == sorted(p.files["measurement"]) == ["VH", "VV"]
    assert sorted(p.files["annotation"]) == ["VH", "VV"]


def test_missing_geolocation_element_is_named(iw_copy: Path) -> None:
    _edit(iw_copy / IW_ANNOTATION, "<height>", "<altitude>")
    _edit(iw_copy / IW_ANNOTATION, "</height>", "</altitude>")
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).annotation("VV")
    assert str(info.value) == (f"{iw_copy}/{IW_ANNOTATION}: required element "
                               "\"*[local-name()='height']\" is missing")


def _edit_calibration_vector(safe: Path, child: str, text: str | None) -> None:
    path = safe / IW_CALIBRATION
    tree = ET.parse(path)
    first = tree.getroot().find(".//calibrationVector")
    assert first is not None
    element = first.find(child)
    assert element is not None
    if text is None:
        first.remove(element)
    else:
        element.text = text
    tree.write(path)


@pytest.mark.parametrize(("child", "text", "message"), [
    ("line", None, "required element \"*[local-name()='line']\" is missing"),
    ("pixel", None, "required element \"*[local-name()='pixel']\" is missing"),
    ("pixel", "0 forty", "element pixel holds non-numeric values: could not convert string "
     "to float: 'forty'"),
    ("sigmaNought", None, "required element \"*[local-name()='sigmaNought']\" is missing"),
    ("sigmaNought", "663.8 x", "element sigmaNought holds non-numeric values: could not "
     "convert string to float: 'x'"),
    ("dn", "401.5 y", "element dn holds non-numeric values: could not convert string to "
     "float: 'y'"),
])
def test_bad_calibration_vectors_are_named(iw_copy: Path, child: str, text: str | None,
                                           message: str) -> None:
    _edit_calibration_vector(iw_copy, child, text)
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy).calibration("VV")
    assert str(info.value) == f"{iw_copy}/{IW_CALIBRATION}: {message}"


def test_calibration_amplitudes_below_one_are_valid(iw_copy: Path) -> None:
    """Values in (0, 1] are valid LUT amplitudes; only values <= 0 are refused."""
    _edit_calibration_vector(iw_copy, "gamma", "0.5 " + " ".join(["615.0"] * 653))
    cal = open_safe(iw_copy).calibration("VV")
    assert cal.luts["gamma"].values[0][0] == 0.5


def test_escaping_href_of_an_object_without_id(iw_copy: Path) -> None:
    manifest = iw_copy / "manifest.safe"
    _edit(manifest, 'ID="products1biwgrdvv20211223t05112220211223t051147030148039993001" ', "")
    _edit(manifest, 'href="./annotation/s1b-iw-grd-vv', 'href="../annotation/s1b-iw-grd-vv')
    with pytest.raises(SafeFormatError) as info:
        open_safe(iw_copy)
    assert str(info.value).startswith(
        f"{iw_copy}/manifest.safe: dataObject '?' href '../annotation/{IW_STEM}.xml' points "
        "outside the product ")


def test_huge_text_nodes_are_parsed(iw_copy: Path) -> None:
    """A text node over lxml's default 10 MB limit (huge_tree=True lifts it)."""
    manifest = iw_copy / "manifest.safe"
    text = manifest.read_text()
    end = text.rindex("</")
    manifest.write_text(text[:end] + "<padding>" + "x" * 11_000_000 + "</padding>" + text[end:])
    assert open_safe(iw_copy).mission == "S1B"


@pytest.mark.parametrize("href", ["/etc/passwd-vv-.xml", "\\windows\\x-vv-.xml", "C:x-vv-.xml"])
def test_escaping_hrefs_are_refused_in_a_zip(tmp_path: Path, href: str) -> None:
    """A zip has no folder to resolve against: the name alone must be refused."""
    archive = tmp_path / "product.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(IW_GRD / "manifest.safe", f"{IW_GRD.name}/manifest.safe")
    files = sm._SafeFiles(archive)
    with pytest.raises(SafeFormatError) as info:
        files.check_inside(href, "file")
    assert str(info.value) == (
        f"file {href!r} points outside the product {archive}; a SAFE product only links files "
        "inside its own folder (corrupt or tampered manifest.safe?)")
    assert files.exists("manifest.safe") and not files.exists("x")
