"""Output layout, run keys, atomic writes and manifests shared by every stage.

Layout: ``{root}/{use_case}/{stage}/{run_key}/...``; ``run_key`` is a day (``2026-11-25``) for the
polar use case and an agronomic year (``2017-09_2018-08``) for crops. Every output folder is
written under a temporary name and swapped into place in one rename, so a failed run never leaves a
half-written folder and never destroys the previous good output. Each folder carries
``manifest.json`` (inputs, config hash, code version, counts).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


def day_run_key(day: dt.date | dt.datetime | str) -> str:
    """Return the run key of one day, ``YYYY-MM-DD``."""
    return to_date(day).isoformat()


def agronomic_year(day: dt.date | dt.datetime | str) -> tuple[dt.date, dt.date]:
    """Return (1 September, 31 August) of the agronomic year that contains ``day``."""
    d = to_date(day)
    start_year = d.year if d.month >= 9 else d.year - 1
    return dt.date(start_year, 9, 1), dt.date(start_year + 1, 8, 31)


def agronomic_year_key(day: dt.date | dt.datetime | str) -> str:
    """Return the run key of the agronomic year containing ``day``, e.g. ``2017-09_2018-08``."""
    start, end = agronomic_year(day)
    return f"{start:%Y-%m}_{end:%Y-%m}"


def to_date(value: dt.date | dt.datetime | str) -> dt.date:
    """Parse ``value`` (date, datetime or ISO string) into a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise ValueError(f"run date {value!r} is not an ISO date like 2026-11-25") from None


def stage_dir(root: str | os.PathLike[str], use_case: str, stage: str, run_key: str) -> Path:
    """Return ``{root}/{use_case}/{stage}/{run_key}`` (not created)."""
    for name, part in (("use_case", use_case), ("stage", stage), ("run_key", run_key)):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"{name} {part!r} must be a non-empty name without '/' or leading '.'")
    return Path(root) / use_case / stage / run_key


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a folder atomically.

    Yields a fresh temporary folder beside ``final``. When the block succeeds the temporary folder
    replaces ``final`` (the previous content is removed only after the new one is in place); when
    it raises, the temporary folder is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
    try:
        tmp.rename(final)
    except BaseException:
        if old is not None:
            old.rename(final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write JSON (sorted keys, indented) atomically."""
    return atomic_write_bytes(
        path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    )


def code_version() -> str:
    """Return the git commit of the eeflow checkout, or the package version outside git."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("eeflow")
        except PackageNotFoundError:
            return "unknown"


def write_manifest(
    folder: str | os.PathLike[str],
    *,
    stage: str,
    inputs: list[str] | Mapping[str, Any],
    config_hash: str,
    counts: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` into ``folder`` describing what produced it."""
    manifest = {
        "stage": stage,
        "inputs": inputs,
        "config_hash": config_hash,
        "code_version": code_version(),
        "counts": dict(counts or {}),
        **dict(extra or {}),
    }
    return atomic_write_json(Path(folder) / MANIFEST_NAME, manifest)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` of a stage output; raise a clear error when it is missing."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {MANIFEST_NAME}: it is not a complete eeflow stage output; "
            "re-run the stage that produces it"
        )
    return json.loads(path.read_text())
