"""The three ways users run eeflow, under the real scheduler (not ``airflow dags test``).

1. ``polar_training`` triggered over the REST API with an empty conf (the form's defaults);
2. ``polar_ice_chart_daily`` unpaused: the scheduler itself creates the run of the last complete
   day (catchup off) and charts that day;
3. a two-year backfill of ``food_security_agronomic_year`` whose conf carries a ``run_date``: each
   run still computes its own agronomic year.
Each check reads what the run wrote (manifests, charts), not only folder names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from tasks.cli.local_airflow import LocalAirflow, utc_today

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

FS = "food_security_agronomic_year"


def _shell(af: LocalAirflow, command: str) -> str:
    """Run ``command`` in bash after ``eval "$(eeflow airflow env ...)"``; fail on exit != 0."""
    bindir = Path(sys.executable).parent
    script = (f'export PATH="{bindir}:$PATH"; '
              f'eval "$(eeflow airflow env --home {af.home} --port {af.port})"; {command}')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")})
    assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_param_outside_its_schema_is_refused_with_one_clear_message(local_airflow):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "eeflow"), "airflow", "trigger", "polar_training",
         "--conf", '{"epochs": 0}', "--home", str(local_airflow.home),
         "--port", str(local_airflow.port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "epochs" in proc.stderr and "Traceback" not in proc.stderr
    assert not [r for r in local_airflow.runs("polar_training") if r["conf"].get("epochs") == 0]


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_trigger_schedule_and_backfill_under_the_scheduler(local_airflow: LocalAirflow):
    af = local_airflow
    root = af.home / "data"

    # 1. manual trigger with an empty conf: the run's day is its logical date
    af.set_paused("polar_training", False)
    models_dir = root / "polar" / "models"
    models_before = set(models_dir.iterdir()) if models_dir.exists() else set()
    run_id = af.trigger("polar_training", {}, logical_date="2026-01-14T06:00:00Z")
    [run] = af.wait_for_runs("polar_training", [run_id], timeout=600)
    assert run["state"] == "success" and run["run_type"] == "manual" and run["conf"] == {}
    day = "2026-01-14"
    harmonised = _manifest(root / "polar" / "harmonise" / day)
    assert harmonised["run_key"] == day and harmonised["counts"]["scenes"] == 1
    assert all("20260114" in s for s in harmonised["inputs"]), harmonised["inputs"]
    [model] = set(models_dir.iterdir()) - models_before
    card = json.loads((model / "model.json").read_text())
    assert card["architecture"] == "adhoc_cnn" and card["patch_size"] == 20

    # 2. + 3. the scheduler's own daily run, and a backfill, at the same time
    # as the README says: the plain airflow CLI in the environment `eeflow airflow env` prints
    _shell(af, "airflow dags unpause polar_ice_chart_daily")
    backfill_started = time.monotonic()
    conf = json.dumps({"model": "lstm", "run_date": "2017-09-01"})
    out = _shell(af, "eeflow airflow backfill food_security_agronomic_year --from-date 2016-09-01 "
                     f"--to-date 2018-08-31 --conf '{conf}' --home \"$EEFLOW_HOME\" "
                     "--port \"$AIRFLOW__API__PORT\"")
    assert "backfill" in out and "created" in out
    _shell(af, f"airflow dags unpause {FS}")  # backfill runs execute only while unpaused
    [daily] = af.wait_for_runs("polar_ice_chart_daily", count=1, timeout=600)
    yesterday = (utc_today() - dt.timedelta(days=1)).isoformat()
    assert daily["run_type"] == "scheduled" and daily["state"] == "success"
    assert daily["data_interval_start"][:10] == yesterday
    published = root / "polar" / "published" / yesterday
    assert sorted(p.suffix for p in published.iterdir() if p.suffix in (".tif", ".png")) == [
        ".png", ".tif"]
    assert json.loads((published.parent / "latest.json").read_text())["day"] == yesterday
    assert _manifest(root / "polar" / "harmonise" / yesterday)["run_key"] == yesterday

    ours = [r["dag_run_id"] for r in af.runs(FS) if r["run_type"] == "backfill"
            and r["logical_date"][:10] in ("2016-09-01", "2017-09-01")]
    runs = af.wait_for_runs(FS, ours, timeout=1200 - (time.monotonic() - backfill_started))
    assert sorted((r["run_type"], r["logical_date"][:10], r["state"]) for r in runs) == [
        ("backfill", "2016-09-01", "success"), ("backfill", "2017-09-01", "success")]
    keys = ["2016-09_2017-08", "2017-09_2018-08"]
    fs_root = root / "food_security"
    for stage in ("ingest", "harmonise", "samples", "predict", "evaluate"):
        assert set(keys) <= {p.name for p in (fs_root / stage).iterdir()}, stage
    # contents: each year's composites were built from that year's scenes only
    sums = []
    for key in keys:
        first, last = int(key[:4]), int(key[8:12])
        months = [f"{first}-{m:02d}" for m in range(9, 13)] + [f"{last}-{m:02d}"
                                                              for m in range(1, 9)]
        scenes = [p.name for p in (fs_root / "ingest" / key / "l2a").glob("*/*_L2A")]
        assert scenes and all(f"{first}0901" <= s.split("_")[2] <= f"{last}0831"
                              for s in scenes), (key, scenes[:3])
        composite = zarr.open_group(str(fs_root / "harmonise" / key / "33UVP.zarr"), mode="r")
        assert list(composite.attrs["months"]) == months
        sums.append(float(np.nansum(composite["reflectance"][:])))
    assert sums[0] != sums[1]  # two years computed, not the same year twice
    for key in keys:
        assert json.loads((fs_root / "evaluate" / key / "metrics.json").read_text())



def test_eeflow_airflow_trigger_waits_for_the_run(local_airflow: LocalAirflow):
    out = _shell(local_airflow, "airflow dags unpause linked_data && eeflow airflow trigger "
                 "linked_data --conf '{\"products\": [\"vocabulary\"]}' --wait "
                 "--home \"$EEFLOW_HOME\" --port \"$AIRFLOW__API__PORT\"")
    assert out.strip().splitlines()[-1].endswith(": success")
    graphs = local_airflow.home / "data" / "linked_data"
    assert any(graphs.rglob("*.nt")), "the vocabulary was exported"
