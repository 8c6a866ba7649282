"""Accuracy of the year's crop models on the held-out test tile, and the Table-IV comparison.

Every reliably labelled pixel of the test tile (``{root}/food_security/labels/{year}/{tile}.zarr``,
``label >= 0``) is classified from the tile's monthly composites, block of rows by block of rows,
into a confusion matrix per model. Scores: overall accuracy (OA), per-class precision / recall /
F1, median F1 over the classes present (the paper's F1 figure) and macro F1.

Output: ``{root}/food_security/evaluate/{agronomic_year}/`` replaced atomically, holding
``metrics.json`` (all scores and confusion matrices), ``comparison.md`` / ``comparison.json``
(LSTM vs TempCNN vs StarRNN: OA, median F1, macro F1, F1 of the three rarest classes),
``confusion_{model}.png`` and ``manifest.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig
from tasks.food_security.predict import (
    PredictInputError,
    TileComposites,
    classify_pixels,
    composites_path,
    load_crop_model,
    resolve_model_dir,
)
from tasks.plots import plot_confusion_matrix
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    atomic_write_json,
    stage_dir,
    write_manifest,
    zarr_array,
    zarr_attrs,
)

log = logging.getLogger(__name__)

USE_CASE = "food_security"
MODEL_LABELS = {"lstm": "LSTM (weighted two-phase)", "tempcnn": "TempCNN", "starrnn": "StarRNN"}


def labels_path(cfg: FoodSecurityConfig, run_date: Any, tile: str) -> Path:
    """Return ``{root}/food_security/labels/{agronomic_year}/{tile}.zarr``."""
    year = agronomic_year_key(run_date)
    return stage_dir(cfg.resolved_root(), USE_CASE, "labels", year) / f"{tile}.zarr"


def tile_confusion(
    module: Any,
    meta: dict[str, Any],
    composites: Path,
    labels: Path,
    block_rows: int = 256,
    batch_size: int = 4096,
) -> np.ndarray:
    """Confusion matrix ``[reference, predicted]`` of a model over a tile's labelled pixels.

    Raises:
        PredictInputError: labels missing, of another grid, or with another class list.

    """
    import zarr

    class_names = list(meta["classes"])
    n = len(class_names)
    if not labels.exists():
        raise PredictInputError(
            f"no labels at {labels}; run the labels stage for this tile and agronomic year first"
        )
    group = zarr.open_group(str(labels), mode="r")
    if "label" not in group:
        raise PredictInputError(f"{labels} has no 'label' array")
    label_array = zarr_array(group, "label")
    label_classes = zarr_attrs(group).get("class_names")
    if label_classes is not None and list(label_classes) != class_names:
        raise PredictInputError(
            f"{labels} uses classes {list(label_classes)}, the model {class_names}"
        )
    source = TileComposites(composites, list(meta["bands"]),
                            int(meta["n_timesteps"]))
    if tuple(label_array.shape) != (source.height, source.width):
        raise PredictInputError(
            f"labels {labels} are {tuple(label_array.shape)} px, composites {composites} are "
            f"{(source.height, source.width)} px; both must be on the same grid"
        )
    confusion = np.zeros((n, n), dtype=np.int64)
    for start in range(0, source.height, block_rows):
        stop = min(start + block_rows, source.height)
        reference = np.asarray(label_array[start:stop]).reshape(-1).astype(np.int64)
        labelled = reference >= 0
        if not labelled.any():
            continue
        if reference.max() >= n:
            raise PredictInputError(f"{labels} holds class index {reference.max()} >= {n}")
        series = source.read_rows(start, stop)[labelled]
        predicted, _ = classify_pixels(module, series, batch_size)
        valid = predicted < n
        if not valid.all():
            log.warning("%d labelled pixels of %s have no composite value; not scored",
                        int((~valid).sum()), composites)
        pairs = reference[labelled][valid] * n + predicted[valid].astype(np.int64)
        confusion += np.bincount(pairs, minlength=n * n).reshape(n, n)
    return confusion


def _trained_models(
    cfg: FoodSecurityConfig, run_date: Any, names: list[str], year: str
) -> tuple[dict[str, Path], list[str]]:
    """Model folders of ``names`` trained for the year, and the names without one."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        try:
            found[name] = resolve_model_dir(cfg, run_date, name)
        except PredictInputError:
            missing.append(name)
    if not found:
        raise PredictInputError(
            f"no trained model of {names} for agronomic year {year}; run the train stage first"
        )
    if missing:
        log.warning("models %s are not trained for %s; the comparison lists them as missing",
                    missing, year)
    return found, missing


def _score_models(
    cfg: FoodSecurityConfig, run_date: Any, tile: str, year: str, found: dict[str, Path]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Confusion matrix and scores of each model on the tile; the class names of the last one."""
    from tasks.trainers.scores import classification_scores

    results: dict[str, dict[str, Any]] = {}
    class_names: list[str] = []
    for name, folder in found.items():
        module, meta = load_crop_model(folder)
        class_names = list(meta["classes"])
        confusion = tile_confusion(
            module, meta, composites_path(cfg, run_date, tile), labels_path(cfg, run_date, tile),
            cfg.predict.block_rows, cfg.predict.batch_size,
        )
        if confusion.sum() == 0:
            raise PredictInputError(
                f"tile {tile} of {year} has no labelled pixel to evaluate on; check the labels "
                "report (tile outside the parcel map?) or choose another evaluate.tile"
            )
        scores = classification_scores(confusion)
        results[name] = {**scores, "confusion": confusion.tolist(), "model_dir": str(folder),
                         "hyperparameters": meta.get("hyperparameters", {})}
        log.info("%s on %s: OA %.4f, median F1 %.4f", name, tile,
                 scores["overall_accuracy"], scores["median_f1"])
    return results, class_names


def _plot_confusions(
    out: Path, results: dict[str, dict[str, Any]], class_names: list[str], tile: str, year: str
) -> None:
    """One ``confusion_<model>.png`` per model (row-normalised, empty classes dropped)."""
    for name, result in results.items():
        plot_confusion_matrix(np.asarray(result["confusion"]), class_names,
                              out / f"confusion_{name}.png",
                              f"{MODEL_LABELS.get(name, name)} on tile {tile}, {year}\nOA "
                              f"{100 * result['overall_accuracy']:.1f} %, median F1 "
                              f"{100 * result['median_f1']:.1f} %",
                              drop_empty_classes=True,
                              axis_labels=("predicted class", "reference class"),
                              colour_label="fraction of reference pixels")


def run_evaluate(
    cfg: FoodSecurityConfig,
    run_date: Any,
    models: list[str] | None = None,
    tile: str | None = None,
) -> dict[str, Any]:
    """Score the year's models on the held-out tile and write the comparison table.

    Args:
        cfg: validated config (``evaluate.tile``, ``evaluate.models``, ``predict`` block sizes).
        run_date: any day of the agronomic year.
        models: model names to compare (default ``cfg.evaluate.models``); names without a trained
            model of the year are listed as ``missing_models`` (at least one must exist).
        tile: test tile (default ``cfg.evaluate.tile``).

    Returns:
        Output paths and per-model ``overall_accuracy`` / ``median_f1``.

    Raises:
        PredictInputError: no requested model is trained, or labels / composites are missing.

    """
    started = time.perf_counter()
    year = agronomic_year_key(run_date)
    tile = tile or cfg.evaluate.tile
    names = list(dict.fromkeys(models or cfg.evaluate.models))
    found, missing = _trained_models(cfg, run_date, names, year)
    results, class_names = _score_models(cfg, run_date, tile, year, found)
    table = comparison_table(results, class_names)
    final = stage_dir(cfg.resolved_root(), USE_CASE, "evaluate", year)
    with atomic_dir(final) as out:
        atomic_write_json(out / "metrics.json", {
            "agronomic_year": year, "tile": tile, "classes": class_names, "models": results,
            "missing_models": missing,
        })
        atomic_write_json(out / "comparison.json", {"tile": tile, "agronomic_year": year,
                                                    "rows": table, "missing_models": missing})
        (out / "comparison.md").write_text(comparison_markdown(table, tile, year, missing))
        _plot_confusions(out, results, class_names, tile, year)
        write_manifest(
            out, stage="evaluate",
            inputs={"labels": str(labels_path(cfg, run_date, tile)),
                    "composites": str(composites_path(cfg, run_date, tile)),
                    "models": {k: str(v) for k, v in found.items()}},
            config_hash=config_hash(cfg),
            counts={"labelled_pixels": int(next(iter(results.values()))["n_samples"]),
                    "models": len(results)},
            extra={"tile": tile, "agronomic_year": year},
        )
    from tasks.stac.products import catalogue_evaluation

    catalogue_evaluation(cfg.resolved_root(), USE_CASE, year, final,
                         f"food_security_{year}_{tile}_evaluation", period=year)
    log.info("evaluation of %s written to %s (%.1f s)", year, final, time.perf_counter() - started)
    return {
        "agronomic_year": year,
        "tile": tile,
        "folder": str(final),
        "comparison": str(final / "comparison.md"),
        "metrics": str(final / "metrics.json"),
        "scores": {name: {"overall_accuracy": r["overall_accuracy"], "median_f1": r["median_f1"]}
                   for name, r in results.items()},
        "missing_models": missing,
    }


def comparison_table(results: dict[str, dict[str, Any]], class_names: list[str]) -> list[dict]:
    """Rows of the Table-IV comparison: OA, median / macro F1, F1 of the three rarest classes.

    The rarest classes are the three with the fewest reference pixels (support > 0) on the tile.
    """
    if not results:
        return []
    support = np.asarray(next(iter(results.values()))["support"])
    present = np.flatnonzero(support > 0)
    rarest = present[np.argsort(support[present], kind="stable")][:3]
    rows = []
    for name, result in results.items():
        rows.append({
            "model": name,
            "label": MODEL_LABELS.get(name, name),
            "overall_accuracy": result["overall_accuracy"],
            "median_f1": result["median_f1"],
            "macro_f1": result["macro_f1"],
            "rarest_class_f1": {class_names[i]: result["f1"][i] for i in rarest},
            "n_samples": result["n_samples"],
        })
    return rows


def comparison_markdown(rows: list[dict], tile: str, year: str, missing: list[str]) -> str:
    """Render the comparison rows as a markdown table (percentages, like the paper's Table IV)."""
    rare = list(rows[0]["rarest_class_f1"]) if rows else []
    header = ["Model", "OA %", "median F1 %", "macro F1 %", *[f"F1 {c} %" for c in rare]]
    lines = [
        f"# Crop-type models on held-out tile {tile}, agronomic year {year}",
        "",
        f"{rows[0]['n_samples'] if rows else 0} reliably labelled pixels; median F1 over the "
        "classes present (the paper's F1 figure); the last columns are the three rarest classes.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in rows:
        cells = [row["label"], f"{100 * row['overall_accuracy']:.2f}",
                 f"{100 * row['median_f1']:.2f}", f"{100 * row['macro_f1']:.2f}"]
        cells += [f"{100 * row['rarest_class_f1'][c]:.2f}" for c in rare]
        lines.append("| " + " | ".join(cells) + " |")
    for name in missing:
        lines.append("| " + " | ".join([MODEL_LABELS.get(name, name), "not trained"]
                                       + [""] * (len(header) - 2)) + " |")
    return "\n".join(lines) + "\n"
