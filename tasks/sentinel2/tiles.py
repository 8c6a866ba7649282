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


#: The paper's crop setting (Table IV): 15 Sentinel-2 tiles over Austria, 13 for training, one for
#: validation, T33UVP for testing. Real MGRS ids: zone 32 covers Vorarlberg / Tyrol (32TNT,
#: 32TPT, 32TQT, 32UPU, 32UQU), zone 33 the rest (33TUM ... 33UXQ); the generator writes one
#: parcel map in the first tile's CRS (zone 33) and the stages reproject it per tile. Their
#: generated areas do not overlap (distinct column / row letters mod 8 / mod 4 within each zone,
#: see the module docstring).
PAPER_TILES: tuple[str, ...] = (
    "33TUM", "33TUN", "33TVN", "33TWN", "33UUP", "33UWP", "33UXP", "33UWQ", "33UXQ",
    "32TNT", "32TPT", "32TQT", "32UPU", "32UQU",
    "33UVP",
)
PAPER_TEST_TILE = "33UVP"
PAPER_VAL_TILE = "33UWQ"


def paper_tiles(size_px: int, parcels_per_256px: int = 120) -> dict[str, object]:
    """Config overrides for the paper's 15-tile crop setting at ``size_px`` px per tile.

    Returns ``{"ingest.generator.size_px", "ingest.generator.tiles", "samples.split",
    "evaluate.tile", "predict.tile"}`` for :func:`tasks.config.common.load_config`: the 15
    :data:`PAPER_TILES`, split 13 / 1 / 1 (validation :data:`PAPER_VAL_TILE`, test
    :data:`PAPER_TEST_TILE`, which no other split sees). Parcels scale with the tile area (the
    default config's 120 parcels per 256 px tile, ~4.6 ha each); revisits alternate 5 / 3 days
    (orbit overlaps) and every third tile has one fully clouded month, as in the default config.
    Class imbalance comes from the generator's crop shares (``crop_shares.csv``).

    Raises:
        ValueError: ``size_px`` outside 32..4096 or odd, or ``parcels_per_256px`` < 1.

    """
    if not 32 <= size_px <= 4096 or size_px % 2:
        raise ValueError(f"size_px must be an even number of pixels in 32..4096, got {size_px}")
    if parcels_per_256px < 1:
        raise ValueError(f"parcels_per_256px must be >= 1, got {parcels_per_256px}")
    parcels = max(1, round(parcels_per_256px * (size_px / 256) ** 2))
    tiles: list[dict[str, object]] = []
    for k, tile in enumerate(PAPER_TILES):
        entry: dict[str, object] = {"id": tile, "revisit_days": 3 if k % 2 else 5,
                                    "parcels": parcels}
        if k % 3 == 2:
            entry["clouded_months"] = [(k * 5) % 12 + 1]
        tiles.append(entry)
    train = [t for t in PAPER_TILES if t not in (PAPER_VAL_TILE, PAPER_TEST_TILE)]
    return {
        "ingest.generator.size_px": size_px,
        "ingest.generator.tiles": tiles,
        "samples.split": {"train_tiles": train, "val_tiles": [PAPER_VAL_TILE],
                          "test_tiles": [PAPER_TEST_TILE]},
        "evaluate.tile": PAPER_TEST_TILE,
        "predict.tile": PAPER_TEST_TILE,
    }
