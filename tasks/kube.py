"""Kubernetes and scale-out manifests, rendered from the config and the images of ``containers/``.

Pure functions returning plain dicts (YAML via :func:`to_yaml`), so every manifest is checked
offline, without a cluster:

- :func:`dask_cluster_spec`: the ``kubernetes.dask.org/v1`` ``DaskCluster`` that
  ``dask.cluster: kubernetes`` hands to dask-kubernetes' ``KubeCluster(custom_cluster_spec=...)``
  (same shape as ``dask_kubernetes.operator.make_cluster_spec``, plus resources derived from the
  ``dask`` section and a shared data volume).
- :func:`training_pod`: a ``v1`` Pod running ``eeflow <use case> train`` in the GPU trainer image,
  for Airflow's ``KubernetesPodOperator(pod_template_dict=...)`` (a templated field, so the run
  date may be ``"{{ ds }}"``).
- :func:`airflow_executor_env` / :func:`executor_pod_template` / :func:`render_airflow`: the
  ``AIRFLOW__*`` settings of a CeleryExecutor or KubernetesExecutor deployment and the
  KubernetesExecutor's worker pod template (``eeflow airflow render``).

Secrets never appear in a rendered file: they are ``${VAR}`` references filled in from the
environment (compose, ``envsubst``) or Kubernetes ``secretKeyRef`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from tasks.config.common import DaskConfig

Executor = Literal["celery", "kubernetes"]
TrainingUseCase = Literal["polar", "food_security"]


@dataclass(frozen=True)
class Image:
    """A container image of the project and the Dockerfile (under the repo root) that builds it."""

    name: str
    dockerfile: str
    tag: str = "0.1.0"

    @property
    def ref(self) -> str:
        """Return ``name:tag``."""
        return f"{self.name}:{self.tag}"


#: The project's images; the names match docker-compose.yaml.
IMAGES: dict[str, Image] = {
    "airflow": Image("eeflow/airflow", "containers/airflow.Dockerfile"),
    "dask": Image("eeflow/dask", "containers/dask.Dockerfile"),
    "trainer": Image("eeflow/trainer", "containers/trainer.Dockerfile"),
}

#: Where the images keep the project (WORKDIR / EEFLOW_HOME) and the stage outputs.
PROJECT_DIR = "/opt/eeflow"
DATA_DIR = f"{PROJECT_DIR}/work"
#: Ports of the Dask scheduler (comm, dashboard) and of a worker's dashboard.
SCHEDULER_PORT, SCHEDULER_DASHBOARD_PORT, WORKER_DASHBOARD_PORT = 8786, 8787, 8788
#: The CLI command that trains each use case (``eeflow <words> --config ... --run-date ...``).
TRAIN_COMMANDS: dict[TrainingUseCase, list[str]] = {
    "polar": ["polar", "train"],
    "food_security": ["crops", "train"],
}
#: KubernetesPodOperator / KubernetesExecutor require the main container to be called this.
BASE_CONTAINER = "base"


def to_yaml(manifest: Any) -> str:
    """Return ``manifest`` as block-style YAML, keys in insertion order."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in env.items()]


def worker_resources(cfg: DaskConfig) -> dict[str, dict[str, str]]:
    """Return a Dask worker pod's ``resources`` (requests = limits, Guaranteed QoS).

    CPU defaults to ``threads_per_worker``; memory to ``memory_limit`` converted to a Kubernetes
    quantity in Mi (none when ``memory_limit`` is ``auto``); GPUs as ``nvidia.com/gpu``.
    """
    from dask.utils import parse_bytes

    res = cfg.kubernetes.resources
    amounts: dict[str, str] = {"cpu": res.cpu or str(cfg.threads_per_worker)}
    if res.memory:
        amounts["memory"] = res.memory
    elif cfg.memory_limit != "auto":
        amounts["memory"] = f"{parse_bytes(cfg.memory_limit) // 2**20}Mi"
    if res.gpu:
        amounts["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _data_volume(claim: str | None, mount_path: str) -> tuple[list[dict], list[dict]]:
    """Return (volumes, volumeMounts) of the shared data volume claim, empty without one."""
    if claim is None:
        return [], []
    return ([{"name": "eeflow-data", "persistentVolumeClaim": {"claimName": claim}}],
            [{"name": "eeflow-data", "mountPath": mount_path}])


def dask_cluster_spec(cfg: DaskConfig) -> dict[str, Any]:
    """Return the ``DaskCluster`` resource of ``cfg`` (``dask.kubernetes`` + worker sizes).

    ``n_workers`` replicas run ``dask worker`` with ``threads_per_worker`` threads and
    ``memory_limit`` each (the operator injects ``DASK_SCHEDULER_ADDRESS`` and
    ``DASK_WORKER_NAME``); the scheduler runs ``dask scheduler`` behind a ClusterIP service.
    Both use ``dask.kubernetes.image`` (default: the image of ``containers/dask.Dockerfile``,
    whose entry point is ``tini --``, so ``args`` is the command).
    """
    kube = cfg.kubernetes
    env = _env_list({"EEFLOW_HOME": PROJECT_DIR, **kube.env})
    volumes, mounts = _data_volume(kube.volume_claim, kube.mount_path)
    worker_args = ["dask", "worker", "--name", "$(DASK_WORKER_NAME)",
                   "--nthreads", str(cfg.threads_per_worker),
                   "--memory-limit", cfg.memory_limit,
                   "--dashboard", "--dashboard-address", str(WORKER_DASHBOARD_PORT)]
    worker: dict[str, Any] = {
        "name": "worker",
        "image": kube.image,
        "args": worker_args,
        "env": env,
        "resources": worker_resources(cfg),
        "ports": [{"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT,
                   "protocol": "TCP"}],
    }
    scheduler: dict[str, Any] = {
        "name": "scheduler",
        "image": kube.image,
        "args": ["dask", "scheduler", "--host", "0.0.0.0",
                 "--port", str(SCHEDULER_PORT),
                 "--dashboard-address", f":{SCHEDULER_DASHBOARD_PORT}"],
        "env": env,
        "ports": [
            {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": SCHEDULER_DASHBOARD_PORT,
             "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"},
                           "initialDelaySeconds": 0, "periodSeconds": 1,
                           "timeoutSeconds": 300},
        "livenessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"},
                          "initialDelaySeconds": 15, "periodSeconds": 20},
    }
    if mounts:
        worker["volumeMounts"] = mounts
        scheduler["volumeMounts"] = mounts
    worker_pod: dict[str, Any] = {"containers": [worker]}
    scheduler_pod: dict[str, Any] = {"containers": [scheduler]}
    if volumes:
        worker_pod["volumes"] = volumes
        scheduler_pod["volumes"] = volumes
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": kube.name, "namespace": kube.namespace},
        "spec": {
            "idleTimeout": kube.idle_timeout_s,
            "worker": {"replicas": cfg.n_workers, "spec": worker_pod},
            "scheduler": {
                "spec": scheduler_pod,
                "service": {
                    "type": "ClusterIP",
                    "selector": {"dask.org/cluster-name": kube.name,
                                 "dask.org/component": "scheduler"},
                    "ports": [
                        {"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT,
                         "targetPort": "tcp-comm"},
                        {"name": "http-dashboard", "protocol": "TCP",
                         "port": SCHEDULER_DASHBOARD_PORT, "targetPort": "http-dashboard"},
                    ],
                },
            },
        },
    }


def training_pod(
    use_case: TrainingUseCase,
    run_date: str = "{{ ds }}",
    *,
    config_path: str | None = None,
    gpus: int = 1,
    cpu: str = "4",
    memory: str = "16Gi",
    namespace: str = "default",
    volume_claim: str | None = None,
    image: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Return a ``v1`` Pod that trains ``use_case`` in the trainer image (containers/trainer).

    For ``KubernetesPodOperator(task_id=..., pod_template_dict=training_pod("polar"))``: the
    container is called ``base`` as the operator expects, ``run_date`` may be a Jinja template.
    The image's entry point is ``eeflow``, so ``args`` is ``polar train --config ... --run-date
    ...`` (``crops train`` for food_security). ``gpus`` > 0 requests ``nvidia.com/gpu`` (the
    config's ``train.accelerator: auto`` then picks the GPU; ``train.devices`` /
    ``train.strategy`` spread the work over several). ``overrides`` are ``--set key=value`` of the
    polar CLI (food_security's ``crops train`` takes none).
    """
    if use_case not in TRAIN_COMMANDS:
        raise ValueError(f"use_case {use_case!r} has no training command; choose one of "
                         f"{sorted(TRAIN_COMMANDS)}")
    if gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus}")
    if overrides and use_case != "polar":
        raise ValueError(f"overrides ({overrides}) are --set options of `eeflow polar train`; "
                         f"`eeflow {' '.join(TRAIN_COMMANDS[use_case])}` takes none: put the keys "
                         "in the config file instead")
    config = config_path or f"configs/{use_case}.yaml"
    args = [*TRAIN_COMMANDS[use_case], "--config", config, "--run-date", run_date]
    for override in overrides or []:
        args += ["--set", override]
    amounts = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    volumes, mounts = _data_volume(volume_claim, DATA_DIR)
    container: dict[str, Any] = {
        "name": BASE_CONTAINER,
        "image": image or IMAGES["trainer"].ref,
        "args": args,
        "env": _env_list({"EEFLOW_HOME": PROJECT_DIR}),
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
    }
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if mounts:
        container["volumeMounts"] = mounts
        spec["volumes"] = volumes
    if gpus:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                                "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"eeflow-train-{use_case.replace('_', '-')}",
                     "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "eeflow",
                                "app.kubernetes.io/component": "trainer"}},
        "spec": spec,
    }


#: Settings every distributed Airflow deployment shares; ``${VAR}`` are filled from the environment.
_COMMON_AIRFLOW_ENV = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": f"{PROJECT_DIR}/dags",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
        "postgresql+psycopg2://airflow:${POSTGRES_PASSWORD}@postgres:5432/airflow",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
    "AIRFLOW__API_AUTH__JWT_SECRET": "${AIRFLOW_JWT_SECRET}",
    "AIRFLOW__CORE__FERNET_KEY": "${AIRFLOW_FERNET_KEY}",
    "EEFLOW_HOME": PROJECT_DIR,
}
#: Where the KubernetesExecutor's pod template lies inside the Airflow image.
POD_TEMPLATE_PATH = f"{PROJECT_DIR}/pod_template.yaml"


def airflow_executor_env(executor: Executor, namespace: str = "default") -> dict[str, str]:
    """Return the ``AIRFLOW__*`` settings of a CeleryExecutor or KubernetesExecutor deployment.

    Celery: Redis broker, results in the metadata DB (the celery provider's default for an
    unset ``result_backend``), workers started with
    ``airflow celery worker`` in the Airflow image (apache/airflow ships the celery and
    cncf.kubernetes providers). Kubernetes: one pod per task from :func:`executor_pod_template`.
    """
    env = dict(_COMMON_AIRFLOW_ENV)
    if executor == "celery":
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": "redis://:${REDIS_PASSWORD}@redis:6379/0",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        })
    elif executor == "kubernetes":
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
            "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": namespace,
            "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": POD_TEMPLATE_PATH,
            "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": IMAGES["airflow"].name,
            "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": IMAGES["airflow"].tag,
            "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS": "True",
            "AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER": "True",
        })
    else:
        raise ValueError(f"executor {executor!r} is not one of: celery, kubernetes")
    return env


#: Kubernetes Secret holding the Airflow secrets the task pods need (keys: the variable names).
AIRFLOW_SECRET = "eeflow-airflow"
_SECRET_VARIABLES = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET",
                     "AIRFLOW__CORE__FERNET_KEY")


def executor_pod_template(namespace: str = "default",
                          volume_claim: str | None = "eeflow-data") -> dict[str, Any]:
    """Return the KubernetesExecutor's worker pod template (one pod per task instance).

    Airflow fills in the ``base`` container's command (it runs the task through the execution
    API); the template gives the image (containers/airflow.Dockerfile), the settings (secrets
    from the ``eeflow-airflow`` Secret) and the shared data volume at ``/opt/eeflow/work``.
    """
    settings = airflow_executor_env("kubernetes", namespace)
    env: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in settings.items()
        if key not in _SECRET_VARIABLES and not key.startswith("AIRFLOW__KUBERNETES_EXECUTOR__")
    ]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": AIRFLOW_SECRET, "key": key}}}
            for key in _SECRET_VARIABLES]
    env.append({"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"})
    env = list({item["name"]: item for item in env}.values())  # the last entry of a name wins
    volumes, mounts = _data_volume(volume_claim, DATA_DIR)
    container: dict[str, Any] = {
        "name": BASE_CONTAINER,
        "image": IMAGES["airflow"].ref,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
    }
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if mounts:
        container["volumeMounts"] = mounts
        spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "eeflow-task", "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "eeflow",
                                "app.kubernetes.io/component": "airflow-task"}},
        "spec": spec,
    }


def _env_file(env: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


def render_airflow(executor: Executor, namespace: str = "default",
                   volume_claim: str | None = "eeflow-data") -> dict[str, str]:
    """Return the files of an Airflow deployment with ``executor``: file name -> text.

    ``airflow.env`` (the ``AIRFLOW__*`` settings, ``${VAR}`` placeholders for secrets) for both;
    ``celery-worker.yaml`` (a compose service running ``airflow celery worker`` in the Airflow
    image) for celery; ``pod_template.yaml`` (copy it to ``/opt/eeflow/pod_template.yaml`` of the
    image or mount it there) and ``train-pod-{use case}.yaml`` (KubernetesPodOperator pods of the
    trainer image) for kubernetes.
    """
    env = airflow_executor_env(executor, namespace)
    files = {"airflow.env": _env_file(env)}
    if executor == "celery":
        worker = {
            "services": {
                "airflow-celery-worker": {
                    "image": IMAGES["airflow"].ref,
                    "build": {"context": ".", "dockerfile": IMAGES["airflow"].dockerfile},
                    "command": ["airflow", "celery", "worker"],
                    "env_file": ["airflow.env"],
                    "volumes": [f"eeflow-data:{DATA_DIR}"],
                    "depends_on": ["redis", "postgres"],
                },
                "redis": {
                    "image": "redis:7",
                    "command": ["redis-server", "--requirepass", "${REDIS_PASSWORD}"],
                },
            },
        }
        files["celery-worker.yaml"] = to_yaml(worker)
    else:
        files["pod_template.yaml"] = to_yaml(executor_pod_template(namespace, volume_claim))
        for use_case in TRAIN_COMMANDS:
            pod = training_pod(use_case, namespace=namespace, volume_claim=volume_claim)
            files[f"train-pod-{use_case}.yaml"] = to_yaml(pod)
    return files
