"""Input discovery and per-file context (run key, file-name groups, manifest / JSON fields)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from tasks.linked_data.mapping import Mapping, MappingError
from tasks.linked_data.readers import dotted_get

_S1_ID = re.compile(r"^(?P<platform>S1[ABCD])_[A-Z0-9]{2}_[A-Z0-9_]{4,}?_(?P<start>\d{8}T\d{6})_")


def _context_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        for key in ("name", "id", "model"):
            if isinstance(value.get(key), str):
                return value[key]
        return None
    if isinstance(value, str) and "/" in value:
        return Path(value).name or None
    return str(value)


def file_context(
    mapping: Mapping, path: Path, run_key: str, document: Any = None
) -> dict[str, str]:
    """Context values of one input file: run key, file-name groups, manifest / JSON fields."""
    match = mapping.source.pattern.search(path.name)
    if match is None:
        raise MappingError(
            f"input {path} does not match file_pattern {mapping.source.file_pattern!r} of "
            f"mapping {mapping.path}"
        )
    context: dict[str, str] = {
        "run_key": run_key,
        "product": mapping.product,
        "file_stem": path.stem,
    }
    context.update({k: v for k, v in match.groupdict().items() if v is not None})
    manifest: Any = None
    if mapping.source.manifest and (path.parent / "manifest.json").is_file():
        manifest = json.loads((path.parent / "manifest.json").read_text())
    for name, dotted in mapping.context.items():
        root, _, rest = dotted.partition(".")
        source = manifest if root == "manifest" else document if root == "file" else None
        value = _context_value(dotted_get(source, rest)) if source is not None else None
        if value is not None:
            context[name] = value
    scene = context.get("scene_id", "")
    s1 = _S1_ID.match(scene)
    if s1:
        start = dt.datetime.strptime(s1.group("start"), "%Y%m%dT%H%M%S")
        context.setdefault("platform", s1.group("platform"))
        context.setdefault("sensing_time", start.isoformat() + "Z")
    return context


def find_inputs(data_root: Path, pattern: str, run_key: str, mapping: Mapping) -> list[Path]:
    """List files under ``data_root`` matching ``pattern`` ({run_key} filled) and the mapping."""
    glob = pattern.format(run_key=run_key)
    candidates = (
        sorted(Path(glob).parent.glob(Path(glob).name))
        if Path(glob).is_absolute()
        else sorted(data_root.glob(glob))
    )
    files = [p for p in candidates if p.is_file() and mapping.source.pattern.search(p.name)]
    if not files:
        raise FileNotFoundError(
            f"no input for product {mapping.product!r} run {run_key!r}: nothing matches {glob!r} "
            f"under {data_root} with file_pattern {mapping.source.file_pattern!r}; run the stage "
            "that produces it, or set linked_data inputs.<product> in the config"
        )
    return files
