"""Read the two geometry sets to interlink, check their CRSs and name their features with IRIs.

Accepted inputs: GeoParquet (``.parquet`` / ``.geoparquet``, e.g. eeflow's crop field instances),
GeoJSON / GeoPackage / Shapefile (through pyogrio), and LUCAS points (``.csv`` / ``.csv.gz``, read
with :func:`tasks.lucas.points.read_lucas_points`). Missing and empty geometries are dropped (and
counted). Both sets must end up in one CRS: either they already share one, or ``target_crs``
reprojects both; otherwise :class:`CrsMismatchError` names both files, both CRSs and the fix.

Feature IRIs come from a template with ``{row}`` (position in the file) and column names, e.g.
``feature/crop_field/2017-09_2018-08/33UWP/{row}`` (the IRIs eeflow's RDF export gives crop field
instances) or ``{iri}`` for a column that already holds full IRIs; relative templates are resolved
against the data base IRI.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from tasks.linked_data.namespaces import DEFAULT_BASE, iri_segment

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".geoparquet")
OGR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
CSV_SUFFIXES = (".csv", ".csv.gz")
DEFAULT_IRI_TEMPLATE = "feature/interlinking/{dataset}/{row}"
_BAD_IRI_CHARS = re.compile(r'[\s<>"{}|^`\\]')


class CrsMismatchError(ValueError):
    """The two geometry sets are in different CRSs (or one has none) and no target CRS was given."""


@dataclass
class GeometrySet:
    """One side of an interlinking: geometries in the common CRS and their feature IRIs.

    Attributes:
        path: the file read.
        name: the dataset name (file stem) used in default IRIs.
        crs: the CRS of ``geometries`` (e.g. ``EPSG:32633``).
        geometries: ``(n,)`` shapely geometries, none missing or empty.
        iris: ``(n,)`` feature IRIs (str).
        rows: ``(n,)`` positions of the kept features in the file.
        dropped: features dropped for a missing or empty geometry.

    """

    path: str
    name: str
    crs: str
    geometries: np.ndarray
    iris: np.ndarray
    rows: np.ndarray
    dropped: int


def read_frame(path: str | Path) -> gpd.GeoDataFrame:
    """Read one geometry file into a GeoDataFrame (CRS as stored in the file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported file type, or a Parquet file without GeoParquet metadata.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"geometry file {path} does not exist")
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        try:
            return gpd.read_parquet(path)
        except ValueError as err:
            raise ValueError(
                f"{path} is not a GeoParquet file ({err}); write it with "
                "GeoDataFrame.to_parquet so that it carries 'geo' metadata with its CRS"
            ) from err
    if name.endswith(OGR_SUFFIXES):
        return gpd.read_file(path)
    if name.endswith(CSV_SUFFIXES):
        from tasks.lucas.points import read_lucas_points

        return read_lucas_points(path)
    raise ValueError(
        f"{path}: unsupported geometry file type; use one of "
        f"{list(PARQUET_SUFFIXES + OGR_SUFFIXES + CSV_SUFFIXES)}"
    )


def common_crs(
    source: gpd.GeoDataFrame,
    target: gpd.GeoDataFrame,
    source_path: str,
    target_path: str,
    target_crs: str | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, str]:
    """Bring both sets into one CRS: ``target_crs`` when given, else the one they share.

    Raises:
        CrsMismatchError: a set has no CRS, or the CRSs differ and ``target_crs`` is None.
        ValueError: ``target_crs`` is not a CRS pyproj knows.

    """
    for frame, path in ((source, source_path), (target, target_path)):
        if frame.crs is None:
            raise CrsMismatchError(
                f"{path} has no CRS; write it with its CRS (GeoParquet 'geo' metadata, or "
                "GeoJSON, which is EPSG:4326 by definition), e.g. gdf.set_crs('EPSG:32633')"
                ".to_parquet(...); a target CRS cannot be reached from an unknown one"
            )
    if target_crs:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_user_input(target_crs)
        except CRSError as err:
            raise ValueError(f"target CRS {target_crs!r} is not a CRS pyproj knows ({err}); "
                             "use e.g. EPSG:32633") from err
        return source.to_crs(crs), target.to_crs(crs), crs.to_string()
    if not source.crs.equals(target.crs):
        raise CrsMismatchError(
            f"the geometry sets are in different CRSs: {source_path} is in "
            f"{source.crs.to_string()} and {target_path} is in {target.crs.to_string()}; pass a "
            f"target CRS to reproject both (--target-crs {source.crs.to_string()}, or a "
            "projected CRS in metres covering both), or reproject one file first"
        )
    return source, target, source.crs.to_string()


def feature_iris(
    frame: pd.DataFrame, template: str, dataset: str, base: str = DEFAULT_BASE
) -> np.ndarray:
    """Return one IRI per row from ``template`` (``{row}``, ``{dataset}`` and column names).

    A template that is exactly ``{column}`` takes that column's values as full IRIs; otherwise
    each field is written as one percent-encoded IRI path segment and a relative template is
    prefixed with ``base``.

    Raises:
        ValueError: the template names an unknown column, or yields an IRI N-Triples cannot hold.

    """
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    allowed = {"row", "dataset", *map(str, frame.columns)}
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise ValueError(f"IRI template {template!r} names {unknown}; allowed: row, dataset and "
                         f"the columns {sorted(map(str, frame.columns))}")
    rows = pd.Series(np.arange(len(frame)).astype(str), index=frame.index)
    if re.fullmatch(r"\{[^{}]+\}", template) and fields[0] not in ("row", "dataset"):
        iris = frame[fields[0]].astype(str)
    else:
        iris = pd.Series("", index=frame.index)
        for literal, field_name, _, _ in string.Formatter().parse(template):
            iris = iris + literal
            if field_name is None:
                continue
            if field_name == "row":
                iris = iris + rows
            elif field_name == "dataset":
                iris = iris + iri_segment(dataset)
            else:
                iris = iris + frame[field_name].map(iri_segment)
        if "://" not in template:
            iris = base + iris
    bad = iris.str.contains(_BAD_IRI_CHARS)
    if bad.any():
        raise ValueError(f"IRI template {template!r} gives IRIs N-Triples cannot hold, e.g. "
                         f"{iris[bad].iloc[0]!r}; use columns without spaces or <>\"{{}}|^`\\")
    return iris.to_numpy(dtype=object)


def geometry_set(
    frame: gpd.GeoDataFrame, path: str | Path, iri_template: str | None = None,
    base: str = DEFAULT_BASE,
) -> GeometrySet:
    """Turn a frame already in the common CRS into a :class:`GeometrySet` (drops empty rows)."""
    import shapely

    path = Path(path)
    dataset = path.name.split(".")[0]
    geometries = frame.geometry.to_numpy()
    keep = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    dropped = int((~keep).sum())
    if dropped:
        log.warning("%s: dropped %d features without geometry", path, dropped)
    iris = feature_iris(frame, iri_template or DEFAULT_IRI_TEMPLATE, dataset, base)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise ValueError(f"{path}: no feature has a geometry; nothing to interlink")
    return GeometrySet(str(path), dataset, str(frame.crs.to_string()), geometries[keep],
                       iris[keep], rows, dropped)


def read_geometry_sets(
    source_path: str | Path,
    target_path: str | Path,
    target_crs: str | None = None,
    source_iri_template: str | None = None,
    target_iri_template: str | None = None,
    base: str = DEFAULT_BASE,
) -> tuple[GeometrySet, GeometrySet]:
    """Read both files, bring them into one CRS and name their features.

    Args:
        source_path: source geometry file.
        target_path: target geometry file.
        target_crs: CRS to reproject both into (e.g. ``EPSG:32633``); None: they must share one.
        source_iri_template: IRI template of source features (default
            ``feature/interlinking/{dataset}/{row}``).
        target_iri_template: of target features.
        base: base IRI relative templates are resolved against.

    Returns:
        ``(source, target)`` in the same CRS.

    """
    source = read_frame(source_path)
    target = read_frame(target_path)
    source, target, _ = common_crs(source, target, str(source_path), str(target_path), target_crs)
    return (geometry_set(source, source_path, source_iri_template, base),
            geometry_set(target, target_path, target_iri_template, base))
