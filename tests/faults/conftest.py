"""Helpers of the fault-injection suite: snapshots of earlier outputs, CLI runs in a subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# the linked-data fixtures (ld_cfg, products) serve the store and export faults too
from tests.tasks.linked_data.conftest import ld_cfg, products  # noqa: E402,F401
from tests.tasks.lucas.conftest import layout, lucas_dir  # noqa: E402,F401
from tests.tasks.sentinel1.conftest import small_scene  # noqa: E402,F401


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (symlinks followed)."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``eeflow ARGS`` in a fresh interpreter; return the finished process (text output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EEFLOW_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", "from tasks.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=timeout, check=False,
    )


@pytest.fixture
def nt_lines() -> list[str]:
    """20,000 distinct N-Triples lines."""
    return [f'<https://x.org/s{i}> <https://x.org/p{i % 5}> "{i}" .\n' for i in range(20_000)]
