"""OData catalogue search (Copernicus Data Space / CREODIAS ``/odata/v1/Products``).

Filters use the syntax of the catalogues' own ``nextLink`` URLs: ``Collection/Name``, typed
attribute lambdas (String / Double / Integer), ``OData.CSC.Intersects`` with a WKT ``geography``
and ``ContentDate`` bounds. Pages are followed through ``@odata.nextLink``. Each product becomes a
:class:`~tasks.ingestion.products.CatalogueProduct` with one asset, the product zip, carrying the
catalogue's ``ContentLength`` and ``Checksum`` entries.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from tasks.config.ingestion import CatalogueConfig
from tasks.ingestion.checksum import odata_checksums
from tasks.ingestion.products import Asset, CatalogueProduct
from tasks.sentinel1.cdse import CatalogueError, parse_products

log = logging.getLogger(__name__)

Fetch = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class ODataQuery:
    """What to search for: collection, attributes, area (WKT, lon/lat) and time window (UTC)."""

    collection: str
    start: dt.datetime
    end: dt.datetime
    area_wkt: str | None = None
    product_type: str | None = None
    mode: str | None = None
    polarisation: str | None = None
    cloud_cover_max: float | None = None
    orbit_direction: str | None = None
    relative_orbit: int | None = None


def _time(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _attr(kind: str, name: str, op: str, value: str) -> str:
    return (f"Attributes/OData.CSC.{kind}Attribute/any(att:att/Name eq '{name}' and "
            f"att/OData.CSC.{kind}Attribute/Value {op} {value})")


def build_filter(query: ODataQuery) -> str:
    """Return the ``$filter`` expression of ``query``."""
    parts = [f"Collection/Name eq '{query.collection}'"]
    if query.product_type:
        parts.append(_attr("String", "productType", "eq", f"'{query.product_type}'"))
    if query.mode:
        parts.append(_attr("String", "operationalMode", "eq", f"'{query.mode}'"))
    if query.polarisation:
        parts.append(_attr("String", "polarisationChannels", "eq", f"'{query.polarisation}'"))
    if query.cloud_cover_max is not None:
        parts.append(_attr("Double", "cloudCover", "le", f"{query.cloud_cover_max:.2f}"))
    if query.orbit_direction:
        parts.append(_attr("String", "orbitDirection", "eq", f"'{query.orbit_direction.upper()}'"))
    if query.relative_orbit is not None:
        parts.append(_attr("Integer", "relativeOrbitNumber", "eq", str(query.relative_orbit)))
    parts.append(f"ContentDate/Start ge {_time(query.start)}")
    parts.append(f"ContentDate/Start lt {_time(query.end)}")
    if query.area_wkt:
        parts.append(f"OData.CSC.Intersects(area=geography'SRID=4326;{query.area_wkt}')")
    return " and ".join(parts)


def build_url(base_url: str, query: ODataQuery, top: int) -> str:
    """Search URL with ``$filter``, ``$orderby``, ``$top`` and ``$expand=Attributes``."""
    params = urllib.parse.urlencode(
        {"$filter": build_filter(query), "$orderby": "ContentDate/Start asc", "$top": str(top),
         "$expand": "Attributes"},
        quote_via=urllib.parse.quote,
    )
    return f"{base_url}?{params}"


def http_json(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """GET ``url`` and parse JSON; errors name the URL and the answer."""
    try:
        response = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as err:
        raise CatalogueError(
            f"catalogue search {url.split('?')[0]} failed: {type(err).__name__}: {err}; check "
            "ingest.catalogue.search_url and the network"
        ) from None
    if response.status_code != 200:
        raise CatalogueError(
            f"catalogue search {url.split('?')[0]} answered HTTP {response.status_code}: "
            f"{response.text[:200]}"
        )
    try:
        return dict(response.json())
    except (ValueError, json.JSONDecodeError):
        raise CatalogueError(
            f"catalogue search {url.split('?')[0]} did not answer JSON: {response.text[:120]!r}"
        ) from None


def to_products(page: dict[str, Any], provider: str, download_url: str) -> list[CatalogueProduct]:
    """Turn one OData page into products (one zip asset each, with size and checksums)."""
    out = []
    for record, raw in zip(parse_products(page), page["value"], strict=True):
        asset = Asset(
            key="product",
            href=download_url.format(id=record.id),
            size=record.content_length,
            checksums=odata_checksums(raw.get("Checksum")),
            media_type="application/zip",
        )
        props = dict(record.attributes)
        props.update(mode=record.mode, product_type=record.product_type, mission=record.mission,
                     s3_path=record.s3_path)
        out.append(CatalogueProduct(
            id=record.id, name=record.name, start_time=record.start_time,
            footprint=record.footprint, provider=provider, assets=(asset,), online=record.online,
            properties=props,
        ))
    return out


def search_odata(
    catalogue: CatalogueConfig,
    query: ODataQuery,
    *,
    fetch: Fetch = http_json,
    max_pages: int = 50,
) -> list[CatalogueProduct]:
    """Search an OData catalogue; returns at most ``catalogue.max_products`` products."""
    download_url = catalogue.resolved_download_url()
    assert download_url is not None  # OData providers have one (config defaults)
    url: str | None = build_url(catalogue.resolved_search_url(), query, catalogue.max_products)
    log.info("OData search (%s): %s", catalogue.provider, url)
    products: list[CatalogueProduct] = []
    for _ in range(max_pages):
        if not url or len(products) >= catalogue.max_products:
            break
        page = fetch(url)
        products.extend(to_products(page, catalogue.provider, download_url))
        url = page.get("@odata.nextLink")
    return sorted(products[: catalogue.max_products], key=lambda p: p.start_time)
