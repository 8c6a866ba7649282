"""Direct decoding of local deflate GeoTIFF band files, without opening them through GDAL.

Sentinel-2 L2A band files (eeflow's own, Earth Search's COGs) are single-band uint16 / uint8
GeoTIFFs, tiled or striped, deflate-compressed with or without horizontal differencing
(predictor 2). For such a file :func:`tiff_layout` reads the first image's structure (tile
offsets, sizes, pixel size) from its first IFD, and :func:`read_window` decodes only the tiles a
window needs with imagecodecs (libdeflate and the delta decoder, both without the GIL). The
values are those GDAL returns for the same window (``src.read(1, window=...)``): the same bytes
inflated, the same predictor undone. Opening a file through rasterio costs as much CPU as decoding a
512 x 512 band (dataset object, CRS, GDAL environment per open); this path costs a header parse.

Anything else (no imagecodecs installed, remote hrefs, JPEG 2000, other compressions, several
samples per pixel, a rotated or unreferenced raster, big-endian or BigTIFF files, a window
outside the raster) gives ``None`` from :func:`tiff_layout`: the caller reads that file through
rasterio as before.
"""

from __future__ import annotations

import os
import struct
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


#: TIFF field types read here: code -> (struct format, bytes per value)
_FIELD_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 12: ("d", 8)}
#: the tags the layout needs (others are skipped unread)
_TAGS = {
    "width": 256, "height": 257, "bits": 258, "compression": 259, "fill_order": 266,
    "strip_offsets": 273, "samples": 277, "rows_per_strip": 278, "strip_counts": 279,
    "planar": 284, "predictor": 317, "tile_width": 322, "tile_height": 323,
    "tile_offsets": 324, "tile_counts": 325, "sample_format": 339, "depth": 32997,
    "pixel_scale": 33550, "model_transformation": 34264, "nodata": 42113,
}
_WANTED = frozenset(_TAGS.values())
#: bytes read at once from the start of a file (GDAL puts the IFD and the offset arrays there)
_HEAD_BYTES = 16384


def _ifd_tags(fd: int) -> dict[int, tuple[Any, ...] | str] | None:
    """Read the wanted tags of the first IFD of a classic little-endian TIFF (else None)."""
    head = os.pread(fd, _HEAD_BYTES, 0)
    if len(head) < 8 or head[:4] != b"II*\x00":
        return None  # big-endian, BigTIFF or no TIFF: GDAL reads it

    def read(offset: int, size: int) -> bytes:
        if offset + size <= len(head):
            return head[offset:offset + size]
        return os.pread(fd, size, offset)

    (ifd,) = struct.unpack_from("<I", head, 4)
    (n_entries,) = struct.unpack("<H", read(ifd, 2))
    entries = read(ifd + 2, 12 * n_entries)
    if len(entries) != 12 * n_entries:
        return None
    tags: dict[int, tuple[Any, ...] | str] = {}
    for at in range(0, 12 * n_entries, 12):
        tag, kind, count = struct.unpack_from("<HHI", entries, at)
        if tag not in _WANTED:
            continue
        if kind not in _FIELD_TYPES:
            return None
        code, size = _FIELD_TYPES[kind]
        nbytes = size * count
        raw = (entries[at + 8:at + 8 + nbytes] if nbytes <= 4
               else read(struct.unpack_from("<I", entries, at + 8)[0], nbytes))
        if len(raw) != nbytes:
            return None
        tags[tag] = (raw.rstrip(b"\x00").decode("ascii", "replace") if kind == 2
                     else struct.unpack(f"<{count}{code}", raw))
    return tags


def _one(tags: dict[int, tuple[Any, ...] | str], name: str, default: int | None = None) -> int:
    value = tags.get(_TAGS[name])
    if value is None:
        if default is None:
            raise KeyError(name)
        return default
    if isinstance(value, str) or len(set(value)) != 1:
        raise ValueError(name)
    return int(value[0])


def _nodata_fill(tags: dict[int, tuple[Any, ...] | str]) -> int:
    text = tags.get(_TAGS["nodata"])
    if not isinstance(text, str):
        return 0
    try:
        value = float(text.strip())
    except ValueError:
        return 0
    return int(value) if value.is_integer() else 0


def _layout_from_tags(path: str, tags: dict[int, tuple[Any, ...] | str]) -> TiffLayout | None:
    """Lay out a single-band, unrotated, deflate (or raw) uint8 / uint16 image; else None."""
    bits = _one(tags, "bits", 1)
    scale = tags.get(_TAGS["pixel_scale"])
    if (_one(tags, "samples", 1) != 1 or _one(tags, "depth", 1) != 1
            or _one(tags, "fill_order", 1) != 1 or _one(tags, "sample_format", 1) != 1
            or bits not in (8, 16) or _one(tags, "predictor", 1) not in (1, 2)
            or _one(tags, "compression", 1) not in (_NONE, *_DEFLATE)
            or not isinstance(scale, tuple) or _TAGS["model_transformation"] in tags):
        return None
    height, width = _one(tags, "height"), _one(tags, "width")
    if _TAGS["tile_offsets"] in tags:
        block_height, block_width = _one(tags, "tile_height"), _one(tags, "tile_width")
        offsets, counts = tags.get(_TAGS["tile_offsets"]), tags.get(_TAGS["tile_counts"])
        n_blocks = -(-height // block_height) * -(-width // block_width)
    else:
        block_height = min(_one(tags, "rows_per_strip", 2**32 - 1), height)
        block_width = width
        offsets, counts = tags.get(_TAGS["strip_offsets"]), tags.get(_TAGS["strip_counts"])
        n_blocks = -(-height // block_height)
    if (not isinstance(offsets, tuple) or not isinstance(counts, tuple)
            or not len(offsets) == len(counts) == n_blocks):
        return None
    return TiffLayout(
        path=path, dtype=np.dtype(np.uint8 if bits == 8 else np.uint16), height=height,
        width=width, block_height=block_height, block_width=block_width,
        offsets=tuple(int(o) for o in offsets), byte_counts=tuple(int(c) for c in counts),
        compression=_one(tags, "compression", 1), predictor=_one(tags, "predictor", 1),
        pixel_size=abs(float(scale[0])), fill=_nodata_fill(tags),
    )


def tiff_layout(path: Path | str) -> TiffLayout | None:
    """Return the layout of a local GeoTIFF this module decodes, else None (read it with GDAL).

    Only the first image file directory is read (the full-resolution image of a COG), with
    plain ``struct`` reads: no TIFF library object per file.

    Raises:
        FileNotFoundError: a local path that does not exist (naming it).

    """
    if imagecodecs is None:
        return None
    local = _local_path(path)
    if local is None or not local.lower().endswith((".tif", ".tiff")):
        return None
    try:
        fd = os.open(local, os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"{local}: cannot open the band raster (no such file)") from None
    try:
        tags = _ifd_tags(fd)
        return None if tags is None else _layout_from_tags(local, tags)
    except (struct.error, KeyError, ValueError, TypeError):
        return None  # a TIFF this reader does not follow: GDAL reads it (or says why it cannot)
    finally:
        os.close(fd)


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
