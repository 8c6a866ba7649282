"""Sentinel-2 L2A product metadata: ``MTD_MSIL2A.xml`` / ``MTD_TL.xml`` and STAC item properties.

The one rule for turning L2A digital numbers into surface reflectance lives here, so that the
SAFE reader and the STAC reader cannot disagree::

    reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE     DN 0 = no data

``BOA_ADD_OFFSET`` is -1000 from processing baseline 04.00 on (25 January 2022) and absent (0)
before. Where it comes from, in order:

1. a SAFE product: the ``BOA_ADD_OFFSET_VALUES_LIST`` of its ``MTD_MSIL2A.xml`` (per band), and
   ``BOA_QUANTIFICATION_VALUE``;
2. a STAC item whose ``earthsearch:boa_offset_applied`` is true (Earth Search re-encodes the COGs
   with the offset already added to the pixels): offset 0. The item's ``raster:bands`` still say
   ``offset -0.1`` (the real Earth Search v1 payload); applying it would subtract the offset twice,
   so it is ignored (and logged);
3. a STAC item with a processing baseline (``s2:processing_baseline``, or STAC 1.1
   ``processing:version``): -1000 from 04.00 on, else 0. A ``raster:bands`` / ``raster:offset``
   that disagrees with the baseline is logged and the baseline wins (Earth Search has items with
   the wrong flag, and the baseline is what ESA defines the offset by);
4. a STAC item without a baseline: its ``raster:bands`` (1.0) / ``raster:scale``/``raster:offset``
   (1.1) scale and offset;
5. otherwise: an error naming the item.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

QUANTIFICATION_VALUE = 10000.0
#: The offset (DN) of baseline >= 04.00 products.
BASELINE_04_OFFSET_DN = -1000

#: SCL class index -> name (ESA's ``Scene_Classification_List``, the same in every baseline).
SCL_CLASSES: dict[int, str] = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows",
    4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
    8: "cloud_medium_probability", 9: "cloud_high_probability", 10: "thin_cirrus", 11: "snow",
}


class L2AMetadataError(ValueError):
    """A Sentinel-2 L2A metadata file or STAC item is missing a field or holds a bad value."""


def parse_baseline(baseline: str, source: str = "processing baseline") -> tuple[int, int]:
    """Return ``(major, minor)`` of a baseline like ``"04.00"`` (or ``"5.09"``)."""
    match = re.fullmatch(r"\s*(\d{1,2})\.(\d{1,2})\s*", str(baseline))
    if not match:
        raise L2AMetadataError(f"{source}: {baseline!r} is not a processing baseline like '04.00'")
    return int(match.group(1)), int(match.group(2))


def boa_add_offset(processing_baseline: str) -> int:
    """Return the DN offset added to L2A reflectance (-1000 from baseline 04.00 on, else 0)."""
    try:
        major_minor = parse_baseline(processing_baseline)
    except L2AMetadataError:
        raise ValueError(
            f"processing baseline {processing_baseline!r} is not like '04.00'"
        ) from None
    return BASELINE_04_OFFSET_DN if major_minor >= (4, 0) else 0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None


def _findall(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: ET.Element, name: str, path: Path) -> str:
    element = _find(root, name)
    if element is None or element.text is None or not element.text.strip():
        raise L2AMetadataError(f"{path}: no <{name}>; is this an L2A MTD_MSIL2A.xml (PSD 14+)?")
    return element.text.strip()


def _band_name(physical_band: str) -> str:
    """ESA ``B1``/``B8A`` -> eeflow ``B01``/``B8A``."""
    return physical_band if physical_band == "B8A" else f"B{int(physical_band[1:]):02d}"


@dataclass(frozen=True)
class L2AProductMetadata:
    """What eeflow needs from an L2A ``MTD_MSIL2A.xml`` (product level).

    ``image_files`` maps ``(band, resolution_m)`` (``("B04", 10)``, ``("SCL", 20)``) to the
    SAFE-relative path of the raster, with the extension of ``image_format``.
    """

    path: Path
    product_uri: str
    product_type: str
    processing_baseline: str
    sensing_start: dt.datetime
    spacecraft: str
    image_format: str
    quantification_value: float
    boa_add_offset_dn: dict[str, int]
    nodata_dn: int
    saturated_dn: int
    scl_classes: dict[int, str]
    image_files: dict[tuple[str, int], str]
    cloud_cover: float | None
    footprint_lonlat: list[tuple[float, float]] = field(default_factory=list)

    @property
    def tile(self) -> str:
        """MGRS tile of the product, e.g. ``33XWJ`` (from the product URI)."""
        match = re.search(r"_T(\d{2}[A-Z]{3})_", self.product_uri)
        if not match:
            raise L2AMetadataError(f"{self.path}: no tile in product URI {self.product_uri!r}")
        return match.group(1)

    def offset_dn(self, band: str) -> int:
        """Return the BOA_ADD_OFFSET of a band (0 for products before baseline 04.00)."""
        if not self.boa_add_offset_dn:
            if parse_baseline(self.processing_baseline, str(self.path)) >= (4, 0):
                raise L2AMetadataError(
                    f"{self.path}: baseline {self.processing_baseline} but no "
                    "BOA_ADD_OFFSET_VALUES_LIST; the product metadata is incomplete"
                )
            return 0
        if band not in self.boa_add_offset_dn:
            raise L2AMetadataError(
                f"{self.path}: no BOA_ADD_OFFSET for band {band}; listed: "
                f"{sorted(self.boa_add_offset_dn)}"
            )
        return self.boa_add_offset_dn[band]


_EXTENSIONS = {"JPEG2000": ".jp2", "GEOTIFF": ".tif"}


def _boa_add_offsets(root: ET.Element, path: Path) -> dict[str, int]:
    """BOA_ADD_OFFSET (DN) per band name (``B02`` ...), from the band ids of the metadata."""
    band_of_id = {
        s.get("bandId"): _band_name(s.get("physicalBand", ""))
        for s in _findall(root, "Spectral_Information")
        if s.get("physicalBand")
    }
    offsets: dict[str, int] = {}
    for element in _findall(root, "BOA_ADD_OFFSET"):
        band_id = element.get("band_id")
        if band_id not in band_of_id:
            raise L2AMetadataError(
                f"{path}: BOA_ADD_OFFSET for band_id {band_id!r} that no Spectral_Information names"
            )
        offsets[band_of_id[band_id]] = int(float((element.text or "").strip()))
    return offsets


def _image_files(root: ET.Element, path: Path) -> tuple[str, dict[tuple[str, int], str]]:
    """Image format and the raster file (relative path) per (band or SCL, resolution m)."""
    granule = _find(root, "Granule")
    image_format = (granule.get("imageFormat") if granule is not None else None) or "JPEG2000"
    extension = _EXTENSIONS.get(image_format.upper())
    if extension is None:
        raise L2AMetadataError(
            f"{path}: Granule imageFormat {image_format!r} unknown; known: {sorted(_EXTENSIONS)}"
        )
    files: dict[tuple[str, int], str] = {}
    for element in _findall(root, "IMAGE_FILE"):
        relative = (element.text or "").strip()
        match = re.search(r"_([A-Z0-9]{2,3})_(\d{2})m$", relative)
        if match:
            files[(match.group(1), int(match.group(2)))] = relative + extension
    if not files:
        raise L2AMetadataError(f"{path}: no IMAGE_FILE entries; the product lists no rasters")
    return image_format, files


def read_product_metadata(path: str | Path) -> L2AProductMetadata:
    """Parse a real L2A product metadata file (``MTD_MSIL2A.xml``).

    Raises:
        L2AMetadataError: not an L2A product metadata file, or a field missing / malformed.

    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise L2AMetadataError(f"{path}: cannot read as XML ({err})") from None
    if _local(root.tag) != "Level-2A_User_Product":
        raise L2AMetadataError(
            f"{path}: root element is <{_local(root.tag)}>, not <Level-2A_User_Product>; "
            "pass the product's MTD_MSIL2A.xml"
        )
    baseline = _text(root, "PROCESSING_BASELINE", path)
    parse_baseline(baseline, str(path))
    offsets = _boa_add_offsets(root, path)
    specials = {
        _text(s, "SPECIAL_VALUE_TEXT", path): int(_text(s, "SPECIAL_VALUE_INDEX", path))
        for s in _findall(root, "Special_Values")
    }
    scl = {
        int(_text(s, "SCENE_CLASSIFICATION_INDEX", path)): _text(
            s, "SCENE_CLASSIFICATION_TEXT", path
        ).removeprefix("SC_").lower()
        for s in _findall(root, "Scene_Classification_ID")
    }
    image_format, files = _image_files(root, path)
    footprint: list[tuple[float, float]] = []
    ext_pos = _find(root, "EXT_POS_LIST")
    if ext_pos is not None and ext_pos.text:
        values = [float(v) for v in ext_pos.text.split()]
        footprint = [(values[i + 1], values[i]) for i in range(0, len(values) - 1, 2)]  # lat lon
    cloud = _find(root, "Cloud_Coverage_Assessment")
    start = _text(root, "PRODUCT_START_TIME", path)
    return L2AProductMetadata(
        path=path,
        product_uri=_text(root, "PRODUCT_URI", path),
        product_type=_text(root, "PRODUCT_TYPE", path),
        processing_baseline=baseline,
        sensing_start=dt.datetime.fromisoformat(start.replace("Z", "+00:00")),
        spacecraft=_text(root, "SPACECRAFT_NAME", path),
        image_format=image_format,
        quantification_value=float(_text(root, "BOA_QUANTIFICATION_VALUE", path)),
        boa_add_offset_dn=offsets,
        nodata_dn=specials.get("NODATA", 0),
        saturated_dn=specials.get("SATURATED", 65535),
        scl_classes=scl,
        image_files=files,
        cloud_cover=float(cloud.text) if cloud is not None and cloud.text else None,
        footprint_lonlat=footprint,
    )


@dataclass(frozen=True)
class L2ATileMetadata:
    """What eeflow needs from a granule's ``MTD_TL.xml``: CRS and grid per resolution."""

    path: Path
    tile_id: str
    epsg: int
    #: resolution (m) -> (rows, cols)
    size: dict[int, tuple[int, int]]
    #: resolution (m) -> (ulx, uly) in the tile CRS (metres)
    origin: dict[int, tuple[float, float]]


def read_tile_metadata(path: str | Path) -> L2ATileMetadata:
    """Parse a granule's ``MTD_TL.xml`` (CRS, grid sizes and origins)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise L2AMetadataError(f"{path}: cannot read as XML ({err})") from None
    code = _text(root, "HORIZONTAL_CS_CODE", path)
    if not code.upper().startswith("EPSG:"):
        raise L2AMetadataError(f"{path}: HORIZONTAL_CS_CODE {code!r} is not an EPSG code")
    size = {
        int(s.get("resolution", "0")): (int(_text(s, "NROWS", path)), int(_text(s, "NCOLS", path)))
        for s in _findall(root, "Size")
    }
    origin = {
        int(g.get("resolution", "0")): (float(_text(g, "ULX", path)), float(_text(g, "ULY", path)))
        for g in _findall(root, "Geoposition")
    }
    return L2ATileMetadata(
        path=path, tile_id=_text(root, "TILE_ID", path), epsg=int(code.split(":")[1]),
        size=size, origin=origin,
    )


@dataclass(frozen=True)
class ReflectanceScaling:
    """``reflectance = DN * scale + offset`` of one band, and the rule that chose it."""

    scale: float
    offset: float
    rule: str


def _asset_scale_offset(asset: Mapping[str, Any]) -> tuple[float | None, float | None]:
    bands = asset.get("raster:bands") or []
    if bands and isinstance(bands[0], Mapping):
        first = bands[0]
        return first.get("scale"), first.get("offset")
    return asset.get("raster:scale"), asset.get("raster:offset")


def item_processing_baseline(properties: Mapping[str, Any]) -> str | None:
    """Return the processing baseline a STAC item states, or None.

    From ``s2:processing_baseline`` (Earth Search v1, Planetary Computer), ``processing:version``
    (CDSE STAC 1.1), ``sentinel:processing_baseline``, else the ``_Nxxyy_`` field of the product
    id (``s2:product_uri`` / ``sentinel:product_id``, e.g. Earth Search v0 items).
    """
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        if properties.get(key) not in (None, ""):
            return str(properties[key])
    for key in ("s2:product_uri", "sentinel:product_id"):
        match = re.search(r"_N(\d{2})(\d{2})_", str(properties.get(key) or ""))
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return None


def stac_reflectance_scaling(
    properties: Mapping[str, Any], asset: Mapping[str, Any], *, source: str = "STAC item"
) -> ReflectanceScaling:
    """Decide the DN -> reflectance scale and offset of one STAC asset (module docstring rules).

    Args:
        properties: the item's ``properties``.
        asset: the asset (its ``raster:bands`` / ``raster:scale``/``raster:offset`` if any).
        source: names the item and asset in messages.

    Raises:
        L2AMetadataError: neither a baseline, an ``earthsearch:boa_offset_applied`` flag nor a
            raster scale/offset says how to convert the asset.

    """
    scale, offset = _asset_scale_offset(asset)
    scale = float(scale) if scale is not None else 1.0 / QUANTIFICATION_VALUE
    applied = properties.get("earthsearch:boa_offset_applied",
                             properties.get("sentinel:boa_offset_applied"))
    if applied is True:
        if offset not in (None, 0, 0.0):
            log.info("%s: earthsearch:boa_offset_applied is true; ignoring raster offset %s "
                     "(the pixels already carry the offset)", source, offset)
        return ReflectanceScaling(scale, 0.0, "earthsearch:boa_offset_applied")
    baseline = item_processing_baseline(properties)
    if baseline is not None:
        expected = boa_add_offset_for(baseline, source) * scale
        if offset is not None and abs(float(offset) - expected) > 1e-9:
            log.warning("%s: raster offset %s disagrees with processing baseline %s (offset %s); "
                        "using the baseline's", source, offset, baseline, expected)
        return ReflectanceScaling(scale, expected, f"processing baseline {baseline}")
    if offset is not None:
        return ReflectanceScaling(scale, float(offset), "raster scale/offset")
    raise L2AMetadataError(
        f"{source}: no s2:processing_baseline / processing:version, no "
        "earthsearch:boa_offset_applied and no raster scale/offset; cannot tell whether the "
        "BOA offset (-1000 DN from baseline 04.00) applies. Read the product's MTD_MSIL2A.xml "
        "instead (tasks.sentinel2.safe.read_safe)"
    )


def boa_add_offset_for(baseline: str, source: str) -> int:
    """Like :func:`boa_add_offset`, with ``source`` named in the error."""
    return BASELINE_04_OFFSET_DN if parse_baseline(baseline, source) >= (4, 0) else 0


def safe_reflectance_scaling(product: L2AProductMetadata, band: str) -> ReflectanceScaling:
    """Scale and offset of a SAFE band from its ``MTD_MSIL2A.xml`` (rule 1)."""
    q = product.quantification_value
    return ReflectanceScaling(
        1.0 / q, product.offset_dn(band) / q, f"{product.path.name} BOA_ADD_OFFSET"
    )
