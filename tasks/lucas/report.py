"""Reports of LUCAS evaluations: Table-IV-style comparison (markdown, JSON), confusion PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.lucas.evaluate import LucasReport
from tasks.lucas.metrics import RuleResult
from tasks.plots import plot_confusion_matrix


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def comparison_table(reports: Sequence[LucasReport]) -> list[dict[str, Any]]:
    """One row per map: points used, OA and F1 of the radius rule and of nearest matching.

    Raises:
        ValueError: no reports, or the maps were not evaluated on the same points and settings.

    """
    if not reports:
        raise ValueError("no LUCAS reports to compare")
    first = reports[0]
    for report in reports[1:]:
        if (report.points_source, report.radius_m, report.barley_rule) != (
            first.points_source, first.radius_m, first.barley_rule
        ):
            raise ValueError(
                f"maps {first.map_name!r} and {report.map_name!r} were evaluated on different "
                "points or settings (points file, radius, barley rule); a Table IV needs the same"
            )
    rows = []
    for r in reports:
        rows.append({
            "map": r.map_name,
            "points_used": r.points_used,
            "radius_m": r.radius_m,
            "oa_within_radius": r.within_radius.overall_accuracy,
            "median_f1_within_radius": r.within_radius.median_f1,
            "macro_f1_within_radius": r.within_radius.macro_f1,
            "weighted_f1_within_radius": r.within_radius.weighted_f1,
            "oa_nearest": r.nearest.overall_accuracy,
            "median_f1_nearest": r.nearest.median_f1,
            "macro_f1_nearest": r.nearest.macro_f1,
        })
    return rows


def comparison_markdown(reports: Sequence[LucasReport]) -> str:
    """Table IV as markdown: OA% / F1% per map under the radius rule and nearest matching."""
    rows = comparison_table(reports)
    radius = f"{reports[0].radius_m:g} m"
    lines = [
        f"| map | points | OA % ({radius}) | median F1 % ({radius}) | macro F1 % ({radius}) "
        "| weighted F1 % | OA % (nearest) | median F1 % (nearest) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['map']} | {row['points_used']} | {_pct(row['oa_within_radius'])} | "
            f"{_pct(row['median_f1_within_radius'])} | {_pct(row['macro_f1_within_radius'])} | "
            f"{_pct(row['weighted_f1_within_radius'])} | {_pct(row['oa_nearest'])} | "
            f"{_pct(row['median_f1_nearest'])} |"
        )
    first = reports[0]
    excluded = ", ".join(f"{k} {v}" for k, v in first.excluded.items() if v)
    lines += [
        "",
        f"LUCAS points: {first.points_total} read, {first.points_used} used "
        f"(excluded: {excluded or 'none'}; {first.gps_fallback_to_theoretical} without GPS used "
        "their theoretical location). Barley rule: "
        f"{first.barley_rule}. Distances in {first.evaluation_crs}.",
    ]
    for r in reports:
        notes = []
        if r.classes_absent_from_map:
            notes.append(f"LUCAS classes with no instance in the map: {r.classes_absent_from_map}")
        if r.classes_absent_from_lucas:
            notes.append(f"map classes with no LUCAS point: {r.classes_absent_from_lucas}")
        if r.unknown_lc1_codes:
            notes.append(f"unknown LC1 codes: {r.unknown_lc1_codes}")
        if notes:
            lines.append(f"- {r.map_name}: " + "; ".join(notes))
    return "\n".join(lines) + "\n"


def per_class_markdown(result: RuleResult) -> str:
    """Per-class precision/recall/F1/support of one rule as markdown."""
    lines = ["| class | precision % | recall % | F1 % | LUCAS points | predicted |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in result.per_class.items():
        lines.append(f"| {name} | {_pct(s.precision)} | {_pct(s.recall)} | {_pct(s.f1)} | "
                     f"{s.support} | {s.predicted} |")
    return "\n".join(lines) + "\n"


def plot_confusion(result: RuleResult, path: str | Path, title: str) -> Path:
    """Save the row-normalised confusion matrix (counts annotated) of one rule as a PNG.

    Rows: LUCAS reference classes (with their number of points); columns: map classes and
    ``no_instance``. Classes without LUCAS points are drawn as empty rows.
    """
    oa = _pct(result.overall_accuracy)
    return plot_confusion_matrix(
        np.asarray(result.confusion), result.reference_classes, path,
        f"{title}\nOA {oa} %, median F1 {_pct(result.median_f1)} %, {result.points} points",
        predicted_labels=result.predicted_classes, row_support=True,
        axis_labels=("map class", "LUCAS class (points)"),
        colour_label="share of the LUCAS class", dpi=110,
    )
