"""Config of the model-serving API (``configs/serving.yaml``, ``use_case: serving``).

Each served model has a name, the **project** it belongs to (API keys are issued per project and
see only that project's models), its use case (which input contract and preprocessing apply) and
where its versions come from: the MLflow model registry (``source: registry``, every registered
version of ``{registry.model_name_prefix}-{use_case}`` with its aliases) or one model folder
(``source: folder``, served as version 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tasks.config.common import StrictModel, UseCaseConfig, eeflow_home
from tasks.config.experiments import RegistryConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: Where the request log goes.
SinkName = Literal["jsonl", "parquet", "kafka"]


class ServerConfig(StrictModel):
    """Where ``eeflow serve run`` listens (uvicorn)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"


class LimitsConfig(StrictModel):
    """Size limits of a prediction request (larger requests get 413 / 422, nothing runs)."""

    max_batch: int = Field(default=512, ge=1, le=100_000,
                           description="most patches / pixel series per request")
    max_body_bytes: int = Field(default=16 * 2**20, ge=1024, le=2**31,
                                description="most bytes of a request body")


class KafkaConfig(StrictModel):
    """Kafka topic of the request log (needs ``confluent-kafka``; only with sink ``kafka``)."""

    topic: str = Field(default="eeflow-serving-requests", pattern=r"^[A-Za-z0-9._-]+$")
    bootstrap_servers: str = "localhost:9092"


class RequestLogConfig(StrictModel):
    """Append-only request log: JSONL files by default, Parquet parts, a Kafka topic.

    The monitoring summary reads the first file sink (``jsonl`` or ``parquet``), so one of them
    must be listed.
    """

    sinks: list[SinkName] = Field(default_factory=lambda: list[SinkName](["jsonl"]))
    folder: str = Field(default="serving/requests",
                        description="log folder; relative paths are under data_root")
    parquet_flush_records: int = Field(default=1000, ge=1,
                                       description="records per Parquet part file")
    kafka: KafkaConfig = KafkaConfig()

    @field_validator("sinks")
    @classmethod
    def _file_sink(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one sink; allowed: ['jsonl', 'parquet', 'kafka']")
        if len(set(value)) != len(value):
            raise ValueError(f"sinks must be distinct, got {value}")
        if not {"jsonl", "parquet"} & set(value):
            raise ValueError("add 'jsonl' or 'parquet': the monitoring summary reads a file sink")
        return value


class ServedModelConfig(StrictModel):
    """One served model."""

    project: str = Field(pattern=NAME_PATTERN,
                         description="project owning the model; only its API keys see it")
    use_case: Literal["polar", "food_security"]
    source: Literal["registry", "folder"] = "registry"
    path: str | None = Field(default=None, description="model folder (source: folder)")
    default_version: str = Field(
        default="production",
        description="alias (or version number) used when a request names no version")

    @model_validator(mode="after")
    def _path_for_folder(self) -> ServedModelConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("source 'folder' needs 'path': a model folder with model.json")
        if self.source == "registry" and self.path:
            raise ValueError("'path' is only for source 'folder'; registry models come from "
                             "the registry section")
        return self

    def resolved_path(self) -> Path | None:
        """Return :attr:`path` as an absolute path (relative to ``$EEFLOW_HOME``)."""
        if self.path is None:
            return None
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else (eeflow_home() / path).resolve()


class ProcessConfig(StrictModel):
    """On-demand processing (``POST /v1/process``, ``eeflow process submit``)."""

    coverage: dict[Literal["polar", "food_security"], str] = Field(
        default_factory=dict,
        description="per use case, the lon/lat extent (WKT or GeoJSON, WGS84) its data cover; a "
        "job whose region does not intersect it is refused (422 region_outside_data). A use "
        "case left out is not checked here (its runs fail in ingestion / the region cut)")

    @field_validator("coverage")
    @classmethod
    def _areas(cls, value: dict[str, str]) -> dict[str, str]:
        from tasks.config.ingestion import parse_area

        for use_case, area in value.items():
            try:
                parse_area(area)
            except ValueError as err:
                raise ValueError(f"coverage.{use_case}: {err}") from None
        return value


class ServingConfig(UseCaseConfig):
    """The serving API: server, limits, key store, request log, served models, registry."""

    use_case: Literal["serving"] = "serving"
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    keys_file: str = Field(default="serving/api_keys.sqlite",
                           description="SQLite file of hashed API keys; relative: under data_root")
    request_log: RequestLogConfig = RequestLogConfig()
    version_refresh_s: float = Field(
        default=10.0, ge=0.0,
        description="seconds a registry lookup (versions, aliases) is reused; 0 = every request")
    models: dict[str, ServedModelConfig] = Field(default_factory=dict)
    registry: RegistryConfig = RegistryConfig()
    process: ProcessConfig = ProcessConfig()

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ServedModelConfig]) -> dict[str, ServedModelConfig]:
        import re

        bad = [name for name in value if not re.match(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"model names {bad} must match {NAME_PATTERN} (they appear in URLs)")
        return value

    def under_root(self, relative: str) -> Path:
        """Return ``relative`` under the data root (absolute paths are kept)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.resolved_root() / path
