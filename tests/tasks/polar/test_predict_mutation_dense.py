"""predict's dense classifier on a hand-made model whose classes are computed here (issue 19).

The model is a real ``adhoc_cnn`` model folder (``model.json`` + ``model.pt`` as the train stage
writes them, read by :func:`tasks.polar.train.load_model`) with weights set by hand so that its
logits are known: the first convolution computes ``g(y, x) = HHn(y, x - 1) + 0.5 HVn(y, x) + B``
(``HHn`` / ``HVn`` the bands normalised with the model's band mean / std, the incidence band
ignored), the three convolutions after it pass that channel through, so after the three 2 x 2
max-pools a 16 px patch is four 8 x 8 block maxima; the head takes the bottom-right one and
says "ice" (class 1) when it exceeds ``B + THRESHOLD``. Output cell (r, c) of a scene therefore
is ``max g`` over rows ``8r + 4 .. 8r + 12`` and columns ``8c + 4 .. 8c + 12`` (the window of
the cell starts half a halo, 4 px, above / left of it), with the scene's edge values repeated
outside it; values are on a 0.05 grid and the threshold half-way between two of them.

The scene is a harmonised zarr as :mod:`tasks.polar.harmonise` writes it (75 x 100 pixels of
40 m in EPSG:3413, chunks of 32 rows, bands stored in another order than the model's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import torch
import xarray as xr

from tasks.polar import predict as pr
from tasks.polar.schema import BACKSCATTER_VAR, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.polar.train import load_model

torch.set_num_threads(1)


def _synchronous_dask() -> None:
    """Dask computes in the calling thread (see below)."""
    dask.config.set(scheduler="synchronous")


# mutmut (bench/mutation.py) runs each mutant's tests in a fork of the process that ran the test
# session once: dask's default thread pool, made there, has no threads in the fork, so a compute
# (xr.open_zarr(...).values, to_zarr of a chunked scene) would wait forever. Forked children
# compute in their own thread instead (same values); unforked runs are not affected.
os.register_at_fork(after_in_child=_synchronous_dask)

BANDS = ["HH", "HV", "incidence"]
BAND_MEAN = [-15.0, -25.0, 35.0]
BAND_STD = [5.0, 2.0, 3.0]
BIAS = 100.0
THRESHOLD = 0.525
PATCH, STRIDE = 16, 8
HEIGHT, WIDTH = 75, 100
TRANSFORM = [-1_000_000.0, 40.0, 0.0, -1_500_000.0, 0.0, -40.0]
CRS = "EPSG:3413"
SCENE_ID = "S1A_EW_GRDM_1SDH_20261125T080000_TEST"


def hand_state_dict() -> dict[str, torch.Tensor]:
    """Weights of adhoc_cnn (16 px, width multiplier 0.1: 4 / 4 / 4 channels, head 102 / 51)."""
    from tasks.models.ice_zoo import build_model

    net = build_model("adhoc_cnn", 2, 3, PATCH, 0.5, 0.1)
    state = {name: torch.zeros_like(t) for name, t in net.state_dict().items()}
    state["features.0.weight"][0, 0, 1, 0] = 1.0  # HH one pixel to the left
    state["features.0.weight"][0, 1, 1, 1] = 0.5  # HV at the pixel
    state["features.0.bias"][0] = BIAS
    state["features.3.weight"][0, 0, 1, 1] = 1.0
    state["features.6.weight"][0, 0, 1, 1] = 1.0
    state["head.0.weight"][0, 0, 1, 1] = 1.0  # the bottom-right 8 x 8 block of the patch
    state["head.3.weight"][0, 0, 0, 0] = 1.0
    state["head.6.weight"][1, 0, 0, 0] = 1.0
    state["head.6.bias"][1] = -(BIAS + THRESHOLD)
    return state


def write_model(folder: Path, **meta: Any) -> Path:
    """A model folder as the polar train stage writes it (model.json + model.pt)."""
    folder.mkdir(parents=True)
    torch.save(hand_state_dict(), folder / "model.pt")
    card = {
        "name": "adhoc_cnn", "architecture": "adhoc_cnn", "class_scheme": "binary",
        "classes": ["water", "ice"], "bands": BANDS, "band_mean": BAND_MEAN,
        "band_std": BAND_STD, "patch_size": PATCH, "output_stride": STRIDE,
        "input_contract": {"modes": ["EW"], "pixel_spacings_m": [40.0], "crs": [CRS],
                           "bands": BANDS, "patch_size": PATCH},
        "hyperparameters": {"dropout": 0.5, "width_multiplier": 0.1},
        "weights": "model.pt", "created": "2026-11-30T00:00:00+00:00",
    }
    card.update(meta)
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def scene_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """HH / HV integer dB, incidence, land and valid masks; NaN backscatter where not valid."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    ice = (yy - 10) ** 2 + (xx - 30) ** 2 < 26 ** 2  # a floe in open water
    hh = (np.where(ice, -8, -22) + rng.integers(-3, 4, (HEIGHT, WIDTH))).astype(np.float32)
    hv = (np.where(ice, -20, -28) + rng.integers(-2, 3, (HEIGHT, WIDTH))).astype(np.float32)
    bright = rng.integers(0, HEIGHT * WIDTH, 25)  # icebergs: single bright HH pixels
    hh.ravel()[bright] = 0.0
    incidence = np.broadcast_to(np.linspace(20.0, 45.0, WIDTH, dtype=np.float32),
                                (HEIGHT, WIDTH)).copy()
    valid = np.ones((HEIGHT, WIDTH), np.uint8)
    valid[:, :7] = 0  # outside the swath on the left
    valid[70:, 90:] = 0
    land = np.zeros((HEIGHT, WIDTH), np.uint8)
    land[10:30, 60:75] = 1
    land[0:3, 0:3] = 1  # land outside the swath is land
    hh[valid == 0] = np.nan
    hv[valid == 0] = np.nan
    return {"HH": hh, "HV": hv, "incidence": incidence, "land": land, "valid": valid}


def write_scene(path: Path, arrays: dict[str, np.ndarray], scene_bands: tuple[str, ...] = (
        "incidence", "HV", "HH"), **attrs: Any) -> Path:
    """A harmonised scene zarr (the bands in ``scene_bands`` order), chunks of 32 rows."""
    import rioxarray  # noqa: F401
    from affine import Affine

    t = Affine.from_gdal(*TRANSFORM)
    x = t.c + t.a * (np.arange(WIDTH) + 0.5)
    y = t.f + t.e * (np.arange(HEIGHT) + 0.5)
    stack = np.stack([arrays[b] for b in scene_bands])
    scene = xr.Dataset(
        {BACKSCATTER_VAR: (("band", "y", "x"), stack),
         LAND_MASK_VAR: (("y", "x"), arrays["land"]),
         VALID_MASK_VAR: (("y", "x"), arrays["valid"])},
        coords={"band": list(scene_bands), "y": y, "x": x},
    ).rio.write_crs(CRS)  # as harmonise: the spatial_ref first, then the attributes
    scene.attrs.update({"crs": CRS, "transform": TRANSFORM, "scene_id": SCENE_ID,
                        "pixel_spacing_m": 40.0, "mode": "EW", **attrs})
    scene.chunk({"band": -1, "y": 32, "x": -1}).to_zarr(path, mode="w")
    return path


def normalised(arrays: dict[str, np.ndarray], band: str) -> np.ndarray:
    index = BANDS.index(band)
    with np.errstate(invalid="ignore"):
        values = (arrays[band].astype(np.float64) - BAND_MEAN[index]) / BAND_STD[index]
    return np.nan_to_num(values, nan=0.0)


def expected_cells(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The hand model's class of every output cell, from the formula in the module docstring."""
    pad = 2 * PATCH
    hh = np.pad(normalised(arrays, "HH"), pad, mode="edge")
    hv = np.pad(normalised(arrays, "HV"), pad, mode="edge")
    g = np.full_like(hh, np.nan)
    g[:, 1:] = hh[:, :-1] + 0.5 * hv[:, 1:]
    rows, cols = -(-HEIGHT // STRIDE), -(-WIDTH // STRIDE)
    cells = np.zeros((rows, cols), np.uint8)
    for r in range(rows):
        for c in range(cols):
            y0, x0 = pad + STRIDE * r + 4, pad + STRIDE * c + 4
            cells[r, c] = int(g[y0:y0 + 8, x0:x0 + 8].max() > THRESHOLD)
    return cells


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("model") / "adhoc_cnn_16_binary_hand")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return scene_arrays()


@pytest.fixture(scope="module")
def scene_zarr(tmp_path_factory: pytest.TempPathFactory, arrays: dict[str, np.ndarray]) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / f"{SCENE_ID}.zarr", arrays)


def test_the_hand_model_classifies_a_patch_as_computed(model_dir: Path) -> None:
    net = load_model(model_dir).net
    patch = np.zeros((1, 3, PATCH, PATCH), np.float32)
    patch[0, 0, 10, 11] = 0.5  # HHn 0.5 at column 11: g at column 12 is 0.5 <= threshold
    assert int(net(torch.from_numpy(patch)).argmax(1)) == 0
    patch[0, 1, 10, 12] = 0.1  # + 0.5 * 0.1
    assert int(net(torch.from_numpy(patch)).argmax(1)) == 1
    patch[0, 1, 10, 12] = 0.0
    patch[0, 0, 3, 3] = 5.0  # outside the bottom-right block: no effect
    assert int(net(torch.from_numpy(patch)).argmax(1)) == 0
    # the dense map of one patch is that patch's logits
    dense = net.forward_dense(torch.from_numpy(patch))
    assert tuple(dense.shape) == (1, 2, 1, 1)


def test_predictor_settings_from_the_model(model_dir: Path) -> None:
    loaded = load_model(model_dir)
    predictor = pr.ScenePredictor(loaded, tile=70, device="cpu")
    assert (predictor.stride, predictor.patch, predictor.offset, predictor.margin) == (8, 16, 4, 8)
    assert predictor.tile == 64 and predictor.bands == BANDS
    assert predictor.batch_size == 1 and predictor.overlap is True
    assert predictor.precision == "fp32" and predictor.device.type == "cpu"
    assert predictor.calibration_seconds == 0.0
    assert pr.ScenePredictor(loaded, tile=3, device="cpu").tile == 8  # at least one cell
    assert pr.ScenePredictor(loaded, tile=16, device="cpu", batch_size=3).batch_size == 3
    default = pr.ScenePredictor(loaded)
    assert default.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert default.tile == 1024
    with pytest.raises(ValueError) as info:
        pr.ScenePredictor(loaded, device="cpu", batch_size=-2)
    assert str(info.value) == "batch_size must be >= 1 tile, got -2"


def test_read_normalised_pads_with_edge_values_and_records_finite_bands(
        model_dir: Path, scene_zarr: Path, arrays: dict[str, np.ndarray]) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), device="cpu")
    backscatter = xr.open_zarr(scene_zarr)[BACKSCATTER_VAR].sel(band=BANDS)
    norm = np.stack([normalised(arrays, b) for b in BANDS])
    padded = np.pad(norm, ((0, 0), (5, 6), (4, 3)), mode="edge")
    finite = np.zeros(3, bool)
    window = predictor.read_normalised(backscatter, slice(-5, HEIGHT + 6), slice(-4, WIDTH + 3),
                                       finite)
    assert window.dtype == np.float32 and window.shape == (3, HEIGHT + 11, WIDTH + 7)
    np.testing.assert_allclose(window, padded, rtol=0, atol=1e-5)
    assert finite.tolist() == [True, True, True]
    # inside the scene, through row strips: the same values; an all-NaN window sets nothing
    strips = pr.RowStrips(backscatter)
    inside = predictor.read_normalised(backscatter, slice(30, 40), slice(2, 12), None, strips)
    np.testing.assert_allclose(inside, norm[:, 30:40, 2:12], rtol=0, atol=1e-5)
    finite[:] = False
    nan_window = predictor.read_normalised(backscatter, slice(40, 60), slice(0, 7), finite)
    assert finite.tolist() == [False, False, True]  # HH and HV are NaN left of column 7
    np.testing.assert_array_equal(nan_window[:2], 0.0)
    # a window ending before the scene's last row / column and one starting at 0
    top = predictor.read_normalised(backscatter, slice(0, 3), slice(WIDTH - 2, WIDTH + 1))
    np.testing.assert_allclose(top, np.pad(norm[:, 0:3, WIDTH - 2:], ((0, 0), (0, 0), (0, 1)),
                                           mode="edge"), rtol=0, atol=1e-5)


def test_calibration_batch_is_a_lattice_of_crops(model_dir: Path, scene_zarr: Path,
                                                 arrays: dict[str, np.ndarray]) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), device="cpu")
    backscatter = xr.open_zarr(scene_zarr)[BACKSCATTER_VAR].sel(band=BANDS)
    norm = np.stack([normalised(arrays, b) for b in BANDS])
    batch = predictor.calibration_batch(backscatter, grid=2, cells=3)
    span = 3 * 8 + 16 - 8 + 2 * 8  # 48
    assert batch.shape == (4, 3, span, span)
    starts = [(0, 0), (0, WIDTH - span), (HEIGHT - span, 0), (HEIGHT - span, WIDTH - span)]
    for crop, (r, c) in zip(batch, starts, strict=True):
        np.testing.assert_allclose(crop, norm[:, r:r + span, c:c + span], rtol=0, atol=1e-5)
    # the defaults: a 3 x 3 lattice of 16-cell crops, larger than the scene: edge-padded
    full = predictor.calibration_batch(backscatter)
    assert full.shape == (9, 3, 16 * 8 + 8 + 16, 16 * 8 + 8 + 16)
    padded = np.pad(norm, ((0, 0), (0, 152 - HEIGHT), (0, 152 - WIDTH)), mode="edge")
    for crop in full:
        np.testing.assert_allclose(crop, padded, rtol=0, atol=1e-5)
    middle = predictor.calibration_batch(backscatter, grid=3, cells=2)  # span 40
    assert middle.shape == (9, 3, 40, 40)
    np.testing.assert_allclose(middle[4], norm[:, 17:57, 30:70], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("tile", "batch_size", "overlap"),
                         [(64, 1, True), (16, 3, False), (24, 2, True), (1024, 1, False)])
def test_class_map_equals_the_hand_computation(model_dir: Path, scene_zarr: Path,
                                               arrays: dict[str, np.ndarray], tile: int,
                                               batch_size: int, overlap: bool) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), tile=tile, device="cpu",
                                  batch_size=batch_size, overlap=overlap)
    cells = predictor.class_map(xr.open_zarr(scene_zarr), progress=False)
    expected = expected_cells(arrays)
    assert cells.dtype == np.uint8 and cells.shape == (10, 13) == expected.shape
    assert 20 < int(expected.sum()) < 110  # both classes, in many places
    np.testing.assert_array_equal(cells, expected)
    assert predictor.calibration_seconds == pytest.approx(0.0, abs=0.05)


def test_classify_windows_equals_the_class_map(model_dir: Path, scene_zarr: Path,
                                               arrays: dict[str, np.ndarray]) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), device="cpu")
    scene = xr.open_zarr(scene_zarr)
    expected = expected_cells(arrays)
    cells = np.array([(r, c) for r in range(10) for c in range(13)])
    got = predictor.classify_windows(scene, cells, batch_size=7)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected.ravel())


def test_an_all_nan_band_is_refused_by_name(model_dir: Path, arrays: dict[str, np.ndarray],
                                            tmp_path: Path) -> None:
    broken = dict(arrays, HV=np.full((HEIGHT, WIDTH), np.nan, np.float32))
    scene = xr.open_zarr(write_scene(tmp_path / "nan.zarr", broken))
    loaded = load_model(model_dir)
    with pytest.raises(pr.SceneModelMismatch) as info:
        pr.ScenePredictor(loaded, tile=32, device="cpu").class_map(scene, progress=False)
    assert str(info.value) == (
        f"scene {SCENE_ID}: band(s) ['HV'] are all NaN (75 x 100 pixels, no finite value); "
        f"model {model_dir} needs ['HH', 'HV', 'incidence']. Re-run harmonise for that scene "
        "and check its source product (missing or zero measurement / annotation data)")
    unnamed = scene.assign_attrs(scene_id=None)
    del unnamed.attrs["scene_id"]
    with pytest.raises(pr.SceneModelMismatch, match=r"^scene scene: band\(s\) \['HV'\]"):
        pr.ScenePredictor(loaded, device="cpu").class_map(unnamed, progress=False)


def test_int8_calibrates_on_the_scene_crops(model_dir: Path, scene_zarr: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), tile=32, device="cpu",
                                  precision="int8")
    backscatter = xr.open_zarr(scene_zarr)[BACKSCATTER_VAR].sel(band=BANDS)
    seen: list[np.ndarray] = []

    def calibrate(tiles: list[torch.Tensor]) -> int:
        seen.extend(t.numpy() for t in tiles)
        predictor.kernel.precision = "fp32"  # classify with the float network afterwards
        return 1

    monkeypatch.setattr(predictor.kernel, "calibrate", calibrate)
    assert predictor.kernel.needs_calibration
    predictor.class_map(xr.open_zarr(scene_zarr), progress=False)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], predictor.calibration_batch(backscatter))
    assert predictor.calibration_seconds > 0.0


class _Kernel:
    """Stands in for DenseKernel: records how the predictor built it (no CUDA needed)."""

    made: list[tuple[str, str]] = []

    def __init__(self, net: Any, precision: str, device: str) -> None:
        _Kernel.made.append((precision, device))
        self.device = torch.device(device)
        self.precision = precision


def test_device_and_batch_size_defaults(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model(model_dir)
    monkeypatch.setattr(pr, "DenseKernel", _Kernel)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _Kernel.made.clear()
    on_gpu = pr.ScenePredictor(loaded, precision="bf16")
    assert on_gpu.batch_size == 8 and on_gpu.precision == "bf16"
    quantised = pr.ScenePredictor(loaded, precision="int8")  # int8 runs on the CPU only
    assert quantised.batch_size == 1
    assert pr.ScenePredictor(loaded, device="cuda", batch_size=2).batch_size == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pr.ScenePredictor(loaded).batch_size == 1
    assert _Kernel.made == [("bf16", "cuda"), ("int8", "cpu"), ("fp32", "cuda"), ("fp32", "cpu")]


def test_progress_bar_counts_the_tiles(model_dir: Path, scene_zarr: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    predictor = pr.ScenePredictor(load_model(model_dir), tile=64, device="cpu")
    predictor.class_map(xr.open_zarr(scene_zarr))
    err = capsys.readouterr().err
    assert "predict tiles: 100%" in err and "4/4" in err
    predictor.class_map(xr.open_zarr(scene_zarr), progress=False)
    assert "predict tiles" not in capsys.readouterr().err


def _add(a: int, b: int = 0) -> int:
    return a + b


def test_inline_executor_runs_the_call_at_once() -> None:
    with pr.InlineExecutor() as pool:
        done = pool.submit(_add, 1, b=2)
        assert done.done() and done.result() == 3
        failed = pool.submit(int, "x")
        assert failed.done() and isinstance(failed.exception(), ValueError)
