"""Fixtures: tiny generated Sentinel-1 EW GRD scenes (shared per test session)."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.sentinel1.generator import GeneratedScene, generate_ew_grd_scene

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> GeneratedScene:
    """A 200 x 240 dual-pol scene with land (seed 7)."""
    return generate_ew_grd_scene(
        tmp_path_factory.mktemp("s1"), seed=7, start_time=START, lines=200, samples=240
    )
