"""How a sea-ice model charts scenes it was not trained on: other days, other regions.

The paper reports its networks as robust "when applied to SAR scenes collected at different
spatial locations and times". :func:`evaluate_transfer` measures that on the pipeline's own data:

* temporal generalisation: train on the scenes of days A, chart the scenes of days B (same
  configuration, so the same source and area) and compare every pixel with B's truth raster;
* regional generalisation: the days B are ingested under a *test configuration*, the training
  configuration with overrides such as another ``seed`` (the generator draws other scenes and,
  without ``ingest.aoi_bbox``, other scene centres), another ``ingest.aoi_bbox`` (another area),
  other ``ingest.generator`` settings, or another ``ingest.source`` / ``ingest.directory``.

Both reuse the pipeline stages (ingest -> harmonise -> labels for every day, patches -> train on
days A) and :func:`tasks.polar.evaluate.evaluate_model` (dense, pixel-by-pixel evaluation with
land, invalid and unlabelled pixels excluded). The model's own validation split is evaluated too,
so the gap between seen and unseen scenes is in one file. Outputs, in ``out_dir`` (default
``{model_dir}/transfer/{name}/``, replaced atomically): ``metrics.json``,
``confusion_matrix.json``, ``confusion_matrix.png`` (the day-B evaluation) and ``transfer.json``
(the summary returned).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.config.common import set_dotted
from tasks.config.polar import PolarConfig
from tasks.storage import day_run_key, to_date

log = logging.getLogger(__name__)

#: Keys that may not differ between the training and the test configuration: they decide what
#: the model predicts, so a difference would not be a transfer but another task.
_FIXED_KEYS = ("train.class_scheme", "train.patch_size")


def region_config(cfg: PolarConfig, overrides: Mapping[str, Any], name: str) -> PolarConfig:
    """Return the training config with ``overrides`` (dotted keys) and its own data folder.

    The test region's stage outputs go to ``{data_root}/transfer/{name}`` unless ``overrides``
    sets ``data_root`` itself, so the same day in two regions never shares a folder.

    Raises:
        ValueError: an override names ``train.class_scheme`` / ``train.patch_size``, or the
            result is not a valid polar config (the message names the key).

    """
    fixed = [k for k in overrides if k in _FIXED_KEYS]
    if fixed:
        raise ValueError(f"test overrides {fixed} change what the model predicts; a transfer "
                         "evaluation keeps the training config's class scheme and patch size")
    data = cfg.model_dump(mode="json")
    if "data_root" not in overrides:
        data["data_root"] = str(cfg.resolved_root() / "transfer" / name)
    for dotted, value in overrides.items():
        set_dotted(data, dotted, value)
    try:
        return PolarConfig.model_validate(data)
    except ValueError as err:
        raise ValueError(f"test overrides {dict(overrides)} give an invalid polar config: "
                         f"{err}") from None


def prepare_days(cfg: PolarConfig, days: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Run ingest -> harmonise -> labels for every day whose labels are not there yet.

    Returns:
        The harmonised scenes of all days and their label rasters, in the same order.

    Raises:
        ValueError: no days, or a day without scenes.

    """
    from tasks.polar import stages

    if not days:
        raise ValueError("no days given; name at least one YYYY-MM-DD day")
    root = cfg.resolved_root() / "polar"
    scenes: list[Path] = []
    labels: list[Path] = []
    for day in days:
        key = day_run_key(to_date(day))
        harmonised = sorted((root / "harmonise" / key).glob("*.zarr"))
        if not harmonised or any(not (root / "labels" / key / s.name).exists()
                                 for s in harmonised):
            stages.ingest_stage(cfg, day)
            stages.harmonise_stage(cfg, day)
            stages.labels_stage(cfg, day)
            harmonised = sorted((root / "harmonise" / key).glob("*.zarr"))
        if not harmonised:
            raise ValueError(f"day {key}: ingest found no scenes under {cfg.resolved_root()} "
                             f"(ingest.source {cfg.ingest.source}); pick days with scenes")
        scenes += harmonised
        labels += [root / "labels" / key / s.name for s in harmonised]
    return scenes, labels


def _name(test_days: Sequence[str], overrides: Mapping[str, Any]) -> str:
    days = "_".join(day_run_key(to_date(d)) for d in test_days)
    if not overrides:
        return f"days_{days}"
    digest = hashlib.sha256(json.dumps(dict(overrides), sort_keys=True, default=str)
                            .encode()).hexdigest()[:8]
    return f"region_{digest}_{days}"


def evaluate_transfer(
    cfg: PolarConfig,
    train_days: Sequence[str],
    test_days: Sequence[str],
    *,
    test_overrides: Mapping[str, Any] | None = None,
    model_dir: Path | None = None,
    out_dir: Path | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Train on ``train_days`` (or take ``model_dir``) and evaluate on ``test_days``' scenes.

    Args:
        cfg: the polar config of the training data and model (``train`` section, ``patches``).
        train_days: days A (``YYYY-MM-DD``); their scenes build the patch training set.
        test_days: days B; with no ``test_overrides`` they must differ from days A.
        test_overrides: dotted config keys for days B (a region: ``seed``, ``ingest.aoi_bbox``,
            ``ingest.generator.*``, ``ingest.source``...); none = same config, other days.
        model_dir: a trained model folder to evaluate instead of training one on days A (its
            class scheme and patch size are used; ``train_days`` still name what it saw).
        out_dir: where the evaluation goes (default ``{model_dir}/transfer/{name}``).
        name: label of this evaluation (default from the days and a hash of the overrides).

    Returns:
        ``{"name", "train_days", "test_days", "test_overrides", "model_dir", "validation",
        "test", "evaluation_dir", "png", "confusion_matrix"}``; ``validation`` / ``test`` hold
        ``accuracy``, ``macro_f1``, ``n_samples`` and per-class F1.

    Raises:
        ValueError: the test days overlap the training days under the same config, or see
            :func:`region_config` / :func:`prepare_days`.

    """
    from tasks.polar.evaluate import evaluate_model
    from tasks.polar.patches import run_patches
    from tasks.polar.train import train_model
    from tasks.storage import atomic_write_json

    overrides = dict(test_overrides or {})
    train_keys = {day_run_key(to_date(d)) for d in train_days}
    same = sorted(train_keys & {day_run_key(to_date(d)) for d in test_days})
    if same and not overrides:
        raise ValueError(f"test days {same} are also training days; give other test days or "
                         "test overrides (another region)")
    name = name or _name(test_days, overrides)
    scenes, labels = prepare_days(cfg, train_days)
    if model_dir is None:
        data = run_patches(cfg, scenes, labels)
        size = cfg.train.patch_size
        if size not in data["datasets"]:
            raise ValueError(f"train.patch_size {size} is not in patches.sizes "
                             f"{cfg.patches.sizes}; add it")
        model_dir = Path(train_model(cfg, Path(data["datasets"][size]))["model_dir"])
        validation = evaluate_model(model_dir, Path(data["datasets"][size]), cfg=cfg)["metrics"]
    else:
        validation = _existing_validation(Path(model_dir))
    tcfg = region_config(cfg, overrides, name) if overrides else cfg
    test_scenes, test_labels = prepare_days(tcfg, test_days)
    out = Path(out_dir) if out_dir is not None else Path(model_dir) / "transfer" / name
    test = evaluate_model(Path(model_dir), scene_zarrs=test_scenes, label_zarrs=test_labels,
                          cfg=tcfg, out_dir=out)
    summary = {
        "name": name, "train_days": sorted(train_keys),
        "test_days": [day_run_key(to_date(d)) for d in test_days],
        "test_overrides": overrides, "model_dir": str(model_dir),
        "train_scenes": [str(p) for p in scenes], "test_scenes": [str(p) for p in test_scenes],
        "validation": _short(validation), "test": _short(test["metrics"]),
        "evaluation_dir": test["evaluation_dir"], "png": test["png"],
        "confusion_matrix": test["confusion_matrix"],
    }
    atomic_write_json(out / "transfer.json", summary)
    log.info("transfer %s: validation accuracy %.4f, test accuracy %.4f", name,
             summary["validation"]["accuracy"] if summary["validation"] else float("nan"),
             summary["test"]["accuracy"])
    return summary


def _existing_validation(model_dir: Path) -> dict[str, Any] | None:
    """Read the model's validation metrics: its evaluation folder, else model.json's val_acc."""
    metrics = model_dir / "evaluation" / "metrics.json"
    if metrics.exists():
        return dict(json.loads(metrics.read_text()))
    meta = json.loads((model_dir / "model.json").read_text())
    val = meta.get("val_metrics", {})
    if "val_acc" not in val:
        return None
    return {"accuracy": float(val["val_acc"]), "macro_f1": None, "n_samples": meta.get("n_val"),
            "per_class": {}}


def _short(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "n_samples": metrics["n_samples"],
            "f1": {c: v["f1"] for c, v in metrics.get("per_class", {}).items()}}
