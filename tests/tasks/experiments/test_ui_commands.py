"""``eeflow experiments dashboard`` / ``mlflow-ui``: ports that do not clash, the MLflow command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tasks.experiments import cli

REPO = Path(__file__).resolve().parents[3]


def _defaults(command) -> dict[str, object]:
    import typer.main

    click_cmd = typer.main.get_command(cli.app).commands[command]
    return {p.name: p.default for p in click_cmd.params}


def test_ui_ports_do_not_clash_with_the_stack():
    stack = {8080, 8090, 7878, 8786, 8787}  # Airflow, serving, SPARQL, Dask scheduler + dashboard
    dashboard = _defaults("dashboard")
    mlflow = _defaults("mlflow-ui")
    assert dashboard["port"] == 8081 and dashboard["host"] == "127.0.0.1"
    assert mlflow["port"] == 5000 and mlflow["host"] == "127.0.0.1"
    assert not {dashboard["port"], mlflow["port"]} & stack


def test_mlflow_ui_runs_mlflow_on_the_registry_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "polar.yaml"
    data = yaml.safe_load((REPO / "configs" / "polar.yaml").read_text())
    data["data_root"] = str(tmp_path / "data")
    config.write_text(yaml.safe_dump(data))
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    result = CliRunner().invoke(cli.app, ["mlflow-ui", "--config", str(config), "--port", "5055"])
    assert result.exit_code == 0, result.output
    [cmd] = calls
    registry = tmp_path / "data" / "registry"
    assert Path(cmd[0]).name == "mlflow" and cmd[1] == "ui"
    assert cmd[2:] == ["--backend-store-uri", f"sqlite:///{registry / 'mlflow.db'}",
                       "--default-artifact-root", (registry / "artifacts").resolve().as_uri(),
                       "--host", "127.0.0.1", "--port", "5055"]
    assert "MLflow UI on http://127.0.0.1:5055" in result.output
    # the same store the registry opens
    from tasks.config.common import load_config
    from tasks.model_registry import ModelRegistry

    registry = ModelRegistry.from_config(load_config(config))
    assert cmd[3] == registry.tracking_uri
    assert cmd[5] == Path(registry.artifact_root).resolve().as_uri()
    # $MLFLOW_TRACKING_URI wins, as in the registry; a password never reaches the output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:s3cret@db:5432/mlflow")
    calls.clear()
    result = CliRunner().invoke(cli.app, ["mlflow-ui", "--config", str(config)])
    assert calls[0][3] == "postgresql://mlflow:s3cret@db:5432/mlflow"
    assert "s3cret" not in result.output and "mlflow:***@db" in result.output
