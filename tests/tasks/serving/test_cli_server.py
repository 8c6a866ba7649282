from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tasks.config.common import ConfigError, load_config
from tasks.serving.cli import app
from tasks.serving.monitoring import drift_reading, js_divergence, population_stability_index
from tasks.serving.request_log import read_records
from tests.support.serving import serving_server

REPO = Path(__file__).resolve().parents[3]


def write_config(path: Path, root: Path, tmp: Path, **extra: object) -> Path:
    data = {"use_case": "serving", "data_root": str(root),
            "keys_file": str(tmp / "keys.sqlite"),
            "request_log": {"folder": str(tmp / "log")},
            "models": {"sea-ice": {"project": "polar", "use_case": "polar"},
                       "crop-type": {"project": "food-security", "use_case": "food_security"}},
            **extra}
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args: str) -> dict | list:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_keys_cli_create_list_revoke(serving_root: Path, tmp_path: Path) -> None:
    config = str(write_config(tmp_path / "serving.yaml", serving_root, tmp_path))
    created = invoke("keys", "create", "--project", "polar", "--note", "ops", "--config", config)
    assert created["api_key"].startswith(f"eef_{created['key_id']}_")
    assert created["status"] == "active" and created["expires_at"] is None
    invoke("keys", "create", "--project", "food-security", "--expires-days", "30",
           "--config", config)
    listed = invoke("keys", "list", "--config", config)
    assert [k["project"] for k in listed] == ["polar", "food-security"]
    assert created["api_key"] not in json.dumps(listed)
    raw = (tmp_path / "keys.sqlite").read_bytes()
    assert created["api_key"].split("_", 2)[2].encode() not in raw  # only the hash is stored
    revoked = invoke("keys", "revoke", created["key_id"], "--config", config)
    assert revoked["status"] == "revoked"
    assert [k["status"] for k in invoke("keys", "list", "--project", "polar", "--config",
                                        config)] == ["revoked"]
    missing = CliRunner().invoke(app, ["keys", "revoke", "0123456789ab", "--config", config])
    assert missing.exit_code != 0 and "no API key with id '0123456789ab'" in str(missing.exception)


def test_serving_config_is_strict(tmp_path: Path) -> None:
    assert load_config(REPO / "configs" / "serving.yaml").server.port == 8090
    bad = write_config(tmp_path / "bad.yaml", tmp_path, tmp_path,
                       request_log={"sinks": ["kafka"]})
    with pytest.raises(ConfigError, match=r"request_log.sinks.*add 'jsonl' or 'parquet'"):
        load_config(bad)
    folder = write_config(tmp_path / "folder.yaml", tmp_path, tmp_path,
                          models={"x": {"project": "p", "use_case": "polar", "source": "folder"}})
    with pytest.raises(ConfigError, match="source 'folder' needs 'path'"):
        load_config(folder)
    typo = write_config(tmp_path / "typo.yaml", tmp_path, tmp_path, limits={"max_bach": 3})
    with pytest.raises(ConfigError, match=r"limits.max_bach.*allowed keys here: "
                                          r"\['max_batch', 'max_body_bytes'\]"):
        load_config(typo)


def test_drift_measures() -> None:
    assert population_stability_index([50, 50], [50, 50]) == pytest.approx(0.0)
    assert js_divergence([1, 0], [1, 0]) == pytest.approx(0.0, abs=1e-6)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0, abs=2e-3)
    # PSI of 30/70 vs 50/50: (0.5-0.3) ln(0.5/0.3) + (0.5-0.7) ln(0.5/0.7)
    expected = 0.2 * np.log(0.5 / 0.3) - 0.2 * np.log(0.5 / 0.7)
    assert population_stability_index([30, 70], [50, 50]) == pytest.approx(expected, rel=1e-3)
    assert drift_reading(0.05) == "stable" and drift_reading(0.3) == "major shift"
    with pytest.raises(ValueError, match="2 and 3 classes"):
        population_stability_index([1, 1], [1, 1, 1])


def test_real_uvicorn_server(serving_root: Path, tmp_path: Path) -> None:
    """``eeflow serve run`` on 127.0.0.1: docs, a prediction, bad input, clean shutdown, monitor."""
    config = str(write_config(tmp_path / "serving.yaml", serving_root, tmp_path))
    key = invoke("keys", "create", "--project", "polar", "--config", config)["api_key"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with serving_server(config, env) as url:
        assert "Swagger UI" in httpx.get(f"{url}/docs").text
        headers = {"X-API-Key": key}
        body = {"bands": ["HH", "HV", "incidence"],
                "inputs": np.full((4, 3, 32, 32), -20.0).tolist()}
        ok = httpx.post(f"{url}/v1/models/sea-ice/predict", headers=headers, json=body,
                        timeout=30)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 4
        bad = httpx.post(f"{url}/v1/models/sea-ice/predict", headers=headers,
                         content=b"{not json", timeout=10)
        assert bad.status_code == 422 and "not valid JSON" in bad.json()["message"]
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200  # still up
    logged = list(read_records(tmp_path / "log"))
    assert [(r["status"], r["outcome"]) for r in logged] == [(200, "ok"), (422, "rejected"),
                                                               (401, "rejected")]
    assert invoke("monitor", "--config", config)["requests"]["total"] == 3
    summary = invoke("monitor", "--project", "polar", "--config", config)
    assert summary["requests"]["by_outcome"] == {"ok": 1, "rejected": 1}  # 401: no project
    assert summary["models"][0]["predicted_items"] == 4 and summary["models"][0]["drift"]
