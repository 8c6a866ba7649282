"""Read LUCAS survey points (Eurostat microdata schema) from CSV or GeoParquet.

The LUCAS 2018 primary data carry two locations per point: the theoretical grid point
(``TH_LAT``/``TH_LONG``) and where the surveyor stood (``GPS_LAT``/``GPS_LONG``, with ``OBS_DIST``
the distance to the point in metres and ``OBS_TYPE`` how it was observed). Missing values use
sentinels (``88.888888`` for coordinates, ``8``/``88``/``8888`` elsewhere) or are empty. With
``location='gps_then_theoretical'`` (default) a point whose GPS is missing or invalid falls back to
its theoretical location; the column ``location_source`` (``gps``, ``theoretical``, ``geometry``
or ``none``) records what was used, and the evaluation report counts the fallbacks.

``GPS_EW`` = 2 marks a western longitude; a positive ``GPS_LONG`` with ``GPS_EW`` = 2 is negated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from tasks.config.lucas import PointLocation
from tasks.errors import EeflowError
from tasks.geoparquet import check_geo_columns

log = logging.getLogger(__name__)

#: LUCAS no-data sentinel of coordinates.
COORDINATE_SENTINEL = 88.888888
POINT_ID = "POINT_ID"
LOCATION_SOURCE = "location_source"
#: columns kept as text (codes), whatever they look like.
_TEXT_COLUMNS = ("LC1", "LC1_LABEL", "LU1", "LC1_SPEC", "LU1_TYPE", "SURVEY_DATE", "NUTS0",
                 "NUTS1", "NUTS2", "NUTS3")


class LucasInputError(EeflowError, ValueError):
    """LUCAS points are unusable as given; the message names the file and what to fix."""


def _valid_coordinates(lat: pd.Series, lon: pd.Series) -> np.ndarray:
    lat_v = pd.to_numeric(lat, errors="coerce").to_numpy(dtype="float64")
    lon_v = pd.to_numeric(lon, errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(lat_v) & np.isfinite(lon_v)
    ok &= np.abs(np.abs(lat_v) - COORDINATE_SENTINEL) > 1e-5
    ok &= np.abs(np.abs(lon_v) - COORDINATE_SENTINEL) > 1e-5
    ok &= (np.abs(lat_v) <= 90.0) & (np.abs(lon_v) <= 180.0)
    ok &= ~((lat_v == 0.0) & (lon_v == 0.0))
    return ok


def resolve_point_locations(
    table: pd.DataFrame, location: PointLocation = "gps_then_theoretical", source: str = "<points>"
) -> gpd.GeoDataFrame:
    """Choose each point's WGS84 location from the LUCAS columns.

    Args:
        table: LUCAS rows with ``POINT_ID`` and ``TH_LAT``/``TH_LONG`` and/or ``GPS_LAT``/
            ``GPS_LONG`` (decimal degrees); a GeoDataFrame without those columns keeps its geometry.
        location: ``gps_then_theoretical``, ``gps`` or ``theoretical``.
        source: name of the input, for messages.

    Returns:
        GeoDataFrame in EPSG:4326 with all input columns, point geometry (None when no valid
        location) and ``location_source``.

    """
    has_th = {"TH_LAT", "TH_LONG"} <= set(table.columns)
    has_gps = {"GPS_LAT", "GPS_LONG"} <= set(table.columns)
    n = len(table)
    if not has_th and not has_gps:
        if isinstance(table, gpd.GeoDataFrame) and table.geometry.name in table.columns:
            if table.crs is None:
                raise LucasInputError(
                    f"{source}: LUCAS GeoParquet has no CRS and no TH_LAT/TH_LONG or GPS_LAT/"
                    "GPS_LONG columns; write it with a CRS (e.g. EPSG:4326)"
                )
            out = table.to_crs("EPSG:4326")
            out[LOCATION_SOURCE] = np.where(out.geometry.is_empty | out.geometry.isna(), "none",
                                            "geometry")
            return out
        raise LucasInputError(
            f"{source}: no point location: expected columns TH_LAT/TH_LONG and/or GPS_LAT/GPS_LONG "
            f"(LUCAS microdata schema); found {list(table.columns)[:20]}"
        )
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    used = np.full(n, "none", dtype=object)
    if has_gps and location in ("gps_then_theoretical", "gps"):
        ok = _valid_coordinates(table["GPS_LAT"], table["GPS_LONG"])
        g_lat = pd.to_numeric(table["GPS_LAT"], errors="coerce").to_numpy(dtype="float64")
        g_lon = pd.to_numeric(table["GPS_LONG"], errors="coerce").to_numpy(dtype="float64")
        if "GPS_EW" in table.columns:
            west = pd.to_numeric(table["GPS_EW"], errors="coerce").to_numpy() == 2
            g_lon = np.where(west & (g_lon > 0), -g_lon, g_lon)
        lat[ok], lon[ok], used[ok] = g_lat[ok], g_lon[ok], "gps"
    if has_th and location in ("gps_then_theoretical", "theoretical"):
        ok = _valid_coordinates(table["TH_LAT"], table["TH_LONG"]) & (used == "none")
        t_lat = pd.to_numeric(table["TH_LAT"], errors="coerce").to_numpy(dtype="float64")
        t_lon = pd.to_numeric(table["TH_LONG"], errors="coerce").to_numpy(dtype="float64")
        lat[ok], lon[ok], used[ok] = t_lat[ok], t_lon[ok], "theoretical"
    if location == "gps_then_theoretical" and has_gps:
        n_fallback = int((used == "theoretical").sum())
        if n_fallback:
            log.info("%s: %d point(s) without valid GPS use their theoretical location",
                     source, n_fallback)
    frame = pd.DataFrame(table).drop(
        columns=[c for c in ("geometry",) if c in table.columns]
    )
    geometry = gpd.points_from_xy(lon, lat, crs="EPSG:4326")
    geometry[used == "none"] = None
    out = gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    out[LOCATION_SOURCE] = used
    return out


def _check_points_table(table: pd.DataFrame, source: str) -> None:
    for column in (POINT_ID, "LC1"):
        if column not in table.columns:
            raise LucasInputError(
                f"{source}: required LUCAS column {column!r} is missing; found "
                f"{list(table.columns)[:20]} (expected the LUCAS microdata schema)"
            )
    ids = table[POINT_ID]
    if ids.isna().any():
        raise LucasInputError(f"{source}: {int(ids.isna().sum())} row(s) have an empty POINT_ID")
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        first = sorted(set(duplicated.tolist()))[:5]
        raise LucasInputError(
            f"{source}: {duplicated.nunique()} duplicate POINT_ID value(s), e.g. {first}; every "
            "LUCAS point must appear once (drop repeated survey rows or pick one survey year)"
        )


def read_lucas_points(
    path: str | Path, location: PointLocation = "gps_then_theoretical", crs: str = "EPSG:4326"
) -> gpd.GeoDataFrame:
    """Read LUCAS points from a CSV (Eurostat microdata) or a GeoParquet file.

    Args:
        path: ``.csv`` (optionally ``.csv.gz``) or ``.parquet``/``.geoparquet``.
        location: which location to use (see module docstring).
        crs: CRS of the CSV coordinate columns (LUCAS publishes WGS84 degrees).

    Returns:
        GeoDataFrame in EPSG:4326: the input columns (``POINT_ID`` int64, ``LC1`` upper-case text),
        point geometry (None where no valid location) and ``location_source``.

    Raises:
        FileNotFoundError: the file does not exist.
        LucasInputError: a required column is missing or POINT_IDs repeat.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LUCAS points file {path} does not exist")
    name = path.name.lower()
    if name.endswith((".parquet", ".geoparquet")):
        if check_geo_columns(path, required=False):  # GeoParquet: its metadata must hold
            table: pd.DataFrame = gpd.read_parquet(path)
        else:
            table = pd.read_parquet(path)
    elif name.endswith((".csv", ".csv.gz")):
        try:
            table = pd.read_csv(
                path, dtype={c: "string" for c in _TEXT_COLUMNS}, keep_default_na=True,
                low_memory=False,
            )
        except pd.errors.EmptyDataError:
            raise LucasInputError(
                f"{path}: the LUCAS points CSV is empty (no header, no rows); expected the "
                "LUCAS microdata columns POINT_ID, LC1, TH_LAT/TH_LONG or GPS_LAT/GPS_LONG"
            ) from None
    else:
        raise LucasInputError(f"{path}: unsupported LUCAS file type; use .csv or .parquet")
    source = str(path)
    if table.empty:
        raise LucasInputError(f"{source}: the LUCAS points file has a header but no points")
    _check_points_table(table, source)
    ids = pd.to_numeric(table[POINT_ID], errors="coerce")
    bad = table[POINT_ID][ids.isna() | (ids % 1 != 0)]
    if len(bad):
        raise LucasInputError(
            f"{source}: column {POINT_ID} must hold whole numbers; {len(bad)} row(s) do not, "
            f"e.g. {bad.astype(str).head(5).tolist()}"
        )
    table[POINT_ID] = ids.astype("int64")
    table["LC1"] = table["LC1"].astype("string").str.strip().str.upper()
    if crs != "EPSG:4326" and not isinstance(table, gpd.GeoDataFrame):
        raise LucasInputError(
            f"{source}: CSV coordinates in {crs} are not supported; LUCAS CSV columns "
            "TH_LAT/TH_LONG/GPS_LAT/GPS_LONG are WGS84 degrees (points_crs: EPSG:4326)"
        )
    points = resolve_point_locations(table, location, source)
    log.info("read %d LUCAS points from %s", len(points), path)
    return points
