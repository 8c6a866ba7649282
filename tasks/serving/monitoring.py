"""Monitoring summary of the request log: counts, latency percentiles, class drift.

Per model version: requests by outcome and HTTP status, latency percentiles (p50 / p90 / p99 of
successful predictions, milliseconds), the predicted class distribution (summed over successful
predictions) and its drift against the training class distribution, as the population stability
index (PSI; < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift, the usual reading) and the
Jensen-Shannon divergence (base 2, 0 = same, 1 = disjoint).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

#: added to every share before PSI / JS so empty classes do not give infinities.
EPSILON = 1e-4


def _shares(counts: Sequence[float]) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.sum() <= 0:
        raise ValueError(f"need a 1-D distribution with a positive total, got {list(counts)}")
    shares = values / values.sum() + EPSILON
    return shares / shares.sum()


def population_stability_index(expected: Sequence[float], observed: Sequence[float]) -> float:
    """PSI = sum((o - e) * ln(o / e)) over classes of two count (or share) vectors."""
    e, o = _shares(expected), _shares(observed)
    if e.shape != o.shape:
        raise ValueError(f"distributions have {len(e)} and {len(o)} classes")
    return float(np.sum((o - e) * np.log(o / e)))


def js_divergence(expected: Sequence[float], observed: Sequence[float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two count (or share) vectors."""
    e, o = _shares(expected), _shares(observed)
    if e.shape != o.shape:
        raise ValueError(f"distributions have {len(e)} and {len(o)} classes")
    m = (e + o) / 2
    return float(0.5 * np.sum(e * np.log2(e / m)) + 0.5 * np.sum(o * np.log2(o / m)))


def drift_reading(psi: float) -> str:
    """Return the usual reading of a PSI value."""
    return "stable" if psi < 0.1 else "moderate shift" if psi < 0.25 else "major shift"


def _keep(record: dict[str, Any], project: str | None, model: str | None,
          since_text: str | None) -> bool:
    if project and record.get("project") != project:
        return False
    if model and record.get("model") != model:
        return False
    return not (since_text and str(record.get("time", "")) < since_text)


def _add_to_group(groups: dict[tuple[str, int], dict[str, Any]], record: dict[str, Any],
                  outcome: str) -> None:
    """Count a record with a model version into its group (outcomes, latency, classes)."""
    key = (str(record["model"]), int(record["version"]))
    group = groups.setdefault(key, {"outcomes": {}, "latency": [], "classes": {},
                                    "items": 0, "confidence_sum": 0.0})
    group["outcomes"][outcome] = group["outcomes"].get(outcome, 0) + 1
    output = record.get("output_summary") or {}
    if outcome == "ok" and output.get("class_counts"):
        group["latency"].append(float(record.get("latency_ms") or 0.0))
        for name, count in output["class_counts"].items():
            group["classes"][name] = group["classes"].get(name, 0) + int(count)
        group["items"] += int(output.get("n", 0))
        group["confidence_sum"] += float(output.get("mean_confidence", 0.0)) * int(
            output.get("n", 0))


def _drift(group: dict[str, Any], classes: list[str], counts: list[int] | None,
           source: str) -> dict[str, Any]:
    """Drift of a version's predicted classes against its training classes (or why none)."""
    if not counts:
        return {"available": False, "reason": source}
    if not group["items"]:
        return {"available": False, "reason": "no successful prediction yet"}
    observed = [group["classes"].get(c, 0) for c in classes]
    psi = population_stability_index(counts, observed)
    return {"available": True, "psi": round(psi, 4),
            "js_divergence": round(js_divergence(counts, observed), 4),
            "reading": drift_reading(psi), "training_source": source}


def _model_entry(
    name: str,
    version: int,
    group: dict[str, Any],
    training: Callable[[str, int], tuple[list[str], list[int] | None, str]] | None,
) -> dict[str, Any]:
    """Summary of one model version: requests, latency, predicted classes, drift."""
    latency = np.asarray(group["latency"], dtype=np.float64)
    entry: dict[str, Any] = {
        "model": name, "version": version, "requests": group["outcomes"],
        "predicted_items": group["items"],
        "mean_confidence": round(group["confidence_sum"] / group["items"], 4)
        if group["items"] else None,
        "latency_ms": {f"p{q}": round(float(np.percentile(latency, q)), 2)
                       for q in (50, 90, 99)} if len(latency) else None,
        "predicted": group["classes"], "training": None, "drift": None,
    }
    if training is not None:
        try:
            classes, counts, source = training(name, version)
        except LookupError as err:
            entry["drift"] = {"available": False, "reason": str(err)}
            return entry
        if counts:
            entry["training"] = dict(zip(classes, counts, strict=True))
        entry["drift"] = _drift(group, classes, counts, source)
    return entry


def summarise(
    records: Iterable[dict[str, Any]],
    training: Callable[[str, int], tuple[list[str], list[int] | None, str]] | None = None,
    *,
    project: str | None = None,
    model: str | None = None,
    since: dt.datetime | None = None,
) -> dict[str, Any]:
    """Summarise request-log records.

    Args:
        records: records of :mod:`tasks.serving.request_log`.
        training: ``(model, version) -> (class names, training class counts or None, source)``;
            without it, no drift is computed.
        project: keep only this project's records.
        model: keep only this model's records.
        since: keep records at or after this UTC time.

    Returns:
        ``{"requests": {...}, "models": [{model, version, requests, latency_ms, predicted,
        training, drift}]}``.

    """
    since_text = since.astimezone(dt.UTC).isoformat() if since else None
    totals: dict[str, int] = {}
    by_status: dict[str, int] = {}
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    n = 0
    for record in records:
        if not _keep(record, project, model, since_text):
            continue
        n += 1
        outcome = str(record.get("outcome"))
        totals[outcome] = totals.get(outcome, 0) + 1
        by_status[str(record.get("status"))] = by_status.get(str(record.get("status")), 0) + 1
        if record.get("model") is None or record.get("version") is None:
            continue
        _add_to_group(groups, record, outcome)
    models = [_model_entry(name, version, group, training)
              for (name, version), group in sorted(groups.items())]
    return {"requests": {"total": n, "by_outcome": totals, "by_status": by_status},
            "models": models}
