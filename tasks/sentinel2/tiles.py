"""Grid of a (synthetic) Sentinel-2 tile: UTM CRS, 10 m geotransform and size.

Real MGRS tiles are 109.8 km squares; the generator places a ``size_px`` x ``size_px`` 10 m area
at the corner of the 100 km square named by the tile id, so tiles never overlap and their
position depends on the id only (not on the config order). Up to 4096 px (41 km) per tile the
areas of tiles differing in the column or row letter (mod 8 / mod 4) do not overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from affine import Affine

PIXEL_SIZE_M = 10.0
_TILE_RE = re.compile(r"^(?P<zone>[0-9]{2})(?P<band>[C-X])(?P<col>[A-Z])(?P<row>[A-Z])$")


@dataclass(frozen=True)
class TileGrid:
    """Pixel grid of one tile at 10 m.

    Attributes:
        tile: MGRS tile id, e.g. ``33UWP``.
        epsg: EPSG code of the UTM zone (WGS 84 / UTM, 326xx north, 327xx south).
        transform: affine pixel -> map transform (pixel corners, y pointing down).
        width: columns (x).
        height: rows (y).

    """

    tile: str
    epsg: int
    transform: Affine
    width: int
    height: int

    @property
    def crs(self) -> str:
        """Return the CRS as ``EPSG:xxxxx``."""
        return f"EPSG:{self.epsg}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return (left, bottom, right, top) in map units (metres)."""
        left, top = self.transform.c, self.transform.f
        return (
            left, top + self.transform.e * self.height, left + self.transform.a * self.width, top
        )

    def gdal_transform(self) -> tuple[float, ...]:
        """Return the GDAL geotransform (x0, dx, 0, y0, 0, dy)."""
        return tuple(self.transform.to_gdal())

    def x_coords(self) -> list[float]:
        """Return pixel-centre x coordinates (metres)."""
        return [self.transform.c + self.transform.a * (i + 0.5) for i in range(self.width)]

    def y_coords(self) -> list[float]:
        """Return pixel-centre y coordinates (metres)."""
        return [self.transform.f + self.transform.e * (j + 0.5) for j in range(self.height)]


def synthetic_tile_grid(tile: str, size_px: int) -> TileGrid:
    """Return the deterministic grid of a generated tile (see module docstring)."""
    match = _TILE_RE.match(tile)
    if match is None:
        raise ValueError(f"tile id {tile!r} is not an MGRS id like 33UWP")
    zone = int(match["zone"])
    if not 1 <= zone <= 60:
        raise ValueError(f"tile id {tile!r}: UTM zone {zone} is not in 1..60")
    north = match["band"] >= "N"
    epsg = (32600 if north else 32700) + zone
    col = ord(match["col"]) - ord("A")
    row = ord(match["row"]) - ord("A")
    left = 350_000.0 + 50_000.0 * (col % 8)  # Austria lies at 400-700 km easting in zone 33
    top = (5_200_000.0 if north else 9_000_000.0) + 50_000.0 * (row % 4) + size_px * PIXEL_SIZE_M
    transform = Affine(PIXEL_SIZE_M, 0.0, left, 0.0, -PIXEL_SIZE_M, top)
    return TileGrid(tile=tile, epsg=epsg, transform=transform, width=size_px, height=size_px)
