"""Evaluate a crop map against LUCAS survey points: the 10 m same-label rule and nearest matching.

The paper's rule (surveyors stand on roads and field edges): a LUCAS point counts as correct when
at least one map instance with the point's class lies within ``radius_m`` (10 m) of it. The
nearest-instance rule (the point takes the class of the nearest instance) is computed alongside as
the comparison the paper argues against. Distances are computed in metres in a projected CRS: the
points (WGS84) are transformed into the map's CRS (its UTM zone for the crop pipeline).

Per point, under the radius rule the *predicted* class is the point's own class when the rule is
met, else the class of the nearest instance (``no_instance`` when none lies within
``nearest_max_distance_m``); this fills the confusion matrix and per-class precision/recall/F1.

Points are excluded, and counted per reason, in this order: ``missing_lc1``, ``unknown_lc1`` (code
not in the mapping; or an error with ``on_unknown_lc1='error'``), ``not_comparable_lc1``,
``non_crop_lc1``, ``obs_type_filtered``, ``no_location`` (neither GPS nor theoretical location),
``outside_country`` (the location lies outside the bounding box of the point's NUTS0 country:
latitude and longitude swapped, a lost sign, a wrong country code), ``outside_map_extent``
(outside the bounding box of the map's instances / the raster).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, PrivateAttr
from pyproj import CRS, Transformer

from tasks.config.lucas import LucasConfig
from tasks.domain.crops import CROP_CLASSES
from tasks.lucas.codelist import NON_CROP, NOT_COMPARABLE, Lc1Mapping, load_lc1_mapping
from tasks.lucas.crop_map import (
    CropMap,
    CropMapError,
    RasterCropMap,
    VectorCropMap,
    instances_from_geodataframe,
    read_crop_map,
)
from tasks.lucas.matching import neighbourhood
from tasks.lucas.metrics import NO_INSTANCE, RuleResult, rule_result
from tasks.lucas.points import (
    LOCATION_SOURCE,
    POINT_ID,
    LucasInputError,
    _check_points_table,
    read_lucas_points,
)

log = logging.getLogger(__name__)

USED = "used"
EXCLUSION_REASONS = (
    "missing_lc1", "unknown_lc1", "not_comparable_lc1", "non_crop_lc1", "obs_type_filtered",
    "no_location", "outside_country", "outside_map_extent",
)


class LucasReport(BaseModel):
    """Result of comparing one crop map with LUCAS points (JSON-serialisable).

    The per-point table is :attr:`point_results` (not part of the JSON).
    """

    map_name: str
    map_source: str
    points_source: str
    radius_m: float
    nearest_max_distance_m: float
    barley_rule: str
    evaluation_crs: str
    mapping_file: str
    points_total: int
    points_used: int
    excluded: dict[str, int]
    location_sources: dict[str, int]
    gps_fallback_to_theoretical: int
    unknown_lc1_codes: dict[str, int]
    classes_absent_from_map: list[str]
    classes_absent_from_lucas: list[str]
    classes_without_lc1_code: list[str]
    within_radius: RuleResult
    nearest: RuleResult
    _point_results: pd.DataFrame | None = PrivateAttr(default=None)

    @property
    def point_results(self) -> pd.DataFrame:
        """Per-point table: status (``used`` or an exclusion reason), both rules' results."""
        if self._point_results is None:
            raise ValueError("this report was loaded from JSON and has no per-point table")
        return self._point_results


def _as_points(points: gpd.GeoDataFrame | str | Path, config: LucasConfig) -> tuple[
    gpd.GeoDataFrame, str
]:
    if isinstance(points, str | Path):
        return read_lucas_points(points, config.location, config.points_crs), str(points)
    if not isinstance(points, gpd.GeoDataFrame):
        raise LucasInputError(
            f"points must be a path or a GeoDataFrame from read_lucas_points, got {type(points)}"
        )
    _check_points_table(points, "<points>")
    if points.crs is None:
        raise LucasInputError("<points>: the points GeoDataFrame has no CRS (LUCAS: EPSG:4326)")
    points = points.copy()
    if LOCATION_SOURCE not in points.columns:
        points[LOCATION_SOURCE] = np.where(points.geometry.isna() | points.geometry.is_empty,
                                           "none", "geometry")
    points["LC1"] = points["LC1"].astype("string").str.strip().str.upper()
    return points, "<GeoDataFrame>"


def _as_map(
    crop_map: CropMap | gpd.GeoDataFrame | str | Path, config: LucasConfig, name: str | None
) -> CropMap:
    if isinstance(crop_map, VectorCropMap | RasterCropMap):
        if name:
            crop_map.name = name
        return crop_map
    if isinstance(crop_map, gpd.GeoDataFrame):
        return instances_from_geodataframe(crop_map, name or "map", config.class_column,
                                           config.map_crs)
    return read_crop_map(crop_map, name, config.class_column, config.map_crs)


def _evaluation_crs(crop_map: CropMap, config: LucasConfig) -> CRS:
    if config.evaluation_crs is not None:
        return CRS.from_user_input(config.evaluation_crs)
    if crop_map.crs.is_projected:
        return crop_map.crs
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    to_ll = Transformer.from_crs(crop_map.crs, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = to_ll.transform_bounds(*crop_map.bounds)
    infos = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(x0, y0, x1, y1)
    )
    if not infos:
        raise CropMapError(f"{crop_map.source}: no UTM zone for the map's extent; set "
                           "lucas.evaluation_crs")
    crs = CRS.from_epsg(int(infos[0].code))
    log.info("%s is in geographic %s; distances are computed in %s", crop_map.source,
             crop_map.crs.name, crs.name)
    return crs


def _reproject_map(crop_map: CropMap, crs: CRS) -> CropMap:
    if crop_map.crs == crs:
        return crop_map
    if isinstance(crop_map, RasterCropMap):
        raise CropMapError(
            f"{crop_map.source}: the raster is in {crop_map.crs.name}, distances need {crs.name}; "
            "warp it (gdalwarp -t_srs) to a projected CRS or leave lucas.evaluation_crs unset"
        )
    log.info("reprojecting %d instances of %s to %s", len(crop_map), crop_map.name, crs.name)
    frame = crop_map.to_geodataframe().to_crs(crs)
    out = instances_from_geodataframe(frame, crop_map.name)
    out.source = crop_map.source
    return out


def map_side_classes(crop_map: CropMap) -> set[int]:
    """Class indices present anywhere in the map (raster: scanned block by block)."""
    if isinstance(crop_map, VectorCropMap):
        present = np.zeros(len(CROP_CLASSES), dtype=bool)
        present[crop_map.class_index] = True
        return {int(c) for c in np.flatnonzero(present)}
    import rasterio

    found: set[int] = set()
    with rasterio.open(crop_map.source) as src:
        for _, window in src.block_windows(1):
            block = src.read(1, window=window)
            values = np.unique(block)
            if crop_map.nodata is not None:
                values = values[values != crop_map.nodata]
            found |= {int(v) for v in values if 0 <= v < len(CROP_CLASSES)}
    return found


def classify_points(
    points: gpd.GeoDataFrame, mapping: Lc1Mapping, config: LucasConfig
) -> tuple[np.ndarray, np.ndarray, Counter[str]]:
    """Return the reference class and status of each point from its LC1 code.

    Returns:
        (reference class or "" per point, status per point: ``used`` or a reason, unknown codes).

    Raises:
        LucasInputError: unknown LC1 codes with ``on_unknown_lc1='error'``.

    """
    n = len(points)
    lc1 = points["LC1"].astype("string").fillna("").to_numpy(dtype=object)
    status = np.full(n, USED, dtype=object)
    reference = np.full(n, "", dtype=object)
    unknown: Counter[str] = Counter()
    for i, code in enumerate(lc1):
        if not code:
            status[i] = "missing_lc1"
            continue
        target = mapping.classify(code)
        if target is None:
            status[i] = "unknown_lc1"
            unknown[code] += 1
        elif target == NOT_COMPARABLE:
            status[i] = "not_comparable_lc1"
        elif target == NON_CROP:
            status[i] = "non_crop_lc1"
        else:
            reference[i] = target
    if unknown:
        message = (
            f"{sum(unknown.values())} LUCAS point(s) have LC1 codes not in the mapping "
            f"{mapping.source}: {dict(unknown.most_common(10))}"
        )
        if config.on_unknown_lc1 == "error":
            raise LucasInputError(message + "; add them to the mapping table or set "
                                  "lucas.on_unknown_lc1: exclude")
        log.warning("%s; they are excluded (reason unknown_lc1)", message)
    if config.obs_types is not None and "OBS_TYPE" in points.columns:
        obs = pd.to_numeric(points["OBS_TYPE"], errors="coerce").to_numpy()
        drop = (status == USED) & ~np.isin(obs, config.obs_types)
        status[drop] = "obs_type_filtered"
    no_location = (points.geometry.isna() | points.geometry.is_empty).to_numpy()
    status[(status == USED) & no_location] = "no_location"
    outside = outside_country(points) & (status == USED)
    if outside.any():
        countries = Counter(points["NUTS0"].to_numpy(dtype=object)[outside])
        log.warning("%d LUCAS point(s) lie outside the bounding box of their NUTS0 country %s "
                    "(latitude/longitude swapped or a wrong sign?); they are excluded (reason "
                    "outside_country)", int(outside.sum()), dict(countries.most_common(5)))
    status[outside] = "outside_country"
    return reference, status, unknown


def outside_country(points: gpd.GeoDataFrame) -> np.ndarray:
    """Flag points whose WGS84 location lies outside the bounding box of their NUTS0 country.

    Points without ``NUTS0``, with a code not in ``codelists/country_bounds.csv`` or without a
    location are not flagged (nothing to check them against).
    """
    flagged = np.zeros(len(points), dtype=bool)
    if "NUTS0" not in points.columns or points.empty:
        return flagged
    bounds = country_bounds()
    codes = points["NUTS0"].astype("string").str.strip().str.upper().fillna("")
    box = bounds.reindex(codes.to_numpy()).to_numpy(dtype="float64")  # NaN rows: unknown code
    geoms = points.geometry.to_crs("EPSG:4326").values
    has = ~(geoms.isna() | geoms.is_empty)
    lon = np.where(has, geoms.x, np.nan) if len(geoms) else np.zeros(0)
    lat = np.where(has, geoms.y, np.nan) if len(geoms) else np.zeros(0)
    known = np.isfinite(box).all(axis=1) & np.isfinite(lon) & np.isfinite(lat)
    inside = ((lon >= box[:, 0]) & (lat >= box[:, 1]) & (lon <= box[:, 2])
              & (lat <= box[:, 3]))
    flagged[known & ~inside] = True
    return flagged


def country_bounds() -> pd.DataFrame:
    """Bounding boxes (min_lon, min_lat, max_lon, max_lat) of LUCAS countries by NUTS0 code."""
    path = Path(__file__).with_name("codelists") / "country_bounds.csv"
    table = pd.read_csv(path, index_col="nuts0")
    return table[["min_lon", "min_lat", "max_lon", "max_lat"]]


def _project_points(table: gpd.GeoDataFrame, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the points in the evaluation CRS (NaN where a point has no location)."""
    x = np.full(len(table), np.nan)
    y = np.full(len(table), np.nan)
    located = ~(table.geometry.isna() | table.geometry.is_empty).to_numpy()
    if located.any():
        to_map = Transformer.from_crs(table.crs, crs, always_xy=True)
        geoms = table.geometry.values[located]
        x[located], y[located] = to_map.transform(geoms.x, geoms.y)
    return x, y


@dataclass(frozen=True)
class _RuleOutcomes:
    """Per used point: reference class and the evaluation class each rule predicts."""

    ref_used: np.ndarray
    correct: np.ndarray
    nearest_eval: np.ndarray
    predicted_within: np.ndarray


def _apply_rules(mapping: Lc1Mapping, hood: Any, reference_used: np.ndarray) -> _RuleOutcomes:
    """Radius rule (any same-class instance within the radius) and nearest-instance rule."""
    eval_classes = mapping.evaluation_classes
    eval_of_map = np.array([mapping.map_class_to_evaluation[c] for c in CROP_CLASSES], object)
    # (16, n_eval) indicator: map class -> evaluation class
    to_eval = np.zeros((len(CROP_CLASSES), len(eval_classes)), bool)
    for i, name in enumerate(eval_of_map):
        to_eval[i, eval_classes.index(name)] = True
    within_eval = (hood.within.astype("int64") @ to_eval.astype("int64")) > 0
    n_used = len(reference_used)
    ref_col = np.array([eval_classes.index(r) for r in reference_used], "int64")
    correct = within_eval[np.arange(n_used), ref_col] if n_used else np.zeros(0, bool)
    nearest_eval = np.where(hood.nearest_class >= 0,
                            eval_of_map[np.maximum(hood.nearest_class, 0)], NO_INSTANCE)
    # a point failing the radius rule never counts as correct: when its nearest instance has its
    # own class, that instance lies beyond the radius, and so does every other one (no instance)
    predicted_within = np.where(
        correct, reference_used,
        np.where(nearest_eval == reference_used, NO_INSTANCE, nearest_eval))
    return _RuleOutcomes(reference_used, correct, nearest_eval, predicted_within)


def _point_results(
    table: gpd.GeoDataFrame,
    reference: np.ndarray,
    status: np.ndarray,
    xy: tuple[np.ndarray, np.ndarray],
    used: np.ndarray,
    outcomes: _RuleOutcomes,
    hood: Any,
) -> pd.DataFrame:
    """Build the per-point table of the report (rule columns empty for points not used)."""
    x, y = xy
    results = pd.DataFrame({
        POINT_ID: table[POINT_ID].to_numpy(),
        "LC1": table["LC1"].astype("string").to_numpy(),
        "reference_class": reference,
        "status": status,
        LOCATION_SOURCE: table[LOCATION_SOURCE].astype(str).to_numpy(),
        "x": x, "y": y,
    })
    results["correct_within_radius"] = pd.array([pd.NA] * len(table), dtype="boolean")
    results["predicted_within_radius"] = pd.array([None] * len(table), dtype="string")
    results["nearest_class"] = pd.array([None] * len(table), dtype="string")
    results["correct_nearest"] = pd.array([pd.NA] * len(table), dtype="boolean")
    results["nearest_distance_m"] = np.nan
    results["n_within_radius"] = pd.array([pd.NA] * len(table), dtype="Int64")
    if used.size:
        results.loc[used, "correct_within_radius"] = outcomes.correct
        results.loc[used, "predicted_within_radius"] = outcomes.predicted_within.astype(str)
        results.loc[used, "nearest_class"] = outcomes.nearest_eval.astype(str)
        results.loc[used, "correct_nearest"] = outcomes.nearest_eval == outcomes.ref_used
        results.loc[used, "nearest_distance_m"] = hood.nearest_distance_m
        results.loc[used, "n_within_radius"] = hood.n_within
    return results


def _build_report(
    crop_map: CropMap,
    points_source: str,
    config: LucasConfig,
    evaluation_crs: str,
    mapping: Lc1Mapping,
    table: gpd.GeoDataFrame,
    status: np.ndarray,
    unknown: Any,
    outcomes: _RuleOutcomes,
) -> LucasReport:
    """Build the report: counts, class coverage, scores of both rules (no per-point table)."""
    eval_classes = mapping.evaluation_classes
    ref_used = outcomes.ref_used

    map_classes = {mapping.map_class_to_evaluation[CROP_CLASSES[c]]
                   for c in map_side_classes(crop_map)}
    lucas_classes = set(ref_used.tolist())
    coded = mapping.lucas_side_classes()
    excluded = {reason: int((status == reason).sum()) for reason in EXCLUSION_REASONS}
    sources = Counter(table[LOCATION_SOURCE].astype(str).tolist())

    return LucasReport(
        map_name=crop_map.name,
        map_source=crop_map.source,
        points_source=points_source,
        radius_m=config.radius_m,
        nearest_max_distance_m=config.nearest_max_distance_m,
        barley_rule=config.barley_rule,
        evaluation_crs=evaluation_crs,
        mapping_file=mapping.source,
        points_total=len(table),
        points_used=int(ref_used.size),
        excluded=excluded,
        location_sources=dict(sources),
        gps_fallback_to_theoretical=int(
            ((table[LOCATION_SOURCE] == "theoretical").to_numpy()
             & ({"GPS_LAT", "GPS_LONG"} <= set(table.columns))).sum()
        ),
        unknown_lc1_codes=dict(unknown),
        classes_absent_from_map=sorted(lucas_classes - map_classes),
        classes_absent_from_lucas=sorted(map_classes - lucas_classes),
        classes_without_lc1_code=[c for c in eval_classes if c not in coded],
        within_radius=rule_result(f"within_{config.radius_m:g}m", ref_used,
                                  outcomes.predicted_within, eval_classes),
        nearest=rule_result("nearest_instance", ref_used, outcomes.nearest_eval, eval_classes),
    )


def evaluate_against_lucas(
    points: gpd.GeoDataFrame | str | Path,
    map_instances: CropMap | gpd.GeoDataFrame | str | Path,
    config: LucasConfig | None = None,
    *,
    map_name: str | None = None,
    mapping: Lc1Mapping | None = None,
) -> LucasReport:
    """Compare a crop map with LUCAS points under the radius rule and nearest-instance matching.

    Args:
        points: LUCAS points (a CSV/GeoParquet path, or a GeoDataFrame from
            :func:`~tasks.lucas.points.read_lucas_points`), any CRS (LUCAS: EPSG:4326).
        map_instances: the crop map: a GeoParquet / COG path, a GeoDataFrame of instances with
            ``crop_class`` or a map from :mod:`tasks.lucas.crop_map`; projected CRS (UTM) expected.
        config: settings (radius, barley rule, mapping file ...); default ``LucasConfig()``.
        map_name: name of the map in reports (default: file stem).
        mapping: an already loaded LC1 mapping (default: from ``config``).

    Returns:
        The report: counts used/excluded by reason, OA and per-class scores of both rules,
        confusion matrices, classes absent from either side; per-point table in
        ``report.point_results``.

    Raises:
        LucasInputError: unusable points (missing columns, duplicate POINT_IDs, unknown LC1 codes
            with ``on_unknown_lc1='error'``).
        CropMapError: unusable map (no CRS, empty, unknown classes).

    """
    config = config or LucasConfig()
    mapping = mapping or load_lc1_mapping(config.mapping_file, config.barley_rule)
    from concurrent.futures import ThreadPoolExecutor

    # the map is opened (class codes, row-group extents) while the points are read and parsed;
    # a points error is still raised first
    with ThreadPoolExecutor(max_workers=1) as pool:
        opening = pool.submit(_as_map, map_instances, config, map_name)
        try:
            table, points_source = _as_points(points, config)
        except BaseException:
            opening.cancel()
            raise
        crop_map = opening.result()
    crs = _evaluation_crs(crop_map, config)
    crop_map = _reproject_map(crop_map, crs)

    reference, status, unknown = classify_points(table, mapping, config)
    x, y = _project_points(table, crs)
    x0, y0, x1, y1 = crop_map.bounds
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    status[(status == USED) & ~inside] = "outside_map_extent"
    used = np.flatnonzero(status == USED)
    log.info("%s: %d of %d LUCAS points are evaluated", crop_map.name, used.size, len(table))

    hood = neighbourhood(crop_map, x[used], y[used], config.radius_m,
                         config.nearest_max_distance_m)
    outcomes = _apply_rules(mapping, hood, reference[used])
    results = _point_results(table, reference, status, (x, y), used, outcomes, hood)
    report = _build_report(
        crop_map, points_source, config, crs.to_string(), mapping, table, status, unknown,
        outcomes,
    )
    report._point_results = results
    if report.classes_absent_from_map:
        log.warning("%s: LUCAS classes with no map instance: %s", crop_map.name,
                    report.classes_absent_from_map)
    return report


def points_with_same_class_within(
    points: gpd.GeoDataFrame | str | Path,
    instances: CropMap | gpd.GeoDataFrame | str | Path,
    radius: float = 10.0,
    config: LucasConfig | None = None,
) -> set[int]:
    """POINT_IDs of the used points with a same-class map instance within ``radius`` metres.

    The reference answer for the GeoSPARQL form of the rule (linked-data issue): a point's
    neighbourhood within ``radius`` holds an instance of the same (evaluation) class.
    """
    config = (config or LucasConfig()).model_copy(update={"radius_m": float(radius)})
    report = evaluate_against_lucas(points, instances, config)
    table = report.point_results
    hit = table["correct_within_radius"].fillna(False).to_numpy(dtype=bool)
    return {int(v) for v in table.loc[hit, POINT_ID]}


#: Least share of crop-coded LUCAS points that must have a usable location (a valid coordinate
#: inside the map): below it the coordinates are likely broken (text, degrees x10, lat/lon swapped).
MIN_USABLE_SHARE = 0.5
#: Exclusion reasons that say something is wrong with a point's location.
LOCATION_REASONS = ("no_location", "outside_country", "outside_map_extent")


def require_usable_points(report: LucasReport, min_share: float = MIN_USABLE_SHARE) -> None:
    """Refuse a report whose points are mostly unusable, instead of an OA over nothing.

    Of the points with a comparable crop LC1 code, at least ``min_share`` must have a valid
    location (``no_location``: empty, non-numeric, sentinel or out-of-range coordinates such as a
    latitude times ten), and at least one must be evaluated (all ``outside_map_extent`` usually
    means swapped latitude/longitude or the wrong map).

    Raises:
        LucasInputError: the message gives the counts by reason and what to check.

    """
    from tasks.lucas.points import LucasInputError

    reasons = {k: v for k, v in sorted(report.excluded.items()) if v}
    if report.points_total == 0:
        raise LucasInputError(
            f"{report.points_source}: the LUCAS points file holds no points; nothing to compare "
            f"map {report.map_name!r} with (check the file and lucas.points_path)"
        )
    candidates = report.points_used + sum(report.excluded.get(r, 0) for r in LOCATION_REASONS)
    located = (candidates - report.excluded.get("no_location", 0)
               - report.excluded.get("outside_country", 0))
    share = located / candidates if candidates else 0.0
    if report.points_used == 0 or share < min_share:
        raise LucasInputError(
            f"{report.points_source}: only {report.points_used} of {report.points_total} LUCAS "
            f"points are usable for map {report.map_name!r} ({located} of {candidates} crop-coded "
            f"points have a valid location, {share:.0%} < the required {min_share:.0%}); "
            f"excluded by reason: {reasons}. Check that TH_LAT/TH_LONG/GPS_LAT/GPS_LONG are "
            "numeric WGS84 degrees (not x10, not swapped) and that the map covers the points; "
            "no report was written"
        )


def report_from_json(payload: dict[str, Any]) -> LucasReport:
    """Rebuild a :class:`LucasReport` (without its per-point table) from its JSON form."""
    return LucasReport.model_validate(payload)
