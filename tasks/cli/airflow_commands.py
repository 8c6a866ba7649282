"""``eeflow airflow ...``: run the project's DAGs on the embedded local Airflow, as users do.

``env`` prints the environment every Airflow command needs (for ``eval`` in a shell), ``start``
runs the services in the foreground until Ctrl-C, ``trigger`` and ``backfill`` go through the
running API server's REST API, exactly as the UI's Trigger and Backfill forms do.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from tasks.cli.local_airflow import USER, AirflowRunError, LocalAirflow, airflow_env, ui_password

app = typer.Typer(no_args_is_help=True)

HomeOption = Annotated[Path, typer.Option(help="project folder (EEFLOW_HOME)")]
PortOption = Annotated[int, typer.Option(help="API server / UI port on 127.0.0.1")]


def _conf(conf: str) -> dict[str, object]:
    try:
        value = json.loads(conf)
    except json.JSONDecodeError as err:
        raise typer.BadParameter(f"--conf is not JSON ({err.msg}): {conf!r}") from err
    if not isinstance(value, dict):
        raise typer.BadParameter(f"--conf must be a JSON object, got {conf!r}")
    return value


def _connected(home: Path, port: int) -> LocalAirflow:
    """Return a handle on the Airflow that ``eeflow airflow start`` runs (starts nothing)."""
    return LocalAirflow(home.resolve(), port=port)


@app.command("env")
def env(home: HomeOption = Path("."), port: PortOption = 8080) -> None:
    """Print ``export`` lines of the local Airflow (``eval "$(eeflow airflow env)"``)."""
    values = airflow_env(home.resolve(), port)
    for key in sorted(values):
        if key.startswith(("AIRFLOW", "EEFLOW")) or key == "PYTHONPATH":
            typer.echo(f"export {key}={shlex.quote(values[key])}")


@app.command("start")
def start(home: HomeOption = Path("."), port: PortOption = 8080) -> None:
    """Start api-server, scheduler, dag-processor and triggerer; stop them on Ctrl-C."""
    af = LocalAirflow(home.resolve(), port=port)
    af.start()
    typer.echo(f"Airflow UI: {af.url}  (user {USER}, password {ui_password(af.env)})")
    typer.echo(f"service logs: {af.log_dir}; Ctrl-C stops every service")
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            af.check_services()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        af.stop()


@app.command("trigger")
def trigger(
    dag_id: str,
    conf: Annotated[str, typer.Option(help="run conf (params) as a JSON object")] = "{}",
    wait: Annotated[bool, typer.Option(help="wait for the run and fail if it fails")] = False,
    home: HomeOption = Path("."),
    port: PortOption = 8080,
) -> None:
    """Trigger a manual run of DAG_ID on the running local Airflow (as the UI's Trigger does)."""
    af = _connected(home, port)
    run_id = af.trigger(dag_id, _conf(conf))
    typer.echo(run_id)
    if wait:
        af.wait_for_runs(dag_id, [run_id])
        typer.echo(f"{dag_id} {run_id}: success")


@app.command("backfill")
def backfill(
    dag_id: str,
    from_date: Annotated[str, typer.Option("--from-date", help="first logical date, YYYY-MM-DD")],
    to_date: Annotated[str, typer.Option("--to-date", help="last logical date, YYYY-MM-DD")],
    conf: Annotated[str, typer.Option(help="run conf (params) as a JSON object")] = "{}",
    reprocess: Annotated[str, typer.Option(help="none | failed | completed")] = "none",
    wait: Annotated[bool, typer.Option(help="wait for every run and fail if one fails")] = False,
    home: HomeOption = Path("."),
    port: PortOption = 8080,
) -> None:
    """Backfill DAG_ID over a date range: one run per schedule interval (e.g. agronomic year)."""
    af = _connected(home, port)
    before = {r["dag_run_id"] for r in af.runs(dag_id)}
    backfill_id = af.backfill(dag_id, from_date, to_date, _conf(conf), reprocess)
    typer.echo(f"backfill {backfill_id} created")
    if wait:
        deadline = time.monotonic() + 60
        runs: list[str] = []
        while not runs and time.monotonic() < deadline:
            runs = [r["dag_run_id"] for r in af.runs(dag_id)
                    if r["run_type"] == "backfill" and r["dag_run_id"] not in before]
            time.sleep(2)
        if not runs:
            raise AirflowRunError(f"backfill {backfill_id} of {dag_id} created no run in 60 s")
        done = af.wait_for_runs(dag_id, runs, timeout=6 * 3600)
        for run in done:
            typer.echo(f"{dag_id} {run['logical_date'][:10]}: {run['state']}")


@app.command("render")
def render(
    executor: Annotated[str, typer.Option(help="celery | kubernetes")],
    out: Annotated[
        Path | None, typer.Option(help="folder to write the files to (default: print them)")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace")] = "default",
    volume_claim: Annotated[
        str, typer.Option(help="PersistentVolumeClaim shared by task pods (kubernetes)")
    ] = "eeflow-data",
) -> None:
    """Render the config of a CeleryExecutor or KubernetesExecutor deployment (tasks/kube.py).

    celery: airflow.env + celery-worker.yaml (compose services); kubernetes: airflow.env,
    pod_template.yaml and KubernetesPodOperator training pods (train-pod-*.yaml).
    """
    from tasks.kube import render_airflow

    if executor not in ("celery", "kubernetes"):
        raise typer.BadParameter(f"--executor must be celery or kubernetes, got {executor!r}")
    # typer passes the choice as str; checked just above
    files = render_airflow(executor, namespace=namespace, volume_claim=volume_claim)  # type: ignore[arg-type]
    if out is None:
        for name, text in files.items():
            typer.echo(f"# --- {name} ---\n{text}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
        typer.echo(str(out / name))
