"""Start and stop an Oxigraph SPARQL server (``oxigraph serve``, from the ``oxigraph`` package).

The server speaks SPARQL 1.1 Query (``/query``), Update (``/update``) and the Graph Store HTTP
Protocol (``/store``). Start one by hand with::

    eeflow rdf serve --config configs/linked_data.yaml          # store folder from the config
    oxigraph serve --location work/data/linked_data/server --union-default-graph \
        --bind 127.0.0.1:7878

``--union-default-graph`` makes queries without ``GRAPH`` see every product graph (as the
embedded store does); other SPARQL servers need their equivalent setting. Then set
``store.mode: http`` (``store.url: http://127.0.0.1:7878``) in configs/linked_data.yaml.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def oxigraph_binary() -> str:
    """Path of the ``oxigraph`` executable (beside the Python interpreter, or on PATH)."""
    beside = Path(sys.executable).with_name("oxigraph")
    if beside.is_file():
        return str(beside)
    found = shutil.which("oxigraph")
    if not found:
        raise FileNotFoundError(
            "the `oxigraph` server binary is not installed; pip install oxigraph "
            "(the Python package ships the Oxigraph CLI)"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class OxigraphServer:
    """An ``oxigraph serve`` child process; use as a context manager, or start()/stop()."""

    def __init__(
        self, location: str | Path | None, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.location = Path(location) if location is not None else None
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL (``/query``, ``/update``, ``/store`` below it)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> OxigraphServer:
        """Start the server and wait until it accepts connections."""
        command = [
            oxigraph_binary(),
            "serve",
            "--union-default-graph",
            "--bind",
            f"{self.host}:{self.port}",
        ]
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        log.info("starting %s", " ".join(command))
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"oxigraph serve exited with {self.process.returncode}: {error}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"oxigraph serve did not listen on {self.url} within {timeout_s}s")

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> OxigraphServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
