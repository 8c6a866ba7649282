"""Open the Dask client a stage computes with, from the ``dask`` config section."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from tasks.config.common import DaskConfig

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or ``None`` for the synchronous scheduler).

    ``local`` starts a LocalCluster with ``n_workers`` x ``threads_per_worker`` and a memory limit
    per worker, closed on exit; ``address`` connects to a running scheduler; ``kubernetes`` starts
    a dask-kubernetes ``KubeCluster`` (the package must be installed); ``synchronous`` runs in the
    calling thread (debugging, tiny inputs).
    """
    import dask

    if cfg.cluster == "synchronous":
        with dask.config.set(scheduler="synchronous"):
            yield None
        return
    from distributed import Client, LocalCluster

    if cfg.cluster == "address":
        log.info("connecting to Dask scheduler %s", cfg.address)
        with Client(cfg.address) as client:
            yield client
        return
    if cfg.cluster == "kubernetes":
        try:
            from dask_kubernetes.operator import KubeCluster
        except ImportError as err:
            raise RuntimeError(
                "dask.cluster is 'kubernetes' but dask-kubernetes is not installed; "
                "pip install dask-kubernetes, or use cluster: local / address"
            ) from err
        with (
            KubeCluster(name="eeflow", n_workers=cfg.n_workers) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    with (
        LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            memory_limit=cfg.memory_limit,
            processes=True,
            dashboard_address=":0" if cfg.dashboard else None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        if cfg.dashboard:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client
