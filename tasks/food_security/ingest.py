"""Crop ingest: the agronomic year's Sentinel-2 L2A tiles and the parcel map.

Sources (``ingest.source``): ``generator`` (:func:`tasks.sentinel2.generator.run_generate`),
``directory`` (an existing archive, nothing to do) and ``stac``: a STAC API search (Earth Search,
CDSE STAC) for the configured tiles over the agronomic year, with the band and SCL assets
downloaded through :mod:`tasks.ingestion` into the archive layout of :mod:`tasks.sentinel2.l2a`::

    {root}/food_security/ingest/{agronomic_year}/l2a/{tile}/{item_id}/{item_id}.json + assets
    {root}/food_security/ingest/{agronomic_year}/parcels.parquet   (from ingest.parcel_map)

The item JSON keeps the provider's properties and asset keys; asset hrefs point at the local
files. The folder is replaced atomically and its manifest lists what was fetched.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig
from tasks.errors import EeflowError
from tasks.ingestion.products import Asset, CatalogueProduct
from tasks.storage import agronomic_year, agronomic_year_key, atomic_dir, stage_dir, write_manifest

log = logging.getLogger(__name__)

L2A_DIR = "l2a"
PARCELS_FILE = "parcels.parquet"

#: STAC asset keys of the ten bands + SCL, per provider.
DEFAULT_ASSETS = {
    "earth_search": ["blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
                     "swir16", "swir22", "scl"],
    "cdse_stac": ["B02_10m", "B03_10m", "B04_10m", "B05_20m", "B06_20m", "B07_20m", "B08_10m",
                  "B8A_20m", "B11_20m", "B12_20m", "SCL_20m"],
}
_TILE_IN_NAME = re.compile(r"_T?(\d{2}[C-X][A-Z]{2})_")


class NoAcquisitionsError(EeflowError, RuntimeError):
    """The catalogue has no usable acquisition of a configured tile for the year."""


def item_tile(item: dict[str, Any]) -> str | None:
    """MGRS tile of a STAC item (``grid:code``, ``mgrs:*``, ``s2:tile_id`` or the id)."""
    props = item.get("properties", {})
    code = str(props.get("grid:code") or "")
    if code.startswith("MGRS-"):
        return code[5:]
    if {"mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"} <= set(props):
        return (f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}"
                f"{props['mgrs:grid_square']}")
    match = _TILE_IN_NAME.search(str(item.get("id", "")))
    return match.group(1) if match else None


def folder_name(product: CatalogueProduct, tile: str) -> str:
    """Return the archive folder of an item: Earth-Search id, else ``S2X_{tile}_{date}_0_L2A``."""
    if re.match(r"^S2[ABCD]_\d{2}[C-X][A-Z]{2}_\d{8}_\d+_L2A$", product.id):
        return product.id
    platform = product.id[:3] if product.id.startswith("S2") else "S2X"
    return f"{platform}_{tile}_{product.start_time:%Y%m%d}_0_L2A"


def search_year(cfg: FoodSecurityConfig, run_date: dt.date | str) -> list[CatalogueProduct]:
    """Search the STAC API for the configured tiles' L2A items of the agronomic year."""
    from tasks.ingestion.stac import search_stac

    catalogue = cfg.ingest.catalogue
    first, last = agronomic_year(run_date)
    tiles = {t.id for t in cfg.ingest.generator.tiles}
    area = None
    if catalogue.area:
        from tasks.config.ingestion import parse_area

        area = parse_area(catalogue.area)

    def other_tile(item: dict[str, Any]) -> str | None:
        tile = item_tile(item)
        return None if tile in tiles else f"tile {tile} is not one of {sorted(tiles)}"

    return search_stac(
        catalogue,
        collections=catalogue.collections or ["sentinel-2-l2a"],
        start=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
        end=dt.datetime.combine(last, dt.time(23, 59, 59), tzinfo=dt.UTC),
        area=area,
        asset_keys=catalogue.assets or DEFAULT_ASSETS.get(catalogue.provider),
        extra_filter=other_tile,
    )


def _write_parcels(source: str, target: Path) -> int:
    import geopandas as gpd

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"ingest.parcel_map {source} does not exist; give the year's parcel map "
            "(GeoParquet / GeoPackage)"
        )
    frame = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    frame.to_parquet(target, index=False)
    return len(frame)


def ingest_year(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Run the crop ingest of the agronomic year containing ``run_date`` for ``ingest.source``.

    Returns:
        the small summary of the source: ``{"output", "archive", "parcel_map",
        "agronomic_year", "acquisitions": {tile: n}, ...}``.

    Raises:
        NoAcquisitionsError: a configured tile has no item in the catalogue for the year.
        MissingCredentialsError: the provider needs a token and none is set.

    """
    source = cfg.ingest.source
    if source == "generator":
        from tasks.sentinel2.generator import run_generate

        return run_generate(cfg, run_date)
    if source == "directory":
        return {"source": source, "directory": cfg.ingest.directory,
                "parcel_map": cfg.ingest.parcel_map}
    from tasks.ingestion.credentials import access_token
    from tasks.ingestion.fetch import fetch_product

    catalogue = cfg.ingest.catalogue
    token = access_token(catalogue)
    key = agronomic_year_key(run_date)
    products = search_year(cfg, run_date)
    tiles = [t.id for t in cfg.ingest.generator.tiles]
    counts = {tile: 0 for tile in tiles}
    final = stage_dir(cfg.resolved_root(), cfg.use_case, "ingest", key)
    fetched = []
    with atomic_dir(final) as tmp:
        for product in products:
            tile = item_tile(product.item or {}) or "unknown"
            folder = folder_name(product, tile)
            item_dir = tmp / L2A_DIR / tile / folder

            def local_name(_product: CatalogueProduct, asset: Asset, _dir: Path = item_dir) -> str:
                suffix = Path(asset.href.split("?")[0].rstrip("/")).suffix or ".tif"
                return str(_dir.relative_to(tmp) / f"{asset.key}{suffix}")

            entry = fetch_product(product, tmp, catalogue, token=token, filename=local_name)
            item = copy.deepcopy(product.item or {})
            for asset in product.assets:
                body = item["assets"][asset.key]
                body["href"] = Path(local_name(product, asset)).name
                body.pop("alternate", None)
            item["assets"] = {k: item["assets"][k] for k in (a.key for a in product.assets)}
            (item_dir / f"{folder}.json").write_text(json.dumps(item, indent=1))
            counts[tile] = counts.get(tile, 0) + 1
            fetched.append(entry)
        empty = [t for t in tiles if counts.get(t, 0) == 0]
        if empty:
            raise NoAcquisitionsError(
                f"no Sentinel-2 L2A item for tile(s) {empty} in {key} at "
                f"{catalogue.resolved_search_url()} (collections "
                f"{catalogue.collections or ['sentinel-2-l2a']}, cloud cover <= "
                f"{catalogue.cloud_cover_max}); widen the filters or remove the tiles from "
                "ingest.generator.tiles"
            )
        assert cfg.ingest.parcel_map is not None  # checked by the config model
        n_parcels = _write_parcels(cfg.ingest.parcel_map.replace("{agronomic_year}", key),
                                   tmp / PARCELS_FILE)
        write_manifest(
            tmp, stage="ingest",
            inputs={"source": source, "provider": catalogue.provider,
                    "search_url": catalogue.resolved_search_url(),
                    "parcel_map": cfg.ingest.parcel_map},
            config_hash=config_hash(cfg.ingest),
            counts={"acquisitions": counts, "parcels": n_parcels},
            extra={"agronomic_year": key, "source": source, "fetched": fetched},
        )
    return {
        "output": str(final),
        "archive": str(final / L2A_DIR),
        "parcel_map": str(final / PARCELS_FILE),
        "agronomic_year": key,
        "acquisitions": counts,
        "parcels": n_parcels,
    }
