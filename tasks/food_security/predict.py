"""Crop map of a whole tile from its monthly composites.

Reads ``{root}/food_security/harmonise/{agronomic_year}/{tile}.zarr`` in blocks of image rows,
classifies every pixel's (12 month, band) series in batches with the year's trained model, and
writes to ``{root}/food_security/predict/{agronomic_year}/{tile}/`` (replaced atomically):

- ``crop_map.tif``: COG, uint8 class index into the model's classes, 255 = no data (a month of a
  band had no value), with the tile's CRS and transform and a colour table;
- ``confidence.tif``: COG, float32 softmax probability of the chosen class (NaN = no data);
- ``crop_map.png``: coloured quicklook with a legend of the classes present;
- ``{tile}_instances.parquet``: GeoParquet of field instances, written with a bbox covering
  column for fast spatial filtering (e.g. by the LUCAS evaluator); what an instance is depends on
  ``predict.instances``:

  - ``connected_regions`` (default): a 4-connected region of one predicted class, with
    ``instance_id``, ``class_index``, ``crop_class`` (class name), ``pixels``, ``area_m2``,
    ``confidence`` (mean softmax probability of the pixels' own class) and the region polygon;
  - ``parcels``: a declared parcel of the year's parcel map (``predict.parcel_map``, default the
    labels stage's), classified by the majority of its pixels, with in addition ``parcel_id`` and
    ``agreement`` (share of the pixels voting for the class); ``confidence`` is the mean
    probability of the parcel's class over all its pixels; the polygon is the parcel's (see
    :mod:`tasks.food_security.parcel_instances`);

  both have ``crop_class``, ``confidence`` and the geometry in the tile's CRS, which the RDF export
  (mapping ``crop_field_instances``) and the LUCAS evaluator read;
- ``manifest.json`` (``instances``: the mode; ``inputs.parcel_map`` in ``parcels`` mode);

and enters the map and the instances in the STAC catalogue (``{root}/catalogue``, collections
``crop-maps`` and ``field-instances``, the tile's items of the year replaced).

Memory holds one block of rows (plus the per-region or per-parcel tables). Connected regions are
labelled per block and merged across block seams with a union-find, then polygonised block by block
and the pieces of a region dissolved. Parcels are rasterised block by block (pixel-centre rule) and
their class votes and probability sums accumulated with ``np.bincount``.
"""

from __future__ import annotations

import csv
import json
import logging
import pickle
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import config_hash
from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig
from tasks.errors import EeflowError
from tasks.food_security.parcel_instances import (
    ParcelAggregator,
    ParcelMapError,
    read_tile_parcels,
)
from tasks.model_registry import is_registry_reference, resolve_registry_reference
from tasks.region import Region, clip_polygon, cut_raster, raster_extent, require_overlap
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    stage_dir,
    write_manifest,
    zarr_array,
    zarr_attrs,
)

log = logging.getLogger(__name__)

USE_CASE = "food_security"
NODATA_CLASS = 255
COLOURS_CSV = Path(__file__).with_name("crop_colours.csv")
MODEL_NAMES = CROP_MODEL_NAMES


class PredictInputError(EeflowError, ValueError):
    """An input of the predict / evaluate stage is missing or inconsistent; says which and why."""


def crop_colours() -> dict[str, str]:
    """Return crop class -> hex colour of the map legend (from ``crop_colours.csv``)."""
    with COLOURS_CSV.open() as handle:
        return {row["crop_class"]: row["colour"] for row in csv.DictReader(handle)}


def resolve_model_dir(cfg: FoodSecurityConfig, run_date: Any, model: str | None = None) -> Path:
    """Find the model folder to use.

    ``model`` (or ``cfg.predict.model``) is a model name (``lstm`` ...: that model of the run's
    agronomic year), ``latest`` (``cfg.train.model`` of the year), ``registry:<alias>`` (the
    model registry's version under that alias, e.g. ``registry:production``), ``best:<metric>``
    (the registered version with the highest metric), or a path to a model folder / checkpoint.

    Raises:
        PredictInputError: the named model folder holds no trained model.
        NoModelError: (``registry:`` / ``best:``) nothing registered, or no such alias.
        RegistryError: (``best:``) no registered version has the metric.

    """
    choice = model or cfg.predict.model
    if is_registry_reference(choice):
        return resolve_registry_reference(USE_CASE, choice, cfg=cfg)
    year = agronomic_year_key(run_date)
    if choice == "latest":
        choice = cfg.train.model
    if choice in MODEL_NAMES:
        folder = stage_dir(cfg.resolved_root(), USE_CASE, "models", year) / choice
    else:
        folder = Path(choice).expanduser()
        if folder.is_file():
            folder = folder.parent
    if not (folder / "model.json").is_file():
        raise PredictInputError(
            f"no trained model in {folder} (model {choice!r}, agronomic year {year}); run the "
            "train stage for this year first, or set predict.model to a model folder, "
            "'registry:<alias>' or 'best:<metric>'"
        )
    return folder


def load_crop_model(model_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load a trained model folder; return (CropClassifier in eval mode on CPU, model.json)."""
    from tasks.trainers.crops import CropClassifier

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "model.json").read_text())
    checkpoint = model_dir / meta.get("checkpoint", "model.ckpt")
    try:
        module = CropClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
    except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        raise PredictInputError(
            f"model checkpoint {checkpoint} cannot be loaded ({type(err).__name__}: {err}); "
            "re-run the train stage"
        ) from err
    module.eval()
    return module, meta


def composites_path(cfg: FoodSecurityConfig, run_date: Any, tile: str) -> Path:
    """Return ``{root}/food_security/harmonise/{agronomic_year}/{tile}.zarr``."""
    year = agronomic_year_key(run_date)
    return stage_dir(cfg.resolved_root(), USE_CASE, "harmonise", year) / f"{tile}.zarr"


class TileComposites:
    """Row-block reader of one tile's monthly composites, bands ordered as the model expects.

    Args:
        path: the ``{tile}.zarr`` composites store.
        bands: band names in model order.
        n_months: months the model expects.

    """

    def __init__(self, path: Path, bands: list[str], n_months: int) -> None:
        import zarr

        if not path.exists():
            raise PredictInputError(
                f"no monthly composites at {path}; run the harmonise stage for this tile and "
                "agronomic year first"
            )
        group = zarr.open_group(str(path), mode="r")
        if "reflectance" not in group:
            raise PredictInputError(f"{path} has no 'reflectance' array")
        self.path = path
        self.reflectance = zarr_array(group, "reflectance")
        attrs = zarr_attrs(group)
        missing = [k for k in ("crs", "transform", "bands") if k not in attrs]
        if missing:
            raise PredictInputError(f"{path} lacks attributes {missing}")
        self.crs = attrs["crs"]
        self.transform = [float(v) for v in attrs["transform"]]
        self.agronomic_year = attrs.get("agronomic_year")
        store_bands = list(attrs["bands"])
        absent = [b for b in bands if b not in store_bands]
        if absent:
            raise PredictInputError(
                f"{path} lacks bands {absent} the model was trained on (store has {store_bands})"
            )
        self.band_index = [store_bands.index(b) for b in bands]
        n_store_months, _, self.height, self.width = self.reflectance.shape
        if n_store_months != n_months:
            raise PredictInputError(
                f"{path} has {n_store_months} months, the model expects {n_months}"
            )

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as (pixels, month, band) float32, pixels row-major."""
        block = np.asarray(self.reflectance[:, :, start:stop, :], dtype=np.float32)
        block = block[:, self.band_index]  # (month, band, rows, cols)
        return block.transpose(2, 3, 0, 1).reshape(-1, block.shape[0], block.shape[1])


def classify_pixels(
    module: Any,
    series: np.ndarray,
    batch_size: int,
    on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Classify (pixels, month, band) series; return (class uint8, confidence float32).

    Pixels with a non-finite value get class :data:`NODATA_CLASS` and confidence NaN.
    ``on_batch(pixel_index, probabilities)`` (if given) receives each batch's positions in
    ``series`` and its (pixels, classes) float32 class probabilities, so callers can aggregate
    them without holding a whole block's probabilities.
    """
    import torch

    valid = np.isfinite(series).all(axis=(1, 2))
    classes = np.full(len(series), NODATA_CLASS, dtype=np.uint8)
    confidence = np.full(len(series), np.nan, dtype=np.float32)
    index = np.flatnonzero(valid)
    with torch.no_grad():
        for i in range(0, len(index), batch_size):
            rows = index[i : i + batch_size]
            probs = module.predict_proba(torch.from_numpy(series[rows]))
            best, arg = probs.max(dim=-1)
            if on_batch is not None:
                on_batch(rows, probs.numpy())
            classes[rows] = arg.numpy().astype(np.uint8)
            confidence[rows] = best.numpy()
    return classes, confidence


class _UnionFind:
    """Union-find over region ids (grown as regions appear)."""

    def __init__(self) -> None:
        self.parent = np.zeros(0, dtype=np.int64)

    def grow(self, n: int) -> None:
        start = len(self.parent)
        self.parent = np.concatenate([self.parent, np.arange(start, start + n, dtype=np.int64)])

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def _label_block(classes: np.ndarray, first_id: int) -> tuple[np.ndarray, int]:
    """Label 4-connected regions of equal class in a (rows, cols) block; ids start at first_id.

    Returns the id raster (int64, -1 = no data) and the number of regions.
    """
    from scipy import ndimage

    ids = np.full(classes.shape, -1, dtype=np.int64)
    next_id = first_id
    for value in np.unique(classes):
        if value == NODATA_CLASS:
            continue
        labelled, count = ndimage.label(classes == value)
        mask = labelled > 0
        ids[mask] = labelled[mask] - 1 + next_id
        next_id += count
    return ids, next_id - first_id


@dataclass
class _TileInputs:
    """The model and the composites of one tile, checked against each other."""

    tile: str
    year: str
    model_dir: Path
    module: Any
    meta: dict[str, Any]
    class_names: list[str]
    source: TileComposites
    transform: Any  # affine.Affine of the composites


def _tile_inputs(
    cfg: FoodSecurityConfig, run_date: Any, tile: str, model: str | None
) -> _TileInputs:
    """Load the model and open the tile's composites; raise PredictInputError if they differ."""
    from rasterio.transform import Affine

    year = agronomic_year_key(run_date)
    model_dir = resolve_model_dir(cfg, run_date, model)
    module, meta = load_crop_model(model_dir)
    if meta.get("agronomic_year") not in (None, year):
        log.warning("using a model trained for %s to map %s", meta["agronomic_year"], year)
    class_names: list[str] = list(meta["classes"])
    if len(class_names) >= NODATA_CLASS:
        raise PredictInputError(f"{len(class_names)} classes do not fit a uint8 map")
    source = TileComposites(composites_path(cfg, run_date, tile), list(meta["bands"]),
                            int(meta["n_timesteps"]))
    if source.agronomic_year not in (None, year):
        raise PredictInputError(
            f"{source.path} holds agronomic year {source.agronomic_year}, not {year}"
        )
    transform = Affine.from_gdal(*source.transform)
    return _TileInputs(tile, year, model_dir, module, meta, class_names, source, transform)


@dataclass
class _TileParcels:
    """``predict.instances: parcels``: the parcel map and the per-parcel vote aggregator."""

    parcel_map: Path
    aggregator: ParcelAggregator
    parcel_ids: np.ndarray


def _tile_parcels(cfg: FoodSecurityConfig, inputs: _TileInputs) -> _TileParcels:
    """Read the parcels on the tile (PredictInputError if the parcel map is unusable)."""
    source = inputs.source
    parcel_map = predict_parcel_map_path(cfg, inputs.year)
    try:
        parcels = read_tile_parcels(parcel_map, source.crs, inputs.transform, source.height,
                                    source.width)
    except ParcelMapError as err:
        raise PredictInputError(str(err)) from err
    parcel_ids = parcels["parcel_id"].to_numpy()
    aggregator = ParcelAggregator(parcels.geometry.values, inputs.transform, source.width,
                                  len(inputs.class_names))
    return _TileParcels(parcel_map, aggregator, parcel_ids)


class _RegionLabels:
    """Connected same-class regions of the class map, labelled block by block.

    Regions touching across a block seam are joined (union-find); ids are global int32.
    """

    def __init__(self) -> None:
        self.regions = _UnionFind()
        self.region_class: list[np.ndarray] = []
        self.region_pixels: list[np.ndarray] = []
        self.region_conf_sum: list[np.ndarray] = []
        self.n_regions = 0
        self.previous_row: tuple[np.ndarray, np.ndarray] | None = None

    def add_block(self, classes: np.ndarray, confidence: np.ndarray, tile: str) -> np.ndarray:
        """Label the regions of one block of rows; return their ids (-1: no data)."""
        ids, count = _label_block(classes, self.n_regions)
        self.regions.grow(count)
        valid = ids >= 0
        local = ids[valid] - self.n_regions
        self.region_pixels.append(np.bincount(local, minlength=count))
        self.region_conf_sum.append(
            np.bincount(local, weights=confidence[valid].astype(np.float64),
                        minlength=count)
        )
        first_class = np.zeros(count, dtype=np.uint8)
        first_class[local] = classes[valid]
        self.region_class.append(first_class)
        if self.previous_row is not None:
            prev_ids, prev_classes = self.previous_row
            seam = (prev_ids >= 0) & (ids[0] >= 0) & (prev_classes == classes[0])
            pairs = zip(prev_ids[seam].tolist(), ids[0][seam].tolist(), strict=True)
            for a, b in set(pairs):
                self.regions.union(a, b)
        self.previous_row = (ids[-1].copy(), classes[-1].copy())
        self.n_regions += count
        if self.n_regions >= 2**31 - 1:
            raise PredictInputError(f"tile {tile}: too many regions for int32 ids")
        return ids


def _classify_tile(
    cfg: FoodSecurityConfig,
    inputs: _TileInputs,
    parcels: _TileParcels | None,
    out: Path,
    block_rows: int,
) -> tuple[np.ndarray, _RegionLabels]:
    """Classify the tile block by block into ``.classes.tif``, ``.confidence.tif`` (+ ``.ids.tif``).

    Returns pixel counts per class code and the regions (unused in ``parcels`` mode, where the
    votes go to the parcel aggregator).
    """
    import rasterio
    from tqdm import tqdm

    source = inputs.source
    height, width = source.height, source.width
    aggregator = parcels.aggregator if parcels is not None else None
    profile = {
        "driver": "GTiff", "height": height, "width": width, "count": 1,
        "crs": source.crs, "transform": inputs.transform, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }
    pixel_counts = np.zeros(NODATA_CLASS + 1, dtype=np.int64)
    regions = _RegionLabels()
    with ExitStack() as rasters:
        cls_ds = rasters.enter_context(
            rasterio.open(out / ".classes.tif", "w", dtype="uint8", nodata=NODATA_CLASS,
                          **profile))
        conf_ds = rasters.enter_context(
            rasterio.open(out / ".confidence.tif", "w", dtype="float32", nodata=np.nan,
                          **profile))
        ids_ds = None if aggregator else rasters.enter_context(
            rasterio.open(out / ".ids.tif", "w", dtype="int32", nodata=-1, **profile))
        for start in tqdm(range(0, height, block_rows), desc=f"predict {inputs.tile}",
                          unit="block"):
            stop = min(start + block_rows, height)
            on_batch = None
            if aggregator is not None:
                parcel_of_pixel = aggregator.rasterise_rows(start, stop).ravel()
                on_batch = partial(_add_parcel_probabilities, aggregator, parcel_of_pixel)
            classes, confidence = classify_pixels(
                inputs.module, source.read_rows(start, stop), cfg.predict.batch_size, on_batch
            )
            classes = classes.reshape(stop - start, width)
            confidence = confidence.reshape(stop - start, width)
            window = rasterio.windows.Window(0, start, width, stop - start)
            cls_ds.write(classes, 1, window=window)
            conf_ds.write(confidence, 1, window=window)
            pixel_counts += np.bincount(classes.ravel(), minlength=NODATA_CLASS + 1)
            if aggregator is not None:
                aggregator.add_votes(parcel_of_pixel, classes, NODATA_CLASS)
                continue
            ids = regions.add_block(classes, confidence, inputs.tile)
            assert ids_ds is not None
            ids_ds.write(ids.astype(np.int32), 1, window=window)
    return pixel_counts, regions


def _tile_instances(
    cfg: FoodSecurityConfig,
    inputs: _TileInputs,
    parcels: _TileParcels | None,
    regions: _RegionLabels,
    out: Path,
    block_rows: int,
) -> tuple[Any, dict[str, int]]:
    """Field instances (GeoDataFrame) and their counts: per parcel, or per connected region."""
    if parcels is not None:
        return parcels.aggregator.instances(
            parcels.parcel_ids, inputs.class_names, inputs.source.crs,
            cfg.predict.min_instance_pixels
        )
    ids_tmp = out / ".ids.tif"
    fields, instance_counts = _field_instances(
        ids_tmp, regions.regions, regions.region_class, regions.region_pixels,
        regions.region_conf_sum, inputs.class_names, inputs.transform, inputs.source.crs,
        block_rows, cfg.predict.min_instance_pixels,
    )
    ids_tmp.unlink()
    return fields, instance_counts


def _write_tile_products(
    cfg: FoodSecurityConfig,
    inputs: _TileInputs,
    parcels: _TileParcels | None,
    regions: _RegionLabels,
    out: Path,
    block_rows: int,
    clip_to: Any | None = None,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Class and confidence COGs, field instances (GeoParquet) and the PNG quicklook.

    ``clip_to`` (the requested region in the tile's CRS): the maps are cut to it and the
    instances clipped (:func:`_cut_to_region`, :func:`_clip_instances`). Returns the instance
    counts and the cut (None without a region).
    """
    tile, class_names = inputs.tile, inputs.class_names
    class_tmp, conf_tmp = out / ".classes.tif", out / ".confidence.tif"
    cut = _cut_to_region((class_tmp, conf_tmp), clip_to) if clip_to is not None else None
    crop_map = out / "crop_map.tif"
    confidence_map = out / "confidence.tif"
    _write_cog(class_tmp, crop_map, "nearest", class_names)
    _write_cog(conf_tmp, confidence_map, "average", None)
    class_tmp.unlink()
    conf_tmp.unlink()
    fields, instance_counts = _tile_instances(cfg, inputs, parcels, regions, out, block_rows)
    if clip_to is not None:
        fields, outside = _clip_instances(fields, clip_to)
        if cfg.predict.instances == "connected_regions":
            fields, slivers = _region_pixel_stats(fields, confidence_map)
            outside += slivers
        instance_counts = {**instance_counts, "instances": len(fields),
                           "instances_outside_region": outside}
    fields_path = out / f"{tile}_instances.parquet"
    fields.to_parquet(fields_path, write_covering_bbox=True)
    plot_crop_map(crop_map, out / "crop_map.png", class_names,
                  f"{inputs.meta['model']} crop map, tile {tile}, {inputs.year}")
    return instance_counts, cut


def _cut_to_region(rasters: tuple[Path, ...], clip_to: Any) -> dict[str, Any]:
    """Cut the tile's temporary GeoTIFFs to the region in place; return the cut (same for all)."""
    cut: dict[str, Any] = {}
    for raster in rasters:
        cut_tif = raster.with_name(f"{raster.stem}.cut.tif")
        cut = cut_raster(raster, cut_tif, clip_to)
        cut_tif.replace(raster)
    return cut


def _clip_instances(fields: Any, clip_to: Any) -> tuple[Any, int]:
    """Clip field instances to the region: (instances with a part inside, number left out).

    Geometries and ``area_m2`` become those of the part inside the region; in
    ``connected_regions`` mode :func:`_region_pixel_stats` then recounts ``pixels`` and
    ``confidence`` over the pixels inside it (a parcel of ``parcels`` mode keeps its whole-parcel
    class, pixels and confidence: the parcel is the unit that was classified).
    """
    clipped = fields.copy()
    clipped["geometry"] = [clip_polygon(g, clip_to) for g in fields.geometry]
    inside = ~clipped.geometry.is_empty
    clipped = clipped[inside].reset_index(drop=True)
    if "area_m2" in clipped.columns:
        clipped["area_m2"] = clipped.geometry.area.astype(np.float64)
    return clipped, int((~inside).sum())


def _region_pixel_stats(fields: Any, confidence_map: Path) -> tuple[Any, int]:
    """Recount ``pixels`` and ``confidence`` of clipped connected regions over the cut map.

    A clipped instance keeps the pixels of the cut confidence map whose centre lies in its
    clipped polygon, boundary included (the rule of :func:`tasks.region.cut_raster`: a centre on
    the region's edge is inside; the pixels outside are no data there), and its ``confidence``
    becomes their mean. Slivers holding no pixel centre are dropped; returns the instances and
    how many were dropped.
    """
    import rasterio
    import shapely

    if fields.empty:
        return fields, 0
    with rasterio.open(confidence_map) as ds:
        confidence = ds.read(1).astype(np.float64)
        transform = ds.transform
    rows, cols = confidence.shape
    counts = np.zeros(len(fields), np.int64)
    sums = np.zeros(len(fields), np.float64)
    inverse = ~transform
    for index, geometry in enumerate(fields.geometry):
        xmin, ymin, xmax, ymax = geometry.bounds
        c0, r0 = inverse * (xmin, ymax)
        c1, r1 = inverse * (xmax, ymin)
        cs = np.arange(max(int(np.floor(min(c0, c1))) - 1, 0),
                       min(int(np.ceil(max(c0, c1))) + 1, cols))
        rs = np.arange(max(int(np.floor(min(r0, r1))) - 1, 0),
                       min(int(np.ceil(max(r0, r1))) + 1, rows))
        if not len(cs) or not len(rs):
            continue
        xx, yy = np.meshgrid(transform.c + (cs + 0.5) * transform.a,
                             transform.f + (rs + 0.5) * transform.e)
        values = confidence[np.ix_(rs, cs)]
        mine = shapely.intersects_xy(geometry, xx, yy) & np.isfinite(values)
        counts[index] = int(mine.sum())
        sums[index] = float(values[mine].sum())
    fields = fields.copy()
    fields["pixels"] = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        fields["confidence"] = sums / counts
    kept = counts > 0
    return fields[kept].reset_index(drop=True), int((~kept).sum())


def run_predict(
    cfg: FoodSecurityConfig,
    run_date: Any,
    tile: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Map the crops of one tile for the agronomic year containing ``run_date``.

    Args:
        cfg: validated config (``predict`` section: tile, model, batch_size, block_rows,
            min_instance_pixels, instances, parcel_map).
        run_date: any day of the agronomic year.
        tile: tile id (default ``cfg.predict.tile``).
        model: model name / ``latest`` / ``registry:<alias>`` / ``best:<metric>`` / model
            folder (default ``cfg.predict.model``).

    Returns:
        Output paths (``crop_map``, ``confidence``, ``quicklook``, ``fields``, ``folder``) and
        counts (pixels per class, instances, instances_below_min_pixels; in ``parcels`` mode also
        parcels on the tile and parcels_without_pixels).

    With a requested region (``ingest.catalogue.area``, the DAGs' ``region`` param) the maps and
    the quicklook are cut to its bbox snapped to the tile's grid, pixels outside it no data, the
    instances clipped to it, and the manifest records the region (:mod:`tasks.region`).

    Raises:
        PredictInputError: composites or model missing, bands / months not matching the model;
            (``parcels`` mode) parcel map missing, without CRS or with non-polygon parcels.
        RegionError: the requested region does not intersect the tile (nothing written).

    """
    started = time.perf_counter()
    tile = tile or cfg.predict.tile
    inputs = _tile_inputs(cfg, run_date, tile, model)
    year, meta, class_names, source = inputs.year, inputs.meta, inputs.class_names, inputs.source
    height, width = source.height, source.width
    block_rows = min(cfg.predict.block_rows, height)
    mode = cfg.predict.instances
    parcels = _tile_parcels(cfg, inputs) if mode == "parcels" else None
    final = stage_dir(cfg.resolved_root(), USE_CASE, "predict", year) / tile
    region = Region.from_area(cfg.ingest.catalogue.area)
    clip_to = None
    if region is not None:
        clip_to = region.in_crs(source.crs)
        require_overlap(region, clip_to, raster_extent(inputs.transform, width, height),
                        source.crs, f"tile {tile} ({source.path})")
    log.info("mapping tile %s of %s (%d x %d px) with %s from %s; instances: %s", tile, year,
             height, width, meta["model"], inputs.model_dir, mode)
    with atomic_dir(final) as out:
        pixel_counts, regions = _classify_tile(cfg, inputs, parcels, out, block_rows)
        instance_counts, cut = _write_tile_products(cfg, inputs, parcels, regions, out,
                                                    block_rows, clip_to)
        if cut is not None:
            height, width = cut["window"][3], cut["window"][2]
            pixel_counts = _class_counts(out / "crop_map.tif")
        per_class = {class_names[i]: int(c) for i, c in enumerate(pixel_counts[:len(class_names)])
                     if c}
        counts = {
            "pixels": int(height * width),
            "nodata_pixels": int(pixel_counts[NODATA_CLASS]),
            "pixels_per_class": per_class,
            **instance_counts,
        }
        parcel_map = parcels.parcel_map if parcels is not None else None
        write_manifest(
            out, stage="predict",
            inputs={"composites": str(source.path), "model": str(inputs.model_dir),
                    **({"parcel_map": str(parcel_map)} if parcel_map else {})},
            config_hash=config_hash(cfg), counts=counts,
            extra={"tile": tile, "agronomic_year": year, "model": meta["model"],
                   "classes": class_names, "nodata_class": NODATA_CLASS, "instances": mode,
                   **({"region": region.record(cut)} if region is not None else {})},
        )
    from tasks.stac.products import catalogue_crop_map

    catalogue_crop_map(cfg.resolved_root(), year, final, tile, str(meta["model"]))
    seconds = time.perf_counter() - started
    log.info("tile %s mapped in %.1f s: %d instances -> %s", tile, seconds,
             counts["instances"], final)
    return {
        "tile": tile,
        "agronomic_year": year,
        "model": meta["model"],
        "folder": str(final),
        "crop_map": str(final / "crop_map.tif"),
        "confidence": str(final / "confidence.tif"),
        "quicklook": str(final / "crop_map.png"),
        "fields": str(final / f"{tile}_instances.parquet"),
        "counts": counts,
        "seconds": round(seconds, 2),
    }


def _class_counts(crop_map: Path) -> np.ndarray:
    """Pixel count per class code (0..255) of a crop map GeoTIFF."""
    import rasterio

    with rasterio.open(crop_map) as ds:
        return np.bincount(ds.read(1).ravel(), minlength=NODATA_CLASS + 1)


def predict_parcel_map_path(cfg: FoodSecurityConfig, year: str) -> Path:
    """Return the parcel map of ``predict.instances: parcels`` for agronomic year ``year``.

    ``predict.parcel_map`` (``{agronomic_year}`` replaced) when set, else the labels stage's
    parcel map of the year (``ingest.parcel_map``, or the ingest stage's ``parcels.parquet``).
    """
    from tasks.food_security.labels import parcel_map_path  # scipy, generator: import late

    if cfg.predict.parcel_map:
        return Path(cfg.predict.parcel_map.replace("{agronomic_year}", year)).expanduser()
    return parcel_map_path(cfg, year)


def _add_parcel_probabilities(aggregator: ParcelAggregator, parcel_of_pixel: np.ndarray,
                              rows: np.ndarray, probabilities: np.ndarray) -> None:
    """``classify_pixels`` batch hook: add a batch's class probabilities to its parcels."""
    aggregator.add_probabilities(parcel_of_pixel[rows], probabilities)


def _write_cog(source: Path, target: Path, resampling: str, class_names: list[str] | None) -> None:
    """Copy a tiled GeoTIFF to a COG (deflate, overviews); add the class colour table."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    if class_names is not None:
        colours = crop_colours()
        with rasterio.open(source, "r+") as ds:
            table: dict[int, tuple[int, ...]] = {NODATA_CLASS: (0, 0, 0, 0)}
            for i, name in enumerate(class_names):
                hex_colour = colours.get(name, "#000000").lstrip("#")
                table[i] = tuple(int(hex_colour[k : k + 2], 16) for k in (0, 2, 4)) + (255,)
            ds.write_colormap(1, table)
    rio_copy(source, target, driver="COG", compress="DEFLATE", overview_resampling=resampling,
             blocksize=256)


def _field_instances(
    ids_path: Path,
    regions: _UnionFind,
    region_class: list[np.ndarray],
    region_pixels: list[np.ndarray],
    region_conf_sum: list[np.ndarray],
    class_names: list[str],
    transform: Any,
    crs: str,
    block_rows: int,
    min_pixels: int,
) -> tuple[Any, dict[str, int]]:
    """Polygonise merged regions block by block; return (GeoDataFrame, counts)."""
    import geopandas as gpd
    import rasterio
    import rasterio.features
    import shapely
    from shapely.geometry import shape

    roots = regions.roots()
    n = len(roots)
    classes = np.concatenate(region_class) if region_class else np.zeros(0, np.uint8)
    pixels = np.bincount(roots, weights=np.concatenate(region_pixels) if n else None, minlength=n)
    conf_sum = np.bincount(roots, weights=np.concatenate(region_conf_sum) if n else None,
                           minlength=n)
    keep = np.zeros(n, dtype=bool)
    unique_roots = np.unique(roots)
    keep[unique_roots] = pixels[unique_roots] >= min_pixels
    pieces: dict[int, list[Any]] = {}
    with rasterio.open(ids_path) as ds:
        for start in range(0, ds.height, block_rows):
            window = rasterio.windows.Window(0, start, ds.width, min(block_rows, ds.height - start))
            ids = ds.read(1, window=window).astype(np.int64)
            merged = np.where(ids >= 0, roots[np.clip(ids, 0, None)] if n else -1, -1)
            mask = (merged >= 0) & keep[np.clip(merged, 0, None)] if n else merged >= 0
            if not mask.any():
                continue
            block_transform = ds.window_transform(window)
            for geometry, value in rasterio.features.shapes(
                merged.astype(np.int32), mask=mask, connectivity=4, transform=block_transform
            ):
                pieces.setdefault(int(value), []).append(shape(geometry))
    rows = []
    for instance_id, (root, parts) in enumerate(sorted(pieces.items())):
        geometry = parts[0] if len(parts) == 1 else shapely.union_all(parts)
        class_index = int(classes[root])
        rows.append({
            "instance_id": instance_id,
            "class_index": class_index,
            "crop_class": class_names[class_index],
            "pixels": int(pixels[root]),
            "area_m2": float(geometry.area),
            "confidence": float(conf_sum[root] / pixels[root]),
            "geometry": geometry,
        })
    columns = ["instance_id", "class_index", "crop_class", "pixels", "area_m2",
               "confidence", "geometry"]
    frame = gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=crs)
    dropped = int((~keep[unique_roots]).sum()) if n else 0
    return frame, {"instances": len(rows), "instances_below_min_pixels": dropped}


def plot_crop_map(crop_map: Path, png: Path, class_names: list[str], title: str,
                  max_pixels: int = 1024) -> Path:
    """Render the class COG (decimated to ``max_pixels`` per side) with a legend into ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    with rasterio.open(crop_map) as ds:
        scale = max(1, int(np.ceil(max(ds.height, ds.width) / max_pixels)))
        shape = (max(1, ds.height // scale), max(1, ds.width // scale))
        data = ds.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
    colours = crop_colours()
    palette = [colours.get(name, "#000000") for name in class_names]
    image = np.ma.masked_equal(data, NODATA_CLASS)
    fig, ax = plt.subplots(figsize=(9, 7))
    ax.imshow(image, cmap=ListedColormap(palette), vmin=-0.5, vmax=len(class_names) - 0.5,
              interpolation="nearest")
    present = sorted(int(v) for v in np.unique(data) if v != NODATA_CLASS)
    handles = [Patch(facecolor=palette[i], edgecolor="k", label=class_names[i]) for i in present]
    if (data == NODATA_CLASS).any():
        handles.append(Patch(facecolor="white", edgecolor="k", label="no data"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
