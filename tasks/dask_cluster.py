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

A clean run prints no traceback. Two things used to print ``CommClosedError`` tracebacks at
shutdown: closing a ``subprocess`` cluster kills its worker processes (``SIGKILL``) while the
in-process scheduler may still read from or write to them, and distributed logs the broken stream
*with* its traceback (at INFO, or at ERROR for a cancelled read); and ``silence_logs`` only quiets
handlers attached to the ``distributed`` logger, while under the CLI (whose root logger is
configured first) distributed's records propagate to the root handler at INFO. So
:func:`dask_client` keeps this process's ``distributed`` logger at WARNING while a local cluster
runs (:data:`distributed_log_level`) and at CRITICAL once the stage's work is done and the cluster
closes. ``processes`` workers are first retired through the scheduler (each closes its own
connections); ``subprocess`` workers are not, because a ``dask spec`` process whose Nanny closes
gracefully logs a spurious "Worker process died unexpectedly" traceback on its own stderr, while a
killed one prints nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Literal

from tasks.config.common import DaskConfig
from tasks.errors import EeflowError, ErrorFamily

log = logging.getLogger(__name__)

WorkerKind = Literal["processes", "subprocess", "threads"]

#: Seconds a local cluster may take to bring up all of its workers.
START_TIMEOUT_S = 120
#: Seconds the workers get to retire gracefully before the cluster closes (then they are killed).
RETIRE_TIMEOUT_S = 20
#: Level of the ``distributed`` loggers of this process while a local cluster runs.
distributed_log_level = logging.WARNING
#: Dask settings of a local cluster without dashboard. The workers' statistical profiler (a
#: thread sampling every thread's stack every 10 ms) and the system monitor (psutil every
#: 500 ms) only feed the dashboard, and each of the five event loops (scheduler, nannies,
#: workers) ticks every 20 ms to detect blocking. An idle 2-worker cluster used 0.11 CPU-s per
#: second with the defaults and 0.02 with these; on 2 busy cores that is work taken from the
#: tasks, and it grows with the wall time. ``processes`` workers inherit the settings from the
#: nanny; ``subprocess`` workers read their own config.
QUIET_LOCAL_CLUSTER: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "200ms",
}
#: Environment variable distributed's nanny sets for its workers that a local cluster drops.
#: ``MALLOC_TRIM_THRESHOLD_=65536`` returns freed memory to the OS at once, and setting it
#: also turns off glibc's adaptive mmap threshold: every array above 128 KiB is then a fresh
#: ``mmap`` whose pages fault in (the kernel zeroes each 4 KiB page) and is unmapped when freed.
#: Tasks that allocate tiles of tens of MB (patch extraction, a zarr copy) then spent as much CPU
#: in the kernel as in user space: a 108 MB zarr copy on 2 workers took 1.0 CPU-s with it and
#: 0.55 without, patch extraction of the same scene 1.5-1.7 and 0.8-1.1. Without it the workers
#: use glibc's defaults, like any other Python process (and the in-process / threads paths).
MALLOC_TRIM_ENV = "MALLOC_TRIM_THRESHOLD_"


def local_cluster_settings(cfg: DaskConfig) -> dict[str, Any]:
    """Return the Dask settings :func:`dask_client` starts a local cluster of ``cfg`` with.

    :data:`QUIET_LOCAL_CLUSTER` without dashboard; the nanny's worker environment without
    :data:`MALLOC_TRIM_ENV` (``processes`` workers; ``subprocess`` workers read their own config).
    """
    import dask
    import distributed  # noqa: F401  # registers distributed's config defaults

    settings = {} if cfg.dashboard else dict(QUIET_LOCAL_CLUSTER)
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    if environ.pop(MALLOC_TRIM_ENV, None) is not None:
        settings["distributed.nanny.pre-spawn-environ"] = environ
    return settings


class DaskClusterError(EeflowError, RuntimeError):
    """A Dask cluster could not be started or reached; the message names the cause."""

    family = ErrorFamily.UNAVAILABLE


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
    closed on exit; ``address`` connects to a running scheduler; ``kubernetes`` creates the
    ``DaskCluster`` of :func:`tasks.kube.dask_cluster_spec` through dask-kubernetes (the
    ``kubernetes`` extra) and deletes it on exit; ``synchronous`` runs in the
    calling thread (debugging, tiny inputs). A local cluster runs with
    :func:`local_cluster_settings` (no dashboard-only sampling, glibc's own malloc settings).
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
        with _kube_cluster(cfg) as cluster, Client(cluster) as client:
            yield client
        return
    kind, why = resolve_worker_kind(cfg)
    if kind == "threads":
        log.info("Dask: local cluster, 1 in-process worker x %d threads (%s)",
                 cfg.n_workers * cfg.threads_per_worker, why)
    else:
        log.info("Dask: local cluster, %d %s worker(s) x %d thread(s), %s each (%s)",
                 cfg.n_workers, kind, cfg.threads_per_worker, cfg.memory_limit, why)
    with (
        dask.config.set(local_cluster_settings(cfg)),
        _quiet_distributed_logs() as logs,
        _local_cluster(cfg, kind) as cluster,
        Client(cluster) as client,
    ):
        if cfg.dashboard:
            log.info("Dask dashboard: %s", client.dashboard_link)
        client.register_plugin(ReportFailuresOnce())
        try:
            yield client
        finally:
            if kind == "processes":
                _retire_workers(client, cluster)
            # from here on only distributed's own close races can log (a scheduler stream read
            # cancelled, a write to a killed worker): not errors of this run
            logs.setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _kube_cluster(cfg: DaskConfig) -> Iterator[Any]:
    """Create the ``DaskCluster`` of :func:`tasks.kube.dask_cluster_spec`; delete it on exit."""
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as err:
        raise DaskClusterError(
            "dask.cluster is 'kubernetes' but dask-kubernetes is not installed; install the "
            "extra (pip install 'eeflow[kubernetes]'), or set dask.cluster: local / address"
        ) from err
    from tasks.kube import dask_cluster_spec

    spec = dask_cluster_spec(cfg)
    kube = cfg.kubernetes
    log.info("Dask: DaskCluster %s in namespace %s, %d worker(s) of %s (dask.cluster: kubernetes)",
             kube.name, kube.namespace, cfg.n_workers, kube.image)
    try:
        cluster = KubeCluster(custom_cluster_spec=spec, namespace=kube.namespace,
                              shutdown_on_close=True)
    except Exception as err:  # kr8s / operator errors: no API server, no CRD, no permission
        raise DaskClusterError(
            f"cannot create the DaskCluster {kube.name!r} in namespace {kube.namespace!r} "
            f"({type(err).__name__}: {err}); check that kubectl reaches the cluster, that the "
            "dask-kubernetes operator is installed (its DaskCluster CRD), and dask.kubernetes "
            "(render the spec with tasks.kube.dask_cluster_spec to inspect it)"
        ) from err
    with cluster:
        cluster.wait_for_workers(cfg.n_workers, timeout=START_TIMEOUT_S * 5)
        yield cluster


class _DropComputeFailed(logging.Filter):
    """Drop a worker's "Compute Failed" record (with the remote traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def _worker_plugin_base() -> type:
    from distributed.diagnostics.plugin import WorkerPlugin

    return WorkerPlugin


class ReportFailuresOnce(_worker_plugin_base()):  # type: ignore[misc]  # base imported lazily
    """Worker plugin: a failed task is reported once, by the client that raises it.

    Each worker of a local cluster otherwise logs every failed task at ERROR with its traceback
    on the shared stderr, before the client re-raises the same error (with its type and message:
    :class:`tasks.errors.EeflowError`) and the CLI / operator boundary reports it.
    """

    name = "eeflow-report-failures-once"

    def setup(self, worker: Any) -> None:
        """Install the filter on the worker process's ``distributed.worker`` logger."""
        logger = logging.getLogger("distributed.worker")
        if not any(isinstance(f, _DropComputeFailed) for f in logger.filters):
            logger.addFilter(_DropComputeFailed())


@contextlib.contextmanager
def _quiet_distributed_logs() -> Iterator[logging.Logger]:
    """Keep this process's ``distributed`` logger at :data:`distributed_log_level` meanwhile."""
    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(max(distributed_log_level, old))
    try:
        yield logger
    finally:
        logger.setLevel(old)


def _retire_workers(client: Any, cluster: Any) -> None:
    """Close every worker through the scheduler and wait for its process to end.

    Each worker then closes its own connections; closing the cluster afterwards kills nothing
    that is still talking to the scheduler.
    """
    import time

    try:
        workers = list(client.scheduler_info(n_workers=-1).get("workers", {}))
        if workers:
            client.sync(client.scheduler.retire_workers, workers=workers, close_workers=True,
                        callback_timeout=RETIRE_TIMEOUT_S)
    except Exception as err:  # best effort: closing the cluster kills what is left
        log.warning("Dask: workers not retired gracefully (%s: %s); closing the cluster kills "
                    "them", type(err).__name__, err)
        return
    deadline = time.monotonic() + RETIRE_TIMEOUT_S
    while time.monotonic() < deadline and any(
        _worker_alive(w) for w in getattr(cluster, "workers", {}).values()
    ):
        time.sleep(0.05)


def _worker_alive(worker: Any) -> bool:
    """Return True while a cluster's worker (a Nanny, or a ``dask spec`` process) still runs."""
    process = getattr(worker, "process", None)
    if process is not None and hasattr(process, "returncode"):  # SubprocessWorker
        return process.returncode is None
    return str(getattr(worker, "status", "closed")).rsplit(".", 1)[-1] not in {
        "closed", "closing", "failed", "closing_gracefully"}


@contextlib.contextmanager
def _local_cluster(cfg: DaskConfig, kind: WorkerKind) -> Iterator[Any]:
    """Start the local cluster of ``kind``; a failed start raises :class:`DaskClusterError`."""
    dashboard = ":0" if cfg.dashboard else None
    try:
        cluster = _start_local_cluster(cfg, kind, dashboard)
    except Exception as err:  # distributed raises bare RuntimeError/TimeoutError here
        failure = f"{type(err).__name__}: {str(err).rstrip('.')}"
        cause = main_reimport_error() if kind == "processes" else None
        if cause is not None:
            raise DaskClusterError(
                f"the Dask local cluster ({cfg.n_workers} processes workers) did not start "
                f"({failure}): a spawned worker re-imports this program's entry point "
                f"{cause[0]}, and that fails with {cause[1]}. Set dask.workers: subprocess (or "
                "threads, or auto, which picks subprocess inside Airflow tasks)"
            ) from err
        raise DaskClusterError(
            f"the Dask local cluster ({cfg.n_workers} {kind} workers) did not start: {failure}. "
            f"Check that dask.memory_limit={cfg.memory_limit!r} fits the free memory and that "
            "ports on 127.0.0.1 are free; the worker's own error is on stderr above"
        ) from err
    with cluster:
        yield cluster


def main_reimport_error(timeout: float = 120) -> tuple[str, str] | None:
    """Return (entry point, error) when a ``spawn`` child cannot re-import ``__main__``, else None.

    ``multiprocessing``'s spawn start method runs the parent's main script again in each child
    (as ``__mp_main__``). Under an Airflow task that is the ``airflow`` entry point, which fails
    there; this probe replays that import in a fresh interpreter to name the real cause.
    """
    import subprocess
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path:
        return None
    probe = ("import runpy, sys; sys.argv = [sys.argv[1]]; "
             "runpy.run_path(sys.argv[0], run_name='__mp_main__')")
    try:
        proc = subprocess.run([sys.executable, "-c", probe, path], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln and not ln.startswith(" ")]
    return path, (lines[-1] if lines else f"exit status {proc.returncode}")


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
            silence_logs=distributed_log_level,
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
