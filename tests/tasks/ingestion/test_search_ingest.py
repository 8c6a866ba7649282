"""Search -> download -> checksum -> extract -> SAFE reader against recorded answers on 127.0.0.1;
STAC search through pystac-client; the sensor trigger's polling with asyncio."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from tasks.config.polar import PolarConfig
from tasks.ingestion.availability import Availability, poll_decision
from tasks.ingestion.credentials import MissingCredentialsError
from tasks.polar.ingest import check_polar_day, ingest_day, search_day
from tasks.sentinel1.safe import open_safe
from tasks.storage import read_manifest

from .conftest import EW_NAME, RECORDINGS, ew_product_page

TOKEN = "tok-SECRET-7f3a9c"  # a test value that must never be written anywhere
PRODUCT_ID = "0b5c3c36-1b4f-4b8f-9d64-4d1c9a8f2e11"
DAY = "2022-11-30"


def _cfg(server, **catalogue):
    return PolarConfig.model_validate({"ingest": {
        "source": "cdse_odata",
        "aoi_bbox": (80.0, 77.0, 100.0, 81.0),
        "catalogue": {"provider": "cop_dataspace",
                      "search_url": f"{server.base}/odata/v1/Products",
                      "download_url": f"{server.base}/download/{{id}}",
                      "download": {"backoff_s": 0.01, "chunk_bytes": 16384}, **catalogue},
    }})


def test_recorded_creodias_page_is_searched_and_iw_products_rejected(server):
    page = json.loads((RECORDINGS / "eodag_search_result_creodias.json").read_text())
    page.pop("@odata.nextLink")
    server.json_route("/odata/v1/Products", page)
    cfg = _cfg(server)
    cfg.ingest.aoi_bbox = None
    products, rejected = search_day(cfg, __import__("datetime").date(2014, 10, 4))
    assert products == [] and len(rejected) == 10
    assert all("mode IW" in r for r in rejected)
    query = server.requests[0][1]
    assert "operationalMode" in query and "EW_GRDM_1S" in query and "HH%26HV" in query


def test_search_download_checksum_extract_read(server, ew_zip, eeflow_home, monkeypatch, caplog):
    server.json_route("/odata/v1/Products", ew_product_page(ew_zip, PRODUCT_ID))
    server.routes[f"/download/{PRODUCT_ID}"] = ew_zip
    server.faults[f"/download/{PRODUCT_ID}"] = [("drop", len(ew_zip) // 3)]
    monkeypatch.setenv("CDSE_ACCESS_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    result = ingest_day(_cfg(server), DAY)
    out = Path(result["output_dir"])
    assert result["n_scenes"] == 1 and result["scenes"][0]["product"] == EW_NAME
    product = open_safe(out / EW_NAME)  # the extracted SAFE folder, read by the SAFE reader
    assert product.mode == "EW" and product.start_time.date().isoformat() == DAY
    assert not list(out.glob("*.zip"))
    manifest = read_manifest(out)
    fetched = manifest["fetched"][0]
    assert fetched["id"] == PRODUCT_ID and fetched["path"] == EW_NAME
    file = fetched["files"][0]
    assert file["checksum"]["verified"] and file["checksum"]["algorithm"] == "blake3"
    assert file["attempts"] == 2 and file["resumed_from"]
    downloads = [h for _, p, h in server.requests if p.startswith("/download/")]
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for h in downloads)
    text = (out / "manifest.json").read_text() + caplog.text
    assert TOKEN not in text


def test_missing_token_stops_before_search(server, eeflow_home, monkeypatch):
    monkeypatch.delenv("CDSE_ACCESS_TOKEN", raising=False)
    with pytest.raises(MissingCredentialsError, match="CDSE_ACCESS_TOKEN"):
        ingest_day(_cfg(server), DAY)
    assert server.requests == []


def test_stac_search_through_pystac_client(server):
    recorded = json.loads((RECORDINGS / "cdse_stac_s2_l2a.json").read_text())
    base = f"{server.base}/stac"
    landing = json.loads(json.dumps(recorded["landing"]).replace(
        "https://stac.dataspace.copernicus.eu/v1", base))
    server.json_route("/stac", landing)
    server.json_route("/stac/", landing)
    server.json_route("/stac/search", recorded["search"])
    from tasks.config.ingestion import CatalogueConfig
    from tasks.ingestion.stac import search_stac

    catalogue = CatalogueConfig(provider="cdse_stac", search_url=base, cloud_cover_max=100)
    from shapely.geometry import box

    products = search_stac(
        catalogue, collections=["sentinel-2-l2a"],
        start=__import__("datetime").datetime(2020, 7, 1, tzinfo=__import__("datetime").UTC),
        end=__import__("datetime").datetime(2020, 7, 5, 23, 59, tzinfo=__import__("datetime").UTC),
        area=box(9.0, 47.0, 9.1, 47.1), asset_keys=["B04_10m", "SCL_20m"],
    )
    assert len(products) == 4
    asset = products[0].assets[0]
    assert asset.href.startswith("https://zipper.dataspace.copernicus.eu/")  # s3 -> https alt
    assert asset.size > 0 and "sha3_256" in asset.checksums
    posts = [r for r in server.requests if r[0] == "POST"]
    assert len(posts) == 1


def test_poll_decision_is_pure():
    none = Availability(DAY, "bbox (1, 2, 3, 4)", 0)
    assert poll_decision(none, now=0, deadline=100, poll_s=30) == ("wait", 30)
    assert poll_decision(none, now=90, deadline=100, poll_s=30) == ("wait", 10)
    assert poll_decision(none, now=100, deadline=100, poll_s=30) == ("timeout", 0.0)
    assert poll_decision(Availability(DAY, "a", 1), now=0, deadline=1, poll_s=1)[0] == "found"
    assert none.message() == f"no scene for {DAY} over bbox (1, 2, 3, 4)"


def test_generator_source_needs_no_wait():
    availability = check_polar_day(PolarConfig(), __import__("datetime").date(2026, 1, 1))
    assert poll_decision(availability, now=0, deadline=0, poll_s=1)[0] == "found"


def _write_config(cfg: PolarConfig, path: Path) -> str:
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return str(path)


def _run_trigger(trigger):
    async def first_event():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first_event())


def test_trigger_times_out_with_no_scene_message(server, tmp_path):
    from operators.sensors import SceneAvailableTrigger

    server.json_route("/odata/v1/Products", {"value": []})
    path = _write_config(_cfg(server), tmp_path / "polar.yaml")
    trigger = SceneAvailableTrigger(path, {}, DAY, time.time() + 0.5, 0.2)
    assert SceneAvailableTrigger(**trigger.serialize()[1]).day == DAY
    event = _run_trigger(trigger)
    assert event["status"] == "timeout"
    assert event["message"].startswith(f"no scene for {DAY} over bbox (80.000, 77.000")
    searches = [r for r in server.requests if r[1].startswith("/odata/")]
    assert len(searches) >= 2  # polled more than once


def test_trigger_finds_the_scene(server, ew_zip, tmp_path):
    from operators.sensors import SceneAvailableTrigger

    server.json_route("/odata/v1/Products", ew_product_page(ew_zip, PRODUCT_ID))
    path = _write_config(_cfg(server), tmp_path / "polar.yaml")
    event = _run_trigger(SceneAvailableTrigger(path, {}, DAY, time.time() + 30, 5))
    assert event["status"] == "found" and event["names"] == [EW_NAME]
