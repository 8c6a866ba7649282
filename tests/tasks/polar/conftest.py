"""Fixtures of the polar ML tests: tiny harmonised scenes + label rasters in the schema contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config, write_synthetic_scene  # noqa: F401


@pytest.fixture(scope="session")
def polar_scene_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One 256 x 256 harmonised scene and its label raster (blob classes, land, no-label strip)."""
    folder = tmp_path_factory.mktemp("polar_scene")
    return write_synthetic_scene(folder, "S1A_EW_GRDM_TEST0", height=256, width=256, seed=0)


@pytest.fixture(scope="session")
def polar_second_scene_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A second, differently seeded 192 x 224 scene."""
    folder = tmp_path_factory.mktemp("polar_scene2")
    return write_synthetic_scene(folder, "S1B_EW_GRDM_TEST1", height=192, width=224, seed=1)


@pytest.fixture(scope="session")
def polar_patch_dataset(
    tmp_path_factory: pytest.TempPathFactory, polar_scene_pair: tuple[Path, Path],
    polar_second_scene_pair: tuple[Path, Path],
) -> dict:
    """A patch training set (32 and 20 px) built by run_patches from the two fixture scenes."""
    from tasks.polar.patches import run_patches

    root = tmp_path_factory.mktemp("polar_root")
    cfg = tiny_polar_config(root)
    summary = run_patches(cfg, [polar_scene_pair[0], polar_second_scene_pair[0]],
                          [polar_scene_pair[1], polar_second_scene_pair[1]])
    return {"root": root, "cfg": cfg, **summary}
