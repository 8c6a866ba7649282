"""Where a local Dask cluster's workers run, and what a failed start says."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tasks.config.common import ConfigError, DaskConfig, load_config
from tasks.dask_cluster import resolve_worker_kind

REPO = Path(__file__).resolve().parents[2]

# A host program whose entry point cannot be imported again by a spawned child: what the
# `airflow` entry point does inside an Airflow task (its metadata DB URL is blocked there).
HOST = textwrap.dedent('''
    import sys
    if __name__ == "__mp_main__":
        raise RuntimeError("this entry point cannot be imported by a spawned child")
    if __name__ == "__main__":
        import dask.array as da
        from tasks.config.common import DaskConfig
        from tasks.dask_cluster import DaskClusterError, dask_client
        try:
            with dask_client(DaskConfig(workers=sys.argv[1], n_workers=2,
                                        memory_limit="1GiB")) as client:
                workers = len(client.scheduler_info()["workers"])
                print("RESULT", da.ones(100, chunks=10).sum().compute(), workers)
        except DaskClusterError as err:
            print("ERROR", err)
''')


def test_auto_picks_subprocess_workers_inside_an_airflow_task(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert resolve_worker_kind(DaskConfig())[0] == "processes"
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "polar_training")
    kind, why = resolve_worker_kind(DaskConfig())
    assert kind == "subprocess" and "Airflow task" in why
    # an explicit choice always wins
    assert resolve_worker_kind(DaskConfig(workers="threads"))[0] == "threads"
    assert resolve_worker_kind(DaskConfig(workers="processes"))[0] == "processes"


def test_workers_key_is_validated(tmp_path):
    path = tmp_path / "polar.yaml"
    path.write_text("use_case: polar\ndask: {workers: forks}\n")
    with pytest.raises(ConfigError, match=r"dask\.workers.*forks"):
        load_config(path)


def _host(tmp_path: Path, kind: str) -> str:
    script = tmp_path / "host.py"
    script.write_text(HOST)
    proc = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
    return next((ln for ln in proc.stdout.splitlines() if ln.startswith(("RESULT", "ERROR"))),
                f"no result: {proc.stdout}\n{proc.stderr[-2000:]}")


@pytest.mark.integration
def test_spawned_workers_fail_with_the_real_cause_and_subprocess_workers_start(tmp_path):
    failed = _host(tmp_path, "processes")
    assert failed.startswith("ERROR"), failed
    assert "re-imports this program's entry point" in failed
    assert "this entry point cannot be imported by a spawned child" in failed
    assert "dask.workers: subprocess" in failed and "Nanny failed" in failed
    # the same host with fresh-interpreter workers computes on two of them
    assert _host(tmp_path, "subprocess") == "RESULT 100.0 2"
