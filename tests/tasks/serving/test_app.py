from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr
from fastapi.testclient import TestClient

from tasks.serving.app import create_app
from tasks.serving.keys import ApiKeyStore
from tasks.serving.request_log import read_records
from tests.tasks.serving.serving_fixtures import RUN_DATE, serving_config

BANDS = ["HH", "HV", "incidence"]


class FakeProducer:
    """Records what a confluent_kafka.Producer would send."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.flushed = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.messages.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self) -> int:
        self.flushed += 1
        return 0


@pytest.fixture()
def service(serving_root: Path, tmp_path: Path, no_tracking_env: None) -> dict[str, Any]:
    """App + keys of both projects; keys and request log under this test's tmp_path."""
    producer = FakeProducer()
    cfg = serving_config(serving_root, keys_file=str(tmp_path / "keys.sqlite"),
                         request_log={"folder": str(tmp_path / "log"),
                                      "sinks": ["jsonl", "parquet", "kafka"],
                                      "parquet_flush_records": 3})
    app = create_app(cfg, kafka_producer=producer)
    store = ApiKeyStore(tmp_path / "keys.sqlite")
    polar_key, _ = store.create("polar")
    crops_key, _ = store.create("food-security")
    with TestClient(app) as client:
        yield {"client": client, "cfg": cfg, "store": store, "producer": producer,
               "polar": {"X-API-Key": polar_key}, "crops": {"X-API-Key": crops_key},
               "log": tmp_path / "log"}


def patches(trained_models: dict[str, Path], n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Raw patches (n, 3, 32, 32) and five-class codes of the polar training set."""
    meta = json.loads((trained_models["polar"] / "model.json").read_text())
    group = zarr.open_group(meta["dataset_path"], mode="r")
    return np.asarray(group["x"][:n], np.float32), np.asarray(group["y"][:n])


def records(log: Path) -> list[dict[str, Any]]:
    return list(read_records(log, "jsonl"))


def test_models_versions_and_metadata_of_the_key_project(service) -> None:
    client = service["client"]
    response = client.get("/v1/models", headers=service["polar"])
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["project"] == "polar" and [m["model"] for m in listing["models"]] == ["sea-ice"]
    versions = listing["models"][0]["versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["production"]),
                                                                 (2, ["staging"])]
    assert versions[1]["metrics"]["val_acc"] == 0.1 and "val_acc" in versions[0]["metrics"]
    meta = client.get("/v1/models/sea-ice/versions/production", headers=service["polar"]).json()
    assert meta["version"] == 1 and meta["classes"] == ["water", "ice"]
    assert meta["input"]["shape"] == ["n", 3, 32, 32] and meta["input"]["bands"] == BANDS
    assert meta["training_config"]["hyperparameters"]["width_multiplier"] == 0.25
    assert meta["training_class_counts"] == [32, 128]  # code 1 = water, 2..5 = ice
    crops = client.get("/v1/models/crop-type/versions/1", headers=service["crops"]).json()
    assert crops["input"]["shape"] == ["n", 12, 10] and crops["training_class_counts"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/models/{name}/versions/{ref}/predict" in paths


def test_polar_prediction_equals_the_training_pipeline(service, trained_models) -> None:
    from tasks.datasets.ice_patches import IcePatchDataModule
    from tasks.polar.train import load_model

    x, _ = patches(trained_models)
    response = service["client"].post(
        "/v1/models/sea-ice/versions/1/predict", headers=service["polar"],
        json={"bands": BANDS, "inputs": x.tolist(), "return_probabilities": True})
    assert response.status_code == 200, response.text
    body = response.json()
    # reference: the training data module's normalisation and the trained network
    model = load_model(trained_models["polar"])
    module = IcePatchDataModule(Path(model.meta["dataset_path"]), class_scheme="binary")
    normalised, _, _ = module.load_arrays()
    with torch.no_grad():
        expected = torch.softmax(model.net(torch.from_numpy(normalised[:10])), 1).numpy()
    assert body["class_index"] == expected.argmax(1).tolist()
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-5)
    assert body["predictions"] == [["water", "ice"][i] for i in body["class_index"]]
    b64 = service["client"].post(
        "/v1/models/sea-ice/predict", headers=service["polar"],
        json={"bands": BANDS, "inputs_b64": base64.b64encode(x.tobytes()).decode(),
              "shape": list(x.shape), "dtype": "float32"})
    assert b64.status_code == 200 and b64.json()["class_index"] == body["class_index"]


def test_crop_prediction_equals_classify_pixels(service, trained_models) -> None:
    from tasks.food_security.predict import classify_pixels, load_crop_model

    meta = json.loads((trained_models["food_security"] / "model.json").read_text())
    store = zarr.open_group(str(Path(meta["samples_dir"]) / "val.zarr"), mode="r")
    series = np.asarray(store["x"][:20], np.float32)
    response = service["client"].post("/v1/models/crop-type/predict", headers=service["crops"],
                                      json={"bands": meta["bands"], "inputs": series.tolist()})
    assert response.status_code == 200, response.text
    module, _ = load_crop_model(trained_models["food_security"])
    classes, confidence = classify_pixels(module, series, batch_size=7)
    assert response.json()["class_index"] == classes.tolist()
    np.testing.assert_allclose(response.json()["confidence"], confidence, atol=1e-5)
    assert RUN_DATE  # the year the model was trained on


def test_keys_missing_wrong_project_revoked_expired(service) -> None:
    client, store = service["client"], service["store"]
    missing = client.get("/v1/models")
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["message"]
    malformed = client.get("/v1/models", headers={"X-API-Key": "secret"})
    assert malformed.status_code == 401 and "malformed" in malformed.json()["message"]
    key_id = service["polar"]["X-API-Key"].split("_")[1]
    forged = client.get("/v1/models", headers={"X-API-Key": f"eef_{key_id}_forged"})
    assert forged.status_code == 401 and "wrong secret" in forged.json()["message"]
    other = client.get("/v1/models/crop-type", headers=service["polar"])
    assert other.status_code == 403
    assert "belongs to project 'food-security'" in other.json()["message"]
    forbidden = client.post("/v1/models/crop-type/predict", headers=service["polar"],
                            json={"bands": [], "inputs": [[0]]})
    assert forbidden.status_code == 403
    assert client.get("/v1/models/nope", headers=service["polar"]).status_code == 404
    expired_key, _ = store.create("polar", expires_at=dt.datetime.now(dt.UTC)
                                  - dt.timedelta(seconds=1))
    expired = client.get("/v1/models", headers={"X-API-Key": expired_key})
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    assert client.get("/v1/models", headers=service["polar"]).status_code == 200
    store.revoke(key_id)
    revoked = client.get("/v1/models", headers=service["polar"])
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]
    logged = records(service["log"])
    assert [r["status"] for r in logged] == [401, 401, 401, 403, 403, 404, 401, 200, 401]
    assert all(r["outcome"] == "rejected" for r in logged if r["status"] >= 400)
    text = json.dumps(logged)
    assert service["polar"]["X-API-Key"] not in text and expired_key not in text


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"bands": ["HH", "HV", "incidence"], "inputs": [[[', 422, "not valid JSON"),
    (b"[1, 2]", 422, "request body is invalid"),
    ({"bands": BANDS}, 422, "exactly one of 'inputs'"),
    ({"bands": BANDS, "inputs": np.zeros((2, 3, 20, 20)).tolist()}, 422,
     "shape [2, 3, 20, 20] does not match the model's ['n', 3, 32, 32]"),
    ({"bands": ["HV", "HH", "incidence"], "inputs": np.zeros((1, 3, 32, 32)).tolist()}, 422,
     "order ['HV', 'HH', 'incidence'] differs from the model's ['HH', 'HV', 'incidence']"),
    ({"bands": ["VV", "VH", "incidence"], "inputs": np.zeros((1, 3, 32, 32)).tolist()}, 422,
     "do not match the model's bands"),
    ({"bands": BANDS, "inputs": [[["a"] * 32] * 3]}, 422, "values must be numbers"),
    ({"bands": BANDS, "inputs": [[[0.0] * 32] * 3, [[0.0] * 31] * 3]}, 422, "ragged"),
    ({"bands": BANDS, "inputs": np.zeros((65, 3, 1, 1)).tolist()}, 422, "limit of 64"),
    ({"bands": BANDS, "inputs_b64": "!!", "shape": [1, 3, 32, 32]}, 422, "not valid base64"),
    ({"bands": BANDS, "inputs_b64": "AAAA", "shape": [1, 3, 32, 32]}, 422, "needs 12288"),
    ({"bands": BANDS, "inputs_b64": "AAAA", "shape": [1, 3, 32, 32], "dtype": "int64"}, 422,
     "dtype: Input should be 'float32' or 'float64'"),
    ({"bands": BANDS, "inputs": [], "extra": 1}, 422, "extra: Extra inputs are not permitted"),
])
def test_bad_input_is_a_clear_4xx_and_not_a_success(service, body, status, message) -> None:
    client = service["client"]
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post("/v1/models/sea-ice/predict", headers=service["polar"], **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    (record,) = records(service["log"])
    assert record["outcome"] == "rejected" and record["status"] == status
    assert message in record["error"] and record["output_summary"] is None
    good = client.post("/v1/models/sea-ice/predict", headers=service["polar"],
                       json={"bands": BANDS, "inputs": np.zeros((1, 3, 32, 32)).tolist()})
    assert good.status_code == 200  # the service is still up


def test_nan_unknown_version_and_oversized_body(service) -> None:
    client, headers = service["client"], service["polar"]
    payload = '{"bands": ["HH", "HV", "incidence"], "inputs": ' + json.dumps(
        np.zeros((3, 3, 32, 32)).tolist()).replace("0.0", "NaN", 5) + "}"
    nan = client.post("/v1/models/sea-ice/predict", headers=headers, content=payload)
    assert nan.status_code == 422 and "items [0] hold NaN" in nan.json()["message"]
    unknown = client.post("/v1/models/sea-ice/versions/7/predict", headers=headers,
                          json={"bands": BANDS, "inputs": []})
    assert unknown.status_code == 404
    assert "no version or alias '7'; versions: [1, 2], aliases: ['production', 'staging']" in \
        unknown.json()["message"]
    alias = client.get("/v1/models/sea-ice/versions/canary", headers=headers)
    assert alias.status_code == 404
    big = client.post("/v1/models/sea-ice/predict", headers=headers, content=b" " * 2_000_001)
    assert big.status_code == 413 and "limits.max_body_bytes" in big.json()["message"]
    assert [r["status"] for r in records(service["log"])] == [422, 404, 404, 413]
    assert not any(r["outcome"] == "ok" for r in records(service["log"]))
    assert client.get("/health").json()["status"] == "ok"


def test_every_sink_logs_and_monitoring_reports_drift(service, trained_models) -> None:
    client, headers = service["client"], service["polar"]
    x, codes = patches(trained_models, 40)
    for start in (0, 20):
        response = client.post("/v1/models/sea-ice/predict", headers=headers,
                               json={"bands": BANDS, "inputs": x[start:start + 20].tolist()})
        assert response.status_code == 200
    client.post("/v1/models/sea-ice/predict", headers=headers, json={"bands": BANDS})
    summary = client.get("/v1/monitoring/summary", headers=headers).json()
    assert summary["project"] == "polar" and summary["requests"]["total"] == 3
    assert summary["requests"]["by_outcome"] == {"ok": 2, "rejected": 1}
    (entry,) = summary["models"]
    assert entry["model"] == "sea-ice" and entry["version"] == 1
    assert entry["requests"] == {"ok": 2, "rejected": 1} and entry["predicted_items"] == 40
    assert sum(entry["predicted"].values()) == 40
    assert set(entry["latency_ms"]) == {"p50", "p90", "p99"}
    assert entry["training"] == {"water": 32, "ice": 128}
    drift = entry["drift"]
    assert drift["available"] and drift["psi"] >= 0 and 0 <= drift["js_divergence"] <= 1
    # the same records in JSONL, Parquet (buffered parts) and on the Kafka topic
    jsonl = records(service["log"])
    parquet = list(read_records(service["log"], "parquet"))
    # parquet: the 3 records flushed by the summary; jsonl: also the summary request itself
    assert len(parquet) == 3 and len(jsonl) == 4 and jsonl[3]["path"] == "/v1/monitoring/summary"
    assert [r["output_summary"] for r in parquet] == [r["output_summary"] for r in jsonl[:3]]
    assert sorted(p.name.startswith("part-") for p in (service["log"] / "parquet").iterdir())
    client.get("/v1/models", headers=headers)
    messages = service["producer"].messages
    assert len(messages) == 5 and {m[0] for m in messages} == {"eeflow-serving-requests"}
    assert json.loads(messages[0][1])["output_summary"]["n"] == 20 and messages[0][2] == b"polar"
    crops = client.get("/v1/monitoring/summary", headers=service["crops"]).json()
    assert crops["requests"]["total"] == 0  # a project sees only its own requests


def test_folder_models_load_before_the_first_request(trained_models, tmp_path, no_tracking_env,
                                                     caplog) -> None:
    cfg = serving_config(tmp_path, models={
        "ice": {"project": "polar", "use_case": "polar", "source": "folder",
                "path": str(trained_models["polar"])},
        "broken": {"project": "polar", "use_case": "polar", "source": "folder",
                   "path": str(tmp_path / "no-model")}})
    app = create_app(cfg)
    models = app.state.service.catalog.models
    assert not models["ice"]._loaded
    key, _ = ApiKeyStore(tmp_path / "serving" / "api_keys.sqlite").create("polar")
    with caplog.at_level("WARNING", logger="tasks.serving.app"), TestClient(app) as client:
        assert list(models["ice"]._loaded) == [1]  # loaded at startup, before any request
        assert "model 'broken'" in caplog.text and "no-model" in caplog.text
        body = {"bands": BANDS, "inputs": np.zeros((1, 3, 32, 32)).tolist()}
        assert client.post("/v1/models/ice/predict", headers={"X-API-Key": key},
                           json=body).status_code == 200
        broken = client.post("/v1/models/broken/predict", headers={"X-API-Key": key}, json=body)
        assert broken.status_code >= 400 and "no-model" in broken.json()["message"]
