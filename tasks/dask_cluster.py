"""Open the Dask client a stage computes with, from the ``dask`` config section.

Where the workers of a local cluster run is a config choice (``dask.workers``):

- ``processes``: a ``LocalCluster`` whose Nanny spawns each worker with ``multiprocessing``. The
  spawned interpreter re-imports the parent's ``__main__``; under an Airflow task that is the
  ``airflow`` entry point, which fails inside a task (Airflow blocks its metadata database there
  and the re-import cannot parse the blocked URL), so this choice only suits the CLI and notebooks.
- ``subprocess``: each worker is a fresh ``python -m dask spec`` process (scheduler in-process), so
  nothing of the host process is re-imported. Works under any host: Airflow tasks, Celery, Jupyter.
- ``threads``: one in-process worker with ``n_workers x threads_per_worker`` threads (no process
  start-up, shares the GIL; numpy/GDAL release it for the heavy parts).
- ``auto`` (default): ``subprocess`` inside an Airflow task, ``processes`` elsewhere.

The choice is logged with the reason, and a cluster that fails to start raises
:class:`DaskClusterError` naming the cause instead of distributed's "Nanny failed to start".
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Literal

from tasks.config.common import DaskConfig

log = logging.getLogger(__name__)

WorkerKind = Literal["processes", "subprocess", "threads"]

#: Seconds a local cluster may take to bring up all of its workers.
START_TIMEOUT_S = 120


class DaskClusterError(RuntimeError):
    """A Dask cluster could not be started or reached; the message names the cause."""


def inside_airflow_task() -> bool:
    """Return True when this process runs an Airflow task (Airflow exports ``AIRFLOW_CTX_*``)."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


def resolve_worker_kind(cfg: DaskConfig) -> tuple[WorkerKind, str]:
    """Return the worker kind a local cluster uses for ``cfg`` and why (for the log)."""
    if cfg.workers != "auto":
        return cfg.workers, "dask.workers in the config"
    if inside_airflow_task():
        return "subprocess", (
            "dask.workers is auto and this is an Airflow task: spawned workers would re-import "
            "the airflow entry point"
        )
    return "processes", "dask.workers is auto outside Airflow"


@contextlib.contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or ``None`` for the synchronous scheduler).

    ``local`` starts a local cluster with ``n_workers`` x ``threads_per_worker`` and a memory
    limit per worker, its workers started as ``dask.workers`` says (see the module docstring),
    closed on exit; ``address`` connects to a running scheduler; ``kubernetes`` starts a
    dask-kubernetes ``KubeCluster`` (the package must be installed); ``synchronous`` runs in the
    calling thread (debugging, tiny inputs).
    """
    import dask

    if cfg.cluster == "synchronous":
        log.info("Dask: synchronous scheduler in the calling thread (dask.cluster: synchronous)")
        with dask.config.set(scheduler="synchronous"):
            yield None
        return
    from distributed import Client

    if cfg.cluster == "address":
        log.info("Dask: connecting to the scheduler at %s (dask.cluster: address)", cfg.address)
        try:
            client = Client(cfg.address, timeout=f"{START_TIMEOUT_S}s")
        except OSError as err:
            raise DaskClusterError(
                f"cannot reach the Dask scheduler at dask.address={cfg.address!r}: {err}; start "
                "it (`dask scheduler`) or set dask.cluster: local"
            ) from err
        with client:
            yield client
        return
    if cfg.cluster == "kubernetes":
        try:
            from dask_kubernetes.operator import KubeCluster
        except ImportError as err:
            raise DaskClusterError(
                "dask.cluster is 'kubernetes' but dask-kubernetes is not installed; "
                "pip install dask-kubernetes, or use cluster: local / address"
            ) from err
        with (
            KubeCluster(name="eeflow", n_workers=cfg.n_workers) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    kind, why = resolve_worker_kind(cfg)
    if kind == "threads":
        log.info("Dask: local cluster, 1 in-process worker x %d threads (%s)",
                 cfg.n_workers * cfg.threads_per_worker, why)
    else:
        log.info("Dask: local cluster, %d %s worker(s) x %d thread(s), %s each (%s)",
                 cfg.n_workers, kind, cfg.threads_per_worker, cfg.memory_limit, why)
    with _local_cluster(cfg, kind) as cluster, Client(cluster) as client:
        if cfg.dashboard:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client


@contextlib.contextmanager
def _local_cluster(cfg: DaskConfig, kind: WorkerKind) -> Iterator[Any]:
    """Start the local cluster of ``kind``; a failed start raises :class:`DaskClusterError`."""
    dashboard = ":0" if cfg.dashboard else None
    try:
        cluster = _start_local_cluster(cfg, kind, dashboard)
    except Exception as err:  # distributed raises bare RuntimeError/TimeoutError here
        raise DaskClusterError(
            f"the Dask local cluster ({cfg.n_workers} {kind} workers) did not start: "
            f"{type(err).__name__}: {str(err).rstrip('.')}. Causes seen: a worker process that "
            "cannot import the host's entry point (use dask.workers: subprocess or threads), "
            f"too little memory for dask.memory_limit={cfg.memory_limit!r}, or no free port on "
            "127.0.0.1"
        ) from err
    with cluster:
        yield cluster


def _start_local_cluster(cfg: DaskConfig, kind: WorkerKind, dashboard: str | None) -> Any:
    from distributed import LocalCluster

    if kind == "threads":
        return LocalCluster(
            n_workers=1,
            threads_per_worker=cfg.n_workers * cfg.threads_per_worker,
            processes=False,
            dashboard_address=dashboard,
        )
    if kind == "processes":
        return LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            memory_limit=cfg.memory_limit,
            processes=True,
            dashboard_address=dashboard,
            host="127.0.0.1",
        )
    return _subprocess_cluster(cfg, dashboard)


def _subprocess_cluster(cfg: DaskConfig, dashboard: str | None) -> Any:
    """Start a SpecCluster: scheduler in-process, each worker a fresh interpreter."""
    from distributed import Scheduler, SpecCluster
    from distributed.deploy.subprocess import SubprocessWorker

    worker = {
        "cls": SubprocessWorker,
        "options": {
            "worker_class": "distributed.Nanny",
            "worker_kwargs": {
                "host": "127.0.0.1",
                "nthreads": cfg.threads_per_worker,
                "memory_limit": cfg.memory_limit,
                "silence_logs": logging.WARNING,
            },
        },
    }
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": "127.0.0.1",
            "port": 0,
            "dashboard": dashboard is not None,
            "dashboard_address": dashboard or ":0",
        },
    }
    cluster = SpecCluster(
        workers={i: worker for i in range(cfg.n_workers)},
        scheduler=scheduler,
        worker=worker,
        name="eeflow-subprocess",
        silence_logs=logging.WARNING,
    )
    cluster.wait_for_workers(cfg.n_workers, timeout=START_TIMEOUT_S)
    return cluster
