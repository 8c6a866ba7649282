"""The training contract shared by every use case.

A training function is called ``train_*(cfg, <data>, ..., output_dir=None, callbacks=())``:

- ``output_dir`` is **the model folder itself** (``model.json`` lands in it), replaced
  atomically; ``None`` picks the use case's default folder (polar:
  ``{root}/polar/models/{model}_{patch}_{scheme}_{timestamp}``; crops:
  ``{root}/food_security/models/{agronomic_year}/{model}``).
- ``callbacks`` are extra Lightning callbacks (e.g. Optuna pruning reading ``monitor``).

It returns a :class:`TrainResult` (a plain dict, so it goes to XCom and JSON as it is).
"""

from __future__ import annotations

from typing import Any, TypedDict


class TrainResult(TypedDict):
    """What every training function returns (same keys for every use case).

    Attributes:
        use_case: ``polar`` or ``food_security``.
        model: the model name trained (``train.model``).
        model_dir: the model folder written (``output_dir``).
        model_json: its ``model.json`` (:class:`tasks.trainers.card.ModelCard`).
        checkpoint: its Lightning checkpoint, ``None`` when none was saved.
        monitor: validation metric that chose the checkpoint.
        monitor_value: its value for the published model.
        metrics: validation metrics of the published model, ``{name the model logs: value}``.
        epochs: epochs run per phase (polar: ``train``; crops: ``phase1`` / ``phase2``).
        n_samples: ``train`` / ``val`` sample counts.
        dataset: the training data read (patch-set zarr or samples folder).
        seconds: wall time of the training, s.
        extra: use-case facts (polar: ``transfer``; crops: ``agronomic_year``).

    """

    use_case: str
    model: str
    model_dir: str
    model_json: str
    checkpoint: str | None
    monitor: str
    monitor_value: float
    metrics: dict[str, float]
    epochs: dict[str, int]
    n_samples: dict[str, int]
    dataset: str
    seconds: float
    extra: dict[str, Any]


TRAIN_RESULT_KEYS: frozenset[str] = frozenset(TrainResult.__annotations__)
