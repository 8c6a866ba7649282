"""Safe archive extraction (zip and tar): no ``..``, no absolute members, no escaping links.

Every member name is checked before anything is written; the declared unpacked size is capped
and the bytes actually written are counted against the same cap (an archive that lies about its
sizes is stopped). The archive is unpacked into a temporary folder that takes the destination's
place in one rename (:func:`tasks.storage.atomic_dir`), so a refused archive leaves nothing.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from tasks.errors import EeflowError, ErrorFamily
from tasks.storage import atomic_dir


class UnsafeArchiveError(EeflowError, ValueError):
    """An archive has a member that would land outside the destination, or is too large."""

    family = ErrorFamily.INPUT


def _check_name(archive: Path, name: str) -> str:
    """Return the member's normalised relative path or raise naming the member."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive.name}: member {name!r} has an absolute path; refusing to extract "
            "(the archive is not a plain product archive)"
        )
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{archive.name}: member {name!r} contains '..' and would be written outside the "
            "destination; refusing to extract"
        )
    return "/".join(parts)


def _check_link(archive: Path, member: str, target: str) -> None:
    """Refuse a symlink whose target is absolute or leaves the extraction folder."""
    if target.startswith("/") or posixpath.normpath(
        posixpath.join(posixpath.dirname(member), target)
    ).split("/")[0] == "..":
        raise UnsafeArchiveError(
            f"{archive.name}: member {member!r} is a link to {target!r} outside the destination; "
            "refusing to extract"
        )


def _too_big(archive: Path, total: int, max_bytes: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name}: unpacks to more than {max_bytes} bytes ({total} so far); refusing "
        "(raise ingest.catalogue.download.max_unpacked_bytes if the product is really that big)"
    )


def _extract_zip(archive: Path, out: Path, max_bytes: int) -> int:
    total = 0
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        declared = 0
        for info in infos:
            name = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                _check_link(archive, name, zf.read(info).decode("utf-8", "replace"))
            declared += info.file_size
        if declared > max_bytes:
            raise _too_big(archive, declared, max_bytes)
        for info in infos:
            name = _check_name(archive, info.filename)
            target = out / name
            if info.is_dir() or not name:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(info.external_attr >> 16):
                os.symlink(zf.read(info).decode(), target)
                continue
            with zf.open(info) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise _too_big(archive, total, max_bytes)
                    dst.write(chunk)
    return total


def _extract_tar(archive: Path, out: Path, max_bytes: int) -> int:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        total = 0
        for member in members:
            name = _check_name(archive, member.name)
            if member.issym() or member.islnk():
                link = member.linkname if member.issym() else "/" + member.linkname
                if member.islnk():
                    link = _check_name(archive, member.linkname)
                    link = posixpath.relpath(link, posixpath.dirname(name) or ".")
                _check_link(archive, name, link)
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive.name}: member {member.name!r} is a device or fifo; refusing"
                )
            total += member.size
        if total > max_bytes:
            raise _too_big(archive, total, max_bytes)
        tf.extractall(out, filter="data")
    return total


def safe_extract(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_bytes: int
) -> Path:
    """Unpack a zip or tar ``archive`` into the folder ``dest`` (replaced atomically).

    Args:
        archive: ``.zip`` or ``.tar[.gz|.bz2|.xz]`` file.
        dest: folder that receives the members.
        max_bytes: cap on the unpacked size in bytes.

    Returns:
        ``dest``.

    Raises:
        UnsafeArchiveError: a member is absolute, contains ``..``, is a link leaving ``dest``, a
            device, or the archive unpacks to more than ``max_bytes``.

    """
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise UnsafeArchiveError(f"{archive}: neither a zip nor a tar archive (truncated?)")
    with atomic_dir(dest) as tmp:
        try:
            extract(archive, tmp, max_bytes)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
            raise UnsafeArchiveError(f"{archive.name}: corrupt archive: {err}") from err
    return dest


def extract_single_folder(
    archive: str | os.PathLike[str], parent: str | os.PathLike[str], *, max_bytes: int
) -> Path:
    """Unpack a product zip holding one top folder (``X.SAFE/...``) as ``parent/X.SAFE``.

    Returns the path of that folder; an archive with several top entries is unpacked into
    ``parent/<archive stem>`` instead.
    """
    archive, parent = Path(archive), Path(parent)
    staging = parent / f".{archive.stem}.unpack"
    safe_extract(archive, staging, max_bytes=max_bytes)
    try:
        tops = [p for p in staging.iterdir()]
        final = parent / (tops[0].name if len(tops) == 1 and tops[0].is_dir() else archive.stem)
        if final.exists():
            shutil.rmtree(final)
        if len(tops) == 1 and tops[0].is_dir():
            tops[0].rename(final)
        else:
            staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final
