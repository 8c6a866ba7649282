"""On-demand processing: /v1/process triggers DAG runs over Airflow's REST API (a fake here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from tasks.serving.app import create_app
from tasks.serving.keys import ApiKeyStore
from tasks.serving.process import ProcessRequest, run_dates
from tests.tasks.serving.serving_fixtures import serving_config

REGION = "POLYGON ((-20 75, 10 75, 10 82, -20 82, -20 75))"


class FakeAirflow(BaseHTTPRequestHandler):
    """Airflow 3's /auth/token and /api/v2 dagRuns endpoints, recording what it was sent."""

    runs: dict[str, dict] = {}
    tokens: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_POST(self) -> None:
        if self.path == "/auth/token":
            body = self._body()
            if body != {"username": "admin", "password": "s3cret"}:
                return self._json(401, {"detail": "Invalid credentials"})
            self.tokens.append("tok")
            return self._json(201, {"access_token": "tok"})
        if self.headers.get("Authorization") != "Bearer tok":
            return self._json(401, {"detail": "Not authenticated"})
        parts = self.path.split("/")  # /api/v2/dags/{dag}/dagRuns
        if parts[:4] == ["", "api", "v2", "dags"] and parts[5:] == ["dagRuns"]:
            body = self._body()
            if parts[4] not in ("polar_ice_chart_daily", "food_security_agronomic_year"):
                return self._json(404, {"detail": f"DAG {parts[4]} not found"})
            run = {"dag_id": parts[4], "dag_run_id": body["dag_run_id"], "conf": body["conf"],
                   "logical_date": body["logical_date"], "state": "queued"}
            self.runs[body["dag_run_id"]] = run
            return self._json(200, run)
        return self._json(404, {"detail": "no route"})

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer tok":
            return self._json(401, {"detail": "Not authenticated"})
        run_id = self.path.rsplit("/", 1)[-1]
        if run_id not in self.runs:
            return self._json(404, {"detail": f"DagRun {run_id} not found"})
        return self._json(200, self.runs[run_id])


@pytest.fixture()
def airflow(monkeypatch):
    FakeAirflow.runs, FakeAirflow.tokens = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("EEFLOW_AIRFLOW_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("EEFLOW_AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("EEFLOW_AIRFLOW_PASSWORD", "s3cret")
    yield FakeAirflow
    server.shutdown()
    server.server_close()


@pytest.fixture()
def service(tmp_path, no_tracking_env):
    cfg = serving_config(tmp_path)
    store = ApiKeyStore(cfg.under_root(cfg.keys_file))
    keys = {project: store.create(project)[0] for project in ("polar", "food-security")}
    with TestClient(create_app(cfg)) as client:
        yield client, keys, tmp_path


def _submit(client, key, **body):
    payload = {"use_case": "polar", "region": REGION, "window_start": "2026-02-01",
               "window_end": "2026-02-03", **body}
    return client.post("/v1/process", json=payload, headers={"X-API-Key": key})


def test_submit_triggers_one_run_per_day_and_reports_status_and_products(airflow, service):
    client, keys, root = service
    answer = _submit(client, keys["polar"], model="registry:production")
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["dag_id"] == "polar_ice_chart_daily" and job["project"] == "polar"
    assert [r["run_date"] for r in job["runs"]] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    sent = airflow.runs[job["runs"][1]["dag_run_id"]]
    assert sent["conf"] == {"region": REGION, "window_start": "2026-02-01",
                            "window_end": "2026-02-03", "run_date": "2026-02-02",
                            "model": "registry:production"}
    assert sent["logical_date"] is None and airflow.tokens == ["tok"]  # one token, reused
    job_id = job["job_id"]
    for run in job["runs"]:
        airflow.runs[run["dag_run_id"]]["state"] = "success"
    airflow.runs[job["runs"][0]["dag_run_id"]]["state"] = "running"
    status = client.get(f"/v1/process/{job_id}", headers={"X-API-Key": keys["polar"]}).json()
    assert status["state"] == "running"
    assert [r["state"] for r in status["runs"]] == ["running", "success", "success"]
    airflow.runs[job["runs"][0]["dag_run_id"]]["state"] = "success"
    # a published STAC item of one of the days is a result of the job
    item_dir = root / "catalogue" / "ice-charts" / "2026-02-02"
    item_dir.mkdir(parents=True)
    (item_dir / "ice-chart-2026-02-02.json").write_text(json.dumps(
        {"type": "Feature", "stac_version": "1.1.0", "id": "ice-chart-2026-02-02"}))
    headers = {"X-API-Key": keys["polar"]}
    assert client.get(f"/v1/process/{job_id}", headers=headers).json()["state"] == "success"
    results = client.get(f"/v1/process/{job_id}/results", headers=headers).json()
    assert [i["item"]["id"] for i in results["items"]] == ["ice-chart-2026-02-02"]
    # another project's key may not see the job
    other = client.get(f"/v1/process/{job_id}", headers={"X-API-Key": keys["food-security"]})
    assert other.status_code == 403 and "another project" in other.json()["message"]
    assert client.get(f"/v1/process/{job_id}").status_code == 401


def test_crop_jobs_run_once_per_agronomic_year(airflow, service):
    client, keys, _ = service
    job = _submit(client, keys["food-security"], use_case="food_security",
                  window_start="2017-10-01", window_end="2018-09-15", model="lstm").json()
    assert job["dag_id"] == "food_security_agronomic_year"
    assert [r["run_date"] for r in job["runs"]] == ["2017-10-01", "2018-09-01"]


@pytest.mark.parametrize(("body", "message"), [
    ({"region": "POLYGON ((0 0, 1 1"}, "WKT or GeoJSON"),
    ({"region": "/etc/passwd"}, "not a path"),
    ({"region": "POLYGON ((0 0, 400 0, 400 1, 0 0))"}, "lon/lat"),
    ({"window_end": "2026-01-01"}, "before window_start"),
    ({"window_end": "2026-06-01"}, "split it into several jobs"),
    ({"use_case": "food_security", "model": "resnet"}, "allowed: all, lstm"),
    ({"use_case": "linked_data"}, "use_case"),
    ({"window_start": "yesterday"}, "window_start"),
])
def test_bad_requests_are_422_with_a_message_and_trigger_nothing(airflow, service, body,
                                                                 message):
    client, keys, _ = service
    answer = _submit(client, keys["polar"], **body)
    assert answer.status_code == 422 and message in answer.json()["message"], answer.text
    assert airflow.runs == {}
    assert client.get("/health").status_code == 200


def test_unknown_job_and_missing_airflow(service, monkeypatch):
    client, keys, _ = service
    headers = {"X-API-Key": keys["polar"]}
    missing = client.get("/v1/process/0123456789abcdef", headers=headers)
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    for name in ("EEFLOW_AIRFLOW_URL", "EEFLOW_AIRFLOW_USERNAME", "EEFLOW_AIRFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    answer = _submit(client, keys["polar"])
    assert answer.status_code == 503 and "EEFLOW_AIRFLOW_URL" in answer.json()["message"]


def test_unreachable_airflow_is_503(service, monkeypatch):
    client, keys, _ = service
    monkeypatch.setenv("EEFLOW_AIRFLOW_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("EEFLOW_AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("EEFLOW_AIRFLOW_PASSWORD", "x")
    answer = _submit(client, keys["polar"])
    assert answer.status_code == 503 and "cannot reach Airflow" in answer.json()["message"]


def test_run_dates_and_request_model():
    from datetime import date

    assert run_dates("food_security", date(2017, 9, 1), date(2017, 9, 1)) == [date(2017, 9, 1)]
    req = ProcessRequest(use_case="polar", region=REGION, window_start="2026-02-01",
                         window_end="2026-02-01")
    assert req.model is None and run_dates("polar", req.window_start, req.window_end) == [
        date(2026, 2, 1)]


def test_openapi_lists_the_process_routes(service):
    client, _, _ = service
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/process", "/v1/process/{job_id}", "/v1/process/{job_id}/results"} <= set(paths)


def test_cli_submit_and_status(airflow, tmp_path):
    from typer.testing import CliRunner

    from tasks.cli.root import _register_subcommands, app

    if "process" not in {g.name for g in app.registered_groups}:
        _register_subcommands()
    config = tmp_path / "serving.yaml"
    config.write_text(f"use_case: serving\ndata_root: {tmp_path / 'data'}\n")
    (tmp_path / "area.wkt").write_text(REGION)
    runner = CliRunner()
    done = runner.invoke(app, ["process", "submit", "--use-case", "polar", "--region",
                               str(tmp_path / "area.wkt"), "--start", "2026-02-01", "--end",
                               "2026-02-02", "--config", str(config)])
    assert done.exit_code == 0, done.output
    job = json.loads(done.output)
    assert len(job["runs"]) == 2 and job["region"] == REGION
    shown = runner.invoke(app, ["process", "status", job["job_id"], "--config", str(config)])
    assert shown.exit_code == 0 and json.loads(shown.output)["state"] == "queued"
    unknown = runner.invoke(app, ["process", "status", "feedbeef", "--config", str(config)])
    assert unknown.exit_code == 1 and "not found" in unknown.output


def test_a_job_over_another_region_for_the_same_days_is_refused_unless_replace(airflow, service):
    client, keys, root = service
    first = _submit(client, keys["polar"]).json()  # 2026-02-01 .. 03 over REGION
    other = "POLYGON ((20 75, 21 75, 21 76, 20 76, 20 75))"
    refused = _submit(client, keys["polar"], region=other, window_start="2026-02-03",
                      window_end="2026-02-05")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "region_conflict"
    assert body["message"].startswith(
        f"polar products for 2026-02-03 were made over another region by earlier job(s) "
        f"{first['job_id']}; a day's products live under the day's run key")
    assert len(airflow.runs) == 3  # nothing was triggered for the refused job
    # another project's key: refused too, without naming that project's job
    crossed = _submit(client, keys["food-security"], region=other)
    assert crossed.status_code == 409 and first["job_id"] not in crossed.json()["message"]
    assert "earlier job(s) of another project" in crossed.json()["message"]
    # the same region again (a re-run), other days, or replace: true are accepted
    assert _submit(client, keys["polar"]).status_code == 202
    assert _submit(client, keys["polar"], region=other, window_start="2026-02-04",
                   window_end="2026-02-05").status_code == 202
    replaced = _submit(client, keys["polar"], region=other, window_start="2026-02-03",
                       window_end="2026-02-03", replace=True)
    assert replaced.status_code == 202 and replaced.json()["runs"][0]["run_date"] == "2026-02-03"


def test_a_region_outside_the_use_case_data_is_a_422_and_triggers_nothing(airflow, tmp_path,
                                                                          no_tracking_env):
    from tasks.serving.request_log import read_records

    fram_strait = "POLYGON ((-20 74, 40 74, 40 84, -20 84, -20 74))"
    cfg = serving_config(tmp_path, process={"coverage": {"polar": fram_strait}})
    key, _ = ApiKeyStore(cfg.under_root(cfg.keys_file)).create("polar")
    with TestClient(create_app(cfg)) as client:
        sahara = "POLYGON ((5 20, 10 20, 10 25, 5 25, 5 20))"
        refused = _submit(client, key, region=sahara)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "region_outside_data"
        assert refused.json()["message"] == (
            "region (lon/lat bbox (5.000, 20.000, 10.000, 25.000)) lies outside the polar data, "
            "which cover lon/lat bbox (-20.000, 74.000, 40.000, 84.000) (serving config "
            "process.coverage.polar); choose a region that overlaps it")
        assert airflow.runs == {} and not (tmp_path / "process" / "jobs").exists()
        # a region overlapping the coverage is accepted; a use case without coverage too
        assert _submit(client, key).status_code == 202
        assert client.get("/health").json()["status"] == "ok"
    logged = list(read_records(cfg.under_root(cfg.request_log.folder), "jsonl"))
    assert [(r["status"], r["outcome"]) for r in logged] == [(422, "rejected"), (202, "ok")]
    with pytest.raises(ValueError, match="coverage.food_security"):
        serving_config(tmp_path, process={"coverage": {"food_security": "POLYGON ((0 0"}})
