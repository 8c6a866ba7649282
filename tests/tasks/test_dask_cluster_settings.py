"""Settings a local Dask cluster starts with (issue 17: worker overhead on 2 cores)."""

from __future__ import annotations

import os

import dask

from tasks.config.common import DaskConfig
from tasks.dask_cluster import (
    MALLOC_TRIM_ENV,
    QUIET_LOCAL_CLUSTER,
    dask_client,
    local_cluster_settings,
)


def test_settings_drop_the_malloc_trim_variable_and_dashboard_only_sampling() -> None:
    settings = local_cluster_settings(DaskConfig())
    environ = settings["distributed.nanny.pre-spawn-environ"]
    assert MALLOC_TRIM_ENV not in environ
    # the nanny's other variables stay (one BLAS / OpenMP thread per worker)
    assert environ["OMP_NUM_THREADS"] == 1
    assert settings["distributed.worker.profile.enabled"] is False
    with_dashboard = local_cluster_settings(DaskConfig(dashboard=True))
    assert not set(QUIET_LOCAL_CLUSTER) & set(with_dashboard)
    assert MALLOC_TRIM_ENV not in with_dashboard["distributed.nanny.pre-spawn-environ"]


def _worker_view() -> tuple[str | None, str | None, bool]:
    return (os.environ.get(MALLOC_TRIM_ENV), os.environ.get("OMP_NUM_THREADS"),
            bool(dask.config.get("distributed.worker.profile.enabled")))


def test_process_workers_start_with_the_settings_and_the_caller_keeps_its_own() -> None:
    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    with dask_client(DaskConfig(n_workers=1, workers="processes", memory_limit="1GiB")) as client:
        (view,) = client.run(_worker_view).values()
    assert view == (None, "1", False)
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before
    assert dask.config.get("distributed.worker.profile.enabled") is True
