"""harmonise_scene end to end on a tiny generated product, against hand computations (issue 19).

The product's DN, noise and calibration LUT are read through the SAFE reader, sigma0 is computed
by hand ((DN^2 - N) / A^2), boxcar-filtered over valid pixels with the configured multilook (edge
pixels repeated), sampled bilinearly at the image position the geocoding gives each map pixel and
converted to dB: that must be the stored value. The store's attributes and the returned summary
are checked against what the run did (the arrays written, the grid used), not the config alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import zarr

from tasks.config.polar import HarmoniseConfig
from tasks.polar import harmonise as hm
from tasks.polar.schema import BACKSCATTER_VAR, BANDS, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.sentinel1.generator import GeneratedScene, generate_ew_grd_scene
from tasks.sentinel1.geocode import image_coordinates
from tasks.sentinel1.safe import open_safe
from tasks.storage import zarr_array

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> GeneratedScene:
    """The smallest scene the generator makes (32 x 64), with land."""
    return generate_ew_grd_scene(tmp_path_factory.mktemp("tiny"), seed=5, start_time=START,
                                 lines=32, samples=64, land_fraction=0.3)


def _run(scene_path: Path, out: Path, cfg: HarmoniseConfig,
         land: Path | None) -> tuple[dict[str, Any], zarr.Group]:
    with dask.config.set(scheduler="synchronous"):
        summary = hm.harmonise_scene(scene_path, out, cfg, land_mask_path=land)
    return summary, zarr.open_group(str(out), mode="r")


@pytest.fixture(scope="module")
def with_land(scene: GeneratedScene,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], zarr.Group]:
    cfg = HarmoniseConfig(chunk=64, multilook=3, db_floor=-35.0)
    return _run(scene.safe_path, tmp_path_factory.mktemp("a") / "s.zarr", cfg,
                scene.land_mask_path)


def _hand_db_at(scene: GeneratedScene, cfg: HarmoniseConfig, rows: np.ndarray,
                cols: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """dB of HH / HV and the valid share at map pixels (rows, cols), by hand."""
    product = open_safe(scene.safe_path)
    grid = hm.output_grid(product, cfg)
    line, pixel = image_coordinates(grid["geocoding"], grid["transform"],
                                    (0, grid["shape"][0]), (0, grid["shape"][1]))
    line, pixel = line[rows, cols], pixel[rows, cols]
    out, shares = {}, []
    for pol in hm.POLARISATIONS:
        dn = product.read_dn(pol).astype(np.float64)
        power = dn**2 - (product.noise_lut(pol).astype(np.float64) if cfg.noise_removal else 0.0)
        sigma0 = power / product.calibration_lut(pol).astype(np.float64) ** 2
        valid = (dn > 0).astype(float)
        half = cfg.multilook // 2
        v = np.pad(np.where(valid > 0, sigma0, 0.0), half, mode="edge")
        w = np.pad(valid, half, mode="edge")
        size = cfg.multilook
        num = sum(v[i:i + dn.shape[0], j:j + dn.shape[1]] * w[i:i + dn.shape[0], j:j + dn.shape[1]]
                  for i in range(size) for j in range(size))
        den = sum(w[i:i + dn.shape[0], j:j + dn.shape[1]] for i in range(size)
                  for j in range(size))
        mean = np.asarray(np.where(den > 0, num / np.maximum(den, 1e-12), 0.0))
        share = np.asarray(den / size**2)

        def bilinear(a: np.ndarray) -> np.ndarray:
            l0 = np.clip(np.floor(line).astype(int), 0, a.shape[0] - 2)
            p0 = np.clip(np.floor(pixel).astype(int), 0, a.shape[1] - 2)
            tl = np.clip(line - l0, 0, 1)
            tp = np.clip(pixel - p0, 0, 1)
            return ((1 - tl) * (1 - tp) * a[l0, p0] + (1 - tl) * tp * a[l0, p0 + 1]
                    + tl * (1 - tp) * a[l0 + 1, p0] + tl * tp * a[l0 + 1, p0 + 1])

        floor = 10 ** (cfg.db_floor / 10)
        out[pol] = 10 * np.log10(np.maximum(bilinear(mean), floor))
        shares.append(bilinear(share))
    incidence = product.incidence_angle().astype(np.float64)
    l0 = np.clip(np.floor(line).astype(int), 0, incidence.shape[0] - 2)
    p0 = np.clip(np.floor(pixel).astype(int), 0, incidence.shape[1] - 2)
    tl, tp = line - l0, pixel - p0
    inc = ((1 - tl) * (1 - tp) * incidence[l0, p0] + (1 - tl) * tp * incidence[l0, p0 + 1]
           + tl * (1 - tp) * incidence[l0 + 1, p0] + tl * tp * incidence[l0 + 1, p0 + 1])
    return out, np.minimum(*shares), inc


def _inner_pixels(valid: np.ndarray, n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Valid map pixels at least two pixels inside the valid area (no edge interpolation)."""
    inner = valid.copy()
    for dr in (-2, 0, 2):
        for dc in (-2, 0, 2):
            inner &= np.roll(np.roll(valid, dr, 0), dc, 1)
    rows, cols = np.nonzero(inner)
    pick = np.linspace(0, rows.size - 1, n).astype(int)
    return rows[pick], cols[pick]


def test_pixels_attributes_and_summary(scene: GeneratedScene,
                                       with_land: tuple[dict[str, Any], zarr.Group]) -> None:
    """One test for the shared store: mutmut maps the functions a module fixture calls to the
    first test that uses it, so every check of that store has to live in that test."""
    _check_pixels(scene, with_land)
    _check_attributes_and_summary(scene, with_land)


def _check_pixels(scene: GeneratedScene, with_land: tuple[dict[str, Any], zarr.Group]) -> None:
    _, group = with_land
    cfg = HarmoniseConfig(chunk=64, multilook=3, db_floor=-35.0)
    backscatter = np.asarray(zarr_array(group, BACKSCATTER_VAR)[:])
    valid = np.asarray(zarr_array(group, VALID_MASK_VAR)[:]) == 1
    rows, cols = _inner_pixels(valid)
    want, share, incidence = _hand_db_at(scene, cfg, rows, cols)
    assert (share >= 0.5).all()
    np.testing.assert_allclose(backscatter[0, rows, cols], want["HH"], atol=2e-3)
    np.testing.assert_allclose(backscatter[1, rows, cols], want["HV"], atol=2e-3)
    np.testing.assert_allclose(backscatter[2, rows, cols], incidence, atol=2e-3)
    # sigma0 is NaN exactly where not valid; the incidence is there wherever the image is
    assert np.isnan(backscatter[:2, ~valid]).all() and np.isfinite(backscatter[:, valid]).all()
    assert np.isfinite(backscatter[2, ~valid]).any() and np.isnan(backscatter[2]).any()


def _check_attributes_and_summary(
        scene: GeneratedScene, with_land: tuple[dict[str, Any], zarr.Group]) -> None:
    summary, group = with_land
    cfg = HarmoniseConfig(chunk=64, multilook=3, db_floor=-35.0)
    product = open_safe(scene.safe_path)
    grid = hm.output_grid(product, cfg)
    attrs = dict(group.attrs)
    h, w = grid["shape"]
    assert attrs["crs"] == "EPSG:3413" == cfg.target_crs
    assert attrs["transform"] == list(grid["transform"].to_gdal())
    assert attrs["scene_id"] == product.scene_id == summary["scene_id"]
    assert attrs["start_time"] == product.start_time.isoformat()
    assert attrs["stop_time"] == product.stop_time.isoformat()
    assert attrs["pixel_spacing_m"] == 40.0
    assert (attrs["mission"], attrs["mode"]) == (product.mission, product.mode) == ("S1A", "EW")
    assert attrs["multilook"] == 3 and attrs["noise_removal"] == 1
    assert attrs["affine_rms_m"] == grid["affine_rms_m"] == summary["affine_rms_m"]
    assert attrs["geocoding"] == grid["geocoding"].residuals == summary["geocoding"]
    assert attrs["land_mask_source"] == str(scene.land_mask_path)
    assert attrs["source_product"] == scene.safe_path.name
    assert attrs["noise_lut_all_zero"] == [] == summary["noise_lut_all_zero"]
    assert attrs["warnings"] == [] == summary["warnings"]
    backscatter = np.asarray(zarr_array(group, BACKSCATTER_VAR)[:])
    valid = np.asarray(zarr_array(group, VALID_MASK_VAR)[:])
    land = np.asarray(zarr_array(group, LAND_MASK_VAR)[:])
    assert backscatter.shape == (3, h, w) and backscatter.dtype == np.float32
    assert valid.dtype == land.dtype == np.uint8 and valid.shape == land.shape == (h, w)
    assert summary["shape"] == [h, w]
    assert summary["valid_pixels"] == int(valid.sum()) > 0
    assert summary["land_pixels"] == int(land.sum()) > 0
    sea = (valid == 1) & (land == 0)
    assert summary["hh_db_mean"] == pytest.approx(float(backscatter[0][sea].mean()), abs=1e-3)
    assert summary["hv_db_mean"] == pytest.approx(float(backscatter[1][sea].mean()), abs=1e-3)
    assert summary["hv_db_mean"] < summary["hh_db_mean"]
    assert 0.0 < summary["warp_share"] < 1.0
    assert summary["zarr"].endswith("s.zarr")
    # the land mask is the land polygons burnt into the grid
    geoms = hm._read_land_geometries(scene.land_mask_path, cfg.target_crs)
    np.testing.assert_array_equal(
        land, hm.rasterise_land(geoms, grid["transform"], slice(0, h), slice(0, w)))
    # coordinates of pixel centres, bands, CRS variable and the variables' descriptions
    t = grid["transform"]
    x = np.asarray(zarr_array(group, "x")[:])
    y = np.asarray(zarr_array(group, "y")[:])
    np.testing.assert_allclose(x, t.c + t.a * (np.arange(w) + 0.5))
    np.testing.assert_allclose(y, t.f + t.e * (np.arange(h) + 0.5))
    assert list(np.asarray(zarr_array(group, "band")[:])) == list(BANDS)
    assert "spatial_ref" in group
    assert dict(zarr_array(group, BACKSCATTER_VAR).attrs)["units"] == (
        "dB (HH, HV sigma0); degrees (incidence)")
    assert dict(zarr_array(group, BACKSCATTER_VAR).attrs)["long_name"] == (
        "sigma0 HH, sigma0 HV (thermal-noise removed, 3x3 boxcar), incidence angle")
    from pyproj import CRS

    spatial_ref = dict(zarr_array(group, "spatial_ref").attrs)
    assert CRS.from_wkt(str(spatial_ref["crs_wkt"])) == CRS("EPSG:3413")
    np.testing.assert_allclose([float(v) for v in str(spatial_ref["GeoTransform"]).split()],
                               grid["transform"].to_gdal())
    assert dict(zarr_array(group, LAND_MASK_VAR).attrs)["long_name"] == "land (1) / sea (0)"
    assert dict(zarr_array(group, VALID_MASK_VAR).attrs)["long_name"] == "data present (1)"
    assert zarr_array(group, BACKSCATTER_VAR).chunks == (3, 64, 64)
    assert zarr_array(group, LAND_MASK_VAR).chunks == zarr_array(group, VALID_MASK_VAR).chunks == (
        64, 64)
    for name, dims in [(BACKSCATTER_VAR, ("band", "y", "x")), (LAND_MASK_VAR, ("y", "x")),
                       (VALID_MASK_VAR, ("y", "x"))]:
        metadata = zarr_array(group, name).metadata
        assert isinstance(metadata, zarr.core.metadata.ArrayV3Metadata)  # zarr_format=3
        assert metadata.dimension_names == dims


def test_plain_calibration_without_land_or_multilook(
        scene: GeneratedScene, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = HarmoniseConfig(chunk=64, multilook=1, noise_removal=False, db_floor=-30.0)
    with caplog.at_level(logging.INFO, logger="tasks.polar.harmonise"):
        summary, group = _run(scene.safe_path, tmp_path / "plain.zarr", cfg, None)
    name = scene.safe_path.name.removesuffix(".SAFE")
    assert f"{name}: no land polygons given; land_mask is all 0" in caplog.messages
    h, w = summary["shape"]
    tiles = -(-h // 64) * -(-w // 64)
    assert tiles == 4  # 2 x 2 tiles of 64
    residuals = open_safe(scene.safe_path)  # the geocoding of the run, as logged
    assert (f"harmonising {name} -> {tmp_path / 'plain.zarr'} ({h}x{w}, {tiles} tiles; "
            f"geocoding {hm.output_grid(residuals, cfg)['geocoding'].residuals})"
            in caplog.messages)
    attrs = dict(group.attrs)
    assert attrs["noise_removal"] == 0 and attrs["multilook"] == 1
    assert attrs["land_mask_source"] == "none"
    assert summary["land_pixels"] == 0
    assert not np.asarray(zarr_array(group, LAND_MASK_VAR)[:]).any()
    backscatter = np.asarray(zarr_array(group, BACKSCATTER_VAR)[:])
    valid = np.asarray(zarr_array(group, VALID_MASK_VAR)[:]) == 1
    rows, cols = _inner_pixels(valid)
    want, _, _ = _hand_db_at(scene, cfg, rows, cols)
    np.testing.assert_allclose(backscatter[0, rows, cols], want["HH"], atol=2e-3)
    np.testing.assert_allclose(backscatter[1, rows, cols], want["HV"], atol=2e-3)
    sea = valid  # no land
    assert summary["hh_db_mean"] == pytest.approx(float(backscatter[0][sea].mean()), abs=1e-3)


def test_zero_noise_lut_is_reported_in_attrs_summary_and_log(
        scene: GeneratedScene, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    safe = tmp_path / scene.safe_path.name
    shutil.copytree(scene.safe_path, safe)
    (edited,) = zero_noise_luts(safe, ["HV"])
    cfg = HarmoniseConfig(chunk=64)
    with caplog.at_level(logging.WARNING, logger="tasks.polar.harmonise"):
        summary, group = _run(safe, tmp_path / "z.zarr", cfg, scene.land_mask_path)
    attrs = dict(group.attrs)
    assert attrs["noise_lut_all_zero"] == ["HV"] == summary["noise_lut_all_zero"]
    assert len(summary["warnings"]) == 1 and attrs["warnings"] == summary["warnings"]
    assert summary["warnings"][0].startswith(
        f"{safe.name.removesuffix('.SAFE')}: thermal-noise LUT of HV is all zeros "
        f"(annotation/calibration/{edited.name}; IPF >= 2.9 format)")
    assert summary["warnings"][0] in caplog.messages


def test_wrong_products_are_refused_before_any_output(scene: GeneratedScene,
                                                      tmp_path: Path) -> None:
    from tasks.sentinel1.safe import MissingPolarisationError, WrongModeError, WrongProductTypeError

    slc = tmp_path / "slc" / scene.safe_path.name
    shutil.copytree(scene.safe_path, slc)
    manifest = slc / "manifest.safe"
    manifest.write_text(manifest.read_text().replace(">GRD</", ">SLC</"))
    with pytest.raises(WrongProductTypeError) as info:
        hm.harmonise_scene(slc, tmp_path / "o.zarr", HarmoniseConfig())
    assert str(info.value) == f"{slc}: product type is 'SLC', expected 'GRD'"
    with pytest.raises(WrongModeError, match="acquisition mode is 'EW', expected 'IW'"):
        hm.harmonise_scene(scene.safe_path, tmp_path / "o.zarr",
                           HarmoniseConfig(required_mode="IW"))
    safe = tmp_path / scene.safe_path.name
    shutil.copytree(scene.safe_path, safe)
    for tiff in (safe / "measurement").glob("*-hv-*"):
        tiff.unlink()
    with pytest.raises(MissingPolarisationError, match="measurement file of polarisation HV"):
        hm.harmonise_scene(safe, tmp_path / "o.zarr", HarmoniseConfig())
    assert not (tmp_path / "o.zarr").exists()


class _CountingClock:
    """perf_counter for the harmonise module: 100.0, 100.1, 100.2, ... one step per call."""

    def __init__(self) -> None:
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return 100.0 + 0.1 * (self.calls - 1)


def test_one_tile_with_one_sea_pixel_and_a_counting_clock(
        scene: GeneratedScene, with_land: tuple[dict[str, Any], zarr.Group], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """One tile (chunk 256), land everywhere but one valid pixel, a clock that counts calls.

    The sea means are that one pixel's values; a tile reads the clock at its start, after the
    geocoding, around the sampling and at its end, so the warp share is (0.1 + 0.1) / 0.4.
    """
    import geopandas as gpd
    from shapely.geometry import box

    _, reference = with_land  # same settings, 4 tiles
    cfg = HarmoniseConfig(chunk=256, multilook=3, db_floor=-35.0)
    grid = hm.output_grid(open_safe(scene.safe_path), cfg)
    h, w = grid["shape"]
    valid = np.asarray(zarr_array(reference, VALID_MASK_VAR)[:]) == 1
    rows, cols = _inner_pixels(valid, 1)
    r, c = int(rows[0]), int(cols[0])
    t = grid["transform"]
    x, y = t * (c + 0.5, r + 0.5)
    half = 0.3 * t.a
    everywhere = box(t.c - t.a, t.f + t.e * (h + 1), t.c + t.a * (w + 1), t.f - t.e)
    land_path = tmp_path / "all_but_one.geojson"
    gpd.GeoDataFrame(geometry=[everywhere.difference(box(x - half, y - half, x + half, y + half))],
                     crs=cfg.target_crs).to_file(land_path)
    clock = _CountingClock()
    monkeypatch.setattr(hm, "time", clock)
    with caplog.at_level(logging.INFO, logger="tasks.polar.harmonise"):
        summary, group = _run(scene.safe_path, tmp_path / "one.zarr", cfg, land_path)
    assert clock.calls == 5
    assert summary["warp_share"] == pytest.approx(0.5, abs=1e-9)
    land = np.asarray(zarr_array(group, LAND_MASK_VAR)[:])
    assert land.sum() == h * w - 1 and land[r, c] == 0
    assert summary["land_pixels"] == h * w - 1
    want = np.asarray(zarr_array(reference, BACKSCATTER_VAR)[:, r, c])
    assert summary["hh_db_mean"] == pytest.approx(float(want[0]), abs=1e-4)
    assert summary["hv_db_mean"] == pytest.approx(float(want[1]), abs=1e-4)
    assert zarr_array(group, BACKSCATTER_VAR).chunks == (3, h, w)  # one chunk
    name = scene.safe_path.name.removesuffix(".SAFE")
    assert (f"harmonising {name} -> {tmp_path / 'one.zarr'} ({h}x{w}, 1 tiles; "
            f"geocoding {grid['geocoding'].residuals})" in caplog.messages)


def test_a_product_changed_in_place_is_read_again_by_the_next_run(
        scene: GeneratedScene, tmp_path: Path) -> None:
    """Tile tasks cache the opened product per run: a second run must not see the first's."""
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    cfg = HarmoniseConfig(chunk=256, multilook=3)
    here = tmp_path / "here" / scene.safe_path.name
    shutil.copytree(scene.safe_path, here)
    _, before = _run(here, tmp_path / "before.zarr", cfg, None)
    zero_noise_luts(here, ["HV"])
    _, after = _run(here, tmp_path / "after.zarr", cfg, None)
    fresh = tmp_path / "fresh" / scene.safe_path.name
    shutil.copytree(here, fresh)
    _, reference = _run(fresh, tmp_path / "fresh.zarr", cfg, None)
    hv_before, hv_after, hv_fresh = (np.asarray(zarr_array(g, BACKSCATTER_VAR)[1])
                                     for g in (before, after, reference))
    np.testing.assert_array_equal(hv_after, hv_fresh)
    valid = np.isfinite(hv_before) & np.isfinite(hv_after)
    assert (hv_after[valid] > hv_before[valid]).mean() > 0.9  # the noise is no longer removed


def test_a_failing_run_leaves_the_previous_store_and_no_temporary(
        scene: GeneratedScene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store is replaced atomically: a tile failing in a later run changes no byte of it."""
    cfg = HarmoniseConfig(chunk=64, multilook=3)
    out = tmp_path / "out" / "s.zarr"
    _run(scene.safe_path, out, cfg, None)

    def files() -> dict[str, bytes]:
        return {p.relative_to(out).as_posix(): p.read_bytes()
                for p in sorted(out.rglob("*")) if p.is_file()}

    before = files()
    assert any(name.startswith(f"{BACKSCATTER_VAR}/c") for name in before)  # chunks written

    def failing_tile(*args: Any, **kwargs: Any) -> dict[str, float]:
        raise RuntimeError("tile failed")

    monkeypatch.setattr(hm, "_process_tile", failing_tile)
    with pytest.raises(RuntimeError, match="^tile failed$"):
        _run(scene.safe_path, out, cfg, None)
    assert files() == before
    assert [p.name for p in out.parent.iterdir()] == ["s.zarr"]  # no temporary left beside it
