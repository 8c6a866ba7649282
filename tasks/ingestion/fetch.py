"""Search results -> files on disk, with one manifest entry per product.

:func:`fetch_product` downloads every asset of a product
(:func:`tasks.ingestion.download.download`), unpacks a zip product into its folder when configured
(:mod:`tasks.ingestion.archive`) and returns the JSON entry the ingest manifest records: catalogue
id, name, provider, files with URL, size, attempts, resumed offsets and checksum (algorithm, value,
verified). Tokens never appear in it.
"""

from __future__ import annotations

import logging
import posixpath
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tasks.config.ingestion import CatalogueConfig
from tasks.ingestion.archive import extract_single_folder
from tasks.ingestion.download import download
from tasks.ingestion.products import Asset, CatalogueProduct

log = logging.getLogger(__name__)


def default_filename(product: CatalogueProduct, asset: Asset) -> str:
    """``<name>.zip`` for an OData product zip, else the href's last path segment."""
    if asset.key == "product" and asset.media_type == "application/zip":
        return f"{product.name.removesuffix('.SAFE')}.zip"
    name = posixpath.basename(urllib.parse.urlsplit(asset.href).path.rstrip("/"))
    if name in ("", "$value"):
        name = asset.key
    return name


def fetch_product(
    product: CatalogueProduct,
    dest_dir: str | Path,
    catalogue: CatalogueConfig,
    *,
    token: str | None,
    filename: Callable[[CatalogueProduct, Asset], str] = default_filename,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Download (and unpack) one product into ``dest_dir``; return its manifest entry.

    The entry has ``path`` (relative to ``dest_dir``: the unpacked folder, the zip, or the
    folder of the assets) and ``files`` (one :meth:`DownloadResult.summary` per asset).
    """
    dest_dir = Path(dest_dir)
    settings = catalogue.download
    files = []
    paths = []
    for asset in product.assets:
        target = dest_dir / filename(product, asset)
        result = download(
            asset.href, target, settings=settings, token=token, expected_size=asset.size,
            checksums=asset.checksums, session=session, sleep=sleep,
        )
        files.append({"asset": asset.key, **result.summary()})
        paths.append(target)
    entry: dict[str, Any] = {**product.summary(), "files": files}
    if len(paths) == 1 and settings.extract and paths[0].suffix == ".zip":
        folder = extract_single_folder(paths[0], dest_dir, max_bytes=settings.max_unpacked_bytes)
        paths[0].unlink()
        entry["path"] = folder.name
        entry["extracted_from"] = paths[0].name
    elif len(paths) == 1:
        entry["path"] = paths[0].name
    else:
        common = Path(*Path(paths[0]).relative_to(dest_dir).parts[:1])
        entry["path"] = str(common)
    return entry
