"""Shared pieces of the config layer: strict base model, loader, readable errors.

A use-case module (``tasks/config/polar.py`` ...) defines a model derived from
:class:`UseCaseConfig` and registers it with :func:`register_use_case`. :func:`load_config` reads a
YAML file, picks the model from its ``use_case`` key and validates it; ``expect=PolarConfig`` types
the result and refuses a file of another use case. Every validation problem is reported as
``<file>: <key.path>: <message> (got <value>)`` and, for unknown keys, the allowed keys. Relative
paths resolve against :func:`eeflow_home` (``$EEFLOW_HOME`` or the current directory).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.errors import EeflowError, ErrorFamily

T = TypeVar("T", bound="UseCaseConfig")
U = TypeVar("U", bound="UseCaseConfig")

#: use-case name -> "module:Class" of its config model (imported lazily).
_REGISTRY: dict[str, str] = {
    "polar": "tasks.config.polar:PolarConfig",
    "food_security": "tasks.config.food_security:FoodSecurityConfig",
    "linked_data": "tasks.config.linked_data:LinkedDataConfig",
    "serving": "tasks.config.serving:ServingConfig",
}


#: Deployment settings read from the environment (the compose stack sets them in every container):
#: variable -> the config keys it sets, ``{value}`` standing for the variable's value. They apply
#: after the YAML file and before explicit overrides, and only to configs that have the section
#: (``store`` exists in linked_data configs only).
ENV_OVERRIDES: dict[str, dict[str, str]] = {
    "EEFLOW_DASK_ADDRESS": {"dask.cluster": "address", "dask.address": "{value}"},
    "EEFLOW_SPARQL_ENDPOINT": {"store.mode": "http", "store.url": "{value}"},
}

#: Least memory a Dask worker may be given (``dask.memory_limit``), in bytes.
MIN_WORKER_MEMORY = 256 * 2**20


class ConfigError(EeflowError, ValueError):
    """A configuration file or value is invalid; the message says where and what is allowed."""

    family = ErrorFamily.CONFIG


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


#: Kubernetes quantities: CPU ("2", "500m") and memory ("4Gi", "1500M"), as ``kubectl`` takes them.
CPU_QUANTITY = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"
MEMORY_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"
#: A Kubernetes object name (DNS-1123 label).
KUBE_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class KubeResources(StrictModel):
    """Requests (= limits) of one pod's container; unset keys follow the ``dask`` section."""

    cpu: str | None = Field(
        default=None, pattern=CPU_QUANTITY,
        description="CPU per worker pod (e.g. 2 or 500m). Empty = dask.threads_per_worker",
    )
    memory: str | None = Field(
        default=None, pattern=MEMORY_QUANTITY,
        description="memory per worker pod (e.g. 4Gi). Empty = dask.memory_limit (none if auto)",
    )
    gpu: int = Field(default=0, ge=0, le=16, description="nvidia.com/gpu per worker pod")


class DaskKubernetesConfig(StrictModel):
    """The DaskCluster resource that ``dask.cluster: kubernetes`` creates (tasks/kube.py).

    Needs the dask-kubernetes operator in the cluster and ``pip install eeflow[kubernetes]`` on
    the client. Workers must see the same ``data_root``: mount a shared volume claim there.
    """

    name: str = Field(default="eeflow", pattern=KUBE_NAME, description="DaskCluster name")
    namespace: str = Field(default="default", pattern=KUBE_NAME)
    image: str = Field(
        default="eeflow/dask:0.1.0", min_length=1,
        description="scheduler and worker image, built from containers/dask.Dockerfile",
    )
    resources: KubeResources = KubeResources()
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment variables of scheduler and workers"
    )
    volume_claim: str | None = Field(
        default=None, pattern=KUBE_NAME,
        description="PersistentVolumeClaim (ReadWriteMany) mounted at mount_path in every pod. "
        "Empty = no shared volume (stages then need a data_root the pods can reach)",
    )
    mount_path: str = Field(default="/opt/eeflow/work", pattern=r"^/")
    idle_timeout_s: int = Field(
        default=0, ge=0, description="delete the cluster after this idle time; 0 = never"
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        bad = [k for k in value if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ValueError(f"environment variable names must match [A-Za-z_][A-Za-z0-9_]*: {bad}")
        return value


class DaskConfig(StrictModel):
    """Where Dask work runs.

    ``local`` starts a LocalCluster in-process; ``address`` connects to a running scheduler
    (e.g. the compose stack's ``tcp://dask-scheduler:8786``; ``$EEFLOW_DASK_ADDRESS`` sets both
    keys); ``kubernetes`` creates a dask-kubernetes ``DaskCluster`` from ``dask.kubernetes`` with
    ``n_workers`` workers of ``threads_per_worker`` threads and ``memory_limit`` each.
    """

    cluster: Literal["local", "address", "kubernetes", "synchronous"] = "local"
    workers: Literal["auto", "processes", "subprocess", "threads"] = Field(
        default="auto",
        description="How a local cluster starts its workers: processes (multiprocessing spawn; "
        "not inside Airflow tasks), subprocess (fresh interpreters, any host), threads "
        "(in-process), auto (subprocess inside an Airflow task, processes elsewhere).",
    )
    address: str | None = None
    n_workers: int = Field(default=2, ge=1, le=256)
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    memory_limit: str = Field(
        default="4GiB",
        description="memory per worker: a size such as 4GiB / 1500MB, or auto (the machine's "
        "memory shared by the workers)",
    )
    dashboard: bool = False
    kubernetes: DaskKubernetesConfig = Field(
        default_factory=DaskKubernetesConfig,
        description="DaskCluster spec of cluster: kubernetes (image, resources, env, volume)",
    )

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory_size(cls, value: Any) -> str:
        from dask.utils import parse_bytes

        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        try:
            size = parse_bytes(text)
        except (ValueError, TypeError):
            raise ValueError(
                "not a memory size; use a number with a unit such as 4GiB, 1500MB or auto"
            ) from None
        if size < MIN_WORKER_MEMORY:
            raise ValueError(
                f"{size} bytes is too little for a Dask worker; give at least 256MiB (or auto)"
            )
        return text

    @field_validator("address")
    @classmethod
    def _address_scheme(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a scheduler URL such as tcp://host:8786")
        return value


class LightningTrainerSettings(StrictModel):
    """Where and how Lightning trains: accelerator, devices, precision, strategy (DDP).

    Base of every use case's ``train`` section; :meth:`trainer_kwargs` gives the ``Trainer``
    arguments. ``strategy: ddp`` with ``devices: N`` trains on N GPUs of one node (Lightning
    starts one process per device by re-running the command, so run it from the CLI or the
    trainer pod, see ``eeflow airflow render``).
    """

    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int | Literal["auto"] = Field(
        default=1, description="devices per node: a count (>= 1) or auto (every visible one)"
    )
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = Field(
        default="32-true",
        description="numeric precision: 32-true, 16-mixed (GPU), bf16-mixed (CPU / Ampere+ GPU), "
        "64-true",
    )
    strategy: Literal["auto", "ddp", "ddp_spawn"] = Field(
        default="auto",
        description="auto (single device), ddp (one process per device), ddp_spawn",
    )

    @field_validator("devices")
    @classmethod
    def _positive_devices(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1, or auto")
        return value

    @model_validator(mode="after")
    def _precision_fits_accelerator(self) -> LightningTrainerSettings:
        if self.accelerator == "cpu" and self.precision == "16-mixed":
            raise ValueError(
                "precision 16-mixed needs a GPU, but accelerator is cpu; use precision "
                "bf16-mixed or 32-true on CPU, or accelerator gpu"
            )
        return self

    def trainer_kwargs(self) -> dict[str, Any]:
        """Return the ``lightning.Trainer`` arguments of these settings."""
        return {"accelerator": self.accelerator, "devices": self.devices,
                "precision": self.precision, "strategy": self.strategy}


class UseCaseConfig(StrictModel):
    """Keys common to every use case."""

    use_case: str
    data_root: str = Field(
        default="work/data",
        description="Folder for stage outputs: a local path (relative paths are resolved against "
        "$EEFLOW_HOME, default: the current directory) or s3://bucket/prefix (endpoint and "
        "credentials from the environment: EEFLOW_S3_ENDPOINT or AWS_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
    )
    seed: int = Field(default=42, ge=0)
    dask: DaskConfig = DaskConfig()

    @field_validator("data_root")
    @classmethod
    def _local_or_s3_root(cls, value: str) -> str:
        from tasks.fs import is_remote, normalise_s3_url

        if is_remote(value):
            return normalise_s3_url(value)
        if "://" in value and not value.startswith("file://"):
            raise ValueError(
                f"{value!r}: only local paths and s3://bucket/prefix are supported as data_root; "
                "for other object stores mount them (e.g. with rclone) and give the local path"
            )
        return value.removeprefix("file://")

    def load_references(self, source: str) -> None:
        """Load the files this config names (e.g. its linked-data config); called by load_config.

        Args:
            source: the config file, for error messages.

        """
        del source  # a use case that names other config files overrides this

    def is_remote_root(self) -> bool:
        """Tell whether :attr:`data_root` is an ``s3://`` URL."""
        from tasks.fs import is_remote

        return is_remote(self.data_root)

    def storage_root(self) -> Path | str:
        """Return the data root for :func:`tasks.storage.stage_location`: a path or an s3:// URL."""
        return self.data_root if self.is_remote_root() else self.resolved_root()

    def resolved_root(self) -> Path:
        """Return :attr:`data_root` as an absolute path (relative to ``$EEFLOW_HOME`` or cwd).

        Raises ValueError for an ``s3://`` root: the caller works on local files only; stages
        that write to S3 use :meth:`storage_root` with the helpers of :mod:`tasks.storage`.
        """
        if self.is_remote_root():
            raise ValueError(
                f"data_root {self.data_root!r} is on S3, but this step reads and writes local "
                "files only (it calls resolved_root()); use a local data_root for it, or port it "
                "to storage_root() + tasks.storage.stage_location/atomic_dir/read_manifest"
            )
        root = Path(self.data_root).expanduser()
        if not root.is_absolute():
            root = eeflow_home() / root
        return root.resolve()


def eeflow_home() -> Path:
    """Return the folder relative config and data paths resolve against: ``$EEFLOW_HOME`` or cwd.

    The one definition for the CLI and Airflow alike. Every deployment sets ``$EEFLOW_HOME`` (the
    images, docker-compose.yaml, ``eeflow airflow`` and the Kubernetes pods: the project folder);
    without it, paths resolve against the current directory, as the command line expects. The
    folder of the installed package is never used: in a non-editable install it is
    site-packages, where no configs/ lie.
    """
    return Path(os.environ.get("EEFLOW_HOME", Path.cwd()))


def register_use_case(name: str, target: str) -> None:
    """Register a config model for ``use_case: name`` as ``"module:Class"``."""
    _REGISTRY[name] = target


def _model_for(use_case: str) -> type[UseCaseConfig]:
    if use_case not in _REGISTRY:
        raise ConfigError(
            f"key 'use_case': unknown value {use_case!r}; allowed: {sorted(_REGISTRY)}"
        )
    module_name, class_name = _REGISTRY[use_case].split(":")
    model = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model, type) and issubclass(model, UseCaseConfig)):
        raise TypeError(f"{_REGISTRY[use_case]} is not a UseCaseConfig subclass")
    return model


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """Walk ``loc`` through nested pydantic models and return the field names at its parent."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        current = _first_model(annotation)
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else None


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    err: ValidationError, model: type[BaseModel], source: str
) -> ConfigError:
    """Turn a pydantic error into a :class:`ConfigError` naming key path, value, allowed values."""
    lines = []
    for item in err.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        value = item.get("input")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            lines.append(
                f"{source}: key '{key}': unknown key (value {value!r}); "
                f"allowed keys here: {allowed}"
            )
        elif item["type"] == "missing":
            lines.append(f"{source}: key '{key}': required key is missing")
        elif isinstance(value, dict):
            # a section-level rule (model validator): the message says what is wrong
            lines.append(f"{source}: key '{key}': {item['msg']}")
        else:
            lines.append(f"{source}: key '{key}': {item['msg']} (got {value!r})")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def validate_config(data: dict[str, Any], source: str = "<config>") -> UseCaseConfig:
    """Validate a config mapping; the model is chosen by its ``use_case`` key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    use_case = data.get("use_case")
    if not isinstance(use_case, str):
        raise ConfigError(f"{source}: key 'use_case' is required; allowed: {sorted(_REGISTRY)}")
    model = _model_for(use_case)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(err, model, source) from None


@overload
def load_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None, *, expect: None = None
) -> UseCaseConfig: ...


@overload
def load_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None, *, expect: type[T]
) -> T: ...


@overload
def load_config(
    path: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    expect: tuple[type[T], type[U]],
) -> T | U: ...


@overload
def load_config(
    path: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None,
) -> UseCaseConfig: ...


def load_config(
    path: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None = None,
) -> UseCaseConfig:
    """Read, merge ``overrides`` (dotted keys allowed) and validate a use-case YAML file.

    Deployment variables (:data:`ENV_OVERRIDES`: ``$EEFLOW_DASK_ADDRESS``,
    ``$EEFLOW_SPARQL_ENDPOINT``) replace keys of the file; ``overrides`` replace both.

    Args:
        path: the YAML file, e.g. ``configs/polar.yaml``.
        overrides: values that replace keys of the file, e.g. ``{"train.epochs": 2}``.
        expect: the config model(s) the caller takes, e.g. ``PolarConfig``; the return type
            follows it. Without it any registered use case is accepted (``eeflow config``).

    Returns:
        The validated config model of the file's use case.

    Raises:
        ConfigError: the file is missing, is not YAML, a key/value is invalid, or the file's use
            case is not the expected one.

    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} does not exist; pass one of configs/*.yaml")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    source = str(file)
    applied = apply_env_overrides(data)
    if applied:
        source += " with $" + ", $".join(applied)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    config = validate_config(data, source)
    if expect is not None:
        expect_use_case(config, expect, source)
    config.load_references(source)
    return config


def expect_use_case(
    config: UseCaseConfig,
    expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...],
    source: str,
) -> None:
    """Refuse a validated config that is not of the model ``expect`` (one or several).

    Raises:
        ConfigError: naming the file, its use case and the expected one(s).

    """
    models = expect if isinstance(expect, tuple) else (expect,)
    if isinstance(config, models):
        return
    wanted = [str(m.model_fields["use_case"].default) for m in models]
    expected = " or ".join(repr(w) for w in wanted)
    raise ConfigError(
        f"{source}: use_case is {config.use_case!r}, expected {expected}; give a "
        f"{' or '.join(wanted)} config (e.g. configs/{wanted[0]}.yaml)"
    )


def apply_env_overrides(
    data: dict[str, Any], environ: dict[str, str] | None = None
) -> list[str]:
    """Set the config keys of the :data:`ENV_OVERRIDES` variables that are set (and not empty).

    Args:
        data: the parsed YAML mapping (changed in place).
        environ: the environment (default: ``os.environ``).

    Returns:
        The names of the variables applied, for error messages and the log.

    """
    env = os.environ if environ is None else environ
    use_case = data.get("use_case") if isinstance(data, dict) else None
    if not isinstance(use_case, str) or use_case not in _REGISTRY:
        return []  # validate_config names the problem
    fields = _model_for(use_case).model_fields
    applied = []
    for name, keys in ENV_OVERRIDES.items():
        value = env.get(name, "").strip()
        if not value or not all(k.split(".")[0] in fields for k in keys):
            continue
        for dotted, template in keys.items():
            set_dotted(data, dotted, template.replace("{value}", value))
        applied.append(name)
    return applied


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted`` = ``"a.b"``, creating missing sections."""
    parts = dotted.split(".")
    target = data
    for part in parts[:-1]:
        nxt = target.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"key {dotted!r}: {part!r} is a value, not a config section")
        target = nxt
    target[parts[-1]] = value


#: Top-level keys left out of :func:`config_hash`: references to other config files, which do not
#: change what a use case's stages compute (the RDF stages hash their own linked_data config).
UNHASHED_KEYS = frozenset({"linked_data"})


def config_hash(config: BaseModel) -> str:
    """Return a short, stable hash of a validated config (for manifests and cache keys)."""
    dumped = config.model_dump(mode="json")
    if isinstance(config, UseCaseConfig):
        dumped = {k: v for k, v in dumped.items() if k not in UNHASHED_KEYS}
    payload = json.dumps(dumped, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
