"""Swap a rebuilt embedded store folder in place of the live one, atomically.

A re-load that changes most of a graph rebuilds the store in a sibling folder (bulk loads, see
:mod:`tasks.linked_data.store`) and then exchanges the two folders. On Linux ``renameat2`` with
``RENAME_EXCHANGE`` swaps them in one step: at any instant the store path names either the old or
the new store, and a ``kill -9`` at any point leaves one complete store there. Elsewhere (or on a
file system without it) two renames are used: ``store -> store.replaced``, ``staging -> store``;
:func:`recover` puts ``store.replaced`` back when a crash fell between the two.

The folders are siblings (``{store}.staging``, ``{store}.replaced``) so the renames stay on one
file system. RocksDB keeps its folder's path and opens files by name, so no handle of the old
store may stay open across the exchange: :func:`open_files_under` tells whether one does.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def staging_path(store_path: Path) -> Path:
    """Folder in which the replacement store is built (beside the store)."""
    return store_path.with_name(store_path.name + ".staging")


def replaced_path(store_path: Path) -> Path:
    """Where the old store sits between the two renames of the fallback swap."""
    return store_path.with_name(store_path.name + ".replaced")


def _renameat2_exchange(first: Path, second: Path) -> bool:
    """Exchange two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 / not Linux
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot exchange {first} and {second}: {os.strerror(code)}")


def _fsync_dir(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def exchange(store_path: Path, staging: Path) -> Path:
    """Put the complete store in ``staging`` at ``store_path``; return where the old one is now.

    Atomic on Linux (one ``renameat2``); else two renames whose gap :func:`recover` repairs.
    """
    if _renameat2_exchange(staging, store_path):
        old = staging
    else:
        old = replaced_path(store_path)
        if old.exists():
            shutil.rmtree(old)
        os.rename(store_path, old)
        os.rename(staging, store_path)
    _fsync_dir(store_path.parent)
    return old


def recover(store_path: Path) -> None:
    """Finish or undo a swap a crash interrupted (before the store at ``store_path`` is opened).

    Only the gap of the two-rename fallback needs repair: the store is missing and the old one is
    at ``{store}.replaced``; it is moved back (the re-load did not happen). Leftover staging /
    replaced folders are removed by :func:`remove_leftovers` once the store is open (its lock
    proves no other process is rebuilding it).
    """
    old = replaced_path(store_path)
    if not store_path.exists() and old.is_dir():
        log.warning("restoring %s: a re-load was interrupted between its two renames", store_path)
        os.rename(old, store_path)
        _fsync_dir(store_path.parent)


def remove_leftovers(store_path: Path) -> None:
    """Delete the staging / replaced folders of an interrupted or finished re-load."""
    for folder in (staging_path(store_path), replaced_path(store_path)):
        if folder.exists():
            log.info("removing %s (left by an interrupted or finished re-load)", folder)
            shutil.rmtree(folder, ignore_errors=True)


def open_files_under(folder: Path) -> int:
    """Count this process's open file descriptors on files inside ``folder`` (Linux ``/proc``).

    Returns -1 where ``/proc/self/fd`` does not exist (nothing can be told).
    """
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return -1
    prefix = str(folder.resolve()) + os.sep
    count = 0
    for entry in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / entry)
        except OSError:  # closed meanwhile (the listing's own descriptor, for one)
            continue
        count += target.startswith(prefix)
    return count


def wait_until_closed(folder: Path, timeout_s: float) -> bool:
    """Wait until no descriptor of this process points into ``folder``; False on timeout."""
    import gc

    deadline = time.monotonic() + timeout_s
    while True:
        gc.collect()
        if open_files_under(folder) <= 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
