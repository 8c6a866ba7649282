"""Cut raster and vector products to a requested region (on-demand processing).

A run asked for a region (the DAGs' ``region`` param, config key ``ingest.catalogue.area``: WKT or
GeoJSON in WGS84) publishes products that cover only that region:

- a raster is cut to the region's bounding box in the raster's CRS, snapped outward to whole
  cells of the raster's grid (so the cut cells are the uncut raster's cells, not resampled), and
  the cells whose centre lies outside the region polygon are set to the raster's nodata;
- vectors are clipped to the region polygon (in their own CRS).

A region that does not intersect the scene / tile raises :class:`RegionError` naming the region
and the product's extent, before anything is written. Runs without a region do not come here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.errors import EeflowError

#: Longest edge (degrees) of the region polygon before it is reprojected (densified first, so its
#: straight lon/lat edges follow their true path in a projected CRS).
DENSIFY_DEG = 0.05


class RegionError(EeflowError, ValueError):
    """The requested region does not intersect the scene or tile to be cut (bad input)."""


@dataclass(frozen=True)
class Region:
    """A requested region: a lon/lat (WGS84 / CRS84) shapely geometry."""

    lonlat: Any

    @classmethod
    def from_area(cls, area: str | None) -> Region | None:
        """Return the region of ``ingest.catalogue.area`` (WKT, GeoJSON or a file), or None."""
        if not area:
            return None
        from tasks.config.ingestion import parse_area

        return cls(parse_area(area))

    @property
    def wkt(self) -> str:
        """WKT of the region (lon/lat, 7 decimals)."""
        import shapely

        return str(shapely.to_wkt(self.lonlat, rounding_precision=7))

    def describe(self) -> str:
        """Short text for messages: the WKT (shortened) and its lon/lat bbox."""
        text = self.wkt if len(self.wkt) <= 160 else self.wkt[:157] + "..."
        bbox = ", ".join(f"{v:.4f}" for v in self.lonlat.bounds)
        return f"region {text} (lon/lat bbox {bbox})"

    def in_crs(self, crs: Any) -> Any:
        """Return the region polygon in ``crs`` (densified in lon/lat first)."""
        import shapely
        from pyproj import CRS, Transformer

        target = CRS.from_user_input(crs)
        forward = Transformer.from_crs("OGC:CRS84", target, always_xy=True)
        dense = shapely.segmentize(self.lonlat, DENSIFY_DEG)
        projected = shapely.transform(
            dense, lambda xy: np.column_stack(forward.transform(xy[:, 0], xy[:, 1])))
        return projected if projected.is_valid else shapely.make_valid(projected)

    def record(self, cut: dict[str, Any] | None = None) -> dict[str, Any]:
        """Manifest entry: the region (WKT, CRS84) and, when given, how a product was cut."""
        entry: dict[str, Any] = {"wkt": self.wkt, "crs": "OGC:CRS84",
                                 "bbox": [round(v, 7) for v in self.lonlat.bounds]}
        if cut is not None:
            entry["cut"] = cut
        return entry


def raster_extent(transform: Any, width: int, height: int) -> Any:
    """Polygon of a raster grid's extent (its CRS) from an affine or GDAL geotransform."""
    import shapely

    affine = _affine(transform)
    corners = [affine @ (0, 0), affine @ (width, 0), affine @ (width, height),
               affine @ (0, height)]
    return shapely.Polygon(corners)


def require_overlap(region: Region, region_crs: Any, extent: Any, crs: Any, what: str) -> None:
    """Raise :class:`RegionError` when the region (in ``crs``) misses ``extent`` (or only touches).

    Args:
        region: the requested region.
        region_crs: the region polygon in ``crs`` (:meth:`Region.in_crs`).
        extent: the scene's / tile's extent polygon in ``crs``.
        crs: the product's CRS (for the message).
        what: names the scene or tile, e.g. ``scene S1A_...``.

    """
    if region_crs.intersection(extent).area > 0:
        return
    from pyproj import CRS, Transformer

    bounds = ", ".join(f"{v:.1f}" for v in extent.bounds)
    inverse = Transformer.from_crs(CRS.from_user_input(crs), "OGC:CRS84", always_xy=True)
    x, y = inverse.transform(*np.asarray(extent.exterior.coords).T)
    lonlat = f"{np.nanmin(x):.4f}, {np.nanmin(y):.4f}, {np.nanmax(x):.4f}, {np.nanmax(y):.4f}"
    raise RegionError(
        f"{region.describe()} does not intersect {what}: its extent is ({bounds}) in {crs}, "
        f"about lon/lat ({lonlat}); request a region over the data, or run without a region"
    )


def cut_window(transform: Any, width: int, height: int, region_crs: Any) -> tuple[int, ...]:
    """(col_off, row_off, cols, rows) of the region's bbox snapped outward to the grid's cells.

    The window is limited to the raster; it is empty (cols or rows 0) when they do not overlap.
    """
    inverse = ~_affine(transform)
    x0, y0, x1, y1 = region_crs.bounds
    cols, rows = zip(*(inverse @ (x, y) for x in (x0, x1) for y in (y0, y1)), strict=True)
    eps = 1e-9  # a bbox edge on a cell edge does not take the next cell
    c0 = max(0, math.floor(min(cols) + eps))
    r0 = max(0, math.floor(min(rows) + eps))
    c1 = min(width, math.ceil(max(cols) - eps))
    r1 = min(height, math.ceil(max(rows) - eps))
    return c0, r0, max(0, c1 - c0), max(0, r1 - r0)


def cut_raster(source: Path, target: Path, region_crs: Any) -> dict[str, Any]:
    """Write ``source`` cut to the region as a tiled GeoTIFF ``target``; return what was cut.

    Every band is cut to :func:`cut_window`; cells whose centre lies outside ``region_crs`` (the
    region in the raster's CRS) become the raster's nodata. Profile, tags and the first band's
    colour table are kept.

    Raises:
        RegionError: the region does not overlap the raster, or the raster has no nodata value.

    """
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    with rasterio.open(source) as src:
        col, row, cols, rows = cut_window(src.transform, src.width, src.height, region_crs)
        if cols == 0 or rows == 0:
            raise RegionError(f"the region does not overlap {source.name} "
                              f"(bounds {tuple(src.bounds)} in {src.crs})")
        if src.nodata is None:
            raise RegionError(f"{source.name} has no nodata value to mark cells outside the "
                              "region")
        window = Window(col, row, cols, rows)
        transform = src.window_transform(window)
        data = src.read(window=window)
        outside = geometry_mask([region_crs], out_shape=(rows, cols), transform=transform)
        data[:, outside] = src.nodata
        profile = src.profile
        profile.update(width=cols, height=rows, transform=transform)
        tags = src.tags()
        band_tags = [src.tags(i) for i in src.indexes]
        try:
            colormap = src.colormap(1)
        except ValueError:  # no colour table
            colormap = None
        bounds = list(rasterio.windows.bounds(window, src.transform))
        crs = src.crs.to_string() if src.crs else None
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        for index, band in enumerate(band_tags, start=1):
            if band:
                dst.update_tags(index, **band)
        if colormap is not None:
            dst.write_colormap(1, colormap)
    return {"window": [col, row, cols, rows], "bounds": bounds, "crs": crs,
            "cells_outside_region": int(outside.sum())}


def clip_polygon(geometry: Any, region_crs: Any) -> Any:
    """Return the polygonal part of ``geometry`` inside ``region_crs`` (empty: none)."""
    import shapely

    clipped = shapely.intersection(geometry, region_crs)
    if clipped.geom_type in {"Polygon", "MultiPolygon"}:
        return clipped
    parts = [p for p in shapely.get_parts(clipped) if p.geom_type in {"Polygon", "MultiPolygon"}]
    polygons = [q for p in parts for q in shapely.get_parts(p)]
    return shapely.MultiPolygon(polygons) if polygons else shapely.Polygon()


def _affine(transform: Any) -> Any:
    from rasterio.transform import Affine

    if isinstance(transform, Affine):
        return transform
    return Affine.from_gdal(*(float(v) for v in transform))  # a GDAL geotransform
