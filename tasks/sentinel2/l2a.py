"""Sentinel-2 L2A acquisitions on disk: one GeoTIFF per band and date plus a STAC item.

Layout (that of Element 84's Earth Search ``sentinel-2-l2a`` COG archive)::

    {archive}/{tile}/{item_id}/{item_id}.json      STAC 1.0 item (properties + assets)
    {archive}/{tile}/{item_id}/B02.tif ... B12.tif  uint16 DN, tiled + deflate GeoTIFF, UTM CRS
    {archive}/{tile}/{item_id}/SCL.tif              uint8 scene classification (20 m)

with ``item_id = S2A_33UWP_20180415_0_L2A``. 10 m bands (B02, B03, B04, B08) are 10 m rasters;
20 m bands (B05, B06, B07, B8A, B11, B12) and SCL are 20 m rasters that :func:`read_bands` /
:func:`read_scl` resample to 10 m (nearest neighbour, each 20 m pixel covers 2 x 2 pixels).

Reflectance = (DN + BOA_ADD_OFFSET) / 10000 with DN 0 = nodata; ``BOA_ADD_OFFSET`` is -1000 from
processing baseline 04.00 on (25 January 2022) and 0 before. Which offset applies to an item is
decided once, in :func:`tasks.sentinel2.metadata.stac_reflectance_scaling` (the processing
baseline, never twice for Earth Search items with ``earthsearch:boa_offset_applied: true``).

Real items are read too: :func:`acquisition_from_item` takes an Earth Search (``blue``, ``nir08``,
``scl``), CDSE (``B04_10m``, ``SCL_20m``) or Planetary Computer (``B04``, ``SCL``) item whose hrefs
are local paths, ``http(s)://`` COGs (read as windows through GDAL's ``/vsicurl/``: only the
tiles a window needs are fetched, with HTTP range requests) or ``s3://`` objects (``/vsis3/``).
SAFE products (CDSE, JP2 bands) are read by :mod:`tasks.sentinel2.safe` into the same
:class:`L2AAcquisition`, so :func:`read_bands`, :func:`read_scl` and :func:`read_masked_bands`
serve all of them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import numpy as np
import rasterio
from rasterio.windows import Window

from tasks.sentinel2.geotiff import TiffLayout, read_window, tiff_layout
from tasks.sentinel2.metadata import (
    SCL_CLASSES,
    L2AMetadataError,
    boa_add_offset,  # re-exported: tasks.sentinel2.l2a.boa_add_offset
    stac_reflectance_scaling,
)
from tasks.sentinel2.tiles import TileGrid

#: Band -> native resolution in metres.
BAND_RESOLUTION_M: dict[str, int] = {
    "B02": 10, "B03": 10, "B04": 10, "B08": 10,
    "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20,
}
SCL_ASSET = "SCL"
NODATA_DN = 0
QUANTIFICATION_VALUE = 10000.0

#: Asset key of each band in the item layouts eeflow reads: its own / Planetary Computer (``B04``),
#: Earth Search v1 (common names) and CDSE STAC 1.1 (``B04_10m``: band at its native resolution).
EARTH_SEARCH_ASSET_BANDS: dict[str, str] = {
    "blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "rededge1": "B05",
    "rededge2": "B06", "rededge3": "B07", "nir08": "B8A", "swir16": "B11", "swir22": "B12",
    "scl": SCL_ASSET,
}


@dataclass(frozen=True)
class L2AAcquisition:
    """One tile acquisition: its STAC item and the files of its assets."""

    tile: str
    date: dt.date
    item_id: str
    item_path: Path | str
    assets: dict[str, Path | str]
    scale: dict[str, float]
    offset: dict[str, float]
    cloud_cover: float | None
    #: how the DN -> reflectance offset was chosen, per band (for manifests and logs)
    offset_rule: Mapping[str, str] | None = None

    def band_path(self, band: str) -> Path | str:
        """Return the file of a band (or ``SCL``); raise naming the item if it is missing."""
        if band not in self.assets:
            raise KeyError(
                f"{self.item_path}: no asset {band!r}; assets: {sorted(self.assets)}"
            )
        return self.assets[band]


def item_id_for(tile: str, date: dt.date, platform: str = "S2A") -> str:
    """Return the Earth-Search style item id, e.g. ``S2A_33UWP_20180415_0_L2A``."""
    return f"{platform}_{tile}_{date:%Y%m%d}_0_L2A"


def _date_of_item_folder(name: str) -> dt.date | None:
    parts = name.split("_")
    if len(parts) < 3 or not parts[2].isdigit() or len(parts[2]) != 8:
        return None
    try:
        return dt.datetime.strptime(parts[2], "%Y%m%d").date()
    except ValueError:
        return None


def list_acquisitions(
    archive: str | os.PathLike[str], tile: str, start: dt.date, end: dt.date
) -> list[L2AAcquisition]:
    """List a tile's acquisitions with ``start <= date <= end``, sorted by date.

    Only folder names are looked at for dates outside the range, so no file of another period is
    opened. A missing tile folder gives an empty list.
    """
    tile_dir = Path(archive) / tile
    if not tile_dir.is_dir():
        return []
    found = []
    for folder in sorted(tile_dir.iterdir()):
        date = _date_of_item_folder(folder.name)
        if date is None or not (start <= date <= end):
            continue
        item_path = folder / f"{folder.name}.json"
        if not item_path.is_file():
            raise FileNotFoundError(
                f"{folder}: acquisition folder without its STAC item {item_path.name}; "
                "re-ingest the acquisition or remove the folder"
            )
        found.append(read_item(item_path))
    return sorted(found, key=lambda a: (a.date, a.item_id))


def read_item(item_path: Path | str) -> L2AAcquisition:
    """Read a STAC item file or URL (written by :func:`write_acquisition`, or a provider's)."""
    location = str(item_path)
    if urlparse(location).scheme in ("http", "https"):
        from urllib.request import urlopen

        with urlopen(location, timeout=60) as response:  # http(s) checked above
            item = json.loads(response.read())
    else:
        item = json.loads(Path(location).read_text())
    return acquisition_from_item(item, item_path)


def _resolve_href(href: str, item_location: Path | str) -> Path | str:
    """Absolute local path or URL of an asset href (relative hrefs against the item's place)."""
    scheme = urlparse(href).scheme
    if scheme in ("http", "https", "s3", "gs", "az"):
        return href
    if scheme == "file":
        return Path(urlparse(href).path)
    location = str(item_location)
    if urlparse(location).scheme in ("http", "https"):
        return urljoin(location, href)
    path = Path(href)
    return path if path.is_absolute() else Path(location).parent / href


def _band_of_asset(key: str) -> str | None:
    if key in BAND_RESOLUTION_M or key == SCL_ASSET:
        return key
    if key in EARTH_SEARCH_ASSET_BANDS:
        return EARTH_SEARCH_ASSET_BANDS[key]
    band, _, resolution = key.partition("_")  # CDSE: B04_10m, SCL_20m
    if resolution.endswith("m") and resolution[:-1].isdigit():
        native = BAND_RESOLUTION_M.get(band, 20 if band == SCL_ASSET else None)
        if native == int(resolution[:-1]):
            return band
    return None


def acquisition_from_item(item: Mapping[str, Any], item_location: Path | str) -> L2AAcquisition:
    """Build an :class:`L2AAcquisition` from a STAC item (eeflow, Earth Search, CDSE, PC).

    Args:
        item: the item as a dict (STAC 1.0 or 1.1).
        item_location: where it came from (path or URL); relative hrefs resolve against it.

    Raises:
        L2AMetadataError: the item says nothing from which the BOA offset can be decided.

    """
    props = item.get("properties", {})
    assets: dict[str, Path | str] = {}
    scale: dict[str, float] = {}
    offset: dict[str, float] = {}
    rules: dict[str, str] = {}
    for key, asset in item.get("assets", {}).items():
        band = _band_of_asset(key)
        if band is None or band in assets:
            continue
        assets[band] = _resolve_href(asset["href"], item_location)
        if band in BAND_RESOLUTION_M:
            scaling = stac_reflectance_scaling(
                props, asset, source=f"{item_location} asset {key!r}"
            )
            scale[band], offset[band], rules[band] = scaling.scale, scaling.offset, scaling.rule
    if not assets:
        raise L2AMetadataError(
            f"{item_location}: no Sentinel-2 band asset (keys: {sorted(item.get('assets', {}))}); "
            f"known keys: B02..B12/SCL, {sorted(EARTH_SEARCH_ASSET_BANDS)}, B04_10m/SCL_20m"
        )
    date = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00")).date()
    tile = props.get("s2:mgrs_tile") or props.get("grid:code", "").removeprefix("MGRS-")
    return L2AAcquisition(
        tile=tile, date=date, item_id=item["id"], item_path=item_location, assets=assets,
        scale=scale, offset=offset, cloud_cover=props.get("eo:cloud_cover"), offset_rule=rules,
    )


def read_grid(acquisition: L2AAcquisition, tile: str | None = None) -> TileGrid:
    """Return the 10 m grid of an acquisition (from its B02 file)."""
    with rasterio.Env(**GDAL_READ_OPTIONS), _open(acquisition.band_path("B02")) as src:
        if src.crs is None or src.crs.to_epsg() is None:
            raise ValueError(f"{src.name}: no EPSG CRS; L2A tiles are in UTM")
        return TileGrid(
            tile=tile or acquisition.tile, epsg=int(src.crs.to_epsg()), transform=src.transform,
            width=src.width, height=src.height,
        )


#: GDAL settings of every read: no directory listing per open (one folder holds 11 files); over
#: HTTP, ranges merged into one request where adjacent, a block cache, and retries on 429/5xx.
GDAL_READ_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_NUM_THREADS": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES", "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1", "VSI_CACHE": "TRUE",
}


def _check_driver(path: Path | str) -> None:
    """Fail clearly when a JPEG 2000 band cannot be decoded by this GDAL build."""
    if str(path).lower().endswith(".jp2"):
        from rasterio.drivers import raster_driver_extensions

        if raster_driver_extensions().get("jp2") is None:
            raise L2AMetadataError(
                f"{path}: a JPEG 2000 band, but this GDAL ({rasterio.__gdal_version__}) has no "
                "JP2 driver (JP2OpenJPEG); install a rasterio/GDAL built with OpenJPEG, or read "
                "the COG assets of the product's STAC item instead"
            )


def _open(path: Path | str) -> Any:
    _check_driver(path)
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise FileNotFoundError(
            f"{path}: cannot open the band raster ({err}); check the href / network access"
        ) from None


def _read_native(path: Path | str, window: Window | None, factor: int | None) -> np.ndarray:
    """Read ``window`` (10 m pixel units) of a raster with pixels ``factor`` times larger.

    ``factor`` None: the raster's own pixel size / 10 m (a 20 m band: 2), so a raster whose
    pixels are not the band's native size (e.g. a decimated copy) is still placed right.
    A local deflate GeoTIFF is decoded directly (:mod:`tasks.sentinel2.geotiff`), anything else
    through rasterio; the values are the same.
    """
    layout = tiff_layout(path)
    if layout is not None:
        fast = _read_layout_10m(layout, window, factor)
        if fast is not None:
            return fast
    with rasterio.Env(**GDAL_READ_OPTIONS), _open(path) as src:
        return read_window_10m(src, window, factor)


#: dtype -> (integer type twice as wide, multiplier that repeats a value in both halves)
_PAIR_TYPES: dict[np.dtype[Any], tuple[type[np.unsignedinteger[Any]], int]] = {
    np.dtype(np.uint8): (np.uint16, 0x101), np.dtype(np.uint16): (np.uint32, 0x10001),
}


def _coarse_window(window: Window, factor: int) -> tuple[int, int, int, int]:
    """Raster rows/columns ``(row0, col0, height, width)`` covering a 10 m ``window``."""
    col0, row0 = int(window.col_off), int(window.row_off)
    width, height = int(window.width), int(window.height)
    c0, r0 = col0 // factor, row0 // factor
    c1, r1 = -(-(col0 + width) // factor), -(-(row0 + height) // factor)
    return r0, c0, r1 - r0, c1 - c0


def _upsample(coarse: np.ndarray, window: Window, factor: int,
              out: np.ndarray | None) -> np.ndarray:
    """Resample ``coarse`` (read by :func:`_coarse_window`) to 10 m and cut ``window`` out of it.

    Each coarse pixel is repeated ``factor`` x ``factor`` times (nearest neighbour).
    """
    col0, row0 = int(window.col_off), int(window.row_off)
    width, height = int(window.width), int(window.height)
    r0, c0 = row0 // factor, col0 // factor
    dr, dc = row0 - r0 * factor, col0 - c0 * factor
    target = np.empty((height, width), coarse.dtype) if out is None else out
    aligned = (dr == 0 and dc == 0 and coarse.shape == (height // factor, width // factor)
               and height % factor == 0 and width % factor == 0)
    wide = _PAIR_TYPES.get(coarse.dtype) if factor == 2 else None
    if aligned and target.flags.c_contiguous and wide is not None and target.dtype == coarse.dtype:
        # 20 m -> 10 m in one contiguous pass: each value doubled into a twice-as-wide integer
        # (v * 0x10001 holds v in both halves), written to two rows
        pairs = coarse.astype(wide[0]) * wide[0](wide[1])
        target.view(wide[0]).reshape(height // 2, 2, width // 2)[...] = pairs[:, None, :]
        return target
    if aligned and target.flags.c_contiguous:
        # one pass: each coarse pixel written to its factor x factor block
        blocks = target.reshape(height // factor, factor, width // factor, factor)
        blocks[...] = coarse[:, None, :, None]
        return target
    fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    target[...] = fine[dr:dr + height, dc:dc + width]
    return target


def read_window_10m(src: Any, window: Window | None, factor: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Read ``window`` (10 m pixel units) of the open raster ``src``, resampled to 10 m.

    The coarse pixels a window needs are read (decoded) once and each is repeated ``factor`` x
    ``factor`` times (nearest neighbour); ``factor`` None: the raster's pixel size / 10 m.

    Args:
        src: an open rasterio dataset (band 1 is read).
        window: pixel window on the 10 m grid; None: the whole raster.
        factor: 10 m pixels per raster pixel along each axis.
        out: optional array (height, width) of the raster's dtype to read into.

    Returns:
        ``out`` (or a new array) with the window's values at 10 m.

    """
    if factor is None:
        factor = max(1, round(abs(src.transform.a) / 10.0))
    if window is None:
        window = Window(0, 0, src.width * factor, src.height * factor)
    if factor == 1:
        if out is None:
            return src.read(1, window=window)
        return src.read(1, window=window, out=out)
    r0, c0, rows, cols = _coarse_window(window, factor)
    coarse = src.read(1, window=Window(c0, r0, cols, rows))
    return _upsample(coarse, window, factor, out)


def _read_layout_10m(layout: TiffLayout, window: Window | None, factor: int | None,
                     out: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`read_window_10m` of a directly decoded GeoTIFF; None: read it through rasterio."""
    if factor is None:
        factor = max(1, round(layout.pixel_size / 10.0))
    if window is None:
        window = Window(0, 0, layout.width * factor, layout.height * factor)
    if factor == 1:
        return read_window(layout, int(window.row_off), int(window.col_off),
                           int(window.height), int(window.width), out)
    coarse = read_window(layout, *_coarse_window(window, factor))
    return None if coarse is None else _upsample(coarse, window, factor, out)


def _read_band_10m(path: Path | str, window: Window, out: np.ndarray | None,
                   dtype: str | None) -> np.ndarray:
    """Read one band file's ``window`` at 10 m (directly decoded where possible).

    Raises:
        L2AMetadataError: ``dtype`` is given and the raster is of another type.

    """
    layout = tiff_layout(path)
    if layout is not None:
        if dtype is not None and layout.dtype != np.dtype(dtype):
            raise L2AMetadataError(
                f"{layout.path}: band raster of type {layout.dtype}, expected {dtype} DN")
        fast = _read_layout_10m(layout, window, None, out)
        if fast is not None:
            return fast
    with rasterio.Env(**GDAL_READ_OPTIONS), _open(path) as src:
        if dtype is not None and src.dtypes[0] != dtype:
            raise L2AMetadataError(
                f"{src.name}: band raster of type {src.dtypes[0]}, expected {dtype} DN")
        return read_window_10m(src, window, None, out)


def read_acquisition_dn(acquisition: L2AAcquisition, bands: Sequence[str], window: Window,
                        out: np.ndarray) -> np.ndarray:
    """Read raw DN of ``bands`` and the SCL at 10 m, each file opened and decoded once.

    Local deflate GeoTIFFs (eeflow's and Earth Search's layout) are decoded directly by
    :mod:`tasks.sentinel2.geotiff` (only the blocks the window needs, no GDAL dataset per file);
    other files (remote, JPEG 2000, other compressions) through rasterio: the same values.

    Args:
        acquisition: the acquisition.
        bands: band names (``out``'s first axis).
        window: pixel window on the 10 m grid.
        out: uint16 (band, height, width) that receives the DN (0 = nodata); 20 m bands are
            resampled as in :func:`read_bands`.

    Returns:
        The SCL, uint8 (height, width), as :func:`read_scl` returns it.

    Raises:
        L2AMetadataError: a band raster is not uint16 DN.

    """
    for index, band in enumerate(bands):
        if band not in BAND_RESOLUTION_M:
            raise ValueError(
                f"unknown Sentinel-2 band {band!r}; known: {list(BAND_RESOLUTION_M)}")
        _read_band_10m(acquisition.band_path(band), window, out[index], "uint16")
    return _read_band_10m(acquisition.band_path(SCL_ASSET), window, None, None).astype(
        np.uint8, copy=False)


def read_bands(
    acquisition: L2AAcquisition,
    bands: Sequence[str],
    window: Window | None = None,
) -> np.ndarray:
    """Read bands as surface reflectance at 10 m.

    Args:
        acquisition: the acquisition.
        bands: band names, e.g. :data:`tasks.domain.crops.S2_BANDS`.
        window: pixel window on the 10 m grid; None reads the whole tile.

    Returns:
        float32 array (band, y, x): reflectance (0..1, BOA offset removed), NaN where DN is 0.

    """
    out = []
    for band in bands:
        if band not in BAND_RESOLUTION_M:
            raise ValueError(f"unknown Sentinel-2 band {band!r}; known: {list(BAND_RESOLUTION_M)}")
        dn = _read_native(acquisition.band_path(band), window, None)
        refl = dn.astype(np.float32) * np.float32(acquisition.scale[band]) + np.float32(
            acquisition.offset[band]
        )
        refl[dn == NODATA_DN] = np.nan
        out.append(refl)
    return np.stack(out)


def read_scl(acquisition: L2AAcquisition, window: Window | None = None) -> np.ndarray:
    """Read the scene classification layer resampled to 10 m: uint8 (y, x)."""
    return _read_native(acquisition.band_path(SCL_ASSET), window, None).astype(np.uint8)


def scl_valid_mask(scl: np.ndarray, masked_classes: Sequence[int]) -> np.ndarray:
    """Return True where the SCL class is not one of ``masked_classes`` (bool, same shape).

    Raises:
        ValueError: a masked class is not an SCL class (0..11), naming it and the classes.

    """
    unknown = sorted(set(masked_classes) - set(SCL_CLASSES))
    if unknown:
        raise ValueError(
            f"masked SCL classes {unknown} are not SCL classes; allowed: "
            + ", ".join(f"{k} {v}" for k, v in SCL_CLASSES.items())
        )
    return ~np.isin(scl, np.asarray(list(masked_classes), dtype=scl.dtype))


def read_masked_bands(
    acquisition: L2AAcquisition,
    bands: Sequence[str],
    masked_scl_classes: Sequence[int],
    window: Window | None = None,
) -> np.ndarray:
    """Read reflectance at 10 m with NaN where the SCL class is masked (e.g. cloud, shadow, snow).

    Returns:
        float32 (band, y, x) like :func:`read_bands`, NaN where DN is 0 or SCL is masked.

    """
    reflectance = read_bands(acquisition, bands, window)
    valid = scl_valid_mask(read_scl(acquisition, window), masked_scl_classes)
    reflectance[:, ~valid] = np.nan
    return reflectance


def _write_band_files(folder: Path, grid: TileGrid, reflectance: np.ndarray,
                      bands: Sequence[str], processing_baseline: str,
                      nodata_10m: np.ndarray | None) -> dict[str, dict[str, object]]:
    """One uint16 DN GeoTIFF per band at its native resolution; return the STAC assets."""
    offset_dn = -boa_add_offset(processing_baseline)
    assets: dict[str, dict[str, object]] = {}
    for index, band in enumerate(bands):
        factor = BAND_RESOLUTION_M[band] // 10
        refl = reflectance[index]
        nod = nodata_10m
        if factor > 1:
            h, w = refl.shape
            refl = refl.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
            nod = None if nodata_10m is None else nodata_10m[::factor, ::factor]
        dn = np.clip(np.rint(refl * QUANTIFICATION_VALUE) + offset_dn, 1, 65535).astype(np.uint16)
        if nod is not None:
            dn[nod] = NODATA_DN
        _write_tif(folder / f"{band}.tif", dn, grid, factor)
        assets[band] = _asset(f"{band}.tif", BAND_RESOLUTION_M[band], "uint16", offset_dn)
    return assets


def _stac_item(item_id: str, grid: TileGrid, date: dt.date, platform: str,
               processing_baseline: str, cloudy: float, assets: dict[str, dict[str, object]],
               footprint_lonlat: list[list[float]] | None) -> dict[str, Any]:
    """Build the acquisition's STAC item (eo, projection, raster extensions)."""
    left, bottom, right, top = grid.bounds
    ring = footprint_lonlat or []
    lons = [p[0] for p in ring] or [0.0]
    lats = [p[1] for p in ring] or [0.0]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "geometry": {"type": "Polygon", "coordinates": [ring]} if ring else None,
        "bbox": [min(lons), min(lats), max(lons), max(lats)] if ring else None,
        "properties": {
            "datetime": f"{date.isoformat()}T10:00:00Z",
            "platform": "sentinel-2a" if platform == "S2A" else "sentinel-2b",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "eo:cloud_cover": round(float(cloudy), 3),
            "s2:processing_baseline": processing_baseline,
            "s2:mgrs_tile": grid.tile,
            "grid:code": f"MGRS-{grid.tile}",
            "proj:epsg": grid.epsg,
            "proj:bbox": [left, bottom, right, top],
            "earthsearch:boa_offset_applied": False,
            "eeflow:synthetic": True,
        },
        "assets": assets,
        "links": [],
    }


def write_acquisition(
    archive: str | os.PathLike[str],
    grid: TileGrid,
    date: dt.date,
    reflectance: np.ndarray,
    scl_20m: np.ndarray,
    *,
    bands: Sequence[str],
    processing_baseline: str = "04.00",
    platform: str = "S2A",
    nodata_10m: np.ndarray | None = None,
    footprint_lonlat: list[list[float]] | None = None,
) -> Path:
    """Write one acquisition (GeoTIFF per band at native resolution + STAC item).

    Args:
        archive: archive root; files go to ``{archive}/{tile}/{item_id}/``.
        grid: the tile's 10 m grid.
        date: acquisition date.
        reflectance: float32 (band, y, x) at 10 m; 20 m bands are 2 x 2 block-averaged.
        scl_20m: uint8 (y/2, x/2) scene classification at 20 m.
        bands: band names of ``reflectance``'s first axis.
        processing_baseline: e.g. ``"04.00"``; from 04.00 on DN = reflectance*10000 + 1000.
        platform: ``S2A`` or ``S2B``.
        nodata_10m: bool (y, x), True where the swath has no data (DN 0, SCL 0).
        footprint_lonlat: polygon ring of the tile (lon, lat) for the item geometry.

    Returns:
        Path of the STAC item.

    """
    item_id = item_id_for(grid.tile, date, platform)
    folder = Path(archive) / grid.tile / item_id
    folder.mkdir(parents=True, exist_ok=True)
    assets = _write_band_files(folder, grid, reflectance, bands, processing_baseline,
                               nodata_10m)
    scl = scl_20m.astype(np.uint8)
    _write_tif(folder / f"{SCL_ASSET}.tif", scl, grid, 2)
    assets[SCL_ASSET] = _asset(f"{SCL_ASSET}.tif", 20, "uint8", None)
    cloudy = np.isin(scl, (3, 8, 9, 10)).mean() * 100.0
    item = _stac_item(item_id, grid, date, platform, processing_baseline, float(cloudy), assets,
                      footprint_lonlat)
    item_path = folder / f"{item_id}.json"
    item_path.write_text(json.dumps(item, indent=1))
    return item_path


def _asset(href: str, resolution: int, dtype: str, offset_dn: int | None) -> dict[str, object]:
    band: dict[str, object] = {"nodata": 0, "data_type": dtype, "spatial_resolution": resolution}
    if offset_dn is not None:
        band["scale"] = 1.0 / QUANTIFICATION_VALUE
        band["offset"] = -offset_dn / QUANTIFICATION_VALUE
    return {
        "href": href,
        "type": "image/tiff; application=geotiff",
        "roles": ["data"],
        "raster:bands": [band],
    }


def _write_tif(path: Path, data: np.ndarray, grid: TileGrid, factor: int) -> None:
    transform = grid.transform @ grid.transform.scale(factor)
    height, width = data.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1,
        "dtype": data.dtype.name, "crs": grid.crs, "transform": transform, "nodata": 0,
        "compress": "deflate", "predictor": 2, "zlevel": 1,
    }
    if width >= 256 and height >= 256 and width % 16 == 0 and height % 16 == 0:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data, 1)
    os.replace(tmp, path)
