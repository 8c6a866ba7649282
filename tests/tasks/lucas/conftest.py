"""Fixtures of the LUCAS evaluation tests: a small generated farmland, maps, survey points."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lucas.generator import (
    FarmlandLayout,
    generate_farmland,
    generate_lucas_points,
    map_instances,
    perturb_classes,
    write_instances,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "lucas"


@pytest.fixture(scope="session")
def layout() -> FarmlandLayout:
    return generate_farmland(2500, seed=0)


@pytest.fixture(scope="session")
def lucas_dir(tmp_path_factory: pytest.TempPathFactory, layout: FarmlandLayout) -> Path:
    """points.csv (with 5 % outside the map), truth.parquet and model.parquet (15 % relabelled)."""
    folder = tmp_path_factory.mktemp("lucas")
    points = generate_lucas_points(layout, 350, seed=1, outside_extent_share=0.05)
    points.to_csv(folder / "points.csv", index=False)
    write_instances(map_instances(layout), folder / "truth.parquet")
    write_instances(
        map_instances(layout, perturb_classes(layout.parcel_class, 0.15, seed=5)),
        folder / "model.parquet",
    )
    return folder
