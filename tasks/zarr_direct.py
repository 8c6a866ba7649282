"""Direct reads and writes of local zarr v3 chunks, without zarr's per-chunk asynchronous pipeline.

zarr 3 moves every chunk through an asyncio event loop and a thread pool: for the windows patch
extraction reads and the rows it writes (a few chunks of a few MB), that machinery costs as much
CPU as the codec work itself (reading a 1024 x 1024 window of 3 float32 bands: 13.4 CPU-ms
through ``array[...]``, 7.7 here; the uint8 masks 10x; writing 850 patches of 3 x 32 x 32:
30 CPU-ms through zarr, 16 here). :func:`read_window` and :func:`write_rows` do the chunk work
themselves, in the calling thread, for a local array whose codecs are exactly
``[transpose] + bytes (little-endian) + [zstd]``, with the numcodecs Zstd codec zarr uses (the
same bytes on disk), and fall back to zarr for anything else (remote stores, sharding, other
codecs or chunk layouts, big-endian data, selections or rows that are not whole chunks): the same
values either way.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, TransposeCodec, ZstdCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding, V2ChunkKeyEncoding
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import LocalStore

_ZSTD = Zstd()  # decoding reads any level / checksum setting


class CorruptChunkError(ValueError):
    """A chunk file does not decode to a whole chunk of the array's dtype."""


@dataclass(frozen=True)
class _Layout:
    """How the chunks of a local array are stored, when this module can handle them itself."""

    folder: Path
    metadata: ArrayV3Metadata
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    order: tuple[int, ...] | None  # the transpose codec's axis order (None: none)
    zstd: ZstdCodec | None

    def path(self, index: tuple[int, ...]) -> Path:
        return self.folder / self.metadata.chunk_key_encoding.encode_chunk_key(index)

    def decode(self, path: Path, raw: bytes) -> np.ndarray:
        try:
            data = _ZSTD.decode(raw) if self.zstd is not None else raw
        except RuntimeError as err:  # numcodecs: "Zstd decompression error: ..."
            raise CorruptChunkError(f"{path}: not a zstd frame ({err}); the zarr array is "
                                    "damaged: re-run the stage that wrote it") from err
        size = int(np.prod(self.chunk_shape)) * self.dtype.itemsize
        if len(data) != size:
            raise CorruptChunkError(
                f"{path}: decodes to {len(data)} bytes, not one {self.chunk_shape} chunk of "
                f"{self.dtype} ({size} bytes); the zarr array is damaged: re-run the stage that "
                "wrote it")
        values = np.frombuffer(data, self.dtype)
        if self.order is None:
            return values.reshape(self.chunk_shape)
        stored = values.reshape([self.chunk_shape[axis] for axis in self.order])
        return stored.transpose(np.argsort(self.order))

    def encode(self, chunk: np.ndarray) -> bytes:
        stored = np.ascontiguousarray(chunk if self.order is None else chunk.transpose(self.order))
        if self.zstd is None:
            return stored.tobytes()
        return bytes(_encoder(self.zstd.level, self.zstd.checksum).encode(stored))


_ENCODERS: dict[tuple[int, bool], Zstd] = {}


def _encoder(level: int, checksum: bool) -> Zstd:
    return _ENCODERS.setdefault((level, checksum), Zstd(level=level, checksum=checksum))


def _layout(array: zarr.Array) -> _Layout | None:
    """Return the chunk layout of ``array`` when this module handles its chunks, else None."""
    metadata = array.metadata
    if not isinstance(array.store, LocalStore) or not isinstance(metadata, ArrayV3Metadata):
        return None
    if not isinstance(metadata.chunk_grid, RegularChunkGrid) or not isinstance(
            metadata.chunk_key_encoding, DefaultChunkKeyEncoding | V2ChunkKeyEncoding):
        return None
    dtype = metadata.dtype.to_native_dtype()
    if dtype.kind not in "biuf" or sys.byteorder != "little":
        return None
    codecs = list(metadata.codecs)
    order = None
    first = codecs[0] if codecs else None
    if isinstance(first, TransposeCodec):
        order = tuple(int(axis) for axis in first.order)
        codecs = codecs[1:]
    if not codecs or not isinstance(codecs[0], BytesCodec) or (
            dtype.itemsize > 1 and codecs[0].endian is not None
            and codecs[0].endian.value != "little"):
        return None
    rest = codecs[1:]
    if rest and (len(rest) > 1 or not isinstance(rest[0], ZstdCodec)):
        return None
    zstd = rest[0] if rest else None
    assert zstd is None or isinstance(zstd, ZstdCodec)
    return _Layout(Path(array.store.root) / array.path, metadata,
                   tuple(metadata.chunk_grid.chunk_shape), dtype, order, zstd)


def read_window(array: zarr.Array, selection: tuple[slice, ...]) -> np.ndarray:
    """``np.asarray(array[selection])`` for a tuple of step-1 slices, one per dimension.

    Local arrays of ``[transpose] + bytes [+ zstd]`` chunks are read here (module docstring); a
    missing chunk file reads as the fill value, as in zarr.

    Raises:
        CorruptChunkError: a chunk file does not decode to a whole chunk (names the file).

    """
    layout = _layout(array)
    bounds = [s.indices(n) for s, n in zip(selection, array.shape, strict=True)] if len(
        selection) == array.ndim else None
    if layout is None or bounds is None or any(step != 1 for _, _, step in bounds):
        return np.asarray(array[selection])
    chunk_shape = layout.chunk_shape
    starts = [start for start, _, _ in bounds]
    stops = [max(start, stop) for start, stop, _ in bounds]
    out = np.empty([stop - start for start, stop in zip(starts, stops, strict=True)],
                   layout.dtype)
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
        path = layout.path(index)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            out[target] = layout.metadata.fill_value
            continue
        out[target] = layout.decode(path, raw)[inner]
    return out


def write_rows(array: zarr.Array, start: int, rows: np.ndarray) -> None:
    """``array[start:start + len(rows)] = rows``, written here when the rows are whole chunks.

    Whole chunks: ``start`` is a chunk boundary of the first axis, the rows end at one or at the
    end of the array, and every other axis is one chunk; the array writes empty chunks (its
    ``write_empty_chunks`` config). Each chunk file is replaced atomically, as zarr does, with the
    same bytes (a short last chunk padded with the fill value). Anything else is zarr's write.
    """
    layout = _layout(array)
    n = len(rows)
    chunk_n = layout.chunk_shape[0] if layout is not None else 0
    if (layout is None or not array.config.write_empty_chunks
            or layout.chunk_shape[1:] != tuple(array.shape[1:])
            or rows.shape[1:] != tuple(array.shape[1:]) or start % chunk_n
            or (n % chunk_n and start + n != array.shape[0]) or start + n > array.shape[0]):
        array[start:start + n] = rows
        return
    values = np.asarray(rows, dtype=layout.dtype)
    for offset in range(0, n, chunk_n):
        chunk = values[offset:offset + chunk_n]
        if len(chunk) < chunk_n:  # the short last chunk: padded as zarr pads it
            padded = np.full(layout.chunk_shape, layout.metadata.fill_value, layout.dtype)
            padded[:len(chunk)] = chunk
            chunk = padded
        index = ((start + offset) // chunk_n,) + (0,) * (array.ndim - 1)
        path = layout.path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            partial.write_bytes(layout.encode(chunk))
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
