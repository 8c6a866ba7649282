"""Copernicus Data Space Ecosystem (CDSE) OData catalogue client for Sentinel-1 products.

:func:`build_cdse_filter` writes the OData ``$filter`` of a day's EW GRD search (the syntax of the
real CDSE / CREODIAS ``nextLink`` URLs: ``Collection/Name eq 'SENTINEL-1'``, typed attribute
lambdas, ``OData.CSC.Intersects`` with a WKT ``geography`` and ``ContentDate`` bounds),
:func:`search_cdse` pages through ``/odata/v1/Products`` responses and :func:`parse_products`
turns them into :class:`ProductRecord` objects. :func:`download_product` streams one product zip
with a bearer token from the environment (``CDSE_ACCESS_TOKEN``). Only the standard library is used.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import box, shape

from tasks.errors import EeflowError, ErrorFamily

log = logging.getLogger(__name__)

DOWNLOAD_URL = "https://download.dataspace.copernicus.eu/odata/v1/Products({id})/$value"
_NAME = re.compile(r"^(S1[ABCD])_(EW|IW|SM|WV|S\d)_(GRD|SLC|RAW|OCN)([FHM_])_")

Fetch = Callable[[str], dict[str, Any]]


class CatalogueError(EeflowError, RuntimeError):
    """The catalogue answered with something eeflow cannot use (the message says what)."""

    family = ErrorFamily.UNAVAILABLE


@dataclass(frozen=True)
class ProductRecord:
    """One catalogue product.

    ``footprint`` is a shapely geometry in WGS84 lon/lat; ``attributes`` holds the typed OData
    attributes (``productType``, ``polarisationChannels``, ``orbitDirection`` ...).
    """

    id: str
    name: str
    start_time: dt.datetime
    end_time: dt.datetime
    footprint: Any
    online: bool
    content_length: int
    s3_path: str | None
    mission: str | None
    mode: str | None
    product_type: str | None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def download_url(self) -> str:
        """URL of the product zip on the CDSE download service."""
        return DOWNLOAD_URL.format(id=self.id)


def _odata_time(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_cdse_filter(
    day: dt.date,
    *,
    aoi_bbox: tuple[float, float, float, float] | None = None,
    product_type: str = "EW_GRDM_1S",
    mode: str = "EW",
) -> str:
    """Return the OData ``$filter`` for Sentinel-1 ``product_type`` products sensed on ``day``."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    parts = [
        "Collection/Name eq 'SENTINEL-1'",
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        f"att/OData.CSC.StringAttribute/Value eq '{product_type}')",
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'operationalMode' and "
        f"att/OData.CSC.StringAttribute/Value eq '{mode}')",
        f"ContentDate/Start ge {_odata_time(start)}",
        f"ContentDate/Start lt {_odata_time(end)}",
    ]
    if aoi_bbox is not None:
        x0, y0, x1, y1 = aoi_bbox
        ring = f"{x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}"
        parts.append(f"OData.CSC.Intersects(area=geography'SRID=4326;POLYGON (({ring}))')")
    return " and ".join(parts)


def build_cdse_url(base_url: str, odata_filter: str, top: int = 20) -> str:
    """Return the search URL: ``$filter``, ``$orderby``, ``$top`` and ``$expand=Attributes``."""
    query = urllib.parse.urlencode(
        {
            "$filter": odata_filter,
            "$orderby": "ContentDate/Start asc",
            "$top": str(top),
            "$expand": "Attributes",
        },
        quote_via=urllib.parse.quote,
    )
    return f"{base_url}?{query}"


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _footprint(item: dict[str, Any]) -> Any:
    if item.get("GeoFootprint"):
        return shape(item["GeoFootprint"])
    text = item.get("Footprint") or ""
    match = re.search(r"SRID=4326;(.+?)'?$", text)
    if match:
        from shapely import wkt

        return wkt.loads(match.group(1).rstrip("'"))
    raise CatalogueError(f"product {item.get('Name')!r} has neither GeoFootprint nor Footprint")


def parse_products(payload: dict[str, Any]) -> list[ProductRecord]:
    """Parse an OData ``/Products`` response (``value`` list) into records."""
    if not isinstance(payload, dict) or "value" not in payload:
        raise CatalogueError(
            f"not an OData Products response: expected a 'value' list, got keys "
            f"{sorted(payload) if isinstance(payload, dict) else type(payload).__name__}"
        )
    records = []
    for item in payload["value"]:
        try:
            attributes = {a["Name"]: a.get("Value") for a in item.get("Attributes", [])}
            name = str(item["Name"])
            match = _NAME.match(name)
            records.append(
                ProductRecord(
                    id=str(item["Id"]),
                    name=name,
                    start_time=_parse_time(item["ContentDate"]["Start"]),
                    end_time=_parse_time(item["ContentDate"]["End"]),
                    footprint=_footprint(item),
                    online=bool(item.get("Online", True)),
                    content_length=int(item.get("ContentLength") or 0),
                    s3_path=item.get("S3Path"),
                    mission=match.group(1) if match else None,
                    mode=attributes.get("operationalMode") or (match.group(2) if match else None),
                    product_type=match.group(3) if match else attributes.get("productType"),
                    attributes=attributes,
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CatalogueError(
                f"catalogue product {item.get('Name', '?')!r}: missing or bad field: {err}"
            ) from err
    return records


def _http_json(url: str, timeout: float = 60.0) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # https URL
        return json.loads(response.read())


def iter_search_pages(url: str, fetch: Fetch = _http_json, max_pages: int = 50) -> Iterator[dict]:
    """Yield response pages, following ``@odata.nextLink``."""
    for _ in range(max_pages):
        page = fetch(url)
        yield page
        next_url = page.get("@odata.nextLink")
        if not next_url:
            return
        url = next_url


def search_cdse(
    base_url: str,
    day: dt.date,
    *,
    aoi_bbox: tuple[float, float, float, float] | None = None,
    product_type: str = "EW_GRDM_1S",
    mode: str = "EW",
    max_products: int = 20,
    fetch: Fetch = _http_json,
) -> list[ProductRecord]:
    """Search the CDSE catalogue for the day's Sentinel-1 products (newest IPF first kept).

    Args:
        base_url: ``.../odata/v1/Products``.
        day: sensing day (UTC).
        aoi_bbox: lon_min, lat_min, lon_max, lat_max.
        product_type: CDSE ``productType`` attribute, e.g. ``EW_GRDM_1S``.
        mode: CDSE ``operationalMode`` attribute, e.g. ``EW``.
        max_products: stop after this many records.
        fetch: URL -> parsed JSON (injectable for tests).

    Returns:
        Records whose start time lies on ``day``, sorted by start time.

    """
    url = build_cdse_url(
        base_url,
        build_cdse_filter(day, aoi_bbox=aoi_bbox, product_type=product_type, mode=mode),
        top=max_products,
    )
    log.info("CDSE search: %s", url)
    records: list[ProductRecord] = []
    for page in iter_search_pages(url, fetch):
        records.extend(parse_products(page))
        if len(records) >= max_products:
            break
    return sorted(records[:max_products], key=lambda r: r.start_time)


def aoi_overlaps(footprint: Any, aoi_bbox: tuple[float, float, float, float] | None) -> bool:
    """Return True when ``footprint`` (lon/lat) intersects the box (or no box is given)."""
    return aoi_bbox is None or footprint.intersects(box(*aoi_bbox))


def download_product(
    record: ProductRecord,
    dest_dir: str | Path,
    *,
    token: str | None = None,
    url: str | None = None,
    chunk_bytes: int = 1 << 20,
) -> Path:
    """Stream the product zip to ``dest_dir/<name>.zip`` (written via a temporary file).

    The token comes from ``token`` or ``$CDSE_ACCESS_TOKEN`` (an OAuth access token of the CDSE
    identity service).
    """
    token = token or os.environ.get("CDSE_ACCESS_TOKEN")
    if not token:
        raise CatalogueError(
            "downloading from CDSE needs an access token: set CDSE_ACCESS_TOKEN "
            "(see https://documentation.dataspace.copernicus.eu/APIs/Token.html)"
        )
    dest = Path(dest_dir) / f"{record.name.removesuffix('.SAFE')}.zip"
    tmp = dest.with_suffix(".zip.part")
    request = urllib.request.Request(
        url or record.download_url, headers={"Authorization": f"Bearer {token}"}
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(request, timeout=300) as response, tmp.open("wb") as fh:
        while chunk := response.read(chunk_bytes):
            fh.write(chunk)
    tmp.replace(dest)
    return dest
