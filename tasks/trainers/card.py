"""The model card: one ``model.json`` schema for the sea-ice and the crop-type models.

Every model folder's ``model.json`` holds a ``card`` object (:class:`ModelCard`, the same fields
for every use case: model name, classes, bands, input contract, normalisation, training
configuration, validation ``metrics`` under the names the model logs, the monitored metric and
its value, epochs, training data, code version, creation time) next to the use case's own
top-level keys. Those keys stay because predict, the registry and the RDF export of models
(``tasks/linked_data/mappings/model.yaml`` reads ``hyperparameters`` / ``metrics`` /
``dataset_version``) read them.

:func:`load` / :meth:`ModelCard.load` also read the cards written before the ``card`` object
existed (polar: flat keys with ``val_metrics``; crops: ``metrics.validation`` and a ``monitor``
mapping) and build the same :class:`ModelCard` from them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from tasks.errors import EeflowError, ErrorFamily

MODEL_JSON = "model.json"
CARD_KEY = "card"
#: version of the ``card`` object; cards converted from older files say 1.
SCHEMA_VERSION = 2


class ModelCardError(EeflowError, ValueError):
    """A ``model.json`` that is not valid JSON or not a model card; the message names the file."""

    family = ErrorFamily.INPUT


class ModelCard(BaseModel):
    """What a trained model is, what it accepts and how it was trained (``model.json`` ``card``).

    Attributes:
        schema_version: 2 for cards written with a ``card`` object, 1 for older files.
        use_case: ``polar`` or ``food_security`` (``None``: not stated by an old file).
        model: model name (``train.model``: ``adhoc_cnn``, ``vgg16_transfer``, ``lstm`` ...).
        architecture: the network built for it (``vgg16`` for ``vgg16_transfer``).
        classes: output class names, in logit order.
        bands: input bands, in input order.
        input_contract: what inputs the model accepts (polar: modes, pixel spacings, CRSs,
            patch size; crops: months per series).
        normalisation: ``band_mean`` / ``band_std`` per band (input units).
        hyperparameters: the training configuration.
        monitor: validation metric that chose the checkpoint; ``monitor_mode`` min / max.
        monitor_value: its value for the published model.
        metrics: validation metrics of the published model, ``{name the model logs: value}``.
        epochs: epochs run per training phase (polar: ``train``; crops: ``phase1``, ``phase2``).
        dataset: training-set path; ``dataset_version`` its version.
        weights: file of the folder inference loads; ``checkpoint`` the Lightning checkpoint.
        code_version: git commit of the training code; ``created``: ISO time (UTC).

    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    use_case: Literal["polar", "food_security"] | None = None
    model: str
    architecture: str
    classes: list[str] = Field(default_factory=list)
    bands: list[str] = Field(default_factory=list)
    input_contract: dict[str, Any] = Field(default_factory=dict)
    normalisation: dict[str, list[float]] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    monitor: str | None = None
    monitor_mode: Literal["min", "max"] | None = None
    monitor_value: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    epochs: dict[str, int] = Field(default_factory=dict)
    dataset: str | None = None
    dataset_version: str | None = None
    weights: str | None = None
    checkpoint: str | None = None
    code_version: str | None = None
    created: str | None = None
    _document: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def document(self) -> dict[str, Any]:
        """The whole ``model.json`` this card was read from (use-case keys included)."""
        return dict(self._document)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read ``path`` (a ``model.json`` or its folder), old or new layout.

        Raises:
            FileNotFoundError: no such file.
            ModelCardError: not JSON, or not a model card (the message names the file).

        """
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_JSON
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ModelCardError(f"{path} is not valid JSON: {err}") from None
        return cls.from_document(document, source=str(path))

    @classmethod
    def from_document(cls, document: Any, source: str = MODEL_JSON) -> ModelCard:
        """Build the card of a parsed ``model.json`` (``source`` names it in errors).

        Raises:
            ModelCardError: not an object, or fields of the wrong type.

        """
        if not isinstance(document, Mapping):
            raise ModelCardError(f"{source} is not a model card: expected a JSON object, got "
                                 f"{type(document).__name__}")
        try:
            if isinstance(document.get(CARD_KEY), Mapping):
                card = cls.model_validate(document[CARD_KEY])
            elif "val_metrics" in document or "architecture" in document:
                card = cls.model_validate(_from_polar_v1(document))
            else:
                card = cls.model_validate(_from_crops_v1(document))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                                 for e in err.errors())
            raise ModelCardError(f"{source} is not a valid model card: {problems}") from None
        card._document = dict(document)
        return card

    def document_with(self, use_case_keys: Mapping[str, Any]) -> dict[str, Any]:
        """Return the ``model.json`` to write: the use case's keys plus this card under ``card``."""
        return {**use_case_keys, CARD_KEY: self.model_dump(mode="json")}

    def write(self, folder: Path, use_case_keys: Mapping[str, Any]) -> Path:
        """Write ``folder/model.json`` (sorted keys, indented) and return its path."""
        path = folder / MODEL_JSON
        path.write_text(json.dumps(self.document_with(use_case_keys), indent=2, sort_keys=True))
        return path


def load(path: str | Path) -> ModelCard:
    """Read the model card of a ``model.json`` or model folder (see :meth:`ModelCard.load`)."""
    return ModelCard.load(path)


def _name_of(document: Mapping[str, Any]) -> str:
    return str(document.get("model") or document.get("name") or "")


def _from_polar_v1(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Card fields of a polar ``model.json`` written before the ``card`` object."""
    hyper = dict(doc.get("hyperparameters") or {})
    monitor = doc.get("monitor") or hyper.get("monitor")
    return {
        "schema_version": 1, "use_case": "polar", "model": _name_of(doc),
        "architecture": str(doc.get("architecture") or _name_of(doc)),
        "classes": doc.get("classes", []), "bands": doc.get("bands", []),
        "input_contract": doc.get("input_contract") or {},
        "normalisation": {k: doc[k] for k in ("band_mean", "band_std") if k in doc},
        "hyperparameters": hyper, "monitor": monitor,
        "monitor_mode": None if monitor is None else "min" if monitor == "val_loss" else "max",
        "monitor_value": doc.get("monitor_value"), "metrics": doc.get("val_metrics") or {},
        "epochs": ({"train": doc["epochs_trained"]} if "epochs_trained" in doc else {}),
        "dataset": doc.get("dataset_path"), "dataset_version": doc.get("dataset_version"),
        "weights": doc.get("weights", "model.pt"), "checkpoint": doc.get("checkpoint"),
        "code_version": doc.get("code_version"), "created": doc.get("created"),
    }


def _from_crops_v1(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Card fields of a crop ``model.json`` written before the ``card`` object."""
    monitor = doc.get("monitor")
    metric = monitor.get("metric") if isinstance(monitor, Mapping) else monitor
    mode = monitor.get("mode") if isinstance(monitor, Mapping) else None
    raw_metrics = doc.get("metrics") or {}
    validation = raw_metrics.get("validation", {}) if isinstance(raw_metrics, Mapping) else {}
    phases = raw_metrics.get("phases", {}) if isinstance(raw_metrics, Mapping) else {}
    n_timesteps = doc.get("n_timesteps")
    return {
        "schema_version": 1,
        "use_case": "food_security" if "agronomic_year" in doc else None,
        "model": _name_of(doc), "architecture": _name_of(doc),
        "classes": doc.get("classes", []), "bands": doc.get("bands", []),
        "input_contract": {"bands": doc.get("bands", []), "n_timesteps": n_timesteps}
        if n_timesteps is not None else {},
        "normalisation": doc.get("normalisation") or {},
        "hyperparameters": doc.get("hyperparameters") or {}, "monitor": metric,
        "monitor_mode": mode,
        "monitor_value": validation.get(metric) if isinstance(validation, Mapping) else None,
        "metrics": validation,
        "epochs": {str(p): r["epochs_run"] for p, r in dict(phases).items()
                   if isinstance(r, Mapping) and "epochs_run" in r},
        "dataset": doc.get("samples_dir"), "dataset_version": doc.get("dataset_version"),
        "weights": doc.get("checkpoint", "model.ckpt"), "checkpoint": doc.get("checkpoint"),
        "code_version": doc.get("code_version"), "created": doc.get("created"),
    }
