"""Term encoding: input columns -> RDF terms (code-list IRIs, dates, numbers, auto literals).

Rows whose value does not convert are marked rejected, with the reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.mapping import Mapping, MappingError, PropertySpec
from tasks.linked_data.namespaces import XSD, concept_iri
from tasks.linked_data.terms import TermArray
from tasks.linked_data.vocabulary import code_list


def column_values(prop: PropertySpec, table: pa.Table, where: str) -> pa.Array | None:
    """Return the column ``prop`` reads (first present one), or None if it is optional and absent.

    Raises :class:`MappingError` naming the mapping, the column and the columns that exist.
    """
    present = [c for c in prop.columns() if c in table.column_names]
    if not present:
        if prop.optional:
            return None
        raise MappingError(
            f"{where}: property {prop.predicate} reads column {prop.column!r}"
            + (f" (or {prop.fallback_columns})" if prop.fallback_columns else "")
            + f", which the input does not have; columns: {table.column_names}"
        )
    arrays = [table.column(c).combine_chunks() for c in present]
    if len(arrays) == 1:
        return arrays[0]
    return pc.coalesce(*[pc.cast(a, pa.string()) for a in arrays])


def _auto_literals(values: pa.Array) -> list[TermArray]:
    """Split JSON-encoded values into one literal column per XSD datatype."""
    decoded = [None if v is None else json.loads(v) for v in values.to_pylist()]
    groups: dict[str, list[str | None]] = {}
    for index, value in enumerate(decoded):
        if value is None:
            continue
        if isinstance(value, bool):
            datatype, lexical = XSD + "boolean", "true" if value else "false"
        elif isinstance(value, int):
            datatype, lexical = XSD + "integer", str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                continue
            datatype, lexical = XSD + "double", repr(value)
        elif isinstance(value, str):
            datatype, lexical = XSD + "string", value
        else:
            datatype, lexical = XSD + "string", json.dumps(value, sort_keys=True)
        groups.setdefault(datatype, [None] * len(decoded))[index] = lexical
    return [TermArray.literals(column, datatype) for datatype, column in groups.items()]


@dataclass
class PreparedProperty:
    """A predicate and its converted object columns (empty for constant iri/value properties)."""

    predicate: str
    objects: list[TermArray]


def convert_values(
    prop: PropertySpec,
    values: pa.Array,
    mapping: Mapping,
    base: str,
    reject: np.ndarray,
    reasons: list[str | None],
    stats: ExportStats,
) -> list[TermArray]:
    """Turn a column into terms; mark rows whose value does not convert in ``reject``."""
    name = prop.column or ""

    def _fail(mask: np.ndarray, why: Any) -> None:
        for index in np.flatnonzero(mask & ~reject):
            reasons[index] = why(index) if callable(why) else why
        reject[:] |= mask

    if prop.concept is not None:
        strings = pc.cast(values, pa.string())
        allowed = code_list(prop.concept)
        missing = strings.is_null().to_numpy(zero_copy_only=False)
        unknown = ~pc.fill_null(pc.is_in(strings, pa.array(allowed)), True).to_numpy(
            zero_copy_only=False
        )
        _fail(missing, f"{name} is empty")
        if unknown.any():
            py = strings.to_pylist()
            _fail(
                unknown,
                lambda i: f"{name} {py[i]!r} is not in code list {prop.concept} {list(allowed)}",
            )
        prefix = concept_iri(base, prop.concept, "")
        return [TermArray.iris(pc.binary_join_element_wise(prefix, strings, ""))]
    if prop.date_format is not None:
        text = pd.Series(pc.cast(values, pa.string()).to_pylist(), dtype="object")
        parsed = pd.to_datetime(text, format=prop.date_format, errors="coerce")
        bad = (parsed.isna() & text.notna()).to_numpy()
        missing = text.isna().to_numpy()
        py = text.tolist()
        _fail(bad, lambda i: f"{name} {py[i]!r} does not match date format {prop.date_format!r}")
        _fail(missing, f"{name} is empty")
        ok = parsed.dropna()
        if len(ok):
            stats.dates.extend([ok.min().date(), ok.max().date()])
        lexical = [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in parsed]
        return [
            TermArray.literals(pa.array(lexical, pa.string()), XSD + "date", needs_escape=False)
        ]
    datatype = (
        mapping.expanded(prop.datatype) if prop.datatype not in (None, "auto") else prop.datatype
    )
    if datatype == "auto":
        return _auto_literals(pc.cast(values, pa.string()))
    if datatype in (XSD + "double", XSD + "float", XSD + "decimal", XSD + "integer") and (
        pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
    ):
        return [_numeric_literals(prop, values, datatype, _fail)]
    if datatype in (XSD + "double", XSD + "float", XSD + "decimal", XSD + "integer"):
        numbers = pd.to_numeric(pd.Series(values.to_pylist(), dtype="object"), errors="coerce")
        numbers = numbers.astype("float64")
        raw = values.to_pylist()
        bad = (~np.isfinite(numbers.to_numpy())) & np.array([v is not None for v in raw], bool)
        _fail(bad, lambda i: f"{name} {raw[i]!r} is not a finite number")
        if datatype == XSD + "integer":
            frac = np.isfinite(numbers.to_numpy()) & (numbers.to_numpy() % 1 != 0)
            _fail(frac, lambda i: f"{name} {raw[i]!r} is not an integer")
            arr = pa.array(numbers.to_numpy(), pa.float64(), mask=~np.isfinite(numbers.to_numpy()))
            lexical = pc.cast(pc.cast(arr, pa.int64(), safe=False), pa.string())
        elif datatype == XSD + "decimal":
            lexical = _decimal_lexical(numbers.to_numpy())
        else:
            arr = pa.array(numbers.to_numpy(), pa.float64(), mask=~np.isfinite(numbers.to_numpy()))
            lexical = pc.cast(arr, pa.string())
        return [TermArray.literals(lexical, datatype, needs_escape=False)]
    return [TermArray.literals(pc.cast(values, pa.string()), datatype, prop.lang)]


def _numeric_literals(prop: PropertySpec, values: pa.Array, datatype: str, fail: Any) -> TermArray:
    """Literals of a numeric Arrow column without going through Python objects."""
    name = prop.column or ""
    numbers = values.to_numpy(zero_copy_only=False).astype("float64")
    present = ~values.is_null().to_numpy(zero_copy_only=False)
    finite = np.isfinite(numbers)
    bad = present & ~finite
    if bad.any():
        fail(bad, lambda i: f"{name} {float(numbers[i])!r} is not a finite number")
    if datatype == XSD + "integer" and not pa.types.is_integer(values.type):
        frac = finite & (np.mod(numbers, 1, where=finite, out=np.zeros_like(numbers)) != 0)
        if frac.any():
            fail(frac, lambda i: f"{name} {float(numbers[i])!r} is not an integer")
        ints = pa.array(numbers, pa.float64(), mask=~finite)
        lexical = pc.cast(pc.cast(ints, pa.int64(), safe=False), pa.string())
    elif datatype == XSD + "integer":
        lexical = pc.cast(values, pa.string())
    elif datatype == XSD + "decimal":
        lexical = _decimal_lexical(np.where(present, numbers, np.nan))
    else:
        lexical = pc.cast(pa.array(numbers, pa.float64(), mask=~finite), pa.string())
    return TermArray.literals(lexical, datatype, needs_escape=False)


def _decimal_lexical(numbers: np.ndarray) -> pa.Array:
    """``xsd:decimal`` lexical forms: no exponent (``1e-07`` -> ``0.0000001``); NaN -> null.

    Each value is written with the fewest digits that read back as the same double
    (``numpy.format_float_positional(unique=True)``), without a trailing ``.``.
    """
    finite = np.isfinite(numbers)
    text = [np.format_float_positional(v, unique=True, trim="-") if ok else None
            for v, ok in zip(numbers.tolist(), finite.tolist(), strict=True)]
    return pa.array(text, pa.string())


def has_column(prop: PropertySpec, table: pa.Table) -> bool:
    """Whether ``table`` has one of the columns ``prop`` reads."""
    return any(c in table.column_names for c in prop.columns())
