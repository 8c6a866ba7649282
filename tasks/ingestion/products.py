"""One catalogue hit, whatever the catalogue (OData product or STAC item)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Asset:
    """One file to fetch: URL, expected size (0 = unknown) and checksums by algorithm.

    ``checksums`` maps a hashlib-style algorithm name (``md5``, ``sha256``, ``sha3_256``,
    ``blake3`` ...) to the lower-case hex digest the catalogue gives.
    """

    key: str
    href: str
    size: int = 0
    checksums: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None


@dataclass(frozen=True)
class CatalogueProduct:
    """A product found by a search.

    ``footprint`` is a shapely geometry in WGS84 lon/lat; ``properties`` holds the catalogue's
    attributes (OData ``Attributes`` or STAC ``properties``); ``assets`` the files to fetch (one
    zip for OData, the selected assets of a STAC item); ``item`` the STAC item JSON (STAC only).
    """

    id: str
    name: str
    start_time: dt.datetime
    footprint: Any
    provider: str
    assets: tuple[Asset, ...]
    online: bool = True
    properties: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """Small JSON summary (no URLs with secrets: hrefs carry none, tokens go in headers)."""
        return {
            "id": self.id,
            "name": self.name,
            "start_time": self.start_time.isoformat(),
            "provider": self.provider,
            "online": self.online,
            "assets": [a.key for a in self.assets],
        }
