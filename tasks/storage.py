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
from typing import TYPE_CHECKING, Any

from tasks.fs import is_remote, normalise_s3_url, s3_filesystem
from tasks.fs import join as fs_join

if TYPE_CHECKING:
    import zarr

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

    if is_remote(root):
        raise ValueError(
            f"stage_dir() builds local paths but data_root {root!r} is on S3; use "
            "tasks.storage.stage_location() (and atomic_dir / read_manifest / resolve_stage_dir "
            "on the URL it returns)"
        )
    for kind, part in (("use_case", use_case), ("stage", stage), ("run_key", run_key)):
        safe_name(kind, part)
    return Path(root) / use_case / stage / run_key


def stage_location(
    root: str | os.PathLike[str], use_case: str, stage: str, run_key: str
) -> Path | str:
    """Return the output location of a stage: a :class:`Path` locally, an ``s3://`` URL on S3.

    Local roots give exactly :func:`stage_dir`; ``s3://bucket/prefix`` gives
    ``s3://bucket/prefix/{use_case}/{stage}/{run_key}``.
    """
    if not is_remote(root):
        return stage_dir(root, use_case, stage, run_key)
    from tasks.naming import safe_name

    for kind, part in (("use_case", use_case), ("stage", stage), ("run_key", run_key)):
        safe_name(kind, part)
    return fs_join(normalise_s3_url(str(root)), use_case, stage, run_key)


#: A temporary folder whose writer is on another host (or left no pid) counts as abandoned after
#: this many seconds; on this host a temporary of a dead process is abandoned at once.
STALE_TEMPORARY_AGE_S = 12 * 3600.0
#: In the pointer layout a version replaced by a newer one is deleted at the first publish after
#: it has been out of use this long: a reader that resolved the symlink just before the swap may
#: still be walking into it (deleting it at once, or at the next publish, made readers polling
#: during rapid re-publishes miss files).
RETIRED_VERSION_GRACE_S = 60.0
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


def _publish(tmp: Path, final: Path) -> list[Path]:
    """Put ``tmp`` in place of ``final`` with no moment where ``final`` is missing.

    Returns what now holds earlier content, to delete. Linux: ``renameat2(RENAME_NOREPLACE)`` for
    a new output, ``renameat2(RENAME_EXCHANGE)`` to swap an existing one in one step. Elsewhere
    (or a file system without it): a pointer swap, where ``final`` is a symlink to
    ``.{name}.v-{id}`` replaced with one atomic ``rename``; the one exception is the first pointer
    swap of an output that is still a real folder, converted once with two consecutive renames
    (see :func:`_publish_by_pointer`).
    """
    if _renameat2 is not None:
        try:
            try:
                _renameat2(tmp, final, _RENAME_NOREPLACE)
                return []
            except FileExistsError:
                _renameat2(tmp, final, _RENAME_EXCHANGE)
                # a pointer-layout output swapped out: its symlink and every version go
                return [tmp, *_versions(final, keep=())]
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            log.info("renameat2 not supported for %s (%s): pointer swap", final, err)
    return _publish_by_pointer(tmp, final)


def _versions(final: Path, *, keep: tuple[str, ...], retired_before: float | None = None
              ) -> list[Path]:
    """Return the ``.{name}.v-*`` version folders of ``final`` not named in ``keep``.

    With ``retired_before`` only those whose mtime (set when they were replaced) is older.
    """
    found = []
    for entry in final.parent.glob(f"{glob.escape(f'.{final.name}.v-')}*"):
        if entry.name in keep:
            continue
        if retired_before is not None:
            try:
                if entry.lstat().st_mtime >= retired_before:
                    continue
            except FileNotFoundError:
                continue
        found.append(entry)
    return sorted(found)


def _publish_by_pointer(tmp: Path, final: Path) -> list[Path]:
    """Fallback of :func:`_publish`: ``final`` becomes a symlink swapped by one rename.

    ``tmp`` is renamed to ``.{name}.v-{host}-{pid}-{id}`` and a new symlink to it replaces
    ``final`` with one ``rename(2)``, so a reader resolving ``final`` finds the previous or the
    new version, never none. The version just replaced gets its mtime set to now and is kept;
    returned, to delete, are the versions replaced more than ``RETIRED_VERSION_GRACE_S`` ago (a
    reader that resolved the symlink just before a swap may still be walking into the version).

    An output that is still a real folder (published by ``renameat2``, or by eeflow before the
    pointer layout) cannot be replaced by a symlink in one step: ``rename(2)`` does not put a
    non-directory over a non-empty directory, and only ``renameat2(RENAME_EXCHANGE)`` swaps the
    two. It is converted once: with the new version and its symlink ready, the folder is renamed
    to ``.{name}.old-...`` and the symlink renamed to ``final`` right after (two consecutive
    renames under the output lock; between them ``final`` is missing, for microseconds, this one
    time). From then on ``final`` is a symlink and every later publish is the one-rename swap. The
    old folder is returned, to delete; if the second rename fails it is put back.
    """
    version = final.parent / f".{final.name}.v-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.rename(version)
    link = final.parent / f".{final.name}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link)
    try:
        if final.is_dir() and not final.is_symlink():
            log.info("converting %s to the pointer layout (symlink to a version folder)", final)
            old = final.parent / f".{final.name}.old-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            try:
                os.replace(link, final)
            except BaseException:
                old.rename(final)
                raise
            return [old]
        previous = os.readlink(final) if final.is_symlink() else None
        os.replace(link, final)
    except BaseException:
        link.unlink(missing_ok=True)
        shutil.rmtree(version, ignore_errors=True)
        raise
    now = time.time()
    if previous is not None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(final.parent / previous, (now, now))
    return _versions(final, keep=(version.name,), retired_before=now - RETIRED_VERSION_GRACE_S)


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike[str], *, keep_versions: int = 1
) -> Iterator[Path]:
    """Write a folder atomically.

    ``final`` may be an ``s3://`` URL: see :func:`atomic_s3_dir` (``keep_versions`` applies there
    only). Local paths take the path below.

    Yields a fresh temporary folder beside ``final`` (``.{name}.tmp-{host}-{pid}-{id}``). When the
    block succeeds the temporary folder takes the place of ``final`` in one atomic step (see
    :func:`_publish`: readers always find either the previous or the new complete folder, never
    none), under a lock per output folder, so concurrent writers of the same output all succeed
    and the last one wins; the previous content is removed afterwards (in the pointer layout at
    the next publish). When the block raises, the temporary folder is removed and ``final`` is
    left untouched. Temporaries abandoned by killed writers are removed first
    (:func:`clean_stale_temporaries`).
    """
    if is_remote(final):
        with atomic_s3_dir(str(final), keep_versions=keep_versions) as local_tmp:
            yield local_tmp
        return
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
    try:
        with output_lock(final):
            earlier = _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for entry in earlier:
        _remove(entry)


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
    return atomic_write_json(Path(folder) / MANIFEST_NAME, manifest_document(
        stage=stage, inputs=inputs, config_hash=config_hash, counts=counts, extra=extra))


def manifest_document(
    *,
    stage: str,
    inputs: list[str] | Mapping[str, Any],
    config_hash: str,
    counts: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the content of a ``manifest.json`` (local or on S3) for one stage output."""
    return {
        "stage": stage,
        "inputs": inputs,
        "config_hash": config_hash,
        "code_version": code_version(),
        "counts": dict(counts or {}),
        **dict(extra or {}),
    }


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` of a stage output; raise a clear error when it is missing.

    On S3 the ``_CURRENT`` pointer names the published version whose manifest is read.
    """
    if is_remote(folder):
        return _read_s3_manifest(str(folder))
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {MANIFEST_NAME}: it is not a complete eeflow stage output; "
            "re-run the stage that produces it"
        )
    return json.loads(path.read_text())


# --- S3 data roots --------------------------------------------------------------------------------
#
# S3 has no rename, so an output is published by a pointer: the files go under a fresh version
# prefix ``{final}/.v-{host}-{pid}-{id}/`` and the small JSON object ``{final}/_CURRENT``, written
# last in one PUT (atomic on S3), names the version readers use. A writer that fails before the
# pointer PUT leaves the previous pointer, hence the previous output, untouched; of two concurrent
# writers the last pointer wins and each reader sees one complete version.

POINTER_NAME = "_CURRENT"
POINTER_FORMAT = "eeflow-pointer/1"
VERSION_PREFIX = ".v-"


def _s3_path(url: str) -> str:
    """Return ``bucket/key`` of an ``s3://`` URL (the form s3fs lists)."""
    return url[len("s3://"):]


def _read_pointer(fs: Any, final: str) -> dict[str, Any] | None:
    """Return the ``_CURRENT`` pointer of ``final`` (an ``s3://`` URL), or None when unpublished."""
    url = fs_join(final, POINTER_NAME)
    try:
        raw = fs.cat_file(url)
    except FileNotFoundError:
        return None
    try:
        pointer = json.loads(raw)
        if pointer.get("format") != POINTER_FORMAT or not str(pointer["version"]).startswith(
            VERSION_PREFIX
        ):
            raise ValueError(f"format {pointer.get('format')!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{url} is not an eeflow output pointer ({err}); it should be JSON with format "
            f"{POINTER_FORMAT!r} naming a {VERSION_PREFIX}* version; re-run the stage that "
            "writes this output"
        ) from None
    return dict(pointer)


def _referenced(pointer: Mapping[str, Any] | None) -> set[str]:
    if not pointer:
        return set()
    return {str(pointer["version"]), *(str(v) for v in pointer.get("previous", []))}


def _writer_gone(version: str) -> bool:
    """Tell whether the writer of ``.v-{host}-{pid}-{id}`` is a dead process of this host."""
    parts = version[len(VERSION_PREFIX):].split("-")
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # another thread of this process may be uploading it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def clean_stale_versions(final: str, *, fs: Any = None) -> list[str]:
    """Remove version prefixes of ``final`` (an ``s3://`` URL) that failed or lost a race.

    A version no pointer names is removed when its writer was a process of this host that is
    gone, or when its newest object is older than ``STALE_TEMPORARY_AGE_S`` (a writer elsewhere
    may still be uploading a younger one). Returns the version names removed.
    """
    fs = fs or s3_filesystem()
    final = normalise_s3_url(final)
    try:
        entries = fs.ls(final, detail=True)
    except FileNotFoundError:
        return []
    live = _referenced(_read_pointer(fs, final))
    now = time.time()
    removed: list[str] = []
    for entry in entries:
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(VERSION_PREFIX) or name in live or entry.get("type") != "directory":
            continue
        prefix = fs_join(final, name)
        abandoned = _writer_gone(name)
        if not abandoned:
            stamps = [
                info["LastModified"].timestamp()
                for info in fs.find(prefix, detail=True).values()
                if info.get("LastModified") is not None
            ]
            abandoned = bool(stamps) and now - max(stamps) > STALE_TEMPORARY_AGE_S
        if abandoned:
            _remove_version(fs, final, name)
            removed.append(name)
    if removed:
        log.warning("removed %d abandoned version(s) of %s: %s", len(removed), final, removed)
    return removed


def _remove_version(fs: Any, final: str, version: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.rm(fs_join(final, version), recursive=True)


def _upload(fs: Any, local: Path, target: str) -> list[str]:
    """Upload every file under ``local`` to ``target`` (an ``s3://`` prefix); return the names."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    names = [p.relative_to(local).as_posix() for p in files]
    if not files:
        raise ValueError(
            f"nothing to publish to {target}: the stage wrote no file into its output folder"
        )
    fs.put([str(p) for p in files], [fs_join(target, n) for n in names])
    return names


@contextlib.contextmanager
def atomic_s3_dir(final: str, *, keep_versions: int = 1) -> Iterator[Path]:
    """Write an S3 output folder atomically; yields a local temporary folder to fill.

    When the block succeeds its files are uploaded under ``{final}/.v-{host}-{pid}-{id}/`` and the
    pointer ``{final}/_CURRENT`` is written last. Afterwards the versions the previous pointer
    named beyond the newest ``keep_versions`` (current included) are deleted. When the block or
    the upload fails, the partial version is deleted and the pointer is untouched, so readers keep
    the previous output. Credentials and endpoint: :func:`tasks.fs.s3_filesystem`.
    """
    if keep_versions < 1:
        raise ValueError(f"keep_versions={keep_versions}: keep at least 1 (the current version)")
    final = normalise_s3_url(final)
    fs = s3_filesystem()
    clean_stale_versions(final, fs=fs)
    import tempfile

    local_tmp = Path(tempfile.mkdtemp(prefix=f"eeflow-{final.rsplit('/', 1)[-1]}-"))
    try:
        yield local_tmp
        version = _new_version()
        try:
            names = _upload(fs, local_tmp, fs_join(final, version))
        except BaseException:
            with contextlib.suppress(Exception):
                _remove_version(fs, final, version)
            raise
        _publish_version(fs, final, version, names, keep_versions)
    finally:
        shutil.rmtree(local_tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_s3_version(final: str, *, keep_versions: int = 1) -> Iterator[str]:
    """Write an S3 output in place, atomically; yields the ``s3://`` URL of its new version.

    :func:`atomic_s3_dir` for writers that write to S3 themselves (Dask workers writing zarr
    chunks): nothing goes through a local folder. When the block succeeds the pointer
    ``{final}/_CURRENT`` is written last and names the version; when it fails the version is
    deleted and the pointer (the previous output) stays.
    """
    if keep_versions < 1:
        raise ValueError(f"keep_versions={keep_versions}: keep at least 1 (the current version)")
    final = normalise_s3_url(final)
    fs = s3_filesystem()
    clean_stale_versions(final, fs=fs)
    version = _new_version()
    url = fs_join(final, version)
    try:
        yield url
        prefix = _s3_path(url) + "/"
        names = [key[len(prefix):] for key in sorted(fs.find(url))]
        if not names:
            raise ValueError(
                f"nothing to publish to {final}: the stage wrote no file into {url}")
    except BaseException:
        with contextlib.suppress(Exception):
            _remove_version(fs, final, version)
        raise
    _publish_version(fs, final, version, names, keep_versions)


def _new_version() -> str:
    return f"{VERSION_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _publish_version(fs: Any, final: str, version: str, names: list[str],
                     keep_versions: int) -> None:
    """Write the pointer of ``final`` naming ``version`` (uploaded), then drop unnamed versions."""
    before = _read_pointer(fs, final)
    history = [] if before is None else [before["version"], *before.get("previous", [])]
    pointer = {
        "format": POINTER_FORMAT,
        "version": version,
        "manifest": f"{version}/{MANIFEST_NAME}" if MANIFEST_NAME in names else None,
        "files": len(names),
        "previous": history[: keep_versions - 1],
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        fs.pipe_file(
            fs_join(final, POINTER_NAME),
            json.dumps(pointer, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
    except BaseException:
        with contextlib.suppress(Exception):  # an ambiguous PUT may have landed: check
            if version not in _referenced(_read_pointer(fs, final)):
                _remove_version(fs, final, version)
        raise
    # drop what no pointer names any more (re-read: a concurrent writer may have won)
    now_live = _referenced(_read_pointer(fs, final))
    for stale in sorted((_referenced(before) | {version}) - now_live):
        _remove_version(fs, final, stale)
    log.info("published %s (%d files) as %s", final, len(names), version)


def resolve_stage_dir(folder: str | os.PathLike[str]) -> Path | str:
    """Return where a stage output's files are: ``folder`` locally, the current version on S3.

    On S3 the ``_CURRENT`` pointer of ``folder`` is read; a URL that already names a version
    (with its own ``manifest.json``) is returned as it is.
    """
    if not is_remote(folder):
        return Path(folder)
    final = normalise_s3_url(str(folder))
    fs = s3_filesystem()
    pointer = _read_pointer(fs, final)
    if pointer is not None:
        return fs_join(final, pointer["version"])
    if fs.exists(fs_join(final, MANIFEST_NAME)):
        return final
    raise FileNotFoundError(
        f"{final} has no {POINTER_NAME} pointer: no complete eeflow stage output was published "
        "there; re-run the stage that produces it"
    )


def open_output(folder: str | os.PathLike[str], name: str, mode: str = "rb") -> Any:
    """Open the file ``name`` (relative, ``/``-separated) of a stage output for reading.

    Locally this is ``open(folder / name)``; on S3 the file of the current version.
    """
    if "w" in mode or "a" in mode or "+" in mode:
        raise ValueError(
            f"open_output({name!r}, mode={mode!r}) only reads; write outputs inside atomic_dir"
        )
    where = resolve_stage_dir(folder)
    if isinstance(where, Path):
        return open(where / name, mode)  # the caller closes it
    return s3_filesystem().open(fs_join(where, name), mode)


def download_stage_dir(folder: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Return a local folder holding a stage output: ``folder`` itself locally, else a copy.

    On S3 the current version is downloaded into ``dest`` (created; it must be empty), for
    readers that need local files (zarr, GeoTIFF).
    """
    where = resolve_stage_dir(folder)
    if isinstance(where, Path):
        return where
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; give an empty folder to download {where} into")
    fs = s3_filesystem()
    remote = sorted(fs.find(where))
    prefix = _s3_path(where).rstrip("/") + "/"
    locals_ = [dest / p[len(prefix):] for p in remote]
    for path in locals_:
        path.parent.mkdir(parents=True, exist_ok=True)
    fs.get(remote, [str(p) for p in locals_])
    return dest


def _read_s3_manifest(folder: str) -> dict[str, Any]:
    fs = s3_filesystem()
    for _attempt in range(3):
        where = resolve_stage_dir(folder)
        url = fs_join(str(where), MANIFEST_NAME)
        try:
            return dict(json.loads(fs.cat_file(url)))
        except FileNotFoundError:
            # the version was deleted after a newer pointer landed: read the newer one
            if resolve_stage_dir(folder) == where:
                break
    raise FileNotFoundError(
        f"{folder} has no {MANIFEST_NAME} ({url} is missing): it is not a complete eeflow "
        "stage output; re-run the stage that produces it"
    )


def zarr_array(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]``, the array a stage's store layout puts there.

    zarr types a member as ``Array | Group``; this is the typed access (a group there is an error).
    """
    import zarr

    node = group[name]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{name!r} of zarr store {group.store_path} is a group, not an array")
    return node


def zarr_attrs(node: zarr.Group | zarr.Array) -> dict[str, Any]:
    """Return the attributes of a zarr group or array as a plain dict (JSON, checked by callers)."""
    return dict(node.attrs)
