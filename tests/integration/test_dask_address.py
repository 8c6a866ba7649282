"""Dask ``address`` mode against a real ``dask scheduler`` and two ``dask worker`` processes.

The cluster runs as separate processes on 127.0.0.1, as the compose stack's dask-scheduler and
dask-worker services do; the config reaches it through ``$EEFLOW_DASK_ADDRESS`` (the variable the
compose file sets). The polar patches stage run on it must write the same training set as an
in-process (synchronous) run, and both workers must have computed part of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from tasks.net import free_port
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config, write_synthetic_scene

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def _dask_exe() -> str:
    exe = Path(sys.executable).with_name("dask")
    return str(exe) if exe.exists() else "dask"


@contextlib.contextmanager
def dask_processes(log_dir: Path, n_workers: int = 2) -> Iterator[str]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker`` processes; yield the address.

    Each process runs in its own folder ``{log_dir}/proc-{i}`` with its own ``TMPDIR`` in it
    (as on separate machines: a worker's temporary files are not the driver's); its output goes
    to ``{log_dir}/dask-{i}.log``.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH", "")]))}
    commands = [[_dask_exe(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--no-dashboard"]]
    commands += [[_dask_exe(), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                  "--nworkers", "1", "--memory-limit", "1GiB", "--no-dashboard",
                  "--name", f"worker-{i}"] for i in range(n_workers)]
    procs = []
    try:
        for i, cmd in enumerate(commands):
            log = (log_dir / f"dask-{i}.log").open("wb")
            home = log_dir / f"proc-{i}"
            (home / "tmp").mkdir(parents=True)
            procs.append(subprocess.Popen(cmd, env={**env, "TMPDIR": str(home / "tmp")},
                                          cwd=home, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=90)
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_patches_stage_on_a_scheduler_address_equals_a_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    from tasks.config.common import load_config
    from tasks.polar.patches import run_patches

    scene, labels = write_synthetic_scene(tmp_path / "scene", "S1A_EW_GRDM_TEST0", height=256,
                                          width=256, seed=0)
    patches = {"sizes": [32, 20], "tile_px": 64}
    local = run_patches(tiny_polar_config(tmp_path / "local", patches=patches), [scene], [labels])

    # the YAML a user would write; the address comes from the environment, as in compose
    data = tiny_polar_config(tmp_path / "remote", patches=patches).model_dump(mode="json")
    data["dask"] = {"cluster": "local"}
    config = tmp_path / "polar.yaml"
    config.write_text(yaml.safe_dump(data))
    (tmp_path / "logs").mkdir()
    with dask_processes(tmp_path / "logs") as address:
        monkeypatch.setenv("EEFLOW_DASK_ADDRESS", address)
        cfg = load_config(config)
        assert (cfg.dask.cluster, cfg.dask.address) == ("address", address)
        remote = run_patches(cfg, [scene], [labels])
        with Client(address) as client:
            done = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(done) == 2 and all(count > 0 for count in done.values()), done

    for size in (32, 20):
        a = zarr.open_group(str(local["datasets"][size]), mode="r")
        b = zarr.open_group(str(remote["datasets"][size]), mode="r")
        assert a["x"].shape == b["x"].shape and a["x"].shape[0] > 0
        np.testing.assert_array_equal(a["x"][:], b["x"][:])
        np.testing.assert_array_equal(a["y"][:], b["y"][:])
