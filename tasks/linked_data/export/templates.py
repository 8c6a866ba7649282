"""IRI and literal templates: ``{name}`` placeholders filled per row from Arrow columns."""

from __future__ import annotations

import re
import string
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tasks.linked_data.mapping import MappingError
from tasks.linked_data.namespaces import iri_segment

_SAFE = r"^[A-Za-z0-9._~-]*$"
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _encode_column(values: pa.Array) -> pa.Array:
    values = pc.cast(values, pa.string())
    safe = pc.match_substring_regex(values, _SAFE)
    if pc.all(pc.fill_null(safe, True)).as_py():
        return values
    encoded = pa.array(
        [None if v is None else iri_segment(v) for v in values.to_pylist()], pa.string()
    )
    return pc.if_else(safe, values, encoded)


def render_template(
    template: str,
    context: dict[str, str],
    columns: dict[str, pa.Array],
    n_rows: int,
    *,
    base: str,
    iri: bool,
    where: str,
) -> pa.Array:
    """Fill ``{name}`` placeholders from ``columns`` (per row) or ``context`` (constants).

    For IRIs every placeholder value is percent-encoded as one path segment and relative results
    are resolved against ``base``. Raises :class:`MappingError` for an unknown placeholder.
    """
    parts: list[Any] = []
    if iri and not _ABSOLUTE.match(template):
        parts.append(base)
    for literal_text, name, _, _ in string.Formatter().parse(template):
        if literal_text:
            parts.append(literal_text)
        if not name:
            continue
        if name in columns:
            parts.append(
                _encode_column(columns[name]) if iri else pc.cast(columns[name], pa.string())
            )
        elif name in context and context[name] is not None:
            parts.append(iri_segment(context[name]) if iri else str(context[name]))
        else:
            raise MappingError(
                f"{where}: template {template!r} uses {{{name}}}, which is neither an input column "
                f"nor a context value; available: {sorted([*columns, *context])}"
            )
    arrays = [p for p in parts if isinstance(p, pa.Array)]
    if not arrays:
        return pa.array(["".join(parts)] * n_rows, pa.string())
    return pc.binary_join_element_wise(*parts, "")
