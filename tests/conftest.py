"""Shared pytest fixtures: an isolated EEFLOW_HOME per test and single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture()
def eeflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point EEFLOW_HOME at a temporary folder so stage outputs land there."""
    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture()
def repo_root() -> Path:
    """The checkout's root folder."""
    return REPO
