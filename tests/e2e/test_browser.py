"""A user in a browser (headless Chromium): log in, trigger from the form, start a backfill.

Debian's ``chromium`` is driven by Playwright through ``executable_path`` (no browser download).
Screenshots of each step are kept under ``$EEFLOW_TEST_ARTIFACTS`` (default:
``<pytest tmp>/screenshots``) as test artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tasks.cli.local_airflow import USER, LocalAirflow, ui_password

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(local_airflow: LocalAirflow, tmp_path_factory: pytest.TempPathFactory):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it (apt-get install "
                        "chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("EEFLOW_TEST_ARTIFACTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _login(page, af: LocalAirflow, shots: Path) -> None:
    page.goto(af.url)
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(ui_password(af.env))
    page.screenshot(path=shots / "01_login.png")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{af.url}/")


def _open_trigger_form(page, af: LocalAirflow, dag_id: str):
    page.goto(f"{af.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    return page.get_by_role("dialog")


def _pick_date(page, index: int, day: str) -> None:
    """Fill the ``index``-th date-time picker of the open form (UTC, midnight)."""
    page.get_by_test_id("datetime-input").nth(index).click()
    page.get_by_placeholder("YYYY/MM/DD").last.fill(day)
    page.get_by_placeholder("HH:mm").last.fill("00:00")
    page.keyboard.press("Enter")
    page.get_by_role("dialog").first.locator("h2, header").first.click()  # close the picker


def _new_runs(af: LocalAirflow, dag_id: str, before: set[str], run_type: str, count: int,
              timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in af.runs(dag_id)
                if r["run_type"] == run_type and r["dag_run_id"] not in before]
        if len(runs) >= count:
            return runs
        time.sleep(1)
    raise AssertionError(f"the form created no {run_type} run of {dag_id} in {timeout} s")


def test_trigger_from_the_form_with_defaults_and_one_changed_param(page, local_airflow, shots):
    af = local_airflow
    _login(page, af, shots)
    before = {r["dag_run_id"] for r in af.runs("polar_training")}
    dialog = _open_trigger_form(page, af, "polar_training")
    _pick_date(page, 0, "2026/01/14")  # the logical date: a day whose generated scene is known
    dialog.get_by_role("spinbutton").first.fill("2")  # epochs: the one number field of the form
    page.screenshot(path=shots / "02_trigger_form.png", full_page=True)
    trigger = dialog.get_by_role("button", name="Trigger")
    assert trigger.is_enabled(), "Trigger must be enabled with the form's defaults"
    trigger.click()
    [run] = _new_runs(af, "polar_training", before, "manual", 1)
    assert run["conf"].get("epochs") == 2 and run["conf"].get("model") is None
    assert run["logical_date"][:10] == "2026-01-14"
    [done] = af.wait_for_runs("polar_training", [run["dag_run_id"]], timeout=600)
    assert done["state"] == "success"
    page.goto(f"{af.url}/dags/polar_training/runs")
    page.get_by_text("success").first.wait_for()
    page.screenshot(path=shots / "03_training_run_success.png", full_page=True)
    cards = [json.loads((p / "model.json").read_text())
             for p in (af.home / "data" / "polar" / "models").iterdir()]
    assert any(c["hyperparameters"]["max_epochs"] == 2 and c["epochs_trained"] == 2
               for c in cards), "the form's epochs=2 must reach the training"


def test_backfill_of_two_agronomic_years_from_the_form(page, local_airflow, shots):
    af = local_airflow
    dag_id = "food_security_agronomic_year"
    before = {r["dag_run_id"] for r in af.runs(dag_id)}
    dialog = _open_trigger_form(page, af, dag_id)
    dialog.get_by_text("Backfill", exact=True).click()
    _pick_date(page, 0, "2019/09/01")
    _pick_date(page, 1, "2021/08/31")
    dialog.get_by_text("2 runs will be triggered").wait_for()
    page.screenshot(path=shots / "04_backfill_form.png", full_page=True)
    dialog.get_by_role("button", name="Run Backfill").click()
    runs = _new_runs(af, dag_id, before, "backfill", 2)
    assert sorted(r["logical_date"][:10] for r in runs) == ["2019-09-01", "2020-09-01"]
    page.goto(f"{af.url}/dags/{dag_id}/runs")
    page.get_by_text("backfill").first.wait_for()
    page.screenshot(path=shots / "05_backfill_runs.png", full_page=True)
    # the scheduler test backfills other years: stop this backfill (one per DAG at a time) and
    # its runs, which only needed to exist
    for backfill in af.api("GET", f"/backfills?dag_id={dag_id}")["backfills"]:
        if backfill["completed_at"] is None:
            af.api("PUT", f"/backfills/{backfill['id']}/cancel")
    for run in runs:
        if af.api("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")["state"] == "running":
            af.api("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
