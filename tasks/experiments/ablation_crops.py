"""Crop ablation components that change the training data, e.g. the reliable-label selection.

The crop trainer reads a samples folder built by the ``labels`` and ``samples`` stages, so an
ablation component that overrides ``labels.*`` or ``samples.*`` (e.g. ``reliable_labels``: train
on every declared parcel pixel, without the border buffer, tiny-parcel and outlier rules) changes
nothing unless its training set is rebuilt. :func:`dataset_variant_adapter` wraps the crop
training adapter so that a trial whose ``labels`` / ``samples`` sections differ from the base
config trains on a *dataset variant*:

* ``{root}/food_security/experiments/datasets/{variant}/`` (``variant`` = hash of the two sections)
  holds the variant's ``labels`` and ``samples`` stage outputs, built by the ordinary stage
  functions from the year's ``harmonise`` output and parcel map (linked, not copied);
* the trial trains on ``training/{agronomic_year}/``: the variant's ``train.zarr`` and, by default,
  the base dataset's ``val.zarr`` (``fixed_validation``), so every row of the ablation table is
  scored on the same reliable validation labels and the difference is the training data's effect;
* a variant is built once (a file lock serialises parallel workers) and reused by later trials
  and re-runs.

The ``reliable_labels`` component of ``configs/food_security.yaml`` is
:data:`UNFILTERED_LABEL_OVERRIDES`: ``labels.buffer_m: 0``, ``labels.min_parcel_pixels: 1``,
``labels.outlier_filter.enabled: false`` (the ``no_observation`` rule stays: a pixel without any
valid observation has no time series to learn from).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tasks.errors import EeflowError
from tasks.storage import atomic_dir, read_manifest, stage_dir, write_manifest

if TYPE_CHECKING:
    from tasks.config.food_security import FoodSecurityConfig
    from tasks.config.use_cases import ExperimentConfig

log = logging.getLogger(__name__)

#: config sections that define the crop training set.
DATASET_SECTIONS = ("labels", "samples")
#: the LOCO component that leaves the reliable-label selection out.
RELIABLE_LABELS_COMPONENT = "reliable_labels"
#: overrides that switch the reliable-label selection off (every declared pixel with data).
UNFILTERED_LABEL_OVERRIDES: dict[str, Any] = {
    "labels.buffer_m": 0.0,
    "labels.min_parcel_pixels": 1,
    "labels.outlier_filter.enabled": False,
}
USE_CASE = "food_security"


class DatasetVariantError(EeflowError, RuntimeError):
    """A dataset variant cannot be built (the base year's inputs are missing)."""


def dataset_sections(cfg: FoodSecurityConfig) -> dict[str, Any]:
    """Return the ``labels`` and ``samples`` sections of ``cfg`` as JSON-able data."""
    return {name: getattr(cfg, name).model_dump(mode="json") for name in DATASET_SECTIONS}


def variant_key(cfg: FoodSecurityConfig, data_seed: int) -> str:
    """Return a short stable hash of ``cfg``'s dataset sections (the variant's folder name).

    ``data_seed`` is the seed the samples are drawn with (the base config's: the training seed of
    an ablation run must not change its data, as it does not change the full model's).
    """
    import hashlib

    text = json.dumps({"sections": dataset_sections(cfg), "seed": data_seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def needs_variant(base_cfg: FoodSecurityConfig, trial_cfg: FoodSecurityConfig) -> bool:
    """Tell whether ``trial_cfg`` trains on other data than ``base_cfg`` (labels / samples)."""
    return dataset_sections(base_cfg) != dataset_sections(trial_cfg)


def variants_dir(cfg: FoodSecurityConfig) -> Path:
    """Return ``{root}/food_security/experiments/datasets``."""
    return cfg.resolved_root() / USE_CASE / "experiments" / "datasets"


@contextmanager
def _locked(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        raise DatasetVariantError(f"{link} exists and is not a link to {target}; delete it")
    link.symlink_to(target, target_is_directory=True)


def build_dataset_variant(base_cfg: FoodSecurityConfig, trial_cfg: FoodSecurityConfig, year: str,
                          *, fixed_validation: bool = True) -> dict[str, Any]:
    """Build (once) the training folder of ``trial_cfg``'s labels / samples settings for ``year``.

    Args:
        base_cfg: the config whose ``harmonise`` / ``ingest`` outputs and samples exist.
        trial_cfg: the trial's config (other ``labels`` / ``samples`` settings).
        year: agronomic-year key, e.g. ``2017-09_2018-08``.
        fixed_validation: train on the variant's train split but validate on the base dataset's
            ``val.zarr`` (default), so the metric of every ablation run is measured alike.

    Returns:
        ``variant``, ``root``, ``samples_dir`` (the training folder), ``train_samples``,
        ``val_samples``, ``labels_report`` and ``built`` (False when it already existed).

    Raises:
        DatasetVariantError: the base year has no harmonise output or samples.

    """
    from tasks.food_security.labels import run_labels
    from tasks.food_security.samples import run_samples

    base_root = base_cfg.resolved_root()
    harmonised = stage_dir(base_root, USE_CASE, "harmonise", year)
    base_samples = stage_dir(base_root, USE_CASE, "samples", year)
    for needed, stage in ((harmonised, "harmonise"), (base_samples, "samples")):
        if not (needed / "manifest.json").is_file():
            raise DatasetVariantError(
                f"{needed} is not a complete {stage} output; run the crop pipeline for {year} "
                "before an ablation whose components change labels or samples"
            )
    key = variant_key(trial_cfg, base_cfg.seed)
    root = variants_dir(base_cfg) / key
    training = root / "training" / year
    with _locked(root.parent / f"{key}.lock"):
        if (training / "manifest.json").is_file():
            summary = read_manifest(training)
            return {**summary["variant"], "samples_dir": str(training), "built": False}
        log.info("building dataset variant %s for %s: %s", key, year,
                 json.dumps(dataset_sections(trial_cfg)["labels"], sort_keys=True))
        _link(harmonised, stage_dir(root, USE_CASE, "harmonise", year))
        base_ingest = stage_dir(base_root, USE_CASE, "ingest", year)
        if base_ingest.exists():  # the generated parcel map of the year
            _link(base_ingest, stage_dir(root, USE_CASE, "ingest", year))
        variant_cfg = trial_cfg.model_copy(update={"data_root": str(root), "seed": base_cfg.seed})
        first_day = f"{year[:7]}-01"
        labels = run_labels(variant_cfg, first_day)
        samples = run_samples(variant_cfg, first_day)
        val_source = base_samples if fixed_validation else Path(samples["output"])
        base_val = read_manifest(base_samples)["counts"]["val"]
        summary = {
            "variant": key, "root": str(root),
            "train_samples": samples["splits"]["train"]["n_samples"],
            "val_samples": base_val if fixed_validation else samples["splits"]["val"]["n_samples"],
            "labels_report": labels["report"], "fixed_validation": fixed_validation,
            "sections": dataset_sections(trial_cfg),
        }
        with atomic_dir(training) as out:
            (out / "train.zarr").symlink_to(Path(samples["output"]) / "train.zarr",
                                            target_is_directory=True)
            (out / "val.zarr").symlink_to(val_source / "val.zarr", target_is_directory=True)
            write_manifest(out, stage="dataset_variant",
                           inputs={"train": samples["output"], "val": str(val_source)},
                           config_hash=key,
                           counts={"train": summary["train_samples"],
                                   "val": summary["val_samples"]},
                           extra={"variant": summary})
    log.info("dataset variant %s: %d train samples (base %d)", key, summary["train_samples"],
             read_manifest(base_samples)["counts"]["train"])
    return {**summary, "samples_dir": str(training), "built": True}


def dataset_variant_adapter(base_cfg: ExperimentConfig, adapter: Any, *,
                            fixed_validation: bool = True) -> Any:
    """Wrap a crop training adapter: trials with other labels / samples settings get their data.

    A trial whose config has the base ``labels`` / ``samples`` sections trains as before; any
    other trial trains on :func:`build_dataset_variant` (``train.samples_dir`` is set) and
    records the variant in its result (``dataset_variant``, ``train_samples``). Adapters of
    other use cases, and configs that set ``train.samples_dir`` themselves, are returned as is.
    """
    if adapter.use_case != USE_CASE or getattr(base_cfg.train, "samples_dir", None):
        return adapter
    crop_cfg = cast("FoodSecurityConfig", base_cfg)  # the adapter is the crop use case's
    base_samples = Path(adapter.dataset)
    inner = adapter.train

    def train(trial_cfg: FoodSecurityConfig, callbacks: Sequence[Any],
              output_dir: Path) -> Mapping[str, Any]:
        if not needs_variant(crop_cfg, trial_cfg):
            return inner(trial_cfg, callbacks, output_dir)
        try:
            year = str(read_manifest(base_samples)["agronomic_year"])
        except (FileNotFoundError, KeyError) as err:
            raise DatasetVariantError(
                f"the crop samples {base_samples} have no manifest with the agronomic year "
                f"({err}); run 'eeflow food_security samples' for the year first"
            ) from None
        variant = build_dataset_variant(crop_cfg, trial_cfg, year,
                                        fixed_validation=fixed_validation)
        updated = trial_cfg.model_copy(deep=True)
        updated.train.samples_dir = variant["samples_dir"]
        result = dict(inner(updated, callbacks, output_dir))
        result.update(dataset_variant=variant["variant"],
                      train_samples=int(variant["train_samples"]))
        return result

    return replace(adapter, train=train)
