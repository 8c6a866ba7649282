"""Download throughput: eeflow's downloader (resume/retry/checksum) vs curl, same file, same run.

A local ThreadingHTTPServer on 127.0.0.1 serves a random file of ``--mib`` MiB from memory; each
tool fetches it ``--repeat`` times (best time kept). eeflow verifies a BLAKE3 checksum (as for CDSE
OData products); curl only writes. Headline ratio: eeflow without the checksum (the same work as
curl) / curl, best times (> 1: eeflow faster); the BLAKE3 run is an extra row. MiB per CPU-s
divide by user + system time (eeflow in-process; curl as a waited-for child). Prints the summary
line and writes bench/results/download.json.

    .venv/bin/python bench/download.py --mib 256 --repeat 3 [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, add_quick_flag, report  # noqa: E402

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
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.mib, args.repeat = 32, 1
    from blake3 import blake3

    payload = os.urandom(args.mib << 20)
    digest = blake3(payload).hexdigest()
    httpd, url = serve(payload)
    curl = shutil.which("curl")
    eeflow_s, eeflow_nocheck_s, curl_s = [], [], []
    cpu: dict[str, list[float]] = {"eeflow_blake3": [], "eeflow_no_checksum": [], "curl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            target = Path(tmp) / "e.zip"
            with Timer() as timer:
                download(url, target, settings=DownloadConfig(), expected_size=len(payload),
                         checksums={"blake3": digest})
            eeflow_s.append(timer.wall_s)
            cpu["eeflow_blake3"].append(timer.cpu_s)
            target.unlink()
            with Timer() as timer:
                download(url, target, settings=DownloadConfig(), expected_size=len(payload))
            eeflow_nocheck_s.append(timer.wall_s)
            cpu["eeflow_no_checksum"].append(timer.cpu_s)
            target.unlink()
            if curl:
                with Timer() as timer:
                    subprocess.run([curl, "-sS", "-o", str(Path(tmp) / "c.zip"), url],
                                   check=True)
                curl_s.append(timer.wall_s)
                cpu["curl"].append(timer.cpu_s)
    httpd.shutdown()
    mib = float(args.mib)
    result = {
        "file_mib": args.mib, "repeat": args.repeat,
        "eeflow_blake3_mib_s": round(mib / min(eeflow_s), 1),
        "eeflow_no_checksum_mib_s": round(mib / min(eeflow_nocheck_s), 1),
        "curl_mib_s": round(mib / min(curl_s), 1) if curl_s else None,
        "mib_per_cpu_s": {k: round(mib / min(v), 1) for k, v in cpu.items() if v and min(v) > 0},
        "note_cpu": "eeflow's CPU includes the local server thread serving the file",
    }
    if curl_s:
        result["ratio_eeflow_blake3_vs_curl"] = round(min(curl_s) / min(eeflow_s), 2)
        result["ratio_eeflow_no_checksum_vs_curl"] = round(min(curl_s) / min(eeflow_nocheck_s), 2)
    out = report("download", result.get("ratio_eeflow_no_checksum_vs_curl"),
                 "none (measured)", None, result,
                 baseline="curl -o of the same file from the same server (no checksum)",
                 quick=args.quick)
    print(f"download {args.mib} MiB from 127.0.0.1: eeflow {result['eeflow_blake3_mib_s']} MiB/s "
          f"with BLAKE3 check ({result['eeflow_no_checksum_mib_s']} without), curl "
          f"{result['curl_mib_s']} MiB/s; ratio {result.get('ratio_eeflow_blake3_vs_curl')} "
          f"-> {out}")


if __name__ == "__main__":
    main()
