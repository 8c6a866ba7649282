"""The served models: their versions, aliases and metrics, and loaded predictors per version.

A model of ``source: registry`` lists every version of ``{prefix}-{use_case}`` in the MLflow
registry (lookups reused for ``version_refresh_s`` seconds, so a promotion is seen within that
time); a version is resolved to a verified local folder by
:meth:`tasks.model_registry.ModelRegistry.resolve` and loaded once. A model of
``source: folder`` serves its folder as version 1 under the model's ``default_version`` alias.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config.serving import ServedModelConfig, ServingConfig
from tasks.model_registry import ModelRegistry, NoModelError, read_model_json
from tasks.serving.predictors import Predictor, load_predictor


class UnknownModelError(LookupError):
    """No served model has that name."""


class UnknownVersionError(LookupError):
    """The model has no such version or alias; the message lists those it has."""


@dataclass(frozen=True)
class VersionInfo:
    """One version of a served model."""

    version: int
    aliases: list[str]
    metrics: dict[str, float]
    family: str
    dataset_version: str | None
    code_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form of the listing endpoints."""
        return {"version": self.version, "aliases": self.aliases, "metrics": self.metrics,
                "family": self.family, "dataset_version": self.dataset_version,
                "code_version": self.code_version}


class ServedModel:
    """One entry of ``models`` in the serving config."""

    def __init__(self, name: str, cfg: ServedModelConfig, registry: ModelRegistry | None,
                 refresh_s: float) -> None:
        self.name = name
        self.cfg = cfg
        self.project = cfg.project
        self.use_case = cfg.use_case
        self.registry = registry
        self.refresh_s = refresh_s
        self._versions: tuple[float, list[VersionInfo]] | None = None
        self._loaded: dict[int, Predictor] = {}
        self._lock = threading.Lock()

    def versions(self) -> list[VersionInfo]:
        """Return the versions, oldest first ([] when none is registered yet)."""
        cached = self._versions
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if self.cfg.source == "folder":
            path = self.cfg.resolved_path()
            assert path is not None  # checked by the config
            meta = read_model_json(path)
            raw = meta.get("metrics") or meta.get("val_metrics") or {}
            raw = raw.get("validation", raw) if isinstance(raw, dict) else {}
            metrics = {k: float(v) for k, v in raw.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)}
            found = [VersionInfo(1, [self.cfg.default_version], metrics,
                                 str(meta.get("model") or meta.get("name") or "unknown"),
                                 meta.get("dataset_version"), meta.get("code_version"))]
        else:
            assert self.registry is not None
            found = [VersionInfo(r.version, sorted(r.aliases), r.metrics, r.family,
                                 r.tags.get("dataset_version"), r.tags.get("code_version"))
                     for r in self.registry.versions(self.use_case)]
        self._versions = (time.monotonic() + self.refresh_s, found)
        return found

    def resolve(self, reference: str | int | None) -> VersionInfo:
        """Return the version a request names: a number, an alias, or None (the default).

        Raises:
            UnknownVersionError: no such version / alias (the message lists what there is).

        """
        reference = self.cfg.default_version if reference in (None, "") else reference
        versions = self.versions()
        text = str(reference)
        for info in versions:
            if (text.isdigit() and info.version == int(text)) or text in info.aliases:
                return info
        aliases = sorted({a for v in versions for a in v.aliases})
        if not versions:
            raise UnknownVersionError(f"model {self.name!r} has no version yet (nothing "
                                      f"registered for use case {self.use_case!r})")
        raise UnknownVersionError(
            f"model {self.name!r} has no version or alias {text!r}; versions: "
            f"{[v.version for v in versions]}, aliases: {aliases}")

    def model_dir(self, version: int) -> Path:
        """Return the local folder of a version (registry versions are downloaded, verified)."""
        if self.cfg.source == "folder":
            path = self.cfg.resolved_path()
            assert path is not None
            return path
        assert self.registry is not None
        try:
            return self.registry.resolve(self.use_case, version=version)
        except NoModelError as err:
            raise UnknownVersionError(str(err)) from None

    def predictor(self, version: int) -> Predictor:
        """Return the loaded predictor of a version (loaded on first use, then kept)."""
        found = self._loaded.get(version)
        if found is not None:
            return found
        with self._lock:
            if version not in self._loaded:
                self._loaded[version] = load_predictor(self.use_case, self.model_dir(version))
            return self._loaded[version]


#: The module that loads each use case's models (torch, Lightning: tens of seconds to import on a
#: busy machine), imported by :meth:`ModelCatalog.warm_up` before the server takes requests.
LOADER_MODULES: dict[str, str] = {"polar": "tasks.polar.train",
                                  "food_security": "tasks.food_security.predict"}


class ModelCatalog:
    """All served models of a serving config, by name."""

    def __init__(self, cfg: ServingConfig) -> None:
        self.cfg = cfg
        registry = None
        if any(m.source == "registry" for m in cfg.models.values()):
            registry = ModelRegistry.from_config(cfg)
        self.models = {name: ServedModel(name, m, registry, cfg.version_refresh_s)
                       for name, m in cfg.models.items()}

    def get(self, name: str) -> ServedModel:
        """Return a served model by name; :class:`UnknownModelError` when there is none."""
        if name not in self.models:
            raise UnknownModelError(f"no served model {name!r}; see GET /v1/models for those "
                                    "of your project")
        return self.models[name]

    def of_project(self, project: str) -> list[ServedModel]:
        """Return the models of one project, by name."""
        return [m for _, m in sorted(self.models.items()) if m.project == project]

    def warm_up(self) -> list[str]:
        """Import the model loaders of the served use cases and load the folder models.

        Called once before the server takes requests, so the first prediction does not pay for
        the imports. Registry models are loaded on first use (the registry may have no version
        yet). Returns one line per folder model that failed to load (the requests for it then
        answer with the error); nothing is raised.
        """
        import importlib

        for use_case in sorted({m.use_case for m in self.models.values()}):
            importlib.import_module(LOADER_MODULES[use_case])
        problems = []
        for name, model in sorted(self.models.items()):
            if model.cfg.source == "folder":
                try:
                    model.predictor(1)
                except (OSError, ValueError, KeyError) as err:
                    problems.append(f"model {name!r} ({model.cfg.path}) did not load: {err}")
        return problems
