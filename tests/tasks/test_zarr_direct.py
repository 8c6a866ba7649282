"""Direct local chunk reads (tasks.zarr_direct): the same values as zarr, or zarr itself."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, TransposeCodec, ZstdCodec

import tasks.zarr_direct as direct
from tasks.zarr_direct import CorruptChunkError, read_window

SELECTIONS = [
    (slice(None), slice(None), slice(None)),
    (slice(0, 2), slice(3, 61), slice(5, 44)),  # edges inside chunks
    (slice(1, 3), slice(16, 32), slice(0, 16)),  # exactly one chunk
    (slice(2, 3), slice(60, 70), slice(40, 50)),  # the padded edge chunk, clipped by the shape
    (slice(0, 3), slice(10, 10), slice(None)),  # empty
    (slice(None), slice(-20, None), slice(-7, -1)),  # negative bounds
]


def _array(tmp_path: Path, dtype: str, **kwargs: Any) -> tuple[zarr.Array, np.ndarray]:
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(3, 61, 45)) * 50).astype(dtype)
    if values.dtype.kind == "f":
        values[0, :5, :5] = np.nan
    array = zarr.create_array(tmp_path / "a.zarr", shape=values.shape, chunks=(2, 16, 16),
                              dtype=dtype, fill_value=7, **kwargs)
    array[:] = values
    array[:, 32:48, 16:32] = 7  # an all-fill-value chunk row: not stored
    values[:, 32:48, 16:32] = 7
    return zarr.open_array(tmp_path / "a.zarr", mode="r"), values


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int16", "float64"])
@pytest.mark.parametrize("compressors", ["auto", None])
@pytest.mark.parametrize("filters", [None, [TransposeCodec(order=(1, 2, 0))]])
def test_direct_read_equals_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str,
                                 compressors: Any, filters: Any) -> None:
    array, values = _array(tmp_path, dtype, compressors=compressors, filters=filters)
    assert direct._layout(array) is not None  # bytes (+ zstd): read directly
    missing = tmp_path / "a.zarr" / "c" / "0" / "2" / "1"
    assert not missing.exists()  # the fill-value chunk is not stored: read as the fill value
    decoded: list[int] = []
    original = direct._ZSTD.decode

    def counting(raw: bytes) -> bytes:
        decoded.append(len(raw))
        return original(raw)

    monkeypatch.setattr(direct._ZSTD, "decode", counting)
    for selection in SELECTIONS:
        got = read_window(array, selection)
        np.testing.assert_array_equal(got, values[selection])
        assert got.dtype == values.dtype and got.shape == values[selection].shape
    assert bool(decoded) == (compressors == "auto")


@pytest.mark.parametrize("kwargs", [
    {"compressors": [BloscCodec(cname="lz4")]},
    {"shards": (2, 32, 32)},
    {"chunk_key_encoding": {"name": "v2", "separator": "."}},
])
def test_other_layouts_are_read_by_zarr_with_the_same_values(
        tmp_path: Path, kwargs: dict[str, Any]) -> None:
    array, values = _array(tmp_path, "float32", **kwargs)
    expected_direct = "chunk_key_encoding" in kwargs  # v2 keys: still plain bytes + zstd
    assert (direct._layout(array) is not None) == expected_direct
    for selection in SELECTIONS:
        np.testing.assert_array_equal(read_window(array, selection), values[selection])


def test_stepped_or_short_selections_are_read_by_zarr(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    array, values = _array(tmp_path, "float32")
    monkeypatch.setattr(direct, "_ZSTD", None)  # the direct path would fail
    np.testing.assert_array_equal(read_window(array, (slice(None), slice(0, 40, 3), slice(None))),
                                  values[:, 0:40:3])
    np.testing.assert_array_equal(read_window(array, (slice(1, 2),)), values[1:2])


def test_every_chunk_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    array, values = _array(tmp_path, "uint8")
    opened: list[str] = []
    read_bytes = Path.read_bytes

    def spy(path: Path) -> bytes:
        opened.append(str(path.relative_to(tmp_path / "a.zarr")))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", spy)
    read_window(array, (slice(1, 3), slice(15, 33), slice(0, 17)))
    # band chunks 0 and 1, row chunks 0..2, column chunks 0..1, each once
    assert sorted(opened) == sorted(f"c/{b}/{r}/{c}" for b, r, c in
                                    itertools.product((0, 1), (0, 1, 2), (0, 1)))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda raw: raw[: len(raw) // 2], r"not a zstd frame"),
    (lambda raw: __import__("numcodecs").Zstd().encode(b"\0" * 10), r"decodes to 10 bytes"),
])
def test_a_damaged_chunk_is_a_clear_error(tmp_path: Path, damage: object, message: str) -> None:
    array, _ = _array(tmp_path, "float32")
    chunk = tmp_path / "a.zarr" / "c" / "1" / "1" / "0"
    chunk.write_bytes(damage(chunk.read_bytes()))  # type: ignore[operator]
    with pytest.raises(CorruptChunkError, match=message) as info:
        read_window(array, (slice(None), slice(None), slice(None)))
    assert str(chunk) in str(info.value)
    assert str(info.value).endswith("the zarr array is damaged: re-run the stage that wrote it")
    # a window that does not touch the damaged chunk still reads
    np.testing.assert_array_equal(read_window(array, (slice(0, 2), slice(0, 16), slice(None))),
                                  np.asarray(array[0:2, 0:16]))


def _rows_array(path: Path, n: int = 10, **kwargs: Any) -> zarr.Array:
    return zarr.create_array(path, shape=(n, 3, 4, 5), chunks=(4, 3, 4, 5), dtype="float32",
                             fill_value=-1.5, filters=[TransposeCodec(order=(1, 0, 2, 3))],
                             config={"write_empty_chunks": True}, **kwargs)


def _chunk_files(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.name != "zarr.json"}


@pytest.mark.parametrize(("start", "n"), [(0, 10), (4, 6), (8, 2), (0, 4)])
def test_write_rows_writes_the_bytes_zarr_writes(tmp_path: Path, start: int, n: int) -> None:
    rows = np.random.default_rng(1).normal(size=(n, 3, 4, 5)).astype(np.float32)
    mine, theirs = _rows_array(tmp_path / "mine.zarr"), _rows_array(tmp_path / "theirs.zarr")
    assert direct._layout(mine) is not None
    direct.write_rows(mine, start, rows)
    theirs[start:start + n] = rows
    files = _chunk_files(tmp_path / "mine.zarr")
    assert files == _chunk_files(tmp_path / "theirs.zarr")  # same chunks, same bytes
    assert len(files) == -(-n // 4)  # the short last chunk padded with the fill value
    assert not list((tmp_path / "mine.zarr").rglob("*.partial"))
    np.testing.assert_array_equal(np.asarray(mine[start:start + n]), rows)


@pytest.mark.parametrize("case", ["inside a chunk", "short chunk before the end",
                                  "empty chunks skipped", "another chunked axis", "remote"])
def test_write_rows_leaves_other_writes_to_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                case: str) -> None:
    array = _rows_array(tmp_path / "a.zarr", n=12)
    start, n = {"inside a chunk": (2, 4), "short chunk before the end": (4, 3)}.get(case, (4, 4))
    if case == "empty chunks skipped":
        array = array.with_config({"write_empty_chunks": False})
    if case == "another chunked axis":
        array = zarr.create_array(tmp_path / "b.zarr", shape=(12, 3, 4, 5), chunks=(4, 1, 4, 5),
                                  dtype="float32", fill_value=-1.5)
    if case == "remote":
        monkeypatch.setattr(direct, "_layout", lambda array: None)
    monkeypatch.setattr(direct, "_encoder", None)  # the direct path would fail
    rows = np.full((n, 3, 4, 5), -1.5 if case == "empty chunks skipped" else 2.0, np.float32)
    direct.write_rows(array, start, rows)
    np.testing.assert_array_equal(np.asarray(array[start:start + n]), rows)
    if case == "empty chunks skipped":  # zarr's own rule: an all-fill-value chunk is not stored
        assert not (tmp_path / "a.zarr" / "c" / "1").exists()


def test_write_rows_failure_leaves_the_previous_chunk(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    array = _rows_array(tmp_path / "a.zarr")
    old = np.ones((4, 3, 4, 5), np.float32)
    direct.write_rows(array, 0, old)
    before = _chunk_files(tmp_path / "a.zarr")

    real_write = Path.write_bytes

    def broken(self: Path, data: bytes) -> int:
        real_write(self, data[:5])  # half a file on disk, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        direct.write_rows(array, 0, old * 2)
    monkeypatch.undo()
    assert _chunk_files(tmp_path / "a.zarr") == before  # no partial file, the chunk unchanged
    np.testing.assert_array_equal(np.asarray(array[0:4]), old)


def _direct_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the chunks :func:`write_rows` encodes itself (not through zarr)."""
    encoded: list[int] = []
    real = direct._Layout.encode

    def counting(self: Any, chunk: np.ndarray) -> bytes:
        encoded.append(len(chunk))
        return real(self, chunk)

    monkeypatch.setattr(direct._Layout, "encode", counting)
    return encoded


@pytest.mark.parametrize(("kwargs", "dtype"), [
    ({"filters": [TransposeCodec(order=(1, 0, 2, 3))]}, "float32"),
    ({}, "int16"),  # no transpose; an integer fill value pads the short chunk
    ({"compressors": [ZstdCodec(level=7, checksum=True)]}, "float32"),
    ({"compressors": None}, "uint8"),
])
@pytest.mark.parametrize(("start", "n"), [(0, 10), (8, 2)])
def test_write_rows_encodes_whole_chunks_itself_with_zarrs_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], dtype: str,
        start: int, n: int) -> None:
    def make(path: Path) -> zarr.Array:
        return zarr.create_array(path, shape=(10, 3, 4, 5), chunks=(4, 3, 4, 5), dtype=dtype,
                                 fill_value=3, config={"write_empty_chunks": True}, **kwargs)

    # float64 rows, cast to the array's dtype as zarr casts them
    rows = np.abs(np.random.default_rng(2).normal(size=(n, 3, 4, 5)) * 20) % 100
    mine, theirs = make(tmp_path / "mine.zarr"), make(tmp_path / "theirs.zarr")
    monkeypatch.setattr(direct, "_ENCODERS", {})  # encoders made here, with these settings
    encoded = _direct_encodes(monkeypatch)
    direct.write_rows(mine, start, rows)
    assert encoded == [4] * (n // 4) + ([4] if n % 4 else [])  # every chunk here, padded
    theirs[start:start + n] = rows
    assert _chunk_files(tmp_path / "mine.zarr") == _chunk_files(tmp_path / "theirs.zarr")


@pytest.mark.parametrize("kwargs", [
    {"serializer": BytesCodec(endian="big")},  # big-endian int16 / float32
    {"compressors": [ZstdCodec(), Crc32cCodec()]},  # a second bytes codec
    {"zarr_format": 2},
])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_layouts_this_module_does_not_handle_go_through_zarr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any],
        dtype: str) -> None:
    array, values = _array(tmp_path, dtype, **kwargs)
    assert direct._layout(array) is None
    for selection in SELECTIONS:
        np.testing.assert_array_equal(read_window(array, selection), values[selection])
    encoded = _direct_encodes(monkeypatch)
    writable = zarr.open_array(tmp_path / "a.zarr", mode="r+")
    direct.write_rows(writable, 0, np.ones((2, 61, 45), dtype))
    assert encoded == [] and (np.asarray(writable[0:2]) == 1).all()


def test_a_memory_store_and_a_single_element_go_through_the_right_path(tmp_path: Path) -> None:
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(6, 6), chunks=(3, 3),
                               dtype="int16", fill_value=0)
    memory[:] = np.arange(36).reshape(6, 6)
    assert direct._layout(memory) is None
    np.testing.assert_array_equal(read_window(memory, (slice(1, 5), slice(2, 3))),
                                  np.arange(36).reshape(6, 6)[1:5, 2:3])
    array, values = _array(tmp_path, "float32")
    one = read_window(array, (slice(2, 3), slice(40, 41), slice(44, 45)))  # one element, direct
    assert one.shape == (1, 1, 1) and one[0, 0, 0] == values[2, 40, 44]


def test_write_rows_failure_before_the_file_exists_raises_that_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    array = _rows_array(tmp_path / "a.zarr")

    def refused(self: Path, data: bytes) -> int:
        raise PermissionError(f"{self}: read-only file system")

    monkeypatch.setattr(Path, "write_bytes", refused)
    with pytest.raises(PermissionError, match="read-only file system"):
        direct.write_rows(array, 0, np.ones((4, 3, 4, 5), np.float32))


@pytest.mark.parametrize(("start", "rows"), [
    (0, np.ones((4, 3, 4, 6), np.float32)),  # rows of another shape
    (8, np.ones((4, 3, 4, 5), np.float32)),  # rows past the end of the array
])
def test_write_rows_leaves_odd_rows_to_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            start: int, rows: np.ndarray) -> None:
    """Rows that are not whole chunks of the array: zarr decides (the same outcome as zarr's)."""
    mine, theirs = _rows_array(tmp_path / "mine.zarr"), _rows_array(tmp_path / "theirs.zarr")
    encoded = _direct_encodes(monkeypatch)
    outcomes = []
    for write in (lambda: direct.write_rows(mine, start, rows),
                  lambda: theirs.__setitem__(slice(start, start + len(rows)), rows)):
        try:
            write()
            outcomes.append("written")
        except (ValueError, IndexError) as err:
            outcomes.append(type(err).__name__)
    assert encoded == [] and outcomes[0] == outcomes[1]
    assert _chunk_files(tmp_path / "mine.zarr") == _chunk_files(tmp_path / "theirs.zarr")


def test_encoders_carry_the_arrays_zstd_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "_ENCODERS", {})
    encoder = direct._encoder(7, True)
    assert (encoder.level, encoder.checksum) == (7, True)
    assert direct._encoder(7, True) is encoder  # made once per setting
    assert (direct._encoder(0, False).level, direct._encoder(0, False).checksum) == (0, False)
