"""Scale-out manifests (tasks/kube.py), rendered and checked offline against their schemas."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tasks.config.common import DaskConfig
from tasks.kube import (
    BASE_CONTAINER,
    IMAGES,
    TRAIN_COMMANDS,
    dask_cluster_spec,
    render_airflow,
    to_yaml,
    training_pod,
    worker_resources,
)

REPO = Path(__file__).resolve().parents[2]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _kube_cfg(**kube: object) -> DaskConfig:
    return DaskConfig.model_validate({
        "cluster": "kubernetes", "n_workers": 3, "threads_per_worker": 2,
        "memory_limit": "6GiB", "kubernetes": kube,
    })


def _dockerfile(image: str) -> str:
    path = REPO / IMAGES[image].dockerfile
    assert path.is_file(), f"{path} (image {IMAGES[image].ref}) is missing"
    return path.read_text()


def _check_pod_spec(spec: dict) -> None:
    """The parts of io.k8s.api.core.v1.PodSpec a cluster would reject when wrong."""
    assert isinstance(spec["containers"], list) and spec["containers"]
    volumes = {v["name"] for v in spec.get("volumes", [])}
    for container in spec["containers"]:
        assert DNS_LABEL.match(container["name"]) and container["image"]
        assert all(isinstance(a, str) for a in container.get("args", []))
        for env in container.get("env", []):
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env["name"])
            assert ("value" in env) != ("valueFrom" in env)
            assert isinstance(env.get("value", ""), str)
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes and mount["mountPath"].startswith("/")
        for port in container.get("ports", []):
            assert isinstance(port["containerPort"], int) and len(port["name"]) <= 15
        res = container.get("resources", {})
        assert set(res) <= {"requests", "limits"}
        for amounts in res.values():
            assert all(isinstance(v, str) for v in amounts.values())


def test_dask_cluster_spec_has_the_daskcluster_crd_shape():
    cfg = _kube_cfg(env={"EEFLOW_LOG": "info"}, volume_claim="eeflow-data", idle_timeout_s=600)
    spec = yaml.safe_load(to_yaml(dask_cluster_spec(cfg)))  # survives YAML
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert DNS_LABEL.match(spec["metadata"]["name"]) and spec["metadata"]["namespace"] == "default"
    # required by the CRD (dask_kubernetes/operator/customresources/templates.yaml)
    assert {"scheduler", "worker"} <= set(spec["spec"]) and spec["spec"]["idleTimeout"] == 600
    worker, scheduler = spec["spec"]["worker"], spec["spec"]["scheduler"]
    assert worker["replicas"] == 3 and "spec" in worker
    assert {"spec", "service"} <= set(scheduler)
    _check_pod_spec(worker["spec"])
    _check_pod_spec(scheduler["spec"])
    (wc,), (sc,) = worker["spec"]["containers"], scheduler["spec"]["containers"]
    assert wc["image"] == sc["image"] == IMAGES["dask"].ref
    assert wc["resources"]["limits"] == {"cpu": "2", "memory": "6144Mi"}
    assert wc["args"][wc["args"].index("--memory-limit") + 1] == "6GiB"
    assert {"name": "EEFLOW_LOG", "value": "info"} in wc["env"]
    assert wc["volumeMounts"] == [{"name": "eeflow-data", "mountPath": "/opt/eeflow/work"}]
    service = scheduler["service"]
    assert service["selector"] == {"dask.org/cluster-name": "eeflow",
                                   "dask.org/component": "scheduler"}
    named = {p["name"] for p in sc["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= named
    assert sc["readinessProbe"]["httpGet"]["port"] in named


def test_dask_cluster_spec_uses_the_image_of_containers_dask_dockerfile():
    text = _dockerfile("dask")
    assert 'ENTRYPOINT ["tini", "--"]' in text  # args are the command
    assert "pip install" in text and "-e ." in text  # eeflow -> dask[distributed] -> `dask`
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert compose["services"]["dask-worker"]["image"] == IMAGES["dask"].ref
    assert DaskConfig().kubernetes.image == IMAGES["dask"].ref


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_dask_commands_accept_the_rendered_options(role):
    spec = dask_cluster_spec(_kube_cfg())
    (container,) = spec["spec"][role]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["dask", role]
    dask_cli = Path(sys.executable).with_name("dask")
    helptext = subprocess.run([str(dask_cli), role, "--help"], capture_output=True, text=True,
                              timeout=120, check=True).stdout
    for option in (a for a in args[2:] if a.startswith("--")):
        assert option in helptext, f"`dask {role}` has no option {option}"


def test_worker_resources_follow_the_dask_section_unless_given():
    assert worker_resources(_kube_cfg(resources={"cpu": "1500m", "memory": "3Gi", "gpu": 1})) == {
        "requests": {"cpu": "1500m", "memory": "3Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "1500m", "memory": "3Gi", "nvidia.com/gpu": "1"}}
    auto = DaskConfig(cluster="kubernetes", memory_limit="auto")
    assert worker_resources(auto)["limits"] == {"cpu": "1"}  # no memory limit to derive


def test_spec_matches_dask_kubernetes_make_cluster_spec_when_installed():
    operator = pytest.importorskip("dask_kubernetes.operator")
    ours = dask_cluster_spec(_kube_cfg())
    theirs = operator.make_cluster_spec(name="eeflow", image=IMAGES["dask"].ref, n_workers=3)

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if v is not None}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return [shape(value[0])]
        return type(value).__name__

    def keys(value, prefix=""):
        if isinstance(value, dict):
            return {f"{prefix}{k}" for k in value} | {
                p for k, v in value.items() for p in keys(v, f"{prefix}{k}.")}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return keys(value[0], f"{prefix}[].")
        return set()

    assert keys(shape(theirs)) <= keys(shape(ours))


def test_kubernetes_branch_creates_the_rendered_cluster(monkeypatch):
    """dask_client hands the rendered spec to KubeCluster (a LocalCluster stands in for it)."""
    import dask.array as da
    from distributed import LocalCluster

    from tasks.dask_cluster import dask_client

    created: dict = {}

    class KubeCluster(LocalCluster):
        def __init__(self, *, custom_cluster_spec, namespace, shutdown_on_close):
            created.update(spec=custom_cluster_spec, namespace=namespace,
                           shutdown=shutdown_on_close)
            super().__init__(n_workers=custom_cluster_spec["spec"]["worker"]["replicas"],
                             processes=False, threads_per_worker=1, dashboard_address=None)

    package = types.ModuleType("dask_kubernetes")
    module = types.ModuleType("dask_kubernetes.operator")
    module.KubeCluster = KubeCluster
    monkeypatch.setitem(sys.modules, "dask_kubernetes", package)
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", module)
    cfg = DaskConfig.model_validate({"cluster": "kubernetes", "n_workers": 2,
                                     "kubernetes": {"namespace": "ice", "name": "charts"}})
    with dask_client(cfg) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert int(da.ones(100, chunks=10).sum().compute()) == 100
    assert created["spec"] == dask_cluster_spec(cfg) and created["namespace"] == "ice"
    assert created["shutdown"] is True


def test_kubernetes_branch_without_the_extra_says_what_to_install(monkeypatch):
    from tasks.dask_cluster import DaskClusterError, dask_client

    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)  # import fails
    with (pytest.raises(DaskClusterError, match=r"eeflow\[kubernetes\]"),
          dask_client(DaskConfig(cluster="kubernetes"))):
        pass


def _click_command(words: list[str]):
    import typer.main

    from tasks.cli.root import _register_subcommands, app

    if "airflow" not in {g.name for g in app.registered_groups}:
        _register_subcommands()
    command = typer.main.get_command(app)
    rest = list(words)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


@pytest.mark.parametrize("use_case", sorted(TRAIN_COMMANDS))
def test_training_pod_runs_an_eeflow_train_command_of_the_trainer_image(use_case):
    text = _dockerfile("trainer")
    assert 'ENTRYPOINT ["eeflow"]' in text and "cu128" in text  # GPU torch
    overrides = ["train.devices=2", "train.strategy=ddp"] if use_case == "polar" else None
    pod = yaml.safe_load(to_yaml(training_pod(use_case, gpus=2, volume_claim="eeflow-data",
                                              overrides=overrides)))
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert DNS_LABEL.match(pod["metadata"]["name"])
    _check_pod_spec(pod["spec"])
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == BASE_CONTAINER and container["image"] == IMAGES["trainer"].ref
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    command, rest = _click_command(container["args"])
    assert command.name == "train" and not hasattr(command, "commands")
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    for word in rest:
        if word.startswith("-"):
            assert word in options, f"{container['args']}: no option {word}"
    assert rest[rest.index("--run-date") + 1] == "{{ ds }}"  # templated by the operator
    assert (REPO / rest[rest.index("--config") + 1]).is_file()


def test_training_pod_errors_name_the_input():
    with pytest.raises(ValueError, match=r"use_case 'linked_data'.*food_security"):
        training_pod("linked_data")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"crops train.*config file"):
        training_pod("food_security", overrides=["train.devices=2"])


def _env_file(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line[0] == "#"]
    return dict(pairs)


def _check_airflow_settings(env: dict[str, str]) -> None:
    from airflow.configuration import conf

    known = conf.configuration_description  # Airflow's config reference, providers' included
    for key, value in env.items():
        assert "\n" not in value
        if not key.startswith("AIRFLOW__"):
            continue
        section, option = key[len("AIRFLOW__"):].lower().split("__", 1)
        assert option in known[section]["options"], f"{key}: no [{section}] {option} in Airflow"
    secrets = ("SQL_ALCHEMY_CONN", "JWT_SECRET", "FERNET_KEY", "BROKER_URL", "RESULT_BACKEND")
    for key, value in env.items():
        if key.endswith(secrets) and "password" not in value.lower():
            assert "${" in value, f"{key} holds a literal secret"


def test_render_celery():
    files = render_airflow("celery")
    env = _env_file(files["airflow.env"])
    _check_airflow_settings(env)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    services = yaml.safe_load(files["celery-worker.yaml"])["services"]
    worker = services["airflow-celery-worker"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert worker["image"] == IMAGES["airflow"].ref
    assert (REPO / worker["build"]["dockerfile"]).is_file()
    # apache/airflow images ship the celery provider (the `airflow celery` command)
    assert "FROM apache/airflow:" in _dockerfile("airflow")
    assert set(worker["depends_on"]) <= set(services) | {"postgres"}


def test_render_kubernetes():
    files = render_airflow("kubernetes", namespace="eo", volume_claim="eo-data")
    env = _env_file(files["airflow.env"])
    _check_airflow_settings(env)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    template_path = env["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"]
    assert template_path.startswith("/opt/eeflow/")  # the image's WORKDIR
    assert "WORKDIR /opt/eeflow" in _dockerfile("airflow")
    repository = env["AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY"]
    assert repository == IMAGES["airflow"].name
    pod = yaml.safe_load(files["pod_template.yaml"])
    _check_pod_spec(pod["spec"])
    (base,) = pod["spec"]["containers"]
    assert base["name"] == "base" and base["image"] == IMAGES["airflow"].ref
    names = {e["name"]: e for e in base["env"]}
    assert len(names) == len(base["env"])
    assert "secretKeyRef" in names["AIRFLOW__API_AUTH__JWT_SECRET"]["valueFrom"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "eo-data"
    for use_case in TRAIN_COMMANDS:
        train = yaml.safe_load(files[f"train-pod-{use_case}.yaml"])
        assert train["metadata"]["namespace"] == "eo"


def test_render_command_writes_the_files(tmp_path):
    from tasks.cli import app

    _click_command(["airflow"])  # registers the subcommands
    runner = CliRunner()
    result = runner.invoke(app, ["airflow", "render", "--executor", "kubernetes",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "airflow.env", "pod_template.yaml", "train-pod-food_security.yaml",
        "train-pod-polar.yaml"]
    bad = runner.invoke(app, ["airflow", "render", "--executor", "local"])
    assert bad.exit_code == 2 and "celery or kubernetes" in bad.output


@pytest.mark.parametrize("use_case", sorted(TRAIN_COMMANDS))
def test_training_pod_builds_with_the_kubernetes_pod_operator_when_installed(use_case, tmp_path):
    """The real operator (``kubernetes`` extra) accepts the rendered pod as its template."""
    pod_module = pytest.importorskip("airflow.providers.cncf.kubernetes.operators.pod")
    client = pytest.importorskip("kubernetes.client")
    kubeconfig = tmp_path / "kubeconfig"  # building the request reads a config, connects nowhere
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    rendered = training_pod(use_case, gpus=1, volume_claim="eeflow-data")
    operator = pod_module.KubernetesPodOperator(task_id="train", pod_template_dict=rendered,
                                                config_file=str(kubeconfig), in_cluster=False)
    pod = operator.build_pod_request_obj(context=None)
    (base,) = [c for c in pod.spec.containers if c.name == BASE_CONTAINER]
    assert base.image == IMAGES["trainer"].ref and base.resources.limits["nvidia.com/gpu"] == "1"
    assert base.args[:2] == TRAIN_COMMANDS[use_case] and "{{ ds }}" in base.args
    model = client.ApiClient()._ApiClient__deserialize(yaml.safe_load(to_yaml(rendered)),
                                                       client.V1Pod)
    assert model.spec.containers[0].image == base.image
