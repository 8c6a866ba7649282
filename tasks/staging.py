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

Stages whose Dask tasks do the I/O (polar harmonise and patches, crop harmonise) skip the scratch
root when they run on a distributed cluster (:func:`on_s3_workers`): the tasks open zarr stores on
S3 themselves (:func:`zarr_store`), read inputs from the published versions and write into an
unpublished version that the driver publishes last (:func:`tasks.storage.atomic_s3_version`), and
a task that needs a non-zarr input file (a SAFE product) copies it into its own process's temporary
folder (:func:`worker_local_copy`). Workers need no file system shared with the driver, only the
S3 variables of :func:`tasks.fs.s3_filesystem` in their environment; the task graphs carry URLs,
never credentials. Crop harmonise's tasks read GeoTIFF windows through GDAL's ``/vsis3/``
(:func:`vsis3_path`) with the endpoint of that environment (:func:`gdal_s3_environment`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from tasks.fs import is_remote, normalise_s3_url, s3_endpoint, s3_filesystem
from tasks.fs import join as fs_join
from tasks.stage_result import StageResult
from tasks.storage import (
    MANIFEST_NAME,
    POINTER_NAME,
    atomic_s3_dir,
    download_stage_dir,
    manifest_document,
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
        if _distributed_rank() != 0:
            # A DDP rank other than 0 (Lightning's subprocess launcher re-runs the stage in each
            # rank): rank 0 alone publishes (tasks.trainers.ranks); this rank wrote nothing to
            # upload, and its result is rank 0's (local paths of rank 0's scratch root).
            log.info("DDP rank %d: outputs are published by rank 0, nothing uploaded here",
                     _distributed_rank())
            return result
        created = [f"{p}/{name}" for p in io.new_under
                   for name in sorted(_children(local_root / p) - existing[p])]
        published: dict[str, str] = {}
        for unit in (*io.outputs, *created):
            published[unit] = _upload_unit(root, unit, local_root)
        if io.catalogue:
            _upload_catalogue(root, local_root, before, published)
        return _to_urls(result, local_root, root, published)


def _distributed_rank() -> int:
    """Return the process's rank in an initialised ``torch.distributed`` group, else 0.

    Looked up in ``sys.modules`` only: a stage that never imported torch is rank 0 (importing
    torch here for the check would cost seconds in every stage process).
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0
    return int(dist.get_rank())


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


# --- direct S3 I/O of Dask tasks ---------------------------------------------------------------

#: Prefix of the folder (in a process's temporary folder) holding its copies of a run's inputs.
WORKER_COPIES_PREFIX = "eeflow-inputs-"
_COPY_LOCK = threading.Lock()
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _DaskConfigured(Protocol):
    data_root: str
    dask: Any

    def is_remote_root(self) -> bool: ...


def on_s3_workers(cfg: _DaskConfigured) -> bool:
    """Tell whether a stage of ``cfg`` runs its Dask tasks on S3 directly (no scratch root).

    True for an ``s3://`` data root with a distributed cluster (any ``dask.cluster`` but
    ``synchronous``, whose tasks run in the driver: those stages go through :func:`run_staged`).
    """
    return bool(cfg.is_remote_root()) and str(cfg.dask.cluster) != "synchronous"


def zarr_store(location: str | Path, *, read_only: bool) -> Any:
    """Return what ``zarr.open_group`` / ``open_array`` take for ``location``.

    A local path is returned as a string (zarr's local store, as before); an ``s3://`` URL gives
    a ``zarr.storage.FsspecStore`` built from this process's S3 environment
    (:func:`tasks.fs.s3_filesystem`), so a Dask task opens it with its worker's credentials.
    """
    if not is_remote(str(location)):
        return str(location)
    from zarr.storage import FsspecStore

    url = normalise_s3_url(str(location))
    options = dict(s3_filesystem().storage_options)
    return FsspecStore.from_url(url, storage_options=options, read_only=read_only)


def location_exists(location: str | Path) -> bool:
    """Tell whether a local path or an ``s3://`` object / prefix exists."""
    if is_remote(str(location)):
        return bool(s3_filesystem().exists(normalise_s3_url(str(location))))
    return Path(location).exists()


def worker_local_copy(location: str | Path, run_token: str) -> Path:
    """Return a local path of ``location``: itself when local, else this process's copy.

    An ``s3://`` file or folder is downloaded once per process and run (``run_token``) into
    ``{tempfile.gettempdir()}/eeflow-inputs-{run_token}/``: on a Dask worker that is the worker's
    own disk, so the driver's file system is never needed. :func:`drop_worker_copies` removes
    the folder at the end of the run.

    Raises:
        FileNotFoundError: the ``s3://`` location does not exist.

    """
    if not is_remote(str(location)):
        return Path(location)
    if not _TOKEN.match(run_token):
        raise ValueError(f"run token {run_token!r}: use letters, digits, '_' or '-' (1-64)")
    url = normalise_s3_url(str(location))
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"{WORKER_COPIES_PREFIX}{run_token}" / digest
    target = target / url.rsplit("/", 1)[-1]
    with _COPY_LOCK:
        if target.exists():
            return target
        fs = s3_filesystem()
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        if fs.isdir(url):
            keys = sorted(fs.find(url))
            prefix = url[len("s3://"):] + "/"
            copies = [partial / key[len(prefix):] for key in keys]
            for copy in copies:
                copy.parent.mkdir(parents=True, exist_ok=True)
            if keys:
                fs.get(keys, [str(c) for c in copies])
        elif fs.isfile(url):
            fs.get_file(url, str(partial))
        else:
            raise FileNotFoundError(f"{url} does not exist; run the stage that writes it first")
        partial.rename(target)
    log.info("copied %s to %s", url, target)
    return target


def drop_worker_copies(run_token: str) -> None:
    """Remove this process's copies of the inputs of run ``run_token`` (none: nothing to do)."""
    if _TOKEN.match(run_token):
        shutil.rmtree(Path(tempfile.gettempdir()) / f"{WORKER_COPIES_PREFIX}{run_token}",
                      ignore_errors=True)


def write_s3_manifest(folder: str, *, stage: str, inputs: Any, config_hash: str,
                      counts: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> str:
    """:func:`tasks.storage.write_manifest` into an ``s3://`` folder (one PUT); return its URL."""
    manifest = manifest_document(stage=stage, inputs=inputs, config_hash=config_hash,
                                 counts=counts, extra=extra)
    url = fs_join(normalise_s3_url(folder), MANIFEST_NAME)
    s3_filesystem().pipe_file(
        url, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode(),
        ContentType="application/json")
    return url


# --- GDAL reads of S3 objects in Dask tasks ----------------------------------------------------

_GDAL_ENV_LOCK = threading.Lock()
_GDAL_ENV_USERS = 0
_GDAL_ENV_SET: dict[str, str] = {}


def gdal_s3_options() -> dict[str, str]:
    """Return GDAL's ``/vsis3/`` settings for the S3 endpoint of :func:`tasks.fs.s3_filesystem`.

    GDAL reads credentials and region from the same ``AWS_*`` variables as s3fs, but not
    ``EEFLOW_S3_ENDPOINT`` / ``AWS_ENDPOINT_URL``: for such an endpoint (MinIO, CREODIAS, a test
    server) this gives ``AWS_S3_ENDPOINT`` (host[:port]), ``AWS_HTTPS`` (from the URL's scheme)
    and ``AWS_VIRTUAL_HOSTING=FALSE`` (path-style requests); none for AWS itself.

    Raises:
        S3CredentialsError: the environment lacks the S3 credentials (names them).

    """
    s3_filesystem()  # the credentials check, with its message
    endpoint = s3_endpoint()
    if not endpoint:
        return {}
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"S3 endpoint {endpoint!r} (EEFLOW_S3_ENDPOINT / AWS_ENDPOINT_URL) is "
                         "not an http(s) URL; set e.g. http://minio:9000")
    return {"AWS_S3_ENDPOINT": parsed.netloc + parsed.path.rstrip("/"),
            "AWS_HTTPS": "YES" if parsed.scheme == "https" else "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE"}


@contextlib.contextmanager
def gdal_s3_environment() -> Iterator[None]:
    """Make ``/vsis3/`` paths readable by GDAL in every thread of this process, in the block.

    GDAL settings made with ``rasterio.Env`` in a worker thread hold for that thread only, but a
    task's readers run on threads of their own; GDAL falls back to environment variables in every
    thread, so :func:`gdal_s3_options` are set there while any block is open (reference-counted
    over the blocks of concurrent tasks; variables already set, e.g. by the user, are left as
    they are) and removed when the last block ends.
    """
    global _GDAL_ENV_USERS
    options = gdal_s3_options()
    with _GDAL_ENV_LOCK:
        if _GDAL_ENV_USERS == 0:
            _GDAL_ENV_SET.clear()
            for name, value in options.items():
                if name not in os.environ:
                    _GDAL_ENV_SET[name] = value
                    os.environ[name] = value
        _GDAL_ENV_USERS += 1
    try:
        yield
    finally:
        with _GDAL_ENV_LOCK:
            _GDAL_ENV_USERS -= 1
            if _GDAL_ENV_USERS == 0:
                for name, value in _GDAL_ENV_SET.items():
                    if os.environ.get(name) == value:
                        del os.environ[name]
                _GDAL_ENV_SET.clear()


def vsis3_path(url: str) -> str:
    """Return GDAL's ``/vsis3/bucket/key`` path of an ``s3://bucket/key`` URL."""
    return "/vsis3/" + normalise_s3_url(url)[len("s3://"):]


__all__: Sequence[str] = ("StageIO", "drop_worker_copies", "gdal_s3_environment",
                          "gdal_s3_options", "location_exists", "on_s3_workers", "run_staged",
                          "units", "vsis3_path", "worker_local_copy", "write_s3_manifest",
                          "zarr_store")
