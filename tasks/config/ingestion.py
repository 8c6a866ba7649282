"""Config of catalogue search and download, shared by the polar and food-security ingest sections.

``ingest.catalogue`` names the provider (``cop_dataspace`` / ``creodias`` OData, ``earth_search`` /
``cdse_stac`` STAC APIs), its endpoints (defaults per provider, any URL for a mirror or a local
server), the search filters (area as bbox / WKT / GeoJSON, cloud cover, orbit) and the download
settings (retries, backoff, checksum, unpacked-size cap). Credentials are never config values: the
config names the environment variable or the Airflow connection that holds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from tasks.config.common import StrictModel

Provider = Literal["cop_dataspace", "creodias", "earth_search", "cdse_stac"]

#: provider -> protocol, search endpoint, download URL template (OData: ``{id}``), needs a token.
PROVIDERS: dict[str, dict[str, Any]] = {
    "cop_dataspace": {
        "protocol": "odata",
        "search_url": "https://catalogue.dataspace.copernicus.eu/odata/v1/Products",
        "download_url": "https://download.dataspace.copernicus.eu/odata/v1/Products({id})/$value",
        "token_required": True,
    },
    "creodias": {
        "protocol": "odata",
        "search_url": "https://datahub.creodias.eu/odata/v1/Products",
        "download_url": "https://zipper.creodias.eu/odata/v1/Products({id})/$value",
        "token_required": True,
    },
    "earth_search": {
        "protocol": "stac",
        "search_url": "https://earth-search.aws.element84.com/v1",
        "download_url": None,
        "token_required": False,
    },
    "cdse_stac": {
        "protocol": "stac",
        "search_url": "https://stac.dataspace.copernicus.eu/v1",
        "download_url": None,
        "token_required": True,
    },
}


class CredentialsConfig(StrictModel):
    """Where the download token comes from (never the token itself)."""

    token_env: str = Field(
        default="CDSE_ACCESS_TOKEN",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding the bearer access token",
    )
    airflow_conn_id: str | None = Field(
        default=None,
        description="Airflow connection whose password is the token (used when the environment "
        "variable is unset and Airflow is installed)",
    )


class DownloadConfig(StrictModel):
    """How products are fetched."""

    retries: int = Field(default=5, ge=0, le=20, description="attempts after the first one")
    backoff_s: float = Field(default=2.0, ge=0, le=300, description="first backoff; doubles")
    max_backoff_s: float = Field(default=120.0, ge=0, le=3600)
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="socket timeout")
    chunk_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 28)
    require_checksum: bool = Field(
        default=False,
        description="refuse products the catalogue gives no checksum for (default: fetch them "
        "and record 'checksum: none' in the manifest)",
    )
    extract: bool = Field(default=True, description="unpack zip products (SAFE folders)")
    max_unpacked_bytes: int = Field(
        default=20 * 2**30, ge=1, description="refuse archives that unpack to more than this"
    )


class CatalogueConfig(StrictModel):
    """A catalogue to search and download from (``ingest.source: cdse_odata`` or ``stac``)."""

    provider: Provider = "cop_dataspace"
    search_url: str | None = Field(
        default=None, description="OData Products URL or STAC API root; default per provider"
    )
    download_url: str | None = Field(
        default=None, description="OData download template with '{id}'; default per provider"
    )
    collections: list[str] = Field(
        default_factory=list, description="STAC collections (default per use case)"
    )
    area: str | None = Field(
        default=None,
        description="search area: WKT, GeoJSON text, or a path to a .geojson/.wkt file (WGS84); "
        "else ingest.aoi_bbox",
    )
    assets: list[str] = Field(
        default_factory=list,
        description="STAC asset keys to fetch per item (default per provider and use case)",
    )
    cloud_cover_max: float | None = Field(default=None, ge=0, le=100, description="percent")
    orbit_direction: Literal["ascending", "descending"] | None = None
    relative_orbit: int | None = Field(default=None, ge=1, le=233)
    max_products: int = Field(default=20, ge=1, le=1000, description="search cap per run")
    credentials: CredentialsConfig = CredentialsConfig()
    download: DownloadConfig = DownloadConfig()

    @property
    def protocol(self) -> str:
        """``odata`` or ``stac``."""
        return str(PROVIDERS[self.provider]["protocol"])

    def resolved_search_url(self) -> str:
        """Return the search endpoint: ``search_url`` or the provider's default."""
        return self.search_url or str(PROVIDERS[self.provider]["search_url"])

    def resolved_download_url(self) -> str | None:
        """Return the OData download template (``{id}``), or None for STAC (asset hrefs)."""
        return self.download_url or PROVIDERS[self.provider]["download_url"]

    @property
    def token_required(self) -> bool:
        """Whether downloads need a bearer token."""
        return bool(PROVIDERS[self.provider]["token_required"])

    @model_validator(mode="after")
    def _check(self) -> CatalogueConfig:
        if self.download_url is not None and "{id}" not in self.download_url:
            raise ValueError(
                f"catalogue.download_url {self.download_url!r} must contain '{{id}}' (the "
                "product id), e.g. https://download.dataspace.copernicus.eu/odata/v1/"
                "Products({id})/$value"
            )
        if self.area is not None:
            parse_area(self.area)
        return self


def parse_area(text: str) -> Any:
    """Return the shapely geometry (WGS84 lon/lat) of WKT, GeoJSON text or a file holding either.

    Raises:
        ValueError: naming ``catalogue.area`` and the accepted forms.

    """
    from shapely import wkt
    from shapely.geometry import shape

    value = text.strip()
    if not value.startswith(("{", "POLYGON", "MULTIPOLYGON", "POINT", "LINESTRING")):
        path = Path(value)
        if not path.is_file():
            raise ValueError(
                f"catalogue.area {text[:80]!r} is neither WKT, GeoJSON nor an existing file; "
                "give e.g. 'POLYGON ((-20 75, 10 75, 10 82, -20 82, -20 75))' or a .geojson path"
            )
        value = path.read_text().strip()
    try:
        if value.startswith("{"):
            data = json.loads(value)
            if data.get("type") == "FeatureCollection":
                from shapely.ops import unary_union

                geometry = unary_union([shape(f["geometry"]) for f in data["features"]])
            elif data.get("type") == "Feature":
                geometry = shape(data["geometry"])
            else:
                geometry = shape(data)
        else:
            geometry = wkt.loads(value)
    except Exception as err:  # shapely / json raise many types
        raise ValueError(f"catalogue.area cannot be parsed as WKT or GeoJSON: {err}") from None
    x0, y0, x1, y1 = geometry.bounds
    if geometry.is_empty or not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise ValueError(
            f"catalogue.area must be a non-empty lon/lat (WGS84) geometry; bounds are "
            f"{geometry.bounds}"
        )
    return geometry
