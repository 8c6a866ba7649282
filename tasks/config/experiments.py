"""Config sections of the experiments layer: hyper-parameter search, LOCO ablation, model registry.

Each use-case config (``configs/polar.yaml``, ``configs/food_security.yaml``) carries a ``search``,
an ``ablation`` and a ``registry`` section. Search-space and ablation keys are dotted config keys
(``train.learning_rate``); a trial's values are applied to a copy of the config and re-validated,
so a value the training config refuses is an error naming the key.

Secrets never live in these files: a Postgres Optuna storage or a remote MLflow server is named by
an environment variable (``EEFLOW_OPTUNA_STORAGE``, ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tasks.config.common import StrictModel

SamplerName = Literal["grid", "random", "tpe", "gp", "cmaes"]
PrunerName = Literal["none", "median", "successive_halving", "asha", "hyperband"]
Direction = Literal["maximize", "minimize"]
ParameterValue = bool | int | float | str | None

#: Environment variable that, when set, replaces the default SQLite Optuna storage.
OPTUNA_STORAGE_ENV = "EEFLOW_OPTUNA_STORAGE"


class ParameterSpec(StrictModel):
    """One dimension of a search space.

    ``int`` / ``float`` take ``low`` and ``high`` (inclusive), optional ``step`` or ``log``;
    ``categorical`` takes ``choices`` (numbers, strings, booleans; a list value such as input
    bands is given as one choice).
    """

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.type == "categorical":
            self._check_categorical()
        else:
            self._check_numeric()
        return self

    def _check_categorical(self) -> None:
        if not self.choices:
            raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        if any(v is not None for v in (self.low, self.high, self.step)) or self.log:
            raise ValueError(
                "a categorical parameter takes only 'choices' (no low/high/step/log)"
            )
        seen: list[Any] = []
        for choice in self.choices:
            if choice in seen:
                raise ValueError(f"choice {choice!r} is listed twice")
            seen.append(choice)

    def _check_numeric(self) -> None:
        if self.choices is not None:
            raise ValueError(f"an {self.type} parameter takes low/high, not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs both 'low' and 'high'")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("'low' and 'high' must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high}): empty range")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' cannot be combined (Optuna refuses it)")
        if self.type == "int":
            for name in ("low", "high", "step"):
                value = getattr(self, name)
                if value is not None and float(value) != int(value):
                    raise ValueError(f"an int parameter needs an integer '{name}', got {value}")


class SearchConfig(StrictModel):
    """Optuna hyper-parameter search over dotted config keys.

    The study lives in an RDB storage: by default a SQLite file
    ``{data_root}/{use_case}/experiments/optuna.db``; ``$EEFLOW_OPTUNA_STORAGE`` (e.g.
    ``postgresql+psycopg://user:pass@postgres/optuna``) replaces it when set.
    """

    study_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="default: '{use_case}-search'",
    )
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    n_trials: int = Field(default=20, ge=1, le=100000, description="COMPLETE + PRUNED trials")
    metric: str | None = Field(
        default=None, description="validation metric to optimise; default: the train monitor"
    )
    direction: Direction | None = Field(
        default=None, description="default: minimize for a *loss metric, else maximize"
    )
    space: dict[str, ParameterSpec] = Field(
        default_factory=dict, description="dotted config key -> parameter spec"
    )
    n_startup_trials: int = Field(default=3, ge=0, description="median pruner / TPE warm-up")
    n_warmup_steps: int = Field(default=1, ge=0, description="epochs before the median pruner acts")
    min_resource: int = Field(default=1, ge=1, description="ASHA / Hyperband: minimum epochs")
    reduction_factor: int = Field(default=3, ge=2, le=10)
    max_failed_trials: int = Field(
        default=3, ge=0, description="trials that raise an error before the search stops"
    )
    heartbeat_interval_s: int = Field(default=10, ge=1, le=3600)
    grace_period_s: int = Field(
        default=60, ge=2, le=86400,
        description="a RUNNING trial without heartbeat this long is marked FAILED and re-queued",
    )
    sqlite_path: str | None = Field(
        default=None, description="SQLite file of the study (default under data_root)"
    )

    @field_validator("space")
    @classmethod
    def _keys(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for key in value:
            if not key or any(not part.isidentifier() for part in key.split(".")):
                raise ValueError(f"search-space key {key!r} must be a dotted config key")
        return value

    @model_validator(mode="after")
    def _grace(self) -> SearchConfig:
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"grace_period_s ({self.grace_period_s}) must exceed heartbeat_interval_s "
                f"({self.heartbeat_interval_s})"
            )
        return self


class AblationComponent(StrictModel):
    """One component of a LOCO ablation: the config changes that leave it out."""

    description: str = ""
    overrides: dict[str, Any] = Field(
        min_length=1, description="dotted config key -> value that removes the component"
    )


class AblationConfig(StrictModel):
    """Leave-one-component-out ablation: the full model and one run per left-out component."""

    study_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+$", description="default: '{use_case}-ablation'"
    )
    metric: str | None = Field(default=None, description="default: the train monitor")
    direction: Direction | None = Field(
        default=None, description="default: minimize for a *loss metric, else maximize"
    )
    seeds: list[int] = Field(default=[42], min_length=1, description="every run uses each seed")
    components: dict[str, AblationComponent] = Field(default_factory=dict)

    @field_validator("components")
    @classmethod
    def _names(cls, value: dict[str, AblationComponent]) -> dict[str, AblationComponent]:
        if "full" in value:
            raise ValueError("'full' is reserved for the run with every component")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value


class RegistryConfig(StrictModel):
    """MLflow model registry (SQLite backend by default, no server needed).

    ``$MLFLOW_TRACKING_URI`` replaces ``tracking_uri`` when set (e.g. the compose stack's MLflow
    server or a Postgres URL).
    """

    tracking_uri: str | None = Field(
        default=None, description="default: sqlite:///{data_root}/registry/mlflow.db"
    )
    artifact_root: str | None = Field(
        default=None, description="default: {data_root}/registry/artifacts"
    )
    model_name_prefix: str = Field(default="eeflow", pattern=r"^[A-Za-z0-9_.-]+$")
    alias: str = Field(default="production", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    promote_best: bool = Field(
        default=True, description="give the best model of a search the alias when registered"
    )
