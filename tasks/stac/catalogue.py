"""A static STAC catalogue (pystac, STAC 1.1) of every product eeflow publishes.

Layout under the data root::

    {root}/catalogue/catalog.json                                   root catalogue
    {root}/catalogue/{collection}/collection.json                   one collection per product kind
    {root}/catalogue/{collection}/{run_key}/{item_id}.json          the items of one run

Collections: ``ice-charts`` (polar publish: chart COG, quicklook, RFC 7946 GeoJSON, projected
GeoParquet), ``crop-maps`` (crop map + confidence COGs, quicklook), ``field-instances`` (GeoParquet
of field instances) and ``model-evaluations`` (metrics JSON of a model on a run's data).

:func:`publish_run_items` is idempotent per run: it replaces all items of ``run_key`` in the
collection (a re-run of a day leaves no duplicate and no stale item), recomputes the collection's
extent from its items and keeps the root catalogue's child links, under a lock so concurrent runs
of different days do not lose each other's links. Items carry ``root``, ``parent``,
``collection`` and ``self`` links and declare the ``projection`` (v2.0.0, ``proj:code``),
``raster`` (v1.1.0, per-asset ``raster:bands``) and ``file`` (v2.1.0, ``file:size`` and a
``sha2-256`` multihash ``file:checksum``) extensions they use. Asset hrefs are relative to the item
file, so the catalogue moves with the data root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension

from tasks.naming import safe_name
from tasks.storage import atomic_write_json, output_lock

log = logging.getLogger(__name__)

CATALOGUE_DIR = "catalogue"
ROOT_ID = "eeflow"

#: collection id -> (title, description)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "ice-charts": (
        "eeflow sea-ice charts",
        "Daily sea-ice charts classified from Sentinel-1 EW GRD scenes: chart COG (class codes), "
        "PNG quicklook, class polygons as RFC 7946 GeoJSON (CRS84) and GeoParquet (chart CRS).",
    ),
    "crop-maps": (
        "eeflow crop-type maps",
        "Crop-type maps of Sentinel-2 tiles per agronomic year: class COG, softmax confidence COG "
        "and a PNG quicklook.",
    ),
    "field-instances": (
        "eeflow field instances",
        "Field instances (connected regions or declared parcels) with their predicted crop class, "
        "as GeoParquet in the tile CRS.",
    ),
    "model-evaluations": (
        "eeflow model evaluations",
        "Accuracy, per-class F1 and confusion matrices of eeflow models on held-out data.",
    ),
}

MEDIA_TYPES = {
    ".tif": pystac.MediaType.COG,
    ".png": pystac.MediaType.PNG,
    ".geojson": pystac.MediaType.GEOJSON,
    ".parquet": "application/vnd.apache.parquet",
    ".json": pystac.MediaType.JSON,
    ".md": "text/markdown",
}
#: Files up to this size get a ``file:checksum`` (hashing larger ones is not "cheap").
CHECKSUM_MAX_BYTES = 512 * 2**20


class CatalogueError(ValueError):
    """A catalogue input (product file, collection id, run key) is missing or wrong."""


def catalogue_dir(root: str | os.PathLike[str]) -> Path:
    """Return ``{root}/catalogue``."""
    return Path(root) / CATALOGUE_DIR


@dataclass(frozen=True)
class AssetSpec:
    """One file of a product: its key in the item, path on disk and STAC roles."""

    key: str
    path: Path
    roles: tuple[str, ...] = ("data",)
    title: str | None = None


def _multihash_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return "1220" + digest.hexdigest()  # multihash: 0x12 sha2-256, 0x20 = 32 bytes


def _raster_bands(path: Path) -> tuple[list[RasterBand], dict[str, Any]]:
    """``raster:bands`` of a GeoTIFF and its ``proj:*`` fields."""
    import rasterio

    with rasterio.open(path) as src:
        bands = [
            RasterBand.create(
                nodata=_nodata(src.nodatavals[i]),
                data_type=DataType(src.dtypes[i]),
                spatial_resolution=float(abs(src.transform.a)),
            )
            for i in range(src.count)
        ]
        epsg = src.crs.to_epsg() if src.crs else None
        proj = {
            "code": f"EPSG:{epsg}" if epsg else None,
            "wkt2": None if epsg or src.crs is None else src.crs.to_wkt(),
            "shape": [src.height, src.width],
            "transform": list(src.transform)[:6],
            "bbox": list(src.bounds),
        }
    return bands, proj


def _nodata(value: float | None) -> float | NoDataStrings | None:
    """``raster:bands`` nodata: a number, or ``"nan"`` / ``"inf"`` / ``"-inf"`` (JSON has none)."""
    import math

    if value is None:
        return None
    if math.isnan(value):
        return NoDataStrings.NAN
    if math.isinf(value):
        return NoDataStrings.INF if value > 0 else NoDataStrings.NINF
    return value


def _footprint(path: Path) -> tuple[dict[str, Any], list[float], dict[str, Any]]:
    """CRS84 footprint polygon, bbox and ``proj:*`` fields of a raster or GeoParquet file."""
    import shapely
    from pyproj import CRS, Transformer

    if path.suffix == ".tif":
        _, proj = _raster_bands(path)
        crs = CRS.from_user_input(proj["code"] or proj["wkt2"])
        left, bottom, right, top = proj["bbox"]
    else:
        import geopandas as gpd

        frame = gpd.read_parquet(path)
        if frame.crs is None:
            raise CatalogueError(f"{path}: GeoParquet without CRS; cannot place it on the map")
        crs = frame.crs
        left, bottom, right, top = (float(v) for v in frame.total_bounds)
        epsg = crs.to_epsg()
        proj = {"code": f"EPSG:{epsg}" if epsg else None,
                "wkt2": None if epsg else crs.to_wkt(), "bbox": [left, bottom, right, top]}
        if frame.empty:
            raise CatalogueError(f"{path}: no features; nothing to catalogue")
    ring = shapely.segmentize(shapely.box(left, bottom, right, top), (right - left) / 20 or 1.0)
    forward = Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
    footprint = shapely.transform(ring, lambda xy: _stack(forward.transform(xy[:, 0], xy[:, 1])))
    footprint = shapely.orient_polygons(footprint, exterior_cw=False)
    return json.loads(shapely.to_geojson(footprint)), list(footprint.bounds), proj


def _stack(xy: tuple[Any, Any]) -> Any:
    import numpy as np

    return np.column_stack(xy)


def build_item(
    item_id: str,
    assets: Sequence[AssetSpec],
    *,
    datetime: dt.datetime | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    footprint_from: Path | None = None,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """Build a STAC item for product files (hrefs made relative when the item is published).

    Args:
        item_id: unique within its collection (e.g. the chart's file stem).
        assets: the product's files; GeoTIFFs get ``raster:bands`` + asset ``proj:*``, every
            file ``file:size`` (and ``file:checksum`` up to :data:`CHECKSUM_MAX_BYTES`).
        datetime: the nominal time (None when ``start`` and ``end`` give a period).
        start: start of the period (e.g. of an agronomic year), with ``end``.
        end: end of the period.
        footprint_from: a GeoTIFF or GeoParquet whose extent gives the item geometry (CRS84) and
            the item's ``proj:code``; None: no geometry (e.g. an evaluation).
        properties: extra properties (``eeflow:*``).

    Raises:
        CatalogueError: a product file is missing.

    """
    missing = [str(a.path) for a in assets if not a.path.is_file()]
    if missing:
        raise CatalogueError(f"item {item_id}: product files missing: {missing}")
    geometry, bbox, proj = (None, None, None)
    if footprint_from is not None:
        geometry, bbox, proj = _footprint(footprint_from)
    item = pystac.Item(
        id=item_id, geometry=geometry, bbox=bbox, datetime=datetime,
        start_datetime=start, end_datetime=end, properties=dict(properties or {}),
    )
    if proj is not None:
        projection = ProjectionExtension.ext(item, add_if_missing=True)
        projection.apply(code=proj["code"], wkt2=proj["wkt2"], bbox=proj["bbox"])
    for spec in assets:
        asset = pystac.Asset(
            href=str(spec.path.resolve()), media_type=MEDIA_TYPES.get(spec.path.suffix),
            roles=list(spec.roles), title=spec.title,
        )
        item.add_asset(spec.key, asset)
        size = spec.path.stat().st_size
        file_ext = FileExtension.ext(asset, add_if_missing=True)
        file_ext.size = size
        if size <= CHECKSUM_MAX_BYTES:
            file_ext.checksum = _multihash_sha256(spec.path)
        if spec.path.suffix == ".tif":
            bands, raster_proj = _raster_bands(spec.path)
            RasterExtension.ext(asset, add_if_missing=True).bands = bands
            asset_proj = ProjectionExtension.ext(asset, add_if_missing=True)
            asset_proj.shape = raster_proj["shape"]
            asset_proj.transform = raster_proj["transform"]
            if proj is None or raster_proj["code"] != proj["code"]:
                asset_proj.code = raster_proj["code"]
    return item


def _item_dict(item: pystac.Item, item_path: Path, collection_id: str) -> dict[str, Any]:
    """Return the item as JSON with relative asset hrefs and root/parent/collection/self links."""
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    for asset in data["assets"].values():
        asset["href"] = os.path.relpath(asset["href"], item_path.parent)
    data["collection"] = collection_id
    data["links"] = [
        {"rel": "root", "href": "../../catalog.json", "type": pystac.MediaType.JSON},
        {"rel": "parent", "href": "../collection.json", "type": pystac.MediaType.JSON},
        {"rel": "collection", "href": "../collection.json", "type": pystac.MediaType.JSON},
        {"rel": "self", "href": item_path.resolve().as_uri(), "type": pystac.MediaType.GEOJSON},
    ]
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except ValueError as err:
        raise CatalogueError(
            f"{path}: not readable JSON ({err}); remove it and re-publish the runs to rebuild"
        ) from None


def _collection_extent(items: list[dict[str, Any]]) -> dict[str, Any]:
    boxes = [i["bbox"] for i in items if i.get("bbox")]
    times: list[str] = []
    for item in items:
        props = item["properties"]
        times += [t for t in (props.get("datetime"), props.get("start_datetime"),
                              props.get("end_datetime")) if t]
    spatial = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                max(b[3] for b in boxes)] if boxes else [-180.0, -90.0, 180.0, 90.0])
    parsed = sorted(dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
    interval = ([_iso(parsed[0]), _iso(parsed[-1])] if parsed else [None, None])
    return {"spatial": {"bbox": [spatial]}, "temporal": {"interval": [interval]}}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish_run_items(
    root: str | os.PathLike[str],
    collection_id: str,
    run_key: str,
    items: Sequence[pystac.Item],
) -> dict[str, Any]:
    """Replace the items of one run in a collection of the catalogue; create what is missing.

    Args:
        root: the data root (the catalogue is ``{root}/catalogue``).
        collection_id: one of :data:`COLLECTIONS`.
        run_key: the run (a day, an agronomic year); its previous items are replaced.
        items: from :func:`build_item`.

    Returns:
        ``catalog``, ``collection`` and ``items`` paths, and ``n_items`` in the collection.

    Raises:
        CatalogueError: an unknown collection, or an unreadable catalogue file.

    """
    if collection_id not in COLLECTIONS:
        raise CatalogueError(
            f"collection {collection_id!r} unknown; allowed: {sorted(COLLECTIONS)}"
        )
    safe_name("run_key", run_key)
    for item in items:
        safe_name("item id", item.id)
    base = catalogue_dir(root)
    folder = base / collection_id
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with output_lock(folder):
        run_dir = folder / run_key
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir()
        for item in items:
            path = run_dir / f"{item.id}.json"
            atomic_write_json(path, _item_dict(item, path, collection_id))
            written.append(path)
        item_files = sorted(folder.glob("*/*.json"))
        item_dicts = [d for d in (_read_json(p) for p in item_files) if d is not None]
        collection_path = folder / "collection.json"
        atomic_write_json(collection_path, _collection_dict(collection_id, item_files, item_dicts,
                                                           collection_path))
    with output_lock(base):
        catalog_path = base / "catalog.json"
        children = sorted(p.parent.name for p in base.glob("*/collection.json"))
        atomic_write_json(catalog_path, _catalog_dict(children, catalog_path))
    log.info("catalogue %s: %d item(s) of run %s; %d in the collection", collection_id,
             len(items), run_key, len(item_files))
    return {"catalog": str(catalog_path), "collection": str(collection_path),
            "items": [str(p) for p in written], "n_items": len(item_files)}


def _collection_dict(collection_id: str, item_files: list[Path], items: list[dict[str, Any]],
                     path: Path) -> dict[str, Any]:
    title, description = COLLECTIONS[collection_id]
    extensions = sorted({e for i in items for e in i.get("stac_extensions", [])})
    collection = pystac.Collection(
        id=collection_id, title=title, description=description, license="other",
        extent=pystac.Extent.from_dict(_collection_extent(items)),
        providers=[pystac.Provider(name="eeflow", roles=[pystac.ProviderRole.PROCESSOR,
                                                          pystac.ProviderRole.PRODUCER])],
    )
    data = collection.to_dict(include_self_link=False, transform_hrefs=False)
    data["stac_extensions"] = []  # items declare theirs; the collection itself uses none
    data["links"] = [
        {"rel": "root", "href": "../catalog.json", "type": pystac.MediaType.JSON},
        {"rel": "parent", "href": "../catalog.json", "type": pystac.MediaType.JSON},
        {"rel": "self", "href": path.resolve().as_uri(), "type": pystac.MediaType.JSON},
        *({"rel": "item", "href": f"./{p.parent.name}/{p.name}",
           "type": pystac.MediaType.GEOJSON} for p in item_files),
    ]
    data["summaries"] = {"eeflow:item_extensions": extensions} if extensions else {}
    return data


def _catalog_dict(children: list[str], path: Path) -> dict[str, Any]:
    catalog = pystac.Catalog(
        id=ROOT_ID, title="eeflow products",
        description="Sea-ice charts, crop-type maps, field instances and model evaluations "
        "published by eeflow.",
    )
    data = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "root", "href": "./catalog.json", "type": pystac.MediaType.JSON},
        {"rel": "self", "href": path.resolve().as_uri(), "type": pystac.MediaType.JSON},
        *({"rel": "child", "href": f"./{c}/collection.json", "type": pystac.MediaType.JSON,
           "title": COLLECTIONS.get(c, (c,))[0]} for c in children),
    ]
    return data
