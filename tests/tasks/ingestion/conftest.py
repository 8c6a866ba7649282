"""A local HTTP server on 127.0.0.1 serving recorded catalogue answers and product files.

Routes are static bodies (Range requests answered with 206) or callables; ``faults`` queues
one-shot misbehaviours per path: ``("drop", n)`` sends the full Content-Length but only ``n``
bytes and closes, ``("status", code, retry_after)`` answers an error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
RECORDINGS = DATA / "catalogue_recordings"
EW_NAME = "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE"
EW_SAFE = DATA / "s1_ew_grd" / EW_NAME


class LocalServer:
    """Routes + fault queue + request log, behind a ThreadingHTTPServer."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes | Callable[[Any], tuple[int, dict[str, str], bytes]]] = {}
        self.faults: dict[str, list[tuple]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                body_in = self.rfile.read(length) if length else b""
                queue = server.faults.get(path) or []
                fault = queue.pop(0) if queue else None
                route = server.routes.get(path)
                if route is None:
                    self._send(404, {}, b"not found")
                    return
                if fault and fault[0] == "status":
                    headers = {"Retry-After": str(fault[2])} if fault[2] is not None else {}
                    self._send(fault[1], headers, b"busy")
                    return
                if callable(route):
                    status, headers, data = route(body_in)
                    self._send(status, headers, data)
                    return
                data, status, headers = route, 200, {"Accept-Ranges": "bytes"}
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self._send(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
                        return
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    data, status = data[start:], 206
                if fault and fault[0] == "drop":
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: fault[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, headers, data)

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def json_route(self, path: str, payload: Any) -> None:
        """Serve ``payload`` as JSON at ``path`` (GET or POST)."""
        body = json.dumps(payload).encode()
        self.routes[path] = lambda _body: (200, {"Content-Type": "application/json"}, body)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip ``folder`` as ``<name>/...`` (the layout of a product zip)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, str(path.relative_to(folder.parent)))
    return target


def ew_product_page(zip_bytes: bytes, product_id: str) -> dict[str, Any]:
    """An OData page for the EW GRDM fixture, built on a real CREODIAS record.

    The record's structure and attribute list come from the recorded CREODIAS answer; identity,
    dates, footprint, EW/HH&HV attributes, size and checksums are set from the real EW GRDM SAFE
    in tests/data (zipped by the test), so search -> download -> checksum -> extract -> reader
    runs on one consistent product.
    """
    from blake3 import blake3

    from tasks.sentinel1.safe import open_safe

    page = json.loads((RECORDINGS / "eodag_search_result_creodias.json").read_text())
    record = json.loads(json.dumps(page["value"][0]))
    product = open_safe(EW_SAFE)
    footprint = product.footprint
    record.update(
        Id=product_id,
        Name=EW_SAFE.name,
        ContentLength=len(zip_bytes),
        Checksum=[
            {"Value": hashlib.md5(zip_bytes).hexdigest(), "Algorithm": "MD5"},
            {"Value": blake3(zip_bytes).hexdigest(), "Algorithm": "BLAKE3"},
        ],
        ContentDate={"Start": "2022-11-30T01:43:42.546Z", "End": "2022-11-30T01:44:46.000Z"},
        Footprint=f"geography'SRID=4326;{footprint.wkt}'",
        GeoFootprint=json.loads(json.dumps(footprint.__geo_interface__)),
    )
    values = {"operationalMode": "EW", "polarisationChannels": "HH&HV",
              "productType": "EW_GRDM_1S", "swathIdentifier": "EW"}
    for attribute in record["Attributes"]:
        if attribute["Name"] in values:
            attribute["Value"] = values[attribute["Name"]]
    return {"@odata.context": page["@odata.context"], "value": [record]}


@pytest.fixture
def ew_zip(tmp_path: Path) -> bytes:
    work = tmp_path / "zipsrc"
    shutil.copytree(EW_SAFE, work / EW_SAFE.name)
    return zip_folder(work / EW_SAFE.name, tmp_path / "ew.zip").read_bytes()
