"""Batch predictors of the two use cases, built on the pipeline's own loading and preprocessing.

- polar: a batch of SAR patches (n, band, patch, patch), bands in ``model.json`` order (HH, HV in
  dB, incidence angle in degrees, as in the training set), standardised by
  :func:`tasks.polar.predict.normalise_bands` (the function the dense scene predictor uses) and
  classified by the network of :func:`tasks.polar.train.load_model`;
- food_security: a batch of pixel time series (n, month, band) of surface reflectance, classified
  by :func:`tasks.food_security.predict.classify_pixels` with the model of
  :func:`tasks.food_security.predict.load_crop_model` (the module standardises with the band
  statistics stored in its checkpoint, as in the crop-map stage).

Inputs are checked here (:func:`check_batch`) before any model code runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.model_registry import read_model_json


class InputError(ValueError):
    """A request's input does not fit the model; the message names the field and the fix."""


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: per-item shape (without the batch axis), band order, axis names."""

    shape: tuple[int, ...]
    bands: list[str]
    axes: tuple[str, ...]
    band_axis: int
    units: str

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form shown by the metadata endpoints."""
        return {"shape": ["n", *self.shape], "axes": ["n", *self.axes], "bands": self.bands,
                "dtype": "float32", "units": self.units}


def check_batch(values: np.ndarray, spec: InputSpec, bands: list[str], max_batch: int,
                field_name: str = "inputs") -> np.ndarray:
    """Validate a request batch against a model's input spec; return it as float32.

    Raises:
        InputError: wrong dtype, shape, band order, batch size, or non-finite values.

    """
    if values.dtype.kind not in "fiu":
        raise InputError(f"{field_name}: values must be numbers (float32), got dtype "
                         f"{values.dtype} (strings, booleans, null or ragged lists are refused)")
    if bands != spec.bands:
        if sorted(bands) == sorted(spec.bands):
            raise InputError(f"bands: order {bands} differs from the model's {spec.bands}; "
                             "reorder the band axis of the inputs to the model's order")
        raise InputError(f"bands: {bands} do not match the model's bands {spec.bands}")
    expected = ("n", *spec.shape)
    if values.ndim != len(expected) or tuple(values.shape[1:]) != spec.shape:
        raise InputError(f"{field_name}: shape {list(values.shape)} does not match the model's "
                         f"{list(expected)} (axes {['n', *spec.axes]})")
    if values.shape[0] == 0:
        raise InputError(f"{field_name}: the batch is empty; send at least one item")
    if values.shape[0] > max_batch:
        raise InputError(f"{field_name}: {values.shape[0]} items exceed the limit of {max_batch} "
                         "per request (limits.max_batch); split the batch")
    values = values.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))
        raise InputError(f"{field_name}: items {bad[:10].tolist()} hold NaN or infinite values; "
                         "mask or fill them before sending (the model needs finite inputs)")
    return values


def input_summary(values: np.ndarray, spec: InputSpec) -> dict[str, Any]:
    """Return a small summary of a valid batch for the request log (n, shape, per-band mean)."""
    axes = tuple(i for i in range(values.ndim) if i != spec.band_axis)
    return {"n": int(values.shape[0]), "shape": list(values.shape),
            "band_mean": [round(float(v), 4) for v in values.mean(axis=axes)],
            "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}


@dataclass
class Predictor:
    """A loaded model of one version: input spec, classes, training class counts, predict()."""

    use_case: str
    model_dir: Path
    meta: dict[str, Any]
    spec: InputSpec
    classes: list[str]
    training_counts: list[int] | None
    training_counts_source: str
    _model: Any = field(repr=False, default=None)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Return (n, class) float32 class probabilities of a checked float32 batch."""
        import torch

        if self.use_case == "polar":
            from tasks.polar.predict import normalise_bands

            normalised = normalise_bands(batch, self._model.band_mean, self._model.band_std)
            with torch.inference_mode():
                logits = self._model.net(torch.from_numpy(normalised))
                return torch.softmax(logits, dim=1).numpy()
        from tasks.food_security.predict import classify_pixels

        probabilities = np.zeros((len(batch), len(self.classes)), np.float32)

        def keep(rows: np.ndarray, probs: np.ndarray) -> None:
            probabilities[rows] = probs

        classify_pixels(self._model, batch, batch_size=max(len(batch), 1), on_batch=keep)
        return probabilities


def _polar_training_counts(meta: dict[str, Any]) -> tuple[list[int] | None, str]:
    """Class counts of a polar model's training set (its patches zarr), in model class order."""
    path = meta.get("dataset_path")
    if not path or not Path(path).exists():
        return None, f"training set {path!r} of model.json is not readable here"
    from tasks.datasets.ice_patches import open_patch_set, scheme_targets
    from tasks.storage import zarr_array

    try:
        group, _ = open_patch_set(Path(path))
        y = np.asarray(zarr_array(group, "y")[:], np.int64)
        targets = scheme_targets(y, meta["class_scheme"])
    except (OSError, ValueError, KeyError) as err:
        return None, f"training set {path} unreadable: {err}"
    counts = np.bincount(targets, minlength=len(meta["classes"])).tolist()
    return [int(c) for c in counts], f"patch training set {path} (all patches)"


def load_predictor(use_case: str, model_dir: str | Path) -> Predictor:
    """Load a model folder of ``use_case`` (``polar`` or ``food_security``) for serving on CPU.

    Raises:
        FileNotFoundError: not a model folder.
        ValueError: the folder's ``model.json`` lacks what serving needs.

    """
    model_dir = Path(model_dir)
    meta = read_model_json(model_dir)
    if use_case == "polar":
        from tasks.polar.train import load_model

        loaded = load_model(model_dir)
        size = int(meta["patch_size"])
        bands = list(meta["bands"])
        spec = InputSpec((len(bands), size, size), bands, ("band", "y", "x"), 1,
                         "HH / HV sigma0 in dB, incidence angle in degrees")
        counts, source = _polar_training_counts(meta)
        return Predictor(use_case, model_dir, meta, spec, list(meta["classes"]), counts, source,
                         _model=loaded)
    if use_case == "food_security":
        from tasks.food_security.predict import load_crop_model

        module, meta = load_crop_model(model_dir)
        bands = list(meta["bands"])
        spec = InputSpec((int(meta.get("n_timesteps", 12)), len(bands)), bands,
                         ("month", "band"), 2, "surface reflectance (0..1), monthly composites")
        counts = meta.get("train_class_counts")
        source = "model.json train_class_counts" if counts else "model.json has no " \
            "train_class_counts"
        return Predictor(use_case, model_dir, meta, spec, list(meta["classes"]),
                         [int(c) for c in counts] if counts else None, source, _model=module)
    raise ValueError(f"use case {use_case!r} cannot be served; allowed: ['polar', "
                     "'food_security']")
