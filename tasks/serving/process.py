"""On-demand processing (the paper's TEP processors): a use case over a region and time window.

A job is one request (use case, region as WKT / GeoJSON in WGS84, time window, optional model)
turned into Airflow runs of the use case's DAG, triggered through Airflow's REST API
(``POST /api/v2/dags/{dag_id}/dagRuns`` with a bearer token from ``POST /auth/token``): one run
per day of the window for polar (``polar_ice_chart_daily``), one per agronomic year for
food_security (``food_security_agronomic_year``), each with the params ``region``,
``window_start``, ``window_end``, ``run_date`` (and ``model``). The DAGs map ``region`` to
``ingest.catalogue.area`` (operators/context.py). The job record lies in
``{data_root}/process/jobs/{job_id}.json``; its status is read back from Airflow, its result
products are the STAC items of its runs under ``{data_root}/catalogue/``.

The Airflow API is reached with ``EEFLOW_AIRFLOW_URL`` (e.g. ``http://airflow-apiserver:8080``),
``EEFLOW_AIRFLOW_USERNAME`` and ``EEFLOW_AIRFLOW_PASSWORD`` from the environment.

The region selects the scenes a catalogue source searches (``ingest.source`` cdse_odata / stac) and
the products are cut to it (:mod:`tasks.region`). A day's outputs live under the day's run key, so
a job for a day that an earlier job of the same use case covered over another region would replace
that job's products: such a job is refused (409 ``region_conflict``, naming the days and the
earlier jobs of the caller's project) unless the request says ``replace: true``. A region that does
not intersect the use case's data coverage (serving config ``process.coverage``) is refused before
anything is triggered (422 ``region_outside_data``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tasks.config.food_security import CROP_MODEL_NAMES
from tasks.errors import EeflowError, ErrorFamily
from tasks.serving.keys import ApiKey
from tasks.storage import agronomic_year, agronomic_year_key, atomic_write_json, day_run_key

UseCase = Literal["polar", "food_security"]

#: use case -> (DAG id, STAC collections of its products, most runs one job may start).
USE_CASES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "polar": ("polar_ice_chart_daily", ("ice-charts",), 31),
    "food_security": ("food_security_agronomic_year", ("crop-maps", "field-instances"), 5),
}
#: The crop DAG's ``model`` param chooses the models to train (and map).
CROP_MODELS = ("all", *CROP_MODEL_NAMES)
#: Environment variables of the Airflow API connection.
AIRFLOW_ENV = ("EEFLOW_AIRFLOW_URL", "EEFLOW_AIRFLOW_USERNAME", "EEFLOW_AIRFLOW_PASSWORD")


class ProcessError(EeflowError, ValueError):
    """A processing request or job lookup failed; ``status`` is the HTTP status to answer."""

    family = ErrorFamily.CONFIG

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ProcessRequest(BaseModel):
    """What to process: a use case over a region and time window."""

    model_config = {"extra": "forbid"}

    use_case: UseCase
    region: str = Field(min_length=1, max_length=200_000,
                        description="WKT or GeoJSON geometry / Feature / FeatureCollection, WGS84")
    window_start: dt.date
    window_end: dt.date
    model: str | None = Field(
        default=None,
        description="polar: predict.model ('registry:production', 'best:val_acc', 'latest'); "
        "food_security: the models to train and map (all, lstm, tempcnn, starrnn)",
    )
    replace: bool = Field(
        default=False,
        description="replace the products of earlier jobs that covered the same days over "
        "another region (a day's products live under the day's run key; without this such a "
        "job is refused with 409)",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        from tasks.config.ingestion import parse_area

        text = value.strip()
        if not text.startswith(("{", "POLYGON", "MULTIPOLYGON", "POINT", "LINESTRING")):
            raise ValueError("region must be WKT (POLYGON ((...))) or GeoJSON text, not a path")
        parse_area(text)  # raises with the accepted forms
        return text

    @model_validator(mode="after")
    def _window(self) -> ProcessRequest:
        if self.window_end < self.window_start:
            raise ValueError(f"window_end {self.window_end} is before window_start "
                             f"{self.window_start}")
        if self.use_case == "food_security" and self.model not in (None, *CROP_MODELS):
            raise ValueError(f"model {self.model!r} is not a crop model; allowed: "
                             f"{', '.join(CROP_MODELS)}")
        limit = USE_CASES[self.use_case][2]
        if len(run_dates(self.use_case, self.window_start, self.window_end)) > limit:
            unit = "days" if self.use_case == "polar" else "agronomic years"
            raise ValueError(f"the window {self.window_start} .. {self.window_end} spans more "
                             f"than {limit} {unit}; split it into several jobs")
        return self


def run_dates(use_case: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Return the run date of each DAG run that covers ``start .. end`` (inclusive).

    polar: every day; food_security: one day per agronomic year (September to August), the
    window's first day inside that year.
    """
    if use_case == "polar":
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    days, day = [], start
    while day <= end:
        days.append(day)
        day = agronomic_year(day)[1] + dt.timedelta(days=1)
    return days


def run_key(use_case: str, day: dt.date) -> str:
    """Return the stage run key (catalogue folder) of a run date."""
    return day_run_key(day) if use_case == "polar" else agronomic_year_key(day)


class AirflowApi:
    """A minimal client of Airflow's REST API v2 with a bearer token (``POST /auth/token``)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30) -> None:
        self.url, self.username, self.password = url.rstrip("/"), username, password
        self.timeout = timeout
        self._token: str | None = None

    @classmethod
    def from_env(cls) -> AirflowApi:
        """Build the client from ``EEFLOW_AIRFLOW_URL`` / ``_USERNAME`` / ``_PASSWORD``."""
        missing = [name for name in AIRFLOW_ENV if not os.environ.get(name)]
        if missing:
            raise ProcessError("on-demand processing needs the Airflow API: set "
                               f"{', '.join(missing)} (e.g. "
                               "EEFLOW_AIRFLOW_URL=http://airflow-apiserver:8080)",
                               status=503, code="airflow_not_configured")
        url, username, password = (os.environ[name] for name in AIRFLOW_ENV)
        return cls(url, username, password)

    def _call(self, method: str, url: str, body: Any, token: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise ProcessError(f"Airflow answered {method} {url} with HTTP {err.code}: {detail}",
                               status=502, code="airflow_error") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ProcessError(f"cannot reach Airflow at {self.url} ({reason}); check "
                               "EEFLOW_AIRFLOW_URL and that the api-server runs",
                               status=503, code="airflow_unreachable") from None
        return json.loads(payload) if payload else None

    def token(self) -> str:
        """Return a JWT for the configured user."""
        if self._token is None:
            answer = self._call("POST", f"{self.url}/auth/token",
                                {"username": self.username, "password": self.password}, None)
            self._token = str(answer["access_token"])
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v2{path}`` with the token; return the decoded JSON."""
        return self._call(method, f"{self.url}/api/v2{path}", body, self.token())


class ProcessJobs:
    """Submit jobs, read their status from Airflow and their products from the catalogue.

    Args:
        data_root: the data root of the pipelines (jobs in ``process/jobs``, products in
            ``catalogue``).
        airflow: the API client; default :meth:`AirflowApi.from_env`, built on first use.
        coverage: use case -> lon/lat extent (WKT / GeoJSON) of its data (serving config
            ``process.coverage``); a region outside it is refused. Use cases not named are not
            checked.

    """

    def __init__(self, data_root: str | os.PathLike[str], airflow: AirflowApi | None = None,
                 coverage: Mapping[UseCase, str] | None = None):
        self.root = Path(data_root)
        self.folder = self.root / "process" / "jobs"
        self._airflow = airflow
        self.coverage: dict[str, str] = {str(k): v for k, v in (coverage or {}).items()}

    @property
    def airflow(self) -> AirflowApi:
        """The Airflow API client."""
        if self._airflow is None:
            self._airflow = AirflowApi.from_env()
        return self._airflow

    def submit(self, request: ProcessRequest, project: str | None = None) -> dict[str, Any]:
        """Trigger the runs of ``request``; return the job record (``job_id``, ``runs``)."""
        dag_id = USE_CASES[request.use_case][0]
        job_id = uuid.uuid4().hex[:16]
        params: dict[str, Any] = {"region": request.region,
                                  "window_start": request.window_start.isoformat(),
                                  "window_end": request.window_end.isoformat()}
        if request.model:
            params["model"] = request.model
        days = run_dates(request.use_case, request.window_start, request.window_end)
        self._refuse_region_outside_data(request)
        if not request.replace:
            self._refuse_region_conflicts(request, days, project)
        job: dict[str, Any] = {
            "job_id": job_id, "project": project, "use_case": request.use_case,
            "dag_id": dag_id, "region": request.region,
            "window_start": params["window_start"], "window_end": params["window_end"],
            "model": request.model, "created": dt.datetime.now(dt.UTC).isoformat(), "runs": [],
        }
        for day in days:
            run_id = f"process__{job_id}__{day.isoformat()}"
            self.airflow.api("POST", f"/dags/{dag_id}/dagRuns", {
                "dag_run_id": run_id, "logical_date": None,
                "conf": {**params, "run_date": day.isoformat()}})
            job["runs"].append({"run_date": day.isoformat(), "dag_run_id": run_id})
            atomic_write_json(self.folder / f"{job_id}.json", job)  # partial jobs stay findable
        return job

    def _refuse_region_outside_data(self, request: ProcessRequest) -> None:
        """Raise 422 when the region does not intersect the use case's data coverage."""
        from tasks.config.ingestion import parse_area

        extent = self.coverage.get(request.use_case)
        if extent is None:
            return
        region, covered = parse_area(request.region), parse_area(extent)
        if region.intersects(covered):
            return

        def bbox(geometry: Any) -> str:
            return "(" + ", ".join(f"{v:.3f}" for v in geometry.bounds) + ")"

        raise ProcessError(
            f"region (lon/lat bbox {bbox(region)}) lies outside the {request.use_case} data, "
            f"which cover lon/lat bbox {bbox(covered)} (serving config "
            f"process.coverage.{request.use_case}); choose a region that overlaps it",
            status=422, code="region_outside_data")

    def _refuse_region_conflicts(self, request: ProcessRequest, days: list[dt.date],
                                 project: str | None) -> None:
        """Raise 409 when an earlier job covered one of ``days`` over another region."""
        from tasks.config.ingestion import parse_area

        wanted = {run_key(request.use_case, day) for day in days}
        region = parse_area(request.region)
        clashes: dict[str, list[str]] = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a job record being written; it is checked by its own submit
            if other.get("use_case") != request.use_case or not other.get("region"):
                continue
            keys = {run_key(request.use_case, dt.date.fromisoformat(r["run_date"]))
                    for r in other.get("runs", [])}
            common = sorted(wanted & keys)
            if common and not parse_area(str(other["region"])).equals(region):
                mine = other.get("project") == project
                clashes.setdefault(str(other["job_id"]) if mine else "of another project",
                                   []).extend(common)
        if clashes:
            days_text = sorted({d for ds in clashes.values() for d in ds})
            raise ProcessError(
                f"{request.use_case} products for {', '.join(days_text)} were made over another "
                f"region by earlier job(s) {', '.join(sorted(clashes))}; a day's products live "
                "under the day's run key, so this job would replace them. Submit with "
                '"replace": true to replace them, or choose other days',
                status=409, code="region_conflict")

    def job(self, job_id: str, project: str | None = None) -> dict[str, Any]:
        """Return a job record; 404 when unknown, 403 when it belongs to another project."""
        if not job_id.isalnum():
            raise ProcessError(f"job {job_id!r} not found", status=404, code="job_not_found")
        path = self.folder / f"{job_id}.json"
        if not path.is_file():
            raise ProcessError(f"job {job_id!r} not found (no {path}); submit one first",
                               status=404, code="job_not_found")
        job: dict[str, Any] = json.loads(path.read_text())
        if project is not None and job.get("project") != project:
            raise ProcessError(f"job {job_id!r} belongs to another project than {project!r}",
                               status=403, code="wrong_project")
        return job

    def status(self, job_id: str, project: str | None = None) -> dict[str, Any]:
        """Return the job with each run's Airflow state and the overall ``state``."""
        job = self.job(job_id, project)
        states = []
        for run in job["runs"]:
            answer = self.airflow.api("GET", f"/dags/{job['dag_id']}/dagRuns/{run['dag_run_id']}")
            run["state"] = str(answer.get("state"))
            states.append(run["state"])
        if any(s == "failed" for s in states):
            overall = "failed"
        elif states and all(s == "success" for s in states):
            overall = "success"
        else:
            overall = "running" if any(s == "running" for s in states) else "queued"
        return {**job, "state": overall}

    def results(self, job_id: str, project: str | None = None) -> dict[str, Any]:
        """Return the STAC items the job's runs published (``items``: path, collection, item)."""
        job = self.job(job_id, project)
        collections = USE_CASES[job["use_case"]][1]
        items = []
        for run in job["runs"]:
            key = run_key(job["use_case"], dt.date.fromisoformat(run["run_date"]))
            for collection in collections:
                for path in sorted((self.root / "catalogue" / collection / key).glob("*.json")):
                    items.append({"run_date": run["run_date"], "collection": collection,
                                  "path": str(path), "item": json.loads(path.read_text())})
        return {"job_id": job_id, "items": items}


def add_process_routes(app: Any, jobs: ProcessJobs, authenticate: Callable[..., ApiKey],
                       api_error: type[Exception], errors: dict[int | str, Any]) -> None:
    """Add ``POST /v1/process``, ``GET /v1/process/{job_id}`` and ``.../results`` to ``app``.

    ``authenticate`` is the app's API-key dependency; jobs belong to the key's project.
    :class:`ProcessError` is answered as ``api_error(status, code, message)``.
    """
    from fastapi import Depends

    key_of = Depends(authenticate)

    def _answer(call: Any, *args: Any) -> dict[str, Any]:
        try:
            return dict(call(*args))
        except ProcessError as err:
            raise api_error(err.status, err.code, err.message) from None

    @app.post("/v1/process", tags=["process"], status_code=202, responses=errors)
    def submit(request: ProcessRequest, key: ApiKey = key_of) -> dict[str, Any]:
        """Start on-demand processing of a use case over a region and time window."""
        return _answer(jobs.submit, request, key.project)

    @app.get("/v1/process/{job_id}", tags=["process"], responses=errors)
    def status(job_id: str, key: ApiKey = key_of) -> dict[str, Any]:
        """Return a job with the state of each of its Airflow runs."""
        return _answer(jobs.status, job_id, key.project)

    @app.get("/v1/process/{job_id}/results", tags=["process"], responses=errors)
    def results(job_id: str, key: ApiKey = key_of) -> dict[str, Any]:
        """Return the STAC items (from ``{data_root}/catalogue``) the job's runs published."""
        return _answer(jobs.results, job_id, key.project)
