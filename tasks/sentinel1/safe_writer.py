"""Write the metadata files of a Sentinel-1 Level-1 GRD SAFE product.

Used by the scene generator. Element names and nesting follow real IPF 3.x products (compare
``tests/data/s1_safe``): ``manifest.safe`` (XFDU: platform, orbit reference, general product
information, acquisition period, frame set footprint, data objects with href, size and MD5),
product annotation (``adsHeader``, ``generalAnnotation/productInformation``,
``imageAnnotation/imageInformation`` and ``processingInformation``, ``geolocationGrid``,
``swathMerging``), calibration (``calibrationVectorList``) and noise (``noiseRangeVectorList`` and
``noiseAzimuthVectorList``, the IPF >= 2.9 format) annotation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lxml import etree

from tasks.sentinel1.lut import AzimuthBlock, RangeVectors

NS = {
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "gml": "http://www.opengis.net/gml",
    "xfdu": "urn:ccsds:schema:xfdu:1",
    "safe": "http://www.esa.int/safe/sentinel-1.0",
    "s1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1",
    "s1sar": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar",
    "s1sarl1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1",
}


@dataclass(frozen=True)
class ProductHeader:
    """Identity of a product: what goes into ``adsHeader`` and the file names."""

    mission: str  # "S1A"
    mode: str  # "EW"
    product_type: str  # "GRD"
    start_time: dt.datetime
    stop_time: dt.datetime
    absolute_orbit: int
    datatake_id: int
    pass_direction: str = "Descending"

    def file_stem(self, pol: str, image_number: int) -> str:
        """``s1a-ew-grd-hh-20211223t051122-20211223t051147-030148-039993-001``."""
        return (
            f"{self.mission.lower()}-{self.mode.lower()}-{self.product_type.lower()}-{pol.lower()}-"
            f"{self.start_time:%Y%m%dt%H%M%S}-{self.stop_time:%Y%m%dt%H%M%S}-"
            f"{self.absolute_orbit:06d}-{self.datatake_id:06x}-{image_number:03d}"
        )


def _iso(t: dt.datetime) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="microseconds")


def _sub(
    parent: etree._Element, tag: str, text: object | None = None, **attrib: str
) -> etree._Element:
    node = etree.SubElement(parent, tag, attrib)
    if text is not None:
        node.text = str(text)
    return node


def _numbers(values: Sequence[float] | np.ndarray, fmt: str = "{:.6e}") -> str:
    return " ".join(fmt.format(v) for v in values)


def _ints(values: Sequence[float] | np.ndarray) -> str:
    return " ".join(str(int(round(v))) for v in values)


def _ads_header(root: etree._Element, header: ProductHeader, pol: str, image_number: int) -> None:
    ads = _sub(root, "adsHeader")
    _sub(ads, "missionId", header.mission)
    _sub(ads, "productType", header.product_type)
    _sub(ads, "polarisation", pol)
    _sub(ads, "mode", header.mode)
    _sub(ads, "swath", header.mode)
    _sub(ads, "startTime", _iso(header.start_time))
    _sub(ads, "stopTime", _iso(header.stop_time))
    _sub(ads, "absoluteOrbitNumber", header.absolute_orbit)
    _sub(ads, "missionDataTakeId", header.datatake_id)
    _sub(ads, "imageNumber", f"{image_number:03d}")


def _write(root: etree._Element, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    )
    return path


def _line_time(header: ProductHeader, line: float, lines: int) -> str:
    span = (header.stop_time - header.start_time) / max(lines - 1, 1)
    return _iso(header.start_time + span * float(line))


def _general_annotation(root: etree._Element, header: ProductHeader,
                        platform_heading_deg: float) -> None:
    general = _sub(root, "generalAnnotation")
    info = _sub(general, "productInformation")
    _sub(info, "pass", header.pass_direction)
    _sub(info, "timelinessCategory", "Fast-24h")
    _sub(info, "platformHeading", f"{platform_heading_deg:.15e}")
    _sub(info, "projection", "Ground Range")
    _sub(info, "rangeSamplingRate", "2.502314816000000e+07")
    _sub(info, "radarFrequency", "5.405000454334350e+09")
    _sub(info, "azimuthSteeringRate", "2.390895448000000e+00")


def _image_information(image: etree._Element, header: ProductHeader, lines: int, samples: int,
                       pixel_spacing_m: float, geolocation: dict[str, np.ndarray]) -> None:
    image_info = _sub(image, "imageInformation")
    _sub(image_info, "productFirstLineUtcTime", _iso(header.start_time))
    _sub(image_info, "productLastLineUtcTime", _iso(header.stop_time))
    _sub(image_info, "ascendingNodeTime", _iso(header.start_time - dt.timedelta(minutes=38)))
    _sub(image_info, "anchorTime", _iso(header.start_time))
    _sub(image_info, "productComposition", "Slice")
    _sub(image_info, "sliceNumber", 1)
    _sub(image_info, "slantRangeTime", f"{float(np.min(geolocation['slant_range_time'])):.15e}")
    _sub(image_info, "pixelValue", "Detected")
    _sub(image_info, "outputPixels", "16 bit Unsigned Integer")
    _sub(image_info, "rangePixelSpacing", f"{pixel_spacing_m:.6e}")
    _sub(image_info, "azimuthPixelSpacing", f"{pixel_spacing_m:.6e}")
    interval = (header.stop_time - header.start_time).total_seconds() / max(lines - 1, 1)
    _sub(image_info, "azimuthTimeInterval", f"{interval:.15e}")
    _sub(image_info, "azimuthFrequency", f"{1.0 / interval:.15e}")
    _sub(image_info, "numberOfSamples", samples)
    _sub(image_info, "numberOfLines", lines)
    _sub(image_info, "zeroDopMinusAcqTime", "2.002251400000000e+02")
    mid = np.interp(
        samples / 2,
        geolocation["pixel"][: np.sum(geolocation["line"] == 0)],
        geolocation["incidence_angle"][: np.sum(geolocation["line"] == 0)],
    )
    _sub(image_info, "incidenceAngleMidSwath", f"{mid:.15e}")


def _processing_information(image: etree._Element,
                            swath_bounds: Sequence[tuple[str, int, int]]) -> None:
    processing = _sub(image, "processingInformation")
    _sub(processing, "thermalNoiseCorrectionPerformed", "false")
    _sub(processing, "applicationLutId", "EW_Default")
    params = _sub(processing, "swathProcParamsList", count=str(len(swath_bounds)))
    for swath, _, _ in swath_bounds:
        p = _sub(params, "swathProcParams")
        _sub(p, "swath", swath)
        _sub(p, "processorScalingFactor", "1.026920e+12")


def _geolocation_grid(root: etree._Element, header: ProductHeader,
                      geolocation: dict[str, np.ndarray], lines: int) -> None:
    grid = _sub(root, "geolocationGrid")
    points = _sub(grid, "geolocationGridPointList", count=str(geolocation["line"].size))
    for i in range(geolocation["line"].size):
        point = _sub(points, "geolocationGridPoint")
        _sub(point, "azimuthTime", _line_time(header, geolocation["line"][i], lines))
        _sub(point, "slantRangeTime", f"{geolocation['slant_range_time'][i]:.15e}")
        _sub(point, "line", int(geolocation["line"][i]))
        _sub(point, "pixel", int(geolocation["pixel"][i]))
        _sub(point, "latitude", f"{geolocation['latitude'][i]:.15e}")
        _sub(point, "longitude", f"{geolocation['longitude'][i]:.15e}")
        _sub(point, "height", f"{geolocation['height'][i]:.15e}")
        _sub(point, "incidenceAngle", f"{geolocation['incidence_angle'][i]:.15e}")
        _sub(point, "elevationAngle", f"{geolocation['elevation_angle'][i]:.15e}")


def _swath_merging(root: etree._Element, header: ProductHeader,
                   swath_bounds: Sequence[tuple[str, int, int]], lines: int) -> None:
    merging = _sub(root, "swathMerging")
    merges = _sub(merging, "swathMergeList", count=str(len(swath_bounds)))
    for swath, first, last in swath_bounds:
        merge = _sub(merges, "swathMerge")
        _sub(merge, "swath", swath)
        bounds_list = _sub(merge, "swathBoundsList", count="1")
        bounds = _sub(bounds_list, "swathBounds")
        _sub(bounds, "azimuthTime", _iso(header.start_time))
        _sub(bounds, "firstAzimuthLine", 0)
        _sub(bounds, "firstRangeSample", first)
        _sub(bounds, "lastAzimuthLine", lines - 1)
        _sub(bounds, "lastRangeSample", last)


def write_product_annotation(
    path: Path,
    header: ProductHeader,
    pol: str,
    image_number: int,
    *,
    lines: int,
    samples: int,
    pixel_spacing_m: float,
    geolocation: dict[str, np.ndarray],
    swath_bounds: Sequence[tuple[str, int, int]],
    platform_heading_deg: float,
) -> Path:
    """Write ``annotation/s1?-ew-grd-<pol>-...xml``.

    Args:
        path: output file.
        header: product identity.
        pol: polarisation (``HH``...).
        image_number: 1-based image number of the polarisation.
        lines: image lines.
        samples: image samples.
        pixel_spacing_m: range and azimuth pixel spacing.
        platform_heading_deg: platform heading (degrees from north).
        geolocation: 1-D arrays ``line``, ``pixel``, ``latitude``, ``longitude``, ``height``,
            ``incidence_angle``, ``elevation_angle``, ``slant_range_time``.
        swath_bounds: ``(swath, first_sample, last_sample)`` of each sub-swath (EW1..EW5).

    """
    root = etree.Element("product")
    _ads_header(root, header, pol, image_number)
    quality = _sub(root, "qualityInformation")
    _sub(quality, "productQualityIndex", "0.000000000000000e+00")
    _general_annotation(root, header, platform_heading_deg)
    image = _sub(root, "imageAnnotation")
    _image_information(image, header, lines, samples, pixel_spacing_m, geolocation)
    _processing_information(image, swath_bounds)
    _geolocation_grid(root, header, geolocation, lines)
    _swath_merging(root, header, swath_bounds, lines)
    return _write(root, path)


def write_calibration(
    path: Path,
    header: ProductHeader,
    pol: str,
    image_number: int,
    luts: dict[str, RangeVectors],
    lines: int,
) -> Path:
    """Write ``annotation/calibration/calibration-...xml`` (sigmaNought, betaNought, gamma, dn)."""
    root = etree.Element("calibration")
    _ads_header(root, header, pol, image_number)
    info = _sub(root, "calibrationInformation")
    _sub(info, "absoluteCalibrationConstant", "1.000000e+00")
    sigma = luts["sigmaNought"]
    vectors = _sub(root, "calibrationVectorList", count=str(len(sigma.lines)))
    for i, line in enumerate(sigma.lines):
        vec = _sub(vectors, "calibrationVector")
        _sub(vec, "azimuthTime", _line_time(header, line, lines))
        _sub(vec, "line", int(line))
        _sub(vec, "pixel", _ints(sigma.pixels[i]), count=str(sigma.pixels[i].size))
        for name in ("sigmaNought", "betaNought", "gamma", "dn"):
            _sub(vec, name, _numbers(luts[name].values[i]), count=str(luts[name].values[i].size))
    return _write(root, path)


def write_noise(
    path: Path,
    header: ProductHeader,
    pol: str,
    image_number: int,
    range_vectors: RangeVectors,
    azimuth_blocks: Sequence[AzimuthBlock],
    lines: int,
) -> Path:
    """Write ``annotation/calibration/noise-...xml`` in the IPF >= 2.9 (range + azimuth) format."""
    root = etree.Element("noise")
    _ads_header(root, header, pol, image_number)
    rng = _sub(root, "noiseRangeVectorList", count=str(len(range_vectors.lines)))
    for i, line in enumerate(range_vectors.lines):
        vec = _sub(rng, "noiseRangeVector")
        _sub(vec, "azimuthTime", _line_time(header, line, lines))
        _sub(vec, "line", int(line))
        _sub(vec, "pixel", _ints(range_vectors.pixels[i]), count=str(range_vectors.pixels[i].size))
        _sub(
            vec,
            "noiseRangeLut",
            _numbers(range_vectors.values[i]),
            count=str(range_vectors.values[i].size),
        )
    az = _sub(root, "noiseAzimuthVectorList", count=str(len(azimuth_blocks)))
    for block in azimuth_blocks:
        vec = _sub(az, "noiseAzimuthVector")
        _sub(vec, "swath", block.swath)
        _sub(vec, "firstAzimuthLine", block.first_line)
        _sub(vec, "firstRangeSample", block.first_sample)
        _sub(vec, "lastAzimuthLine", block.last_line)
        _sub(vec, "lastRangeSample", block.last_sample)
        _sub(vec, "line", _ints(block.lines), count=str(block.lines.size))
        _sub(vec, "noiseAzimuthLut", _numbers(block.values), count=str(block.values.size))
    return _write(root, path)


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # the SAFE format specifies MD5 checksums
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wrapped(meta: etree._Element, object_id: str, text_info: str,
             category: str = "DMD") -> etree._Element:
    """Add a metadataObject to the manifest's metadataSection; return its ``xmlData``."""
    obj = _sub(
        meta, "metadataObject", ID=object_id, classification="DESCRIPTION", category=category
    )
    wrap = _sub(
        obj, "metadataWrap", mimeType="text/xml", vocabularyName="SAFE", textInfo=text_info
    )
    return _sub(wrap, "xmlData")


def _manifest_content_units(root: etree._Element, header: ProductHeader,
                            files: Sequence[tuple[str, str, str]]) -> None:
    x = f"{{{NS['xfdu']}}}"
    package = _sub(root, "informationPackageMap")
    unit = _sub(
        package,
        f"{x}contentUnit",
        unitType="SAFE Archive Information Package",
        textInfo=f"Sentinel-1 {header.mode} Level-1 {header.product_type} Product",
        dmdID="acquisitionPeriod platform generalProductInformation measurementOrbitReference "
        "measurementFrameSet",
        pdiID="processing",
    )
    for object_id, rep_id, _ in files:
        kind = "Measurement Data Unit" if rep_id == "s1Level1MeasurementSchema" else "Metadata Unit"
        sub = _sub(unit, f"{x}contentUnit", unitType=kind, repID=rep_id)
        _sub(sub, "dataObjectPointer", dataObjectID=object_id)


def _manifest_processing_and_platform(meta: etree._Element, header: ProductHeader) -> None:
    safe = f"{{{NS['safe']}}}"
    l1 = f"{{{NS['s1sarl1']}}}"
    proc = _sub(
        _wrapped(meta, "processing", "Processing", "PDI"),
        f"{safe}processing",
        name="SentinelOne product generation (eeflow synthetic scene generator)",
        start=_iso(header.stop_time),
        stop=_iso(header.stop_time),
    )
    _sub(
        proc,
        f"{safe}facility",
        name="eeflow",
        organisation="eeflow",
        site="synthetic",
        country="n/a",
    )
    platform = _sub(_wrapped(meta, "platform", "Platform Description"), f"{safe}platform")
    _sub(
        platform, f"{safe}nssdcIdentifier", "2014-016A" if header.mission == "S1A" else "2016-025A"
    )
    _sub(platform, f"{safe}familyName", "SENTINEL-1")
    _sub(platform, f"{safe}number", header.mission[-1])
    instrument = _sub(platform, f"{safe}instrument")
    _sub(instrument, f"{safe}familyName", "Synthetic Aperture Radar", abbreviation="SAR")
    mode = _sub(_sub(_sub(instrument, f"{safe}extension"), f"{l1}instrumentMode"), f"{l1}mode")
    mode.text = header.mode


def _manifest_orbit_and_product(meta: etree._Element, header: ProductHeader,
                                polarisations: Sequence[str]) -> None:
    safe = f"{{{NS['safe']}}}"
    s1 = f"{{{NS['s1']}}}"
    l1 = f"{{{NS['s1sarl1']}}}"
    orbit = _sub(_wrapped(meta, "measurementOrbitReference", "Orbit Reference"),
                 f"{safe}orbitReference")
    _sub(orbit, f"{safe}orbitNumber", header.absolute_orbit, type="start")
    _sub(orbit, f"{safe}orbitNumber", header.absolute_orbit, type="stop")
    relative = (header.absolute_orbit - 73) % 175 + 1
    _sub(orbit, f"{safe}relativeOrbitNumber", relative, type="start")
    _sub(orbit, f"{safe}relativeOrbitNumber", relative, type="stop")
    props = _sub(_sub(orbit, f"{safe}extension"), f"{s1}orbitProperties")
    _sub(props, f"{s1}pass", header.pass_direction.upper())
    general = _sub(
        _wrapped(meta, "generalProductInformation", "General Product Information"),
        f"{l1}standAloneProductInformation",
    )
    _sub(general, f"{l1}instrumentConfigurationID", 6)
    _sub(general, f"{l1}missionDataTakeID", header.datatake_id)
    for pol in polarisations:
        _sub(general, f"{l1}transmitterReceiverPolarisation", pol)
    _sub(general, f"{l1}productClass", "S")
    _sub(general, f"{l1}productClassDescription", "SAR Standard L1 Product")
    _sub(general, f"{l1}productComposition", "Slice")
    _sub(general, f"{l1}productType", header.product_type)
    _sub(general, f"{l1}productTimelinessCategory", "Fast-24h")


def _manifest_period_and_frame(meta: etree._Element, header: ProductHeader,
                               footprint_latlon: Sequence[tuple[float, float]]) -> None:
    safe = f"{{{NS['safe']}}}"
    gml = f"{{{NS['gml']}}}"
    period = _sub(_wrapped(meta, "acquisitionPeriod", "Acquisition Period"),
                  f"{safe}acquisitionPeriod")
    _sub(period, f"{safe}startTime", _iso(header.start_time))
    _sub(period, f"{safe}stopTime", _iso(header.stop_time))
    frame = _sub(
        _sub(_wrapped(meta, "measurementFrameSet", "Frame Set"), f"{safe}frameSet"), f"{safe}frame"
    )
    footprint = _sub(
        frame, f"{safe}footPrint", srsName="http://www.opengis.net/gml/srs/epsg.xml#4326"
    )
    _sub(
        footprint,
        f"{gml}coordinates",
        " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in footprint_latlon),
    )


def _manifest_data_objects(root: etree._Element, safe_dir: Path,
                           files: Sequence[tuple[str, str, str]]) -> None:
    data = _sub(root, "dataObjectSection")
    for object_id, rep_id, href in files:
        path = safe_dir / href
        obj = _sub(data, "dataObject", ID=object_id, repID=rep_id)
        mime = "application/octet-stream" if href.endswith(".tiff") else "text/xml"
        stream = _sub(obj, "byteStream", mimeType=mime, size=str(path.stat().st_size))
        _sub(stream, "fileLocation", locatorType="URL", href=f"./{href}")
        _sub(stream, "checksum", _md5(path), checksumName="MD5")


def write_safe_manifest(
    safe_dir: Path,
    header: ProductHeader,
    polarisations: Sequence[str],
    footprint_latlon: Sequence[tuple[float, float]],
    files: Sequence[tuple[str, str, str]],
) -> Path:
    """Write ``manifest.safe`` (XFDU) listing ``files`` = ``(data object ID, repID, href)``.

    Sizes and MD5 checksums are computed from the files already written under ``safe_dir``.
    """
    x = f"{{{NS['xfdu']}}}"
    root = etree.Element(
        f"{x}XFDU",
        nsmap=NS,
        version="esa/safe/sentinel-1.0/sentinel-1/sar/level-1/grd/standard/ewdp",
    )
    _manifest_content_units(root, header, files)
    meta = _sub(root, "metadataSection")
    _manifest_processing_and_platform(meta, header)
    _manifest_orbit_and_product(meta, header, polarisations)
    _manifest_period_and_frame(meta, header, footprint_latlon)
    _manifest_data_objects(root, safe_dir, files)
    return _write(root, safe_dir / "manifest.safe")
