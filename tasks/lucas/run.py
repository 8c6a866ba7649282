"""Evaluate one or more crop maps against LUCAS points and write the reports atomically.

The crop DAG's ``lucas`` stage (:func:`tasks.lucas.stages.lucas_stage`) and ``eeflow lucas
evaluate`` both call :func:`run_lucas_evaluation`.

Output: ``{root}/food_security/lucas/{agronomic_year}/``::

    {map}/report.json        one map's report (counts, per-class scores, confusion matrices)
    {map}/per_class.md       per-class precision/recall/F1 of both rules
    {map}/points.parquet     per-point results (status, reference, both rules)
    {map}/confusion_within_radius.png, {map}/confusion_nearest.png
    {map}/manifest.json      inputs, config hash, code version, counts of that map's evaluation
    comparison.md            Table-IV-style comparison of every map evaluated for the year
    comparison.json          the same table + every map's full report
    manifest.json            the maps the comparison holds

Each map's folder is replaced on its own, atomically (:func:`tasks.storage.atomic_dir`):
evaluating a second model keeps the first model's report, and a run that fails (unusable points,
a broken map) raises before anything is written, so the previous good report stays. The year's
comparison is rebuilt from every map folder present.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.config.common import config_hash
from tasks.config.lucas import LucasConfig
from tasks.lucas.codelist import load_lc1_mapping
from tasks.lucas.evaluate import (
    LucasReport,
    evaluate_against_lucas,
    report_from_json,
    require_usable_points,
)
from tasks.lucas.points import read_lucas_points
from tasks.lucas.report import (
    comparison_markdown,
    comparison_table,
    per_class_markdown,
    plot_confusion,
)
from tasks.naming import is_safe_name, safe_name
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    output_lock,
    stage_dir,
    write_manifest,
)

log = logging.getLogger(__name__)

USE_CASE = "food_security"
STAGE = "lucas"


def survey_run_date(points_path: str | Path) -> dt.date:
    """Median SURVEY_DATE (LUCAS ``dd/mm/yy``) of a points file, to pick the agronomic year.

    Raises:
        ValueError: the file has no parsable SURVEY_DATE.

    """
    import pandas as pd

    points = read_lucas_points(points_path)
    if "SURVEY_DATE" not in points.columns:
        raise ValueError(f"{points_path}: no SURVEY_DATE column; pass --run-date")
    dates = pd.to_datetime(points["SURVEY_DATE"].astype(str), format="%d/%m/%y", errors="coerce")
    dates = dates.dropna()
    if dates.empty:
        raise ValueError(f"{points_path}: SURVEY_DATE has no dd/mm/yy dates; pass --run-date")
    return dates.sort_values().iloc[len(dates) // 2].date()


def run_lucas_evaluation(
    config: LucasConfig,
    points_path: str | Path,
    maps: Mapping[str, str | Path],
    root: str | Path,
    run_date: dt.date | str,
    min_usable_share: float | None = None,
    points_source: str | None = None,
) -> dict[str, Any]:
    """Evaluate each map against the same LUCAS points and write the reports.

    Args:
        config: LUCAS evaluation settings.
        points_path: LUCAS points, CSV or GeoParquet.
        maps: map name (model name, a folder-safe word) -> GeoParquet instances or class COG.
        root: data root; output goes to ``{root}/food_security/lucas/{agronomic_year}/``.
        run_date: any day of the agronomic year evaluated (e.g. the survey date).
        min_usable_share: least share of crop-coded points that must have a valid location
            (see :func:`~tasks.lucas.evaluate.require_usable_points`); default:
            ``config.min_usable_share`` (``lucas.min_usable_share``).
        points_source: how the reports and manifests name the points when ``points_path`` is a
            local copy (e.g. of an ``s3://`` file); default ``points_path``.

    Returns:
        ``{"output": folder, "reports": {name: report.json}, "maps_compared": [names],
        "comparison": comparison.md,
        "points_used": n, "oa_within_radius": {name: OA}, "oa_nearest": {name: OA}}``.

    Raises:
        ValueError: no maps or a map name that is not folder-safe.
        LucasInputError: too few usable points (counts by reason in the message); nothing is
            written then.

    """
    if not maps:
        raise ValueError("no crop maps given; pass at least one NAME=PATH")
    for name in maps:
        safe_name("map", name)
    run_key = agronomic_year_key(run_date)
    final = stage_dir(root, USE_CASE, STAGE, run_key)
    mapping = load_lc1_mapping(config.mapping_file, config.barley_rule)
    points = read_lucas_points(points_path, config.location, config.points_crs)
    reports = []
    for name, path in maps.items():
        log.info("evaluating map %s (%s) against %s", name, path, points_path)
        report = evaluate_against_lucas(points, path, config, map_name=name, mapping=mapping)
        report.points_source = points_source or str(points_path)
        require_usable_points(
            report, config.min_usable_share if min_usable_share is None else min_usable_share
        )
        reports.append(report)
    outputs: dict[str, str] = {}
    for report in reports:  # every map checked before the first folder is replaced
        with atomic_dir(final / report.map_name) as folder:
            _write_map_report(report, folder)
            write_manifest(
                folder, stage=STAGE,
                inputs={"points": points_source or str(points_path),
                        "map": str(maps[report.map_name]),
                        "mapping_file": mapping.source},
                config_hash=config_hash(config),
                counts={"points_total": report.points_total, "points_used": report.points_used},
                extra={"run_key": run_key, "map_name": report.map_name},
            )
        outputs[report.map_name] = str(final / report.map_name / "report.json")
    compared = write_comparison(final, run_key)
    return {
        "output": str(final),
        "reports": outputs,
        "maps_compared": compared,
        "comparison": str(final / "comparison.md"),
        "points_used": {r.map_name: r.points_used for r in reports},
        "oa_within_radius": {r.map_name: r.within_radius.overall_accuracy for r in reports},
        "oa_nearest": {r.map_name: r.nearest.overall_accuracy for r in reports},
    }


def _write_map_report(report: LucasReport, folder: Path) -> None:
    atomic_write_json(folder / "report.json", report.model_dump(mode="json"))
    (folder / "per_class.md").write_text(
        f"# {report.map_name}: within {report.radius_m:g} m\n\n"
        + per_class_markdown(report.within_radius)
        + "\n# nearest instance\n\n" + per_class_markdown(report.nearest)
    )
    report.point_results.to_parquet(folder / "points.parquet", index=False)
    plot_confusion(report.within_radius, folder / "confusion_within_radius.png",
                   f"{report.map_name} vs LUCAS, same class within {report.radius_m:g} m")
    plot_confusion(report.nearest, folder / "confusion_nearest.png",
                   f"{report.map_name} vs LUCAS, nearest instance")


def write_comparison(year_dir: Path, run_key: str) -> list[str]:
    """Rebuild the year's comparison and manifest from every map folder present; return names.

    Runs under the output lock of the year folder, so two evaluations finishing together both
    end up in the comparison.
    """
    with output_lock(year_dir / "comparison.json"):
        reports = []
        for report_json in sorted(year_dir.glob("*/report.json")):
            if is_safe_name(report_json.parent.name):  # skip temporaries (.name.tmp-...)
                reports.append(report_from_json(json.loads(report_json.read_text())))
        atomic_write_bytes(year_dir / "comparison.md", comparison_markdown(reports).encode())
        atomic_write_json(year_dir / "comparison.json", {
            "table": comparison_table(reports),
            "reports": [r.model_dump(mode="json") for r in reports],
        })
        write_manifest(
            year_dir, stage=STAGE,
            inputs={r.map_name: {"points": r.points_source, "map": r.map_source}
                    for r in reports},
            config_hash="per map: see {map}/manifest.json",
            counts={"maps": len(reports),
                    "points_used": {r.map_name: r.points_used for r in reports}},
            extra={"run_key": run_key},
        )
    return [r.map_name for r in reports]
