import datetime as dt
import http.server
import json
import threading
import urllib.parse
from pathlib import Path

import pytest

from tasks.sentinel1.cdse import (
    CatalogueError,
    aoi_overlaps,
    build_cdse_filter,
    build_cdse_url,
    download_product,
    parse_products,
    search_cdse,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "eodag"


def _load(name):
    return json.loads((DATA / name).read_text())


def test_filter_uses_the_real_odata_syntax():
    f = build_cdse_filter(dt.date(2026, 1, 15), aoi_bbox=(-10, 76, 30, 81))
    assert f.startswith("Collection/Name eq 'SENTINEL-1' and ")
    assert (
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        "att/OData.CSC.StringAttribute/Value eq 'EW_GRDM_1S')"
    ) in f
    assert "ContentDate/Start ge 2026-01-15T00:00:00.000Z" in f
    assert "ContentDate/Start lt 2026-01-16T00:00:00.000Z" in f
    assert "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON ((-10 76, 30 76, 30 81" in f
    url = build_cdse_url("https://catalogue.dataspace.copernicus.eu/odata/v1/Products", f, top=5)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["$filter"] == [f] and query["$top"] == ["5"]


def test_parse_creodias_sentinel1_response():
    records = parse_products(_load("eodag_search_result_creodias.json"))
    assert len(records) == 10
    r = records[0]
    assert r.name.startswith("S1A_IW_GRDH_1SSV_20141004T005844")
    assert (r.mission, r.mode, r.product_type) == ("S1A", "IW", "GRD")
    assert r.start_time == dt.datetime(2014, 10, 4, 0, 58, 44, 620000, tzinfo=dt.UTC)
    assert r.footprint.bounds == pytest.approx((-105.359001, 27.233603, -102.414383, 29.394079))
    assert r.attributes["orbitDirection"] == "ASCENDING"
    assert r.download_url.endswith(f"Products({r.id})/$value")
    assert aoi_overlaps(r.footprint, (-106, 28, -104, 29))
    assert not aoi_overlaps(r.footprint, (0, 70, 10, 80))


def test_parse_cdse_response_and_errors():
    records = parse_products(_load("cop_dataspace_search.json"))
    assert [r.mission for r in records] == [None, None]  # Sentinel-2 names
    assert records[0].s3_path.startswith("/eodata/Sentinel-2/")
    with pytest.raises(CatalogueError, match="'value' list"):
        parse_products({"error": "x"})


def test_search_follows_next_links():
    page1 = _load("eodag_search_result_creodias.json")
    page2 = dict(page1, value=page1["value"][:2])
    page2.pop("@odata.nextLink")
    seen = []

    def fetch(url):
        seen.append(url)
        return page1 if len(seen) == 1 else page2

    records = search_cdse(
        "http://x/odata/v1/Products",
        dt.date(2014, 10, 4),
        mode="IW",
        product_type="IW_GRDH_1S",
        max_products=11,
        fetch=fetch,
    )
    assert len(seen) == 2 and seen[1] == page1["@odata.nextLink"]
    assert len(records) == 11
    assert records == sorted(records, key=lambda r: r.start_time)


def test_download_from_a_local_server(tmp_path, monkeypatch):
    payload = b"PK-not-really-a-zip" * 1000
    headers_seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            headers_seen["auth"] = self.headers.get("Authorization")
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        record = parse_products(_load("eodag_search_result_creodias.json"))[0]
        monkeypatch.delenv("CDSE_ACCESS_TOKEN", raising=False)
        with pytest.raises(CatalogueError, match="CDSE_ACCESS_TOKEN"):
            download_product(record, tmp_path)
        path = download_product(
            record, tmp_path, token="t0k", url=f"http://127.0.0.1:{server.server_port}/p"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert path.read_bytes() == payload and path.name == record.name.removesuffix(".SAFE") + ".zip"
    assert headers_seen["auth"] == "Bearer t0k"
