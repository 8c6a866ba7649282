"""Model registry on MLflow (SQLite backend by default; no server needed).

Every model folder written by a training function (``model.json`` + checkpoint, as
``tasks/food_security/train.py`` and ``tasks/polar/train.py`` write them) is registered as a new
version of the registered model ``{prefix}-{use_case}`` (e.g. ``eeflow-polar``). The MLflow run
of a version holds the hyper-parameters (params), validation metrics (metrics) and the whole folder
(artifacts) plus ``registry_files.json`` with the SHA-256 of every file; the version's tags hold
use case, model family, data-set version, input normalisation, checkpoint name and code version.

Serving code asks for a model by alias (``production``) or by metric
(:meth:`ModelRegistry.best_model`) and gets a verified local folder from
:meth:`ModelRegistry.resolve` (checksums checked, checkpoint loadable), usable by the predict
code of either use case.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import EeflowError
from tasks.trainers.card import ModelCard, ModelCardError

if TYPE_CHECKING:
    from tasks.config.food_security import FoodSecurityConfig
    from tasks.config.polar import PolarConfig
    from tasks.config.serving import ServingConfig

    #: A config with a ``registry`` section and a data root.
    RegistryOwner = PolarConfig | FoodSecurityConfig | ServingConfig

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
FILES_JSON = "registry_files.json"
#: tags copied from ``model.json`` onto every version.
MAX_TAG_CHARS = 5000


class RegistryError(EeflowError, LookupError):
    """The registry has no such model, version, alias or metric."""


class NoModelError(RegistryError):
    """No model is registered for the requested use case (or alias)."""


class CorruptedModelError(EeflowError, RuntimeError):
    """A registered model's files do not match their checksums or the checkpoint does not load."""


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version."""

    use_case: str
    name: str
    version: int
    family: str
    metrics: dict[str, float]
    source: str
    run_id: str
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a small JSON-able summary (for XCom and the CLI)."""
        return {"use_case": self.use_case, "name": self.name, "version": self.version,
                "family": self.family, "metrics": self.metrics, "aliases": self.aliases,
                "run_id": self.run_id, "source": self.source,
                "dataset_version": self.tags.get("dataset_version"),
                "code_version": self.tags.get("code_version")}


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_checksums(folder: Path) -> dict[str, str]:
    """Return ``{relative path: sha256}`` of every file of ``folder`` (except the checksum file)."""
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != FILES_JSON}


def read_model_json(model_dir: Path) -> dict[str, Any]:
    """Read ``model.json`` of a model folder and check it names a checkpoint that exists."""
    path = model_dir / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{model_dir} has no {MODEL_JSON}: it is not a model folder written by a training "
            "function (expected model.json + checkpoint)"
        )
    try:
        info = ModelCard.load(path).document  # checks the card; returns the whole file
    except ModelCardError as err:
        raise CorruptedModelError(str(err)) from None
    checkpoint = model_dir / checkpoint_name(info)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{model_dir}: checkpoint {checkpoint.name} named by "
                                f"{MODEL_JSON} does not exist")
    return info


def checkpoint_name(info: Mapping[str, Any]) -> str:
    """Return the weights file a ``model.json`` names (``checkpoint``, else polar's ``weights``)."""
    return str(info.get("checkpoint") or info.get("weights") or "model.ckpt")


def normalisation_of(info: Mapping[str, Any]) -> dict[str, Any]:
    """Return the input normalisation of a ``model.json``.

    Crop models keep it under ``normalisation``; polar models at the top level (``bands``,
    ``band_mean``, ``band_std``).
    """
    if isinstance(info.get("normalisation"), Mapping):
        return dict(info["normalisation"])
    return {k: info[k] for k in ("bands", "band_mean", "band_std") if k in info}


def check_checkpoint(path: Path) -> None:
    """Load a torch / Lightning checkpoint on the CPU; raise :class:`CorruptedModelError` if bad."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CorruptedModelError(
            f"checkpoint {path} cannot be loaded ({type(err).__name__}: {err}); it is corrupted "
            "or truncated: re-train or re-register the model"
        ) from None
    if not isinstance(state, Mapping) or not state:
        raise CorruptedModelError(f"checkpoint {path} holds no state dict")


def _flat_metrics(info: Mapping[str, Any], extra: Mapping[str, float] | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    raw = info.get("metrics") or info.get("val_metrics") or {}
    source = raw.get("validation", raw) if isinstance(raw, Mapping) else {}
    for key, value in dict(source).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[str(key)] = float(value)
    for key, value in dict(extra or {}).items():
        metrics[str(key)] = float(value)
    return metrics


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_TAG_CHARS]


class ModelRegistry:
    """Register, list, promote and resolve eeflow models in an MLflow model registry.

    Args:
        tracking_uri: MLflow tracking/registry URI, e.g. ``sqlite:////abs/path/mlflow.db``.
        artifact_root: folder (or URI) where model folders are stored, one sub-folder per use case.
        cache_dir: where :meth:`resolve` places verified local copies.
        prefix: registered models are called ``{prefix}-{use_case}``.

    """

    def __init__(self, tracking_uri: str, artifact_root: str | Path, cache_dir: str | Path,
                 prefix: str = "eeflow") -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = str(artifact_root)
        self.cache_dir = Path(cache_dir)
        self.prefix = prefix
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_config(cls, cfg: RegistryOwner) -> ModelRegistry:
        """Open the registry of a config (``registry`` section; ``$MLFLOW_TRACKING_URI`` wins)."""
        reg = cfg.registry
        base = cfg.resolved_root() / "registry"
        uri = os.environ.get("MLFLOW_TRACKING_URI") or reg.tracking_uri
        if not uri:
            base.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{base / 'mlflow.db'}"
        return cls(uri, reg.artifact_root or base / "artifacts", base / "cache",
                   prefix=reg.model_name_prefix)

    def model_name(self, use_case: str) -> str:
        """Return the registered-model name of a use case, e.g. ``eeflow-polar``."""
        return f"{self.prefix}-{use_case}"

    def _experiment_id(self, use_case: str) -> str:
        name = self.model_name(use_case)
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = self.artifact_root
        if "://" not in location:
            location = Path(location, use_case).resolve().as_uri()
        else:
            location = f"{location.rstrip('/')}/{use_case}"
        return str(self.client.create_experiment(name, artifact_location=location))

    def register(
        self,
        use_case: str,
        model_dir: str | Path,
        *,
        metrics: Mapping[str, float] | None = None,
        family: str | None = None,
        tags: Mapping[str, Any] | None = None,
        alias: str | None = None,
    ) -> ModelRecord:
        """Register a model folder as a new version of ``{prefix}-{use_case}``.

        Args:
            use_case: ``polar`` or ``food_security``.
            model_dir: folder with ``model.json`` and the checkpoint it names.
            metrics: extra metrics (merged over ``model.json``'s validation metrics).
            family: model family; default ``model.json``'s ``model``.
            tags: extra version tags (e.g. study name, trial number).
            alias: give the new version this alias (e.g. ``production``).

        Raises:
            FileNotFoundError: not a model folder.
            CorruptedModelError: the checkpoint does not load.

        """
        from mlflow.exceptions import MlflowException

        folder = Path(model_dir).resolve()
        info = read_model_json(folder)
        checkpoint = folder / checkpoint_name(info)
        check_checkpoint(checkpoint)
        all_metrics = _flat_metrics(info, metrics)
        family = family or str(info.get("model") or info.get("family") or "unknown")
        version_tags = {
            "use_case": use_case, "family": family,
            "dataset_version": _tag(info.get("dataset_version", "unknown")),
            "code_version": _tag(info.get("code_version", "unknown")),
            "checkpoint": checkpoint.name,
            "normalisation": _tag(normalisation_of(info)),
            "hyperparameters": _tag(info.get("hyperparameters", {})),
            "source_dir": str(folder),
            **{f"metric.{k}": repr(v) for k, v in all_metrics.items()},
            **{str(k): _tag(v) for k, v in dict(tags or {}).items()},
        }
        name = self.model_name(use_case)
        run = self.client.create_run(self._experiment_id(use_case),
                                     tags={"use_case": use_case, "family": family},
                                     run_name=f"{family}-{folder.name}")
        run_id = run.info.run_id
        try:
            params = {str(k): _tag(v)[:500] for k, v in
                      dict(info.get("hyperparameters") or {}).items()}
            for key, value in params.items():
                self.client.log_param(run_id, key, value)
            for key, number in all_metrics.items():
                self.client.log_metric(run_id, key, number)
            staging = self.cache_dir / f".staging-{run_id}"
            shutil.copytree(folder, staging / "model", dirs_exist_ok=True)
            (staging / "model" / FILES_JSON).write_text(
                json.dumps(folder_checksums(staging / "model"), indent=2, sort_keys=True))
            self.client.log_artifacts(run_id, str(staging / "model"), artifact_path="model")
            shutil.rmtree(staging, ignore_errors=True)
            self.client.set_terminated(run_id, "FINISHED")
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        try:
            self.client.create_registered_model(name, description=f"eeflow {use_case} models")
        except MlflowException as err:
            if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(
                    err):
                raise
        artifact_uri = self.client.get_run(run_id).info.artifact_uri
        version = self.client.create_model_version(name, source=f"{artifact_uri}/model",
                                                   run_id=run_id, tags=version_tags)
        if alias:
            self.set_alias(use_case, alias, int(version.version))
        log.info("registered %s version %s (%s, %s)", name, version.version, family,
                 {k: round(v, 4) for k, v in all_metrics.items()})
        return self.get(use_case, int(version.version))

    def _record(self, use_case: str, version: Any) -> ModelRecord:
        tags = dict(version.tags or {})
        metrics = {k.removeprefix("metric."): float(v) for k, v in tags.items()
                   if k.startswith("metric.")}
        return ModelRecord(use_case=use_case, name=version.name, version=int(version.version),
                           family=tags.get("family", "unknown"), metrics=metrics,
                           source=version.source, run_id=version.run_id,
                           aliases=list(getattr(version, "aliases", []) or []), tags=tags)

    def versions(self, use_case: str) -> list[ModelRecord]:
        """Return every registered version of a use case, oldest first ([] when none)."""
        name = self.model_name(use_case)
        found = self.client.search_model_versions(f"name='{name}'")
        records = [self._record(use_case, self.client.get_model_version(name, v.version))
                   for v in found]
        return sorted(records, key=lambda r: r.version)

    def _require_versions(self, use_case: str) -> list[ModelRecord]:
        records = self.versions(use_case)
        if not records:
            raise NoModelError(
                f"no model is registered for use case {use_case!r} in {self.tracking_uri}; "
                "train one and register it (eeflow experiments registry register ...)"
            )
        return records

    def get(self, use_case: str, version: int) -> ModelRecord:
        """Return one version; :class:`RegistryError` when it does not exist."""
        records = {r.version: r for r in self._require_versions(use_case)}
        if version not in records:
            raise RegistryError(f"{self.model_name(use_case)} has no version {version}; "
                                f"versions: {sorted(records)}")
        return records[version]

    def best_model(self, use_case: str, metric: str, direction: str = "maximize") -> ModelRecord:
        """Return the version with the best ``metric`` (``maximize`` or ``minimize``).

        Raises:
            NoModelError: nothing registered for ``use_case``.
            RegistryError: no version has ``metric`` (the message lists the metrics there are).

        """
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction {direction!r}; allowed: ['maximize', 'minimize']")
        records = self._require_versions(use_case)
        scored = [r for r in records if metric in r.metrics]
        if not scored:
            known = sorted({m for r in records for m in r.metrics})
            raise RegistryError(f"no {use_case} model has metric {metric!r}; registered "
                                f"metrics: {known}")
        sign = 1.0 if direction == "maximize" else -1.0
        return max(scored, key=lambda r: (sign * r.metrics[metric], r.version))

    def set_alias(self, use_case: str, alias: str, version: int) -> ModelRecord:
        """Point ``alias`` (e.g. ``production``) at ``version``; returns that version."""
        self.get(use_case, version)
        self.client.set_registered_model_alias(self.model_name(use_case), alias, str(version))
        log.info("%s@%s -> version %d", self.model_name(use_case), alias, version)
        return self.get(use_case, version)

    def by_alias(self, use_case: str, alias: str) -> ModelRecord:
        """Return the version an alias points at; :class:`NoModelError` when unset."""
        records = self._require_versions(use_case)
        for record in records:
            if alias in record.aliases:
                return record
        known = sorted({a for r in records for a in r.aliases})
        raise NoModelError(f"{self.model_name(use_case)} has no alias {alias!r}; aliases: "
                           f"{known}. Promote a version: eeflow experiments registry promote")

    def resolve(self, use_case: str, alias: str | None = "production",
                version: int | None = None) -> Path:
        """Return a verified local copy of a model folder (by ``version``, else by ``alias``).

        The folder is ``{cache}/{name}/v{version}``; files are checked against their SHA-256 and
        the checkpoint is loaded once. A damaged cache is downloaded again.

        Raises:
            NoModelError: no such model / alias.
            CorruptedModelError: the stored files do not match their checksums or do not load.

        """
        from mlflow.artifacts import download_artifacts

        record = self.get(use_case, version) if version is not None else self.by_alias(
            use_case, alias or "production")
        target = self.cache_dir / record.name / f"v{record.version}"
        try:
            return self._verify(target)
        except (FileNotFoundError, CorruptedModelError):
            shutil.rmtree(target, ignore_errors=True)
        tmp = target.parent / f".{target.name}.download"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        downloaded = Path(download_artifacts(artifact_uri=record.source, dst_path=str(tmp),
                                             tracking_uri=self.tracking_uri))
        try:
            self._verify(downloaded)
        except CorruptedModelError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CorruptedModelError(f"{record.name} version {record.version}: {err}") from None
        downloaded.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        return target

    @staticmethod
    def _verify(folder: Path) -> Path:
        files = folder / FILES_JSON
        if not files.is_file():
            raise FileNotFoundError(f"{folder} has no {FILES_JSON}")
        expected = json.loads(files.read_text())
        actual = folder_checksums(folder)
        bad = sorted(k for k in expected if actual.get(k) != expected[k])
        if bad:
            raise CorruptedModelError(f"files {bad} in {folder} do not match their registered "
                                      "SHA-256 (corrupted or changed after registration)")
        info = read_model_json(folder)
        check_checkpoint(folder / checkpoint_name(info))
        return folder


#: the forms of a model reference that name a registered model instead of a folder.
REGISTRY_REFERENCE_FORMS = ("registry:<alias>", "best:<metric>")


def is_registry_reference(reference: str) -> bool:
    """Tell whether a model reference names a registered model (``registry:`` / ``best:``)."""
    return reference.startswith(("registry:", "best:"))


def resolve_registry_reference(use_case: str, reference: str, *, cfg: RegistryOwner) -> Path:
    """Return a verified local model folder for a registry reference of a config.

    ``registry:<alias>`` is the version under that alias (e.g. ``registry:production``);
    ``best:<metric>`` the registered version with the highest ``metric`` (e.g. ``best:val_acc``).
    Both use cases' ``predict.model`` accept these forms.

    Args:
        use_case: ``polar`` or ``food_security``.
        reference: ``registry:<alias>`` or ``best:<metric>``.
        cfg: the use case's config (its ``registry`` section opens the registry).

    Raises:
        ValueError: ``reference`` is not one of the two forms, or names no alias / metric.
        NoModelError: nothing registered for ``use_case``, or no such alias.
        RegistryError: no version has the metric.
        CorruptedModelError: the stored files do not match their checksums or do not load.

    """
    if not is_registry_reference(reference):
        raise ValueError(f"model reference {reference!r} is not a registry reference; allowed: "
                         f"{list(REGISTRY_REFERENCE_FORMS)}")
    kind, _, name = reference.partition(":")
    if not name.strip():
        example = {"registry": "an alias, e.g. 'registry:production'",
                   "best": "a metric, e.g. 'best:val_acc'"}[kind]
        raise ValueError(f"model reference {reference!r} is incomplete; give {example}")
    registry = ModelRegistry.from_config(cfg)
    if kind == "registry":
        return registry.resolve(use_case, alias=name)
    record = registry.best_model(use_case, name, "maximize")
    return registry.resolve(use_case, version=record.version)
