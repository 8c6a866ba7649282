"""STAC API search through pystac-client (Earth Search, CDSE STAC, any STAC API).

Items become :class:`~tasks.ingestion.products.CatalogueProduct` records whose assets are the
requested asset keys, each with its ``file:size`` and ``file:checksum`` (multihash) when the item
gives them. ``s3://`` hrefs with an ``alternate.https`` href (CDSE) are fetched over HTTPS.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from shapely.geometry import mapping, shape

from tasks.config.ingestion import CatalogueConfig
from tasks.ingestion.checksum import parse_multihash
from tasks.ingestion.products import Asset, CatalogueProduct
from tasks.sentinel1.cdse import CatalogueError

log = logging.getLogger(__name__)


def _parse_dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _asset(key: str, body: dict[str, Any]) -> Asset:
    href = str(body["href"])
    alternate = (body.get("alternate") or {}).get("https") or {}
    if not href.startswith(("http://", "https://")) and alternate.get("href"):
        href = str(alternate["href"])
    checksums: dict[str, str] = {}
    if body.get("file:checksum"):
        parsed = parse_multihash(str(body["file:checksum"]))
        if parsed:
            checksums[parsed[0]] = parsed[1]
    return Asset(key=key, href=href, size=int(body.get("file:size") or 0),
                 checksums=checksums, media_type=body.get("type"))


def item_to_product(
    item: dict[str, Any], provider: str, asset_keys: Sequence[str] | None
) -> CatalogueProduct:
    """One STAC item (JSON dict) as a product with the chosen assets (all data assets if None)."""
    props = item.get("properties", {})
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise CatalogueError(f"STAC item {item.get('id')!r} has no datetime / start_datetime")
    assets = item.get("assets", {})
    keys = list(asset_keys) if asset_keys else [
        k for k, a in assets.items() if "data" in (a.get("roles") or ["data"])
    ]
    missing = [k for k in keys if k not in assets]
    if missing:
        raise CatalogueError(
            f"STAC item {item.get('id')!r} has no asset(s) {missing}; it has {sorted(assets)}"
        )
    return CatalogueProduct(
        id=str(item["id"]), name=str(item["id"]), start_time=_parse_dt(str(when)),
        footprint=shape(item["geometry"]), provider=provider,
        assets=tuple(_asset(k, assets[k]) for k in keys), properties=dict(props), item=item,
    )


def search_stac(
    catalogue: CatalogueConfig,
    *,
    collections: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    area: Any | None = None,
    asset_keys: Sequence[str] | None = None,
    extra_filter: Any = None,
) -> list[CatalogueProduct]:
    """Search a STAC API with pystac-client; filters on cloud cover and orbit are re-checked here.

    Args:
        catalogue: provider, ``search_url`` (API root), ``cloud_cover_max``, orbit filters.
        collections: STAC collection ids, e.g. ``["sentinel-2-l2a"]``.
        start: start of the time window (UTC).
        end: end of the time window (UTC).
        area: shapely geometry (lon/lat) or None.
        asset_keys: assets to fetch per item (None: every data asset).
        extra_filter: callable(item dict) -> reason str | None, for use-case checks.

    """
    from pystac.errors import STACError
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    url = catalogue.resolved_search_url()
    query: dict[str, Any] = {}
    if catalogue.cloud_cover_max is not None:
        query["eo:cloud_cover"] = {"lte": catalogue.cloud_cover_max}
    try:
        client = Client.open(url)
        search = client.search(
            collections=list(collections),
            datetime=[start, end],
            intersects=mapping(area) if area is not None else None,
            query=query or None,
            max_items=catalogue.max_products,
        )
        items = [item.to_dict() for item in search.items()]
    except (APIError, STACError, OSError, ValueError) as err:
        raise CatalogueError(
            f"STAC search at {url} ({catalogue.provider}) failed: {type(err).__name__}: {err}; "
            "check ingest.catalogue.search_url and the network"
        ) from None
    log.info("STAC search %s %s %s..%s: %d item(s)", url, list(collections), start, end,
             len(items))
    products = []
    for item in items:
        props = item.get("properties", {})
        cover = props.get("eo:cloud_cover")
        if catalogue.cloud_cover_max is not None and cover is not None \
                and cover > catalogue.cloud_cover_max:
            continue
        if catalogue.orbit_direction and props.get("sat:orbit_state") not in (
                None, catalogue.orbit_direction):
            continue
        if catalogue.relative_orbit and props.get("sat:relative_orbit") not in (
                None, catalogue.relative_orbit):
            continue
        if extra_filter is not None and (reason := extra_filter(item)):
            log.info("skipping %s: %s", item.get("id"), reason)
            continue
        products.append(item_to_product(item, catalogue.provider, asset_keys))
    return sorted(products, key=lambda p: p.start_time)
