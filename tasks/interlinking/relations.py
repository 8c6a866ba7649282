"""Topological relations from DE-9IM matrices, vectorised.

The relation table (name, GeoSPARQL predicate, DE-9IM patterns with optional dimension conditions)
is data: ``relations.yaml`` beside this module. :func:`relation_masks` turns an array of DE-9IM
strings (``shapely.relate`` output) and the topological dimensions of both sides into one
``uint16`` bit mask per pair, bit ``i`` set when relation ``RELATIONS[i]`` holds, with numpy
comparisons over an ``(n, 9)`` character array (no per-pair Python).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from tasks.linked_data.namespaces import expand_curie

DimsCondition = Literal["lt", "gt", "line_line", "same_not_line"]
TABLE = Path(__file__).with_name("relations.yaml")
_DIMS: tuple[str, ...] = ("lt", "gt", "line_line", "same_not_line")
_F, _T_ANY = ord("F"), ord("*")


@dataclass(frozen=True)
class RelationPattern:
    """One DE-9IM pattern (9 characters of ``T F * 0 1 2``) and the dimensions it applies to."""

    pattern: str
    dims: DimsCondition | None = None


@dataclass(frozen=True)
class Relation:
    """A named topological relation, its predicate IRI and the patterns (any one suffices)."""

    name: str
    predicate: str
    patterns: tuple[RelationPattern, ...]


def _parse_pattern(name: str, entry: object) -> RelationPattern:
    if isinstance(entry, str):
        entry = {"pattern": entry}
    if not isinstance(entry, dict) or "pattern" not in entry:
        raise ValueError(f"{TABLE}: relation {name!r}: pattern {entry!r} is not a string or a "
                         "{pattern, dims} mapping")
    pattern = str(entry["pattern"])
    if len(pattern) != 9 or set(pattern) - set("TF*012"):
        raise ValueError(f"{TABLE}: relation {name!r}: DE-9IM pattern {pattern!r} must be 9 "
                         "characters of T F * 0 1 2")
    dims = entry.get("dims")
    if dims is not None and dims not in _DIMS:
        raise ValueError(f"{TABLE}: relation {name!r}: dims {dims!r}; allowed: {list(_DIMS)}")
    return RelationPattern(pattern, dims)


@cache
def load_relations(path: Path = TABLE) -> tuple[Relation, ...]:
    """Read the relation table (cached); bit ``i`` of a mask is relation ``i`` of this tuple."""
    raw = yaml.safe_load(Path(path).read_text())["relations"]
    relations = tuple(
        Relation(name, expand_curie(spec["predicate"]),
                 tuple(_parse_pattern(name, p) for p in spec["patterns"]))
        for name, spec in raw.items()
    )
    if len(relations) > 16:
        raise ValueError(f"{path}: {len(relations)} relations do not fit a uint16 mask (max 16)")
    return relations


RELATIONS: tuple[Relation, ...] = load_relations()
RELATION_NAMES: tuple[str, ...] = tuple(r.name for r in RELATIONS)


def relation_bit(name: str) -> int:
    """Return the mask bit (``1 << i``) of relation ``name``."""
    if name not in RELATION_NAMES:
        raise ValueError(f"unknown relation {name!r}; allowed: {list(RELATION_NAMES)}")
    return 1 << RELATION_NAMES.index(name)


def de9im_chars(de9im: np.ndarray) -> np.ndarray:
    """Return DE-9IM strings (object/str/bytes array of length n) as an ``(n, 9)`` uint8 array."""
    codes = np.ascontiguousarray(np.asarray(de9im).astype("S9"))
    return codes.view(np.uint8).reshape(-1, 9)


def _pattern_mask(chars: np.ndarray, pattern: str) -> np.ndarray:
    hold = np.ones(chars.shape[0], dtype=bool)
    for position, want in enumerate(pattern):
        if want == "*":
            continue
        column = chars[:, position]
        if want == "T":
            hold &= column != _F
        else:
            hold &= column == ord(want)
    return hold


def _dims_mask(condition: DimsCondition, dim_a: np.ndarray, dim_b: np.ndarray) -> np.ndarray:
    if condition == "lt":
        return dim_a < dim_b
    if condition == "gt":
        return dim_a > dim_b
    if condition == "line_line":
        return (dim_a == 1) & (dim_b == 1)
    return (dim_a == dim_b) & (dim_a != 1)


def _masks_of_chars(chars: np.ndarray, dim_a: np.ndarray, dim_b: np.ndarray) -> np.ndarray:
    masks = np.zeros(chars.shape[0], dtype=np.uint16)
    for bit, relation in enumerate(RELATIONS):
        hold = np.zeros(chars.shape[0], dtype=bool)
        for entry in relation.patterns:
            match = _pattern_mask(chars, entry.pattern)
            if entry.dims is not None:
                match &= _dims_mask(entry.dims, dim_a, dim_b)
            hold |= match
        masks |= hold.astype(np.uint16) << np.uint16(bit)
    return masks


_SYMBOLS = np.frombuffer(b"F012", dtype=np.uint8)
_SYMBOL_INDEX = np.full(256, 255, dtype=np.uint8)
_SYMBOL_INDEX[_SYMBOLS] = np.arange(4, dtype=np.uint8)
_PLACE = (4 ** np.arange(9)).astype(np.int32)  # cell k of the matrix is base-4 digit k


@cache
def _mask_table() -> np.ndarray:
    """Masks of every DE-9IM matrix (4^9 codes) for every (dim a, dim b) in 0..2: (9, 4^9)."""
    codes = np.arange(4**9, dtype=np.int32)
    chars = _SYMBOLS[(codes[:, None] // _PLACE[None, :]) % 4]
    table = np.empty((9, codes.size), dtype=np.uint16)
    for dim_a in range(3):
        for dim_b in range(3):
            table[dim_a * 3 + dim_b] = _masks_of_chars(
                chars, np.full(codes.size, dim_a), np.full(codes.size, dim_b)
            )
    return table


def relation_masks(de9im: np.ndarray, dim_a: np.ndarray, dim_b: np.ndarray) -> np.ndarray:
    """Return, per pair, the bit mask of the relations that hold.

    Every matrix is encoded as a base-4 number (F, 0, 1, 2 per cell) and looked up in a table of
    the masks of all 4^9 matrices x 9 dimension pairs, built once from ``relations.yaml``.

    Args:
        de9im: ``(n,)`` DE-9IM matrices of (a, b) as returned by ``shapely.relate(a, b)``.
        dim_a: ``(n,)`` topological dimension of a (0 point, 1 line, 2 polygon;
            ``shapely.get_dimensions``).
        dim_b: ``(n,)`` topological dimension of b.

    Returns:
        ``(n,)`` uint16; bit ``i`` set when ``RELATIONS[i]`` holds for a relation b.

    Raises:
        ValueError: a matrix holds a character other than F 0 1 2, or a dimension is not 0..2.

    """
    chars = de9im_chars(de9im)
    codes = np.zeros(chars.shape[0], dtype=np.int32)
    seen = np.zeros(chars.shape[0], dtype=np.uint8)
    for position in range(9):
        symbol = _SYMBOL_INDEX[chars[:, position]]
        seen |= symbol
        codes += symbol.astype(np.int32) << (2 * position)
    if seen.size and int(seen.max()) > 3:
        bad = np.asarray(de9im)[np.flatnonzero(seen > 3)[:3]]
        raise ValueError(f"DE-9IM matrices {list(bad)} hold characters other than F 0 1 2")
    dim_a = np.asarray(dim_a, dtype=np.int64)
    dim_b = np.asarray(dim_b, dtype=np.int64)
    if dim_a.size and (dim_a.min() < 0 or dim_a.max() > 2 or dim_b.min() < 0 or dim_b.max() > 2):
        raise ValueError("topological dimensions must be 0, 1 or 2 (empty geometries give -1; "
                         "drop them before relating)")
    return _mask_table()[dim_a * 3 + dim_b, codes]


def relation_names(mask: int) -> list[str]:
    """Return the names of the relations set in one mask (for reports and tests)."""
    return [name for i, name in enumerate(RELATION_NAMES) if int(mask) >> i & 1]
