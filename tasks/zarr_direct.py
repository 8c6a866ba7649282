"""Direct reads of local zarr v3 chunks, without zarr's per-chunk asynchronous pipeline.

zarr 3 reads every chunk through an asyncio event loop and a thread pool: for the small windows
patch extraction reads (a few chunks of a few MB), that machinery costs more CPU than the
decoding itself (a 1024 x 1024 window of 3 float32 bands: 13.4 CPU-ms through ``array[...]``,
7.7 CPU-ms decoded here; the uint8 masks 10x). :func:`read_window` reads the chunk files of a
local array whose codecs are exactly ``bytes`` (+ ``zstd``) itself, in the calling thread, with
the same numcodecs Zstd decoder zarr uses, and falls back to zarr for anything else (remote
stores, sharding, other codecs or chunk layouts, big-endian data, stepped selections): the same
values either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding, V2ChunkKeyEncoding
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import LocalStore

_ZSTD = Zstd()


class CorruptChunkError(ValueError):
    """A chunk file does not decode to a whole chunk of the array's dtype."""


def _direct_layout(array: zarr.Array) -> tuple[Path, bool] | None:
    """(folder of the array, zstd-compressed) when :func:`read_window` can read it itself."""
    metadata = array.metadata
    if not isinstance(array.store, LocalStore) or not isinstance(metadata, ArrayV3Metadata):
        return None
    if not isinstance(metadata.chunk_grid, RegularChunkGrid) or not isinstance(
            metadata.chunk_key_encoding, DefaultChunkKeyEncoding | V2ChunkKeyEncoding):
        return None
    dtype = metadata.dtype.to_native_dtype()
    codecs = list(metadata.codecs)
    if dtype.kind not in "biuf" or sys.byteorder != "little" or not codecs:
        return None
    first = codecs[0]
    if not isinstance(first, BytesCodec) or (
            dtype.itemsize > 1 and first.endian is not None and first.endian.value != "little"):
        return None
    rest = codecs[1:]
    if rest and (len(rest) > 1 or not isinstance(rest[0], ZstdCodec)):
        return None
    return Path(array.store.root) / array.path, bool(rest)


def read_window(array: zarr.Array, selection: tuple[slice, ...]) -> np.ndarray:
    """``np.asarray(array[selection])`` for a tuple of step-1 slices, one per dimension.

    Local arrays of ``bytes`` (+ ``zstd``) chunks are read here (see the module docstring); a
    missing chunk file reads as the fill value, as in zarr.

    Raises:
        CorruptChunkError: a chunk file does not decode to a whole chunk (names the file).

    """
    layout = _direct_layout(array)
    bounds = [s.indices(n) for s, n in zip(selection, array.shape, strict=True)] if len(
        selection) == array.ndim else None
    if layout is None or bounds is None or any(step != 1 for _, _, step in bounds):
        return np.asarray(array[selection])
    folder, compressed = layout
    metadata = array.metadata
    assert isinstance(metadata, ArrayV3Metadata)
    assert isinstance(metadata.chunk_grid, RegularChunkGrid)
    chunk_shape = metadata.chunk_grid.chunk_shape
    dtype = metadata.dtype.to_native_dtype()
    starts = [start for start, _, _ in bounds]
    stops = [max(start, stop) for start, stop, _ in bounds]
    out = np.empty([stop - start for start, stop in zip(starts, stops, strict=True)], dtype)
    if out.size == 0:
        return out
    ranges = [range(start // size, -(-stop // size))
              for start, stop, size in zip(starts, stops, chunk_shape, strict=True)]
    for coords in np.ndindex(*[len(r) for r in ranges]):
        index = tuple(r[i] for r, i in zip(ranges, coords, strict=True))
        lows = [i * size for i, size in zip(index, chunk_shape, strict=True)]
        # the part of this chunk inside the window, in chunk and in window coordinates
        inner = tuple(slice(max(start, low) - low, min(stop, low + size) - low) for
                      start, stop, low, size in zip(starts, stops, lows, chunk_shape, strict=True))
        target = tuple(slice(max(start, low) - start, min(stop, low + size) - start) for
                       start, stop, low, size in zip(starts, stops, lows, chunk_shape, strict=True))
        path = folder / metadata.chunk_key_encoding.encode_chunk_key(index)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            out[target] = metadata.fill_value
            continue
        try:
            data = _ZSTD.decode(raw) if compressed else raw
        except RuntimeError as err:  # numcodecs: "Zstd decompression error: ..."
            raise CorruptChunkError(f"{path}: not a zstd frame ({err}); the zarr array is "
                                    "damaged: re-run the stage that wrote it") from err
        if len(data) != int(np.prod(chunk_shape)) * dtype.itemsize:
            raise CorruptChunkError(
                f"{path}: decodes to {len(data)} bytes, not one {chunk_shape} chunk of {dtype} "
                f"({int(np.prod(chunk_shape)) * dtype.itemsize} bytes); the zarr array is "
                "damaged: re-run the stage that wrote it")
        out[target] = np.frombuffer(data, dtype).reshape(chunk_shape)[inner]
    return out
