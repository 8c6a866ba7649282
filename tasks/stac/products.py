"""Catalogue entries of eeflow's products: which files make an item, and its time and footprint.

Called by the stages that publish (polar publish, food-security predict and evaluate, polar
evaluate) right after their output folder is in place; each call replaces the run's items in
its collection (see :func:`tasks.stac.catalogue.publish_run_items`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.stac.catalogue import AssetSpec, build_item, publish_run_items


def _day_start(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def _agronomic_year_period(year: str) -> tuple[dt.datetime, dt.datetime]:
    """``2017-09_2018-08`` -> (2017-09-01T00:00Z, 2018-08-31T23:59:59Z)."""
    first, last = year.split("_")
    start = dt.datetime.strptime(first, "%Y-%m").replace(tzinfo=dt.UTC)
    end_month = dt.datetime.strptime(last, "%Y-%m").replace(tzinfo=dt.UTC)
    next_month = (end_month + dt.timedelta(days=32)).replace(day=1)
    return start, next_month - dt.timedelta(seconds=1)


def catalogue_ice_charts(
    root: str | os.PathLike[str], day: str, folder: Path, charts: Sequence[Path],
    model: str | None = None,
) -> dict[str, Any]:
    """Publish one ``ice-charts`` item per chart COG of ``folder`` (the day's published folder).

    Assets: ``chart`` (COG), ``quicklook`` (PNG), ``polygons`` (RFC 7946 GeoJSON, CRS84) and
    ``polygons_projected`` (GeoParquet in the chart CRS), those present.
    """
    items = []
    for chart in charts:
        scene = chart.stem.removesuffix("_chart")
        assets = [AssetSpec("chart", chart, ("data",), "Ice chart (class codes)")]
        for key, name, roles, title in (
            ("quicklook", f"{scene}_quicklook.png", ("overview",), "Quicklook"),
            ("polygons", f"{scene}_chart.geojson", ("data",), "Class polygons, CRS84"),
            ("polygons_projected", f"{scene}_chart.parquet", ("data",),
             "Class polygons, chart CRS (GeoParquet)"),
        ):
            path = folder / name
            if path.is_file() and key not in {a.key for a in assets}:
                assets.append(AssetSpec(key, path, roles, title))
        items.append(build_item(
            chart.stem, assets, datetime=_day_start(day), footprint_from=chart,
            properties={"eeflow:product": "ice_chart", "eeflow:run_key": day,
                        "eeflow:scene_id": scene, **({"eeflow:model": model} if model else {})},
        ))
    return publish_run_items(root, "ice-charts", day, items)


def catalogue_crop_map(
    root: str | os.PathLike[str], year: str, folder: Path, tile: str, model: str,
) -> dict[str, Any]:
    """Publish the ``crop-maps`` and ``field-instances`` items of one tile and agronomic year."""
    start, end = _agronomic_year_period(year)
    props = {"eeflow:run_key": year, "eeflow:tile": tile, "eeflow:model": model}
    crop_map = folder / "crop_map.tif"
    map_assets = [AssetSpec("crop_map", crop_map, ("data",), "Crop class index (255 no data)"),
                  AssetSpec("confidence", folder / "confidence.tif", ("data",),
                            "Softmax probability of the chosen class")]
    if (folder / "crop_map.png").is_file():
        map_assets.append(AssetSpec("quicklook", folder / "crop_map.png", ("overview",)))
    crop_item = build_item(f"{tile}_{year}_crop_map", map_assets, datetime=None, start=start,
                           end=end, footprint_from=crop_map,
                           properties={"eeflow:product": "crop_map", **props})
    fields = folder / f"{tile}_instances.parquet"
    field_item = build_item(f"{tile}_{year}_field_instances",
                            [AssetSpec("field_instances", fields, ("data",))], datetime=None,
                            start=start, end=end, footprint_from=crop_map,
                            properties={"eeflow:product": "field_instances", **props})
    return {
        "crop-maps": publish_run_items(root, "crop-maps", f"{year}_{tile}", [crop_item]),
        "field-instances": publish_run_items(root, "field-instances", f"{year}_{tile}",
                                             [field_item]),
    }


def catalogue_evaluation(
    root: str | os.PathLike[str], use_case: str, run_key: str, folder: Path, item_id: str,
    *, when: dt.datetime | None = None, period: str | None = None,
) -> dict[str, Any]:
    """Publish a ``model-evaluations`` item for the evaluation files of ``folder`` (no geometry).

    Args:
        root: data root.
        use_case: ``polar`` or ``food_security``.
        run_key: the evaluation's run (an agronomic year, a day, a model name).
        folder: holds ``metrics.json`` (and ``confusion_matrix.json`` / ``comparison.*``).
        item_id: unique id of the evaluation.
        when: evaluation time (default now) when ``period`` is None.
        period: an agronomic year the evaluation covers (gives start/end instead of ``when``).

    """
    assets = [AssetSpec("metrics", folder / "metrics.json", ("metadata",), "Metrics")]
    for key, name in (("confusion_matrix", "confusion_matrix.json"),
                      ("comparison", "comparison.md"), ("comparison_json", "comparison.json"),
                      ("confusion_matrix_png", "confusion_matrix.png")):
        if (folder / name).is_file():
            assets.append(AssetSpec(key, folder / name, ("metadata",)))
    times: dict[str, Any] = {"datetime": when or dt.datetime.now(dt.UTC)}
    if period is not None:
        start, end = _agronomic_year_period(period)
        times = {"datetime": None, "start": start, "end": end}
    item = build_item(item_id, assets, **times,
                      properties={"eeflow:product": "model_evaluation", "eeflow:use_case": use_case,
                                  "eeflow:run_key": run_key})
    return publish_run_items(root, "model-evaluations", f"{use_case}_{run_key}", [item])
