"""Checksums as catalogues give them: OData ``Checksum`` entries and STAC ``file:checksum``.

CDSE OData lists ``{"Algorithm": "MD5" | "BLAKE3", "Value": hex}``; STAC's file extension gives a
multihash (hex of varint code, varint length, digest), e.g. ``1620...`` = SHA3-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.errors import EeflowError, ErrorFamily

#: multihash code -> algorithm name (https://github.com/multiformats/multicodec).
MULTIHASH_CODES = {
    0x11: "sha1",
    0x12: "sha256",
    0x13: "sha512",
    0x14: "sha3_512",
    0x15: "sha3_384",
    0x16: "sha3_256",
    0x17: "sha3_224",
    0x1E: "blake3",
    0xD5: "md5",
    0xB220: "blake2b_256",
    0xB240: "blake2b_512",
}

#: OData ``Algorithm`` spellings -> algorithm name.
ODATA_ALGORITHMS = {"MD5": "md5", "BLAKE3": "blake3", "SHA256": "sha256", "SHA-256": "sha256",
                    "SHA1": "sha1", "SHA512": "sha512", "SHA3-256": "sha3_256"}

#: Preference when several are given (the cheapest strong one first).
PREFERENCE = ("blake3", "sha256", "sha3_256", "blake2b_256", "sha512", "md5", "sha1")


class ChecksumError(EeflowError, ValueError):
    """A downloaded file does not match the catalogue's checksum (the file is removed)."""

    family = ErrorFamily.INPUT


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def parse_multihash(text: str) -> tuple[str, str] | None:
    """Return ``(algorithm, hex digest)`` of a hex multihash, or None for an unknown code."""
    try:
        raw = bytes.fromhex(text)
        code, pos = _varint(raw, 0)
        length, pos = _varint(raw, pos)
    except ValueError:
        return None
    digest = raw[pos:]
    if code not in MULTIHASH_CODES or len(digest) != length:
        return None
    return MULTIHASH_CODES[code], digest.hex()


def odata_checksums(entries: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    """Turn an OData ``Checksum`` list into ``{algorithm: hex}`` (unknown algorithms dropped)."""
    out = {}
    for entry in entries or []:
        algorithm = ODATA_ALGORITHMS.get(str(entry.get("Algorithm", "")).upper())
        value = str(entry.get("Value") or "").strip().lower()
        if algorithm and value:
            out[algorithm] = value
    return out


def new_hasher(algorithm: str) -> Any:
    """Return an incremental hasher for ``algorithm`` (BLAKE3 through the ``blake3`` package)."""
    if algorithm == "blake3":
        try:
            from blake3 import blake3
        except ImportError:
            raise ChecksumError(
                "the catalogue gives a BLAKE3 checksum but the 'blake3' package is not "
                "installed; pip install blake3"
            ) from None
        return blake3()
    if algorithm == "blake2b_256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


def pick_algorithm(checksums: dict[str, str]) -> str | None:
    """Return the algorithm to verify with (see :data:`PREFERENCE`), or None when none is usable."""
    for algorithm in PREFERENCE:
        if algorithm in checksums:
            if algorithm == "blake3":
                try:
                    import blake3  # noqa: F401
                except ImportError:
                    continue
            return algorithm
    return None


def file_digest(path: Path, algorithm: str, chunk_bytes: int = 1 << 20) -> str:
    """Hex digest of a file."""
    hasher = new_hasher(algorithm)
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            hasher.update(chunk)
    return str(hasher.hexdigest())
