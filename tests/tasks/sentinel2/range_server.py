"""A small HTTP server on 127.0.0.1 with range requests, counting the bytes it sends per file.

``http.server.SimpleHTTPRequestHandler`` ignores ``Range``; GDAL's ``/vsicurl/`` needs it to read a
COG window without fetching the whole file. Single ranges get ``206`` with ``Content-Range``;
several ranges get ``206 multipart/byteranges``; no ``Range`` gets the whole file (``200``).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"(\d*)-(\d*)")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serve files of ``directory`` with ``Range`` support; count bytes sent in ``sent``."""

    sent: Counter[str]
    requests: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        """Keep test output quiet."""

    def _ranges(self, size: int) -> list[tuple[int, int]] | None:
        header = self.headers.get("Range")
        if not header or not header.startswith("bytes="):
            return None
        out = []
        for part in header[len("bytes="):].split(","):
            match = _RANGE.fullmatch(part.strip())
            if not match:
                return None
            first, last = match.groups()
            if first == "":
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            if start <= end:
                out.append((start, end))
        return out

    def do_HEAD(self) -> None:  # stdlib name
        """Answer with the size and ``Accept-Ranges: bytes``."""
        self._serve(head=True)

    def do_GET(self) -> None:  # stdlib name
        """Answer with the file, one range or several ranges of it."""
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        size = len(data)
        self.requests.append((self.path, self.headers.get("Range")))
        ranges = self._ranges(size)
        if head or ranges is None:
            body = b"" if head else data
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
        elif not ranges:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        elif len(ranges) == 1:
            start, end = ranges[0]
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
        else:
            boundary = "eeflowrangeboundary"
            parts = []
            for start, end in ranges:
                parts.append(
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n".encode()
                    + data[start:end + 1] + b"\r\n"
                )
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            self.send_response(206)
            self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
        if body:
            self.wfile.write(body)
            self.sent[self.path] += len(body)


@contextmanager
def serve_directory(directory: Path) -> Iterator[tuple[str, Counter[str], list]]:
    """Serve ``directory`` on 127.0.0.1 (free port); yield (base URL, bytes sent, requests)."""
    sent: Counter[str] = Counter()
    requests: list[tuple[str, str | None]] = []
    handler = type("Handler", (RangeRequestHandler,), {"sent": sent, "requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
