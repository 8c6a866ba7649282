"""Start ``eeflow serve run`` as a real server on 127.0.0.1 for a test, and stop it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tasks.net import free_port

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving_server(config: str | Path, env: Mapping[str, str],
                   timeout: float = 120) -> Iterator[str]:
    """Yield the base URL of a running ``eeflow serve run``; stop it (SIGTERM) on exit.

    The server must answer ``/health`` within ``timeout`` seconds (it loads the model code before
    it listens: tens of seconds on a busy machine) and stop cleanly: uvicorn
    shuts down gracefully and then re-raises the captured SIGTERM, so -15 is a clean stop too.
    """
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tasks.cli", "serve", "run", "--host", "127.0.0.1", "--port",
         str(port), "--config", str(config)], cwd=REPO, env=dict(env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"eeflow serve run did not answer in {timeout} s"
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode in (0, -signal.SIGTERM), server.stdout.read() if server.stdout else ""
