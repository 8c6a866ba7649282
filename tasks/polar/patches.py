"""Training patches: harmonised scenes + label rasters -> a versioned zarr training set.

Extraction runs in two Dask passes over tiles of the patch grid, so no scene is ever held in RAM:

1. *candidates*: per tile, read only ``label``, ``land_mask`` and ``valid_mask`` and keep the patch
   origins whose pixels are all valid, none is land, and whose majority class (not "no label")
   covers at least ``min_purity`` of the patch;
2. *balance* (in the driver, on origins only): per class keep at most ``max_per_class`` origins,
   and with ``balance="undersample"`` as many as the rarest non-empty class has (seeded);
3. *extract*: the chosen origins are cut part by part (a part: a tile's patches that start in
   one chunk row of the scene, its window narrowed to them: small units of work that decode no
   chunk twice when the stride divides the chunk height): read the backscatter window, cut the
   patches and write the output chunks they fill completely (tasks never share a chunk; on Dask
   a task cuts a run of consecutive parts, two tasks per worker, and also writes the
   chunks that span two of its parts). The partial chunks at task boundaries are joined by a
   worker task that takes the neighbouring tasks' results as inputs (on Dask), or by the
   driver's writer thread (in-process). Per-band sums of every part give the mean / standard
   deviation; only they come back to the driver on Dask. Local zarr chunks are read and written
   without zarr's per-chunk asynchronous pipeline (:mod:`tasks.zarr_direct`; the same bytes).

Output (contract in :mod:`tasks.polar.schema`): ``{root}/polar/patches/{dataset_version}/
patches_{size}.zarr`` with ``x`` float32 (patch, band, py, px) raw dB / degrees, ``y`` uint8
five-class code, ``scene`` int16 index into the ``scenes`` attribute, ``origin`` int32 (patch, 2)
row/column of the patch's top-left pixel in its scene. ``x`` chunks are stored band-major
(:data:`X_CHUNK_ORDER`, a zarr transpose codec); readers see the same array.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from numpy.lib.stride_tricks import sliding_window_view
from tqdm.auto import tqdm
from zarr.codecs import TransposeCodec
from zarr.core.array_spec import ArrayConfigParams

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.dask_cluster import dask_client
from tasks.domain import ice
from tasks.fs import is_remote
from tasks.fs import join as fs_join
from tasks.polar import schema
from tasks.staging import location_exists, write_s3_manifest, zarr_store
from tasks.storage import (
    atomic_dir,
    atomic_s3_version,
    stage_dir,
    stage_location,
    write_manifest,
    zarr_array,
)
from tasks.zarr_direct import read_window, write_rows

log = logging.getLogger(__name__)

#: Target size of one output chunk along the patch axis (bytes).
OUTPUT_CHUNK_BYTES = 2 * 1024 * 1024
#: Most tiles one candidate task scans on Dask (the scan of a tile costs a few ms of CPU, about
#: what Dask spends on a task).
CANDIDATE_BATCH = 8
#: Driver writes in flight at once (each holds its block of patches until written).
PENDING_WRITES = 2
#: Dask tasks in flight per worker (bounds the memory of finished, unconsumed results).
TASKS_IN_FLIGHT_PER_WORKER = 4
#: Extract tasks per worker on Dask, each a run of consecutive parts: two measured faster than
#: four (fewer chunks joined across tasks; parts are small enough to balance the workers).
CUT_TASKS_PER_WORKER = 2
#: In-chunk byte order of ``x``: band-major, (band, patch, py, px). The values and the array's
#: shape stay (patch, band, py, px); zstd compresses the band-major bytes about 1.4-2x faster (and
#: a little smaller) than patch-major bytes that interleave three bands of different statistics
#: every 4 KiB, i.e. at the speed of the scene's own (band, y, x) chunks.
X_CHUNK_ORDER = (1, 0, 2, 3)
#: zarr runtime settings of ``x``: every chunk holds patches, so the check whether a chunk is all
#: fill value (one more pass over the data) is skipped.
X_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}


@dataclass(frozen=True)
class Tile:
    """A block of the patch grid of one scene: patch rows [row0, row1) x columns [col0, col1)."""

    scene_index: int
    row0: int
    row1: int
    col0: int
    col1: int

    def pixel_window(self, size: int, stride: int) -> tuple[slice, slice]:
        """Pixel rows / columns covering every patch of the tile."""
        return (
            slice(self.row0 * stride, (self.row1 - 1) * stride + size),
            slice(self.col0 * stride, (self.col1 - 1) * stride + size),
        )


def check_scene_pair(scene_zarr: Path | str, label_zarr: Path | str) -> tuple[int, int]:
    """Validate one harmonised scene + label raster pair against the contract; return (y, x) size.

    Either may be an ``s3://`` URL (a zarr store on S3).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a variable or band is missing, or the grids differ.

    """
    for path in (scene_zarr, label_zarr):
        if not location_exists(path):
            raise FileNotFoundError(
                f"{path} does not exist; run the harmonise / labels stage first"
            )
    scene = _open_group(str(scene_zarr))
    labels = _open_group(str(label_zarr))
    for var in (schema.BACKSCATTER_VAR, schema.LAND_MASK_VAR, schema.VALID_MASK_VAR):
        if var not in scene:
            raise ValueError(
                f"{scene_zarr}: variable {var!r} missing; a harmonised scene needs "
                f"{[schema.BACKSCATTER_VAR, schema.LAND_MASK_VAR, schema.VALID_MASK_VAR]}"
            )
    backscatter = zarr_array(scene, schema.BACKSCATTER_VAR)
    dims = tuple(getattr(backscatter.metadata, "dimension_names", None) or ())  # zarr v3 only
    if dims != ("band", "y", "x") or "band" not in scene:
        raise ValueError(f"{scene_zarr}: 'backscatter' must have dimensions (band, y, x) and a "
                         "'band' coordinate")
    bands = [str(b) for b in np.asarray(zarr_array(scene, "band")[:])]
    missing = [b for b in schema.BANDS if b not in bands]
    if missing:
        raise ValueError(f"{scene_zarr}: bands {missing} missing from 'backscatter' (has {bands})")
    if schema.LABEL_VAR not in labels:
        raise ValueError(f"{label_zarr}: variable {schema.LABEL_VAR!r} missing")
    for group, names, path in ((scene, (schema.BACKSCATTER_VAR, schema.LAND_MASK_VAR,
                                        schema.VALID_MASK_VAR), scene_zarr),
                               (labels, (schema.LABEL_VAR,), label_zarr)):
        for name in names:
            encoded = {"scale_factor", "add_offset"} & set(zarr_array(group, name).attrs)
            if encoded:
                raise ValueError(f"{path}: {name!r} is stored with CF encoding {sorted(encoded)}; "
                                 "write harmonised scenes / labels without scale or offset")
    scene_shape = (backscatter.shape[1], backscatter.shape[2])  # (band, y, x) checked above
    label_shape = tuple(zarr_array(labels, schema.LABEL_VAR).shape)
    if scene_shape != label_shape:
        raise ValueError(
            f"{label_zarr}: grid {label_shape} differs from scene {scene_zarr} grid {scene_shape}; "
            "labels must be rasterised on the harmonised scene grid"
        )
    return scene_shape


def plan_tiles(
    scene_index: int, shape: tuple[int, int], size: int, stride: int, tile_px: int
) -> list[Tile]:
    """Split the patch grid of a scene of ``shape`` pixels into tiles of ~``tile_px`` pixels."""
    n_rows = (shape[0] - size) // stride + 1 if shape[0] >= size else 0
    n_cols = (shape[1] - size) // stride + 1 if shape[1] >= size else 0
    step = max(1, tile_px // stride)
    return [
        Tile(scene_index, r, min(r + step, n_rows), c, min(c + step, n_cols))
        for r in range(0, n_rows, step)
        for c in range(0, n_cols, step)
    ]


@functools.lru_cache(maxsize=64)
def _open_group(path: str) -> zarr.Group:
    """Open a zarr group to read: a local path, or an ``s3://`` URL (S3 from the environment)."""
    return zarr.open_group(zarr_store(path, read_only=True), mode="r")


def _open_array(path: str, name: str) -> zarr.Array:
    """Open variable ``name`` of group ``path``, cached while its metadata file is unchanged.

    An ``s3://`` group is a published version of a stage output (never rewritten): cached.
    """
    if is_remote(path):
        return _open_array_cached(path, name, 0)
    metadata = Path(path) / name / "zarr.json"
    try:
        stamp = metadata.stat().st_mtime_ns
    except FileNotFoundError:
        return zarr_array(_open_group(path), name)  # not a local zarr v3 array: uncached
    return _open_array_cached(path, name, stamp)


@functools.lru_cache(maxsize=256)
def _open_array_cached(path: str, name: str, stamp: int) -> zarr.Array:
    del stamp  # part of the cache key only
    return zarr_array(_open_group(path), name)


@functools.lru_cache(maxsize=64)
def _band_order(path: str) -> tuple[int, ...]:
    bands = [str(b) for b in np.asarray(zarr_array(_open_group(path), "band")[:])]
    return tuple(bands.index(b) for b in schema.BANDS)


def _read_window(
    path: str, names: Sequence[str], window: tuple[slice, slice]
) -> list[np.ndarray]:
    """Read (y, x) windows of 2-D variables, or (band, y, x) of ``backscatter`` in BANDS order.

    Reads the zarr arrays directly (no xarray decoding; :func:`check_scene_pair` makes sure none
    is needed), local chunks without zarr's pipeline (:func:`tasks.zarr_direct.read_window`).
    """
    out = []
    for name in names:
        array = _open_array(path, name)
        if array.ndim == 3:
            order = list(_band_order(path))
            values = read_window(array, (slice(None), window[0], window[1]))
            out.append(values[order] if order != list(range(len(order))) else values)
        else:
            out.append(read_window(array, (window[0], window[1])))
    return out


def find_candidates(
    scene_zarr: str, label_zarr: str, tile: Tile, size: int, stride: int, min_purity: float
) -> np.ndarray:
    """Return the acceptable patch origins of one tile as int32 rows (grid row, grid col, code).

    A patch is acceptable when all its pixels are valid, none is land, and its majority label
    (not 0 = no label) covers at least ``min_purity`` of its pixels; ``code`` is that label.
    """
    window = tile.pixel_window(size, stride)
    land, valid = _read_window(scene_zarr, [schema.LAND_MASK_VAR, schema.VALID_MASK_VAR], window)
    (label,) = _read_window(label_zarr, [schema.LABEL_VAR], window)
    n_codes = len(ice.ice_classes()) + 1

    if label.max(initial=0) >= n_codes:
        raise ValueError(
            f"{label_zarr}: label code {int(label.max())} outside 0..{n_codes - 1} "
            "(codes of ice_classes.csv)"
        )
    bad_pixels = (land != 0) | (valid == 0)
    if stride == size:
        bad, counts = _patch_counts_aligned(bad_pixels, label, size, n_codes)
    else:
        bad, counts = _patch_counts(bad_pixels, label, size, stride, n_codes)
    counts[..., schema.NO_LABEL] = 0
    code = counts.argmax(axis=-1)
    purity = counts.max(axis=-1) / float(size * size)
    ok = (~bad) & (code != schema.NO_LABEL) & (purity >= min_purity)
    rows, cols = np.nonzero(ok)
    return np.stack(
        [rows + tile.row0, cols + tile.col0, code[rows, cols]], axis=1
    ).astype(np.int32).reshape(-1, 3)


def find_candidates_batch(jobs: Sequence[tuple]) -> list[np.ndarray]:
    """:func:`find_candidates` of several tiles (each job its arguments) in one task, in order."""
    return [find_candidates(*job) for job in jobs]


def _patch_counts(
    bad_pixels: np.ndarray, label: np.ndarray, size: int, stride: int, n_codes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per patch of the grid: any bad pixel (rows, cols) and label counts (rows, cols, n_codes)."""
    bad_grid = sliding_window_view(bad_pixels, (size, size))[::stride, ::stride]
    bad = np.asarray(bad_grid.any(axis=(2, 3)))
    label_grid = sliding_window_view(label, (size, size))[::stride, ::stride]
    n_rows, n_cols = label_grid.shape[:2]
    flat_labels = np.ascontiguousarray(label_grid).reshape(n_rows * n_cols, size * size)
    offsets = (np.arange(n_rows * n_cols) * n_codes)[:, None]
    counts = np.bincount((flat_labels + offsets).ravel(), minlength=n_rows * n_cols * n_codes)
    return bad, counts.reshape(n_rows, n_cols, n_codes)


def _patch_counts_aligned(
    bad_pixels: np.ndarray, label: np.ndarray, size: int, n_codes: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_patch_counts` for ``stride == size`` (patches tile the window).

    Most patches hold one label: per patch the minimum and maximum label and whether any pixel
    is bad come from reductions over rows first (vectorised across columns) and then over
    ``size``-pixel runs, so a pure patch costs no histogram; only mixed, good patches get one
    (a single bincount). A bad patch's label counts are left at 0: it is rejected whatever they
    are.
    """
    n_rows, n_cols = label.shape[0] // size, label.shape[1] // size
    bad = _patch_reduce(bad_pixels.view(np.uint8), size, np.maximum) > 0
    high = _patch_reduce(label, size, np.maximum)
    low = _patch_reduce(label, size, np.minimum)
    counts = np.zeros((n_rows, n_cols, n_codes), dtype=np.intp)
    rows, cols = np.nonzero((high == low) & ~bad)
    counts[rows, cols, high[rows, cols]] = size * size
    rows, cols = np.nonzero((high != low) & ~bad)
    if len(rows):
        blocks = label[: n_rows * size, : n_cols * size].reshape(n_rows, size, n_cols, size)
        mixed = blocks.transpose(0, 2, 1, 3)[rows, cols].reshape(len(rows), size * size)
        keys = mixed + (np.arange(len(rows), dtype=np.intp) * n_codes)[:, None]
        counts[rows, cols] = np.bincount(
            keys.ravel(), minlength=len(rows) * n_codes).reshape(len(rows), n_codes)
    return bad, counts


def _patch_reduce(values: np.ndarray, size: int, ufunc: np.ufunc) -> np.ndarray:
    """``ufunc`` (maximum / minimum) over each ``size`` x ``size`` block of a 2-D array."""
    n_rows, n_cols = values.shape[0] // size, values.shape[1] // size
    width = values.shape[1]
    strips = ufunc.reduce(values[: n_rows * size].reshape(n_rows, size, width), axis=1)
    return ufunc.reduce(strips[:, : n_cols * size].reshape(n_rows, n_cols, size), axis=2)


def cut_patches(
    scene_zarr: str, tile: Tile, origins: np.ndarray, size: int, stride: int
) -> np.ndarray:
    """Cut float32 patches (n, band, size, size) at grid ``origins`` (n, 2) inside ``tile``.

    Raises:
        ValueError: a chosen patch has non-finite backscatter although ``valid_mask`` says valid.

    """
    return _cut_patches_and_sums(scene_zarr, tile, origins, size, stride)[0]


def _cut_patches_and_sums(
    scene_zarr: str, tile: Tile, origins: np.ndarray, size: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cut_patches`, plus the float32 sum of every patch and band (n, band).

    The sums serve both the finiteness check (NaN / inf propagate) and the band statistics, so
    the patches are traversed once for both.
    """
    window = tile.pixel_window(size, stride)
    (backscatter,) = _read_window(scene_zarr, [schema.BACKSCATTER_VAR], window)
    rows, cols = origins[:, 0] - tile.row0, origins[:, 1] - tile.col0
    if stride == size:  # non-overlapping grid: a reshape, one gather, one copy
        n_bands, height, width = backscatter.shape
        blocks = backscatter.reshape(n_bands, height // size, size, width // size, size)
        patches = blocks.transpose(1, 3, 0, 2, 4)[rows, cols]
    else:
        views = sliding_window_view(backscatter, (size, size), axis=(1, 2))[:, ::stride, ::stride]
        patches = views[:, rows, cols].transpose(1, 0, 2, 3)
    patches = np.ascontiguousarray(patches, dtype=np.float32)
    # per patch and band in float32 (pairwise summation); NaN / inf propagate into the sum
    patch_sums = patches.reshape(len(patches), patches.shape[1], -1).sum(axis=2)
    finite = np.isfinite(patch_sums).all(axis=1)
    if not finite.all():
        bad = origins[~finite][0] * stride
        raise ValueError(
            f"{scene_zarr}: non-finite backscatter in a patch at pixel (y={bad[0]}, x={bad[1]}) "
            "where valid_mask is 1; the harmonised scene's valid_mask is wrong"
        )
    return patches, patch_sums


def balance_candidates(
    candidates: np.ndarray,
    *,
    balance: Literal["none", "undersample"],
    max_per_class: int,
    class_scheme: str,
    seed: int,
) -> np.ndarray:
    """Choose rows of ``candidates`` (scene, tile, row, col, code) per class; seeded.

    Classes are those of ``class_scheme`` (five-class codes, or water/ice). Every class keeps at
    most ``max_per_class``; ``undersample`` also cuts every class to the rarest non-empty one.
    Returns the chosen rows sorted by (scene, tile, row, col) for read locality.
    """
    codes = candidates[:, 4]
    keys = codes if class_scheme == "five_class" else _binary_lookup()[codes]
    counts = {int(k): int((keys == k).sum()) for k in np.unique(keys)}
    target = min(counts.values()) if balance == "undersample" and counts else None
    rng = np.random.default_rng(seed)
    chosen = []
    for key in sorted(counts):
        index = np.flatnonzero(keys == key)
        keep = min(len(index), max_per_class, target if target is not None else len(index))
        chosen.append(np.sort(rng.choice(index, size=keep, replace=False)))
    if not chosen:
        return candidates[:0]
    picked = candidates[np.concatenate(chosen)]
    order = np.lexsort((picked[:, 3], picked[:, 2], picked[:, 1], picked[:, 0]))
    return picked[order]


def _binary_lookup() -> np.ndarray:
    lookup = np.zeros(len(ice.ice_classes()) + 1, dtype=np.int64)
    for c in ice.ice_classes():
        lookup[c.code] = c.binary_code
    return lookup


def _ordered_results(client: Any, fn: Any, jobs: Sequence[tuple], window: int) -> Iterator[Any]:
    """Run ``fn(*job)`` for each job (on Dask when ``client`` is given), yield results in order.

    At most ``window`` jobs are in flight, which bounds the memory of finished, unconsumed results.
    On Dask, the finished jobs at the head of the queue are fetched in one gather (one round trip
    to the workers instead of one per result).
    """
    if client is None:
        for job in jobs:
            yield fn(*job)
        return
    from distributed import wait

    pending: deque = deque()
    jobs_iter = iter(jobs)
    for job in jobs_iter:
        pending.append(client.submit(fn, *job, pure=False))
        if len(pending) >= window:
            break
    while pending:
        wait(pending[0])
        done = [pending.popleft()]
        while pending and pending[0].done():
            done.append(pending.popleft())
        for future, result in zip(done, client.gather(done), strict=True):
            future.release()
            nxt = next(jobs_iter, None)
            if nxt is not None:
                pending.append(client.submit(fn, *nxt, pure=False))
            yield result


@dataclass
class TilePatches:
    """What a tile task returns: patches it could not write alone, and per-band sums.

    ``head`` holds output rows [first, first + len(head)), ``tail`` rows [full_chunks[1],
    full_chunks[1] + len(tail)); the task itself wrote the rows ``full_chunks`` in between.
    :func:`cut_part` returns every patch as ``head`` (nothing written).
    """

    head: np.ndarray
    tail: np.ndarray
    full_chunks: tuple[int, int]
    band_sum: np.ndarray
    band_sum_sq: np.ndarray
    first: int = 0


def cut_part(
    scene_zarr: str, tile: Tile, origins: np.ndarray, size: int, stride: int,
) -> TilePatches:
    """Cut the patches of a tile (or part of one) at ``origins``, with their per-band sums.

    Every patch comes back as ``head``; the caller writes them (in-process the driver's writer
    thread, on Dask :func:`cut_and_store_tiles`). The sums are per patch and band in float32
    (pairwise summation), across patches in float64.
    """
    patches, patch_sums = _cut_patches_and_sums(scene_zarr, tile, origins, size, stride)
    flat = patches.reshape(len(patches), patches.shape[1], -1)
    return TilePatches(patches, patches[:0], (0, 0), patch_sums.sum(axis=0, dtype=np.float64),
                       np.einsum("nbk,nbk->nb", flat, flat).sum(axis=0, dtype=np.float64))


def cut_and_store_tiles(
    parts: Sequence[tuple[str, Tile, np.ndarray]], size: int, stride: int, out_zarr: str,
    first_index: int, chunk_n: int,
) -> TilePatches:
    """Cut consecutive tiles (or parts) ``(scene_zarr, tile, origins)`` in one task and write.

    Their patches occupy output rows [first_index, first_index + n) in order. The tiles are cut
    one at a time (the memory of one tile), and every output chunk inside those rows is written
    as soon as it is complete, also one that spans two of the tiles, so only the chunks at both
    ends are left to :func:`write_shared_chunk`. ``band_sum`` / ``band_sum_sq`` hold one row per
    tile (the sums of :func:`cut_part`, added in tile order by the driver).
    """
    end = first_index + sum(len(origins) for _, _, origins in parts)
    c0 = -(-first_index // chunk_n) * chunk_n
    c1 = max(end // chunk_n * chunk_n, c0)
    output = _open_output(out_zarr) if c1 > c0 else None
    head: list[np.ndarray] = []  # rows [first_index, c0)
    leftover: np.ndarray | None = None  # rows [written, written + len) < one chunk, unwritten
    written = position = c0  # rows before ``position`` are cut (once the head is complete)
    band_sums, band_sums_sq = [], []
    start = first_index
    for scene_zarr, tile, origins in parts:
        cut = cut_part(scene_zarr, tile, origins, size, stride)
        patches, start = cut.head, start + len(cut.head)
        band_sums.append(cut.band_sum)
        band_sums_sq.append(cut.band_sum_sq)
        if start - len(patches) < c0:  # the rows before the first whole chunk: the head
            before = c0 - (start - len(patches))
            head.append(patches[:before].copy())
            patches = patches[before:]
        if not len(patches):
            continue
        position += len(patches)
        if leftover is not None and written + chunk_n <= min(c1, position):
            need = chunk_n - len(leftover)  # the chunk spanning the previous tile and this one
            _write_rows(output, written, np.concatenate([leftover, patches[:need]]))
            written, leftover, patches = written + chunk_n, None, patches[need:]
        if leftover is not None:  # still less than a chunk
            patches = np.concatenate([leftover, patches])
            leftover = None
        stop = min(c1, position // chunk_n * chunk_n)
        if stop > written:
            _write_rows(output, written, patches[: stop - written])
            patches, written = patches[stop - written:], stop
        # a copy: a view would keep the whole tile's patches alive
        leftover = patches.copy() if len(patches) else None
    empty = np.zeros((0, len(schema.BANDS), size, size), np.float32)
    head_rows = np.concatenate(head) if head else empty
    tail_rows = leftover if leftover is not None else empty
    if c1 == c0:  # no whole chunk: every row is returned as the head, as by cut_part
        return TilePatches(np.concatenate([head_rows, tail_rows]), empty, (c0, c0),
                           np.stack(band_sums), np.stack(band_sums_sq), first_index)
    return TilePatches(head_rows, tail_rows, (c0, c1), np.stack(band_sums),
                       np.stack(band_sums_sq), first_index)


def _write_rows(output: zarr.Array | None, start: int, rows: np.ndarray) -> None:
    if output is None:
        raise RuntimeError(f"no output chunk to write rows {start}..{start + len(rows)} to")
    write_rows(output, start, rows)


def _open_output(out_zarr: str) -> zarr.Array:
    """Open the output ``x`` of ``out_zarr`` to write (cached while its metadata is unchanged).

    An ``s3://`` output is a fresh version written by one run: cached by its URL.
    """
    if is_remote(out_zarr):
        return _open_output_cached(out_zarr, 0)
    stamp = (Path(out_zarr) / "x" / "zarr.json").stat().st_mtime_ns
    return _open_output_cached(str(out_zarr), stamp)


@functools.lru_cache(maxsize=8)
def _open_output_cached(out_zarr: str, stamp: int) -> zarr.Array:
    del stamp  # part of the cache key only
    if is_remote(out_zarr):
        store = zarr_store(fs_join(out_zarr, "x"), read_only=False)
        return zarr.open_array(store, mode="r+").with_config(X_CONFIG)
    return zarr.open_array(Path(out_zarr) / "x", mode="r+").with_config(X_CONFIG)


TileSums = tuple[np.ndarray, np.ndarray, int]


def write_shared_chunk(
    out_zarr: str, start: int, stop: int, *parts: TilePatches, report: Sequence[int] = (),
) -> tuple[int, list[TileSums]]:
    """Write output rows [start, stop) of ``x`` (one chunk) from tile tasks' head / tail patches.

    ``parts`` are the results of the consecutive tile tasks whose rows overlap the chunk.
    Returns the number of rows written and :func:`tile_sums` of ``parts[i]`` for each ``i`` in
    ``report`` (the tiles whose last shared chunk this is, so the sums need no task of their own).

    Raises:
        RuntimeError: the parts do not cover the rows exactly (a bookkeeping error).

    """
    pieces = []
    for part in parts:
        for first, block in ((part.first, part.head), (part.full_chunks[1], part.tail)):
            lo, hi = max(start, first), min(stop, first + len(block))
            if lo < hi:
                pieces.append(block[lo - first: hi - first])
    rows = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if len(rows) != stop - start:
        raise RuntimeError(f"{out_zarr}: the tile tasks hold {len(rows)} patches for output rows "
                           f"{start}..{stop}, expected {stop - start}")
    write_rows(_open_output(out_zarr), start, rows)
    return stop - start, [tile_sums(parts[i]) for i in report]


def tile_sums(part: TilePatches) -> TileSums:
    """Return the small part of a tile task's result: per-band sums and the rows it wrote."""
    return part.band_sum, part.band_sum_sq, part.full_chunks[1] - part.full_chunks[0]


def shared_chunks(bounds: Sequence[int], chunk_n: int) -> list[tuple[int, int, int, int]]:
    """Output chunks that no single tile task writes: (start row, stop row, first task, last task).

    ``bounds[i]`` is the first output row of tile task ``i``, ``bounds[-1]`` the number of rows.
    A task writes the whole chunks inside its rows; every other chunk (one shared by neighbouring
    tasks, or the short last chunk) is joined from the tasks' head / tail patches. In row order.
    """
    edges = np.asarray(bounds)
    total = int(edges[-1])
    shared = []
    for start in range(0, total, chunk_n):
        stop = min(start + chunk_n, total)
        first = int(np.searchsorted(edges, start, side="right")) - 1
        last = int(np.searchsorted(edges, stop, side="left")) - 1
        if first != last or stop - start != chunk_n:
            shared.append((start, stop, first, last))
    return shared


class _PatchStore:
    """The output zarr group; the driver writes the chunks shared by neighbouring tiles.

    Driver writes run in one background thread (at most :data:`PENDING_WRITES` in flight, which
    bounds the memory they hold), so encoding and writing overlap with receiving or cutting the
    next tile; every write covers whole output chunks, which zarr encodes in parallel.
    """

    def __init__(self, out: Path | str, n: int, n_bands: int, size: int) -> None:
        self.size = size
        self.chunk_n = max(1, OUTPUT_CHUNK_BYTES // (n_bands * size * size * 4))
        group = zarr.open_group(zarr_store(out, read_only=False), mode="w", zarr_format=3)
        self.group = group
        self.x = group.create_array(
            "x", shape=(n, n_bands, size, size), chunks=(self.chunk_n, n_bands, size, size),
            dtype="float32", dimension_names=["patch", "band", "py", "px"],
            filters=[TransposeCodec(order=X_CHUNK_ORDER)], config=X_CONFIG,
        )
        self.n = n
        self.position = 0  # first output row held in the buffer (a chunk boundary)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.total = np.zeros(n_bands)
        self.total_sq = np.zeros(n_bands)
        self.written = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="patch-store")
        self._pending: deque[Future] = deque()

    def write_index(self, chosen: np.ndarray, stride: int) -> None:
        """Create and write ``y``, ``scene`` and ``origin`` of the ``chosen`` rows.

        In the writer thread, while the patches are cut (only ``x`` must exist before).
        """
        def write() -> None:
            n, group = self.n, self.group
            group.create_array("y", shape=(n,), chunks=(max(n, 1),), dtype="uint8",
                               dimension_names=["patch"])[:] = chosen[:, 4].astype(np.uint8)
            group.create_array("scene", shape=(n,), chunks=(max(n, 1),), dtype="int16",
                               dimension_names=["patch"])[:] = chosen[:, 0].astype(np.int16)
            group.create_array("origin", shape=(n, 2), chunks=(max(n, 1), 2), dtype="int32",
                               dimension_names=["patch", "yx"])[:] = chosen[:, 2:4] * stride

        self._pending.append(self._executor.submit(write))  # close() waits for it

    def _write(self, start: int, block: np.ndarray) -> None:
        while len(self._pending) >= PENDING_WRITES:
            self._pending.popleft().result()  # re-raises a failed write
        self._pending.append(
            self._executor.submit(write_rows, self.x, start, block)
        )

    def _append(self, patches: np.ndarray) -> None:
        if len(patches):
            self.buffer.append(patches)
            self.buffered += len(patches)

    def _flush(self, final: bool = False) -> None:
        """Write the buffered rows up to the last chunk boundary (all of them when ``final``).

        Only the pieces that share a chunk are joined; a run of whole chunks inside one piece
        (a tile's patches, in-process) is written as a view, without copying it first.
        """
        full = self.buffered if final else self.buffered // self.chunk_n * self.chunk_n
        if full == 0:
            return
        end = self.position + full
        pieces = deque(self.buffer)
        while self.position < end:
            want = min(self.chunk_n, end - self.position)
            if len(pieces[0]) >= want:  # the longest run of whole chunks (or the end) in it
                take = min(len(pieces[0]), end - self.position)
                if self.position + take != end:
                    take = take // self.chunk_n * self.chunk_n
                block = pieces[0][:take]
                pieces[0] = pieces[0][take:]
            else:  # one chunk joined from several pieces
                parts, got = [], 0
                while got < want:
                    piece = pieces[0][: want - got]
                    parts.append(piece)
                    got += len(piece)
                    pieces[0] = pieces[0][len(piece):]
                    if not len(pieces[0]):
                        pieces.popleft()
                block = np.concatenate(parts)
            if pieces and not len(pieces[0]):
                pieces.popleft()
            self._write(self.position, block)
            self.position += len(block)
            self.written += len(block)
        # the rest (< one chunk) is copied so that it does not pin a whole tile's patches
        self.buffer = [np.ascontiguousarray(p).copy() for p in pieces if len(p)]
        self.buffered = sum(len(p) for p in self.buffer)

    def add_sums(self, band_sum: np.ndarray, band_sum_sq: np.ndarray, written: int) -> None:
        """Count rows written elsewhere (by Dask tasks) and their per-band sums.

        The sums are one tile's (band,) or several tiles' (tile, band), added tile by tile.
        """
        n_bands = len(self.total)
        for tile_sum, tile_sum_sq in zip(np.reshape(band_sum, (-1, n_bands)),
                                         np.reshape(band_sum_sq, (-1, n_bands)), strict=True):
            self.total += tile_sum
            self.total_sq += tile_sum_sq
        self.written += written

    def add(self, part: TilePatches) -> None:
        """Take a tile task's result (in output order)."""
        self.total += part.band_sum
        self.total_sq += part.band_sum_sq
        self._append(part.head)
        c0, c1 = part.full_chunks
        if c1 > c0:
            if self.position + self.buffered != c0:
                raise RuntimeError(f"patch store out of order: at {self.position + self.buffered}"
                                   f", tile wrote from {c0}")
            self._flush(final=True)
            self.written += c1 - c0
            self.position = c1
        self._append(part.tail)
        self._flush()

    def close(self) -> None:
        """Write what is left and wait for every write (re-raising a failed one)."""
        self._flush(final=True)
        while self._pending:
            self._pending.popleft().result()
        self._executor.shutdown()

    def abort(self) -> None:
        """Stop the writer thread after an error (pending writes are dropped or finished)."""
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True)

    def stats(self, size: int) -> tuple[list[float], list[float]]:
        count = max(self.written * size * size, 1)
        mean = self.total / count
        std = np.sqrt(np.maximum(self.total_sq / count - mean * mean, 0.0))
        return mean.tolist(), np.maximum(std, 1e-6).tolist()


def _find_all_candidates(
    client: Any, tiles: list[Tile], scene_paths: list[str], label_paths: list[str], size: int,
    stride: int, min_purity: float, window: int,
) -> np.ndarray:
    """Candidate patches of all tiles: (scene, tile, row, col, class), by (scene, row, col)."""
    jobs = [(scene_paths[t.scene_index], label_paths[t.scene_index], t, size, stride, min_purity)
            for t in tiles]
    # on Dask, a few consecutive tiles per task (a tile's scan costs about a task's overhead),
    # still about two tasks per worker so that no worker waits at the end of the pass
    per_task = 1 if client is None else min(CANDIDATE_BATCH, max(1, len(jobs) // (window // 2)))
    batches = [(jobs[i:i + per_task],) for i in range(0, len(jobs), per_task)]
    results = (rows for batch in _ordered_results(client, find_candidates_batch, batches, window)
               for rows in batch)
    found = []
    for tile_index, rows in enumerate(tqdm(
        results, total=len(jobs), desc=f"candidates {size}px", disable=None,
    )):
        meta = np.column_stack([
            np.full(len(rows), tiles[tile_index].scene_index, np.int32),
            np.full(len(rows), tile_index, np.int32),
        ])
        found.append(np.concatenate([meta, rows], axis=1))
    candidates = np.concatenate(found) if found else np.zeros((0, 5), np.int32)
    # balancing sees candidates in (scene, row, col) order: the choice does not depend on tiling
    return candidates[np.lexsort((candidates[:, 3], candidates[:, 2], candidates[:, 0]))]


def tile_parts(tiles: Sequence[Tile], scene_paths: Sequence[str], chosen: np.ndarray,
               stride: int) -> list[tuple[Tile, int, int]]:
    """Split the chosen rows into the parts cut one at a time: a tile's rows per chunk row.

    ``chosen`` rows (scene, tile, row, col, class) are sorted by (scene, tile, row, col). A part
    holds the rows of one tile whose patches start in one chunk row of the scene's backscatter,
    and its tile is narrowed to them, so a part decodes only its own chunk row when ``stride``
    divides the chunk height: parts are smaller units of work (a better balance between
    workers) at no extra decoding. Every tile is one part when ``stride`` does not divide it.

    Returns:
        (tile narrowed to the part's patches, first row, stop row) per part, in row order.

    """
    tile_ids, starts = np.unique(chosen[:, 1], return_index=True)
    bounds = [*(int(s) for s in starts), len(chosen)]
    chunk_rows_of = {index: _open_array(path, schema.BACKSCATTER_VAR).chunks[1]
                     for index, path in enumerate(scene_paths)}
    parts = []
    for i, tile_index in enumerate(tile_ids):
        tile = tiles[tile_index]
        lo, hi = bounds[i], bounds[i + 1]
        chunk_rows = chunk_rows_of[tile.scene_index]
        cuts: list[int] = []
        if chunk_rows % stride == 0:  # patch rows per chunk row: split where the chunk row changes
            band = chosen[lo:hi, 2] // (chunk_rows // stride)
            cuts = (np.flatnonzero(np.diff(band)) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, hi - lo], strict=True):
            parts.append((narrowed(tile, chosen[lo + a:lo + b, 2:4]), lo + a, lo + b))
    return parts


def narrowed(tile: Tile, origins: np.ndarray) -> Tile:
    """Return ``tile`` cut down to the patch rows and columns of ``origins`` (grid row, col).

    Cutting from the narrowed tile reads only the window its chosen patches cover.
    """
    return Tile(tile.scene_index, int(origins[:, 0].min()), int(origins[:, 0].max()) + 1,
                int(origins[:, 1].min()), int(origins[:, 1].max()) + 1)


def _cut_chosen(
    client: Any, tiles: list[Tile], scene_paths: list[str], chosen: np.ndarray,
    out_zarr: Path | str, size: int, stride: int, window: int, workers: int,
) -> _PatchStore:
    """Cut the chosen patches part by part into the output zarr; return the (closed) store."""
    writer = _PatchStore(out_zarr, len(chosen), len(schema.BANDS), size)
    parts = tile_parts(tiles, scene_paths, chosen, stride)
    bounds = [first for _, first, _ in parts] + [len(chosen)]
    # in-process, the driver's writer thread writes; on Dask, the tasks write the chunks they fill
    cut_jobs = [(scene_paths[tile.scene_index], tile, chosen[first:stop, 2:4], size, stride)
                for tile, first, stop in parts]
    writer.write_index(chosen, stride)  # in the writer thread, while the patches are cut
    try:
        if client is None:
            for part in tqdm(_ordered_results(None, cut_part, cut_jobs, window),
                             total=len(cut_jobs), desc=f"extract {size}px", disable=None):
                writer.add(part)
        else:
            # CUT_TASKS_PER_WORKER tasks per worker, each a run of consecutive parts: fewer
            # tasks, and fewer chunks joined across tasks, than one task per part
            tasks = min(len(cut_jobs), CUT_TASKS_PER_WORKER * workers)
            edges = np.linspace(0, len(cut_jobs), tasks + 1).astype(int)
            group_jobs = [([job[:3] for job in cut_jobs[g0:g1]], size, stride, str(out_zarr),
                           int(bounds[g0]), writer.chunk_n)
                          for g0, g1 in zip(edges[:-1], edges[1:], strict=True)]
            _cut_on_cluster(client, group_jobs, [int(bounds[g]) for g in edges], writer,
                            str(out_zarr), window)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if writer.written != len(chosen):
        raise RuntimeError(f"wrote {writer.written} of {len(chosen)} patches to {out_zarr}")
    return writer


def _cut_on_cluster(
    client: Any, cut_jobs: list[tuple], bounds: Sequence[int], writer: _PatchStore, out_zarr: str,
    window: int,
) -> None:
    """Run the tile tasks and the shared-chunk joins on Dask; only sums come back to the driver.

    ``cut_jobs`` are :func:`cut_and_store_tiles` jobs (a run of consecutive tiles each), and
    ``bounds[i]`` the first output row of job ``i``. Tile tasks write their whole chunks; each
    chunk shared by neighbouring tasks is written by a :func:`write_shared_chunk` task that takes
    those tasks' results as inputs, so the boundary patches move between workers (or stay on
    one) instead of through the driver. The join of a task's last shared chunk also returns that
    task's sums; a task without shared chunks gets a :func:`tile_sums` task. About ``window``
    tasks are unreported at once.
    """
    shared = shared_chunks(bounds, writer.chunk_n)
    last_join = {j: k for k, (_, _, first, last) in enumerate(shared)
                 for j in range(first, last + 1)}  # later chunks overwrite earlier ones
    cuts: dict[int, Any] = {}
    # (future, tiles whose sums it returns, whether it is a join)
    pending: deque[tuple[Any, list[int], bool]] = deque()
    sums: dict[int, TileSums] = {}
    done = 0  # shared chunks submitted

    def collect() -> None:
        future, tiles, join = pending.popleft()
        if not join:
            sums[tiles[0]] = future.result()
            return
        rows, parts = future.result()
        writer.written += rows
        sums.update(zip(tiles, parts, strict=True))

    try:
        for i, job in enumerate(tqdm(cut_jobs, desc=f"extract {writer.size}px", disable=None)):
            cuts[i] = client.submit(cut_and_store_tiles, *job, pure=False)
            if i not in last_join:
                pending.append((client.submit(tile_sums, cuts[i], pure=False), [i], False))
            while done < len(shared) and shared[done][3] <= i:
                start, stop, first, last = shared[done]
                report = [j for j in range(first, last + 1) if last_join[j] == done]
                pending.append((client.submit(
                    write_shared_chunk, out_zarr, start, stop,
                    *(cuts[j] for j in range(first, last + 1)),
                    report=[j - first for j in report], pure=False), report, True))
                done += 1
            needed_from = shared[done][2] if done < len(shared) else i + 1
            for j in [j for j in cuts if j < needed_from]:
                del cuts[j]  # no later join reads it: the worker frees it after its joins
            while pending and i + 1 - len(sums) > window:
                collect()
        while pending:
            collect()
    except BaseException:
        client.cancel([*cuts.values(), *(future for future, _, _ in pending)])
        raise
    for j in range(len(cut_jobs)):  # in tile order: the same float sums as in-process
        writer.add_sums(*sums[j])


def _finish_store(writer: _PatchStore, out_zarr: Path | str, chosen: np.ndarray,
                  candidate_counts: dict[str, int], scene_paths: list[str],
                  label_paths: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Write the dataset attributes (band statistics, counts, settings, sources); summarise."""
    size = settings["patch_size"]
    mean, std = writer.stats(size)
    class_counts = _class_counts(chosen[:, 4])
    scene_ids = [str(_open_group(p).attrs.get("scene_id", Path(p).stem)) for p in scene_paths]
    writer.group.update_attributes({  # one metadata write
        "band_mean": mean,
        "band_std": std,
        "class_counts": class_counts,
        "candidate_counts": candidate_counts,
        "bands": list(schema.BANDS),
        **settings,
        "scenes": scene_ids,
        "scene_paths": scene_paths,
        "label_paths": label_paths,
        "n_patches": int(len(chosen)),
    })
    zarr.consolidate_metadata(zarr_store(out_zarr, read_only=False))
    return {"path": str(out_zarr), "n_patches": int(len(chosen)), "class_counts": class_counts,
            "candidate_counts": candidate_counts, "band_mean": mean, "band_std": std}


def extract_patches(
    scene_zarrs: Sequence[Path | str],
    label_zarrs: Sequence[Path | str],
    out_zarr: Path | str,
    *,
    size: int,
    stride: int | None = None,
    min_purity: float = 0.9,
    balance: Literal["none", "undersample"] = "undersample",
    max_per_class: int = 4000,
    class_scheme: str = "five_class",
    seed: int = 42,
    dataset_version: str = "v1",
    tile_px: int = 1024,
    client: Any = None,
) -> dict[str, Any]:
    """Extract ``size`` x ``size`` patches of several scenes into one zarr group ``out_zarr``.

    Args:
        scene_zarrs: harmonised scenes (contract in :mod:`tasks.polar.schema`); local paths or
            ``s3://`` URLs, opened by the tasks themselves (workers need no shared folder).
        label_zarrs: their label rasters, same order and grids.
        out_zarr: the zarr group to write (replaced if present); may be an ``s3://`` URL.
        size: patch edge in pixels (20 or 32 at 40 m).
        stride: step between patch origins in pixels (default: ``size``).
        min_purity: minimum fraction of the patch's pixels carrying its majority label.
        balance: ``undersample`` cuts every class to the rarest one; ``none`` keeps all.
        max_per_class: cap per class of ``class_scheme`` (after balancing).
        class_scheme: classes used for balancing (``five_class`` or ``binary``); ``y`` always
            holds five-class codes.
        seed: seed of the random class balancing.
        dataset_version: recorded in the attributes.
        tile_px: edge in pixels of the tiles processed per task (bounds memory per task).
        client: a ``distributed.Client`` to run tiles on, or ``None`` for in-process.

    Returns:
        Summary with the output path, number of patches and per-class counts.

    Raises:
        ValueError: mismatched inputs or no patch passes the filters.

    """
    if len(scene_zarrs) != len(label_zarrs) or not scene_zarrs:
        raise ValueError(
            f"need one label raster per scene and at least one scene; got {len(scene_zarrs)} "
            f"scenes and {len(label_zarrs)} label rasters"
        )
    stride = stride or size
    scene_paths = [_location(p) for p in scene_zarrs]
    label_paths = [_location(p) for p in label_zarrs]
    tiles: list[Tile] = []
    for index, (scene_path, label_path) in enumerate(zip(scene_paths, label_paths, strict=True)):
        shape = check_scene_pair(scene_path, label_path)
        tiles += plan_tiles(index, shape, size, stride, tile_px)
    workers = len(client.scheduler_info()["workers"]) if client is not None else 1
    window = TASKS_IN_FLIGHT_PER_WORKER * workers
    log.info("patches %dpx: %d tiles over %d scenes", size, len(tiles), len(scene_paths))

    candidates = _find_all_candidates(client, tiles, scene_paths, label_paths, size, stride,
                                      min_purity, window)
    candidate_counts = _class_counts(candidates[:, 4])
    chosen = balance_candidates(candidates, balance=balance, max_per_class=max_per_class,
                                class_scheme=class_scheme, seed=seed)
    if len(chosen) == 0:
        raise ValueError(
            f"no {size}x{size} patch of {scene_paths} is free of land / invalid pixels with a "
            f"label purity >= {min_purity}; lower patches.min_purity or check the label rasters"
        )
    log.info("patches %dpx: %d candidates, %d chosen (%s)", size, len(candidates), len(chosen),
             balance)

    writer = _cut_chosen(client, tiles, scene_paths, chosen, out_zarr, size, stride, window,
                         workers)
    settings = {
        "patch_size": size,
        "stride": stride,
        "min_purity": min_purity,
        "balance": balance,
        "balance_scheme": class_scheme,
        "max_per_class": max_per_class,
        "seed": seed,
        "dataset_version": dataset_version,
    }
    return _finish_store(writer, out_zarr, chosen, candidate_counts, scene_paths,
                         label_paths, settings)


def _location(path: Path | str) -> str:
    """Return a store location as the tasks get it: an ``s3://`` URL as is, a path normalised."""
    return str(path) if is_remote(str(path)) else str(Path(path))


def _class_counts(codes: np.ndarray) -> dict[str, int]:
    return {c.name: int((codes == c.code).sum()) for c in ice.ice_classes()}


def patches_dir(cfg: PolarConfig, dataset_version: str | None = None) -> Path:
    """Folder of a training-set version: ``{root}/polar/patches/{dataset_version}``."""
    return stage_dir(cfg.resolved_root(), "polar", "patches",
                     dataset_version or cfg.patches.dataset_version)


def dataset_path(cfg: PolarConfig, size: int | None = None, version: str | None = None) -> Path:
    """Path of ``patches_{size}.zarr`` of a training-set version (defaults from ``cfg.train``)."""
    return patches_dir(cfg, version) / f"patches_{size or cfg.train.patch_size}.zarr"


def run_patches(
    cfg: PolarConfig, scene_zarrs: Sequence[Path | str], label_zarrs: Sequence[Path | str]
) -> dict[str, Any]:
    """Build training set ``cfg.patches.dataset_version`` for every size in ``cfg.patches.sizes``.

    Writes ``{root}/polar/patches/{dataset_version}/patches_{size}.zarr`` + ``manifest.json``
    atomically: re-running the same version replaces it in one rename. On an ``s3://`` data root
    the tasks write the zarr stores into a new version on S3 and the driver publishes it by its
    pointer last (:func:`tasks.storage.atomic_s3_version`); scenes and labels may then be
    ``s3://`` URLs too, and nothing passes through a local folder.

    Returns:
        ``{"dataset_dir", "datasets": {size: path}, "n_patches": {size: n},
        "class_counts": {size: {class: n}}}``; on S3 the paths are URLs of the published version.

    """
    pc = cfg.patches
    remote = cfg.is_remote_root()
    out_dir: Path | str = (
        stage_location(cfg.storage_root(), "polar", "patches", pc.dataset_version) if remote
        else patches_dir(cfg))
    summaries: dict[int, dict[str, Any]] = {}
    output = atomic_s3_version(str(out_dir)) if remote else atomic_dir(out_dir)
    with dask_client(cfg.dask) as client, output as tmp:
        for size in pc.sizes:
            summaries[size] = extract_patches(
                scene_zarrs, label_zarrs, _child(tmp, f"patches_{size}.zarr"), size=size,
                stride=pc.stride, min_purity=pc.min_purity, balance=pc.balance,
                max_per_class=pc.max_per_class, class_scheme=pc.class_scheme,
                seed=cfg.seed, dataset_version=pc.dataset_version, tile_px=pc.tile_px,
                client=client,
            )
        manifest: dict[str, Any] = {
            "stage": "patches",
            "inputs": {"scenes": [str(p) for p in scene_zarrs],
                       "labels": [str(p) for p in label_zarrs]},
            "config_hash": config_hash(cfg.patches),
            "counts": {f"patches_{s}": v["n_patches"] for s, v in summaries.items()},
            "extra": {"class_counts": {str(s): v["class_counts"] for s, v in summaries.items()},
                      "dataset_version": pc.dataset_version},
        }
        if isinstance(tmp, Path):
            write_manifest(tmp, **manifest)
        else:
            write_s3_manifest(tmp, **manifest)
            out_dir = tmp  # the version this run publishes
    return {
        "dataset_dir": str(out_dir),
        "datasets": {s: str(_child(out_dir, f"patches_{s}.zarr")) for s in summaries},
        "n_patches": {s: v["n_patches"] for s, v in summaries.items()},
        "class_counts": {s: v["class_counts"] for s, v in summaries.items()},
    }


def _child(folder: Path | str, name: str) -> Path | str:
    """Return ``folder / name`` (a local Path) or ``folder/name`` (an ``s3://`` URL)."""
    return fs_join(folder, name) if isinstance(folder, str) else folder / name
