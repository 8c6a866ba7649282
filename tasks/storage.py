"""Output layout, run keys, atomic writes and manifests shared by every stage.

Layout: ``{root}/{use_case}/{stage}/{run_key}/...``; ``run_key`` is a day (``2026-11-25``) for the
polar use case and an agronomic year (``2017-09_2018-08``) for crops. Every output folder is
written under a temporary name and swapped into place in one rename, so a failed run never leaves a
half-written folder and never destroys the previous good output. Each folder carries
``manifest.json`` (inputs, config hash, code version, counts).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import glob
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
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
    """Parse ``value`` (date, datetime or ISO string) into a date; times with an offset in UTC.

    ``2026-11-26T00:30+02:00`` is 2026-11-25 22:30 UTC, so its run key is ``2026-11-25``: every
    run of the same UTC day shares one key whatever the caller's time zone. Naive times and plain
    dates are taken as they are.
    """
    if isinstance(value, dt.datetime):
        return _utc_date(value)
    if isinstance(value, dt.date):
        return value
    try:
        return _utc_date(dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(
            f"run date {value!r} is not an ISO date like 2026-11-25 (or a time such as "
            "2026-11-25T06:00Z)"
        ) from None


def _utc_date(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.date()
    return moment.astimezone(dt.UTC).date()


def stage_dir(root: str | os.PathLike[str], use_case: str, stage: str, run_key: str) -> Path:
    """Return ``{root}/{use_case}/{stage}/{run_key}`` (not created)."""
    from tasks.naming import safe_name

    for kind, part in (("use_case", use_case), ("stage", stage), ("run_key", run_key)):
        safe_name(kind, part)
    return Path(root) / use_case / stage / run_key


#: A temporary folder whose writer is on another host (or left no pid) counts as abandoned after
#: this many seconds; on this host a temporary of a dead process is abandoned at once.
STALE_TEMPORARY_AGE_S = 12 * 3600.0
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _load_renameat2() -> Callable[[Path, Path, int], None] | None:
    """Return ``renameat2(2)`` through ctypes (Linux, glibc >= 2.28), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
    ]
    function.restype = ctypes.c_int

    def renameat2(source: Path, target: Path, flags: int) -> None:
        if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(source), None, str(target))

    return renameat2


_renameat2 = _load_renameat2()


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


def _is_abandoned(entry: Path, prefix: str, now: float) -> bool:
    """Tell whether a temporary's writer is dead (this host) or it is older than a run."""
    parts = entry.name[len(prefix):].split("-")
    if len(parts) == 3 and parts[0] == _HOST and parts[1].isdigit():
        pid = int(parts[1])
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    try:
        return now - entry.lstat().st_mtime > STALE_TEMPORARY_AGE_S
    except FileNotFoundError:
        return False


def clean_stale_temporaries(final: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries of ``final`` left by killed writers; return what was removed.

    Temporaries are ``.{name}.tmp-{host}-{pid}-{id}`` (and ``.{name}.tmp-{id}`` /
    ``.{name}.old-{id}`` from older eeflow versions) beside ``final``. One of this host whose
    process is gone is removed at once; others once older than ``STALE_TEMPORARY_AGE_S``.
    """
    final = Path(final)
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    now = time.time()
    for prefix in (_temporary_prefix(final), f".{final.name}.old-", f".{final.name}.v-"):
        for entry in final.parent.glob(f"{glob.escape(prefix)}*"):
            if final.is_symlink() and os.readlink(final) == entry.name:
                continue  # the live version of a pointer swap
            if _is_abandoned(entry, prefix, now):
                _remove(entry)
                removed.append(entry)
    if removed:
        log.warning("removed %d abandoned temporary folder(s) of %s: %s", len(removed), final,
                    [p.name for p in removed])
    return removed


def _remove(entry: Path) -> None:
    """Remove a folder, a file or a symlink (a symlink's target is left alone)."""
    if entry.is_symlink() or entry.is_file():
        entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the output's parent folder while an output is swapped.

    Locking the parent (not a sibling lock file) leaves no extra entry in the layout; the lock is
    held only for the swap (milliseconds), not while the output is written.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: renames alone
        yield
        return
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _publish(tmp: Path, final: Path) -> Path | None:
    """Put ``tmp`` in place of ``final`` with no moment where ``final`` is missing.

    Returns the path now holding the previous content (to delete), or None. Linux:
    ``renameat2(RENAME_NOREPLACE)`` for a new output, ``renameat2(RENAME_EXCHANGE)`` to swap an
    existing one in one step. Elsewhere (or a file system without it): a pointer swap, where
    ``final`` is a symlink to ``.{name}.v-{id}`` replaced with one atomic ``rename``.
    """
    if _renameat2 is not None:
        try:
            try:
                _renameat2(tmp, final, _RENAME_NOREPLACE)
                return None
            except FileExistsError:
                _renameat2(tmp, final, _RENAME_EXCHANGE)
                return tmp
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            log.info("renameat2 not supported for %s (%s): pointer swap", final, err)
    return _publish_by_pointer(tmp, final)


def _publish_by_pointer(tmp: Path, final: Path) -> Path | None:
    """Fallback of :func:`_publish`: ``final`` becomes a symlink swapped by one rename."""
    if final.exists() and not final.is_symlink():
        # an output published before the pointer layout: one last swap through two renames
        old = final.parent / f".{final.name}.old-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            old.rename(final)
            raise
        return old
    version = final.parent / f".{final.name}.v-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.rename(version)
    link = final.parent / f".{final.name}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link)
    previous = final.parent / os.readlink(final) if final.is_symlink() else None
    try:
        os.replace(link, final)
    except BaseException:
        link.unlink(missing_ok=True)
        shutil.rmtree(version, ignore_errors=True)
        raise
    return previous


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a folder atomically.

    Yields a fresh temporary folder beside ``final`` (``.{name}.tmp-{host}-{pid}-{id}``). When the
    block succeeds the temporary folder takes the place of ``final`` in one atomic step (see
    :func:`_publish`: readers always find either the previous or the new complete folder, never
    none), under a lock per output folder, so concurrent writers of the same output all succeed
    and the last one wins; the previous content is removed afterwards. When the block raises, the
    temporary folder is removed and ``final`` is left untouched. Temporaries abandoned by killed
    writers are removed first (:func:`clean_stale_temporaries`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(final):
        clean_stale_temporaries(final)
    tmp = final.parent / f"{_temporary_prefix(final)}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    previous: Path | None = None
    try:
        with output_lock(final):
            previous = _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if previous is not None:
        if previous.is_symlink():  # a pointer-layout output swapped out by renameat2
            target = previous.parent / os.readlink(previous)
            previous.unlink()
            shutil.rmtree(target, ignore_errors=True)
        else:
            shutil.rmtree(previous, ignore_errors=True)


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
