"""Parcel instances of a crop map: each declared parcel classified by the majority of its pixels.

Used by the predict stage when ``predict.instances`` is ``parcels``. A parcel's pixels are the
pixels whose centre lies inside its polygon (the labels stage's rule, without the inward buffer);
pixels without a prediction (no data) do not count. Per parcel:

- ``class_index`` / ``crop_class``: the predicted class with the most pixels; ties go to the class
  with the higher summed model probability over the parcel's pixels, then to the lower class index;
- ``confidence``: mean model (softmax) probability of that class over all the parcel's mapped
  pixels, including those whose own prediction is another class;
- ``agreement``: share of the parcel's mapped pixels predicted as that class, in (0, 1];
- ``pixels``: mapped pixels; ``area_m2``: area of the polygon;
- ``parcel_id``: the parcel map's ``FS_KENNUNG`` (its row index when it has none);
- geometry: the parcel polygon in the tile's CRS (whole, also where it reaches beyond the tile;
  only the pixels on the tile are counted).

Parcels intersecting the tile but with no mapped pixel (smaller than a pixel, or all no data) are
not written and are counted (``parcels_without_pixels``).

Memory: the parcel ids are rasterised one block of rows at a time (only the parcels intersecting the
block) and votes / probability sums are accumulated per (parcel, class) with ``np.bincount``; the
tables are parcels x classes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from tasks.errors import EeflowError
from tasks.geoparquet import check_geo_columns

log = logging.getLogger(__name__)

#: Columns of a parcel-instance table, in order (geometry last).
PARCEL_COLUMNS = ("instance_id", "parcel_id", "class_index", "crop_class", "pixels", "area_m2",
                  "confidence", "agreement", "geometry")


class ParcelMapError(EeflowError, ValueError):
    """The parcel map of parcel instances is missing or unusable; says which and why."""


def read_tile_parcels(path: Path, crs: str, transform: Any, height: int, width: int) -> Any:
    """Read the parcels of a parcel map that intersect a tile, reprojected to the tile's CRS.

    Args:
        path: GeoParquet (``.parquet``) or any vector file GeoPandas reads (GeoPackage ...).
        crs: the tile's CRS.
        transform: the tile's affine transform.
        height: tile rows.
        width: tile columns.

    Returns:
        GeoDataFrame with ``parcel_id`` and the geometry (tile CRS), in parcel-map order.

    Raises:
        ParcelMapError: the file does not exist, has no CRS, or holds non-polygon geometries.

    """
    import geopandas as gpd
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    from tasks.sentinel2.generator import PARCEL_ID_COLUMN

    if not path.is_file():
        raise ParcelMapError(
            f"parcel map {path} does not exist (predict.instances: parcels); set "
            "predict.parcel_map (or ingest.parcel_map) to the year's parcel map, or run the "
            "ingest stage for this agronomic year, or set predict.instances: connected_regions"
        )
    if path.suffix == ".parquet":
        check_geo_columns(path)
    frame = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    if frame.crs is None:
        raise ParcelMapError(f"parcel map {path} has no CRS; set one (INVEKOS: EPSG:31287)")
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * width, top + transform.e * height
    tile_box = box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    query = box(*transform_bounds(crs, frame.crs, *tile_box.bounds, densify_pts=21))
    near = frame.iloc[np.sort(frame.sindex.query(query, predicate="intersects"))]
    ids = (near[PARCEL_ID_COLUMN].to_numpy() if PARCEL_ID_COLUMN in near.columns
           else near.index.to_numpy())
    parcels = gpd.GeoDataFrame({"parcel_id": ids}, geometry=near.geometry.to_crs(crs).values,
                               crs=crs)
    parcels = parcels[~parcels.geometry.is_empty & parcels.geometry.notna()]
    parcels = parcels[parcels.geometry.intersects(tile_box)].reset_index(drop=True)
    kinds = set(parcels.geom_type)
    if kinds - {"Polygon", "MultiPolygon"}:
        raise ParcelMapError(
            f"parcel map {path} has {sorted(kinds - {'Polygon', 'MultiPolygon'})} geometries on "
            "the tile; parcels must be (multi)polygons"
        )
    log.info("%d parcels of %s intersect the tile", len(parcels), path)
    return parcels


class ParcelAggregator:
    """Accumulate per-parcel class votes and probability sums block by block.

    Args:
        geometries: parcel polygons in the tile's CRS; a parcel's position in this sequence is
            its number in the id raster.
        transform: the tile's affine transform.
        width: tile columns.
        n_classes: classes of the model.

    """

    def __init__(self, geometries: Any, transform: Any, width: int, n_classes: int) -> None:
        import shapely

        self.geometries = np.asarray(geometries, dtype=object)
        self.tree = shapely.STRtree(self.geometries)
        self.transform = transform
        self.width = width
        self.n_classes = n_classes
        n = len(self.geometries)
        self.votes = np.zeros(n * n_classes, dtype=np.int64)
        self.probability_sums = np.zeros(n * n_classes, dtype=np.float64)

    def rasterise_rows(self, start: int, stop: int) -> np.ndarray:
        """Return the parcel number (int64, -1 = none) of each pixel of rows ``start:stop``."""
        from affine import Affine
        from shapely.geometry import box

        from tasks.food_security.labels import rasterise_parcels  # scipy: not at predict import

        shape = (stop - start, self.width)
        t = self.transform
        block_transform = t @ Affine.translation(0, start)
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f + t.e * start, t.f + t.e * stop)
        hits = np.sort(self.tree.query(box(min(xs), min(ys), max(xs), max(ys)),
                                       predicate="intersects"))
        if len(hits) == 0:
            return np.full(shape, -1, dtype=np.int64)
        if len(self.geometries) >= 2**31 - 1:
            raise ParcelMapError(f"{len(self.geometries)} parcels do not fit int32 ids")
        # the labels stage's rule (pixel centre inside the parcel), on the parcels near the block
        local = rasterise_parcels(list(self.geometries[hits]), block_transform, shape)
        return np.where(local >= 0, hits[np.maximum(local, 0)], -1).astype(np.int64)

    def add_votes(self, parcel: np.ndarray, classes: np.ndarray, nodata: int) -> None:
        """Count each pixel's predicted class for its parcel (pixels outside / no data skipped)."""
        parcel, classes = parcel.ravel(), classes.ravel()
        use = (parcel >= 0) & (classes != nodata)
        if use.any():  # once per block: a table-long bincount is cheaper than sorting pixels
            self.votes += np.bincount(parcel[use] * self.n_classes + classes[use].astype(np.int64),
                                      minlength=len(self.votes))

    def add_probabilities(self, parcel: np.ndarray, probabilities: np.ndarray) -> None:
        """Add class probabilities (pixels, classes) of pixels with parcel numbers ``parcel``.

        Called once per classification batch: sums over the parcels present in the batch only
        (``np.unique`` + ``np.bincount``), so a batch costs O(its pixels x classes), not
        O(all parcels x classes).
        """
        use = parcel >= 0
        if not use.any():
            return
        present, local = np.unique(parcel[use], return_inverse=True)
        k = self.n_classes
        cells = (local[:, None] * k + np.arange(k)[None]).ravel()
        values = np.asarray(probabilities, dtype=np.float64)[use].ravel()
        sums = np.bincount(cells, weights=values, minlength=len(present) * k)
        self.probability_sums.reshape(-1, k)[present] += sums.reshape(-1, k)

    def instances(self, parcel_ids: np.ndarray, class_names: list[str], crs: str,
                  min_pixels: int) -> tuple[Any, dict[str, int]]:
        """Return (GeoDataFrame of parcel instances, counts); see the module docstring."""
        import geopandas as gpd

        n, k = len(self.geometries), self.n_classes
        votes = self.votes.reshape(n, k)
        prob_sums = self.probability_sums.reshape(n, k)
        pixels = votes.sum(axis=1)
        most = votes.max(axis=1, initial=0)
        tied = (votes == most[:, None]) & (most[:, None] > 0)
        majority = np.argmax(np.where(tied, prob_sums, -np.inf), axis=1)
        has_pixels = pixels > 0
        keep = has_pixels & (pixels >= min_pixels)
        rows = np.flatnonzero(keep)
        chosen = majority[rows]
        safe = np.maximum(pixels[rows], 1)
        geometry = self.geometries[rows]
        frame = gpd.GeoDataFrame(
            {
                "instance_id": np.arange(len(rows), dtype=np.int64),
                "parcel_id": np.asarray(parcel_ids)[rows],
                "class_index": chosen.astype(np.int64),
                "crop_class": [class_names[c] for c in chosen],
                "pixels": pixels[rows].astype(np.int64),
                "area_m2": np.array([g.area for g in geometry], dtype=np.float64),
                "confidence": prob_sums[rows, chosen] / safe,
                "agreement": votes[rows, chosen] / safe,
            },
            geometry=list(geometry), crs=crs,
        )
        counts = {
            "instances": len(rows),
            "parcels": n,
            "parcels_without_pixels": int((~has_pixels).sum()),
            "instances_below_min_pixels": int((has_pixels & ~keep).sum()),
        }
        return frame[list(PARCEL_COLUMNS)], counts
