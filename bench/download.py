"""Download throughput: eeflow's downloader (resume/retry/checksum) vs curl, same file, same run.

A local ThreadingHTTPServer on 127.0.0.1 serves a random file of ``--mib`` MiB from memory; each
tool fetches it ``--repeat`` times (best time kept). eeflow verifies a BLAKE3 checksum (as for CDSE
OData products); curl only writes. Prints one line and writes bench/results/download.json.

    .venv/bin/python bench/download.py --mib 256 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.config.ingestion import DownloadConfig  # noqa: E402
from tasks.ingestion.download import download  # noqa: E402


def serve(payload: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            view = memoryview(payload)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for i in range(0, len(payload), 1 << 20):
                self.wfile.write(view[i:i + (1 << 20)])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/product.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from blake3 import blake3

    payload = os.urandom(args.mib << 20)
    digest = blake3(payload).hexdigest()
    httpd, url = serve(payload)
    curl = shutil.which("curl")
    eeflow_s, eeflow_nocheck_s, curl_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            target = Path(tmp) / "e.zip"
            t0 = time.perf_counter()
            download(url, target, settings=DownloadConfig(), expected_size=len(payload),
                     checksums={"blake3": digest})
            eeflow_s.append(time.perf_counter() - t0)
            target.unlink()
            t0 = time.perf_counter()
            download(url, target, settings=DownloadConfig(), expected_size=len(payload))
            eeflow_nocheck_s.append(time.perf_counter() - t0)
            target.unlink()
            if curl:
                t0 = time.perf_counter()
                subprocess.run([curl, "-sS", "-o", str(Path(tmp) / "c.zip"), url], check=True)
                curl_s.append(time.perf_counter() - t0)
    httpd.shutdown()
    mib = float(args.mib)
    result = {
        "file_mib": args.mib, "repeat": args.repeat,
        "eeflow_blake3_mib_s": round(mib / min(eeflow_s), 1),
        "eeflow_no_checksum_mib_s": round(mib / min(eeflow_nocheck_s), 1),
        "curl_mib_s": round(mib / min(curl_s), 1) if curl_s else None,
    }
    if curl_s:
        result["ratio_eeflow_blake3_vs_curl"] = round(min(curl_s) / min(eeflow_s), 2)
        result["ratio_eeflow_no_checksum_vs_curl"] = round(min(curl_s) / min(eeflow_nocheck_s), 2)
    out = Path(__file__).resolve().parent / "results" / "download.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"download {args.mib} MiB from 127.0.0.1: eeflow {result['eeflow_blake3_mib_s']} MiB/s "
          f"with BLAKE3 check ({result['eeflow_no_checksum_mib_s']} without), curl "
          f"{result['curl_mib_s']} MiB/s; ratio {result.get('ratio_eeflow_blake3_vs_curl')} "
          f"-> {out}")


if __name__ == "__main__":
    main()
