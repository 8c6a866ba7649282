"""predict.precision: int8 charts agree with fp32, batching and the default keep fp32 output."""
# ruff: noqa: F811  (the trained_model fixture is imported from test_polar_predict)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from pydantic import ValidationError

from tasks.config.polar import PredictConfig
from tasks.polar.predict import (
    InlineExecutor,
    RowStrips,
    ScenePredictor,
    group_equal_tiles,
    predict_scene,
)
from tasks.polar.train import load_model
from tests.tasks.polar.test_polar_predict import trained_model  # noqa: F401  (module fixture)

torch.set_num_threads(1)


def test_int8_class_map_agrees_with_fp32(trained_model: Path,
                                         polar_scene_pair: tuple[Path, Path]) -> None:
    loaded = load_model(trained_model)
    scene = xr.open_zarr(polar_scene_pair[0])
    fp32 = ScenePredictor(loaded, tile=128, precision="fp32").class_map(scene, progress=False)
    predictor = ScenePredictor(loaded, tile=128, precision="int8")
    assert predictor.device.type == "cpu" and predictor.kernel.needs_calibration
    int8 = predictor.class_map(scene, progress=False)
    assert not predictor.kernel.needs_calibration  # calibrated on the scene's own crops
    assert int8.shape == fp32.shape == (32, 32)
    assert min(np.bincount(fp32.ravel(), minlength=2)) > 100  # both classes: not trivial
    assert (int8 == fp32).mean() >= 0.99
    crops = predictor.calibration_batch(
        scene["backscatter"].sel(band=predictor.bands).transpose("band", "y", "x"))
    span = 16 * predictor.stride + predictor.patch - predictor.stride + 2 * predictor.margin
    assert crops.shape == (9, len(predictor.bands), span, span)


def test_batched_tiles_give_the_same_fp32_map(trained_model: Path,
                                              polar_scene_pair: tuple[Path, Path]) -> None:
    loaded = load_model(trained_model)
    scene = xr.open_zarr(polar_scene_pair[0])
    single = ScenePredictor(loaded, tile=64).class_map(scene, progress=False)
    batched = ScenePredictor(loaded, tile=64, batch_size=3).class_map(scene, progress=False)
    np.testing.assert_array_equal(single, batched)
    in_turn = ScenePredictor(loaded, tile=64, overlap=False).class_map(scene, progress=False)
    np.testing.assert_array_equal(single, in_turn)


def test_inline_executor_runs_now_and_keeps_errors() -> None:
    calls: list[int] = []
    with InlineExecutor() as pool:
        done = pool.submit(calls.append, 1)
        assert done.done() and calls == [1]
        failed = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failed.result()


def test_group_equal_tiles_keeps_order_and_shape() -> None:
    tiles = [(r, c) for r in (0, 8) for c in (0, 8, 16)]
    extent = {(0, 0): (8, 8), (0, 8): (8, 8), (0, 16): (8, 2),
              (8, 0): (8, 8), (8, 8): (8, 8), (8, 16): (8, 2)}
    batches = group_equal_tiles(tiles, extent.__getitem__, 4)
    assert batches == [[(0, 0), (0, 8)], [(0, 16)], [(8, 0), (8, 8)], [(8, 16)]]
    assert group_equal_tiles(tiles, lambda t: 0, 4) == [tiles[:4], tiles[4:]]


def test_predict_scene_default_is_fp32_and_int8_chart_agrees(
        trained_model: Path, polar_scene_pair: tuple[Path, Path],
        tmp_path: Path) -> None:
    assert PredictConfig().precision == "fp32"
    fp32 = predict_scene(trained_model, polar_scene_pair[0], tmp_path / "fp32",
                         PredictConfig(tile=128))
    int8 = predict_scene(trained_model, polar_scene_pair[0], tmp_path / "int8",
                         PredictConfig(tile=128, precision="int8"))
    assert fp32["precision"] == "fp32" and int8["precision"] == "int8"
    with rasterio.open(fp32["chart"]) as a, rasterio.open(int8["chart"]) as b:
        chart_fp32, chart_int8 = a.read(1), b.read(1)
    assert (chart_fp32 == chart_int8).mean() >= 0.99


def test_precision_errors_are_clear(trained_model: Path) -> None:
    with pytest.raises(ValidationError, match=r"precision\n.*'fp32', 'int8', 'bf16' or 'auto'"):
        PredictConfig(precision="fp16")  # type: ignore[arg-type]
    loaded = load_model(trained_model)
    with pytest.raises(ValueError, match="'bf16' needs a CUDA device"):
        ScenePredictor(loaded, precision="bf16", device="cpu")
    with pytest.raises(ValueError, match="batch_size must be >= 1 tile"):
        ScenePredictor(loaded, batch_size=-1)


def test_row_strips_give_the_rows_of_a_direct_read(polar_scene_pair: tuple[Path, Path]) -> None:
    backscatter = xr.open_zarr(polar_scene_pair[0])["backscatter"].transpose("band", "y", "x")
    for source in (backscatter.chunk({"y": 48}), backscatter.load()):  # chunked / in memory
        strips = RowStrips(source, rows_per_strip=40)
        for r0, r1 in ((0, 10), (5, 100), (90, 97), (95, 256), (250, 256)):
            np.testing.assert_array_equal(strips.rows(r0, r1),
                                          source.isel(y=slice(r0, r1)).values)
            np.testing.assert_array_equal(strips.rows(r0, r1, slice(7, 30)),
                                          source.isel(y=slice(r0, r1), x=slice(7, 30)).values)
        size = 48 if source.chunks else 40
        assert set(strips.decoded) == {250 // size}  # strips above the last request dropped
