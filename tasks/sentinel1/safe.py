"""Reader for Sentinel-1 Level-1 SAFE products (a ``*.SAFE`` folder or its ``.zip``).

:func:`open_safe` parses ``manifest.safe`` (mission, mode, product type, polarisations, times,
footprint, the list of annotation / calibration / noise / measurement files) and gives lazy access
to the per-polarisation product annotation (image size, pixel spacing, geolocation grid with the
incidence angle), the calibration LUTs, the thermal-noise LUTs (IPF >= 2.9 range + azimuth format
and the older range-only format) and windowed reads of the uint16 measurement GeoTIFFs.

Element names follow the ESA Sentinel-1 product specification (S1-RS-MDA-52-7441) as found in real
products (see ``tests/data/s1_safe``). Parsing uses lxml and ``local-name()`` so namespace prefixes
do not matter. Every problem with the input raises a :class:`SafeError` subclass naming the file and
what was expected.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal, overload

import numpy as np
from lxml import etree
from shapely.geometry import Polygon

from tasks.errors import EeflowError
from tasks.sentinel1.lut import (
    AzimuthBlock,
    RangeVectors,
    interpolate_azimuth_blocks,
    interpolate_range_vectors,
    window_axes,
)

log = logging.getLogger(__name__)

Window = tuple[slice, slice]

_POL_IN_NAME = re.compile(r"-(hh|hv|vv|vh)-", re.IGNORECASE)
_REP_KIND = {
    "s1Level1ProductSchema": "annotation",
    "s1Level1CalibrationSchema": "calibration",
    "s1Level1NoiseSchema": "noise",
    "s1Level1MeasurementSchema": "measurement",
}


class SafeError(EeflowError, ValueError):
    """A SAFE product is unusable; the message names the file and what was expected."""


class SafeFormatError(SafeError):
    """A file of the product is missing, truncated or not in the expected format."""


class WrongModeError(SafeError):
    """The product's acquisition mode is not the one required (e.g. IW instead of EW)."""


class WrongProductTypeError(SafeError):
    """The product type is not the one required (e.g. SLC instead of GRD)."""


class MissingPolarisationError(SafeError):
    """A required polarisation (e.g. HV) is not in the product."""


@dataclass(frozen=True)
class GeolocationGrid:
    """Tie points of the product annotation (1-D arrays of equal length).

    ``line``/``pixel`` are image coordinates (0-based), ``latitude``/``longitude`` WGS84 degrees,
    ``height`` metres above the ellipsoid, ``incidence_angle`` degrees.
    """

    line: np.ndarray
    pixel: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    height: np.ndarray
    incidence_angle: np.ndarray

    def as_range_vectors(self, values: np.ndarray) -> RangeVectors:
        """Group ``values`` (one per tie point) by line into vectors for interpolation."""
        lines = np.unique(self.line)
        pixels, vals = [], []
        for line in lines:
            sel = self.line == line
            order = np.argsort(self.pixel[sel], kind="stable")
            pixels.append(self.pixel[sel][order].astype(np.float64))
            vals.append(np.asarray(values)[sel][order].astype(np.float64))
        return RangeVectors(lines=lines, pixels=tuple(pixels), values=tuple(vals))


@dataclass(frozen=True)
class ProductAnnotation:
    """The parts of ``annotation/s1?-*.xml`` eeflow uses (one polarisation, one swath)."""

    file: str
    mission: str
    product_type: str
    polarisation: str
    mode: str
    swath: str
    start_time: dt.datetime
    stop_time: dt.datetime
    absolute_orbit: int
    lines: int
    samples: int
    range_pixel_spacing: float
    azimuth_pixel_spacing: float
    incidence_angle_mid_swath: float | None
    pass_direction: str | None
    geolocation: GeolocationGrid


@dataclass(frozen=True)
class Calibration:
    """``annotation/calibration/calibration-*.xml``: LUT vectors by name (sigmaNought, ...)."""

    file: str
    absolute_calibration_constant: float
    luts: dict[str, RangeVectors]


@dataclass(frozen=True)
class Noise:
    """``annotation/calibration/noise-*.xml``: range vectors and azimuth blocks (IPF >= 2.9)."""

    file: str
    range_vectors: RangeVectors
    azimuth_blocks: tuple[AzimuthBlock, ...] = field(default_factory=tuple)
    format: str = "IPF >= 2.9"

    @property
    def all_zero(self) -> bool:
        """True when the noise power is 0 everywhere, so noise removal would subtract nothing.

        That is every range LUT value 0, or (IPF >= 2.9) every azimuth LUT value 0; found in
        real products of older IPF versions.
        """
        range_zero = not any(np.any(values != 0) for values in self.range_vectors.values)
        azimuth_zero = bool(self.azimuth_blocks) and not any(
            np.any(block.values != 0) for block in self.azimuth_blocks
        )
        return range_zero or azimuth_zero


class _SafeFiles:
    """File access inside a SAFE folder or a zip holding one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.root_name = path.name
            self._prefix = ""
        elif path.is_file() and zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            tops = {
                n.split("/")[0] for n in self._zip.namelist() if n.split("/")[0].endswith(".SAFE")
            }
            if len(tops) != 1:
                raise SafeFormatError(
                    f"{path}: a Sentinel-1 zip must hold exactly one <PRODUCT>.SAFE folder, "
                    f"found {sorted(tops) or 'none'}"
                )
            self.root_name = tops.pop()
            self._prefix = self.root_name + "/"
        elif path.exists():
            raise SafeFormatError(
                f"{path}: not a SAFE folder or a zip file (bad or truncated zip?)"
            )
        else:
            raise SafeFormatError(f"{path}: no such SAFE folder or zip file")

    def describe(self, rel: str) -> str:
        return f"{self.path}/{rel}" if self._zip is None else f"{self.path}!{self._prefix}{rel}"

    def check_inside(self, rel: str, what: str) -> None:
        """Refuse a path that leads out of the product (``../x.xml``, ``/etc/x``, a symlink)."""
        parts = PurePosixPath(rel.replace("\\", "/")).parts
        escapes = not rel or rel.startswith(("/", "\\")) or ".." in parts or (
            len(rel) > 1 and rel[1] == ":"
        )
        if not escapes and self._zip is None:
            root = self.path.resolve()
            escapes = not (self.path / rel).resolve().is_relative_to(root)
        if escapes:
            raise SafeFormatError(
                f"{what} {rel!r} points outside the product {self.path}; a SAFE product only "
                "links files inside its own folder (corrupt or tampered manifest.safe?)"
            )

    def exists(self, rel: str) -> bool:
        self.check_inside(rel, "file")
        if self._zip is None:
            return (self.path / rel).is_file()
        try:
            self._zip.getinfo(self._prefix + rel)
        except KeyError:
            return False
        return True

    def read(self, rel: str) -> bytes:
        if not self.exists(rel):
            raise SafeFormatError(f"{self.describe(rel)}: file is missing from the product")
        if self._zip is None:
            return (self.path / rel).read_bytes()
        try:
            return self._zip.read(self._prefix + rel)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise SafeFormatError(
                f"{self.describe(rel)}: cannot be read from the zip: {err}"
            ) from err

    def gdal_path(self, rel: str) -> str:
        self.check_inside(rel, "file")
        if self._zip is None:
            return str(self.path / rel)
        return f"/vsizip/{self.path.resolve()}/{self._prefix}{rel}"

    def parse_xml(self, rel: str) -> etree._Element:
        data = self.read(rel)
        try:
            return etree.fromstring(data, parser=etree.XMLParser(huge_tree=True))
        except etree.XMLSyntaxError as err:
            raise SafeFormatError(
                f"{self.describe(rel)}: not well-formed XML (truncated or corrupt?): {err}"
            ) from err


@overload
def _text(node: etree._Element, xpath: str, file: str, required: Literal[True] = True) -> str: ...
@overload
def _text(node: etree._Element, xpath: str, file: str, required: bool) -> str | None: ...
def _text(node: etree._Element, xpath: str, file: str, required: bool = True) -> str | None:
    found = node.xpath(xpath)
    if not found:
        if required:
            raise SafeFormatError(f"{file}: required element {xpath!r} is missing")
        return None
    item = found[0]
    text = item if isinstance(item, str) else item.text
    return (text or "").strip()


def _local(path: str) -> str:
    """Turn ``a/b/c`` into a namespace-agnostic XPath ``*[local-name()='a']/...``."""
    return "/".join(
        part if part in (".", "..", "") else f"*[local-name()='{part}']" for part in path.split("/")
    )


def _floats(text: str | None, file: str, what: str) -> np.ndarray:
    try:
        return np.array((text or "").split(), dtype=np.float64)
    except ValueError as err:
        raise SafeFormatError(f"{file}: element {what} holds non-numeric values: {err}") from err


def parse_time(value: str) -> dt.datetime:
    """Parse an annotation time (``2021-12-23T05:11:22.594441``, UTC, naive) to a UTC datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "")).replace(tzinfo=dt.UTC)


class SafeProduct:
    """An opened Sentinel-1 Level-1 SAFE product. Use :func:`open_safe` to create one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._files = _SafeFiles(self.path)
        self._annotations: dict[str, ProductAnnotation] = {}
        self._calibrations: dict[str, Calibration] = {}
        self._noises: dict[str, Noise] = {}
        self._parse_manifest()

    # ----------------------------------------------------------------- manifest
    def _parse_manifest(self) -> None:
        rel = "manifest.safe"
        desc = self._files.describe(rel)
        root = self._files.parse_xml(rel)
        family = _text(root, "//" + _local("platform/familyName"), desc)
        number = _text(root, "//" + _local("platform/number"), desc)
        if family != "SENTINEL-1":
            raise SafeFormatError(f"{desc}: platform family is {family!r}, expected 'SENTINEL-1'")
        self.mission = f"S1{number}"
        self.mode = _text(root, "//" + _local("instrumentMode/mode"), desc) or ""
        self.product_type = _text(root, "//*[local-name()='productType']", desc) or ""
        pols = root.xpath("//*[local-name()='transmitterReceiverPolarisation']")
        self.polarisations: tuple[str, ...] = tuple((p.text or "").strip().upper() for p in pols)
        self.start_time = parse_time(
            _text(root, "//" + _local("acquisitionPeriod/startTime"), desc)
        )
        self.stop_time = parse_time(_text(root, "//" + _local("acquisitionPeriod/stopTime"), desc))
        coords = _text(root, "//" + _local("footPrint/coordinates"), desc) or ""
        try:
            latlon = [tuple(float(v) for v in pair.split(",")) for pair in coords.split()]
            self.footprint = Polygon([(lon, lat) for lat, lon in latlon])
        except (ValueError, TypeError) as err:
            raise SafeFormatError(
                f"{desc}: footprint gml:coordinates {coords!r} is not 'lat,lon lat,lon ...'"
            ) from err
        orbit = root.xpath("//*[local-name()='orbitNumber']")
        self.absolute_orbit = int(orbit[0].text) if orbit else None
        self.files: dict[str, dict[str, list[str]]] = {k: {} for k in _REP_KIND.values()}
        for obj in root.xpath("//*[local-name()='dataObject']"):
            kind = _REP_KIND.get(obj.get("repID", ""))
            if kind is None:
                continue
            loc = obj.xpath(".//*[local-name()='fileLocation']/@href")
            if not loc:
                continue
            href = str(loc[0]).removeprefix("./")
            self._files.check_inside(href, f"{desc}: dataObject {obj.get('ID', '?')!r} href")
            match = _POL_IN_NAME.search(Path(href).name)
            if match is None:
                continue
            self.files[kind].setdefault(match.group(1).upper(), []).append(href)
        for per_pol in self.files.values():
            for hrefs in per_pol.values():
                hrefs.sort()

    @property
    def name(self) -> str:
        """Product name, ``S1A_EW_GRDM_1SDH_...`` (without ``.SAFE``)."""
        return self._files.root_name.removesuffix(".SAFE")

    @property
    def scene_id(self) -> str:
        """Identifier used for stage outputs (the product name)."""
        return self.name

    # ----------------------------------------------------------------- checks
    def require_mode(self, mode: str) -> SafeProduct:
        """Raise :class:`WrongModeError` unless the acquisition mode is ``mode`` (e.g. ``EW``)."""
        if self.mode.upper() != mode.upper():
            raise WrongModeError(
                f"{self.path}: acquisition mode is {self.mode!r}, expected {mode!r} "
                f"(eeflow's polar pipeline needs Sentinel-1 Extended Wide swath products)"
            )
        return self

    def require_product_type(self, product_type: str) -> SafeProduct:
        """Raise :class:`WrongProductTypeError` unless the product type is ``product_type``."""
        if self.product_type.upper() != product_type.upper():
            raise WrongProductTypeError(
                f"{self.path}: product type is {self.product_type!r}, expected {product_type!r}"
            )
        return self

    def require_polarisations(self, polarisations: tuple[str, ...] | list[str]) -> SafeProduct:
        """Check that each polarisation is listed and its annotation/measurement files exist."""
        for pol in polarisations:
            pol = pol.upper()
            if pol not in self.polarisations:
                raise MissingPolarisationError(
                    f"{self.path}: polarisation {pol} is missing; the product has "
                    f"{list(self.polarisations)} but {list(polarisations)} are required "
                    "(EW dual-pol products are 1SDH: HH+HV)"
                )
            for kind in ("annotation", "measurement"):
                for rel in self.files[kind].get(pol, []) or [f"<{kind} of {pol}>"]:
                    if not self._files.exists(rel):
                        raise MissingPolarisationError(
                            f"{self._files.describe(rel)}: {kind} file of polarisation {pol} is "
                            "listed in manifest.safe but missing from the product"
                        )
        return self

    # ----------------------------------------------------------------- annotation
    def _file_for(self, kind: str, pol: str) -> str:
        pol = pol.upper()
        hrefs = self.files[kind].get(pol)
        if not hrefs:
            raise MissingPolarisationError(
                f"{self.path}: manifest.safe lists no {kind} file for polarisation {pol}; "
                f"polarisations with {kind}: {sorted(self.files[kind])}"
            )
        present = [h for h in hrefs if self._files.exists(h)]
        if not present:
            raise SafeFormatError(
                f"{self._files.describe(hrefs[0])}: {kind} file of polarisation {pol} is missing"
            )
        return present[0]

    def annotation(self, pol: str) -> ProductAnnotation:
        """Parse the product annotation of ``pol`` (the first swath for SLC products)."""
        pol = pol.upper()
        if pol not in self._annotations:
            self._annotations[pol] = self._parse_annotation(self._file_for("annotation", pol))
        return self._annotations[pol]

    def _parse_annotation(self, rel: str) -> ProductAnnotation:
        desc = self._files.describe(rel)
        root = self._files.parse_xml(rel)

        def text(path: str) -> str:
            return _text(root, _local(path), desc)

        def optional_text(path: str) -> str | None:
            return _text(root, _local(path), desc, required=False)

        points = root.xpath(_local("geolocationGrid/geolocationGridPointList/geolocationGridPoint"))
        if not points:
            raise SafeFormatError(f"{desc}: geolocationGrid has no geolocationGridPoint")
        cols: dict[str, list[float]] = {
            k: [] for k in ("line", "pixel", "latitude", "longitude", "height", "incidenceAngle")
        }
        for point in points:
            for key, values in cols.items():
                value = _text(point, f"*[local-name()='{key}']", desc)
                try:
                    values.append(float(value))
                except ValueError as err:
                    raise SafeFormatError(
                        f"{desc}: geolocation {key} {value!r} is not a number"
                    ) from err
        grid = GeolocationGrid(
            line=np.array(cols["line"]),
            pixel=np.array(cols["pixel"]),
            latitude=np.array(cols["latitude"]),
            longitude=np.array(cols["longitude"]),
            height=np.array(cols["height"]),
            incidence_angle=np.array(cols["incidenceAngle"]),
        )
        info = "imageAnnotation/imageInformation/"
        mid = optional_text(info + "incidenceAngleMidSwath")
        try:
            return ProductAnnotation(
                file=rel,
                mission=text("adsHeader/missionId"),
                product_type=text("adsHeader/productType"),
                polarisation=text("adsHeader/polarisation").upper(),
                mode=text("adsHeader/mode"),
                swath=text("adsHeader/swath"),
                start_time=parse_time(text("adsHeader/startTime")),
                stop_time=parse_time(text("adsHeader/stopTime")),
                absolute_orbit=int(text("adsHeader/absoluteOrbitNumber")),
                lines=int(text(info + "numberOfLines")),
                samples=int(text(info + "numberOfSamples")),
                range_pixel_spacing=float(text(info + "rangePixelSpacing")),
                azimuth_pixel_spacing=float(text(info + "azimuthPixelSpacing")),
                incidence_angle_mid_swath=float(mid) if mid else None,
                pass_direction=optional_text("generalAnnotation/productInformation/pass"),
                geolocation=grid,
            )
        except ValueError as err:
            if isinstance(err, SafeError):
                raise
            raise SafeFormatError(f"{desc}: bad value in product annotation: {err}") from err

    def calibration(self, pol: str) -> Calibration:
        """Parse the calibration annotation of ``pol``."""
        pol = pol.upper()
        if pol not in self._calibrations:
            rel = self._file_for("calibration", pol)
            desc = self._files.describe(rel)
            root = self._files.parse_xml(rel)
            vectors = root.xpath(_local("calibrationVectorList/calibrationVector"))
            if not vectors:
                raise SafeFormatError(f"{desc}: calibrationVectorList has no calibrationVector")
            names = ("sigmaNought", "betaNought", "gamma", "dn")
            lines = []
            pixels = []
            values: dict[str, list[np.ndarray]] = {n: [] for n in names}
            for vec in vectors:
                lines.append(int(_text(vec, _local("line"), desc)))
                pixels.append(_floats(_text(vec, _local("pixel"), desc), desc, "pixel"))
                for n in names:
                    values[n].append(_floats(_text(vec, _local(n), desc, n != "dn") or "", desc, n))
            luts = {}
            for n, v in values.items():
                if not all(a.size for a in v):
                    continue
                try:
                    luts[n] = RangeVectors(np.array(lines), tuple(pixels), tuple(v))
                except ValueError as err:  # e.g. a vector with fewer values than pixels
                    raise SafeFormatError(f"{desc}: {n} LUT: {err}") from None
            for n, lut in luts.items():
                if any((v <= 0).any() for v in lut.values):
                    raise SafeFormatError(f"{desc}: {n} LUT holds values <= 0")
            constant = _text(
                root,
                _local("calibrationInformation/absoluteCalibrationConstant"),
                desc,
                required=False,
            )
            self._calibrations[pol] = Calibration(
                file=rel, absolute_calibration_constant=float(constant or 1.0), luts=luts
            )
        return self._calibrations[pol]

    def noise(self, pol: str) -> Noise:
        """Parse the thermal-noise annotation of ``pol`` (IPF >= 2.9 or the older format)."""
        pol = pol.upper()
        if pol not in self._noises:
            rel = self._file_for("noise", pol)
            desc = self._files.describe(rel)
            root = self._files.parse_xml(rel)
            vectors = root.xpath(_local("noiseRangeVectorList/noiseRangeVector"))
            lut_tag, lut_format = "noiseRangeLut", "IPF >= 2.9"
            if not vectors:  # IPF < 2.9: noiseVectorList/noiseVector/noiseLut
                vectors = root.xpath(_local("noiseVectorList/noiseVector"))
                lut_tag, lut_format = "noiseLut", "IPF < 2.9"
            if not vectors:
                raise SafeFormatError(
                    f"{desc}: neither noiseRangeVectorList/noiseRangeVector nor "
                    "noiseVectorList/noiseVector found"
                )
            lines, pixels, lut = [], [], []
            for vec in vectors:
                lines.append(int(_text(vec, _local("line"), desc)))
                pixels.append(_floats(_text(vec, _local("pixel"), desc), desc, "pixel"))
                lut.append(_floats(_text(vec, _local(lut_tag), desc), desc, lut_tag))
            try:
                range_vectors = RangeVectors(np.array(lines), tuple(pixels), tuple(lut))
            except ValueError as err:
                raise SafeFormatError(f"{desc}: {err}") from err
            blocks = []
            for vec in root.xpath(_local("noiseAzimuthVectorList/noiseAzimuthVector")):
                blocks.append(
                    AzimuthBlock(
                        swath=_text(vec, _local("swath"), desc),
                        first_line=int(_text(vec, _local("firstAzimuthLine"), desc)),
                        last_line=int(_text(vec, _local("lastAzimuthLine"), desc)),
                        first_sample=int(_text(vec, _local("firstRangeSample"), desc)),
                        last_sample=int(_text(vec, _local("lastRangeSample"), desc)),
                        lines=_floats(_text(vec, _local("line"), desc), desc, "line"),
                        values=_floats(
                            _text(vec, _local("noiseAzimuthLut"), desc), desc, "noiseAzimuthLut"
                        ),
                    )
                )
            self._noises[pol] = Noise(
                file=rel, range_vectors=range_vectors, azimuth_blocks=tuple(blocks),
                format=lut_format,
            )
        return self._noises[pol]

    # ----------------------------------------------------------------- geometry
    @cached_property
    def reference_polarisation(self) -> str:
        """The first polarisation with an annotation file present (geometry is shared)."""
        for pol in self.polarisations:
            hrefs = self.files["annotation"].get(pol, [])
            if any(self._files.exists(h) for h in hrefs):
                return pol
        raise SafeFormatError(f"{self.path}: no product annotation file is present")

    @property
    def shape(self) -> tuple[int, int]:
        """Image ``(lines, samples)``."""
        ann = self.annotation(self.reference_polarisation)
        return ann.lines, ann.samples

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """``(azimuth, range)`` pixel spacing in metres."""
        ann = self.annotation(self.reference_polarisation)
        return ann.azimuth_pixel_spacing, ann.range_pixel_spacing

    def geolocation_grid(self, pol: str | None = None) -> GeolocationGrid:
        """Tie points (line, pixel, lat, lon, height, incidence angle) of the product annotation."""
        return self.annotation(pol or self.reference_polarisation).geolocation

    def incidence_angle(self, window: Window | None = None, pol: str | None = None) -> np.ndarray:
        """Incidence angle (degrees, float32) on ``window``, bilinear from the geolocation grid."""
        grid = self.geolocation_grid(pol)
        rows, cols = window_axes(window, self.shape)
        return interpolate_range_vectors(grid.as_range_vectors(grid.incidence_angle), rows, cols)

    def calibration_lut(
        self, pol: str, window: Window | None = None, kind: str = "sigmaNought"
    ) -> np.ndarray:
        """Calibration LUT ``kind`` (float32 amplitude) on ``window``; sigma0 = DN^2 / A^2."""
        cal = self.calibration(pol)
        if kind not in cal.luts:
            raise SafeFormatError(
                f"{self._files.describe(cal.file)}: no {kind} LUT; available: {sorted(cal.luts)}"
            )
        rows, cols = window_axes(window, self.shape)
        return interpolate_range_vectors(cal.luts[kind], rows, cols)

    def zero_noise_luts(self, polarisations: Sequence[str]) -> dict[str, str]:
        """Polarisations among ``polarisations`` whose noise LUT is all zeros -> its file.

        The file is the noise annotation's path inside the product; noise removal is a no-op for
        these polarisations (:attr:`Noise.all_zero`).
        """
        return {
            pol.upper(): self.noise(pol).file
            for pol in polarisations
            if self.noise(pol).all_zero
        }

    def noise_lut(self, pol: str, window: Window | None = None) -> np.ndarray:
        """Thermal-noise power (float32, DN^2 units) on ``window``: range LUT x azimuth LUT."""
        noise = self.noise(pol)
        rows, cols = window_axes(window, self.shape)
        power = interpolate_range_vectors(noise.range_vectors, rows, cols)
        if noise.azimuth_blocks:
            power *= interpolate_azimuth_blocks(noise.azimuth_blocks, rows, cols)
        return power

    def gcps(self) -> list[tuple[float, float, float, float, float]]:
        """Ground control points ``(pixel, line, lon, lat, height)`` from the geolocation grid."""
        g = self.geolocation_grid()
        return list(zip(g.pixel, g.line, g.longitude, g.latitude, g.height, strict=True))

    def affine_to(self, crs: Any) -> tuple[Any, float]:
        """Fit an affine (image col/row -> ``crs`` x/y) to the tie points by least squares.

        Returns:
            ``(affine.Affine, rms_m)``: the transform of pixel *corners* (GDAL convention) and the
            root-mean-square residual at the tie points in CRS units. Only an approximation:
            real and generated swaths are curved (776 m RMS on a real EW GRDM scene); harmonise
            geocodes with :mod:`tasks.sentinel1.geocode` and keeps this for comparison.

        """
        from affine import Affine
        from pyproj import Transformer

        g = self.geolocation_grid()
        to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        x, y = to_crs.transform(g.longitude, g.latitude)
        design = np.column_stack([g.pixel + 0.5, g.line + 0.5, np.ones_like(g.pixel)])
        coef_x, *_ = np.linalg.lstsq(design, x, rcond=None)
        coef_y, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = np.hypot(design @ coef_x - x, design @ coef_y - y)
        transform = Affine(coef_x[0], coef_x[1], coef_x[2], coef_y[0], coef_y[1], coef_y[2])
        return transform, float(np.sqrt(np.mean(resid**2)))

    # ----------------------------------------------------------------- measurement
    def measurement_path(self, pol: str) -> str:
        """GDAL-readable path of the measurement GeoTIFF of ``pol``."""
        return self._files.gdal_path(self._file_for("measurement", pol))

    def read_dn(self, pol: str, window: Window | None = None) -> np.ndarray:
        """Read the uint16 digital numbers of ``pol`` in ``window`` (``(rows, cols)`` slices)."""
        import rasterio
        from rasterio.errors import RasterioError
        from rasterio.windows import Window as RioWindow

        rel = self._file_for("measurement", pol)
        desc = self._files.describe(rel)
        rows, cols = window_axes(window, self.shape)
        rio_window = RioWindow(int(cols[0]), int(rows[0]), len(cols), len(rows))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                src = rasterio.open(self._files.gdal_path(rel))
            with src:
                if (src.height, src.width) != self.shape:
                    raise SafeFormatError(
                        f"{desc}: measurement is {src.height}x{src.width} but the annotation "
                        f"says {self.shape[0]}x{self.shape[1]} (lines x samples)"
                    )
                if src.dtypes[0] != "uint16":
                    raise SafeFormatError(
                        f"{desc}: measurement dtype {src.dtypes[0]}, expected uint16"
                    )
                return src.read(1, window=rio_window)
        except RasterioError as err:
            raise SafeFormatError(
                f"{desc}: cannot read the measurement GeoTIFF (truncated or corrupt?): {err}"
            ) from err

    def summary(self) -> dict[str, Any]:
        """Small JSON-able description (for manifests and logs)."""
        return {
            "name": self.name,
            "mission": self.mission,
            "mode": self.mode,
            "product_type": self.product_type,
            "polarisations": list(self.polarisations),
            "start_time": self.start_time.isoformat(),
            "stop_time": self.stop_time.isoformat(),
            "footprint_wkt": self.footprint.wkt,
        }

    def __repr__(self) -> str:
        return f"SafeProduct({self.name!r}, mode={self.mode}, type={self.product_type})"


def open_safe(path: str | os.PathLike[str]) -> SafeProduct:
    """Open a Sentinel-1 SAFE product folder or ``.zip`` and parse its manifest.

    Raises:
        SafeFormatError: the path is missing, or ``manifest.safe`` is missing / corrupt.

    """
    return SafeProduct(path)
