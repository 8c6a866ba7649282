"""Run a stage that works on local files against an ``s3://`` data root, through a scratch root.

Most stages read and write local folders (zarr, GeoTIFF, Parquet, checkpoints). On an ``s3://``
``data_root`` such a stage runs unchanged through :func:`run_staged`:

1. the published version of each declared input (``{root}/{unit}``; a unit is a stage output
   such as ``food_security/harmonise/2018-09_2019-08``, or a prefix holding several, such as
   ``food_security/models/2018-09_2019-08``) is downloaded into a local scratch root, in the
   same layout;
2. the stage runs with ``data_root`` set to the scratch root;
3. each declared output unit is uploaded as a new version and published by its ``_CURRENT``
   pointer, last (:func:`tasks.storage.atomic_s3_dir`): readers see the previous output or the
   new one, and a failed stage or upload leaves the previous output in place;
4. if the stage writes the STAC catalogue (``{root}/catalogue``, mirrored before the run), its new
   or changed files go up after the products, items first, then collections, then
   ``catalog.json``; asset hrefs are rewritten to the published versions' keys and ``file://``
   links of the scratch root to the bucket's URL.

Paths in the stage's result that point into the scratch root are returned as ``s3://`` URLs of
the published versions. A missing input is a :class:`FileNotFoundError` that names the URL and
the stage to run first. Local data roots do not come here: the stage runs as it is.
S3 has no lock: two runs publishing the same unit at the same moment are last-writer-wins (each
publish is still whole). Credentials and endpoint: :func:`tasks.fs.s3_filesystem`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tasks.fs import is_remote, normalise_s3_url, s3_filesystem
from tasks.fs import join as fs_join
from tasks.stage_result import StageResult
from tasks.storage import (
    MANIFEST_NAME,
    POINTER_NAME,
    atomic_s3_dir,
    download_stage_dir,
    resolve_stage_dir,
)

log = logging.getLogger(__name__)

#: A published local output holds one of these (a stage's manifest, a model folder's card).
PUBLISHED_MARKERS = (MANIFEST_NAME, "model.json")
#: The STAC catalogue folder under the data root (:data:`tasks.stac.catalogue.CATALOGUE_DIR`).
CATALOGUE = "catalogue"


class _RootedConfig(Protocol):
    data_root: str

    def is_remote_root(self) -> bool: ...

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any: ...


ConfigT = TypeVar("ConfigT", bound=_RootedConfig)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class StageIO:
    """What a stage reads and publishes, as ``/``-separated units under the data root.

    Attributes:
        inputs: units downloaded before the run (an output folder or a prefix of several).
        outputs: units the stage publishes (each an output folder with its manifest).
        optional_inputs: units downloaded when they exist (e.g. a model folder a run may not use).
        catalogue: the stage writes the STAC catalogue ``{root}/catalogue``.
        new_under: prefixes under which the stage creates output units whose names it picks
            (e.g. ``polar/models``: a timestamped model folder); each new child is published.

    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    catalogue: bool = False
    new_under: tuple[str, ...] = ()


def run_staged(cfg: ConfigT, io: StageIO, run: Callable[[ConfigT], ResultT]) -> ResultT:
    """Run ``run(cfg)``; on an ``s3://`` data root through a local scratch root (module doc)."""
    if not cfg.is_remote_root():
        return run(cfg)
    root = normalise_s3_url(cfg.data_root)
    with tempfile.TemporaryDirectory(prefix="eeflow-staged-") as scratch:
        local_root = Path(scratch) / "root"
        local_root.mkdir()
        for unit in io.inputs:
            _download_unit(root, unit, local_root, required=True)
        for unit in io.optional_inputs:
            _download_unit(root, unit, local_root, required=False)
        before = _mirror_catalogue(root, local_root) if io.catalogue else {}
        existing = {p: _children(local_root / p) for p in io.new_under}
        result = run(cfg.model_copy(update={"data_root": str(local_root)}))
        created = [f"{p}/{name}" for p in io.new_under
                   for name in sorted(_children(local_root / p) - existing[p])]
        published: dict[str, str] = {}
        for unit in (*io.outputs, *created):
            published[unit] = _upload_unit(root, unit, local_root)
        if io.catalogue:
            _upload_catalogue(root, local_root, before, published)
        return _to_urls(result, local_root, root, published)


def _download_unit(root: str, unit: str, local_root: Path, *, required: bool) -> None:
    """Download ``{root}/{unit}`` (one published output, or every one under a prefix)."""
    fs = s3_filesystem()
    url = fs_join(root, unit)
    if fs.exists(fs_join(url, POINTER_NAME)) or fs.exists(fs_join(url, MANIFEST_NAME)):
        download_stage_dir(url, local_root / unit)
        log.info("staged input %s", url)
        return
    children = [c for c in _child_prefixes(fs, url) if not c.rsplit("/", 1)[-1].startswith(".")]
    if not children:
        if required:
            raise FileNotFoundError(
                f"{url} holds no published eeflow output: run the stage that writes "
                f"{unit.split('/')[1] if '/' in unit else unit!r} for this run first "
                "(on the same s3:// data_root)")
        return
    for child in children:
        _download_unit(root, f"{unit}/{child.rsplit('/', 1)[-1]}", local_root, required=required)


def _children(folder: Path) -> set[str]:
    """Names of the visible sub-folders of ``folder`` (none if it does not exist)."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _child_prefixes(fs: Any, url: str) -> list[str]:
    try:
        entries = fs.ls(url, detail=True)
    except FileNotFoundError:
        return []
    return sorted(str(e["name"]) for e in entries if e.get("type") == "directory")


def _upload_unit(root: str, unit: str, local_root: Path) -> str:
    """Publish the local output ``unit`` on S3; return the URL of its new version."""
    local = (local_root / unit).resolve()  # a pointer-layout output: its current version
    if not any((local / name).is_file() for name in PUBLISHED_MARKERS):
        raise FileNotFoundError(
            f"the stage did not publish {unit} (none of {list(PUBLISHED_MARKERS)} in {local}); "
            "nothing was uploaded, the previous output on S3 stays")
    final = fs_join(root, unit)
    with atomic_s3_dir(final) as tmp:
        shutil.copytree(local, tmp, dirs_exist_ok=True)
    version = str(resolve_stage_dir(final))
    log.info("staged output %s published as %s", unit, version)
    return version


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mirror_catalogue(root: str, local_root: Path) -> dict[str, str]:
    """Download ``{root}/catalogue`` into the scratch root; return each file's digest."""
    fs = s3_filesystem()
    remote = fs_join(root, CATALOGUE)
    if not fs.exists(remote):
        return {}
    prefix = remote[len("s3://"):] + "/"
    keys = sorted(fs.find(remote))
    copies = [local_root / CATALOGUE / k[len(prefix):] for k in keys]
    for copy in copies:
        copy.parent.mkdir(parents=True, exist_ok=True)
    if keys:
        fs.get(keys, [str(c) for c in copies])
    return {c.relative_to(local_root).as_posix(): _digest(c) for c in copies}


def _upload_catalogue(root: str, local_root: Path, before: dict[str, str],
                      published: dict[str, str]) -> None:
    """Upload the catalogue files the stage added or changed (items, collections, catalog)."""
    fs = s3_filesystem()
    local_uri = local_root.resolve().as_uri()
    changed = []
    for path in sorted((local_root / CATALOGUE).rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(local_root).as_posix()
        text = path.read_text().replace(local_uri, root)
        for unit, version in published.items():  # hrefs into a unit -> into its version
            text = re.sub(re.escape(f"{unit}/") + r"(?!\.v-)",
                          f"{unit}/{version.rsplit('/', 1)[-1]}/", text)
        path.write_text(text)
        if before.get(name) != _digest(path):
            changed.append(path)

    def order(path: Path) -> int:
        return {"collection.json": 1, "catalog.json": 2}.get(path.name, 0)

    for path in sorted(changed, key=order):
        fs.put_file(str(path), fs_join(root, path.relative_to(local_root).as_posix()))
    log.info("catalogue: %d file(s) updated on %s", len(changed), root)


def _to_urls(value: Any, local_root: Path, root: str, published: dict[str, str]) -> Any:
    """Return ``value`` with paths under the scratch root turned into ``s3://`` URLs."""
    if isinstance(value, StageResult):
        return StageResult(outputs=_to_urls(dict(value.outputs), local_root, root, published),
                           summary=_to_urls(dict(value.summary), local_root, root, published))
    if isinstance(value, dict):
        return {k: _to_urls(v, local_root, root, published) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_urls(v, local_root, root, published) for v in value)
    if isinstance(value, Path | str) and not is_remote(str(value)):
        text = str(value)
        for base in {str(local_root), str(local_root.resolve())}:
            if text == base or text.startswith(base + "/"):
                relative = text[len(base) + 1:]
                for unit, version in sorted(published.items(), key=lambda kv: -len(kv[0])):
                    if relative == unit or relative.startswith(unit + "/"):
                        return version + relative[len(unit):]
                return fs_join(root, relative) if relative else root
    return value


def units(use_case: str, run_key: str, *stages: str) -> tuple[str, ...]:
    """Return ``{use_case}/{stage}/{run_key}`` for each stage."""
    return tuple(f"{use_case}/{stage}/{run_key}" for stage in stages)


__all__: Sequence[str] = ("StageIO", "run_staged", "units")
