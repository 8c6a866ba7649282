"""Synthetic harmonised Sentinel-1 scenes + label rasters in the contract of ``tasks.polar.schema``.

Used by the polar ML tests (through ``conftest.py``) and by the benchmarks in ``bench/`` (imported
by path) so they do not depend on the SAFE generator. Classes are blobs (argmax of five sums of
random plane waves, computed strip by strip so a 10,000 x 10,000 scene is written with bounded
memory);
HH / HV means per class follow typical winter C-band values (../shared/GENERATORS.md):
water -24/-29.5, brash -12/-21, young -15.5/-25, level first-year -18/-26.5, deformed -10/-18 dB,
with Gaussian noise of ``noise_db`` and an incidence gradient 19-47 deg across x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from tasks.config.polar import PolarConfig

#: (HH, HV) mean sigma0 in dB for five-class codes 1..5.
CLASS_MEAN_DB = {1: (-24.0, -29.5), 2: (-12.0, -21.0), 3: (-15.5, -25.0), 4: (-18.0, -26.5),
                 5: (-10.0, -18.0)}
CRS = "EPSG:3413"
PIXEL_M = 40.0


def _wave_field(rng: np.random.Generator, n_waves: int, wavelength_px: float) -> list[tuple]:
    waves = []
    for _ in range(n_waves):
        angle = rng.uniform(0, np.pi)
        k = 2 * np.pi / (wavelength_px * rng.uniform(0.6, 1.6))
        waves.append((k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi)))
    return waves


def _evaluate(waves: list[tuple], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(yy.shape, xx.shape), dtype=np.float32)
    for ky, kx, phase in waves:
        out += np.sin(ky * yy + kx * xx + phase).astype(np.float32)
    return out / np.sqrt(len(waves) / 2.0)


def write_synthetic_scene(
    folder: Path,
    scene_id: str = "S1A_EW_GRDM_SYNTH",
    height: int = 256,
    width: int = 256,
    seed: int = 0,
    chunk: int = 128,
    noise_db: float = 1.0,
    land: bool = True,
    no_label_fraction: float = 0.05,
    blob_px: float = 160.0,
) -> tuple[Path, Path]:
    """Write ``{folder}/harmonise/{scene_id}.zarr`` and ``{folder}/labels/{scene_id}.zarr``.

    Returns:
        (scene zarr path, label zarr path). Memory use is one strip of ``chunk`` rows.
    """
    rng = np.random.default_rng(seed)
    class_waves = [_wave_field(rng, 6, wavelength_px=blob_px) for _ in range(5)]
    land_waves = _wave_field(rng, 4, wavelength_px=max(60.0, min(height, width) / 2))
    x0, y0 = -1_000_000.0 + seed * 1000.0, 500_000.0
    transform = (x0, PIXEL_M, 0.0, y0, 0.0, -PIXEL_M)
    xs = x0 + PIXEL_M * (np.arange(width) + 0.5)
    ys = y0 - PIXEL_M * (np.arange(height) + 0.5)
    attrs = {"crs": CRS, "transform": list(transform), "scene_id": scene_id,
             "start_time": "2026-11-25T06:00:00Z", "pixel_spacing_m": PIXEL_M}
    scene_path = folder / "harmonise" / f"{scene_id}.zarr"
    label_path = folder / "labels" / f"{scene_id}.zarr"
    scene_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)

    def _template(data_vars: dict) -> xr.Dataset:
        ds = xr.Dataset(data_vars, coords={"y": ys, "x": xs})
        ds = ds.rio.write_crs(CRS).rio.write_transform(_affine(transform))
        ds.attrs.update(attrs)
        return ds

    import dask.array as da

    scene_tpl = _template({
        "backscatter": (("band", "y", "x"),
                        da.zeros((3, height, width), dtype="float32", chunks=(3, chunk, chunk))),
        "land_mask": (("y", "x"), da.zeros((height, width), dtype="uint8", chunks=chunk)),
        "valid_mask": (("y", "x"), da.zeros((height, width), dtype="uint8", chunks=chunk)),
    }).assign_coords(band=np.array(["HH", "HV", "incidence"], dtype=object))
    label_tpl = _template({
        "label": (("y", "x"), da.zeros((height, width), dtype="uint8", chunks=chunk)),
        "label_binary": (("y", "x"), da.zeros((height, width), dtype="uint8", chunks=chunk)),
    })
    scene_tpl.to_zarr(scene_path, mode="w", compute=False)
    label_tpl.to_zarr(label_path, mode="w", compute=False)
    binary_of = np.array([0, 1, 2, 2, 2, 2], dtype=np.uint8)
    means = np.array([[0.0, 0.0]] + [CLASS_MEAN_DB[c] for c in range(1, 6)], dtype=np.float32)
    xx = np.arange(width, dtype=np.float32)[None, :]
    incidence_row = (19.0 + 28.0 * xx / max(width - 1, 1)).astype(np.float32)
    for r0 in range(0, height, chunk):
        r1 = min(height, r0 + chunk)
        yy = np.arange(r0, r1, dtype=np.float32)[:, None]
        fields = np.stack([_evaluate(w, yy, xx) for w in class_waves])
        label = (fields.argmax(axis=0) + 1).astype(np.uint8)
        land_mask = np.zeros(label.shape, dtype=np.uint8)
        if land:
            land_field = _evaluate(land_waves, yy, xx)
            corner = (yy / height + xx / width) < 0.45
            land_mask = ((land_field > 0.3) & corner).astype(np.uint8)
        strip_rng = np.random.default_rng([seed, r0])
        hh = means[label, 0] + strip_rng.normal(0, noise_db, label.shape).astype(np.float32)
        hv = means[label, 1] + strip_rng.normal(0, noise_db, label.shape).astype(np.float32)
        incidence = np.broadcast_to(incidence_row, label.shape)
        hh = hh - 0.24 * (incidence - 35.0)
        valid = np.ones(label.shape, dtype=np.uint8)
        valid[:, : max(1, width // 64)] = 0  # swath edge without data
        backscatter = np.stack([hh, hv, incidence]).astype(np.float32)
        backscatter[:, valid == 0] = np.nan
        label = np.where(land_mask == 1, 0, label).astype(np.uint8)
        if no_label_fraction > 0:
            label[:, width - int(width * no_label_fraction):] = 0
        region = {"y": slice(r0, r1)}
        strip = xr.Dataset({
            "backscatter": (("band", "y", "x"), backscatter),
            "land_mask": (("y", "x"), land_mask),
            "valid_mask": (("y", "x"), valid),
        })
        strip.to_zarr(scene_path, region=region)
        xr.Dataset({
            "label": (("y", "x"), label),
            "label_binary": (("y", "x"), binary_of[label]),
        }).to_zarr(label_path, region=region)
    return scene_path, label_path


def _affine(transform: tuple[float, ...]):
    from affine import Affine

    return Affine.from_gdal(*transform)


def tiny_polar_config(root: Path, **sections: dict) -> PolarConfig:
    """A PolarConfig writing under ``root``, in-process Dask, small patch budget."""
    data = {
        "data_root": str(root),
        "dask": {"cluster": "synchronous"},
        "patches": {"sizes": [32, 20], "max_per_class": 60, "min_purity": 0.9, "stride": 8,
                    "dataset_version": "vtest"},
        "train": {"epochs": 1, "batch_size": 32, "accelerator": "cpu",
                  "early_stopping_patience": 1},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return PolarConfig.model_validate(data)
