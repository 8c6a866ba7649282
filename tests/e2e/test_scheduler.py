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
import time

import pytest

from tasks.local_airflow import LocalAirflow, utc_today

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

FS = "food_security_agronomic_year"


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_trigger_schedule_and_backfill_under_the_scheduler(local_airflow: LocalAirflow):
    af = local_airflow
    root = af.home / "data"

    # 1. manual trigger with the defaults: the run's day is the day it was triggered (UTC)
    af.set_paused("polar_training", False)
    run_id = af.trigger("polar_training", {})
    [run] = af.wait_for_runs("polar_training", [run_id], timeout=600)
    assert run["state"] == "success" and run["run_type"] == "manual"
    day = dt.date.fromisoformat(run["run_after"][:10]).isoformat()
    harmonised = _manifest(root / "polar" / "harmonise" / day)
    assert harmonised["run_key"] == day and harmonised["counts"]["scenes"] == 1
    assert all(day.replace("-", "") in s for s in harmonised["inputs"]), harmonised["inputs"]
    models = list((root / "polar" / "models").iterdir())
    assert len(models) == 1
    card = json.loads((models[0] / "model.json").read_text())
    assert card["model"] == "adhoc_cnn" and card["patch_size"] == 20

    # 2. + 3. the scheduler's own daily run, and a backfill, at the same time
    af.set_paused("polar_ice_chart_daily", False)
    backfill_started = time.monotonic()
    af.backfill(FS, "2016-09-01", "2018-08-31", conf={"model": "lstm", "run_date": "2017-09-01"})
    [daily] = af.wait_for_runs("polar_ice_chart_daily", count=1, timeout=600)
    yesterday = (utc_today() - dt.timedelta(days=1)).isoformat()
    assert daily["run_type"] == "scheduled" and daily["state"] == "success"
    assert daily["data_interval_start"][:10] == yesterday
    published = root / "polar" / "published" / yesterday
    assert sorted(p.suffix for p in published.iterdir() if p.suffix in (".tif", ".png")) == [
        ".png", ".tif"]
    assert json.loads((published.parent / "latest.json").read_text())["day"] == yesterday
    assert _manifest(root / "polar" / "harmonise" / yesterday)["run_key"] == yesterday

    runs = af.wait_for_runs(FS, count=2, timeout=1200 - (time.monotonic() - backfill_started))
    assert sorted((r["run_type"], r["logical_date"][:10], r["state"]) for r in runs) == [
        ("backfill", "2016-09-01", "success"), ("backfill", "2017-09-01", "success")]
    keys = ["2016-09_2017-08", "2017-09_2018-08"]
    fs_root = root / "food_security"
    for stage in ("ingest", "harmonise", "samples", "predict", "evaluate"):
        assert sorted(p.name for p in (fs_root / stage).iterdir()) == keys, stage
    # contents: each year's composites were built from that year's scenes only
    for key in keys:
        first, last = int(key[:4]), int(key[8:12])
        manifest = _manifest(fs_root / "harmonise" / key)
        assert manifest.get("run_key", key) == key
        years = {int(y) for y in _acquisition_years(manifest["inputs"])}
        assert years and years <= {first, last}, (key, years)
    metrics = [json.loads((fs_root / "evaluate" / k / "metrics.json").read_text()) for k in keys]
    assert metrics[0] != metrics[1]  # two years computed, not the same year twice


def _acquisition_years(inputs) -> list[str]:
    """Years named by the dates (YYYYMMDD) in the input file names of a manifest."""
    import re

    text = json.dumps(inputs)
    return [m[:4] for m in re.findall(r"(?<!\d)(20\d{2})(?:0[1-9]|1[0-2])(?:[0-2]\d|3[01])(?!\d)",
                                      text)]
