"""Direct decoding of local deflate GeoTIFF band files, without opening them through GDAL.

Sentinel-2 L2A band files (eeflow's own, Earth Search's COGs) are single-band uint16 / uint8
GeoTIFFs, tiled or striped, deflate-compressed with or without horizontal differencing
(predictor 2). For such a file :func:`tiff_layout` reads the first image's structure (tile
offsets, sizes, pixel size) with tifffile, and :func:`read_window` decodes only the tiles a window
needs with imagecodecs (libdeflate and the delta decoder, both without the GIL). The values are
those GDAL returns for the same window (``src.read(1, window=...)``): the same bytes inflated,
the same predictor undone. Opening a file through rasterio costs as much CPU as decoding a
512 x 512 band (dataset object, CRS, GDAL environment per open); this path costs a header parse.

Anything else (no imagecodecs installed, remote hrefs, JPEG 2000, other compressions, several
samples per pixel, a rotated or unreferenced raster, a window outside the raster) gives ``None``
from :func:`tiff_layout`: the caller reads that file through rasterio as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

try:  # optional: without it every file is read through rasterio
    import imagecodecs
except ImportError:  # pragma: no cover - imagecodecs is a project dependency
    imagecodecs = None  # type: ignore[assignment]

#: TIFF compression codes decoded here: none, deflate (Adobe and the old code).
_NONE, _DEFLATE = 1, (8, 32946)
_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


@dataclass(frozen=True)
class TiffLayout:
    """Where the pixels of a single-band GeoTIFF's full-resolution image lie in its file."""

    path: str
    dtype: np.dtype[Any]
    height: int
    width: int
    #: rows and columns of one tile (a strip: ``rows_per_strip`` x ``width``)
    block_height: int
    block_width: int
    offsets: tuple[int, ...]
    byte_counts: tuple[int, ...]
    compression: int
    predictor: int
    #: pixel size along x in CRS units (GDAL's ``transform.a``, absolute)
    pixel_size: float
    #: value of blocks absent from the file (GDAL fills them with the nodata value, else 0)
    fill: int

    @property
    def blocks_across(self) -> int:
        """Blocks per block row."""
        return -(-self.width // self.block_width)


def _local_path(path: Path | str) -> str | None:
    text = str(path)
    if isinstance(path, Path):
        return text
    scheme = urlparse(text).scheme
    if scheme == "file":
        return urlparse(text).path
    if scheme or text.startswith("/vsi"):
        return None
    return text


def _page_supported(page: Any) -> bool:
    """Say whether a page is a single-band, unrotated, deflate (or raw) uint8 / uint16 image."""
    tags = page.tags
    return bool(
        page.samplesperpixel == 1 and page.imagedepth == 1 and int(page.fillorder) == 1
        and np.dtype(page.dtype) in _DTYPES and page.bitspersample == 8 * page.dtype.itemsize
        and (int(page.compression) == _NONE or int(page.compression) in _DEFLATE)
        and int(page.predictor) in (1, 2)
        and "ModelPixelScaleTag" in tags and "ModelTransformationTag" not in tags
        and len(page.dataoffsets) == len(page.databytecounts) > 0
    )


def tiff_layout(path: Path | str) -> TiffLayout | None:
    """Return the layout of a local GeoTIFF this module decodes, else None (read it with GDAL).

    Raises:
        FileNotFoundError: a local path that does not exist (naming it).

    """
    if imagecodecs is None:
        return None
    local = _local_path(path)
    if local is None or not local.lower().endswith((".tif", ".tiff")):
        return None
    import tifffile

    if not os.path.isfile(local):
        raise FileNotFoundError(f"{local}: cannot open the band raster (no such file)")
    try:
        with tifffile.TiffFile(local) as tif:
            if tif.byteorder != "<" or not tif.pages:
                return None
            page = tif.pages[0]
            if not isinstance(page, tifffile.TiffPage) or not _page_supported(page):
                return None
            nodata = page.tags.get("GDAL_NODATA")
            fill = 0
            if nodata is not None:
                try:
                    value = float(str(nodata.value).strip("\x00 "))
                    fill = int(value) if value.is_integer() else 0
                except ValueError:
                    fill = 0
            tiled = bool(page.is_tiled)
            return TiffLayout(
                path=local, dtype=np.dtype(page.dtype), height=int(page.imagelength),
                width=int(page.imagewidth),
                block_height=int(page.tilelength if tiled else min(page.rowsperstrip,
                                                                     page.imagelength)),
                block_width=int(page.tilewidth if tiled else page.imagewidth),
                offsets=tuple(int(o) for o in page.dataoffsets),
                byte_counts=tuple(int(c) for c in page.databytecounts),
                compression=int(page.compression), predictor=int(page.predictor),
                pixel_size=abs(float(page.tags["ModelPixelScaleTag"].value[0])), fill=fill,
            )
    except (tifffile.TiffFileError, ValueError, KeyError, IndexError, TypeError):
        return None  # not a TIFF tifffile parses: GDAL reads it (or says why it cannot)


def _decode_block(layout: TiffLayout, fd: int, index: int) -> np.ndarray:
    """Decode block ``index`` to (block_height, block_width) (a short last strip: fewer rows)."""
    rows = layout.block_height
    block_row = index // layout.blocks_across
    if layout.block_width == layout.width:  # strips: the last one may be short
        rows = min(rows, layout.height - block_row * layout.block_height)
    shape = (rows, layout.block_width)
    count = layout.byte_counts[index]
    if count == 0:  # a sparse file: GDAL fills absent blocks with the nodata value
        return np.full(shape, layout.fill, layout.dtype)
    raw = os.pread(fd, count, layout.offsets[index])
    nbytes = rows * layout.block_width * layout.dtype.itemsize
    try:
        data = raw if layout.compression == _NONE else imagecodecs.deflate_decode(raw, out=nbytes)
    except Exception as err:  # imagecodecs raises its own DeflateError
        raise ValueError(
            f"{layout.path}: block {index} does not inflate ({err}); the file is damaged, "
            "re-download or re-generate it"
        ) from None
    if len(data) != nbytes:
        raise ValueError(
            f"{layout.path}: block {index} holds {len(data)} bytes, expected {nbytes} "
            f"({shape[0]} x {shape[1]} {layout.dtype}); the file is damaged, re-download or "
            "re-generate it"
        )
    block = np.frombuffer(data, layout.dtype).reshape(shape)
    if layout.predictor == 2:
        return np.asarray(imagecodecs.delta_decode(block, axis=-1))
    return block


def read_window(layout: TiffLayout, row0: int, col0: int, height: int, width: int,
                out: np.ndarray | None = None) -> np.ndarray | None:
    """Decode rows ``row0 .. row0 + height`` and columns ``col0 .. col0 + width`` of the image.

    Only the blocks the window touches are read and inflated, each once.

    Returns:
        ``out`` (or a new (height, width) array of the file's dtype) with the window's values;
        None when the window is not inside the image (the caller reads it through GDAL, which
        reports that).

    """
    if (row0 < 0 or col0 < 0 or height <= 0 or width <= 0
            or row0 + height > layout.height or col0 + width > layout.width):
        return None
    target = np.empty((height, width), layout.dtype) if out is None else out
    bh, bw = layout.block_height, layout.block_width
    fd = os.open(layout.path, os.O_RDONLY)
    try:
        for by in range(row0 // bh, (row0 + height - 1) // bh + 1):
            for bx in range(col0 // bw, (col0 + width - 1) // bw + 1):
                block = _decode_block(layout, fd, by * layout.blocks_across + bx)
                r0, c0 = max(row0, by * bh), max(col0, bx * bw)
                r1 = min(row0 + height, by * bh + block.shape[0])
                c1 = min(col0 + width, bx * bw + bw)
                target[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = \
                    block[r0 - by * bh:r1 - by * bh, c0 - bx * bw:c1 - bx * bw]
    finally:
        os.close(fd)
    return target
