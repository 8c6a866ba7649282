"""An embedded Airflow for eeflow: scheduler, DAG processor, triggerer and API server on 127.0.0.1.

Used by ``eeflow demo``, ``eeflow airflow ...`` and the integration tests, so all three run the DAGs
the way users do: under the real scheduler (LocalExecutor), never through ``airflow dags test``.
Airflow runs as subprocesses through its own CLI and is driven over its REST API (``/api/v2``)
with a token, so this module imports without Airflow.

The metadata database is SQLite in ``{home}/work/airflow/airflow.db``, switched to WAL journaling
(readers never block the writer) with a 60 s busy timeout, so a CLI command run next to the
scheduler waits for the lock instead of failing with ``database is locked``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from tasks.errors import EeflowError, ErrorFamily

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

#: Passed to sqlite3.connect by Airflow (``[database] sql_alchemy_connect_args``): wait up to
#: 60 s for the write lock rather than failing at once with "database is locked".
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
SQLITE_ARGS_PATH = f"{__name__}.SQLITE_CONNECT_ARGS"

#: Services a local Airflow 3 needs; the triggerer runs deferrable operators and sensors.
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")

TERMINAL_STATES = frozenset({"success", "failed"})

USER = "admin"


class AirflowRunError(EeflowError, RuntimeError):
    """An Airflow command or service failed, or is not running; the message carries the cause."""

    family: ClassVar[ErrorFamily] = ErrorFamily.UNAVAILABLE


class AirflowRequestError(AirflowRunError):
    """The Airflow API refused a request (HTTP 4xx: e.g. a param outside its schema)."""

    family: ClassVar[ErrorFamily] = ErrorFamily.CONFIG


class DagRunFailedError(AirflowRunError):
    """A DAG run ended failed; the message names its failed tasks and their errors."""

    family: ClassVar[ErrorFamily] = ErrorFamily.INPUT


def airflow_home(home: Path) -> Path:
    """Return the Airflow home of the eeflow project folder ``home``."""
    return home / "work" / "airflow"


def _local_secret(path: Path) -> str:
    """Read (or create, mode 0600) a random secret kept in the Airflow home, never in git."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def airflow_env(
    home: Path, port: int = 8080, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of the local Airflow whose home, SQLite DB and logs live under ``home``.

    Every component (API server, scheduler, DAG processor, triggerer, task processes, CLI) must
    see the same values, so this is the one place they are made: ``eeflow airflow env`` prints
    them for a shell. The JWT secret and the UI password are generated once per Airflow home.
    ``extra`` overrides any value; with ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` set to another
    database (PostgreSQL) the SQLite-only connect args are dropped.
    """
    af_home = airflow_home(home)
    af_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    passwords = af_home / "simple_auth_manager_passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({USER: _local_secret(af_home / ".ui_password")}))
        passwords.chmod(0o600)
    env.update(
        {
            "EEFLOW_HOME": str(home),
            "AIRFLOW_HOME": str(af_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "2"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home / 'airflow.db'}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": SQLITE_ARGS_PATH,
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(af_home / "logs"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": _local_secret(af_home / ".jwt_secret"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
        }
    )
    env.update(extra or {})
    if not env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite"):
        # another database (``extra`` names e.g. a postgresql+psycopg2:// URL): the SQLite
        # connect args would be refused by its driver (psycopg2 knows no ``timeout``)
        if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS") == SQLITE_ARGS_PATH:
            del env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"]
    return env


def ui_password(env: Mapping[str, str]) -> str:
    """Return the UI / API password of :data:`USER` for the Airflow of ``env``."""
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords = json.loads(path.read_text())
    return str(passwords[USER])


def _airflow_exe() -> str:
    exe = Path(sys.executable).with_name("airflow")
    return str(exe) if exe.exists() else "airflow"


def run_airflow(args: Sequence[str], env: Mapping[str, str], timeout: float = 600) -> str:
    """Run one ``airflow`` CLI command; raise :class:`AirflowRunError` with its output's tail."""
    cmd = [_airflow_exe(), *args]
    log.info("$ %s", " ".join(cmd))
    proc = subprocess.run(
        cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise AirflowRunError(
            f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}"
        )
    return output


def init_db(env: Mapping[str, str], timeout: float = 600) -> None:
    """Create or upgrade the SQLite metadata database and switch it to WAL journaling."""
    run_airflow(["db", "migrate"], env, timeout)
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)) as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        log.info("Airflow metadata DB %s: journal_mode=%s", url, mode)


@dataclass
class LocalAirflow:
    """Airflow's services for the project folder ``home``, started and stopped as a unit.

    Use as a context manager (``with LocalAirflow(home) as af: af.trigger(...)``); the services'
    output goes to ``{airflow_home}/services/<name>.log``. All calls after :meth:`start` go through
    the REST API with a token of the local admin user.
    """

    home: Path
    port: int = 8080
    services: Sequence[str] = SERVICES
    extra_env: Mapping[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(init=False)
    _procs: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    _logs: list[IO[bytes]] = field(init=False, default_factory=list)
    _token: str | None = field(init=False, default=None)
    _started: bool = field(init=False, default=False)
    _restarts: dict[str, list[float]] = field(init=False, default_factory=dict)

    #: A service that exits once the stack is up is restarted, at most this many times per window:
    #: Airflow's scheduler ends its loop on a transient database error (e.g. a ``StaleDataError``
    #: when the API server and the scheduler update one DAG run at once, apache/airflow#63926), and
    #: a supervisor is expected to start it again. A service that keeps exiting is an error.
    MAX_RESTARTS: ClassVar[int] = 5
    RESTART_WINDOW_S: ClassVar[float] = 600.0

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.env = airflow_env(self.home, self.port, self.extra_env)

    @property
    def url(self) -> str:
        """Base URL of the API server / UI."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        """Folder of the services' own logs."""
        return airflow_home(self.home) / "services"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 300) -> LocalAirflow:
        """Migrate the DB, start the services, wait until the API answers."""
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                raise AirflowRunError(
                    f"port {self.port} on 127.0.0.1 is already in use (another Airflow or "
                    "eeflow experiments dashboard?); stop it or pass another --port"
                )
        init_db(self.env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.services:
            self._spawn(name)
        try:
            self._wait_for_api(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _spawn(self, name: str) -> None:
        """Start one service, its output appended to ``{log_dir}/{name}.log``."""
        args = [name]
        if name == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        elif name == "scheduler":
            args += ["--skip-serve-logs"]
        handle = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(handle)
        log.info("starting airflow %s (log: %s)", name, self.log_dir / f"{name}.log")
        self._procs[name] = subprocess.Popen(
            [_airflow_exe(), *args], env=self.env, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def _wait_for_api(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.check_services()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(2)
        raise AirflowRunError(f"the Airflow API server did not answer on {self.url} in time; "
                              f"see {self.log_dir / 'api-server.log'}")

    def check_services(self) -> None:
        """Check that every service runs; restart one that exited once the stack was up.

        During :meth:`start` an exited service is an error at once (a broken set-up). Afterwards
        it is restarted with a warning and the tail of its log, unless it has already been
        restarted :attr:`MAX_RESTARTS` times within :attr:`RESTART_WINDOW_S` seconds.

        Raises:
            AirflowRunError: a service exited during start-up or keeps exiting; the message
                holds the tail of its log.

        """
        for name, proc in list(self._procs.items()):
            if proc.poll() is None:
                continue
            tail = "\n".join((self.log_dir / f"{name}.log").read_text(errors="replace")
                             .splitlines()[-30:])
            now = time.monotonic()
            recent = [t for t in self._restarts.get(name, []) if now - t < self.RESTART_WINDOW_S]
            if not self._started or len(recent) >= self.MAX_RESTARTS:
                again = (f" ({len(recent) + 1} times in {self.RESTART_WINDOW_S:.0f} s)"
                         if recent else "")
                raise AirflowRunError(f"airflow {name} exited with {proc.returncode}{again}:\n"
                                      + tail)
            self._restarts[name] = [*recent, now]
            log.warning("airflow %s exited with %s; restarting it (%d of at most %d in %.0f s). "
                        "Last lines of %s:\n%s", name, proc.returncode, len(recent) + 1,
                        self.MAX_RESTARTS, self.RESTART_WINDOW_S, self.log_dir / f"{name}.log",
                        tail)
            self._spawn(name)

    def stop(self, timeout: float = 30) -> None:
        """Stop every service (SIGTERM, then SIGKILL) and close their logs."""
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        self._started = False
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST API

    def api(self, method: str, path: str, body: Any = None, retries: int = 5) -> Any:
        """Call ``/api/v2{path}`` with the admin token; return the decoded JSON (or None)."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(retries):
            request = urllib.request.Request(
                f"{self.url}/api/v2{path}", data=data, method=method,
                headers={"Authorization": f"Bearer {self.token()}",
                         "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    payload = response.read()
                return json.loads(payload) if payload else None
            except urllib.error.HTTPError as err:
                detail = err.read().decode(errors="replace")
                if err.code == 401 and attempt + 1 < retries:
                    self._token = None
                    continue
                if err.code >= 500 and attempt + 1 < retries:
                    time.sleep(2 * (attempt + 1))
                    continue
                kind = AirflowRequestError if 400 <= err.code < 500 else AirflowRunError
                raise kind(f"{method} /api/v2{path} -> HTTP {err.code}: {detail}") from err
            except urllib.error.URLError as err:
                raise self._not_running(err) from err
        raise AirflowRunError(f"{method} /api/v2{path} failed after {retries} tries")

    def token(self) -> str:
        """Return a JWT of the local admin user (``POST /auth/token``)."""
        if self._token is None:
            body = json.dumps({"username": USER, "password": ui_password(self.env)}).encode()
            request = urllib.request.Request(
                f"{self.url}/auth/token", data=body, method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._token = str(json.loads(response.read())["access_token"])
            except urllib.error.HTTPError as err:
                raise AirflowRequestError(
                    f"the Airflow API at {self.url} refused the login of {USER!r} (HTTP "
                    f"{err.code}); is it the Airflow of {self.home}? (eeflow airflow start "
                    "--home ... --port ...)"
                ) from err
            except urllib.error.URLError as err:
                raise self._not_running(err) from err
        return self._token

    def _not_running(self, err: urllib.error.URLError) -> AirflowRunError:
        return AirflowRunError(
            f"no Airflow API server answers on {self.url} ({err.reason}); start it with "
            f"`eeflow airflow start --home {self.home} --port {self.port}`"
        )

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 300) -> None:
        """Wait until the DAG processor has parsed ``dag_ids``; import errors raise."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self.check_services()
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise AirflowRunError(f"DAG import errors: {json.dumps(errors, indent=2)}")
            known = {d["dag_id"] for d in self.api("GET", "/dags?limit=100")["dags"]}
            missing = [d for d in dag_ids if d not in known]
            if not missing:
                return
            time.sleep(3)
        raise AirflowRunError(f"the DAG processor did not parse {missing} in {timeout:.0f} s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG."""
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": paused})

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """Trigger a manual run (as the UI's Trigger button does); return its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns",
                       {"logical_date": logical_date, "conf": dict(conf or {})})
        log.info("triggered %s: %s", dag_id, run["dag_run_id"])
        return str(run["dag_run_id"])

    def backfill(
        self, dag_id: str, from_date: str, to_date: str,
        conf: Mapping[str, Any] | None = None, reprocess_behavior: str = "none",
    ) -> int:
        """Create a backfill (one run per schedule interval in the range); return its id."""
        body = {"dag_id": dag_id, "from_date": f"{from_date}T00:00:00Z",
                "to_date": f"{to_date}T00:00:00Z", "run_backwards": False,
                "dag_run_conf": dict(conf or {}), "reprocess_behavior": reprocess_behavior,
                "max_active_runs": 1}
        backfill = self.api("POST", "/backfills", body)
        log.info("backfill %s of %s: %s .. %s", backfill["id"], dag_id, from_date, to_date)
        return int(backfill["id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Return every run of ``dag_id`` (id, type, state, logical date, data interval)."""
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def wait_for_runs(
        self, dag_id: str, run_ids: Sequence[str] | None = None, count: int | None = None,
        timeout: float = 1800,
    ) -> list[dict[str, Any]]:
        """Wait until the named runs (or ``count`` runs of the DAG) end; raise on any failure.

        A failed run raises :class:`AirflowRunError` naming its failed tasks with the last error
        lines of their logs.
        """
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            self.check_services()
            runs = self.runs(dag_id)
            chosen = ([r for r in runs if r["dag_run_id"] in set(run_ids)]
                      if run_ids is not None else runs)
            expected = len(run_ids) if run_ids is not None else count or 1
            failed = [r for r in chosen if r["state"] == "failed"]
            if failed:
                raise DagRunFailedError(self.describe_failure(dag_id, failed[0]["dag_run_id"]))
            if len(chosen) >= expected and all(r["state"] in TERMINAL_STATES for r in chosen):
                return chosen
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                log.info("%s: %s", dag_id, ", ".join(f"{r['dag_run_id']}={r['state']}"
                                                     for r in chosen) or "no run yet")
            time.sleep(3)
        raise AirflowRunError(f"runs of {dag_id} did not finish in {timeout:.0f} s: "
                              f"{[(r['dag_run_id'], r['state']) for r in self.runs(dag_id)]}")

    def describe_failure(self, dag_id: str, run_id: str) -> str:
        """Say which tasks of a run failed, with the error lines of their last try's log."""
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=200")
        lines = [f"DAG run {dag_id} / {run_id} failed"]
        for ti in tis["task_instances"]:
            if ti["state"] not in ("failed", "upstream_failed"):
                continue
            lines.append(f"- task {ti['task_id']} [{ti['map_index']}]: {ti['state']}")
            if ti["state"] == "failed":
                lines += [f"    {ln}" for ln in self.task_errors(dag_id, run_id, ti)]
        return "\n".join(lines)

    def task_errors(self, dag_id: str, run_id: str, ti: Mapping[str, Any]) -> list[str]:
        """Return the error events (and the exception) of one task try's log file."""
        folder = (airflow_home(self.home) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                  / f"task_id={ti['task_id']}")
        if ti.get("map_index", -1) >= 0:
            folder /= f"map_index={ti['map_index']}"
        path = folder / f"attempt={ti['try_number']}.log"
        if not path.exists():
            return [f"(no log at {path})"]
        errors = []
        for raw in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if event.get("level") in ("error", "critical"):
                errors.append(str(event.get("event")))
                for exc in event.get("error_detail") or []:
                    errors.append(f"{exc.get('exc_type')}: {exc.get('exc_value')}")
        return errors[-6:] or [f"(see {path})"]


def utc_today() -> dt.date:
    """Today's date in UTC (the scheduler's calendar)."""
    return dt.datetime.now(dt.UTC).date()

