"""The serving REST API (FastAPI): models and metadata, batch prediction, monitoring.

Routes (OpenAPI docs at ``/docs``, schema at ``/openapi.json``)::

    GET  /health                                   liveness, no key
    GET  /v1/models                                the key's project's models, versions, aliases
    GET  /v1/models/{name}                         one model: versions, aliases, metrics
    GET  /v1/models/{name}/versions/{ref}          one version: metrics, input spec, classes,
                                                   training config (model.json), class counts
    POST /v1/models/{name}/predict                 predict with the default version
    POST /v1/models/{name}/versions/{ref}/predict  predict with a version number or alias
    GET  /v1/monitoring/summary                    counts, latency, class drift of the project
    POST /v1/process                               on-demand processing: use case, region, time
                                                   window, model -> job id (tasks/serving/process)
    GET  /v1/process/{job_id}                      the job's Airflow runs and their states
    GET  /v1/process/{job_id}/results              STAC items its runs published

Every ``/v1`` request needs ``X-API-Key`` (401 when missing, malformed, unknown, revoked or
expired; 403 when the model belongs to another project) and is written to the request log by
:class:`RequestLogMiddleware` with its status, whatever the outcome. Errors are JSON
``{"error": code, "message": text}``; the message names the input, what is wrong and what to do.

(No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations of
the routes defined inside :func:`create_app` at runtime.)
"""

import base64
import binascii
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tasks.config.serving import ServingConfig
from tasks.serving.catalog import ModelCatalog, ServedModel, UnknownModelError, UnknownVersionError
from tasks.serving.keys import ApiKey, ApiKeyStore, InvalidKeyError, MissingKeyError
from tasks.serving.monitoring import summarise
from tasks.serving.predictors import InputError, check_batch, input_summary
from tasks.serving.request_log import RequestLog, read_records

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": message}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class PredictRequest(BaseModel):
    """A batch to classify: nested lists (``inputs``) or base64 little-endian raw values.

    Polar models take SAR patches (n, band, patch, patch); crop models pixel time series
    (n, month, band). ``bands`` states the band order of the inputs and must equal the model's
    (see the version's ``input.bands``).
    """

    model_config = ConfigDict(extra="forbid")

    bands: list[str] = Field(description="band order of the inputs, e.g. ['HH', 'HV', "
                             "'incidence']; must equal the model's")
    inputs: list[Any] | None = Field(default=None, description="nested lists of numbers")
    inputs_b64: str | None = Field(default=None, description="base64 of the raw array "
                                   "(C order, little endian); needs 'shape' and 'dtype'")
    shape: list[int] | None = Field(default=None, description="shape of inputs_b64")
    dtype: Literal["float32", "float64"] = Field(default="float32",
                                                 description="dtype of inputs_b64")
    return_probabilities: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> "PredictRequest":
        if (self.inputs is None) == (self.inputs_b64 is None):
            raise ValueError("give exactly one of 'inputs' (nested lists) and 'inputs_b64'")
        if self.inputs_b64 is not None and not self.shape:
            raise ValueError("'inputs_b64' needs 'shape' (e.g. [n, 3, 32, 32])")
        return self


class PredictResponse(BaseModel):
    """Predicted classes of a batch, in input order."""

    model: str
    version: int
    classes: list[str] = Field(description="the model's classes (index order)")
    predictions: list[str]
    class_index: list[int]
    confidence: list[float] = Field(description="probability of the predicted class")
    probabilities: list[list[float]] | None = None


class ErrorResponse(BaseModel):
    """Body of every error."""

    error: str
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 422, 503)}


def _validation_message(err: ValidationError | RequestValidationError, prefix: str) -> str:
    parts = []
    for item in err.errors():
        if item.get("type") == "json_invalid":
            return (f"{prefix}is not valid JSON: {item.get('ctx', {}).get('error', item['msg'])}"
                    "; send a JSON object such as {\"bands\": [...], \"inputs\": [...]}")
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {item['msg']}")
    return f"{prefix}is invalid: " + "; ".join(parts)


class ServingService:
    """Key store, model catalog and request log of one serving config (what the app serves).

    Args:
        cfg: the validated serving config.
        kafka_producer: producer of the ``kafka`` log sink (default: from the config).

    """

    def __init__(self, cfg: ServingConfig, kafka_producer: Any | None = None) -> None:
        self.cfg = cfg
        self.keys = ApiKeyStore(cfg.under_root(cfg.keys_file))
        self.catalog = ModelCatalog(cfg)
        self.log_folder = cfg.under_root(cfg.request_log.folder)
        self.request_log = RequestLog(cfg.request_log, self.log_folder, kafka_producer)

    def authenticate(self, key: str | None, state: dict[str, Any]) -> ApiKey:
        """Return the key's record; 401 :class:`ApiError` when it is not valid."""
        try:
            record = self.keys.verify(key)
        except MissingKeyError as err:
            raise ApiError(401, "missing_api_key", str(err)) from None
        except InvalidKeyError as err:
            raise ApiError(401, "invalid_api_key", str(err)) from None
        state.update(project=record.project, key_id=record.key_id)
        return record

    def model_for(self, name: str, key: ApiKey, state: dict[str, Any]) -> ServedModel:
        """Return a served model the key may use (404 unknown, 403 other project)."""
        state["model"] = name
        try:
            served = self.catalog.get(name)
        except UnknownModelError as err:
            raise ApiError(404, "unknown_model", str(err)) from None
        if served.project != key.project:
            raise ApiError(403, "wrong_project",
                           f"model {name!r} belongs to project {served.project!r}; your key "
                           f"({key.key_id}) is for project {key.project!r}: use a key of "
                           f"{served.project!r}")
        return served

    def version_of(self, served: ServedModel, reference: str | None,
                   state: dict[str, Any]) -> int:
        """Resolve a version reference (404 :class:`ApiError` when unknown)."""
        try:
            version = served.resolve(reference).version
        except UnknownVersionError as err:
            raise ApiError(404, "unknown_version", str(err)) from None
        state["version"] = version
        return version

    def predictor(self, served: ServedModel, version: int) -> Any:
        """Return the loaded predictor (503 when the model files cannot be loaded)."""
        try:
            return served.predictor(version)
        except UnknownVersionError as err:
            raise ApiError(404, "unknown_version", str(err)) from None
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            raise ApiError(503, "model_unavailable",
                           f"model {served.name!r} version {version} cannot be loaded "
                           f"({type(err).__name__}: {err}); re-register or re-train it") from None

    def describe(self, served: ServedModel, version: int) -> dict[str, Any]:
        """Return the metadata of one version: metrics, aliases, input, classes, training."""
        info = served.resolve(version)
        predictor = self.predictor(served, version)
        return {"model": served.name, "project": served.project, "use_case": served.use_case,
                **info.as_dict(), "input": predictor.spec.as_dict(),
                "classes": predictor.classes,
                "training_class_counts": predictor.training_counts,
                "training_class_counts_source": predictor.training_counts_source,
                "training_config": predictor.meta}

    def predict(self, served: ServedModel, version: int, body: bytes,
                state: dict[str, Any]) -> dict[str, Any]:
        """Parse, check and classify a request body; fill the log summaries in ``state``."""
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError as err:
            raise ApiError(422, "invalid_body",
                           _validation_message(err, "request body ")) from None
        predictor = self.predictor(served, version)
        limit = self.cfg.limits.max_batch
        if request.inputs_b64 is not None:
            values = self._decode_b64(request, limit)
            name = "inputs_b64"
        else:
            assert request.inputs is not None  # PredictRequest holds exactly one of the two
            if len(request.inputs) > limit:
                raise ApiError(422, "invalid_input",
                               f"inputs: {len(request.inputs)} items exceed the limit of {limit}"
                               " per request (limits.max_batch); split the batch")
            try:
                values = np.asarray(request.inputs)
            except ValueError:
                raise ApiError(422, "invalid_input",
                               "inputs: ragged nested lists (items or axes of different "
                               f"lengths); every item must have shape "
                               f"{list(predictor.spec.shape)}") from None
            name = "inputs"
        try:
            batch = check_batch(values, predictor.spec, request.bands, limit, name)
        except InputError as err:
            raise ApiError(422, "invalid_input", str(err)) from None
        state["input_summary"] = input_summary(batch, predictor.spec)
        probabilities = predictor.predict_proba(batch)
        index = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(index)), index]
        names = [predictor.classes[i] for i in index]
        counts = np.bincount(index, minlength=len(predictor.classes))
        state["output_summary"] = {
            "n": len(index), "mean_confidence": round(float(confidence.mean()), 4),
            "class_counts": {c: int(n) for c, n in zip(predictor.classes, counts,
                                                       strict=True) if n}}
        return {"model": served.name, "version": version, "classes": predictor.classes,
                "predictions": names, "class_index": index.tolist(),
                "confidence": [round(float(c), 6) for c in confidence],
                "probabilities": probabilities.round(6).tolist()
                if request.return_probabilities else None}

    @staticmethod
    def _decode_b64(request: PredictRequest, limit: int) -> np.ndarray:
        shape = list(request.shape or [])
        if any(s < 0 for s in shape):
            raise ApiError(422, "invalid_input", f"shape: {shape} has negative sizes")
        if shape and shape[0] > limit:
            raise ApiError(422, "invalid_input",
                           f"shape: {shape[0]} items exceed the limit of {limit} per request "
                           "(limits.max_batch); split the batch")
        try:
            raw = base64.b64decode(request.inputs_b64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "invalid_input", "inputs_b64: not valid base64") from None
        dtype = np.dtype(request.dtype).newbyteorder("<")
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(raw) != expected:
            raise ApiError(422, "invalid_input",
                           f"inputs_b64: {len(raw)} bytes, but shape {shape} of {request.dtype} "
                           f"needs {expected}; check shape and dtype")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def training_distribution(self, name: str, version: int) -> tuple[list[str], list[int] | None,
                                                                     str]:
        """Return (classes, training class counts or None, where they come from)."""
        predictor = self.catalog.get(name).predictor(version)
        return predictor.classes, predictor.training_counts, predictor.training_counts_source

    def summary(self, project: str | None = None, model: str | None = None,
                since: dt.datetime | None = None) -> dict[str, Any]:
        """Return the monitoring summary (see :func:`tasks.serving.monitoring.summarise`)."""
        sink = next(s for s in self.cfg.request_log.sinks if s in ("jsonl", "parquet"))
        flush = getattr(self.request_log.sinks[sink], "flush", None)
        if callable(flush):
            flush()
        result = summarise(read_records(self.log_folder, sink), self.training_distribution,
                           project=project, model=model, since=since)
        return {"project": project, "model": model, "since": since.isoformat() if since else None,
                "sink": sink, **result}

    def close(self) -> None:
        """Flush the request log."""
        self.request_log.close()


class RequestLogMiddleware:
    """ASGI middleware: body-size limit and one request-log record per ``/v1`` request.

    Handlers add ``project``, ``key_id``, ``model``, ``version``, summaries and ``error`` to
    ``request.state.serving``; the record is written when the response is complete, with the
    status sent. Unhandled exceptions become a 500 JSON answer (the server keeps running).
    """

    def __init__(self, app: Any, service: ServingService) -> None:
        self.app = app
        self.service = service
        self.max_body = service.cfg.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; write its record when it is a ``/v1`` request."""
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        entry: dict[str, Any] = {}
        scope.setdefault("state", {})["serving"] = entry
        status = {"code": 500, "sent": False}
        received = {"bytes": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > self.max_body:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                status["sent"] = True
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body:
                raise _BodyTooLarge()
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            entry["error"] = (f"request body larger than {self.max_body} bytes "
                              "(limits.max_body_bytes); send smaller batches")
            if not status["sent"]:
                await _send_json(tracking_send, 413, {"error": "body_too_large",
                                                      "message": entry["error"]})
        except Exception as err:  # answer 500, keep serving
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            entry["error"] = f"internal error: {type(err).__name__}: {err}"
            if not status["sent"]:
                await _send_json(tracking_send, 500, {"error": "internal_error",
                                                      "message": entry["error"]})
        code = status["code"]
        record = {"time": dt.datetime.now(dt.UTC).isoformat(), "method": scope["method"],
                  "path": scope["path"], "project": entry.get("project"),
                  "key_id": entry.get("key_id"), "model": entry.get("model"),
                  "version": entry.get("version"), "status": code,
                  "outcome": "ok" if code < 400 else "rejected" if code < 500 else "error",
                  "error": entry.get("error"),
                  "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                  "input_summary": entry.get("input_summary"),
                  "output_summary": entry.get("output_summary")}
        self.service.request_log.write(record)


class _BodyTooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _state_of(request: Request) -> dict[str, Any]:
    entry = getattr(request.state, "serving", None)
    return entry if isinstance(entry, dict) else {}


def _add_error_handlers(app: FastAPI) -> None:
    """Answer API, validation and routing errors as ``{"error", "message"}`` JSON."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        _state_of(request)["error"] = err.message
        return JSONResponse({"error": err.code, "message": err.message}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        message = _validation_message(err, "request ")
        _state_of(request)["error"] = message
        return JSONResponse({"error": "invalid_request", "message": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}; see /docs for the routes"
        _state_of(request)["error"] = message
        return JSONResponse({"error": "http_error", "message": message},
                            status_code=err.status_code)


def _add_model_routes(app: FastAPI, service: ServingService, key_type: Any) -> None:
    """``/health`` and the model / version metadata routes (``key_type``: the key dependency)."""

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: the service answers (no key needed)."""
        return {"status": "ok", "models": len(service.catalog.models)}

    @app.get("/v1/models", tags=["models"], responses=ERRORS)
    def list_models(key: key_type) -> dict[str, Any]:
        """List the models of the key's project with their versions, aliases and metrics."""
        return {"project": key.project, "models": [
            {"model": m.name, "use_case": m.use_case, "project": m.project,
             "default_version": m.cfg.default_version,
             "versions": [v.as_dict() for v in m.versions()]}
            for m in service.catalog.of_project(key.project)]}

    @app.get("/v1/models/{name}", tags=["models"], responses=ERRORS)
    def get_model(name: str, request: Request,
                  key: key_type) -> dict[str, Any]:
        """One model: versions with aliases and metrics."""
        served = service.model_for(name, key, _state_of(request))
        return {"model": served.name, "use_case": served.use_case, "project": served.project,
                "default_version": served.cfg.default_version,
                "versions": [v.as_dict() for v in served.versions()]}

    @app.get("/v1/models/{name}/versions/{ref}", tags=["models"], responses=ERRORS)
    def get_version(name: str, ref: str, request: Request,
                    key: key_type) -> dict[str, Any]:
        """One version (number or alias): metrics, input spec, classes, training config."""
        state = _state_of(request)
        served = service.model_for(name, key, state)
        return service.describe(served, service.version_of(served, ref, state))


def _add_predict_routes(app: FastAPI, service: ServingService, key_type: Any) -> None:
    """Batch prediction with the default version or a version number / alias."""
    body_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()}}}}

    async def _predict(name: str, ref: str | None, request: Request, key: ApiKey) -> JSONResponse:
        state = _state_of(request)
        served = service.model_for(name, key, state)
        version = await run_in_threadpool(service.version_of, served, ref, state)
        body = await request.body()
        result = await run_in_threadpool(service.predict, served, version, body, state)
        return JSONResponse(result)

    @app.post("/v1/models/{name}/predict", tags=["predict"], openapi_extra=body_doc,
              responses={200: {"model": PredictResponse}, **ERRORS})
    async def predict_default(name: str, request: Request,
                              key: key_type) -> JSONResponse:
        """Classify a batch with the model's default version (``default_version``)."""
        return await _predict(name, None, request, key)

    @app.post("/v1/models/{name}/versions/{ref}/predict", tags=["predict"],
              openapi_extra=body_doc, responses={200: {"model": PredictResponse}, **ERRORS})
    async def predict_version(name: str, ref: str, request: Request,
                              key: key_type) -> JSONResponse:
        """Classify a batch with a version number or alias (e.g. ``3`` or ``production``)."""
        return await _predict(name, ref, request, key)


def _add_monitoring_route(app: FastAPI, service: ServingService, key_type: Any) -> None:
    """``/v1/monitoring/summary`` of the key's project."""

    @app.get("/v1/monitoring/summary", tags=["monitoring"], responses=ERRORS)
    def monitoring_summary(
        key: key_type,
        model: Annotated[str | None, Query(description="only this model")] = None,
        since_hours: Annotated[float | None, Query(gt=0, description="only the last hours")] = None,
    ) -> dict[str, Any]:
        """Request counts, latency percentiles, predicted vs training classes of your project."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=since_hours) if since_hours \
            else None
        return service.summary(project=key.project, model=model, since=since)


def _warm_up(service: ServingService) -> None:
    """Load the model code (and folder models) before serving; log what failed to load."""
    for problem in service.catalog.warm_up():
        log.warning("%s", problem)


def create_app(cfg: ServingConfig, *, kafka_producer: Any | None = None) -> FastAPI:
    """Build the FastAPI app of a serving config (``app.state.service`` holds the service)."""
    service = ServingService(cfg, kafka_producer=kafka_producer)
    app = FastAPI(
        title="eeflow model serving",
        version="1",
        description="Sea-ice patch and crop time-series classifiers from the eeflow model "
        "registry. Send your project's API key in the X-API-Key header.",
    )
    app.state.service = service
    app.add_middleware(RequestLogMiddleware, service=service)
    app.router.add_event_handler("startup", lambda: _warm_up(service))
    app.router.add_event_handler("shutdown", service.close)
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="project API key (eeflow serve keys create)")

    def authenticate(request: Request,
                     key: Annotated[str | None, Security(key_header)] = None) -> ApiKey:
        return service.authenticate(key, _state_of(request))

    key_type = Annotated[ApiKey, Depends(authenticate)]
    _add_error_handlers(app)
    _add_model_routes(app, service, key_type)
    _add_predict_routes(app, service, key_type)
    _add_monitoring_route(app, service, key_type)

    from tasks.serving.process import ProcessJobs, add_process_routes

    add_process_routes(app, ProcessJobs(cfg.resolved_root(), coverage=cfg.process.coverage),
                       authenticate, ApiError, ERRORS)
    return app
