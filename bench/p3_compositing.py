"""P3: monthly median compositing throughput (observations/s) and peak RSS, 1 tile vs N tiles.

An observation is one pixel of one acquisition (10 bands). Measured in the same run:

* eeflow ``run_harmonise`` (chunked, Dask LocalCluster with 2 worker processes) on 1 tile and on
  ``--tiles`` tiles; peak RSS of the process tree (parent + Dask workers) sampled every 50 ms;
* baseline A: naive in-memory xarray ``where(valid).groupby("time.month").median("time")`` on a
  crop (every date loaded at once), throughput extrapolated per observation;
* baseline B: naive per-pixel Python/NumPy loop (``np.median`` per pixel, band and month) on a
  small crop, extrapolated per observation.

Usage: ``.venv/bin/python bench/p3_compositing.py [--size 512] [--tiles 4] [--revisit 5]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("OMP_NUM_THREADS", "1")

from tasks.config.common import validate_config  # noqa: E402
from tasks.domain.crops import S2_BANDS  # noqa: E402
from tasks.food_security.harmonise import run_harmonise  # noqa: E402
from tasks.sentinel2.generator import run_generate  # noqa: E402
from tasks.sentinel2.l2a import list_acquisitions, read_bands, read_scl  # noqa: E402
from tasks.storage import agronomic_year  # noqa: E402

RUN_DATE = "2018-03-01"
MASKED = [0, 1, 3, 8, 9, 10, 11]
TILE_IDS = ["33UWP", "33UXP", "33UVP", "33UUP", "33UWQ", "33UXQ", "33UVQ", "33UUQ",
            "33UWR", "33UXR", "33UVR", "33UUR", "33UWS", "33UXS", "33UVS"]


class PeakRSS:
    """Sample the RSS of this process and its children; keep the peak (bytes)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def config(root: Path, tiles: list[str], size: int, revisit: int, workers: int) -> object:
    return validate_config({
        "use_case": "food_security", "data_root": str(root), "seed": 1,
        "dask": {"cluster": "local", "n_workers": workers, "threads_per_worker": 1,
                 "memory_limit": "2GiB"},
        "ingest": {"generator": {"size_px": size, "tiles": [
            {"id": t, "revisit_days": revisit, "parcels": max(10, size * size // 600)}
            for t in tiles]}},
        "harmonise": {"chunk": 256},
        "samples": {"split": {"train_tiles": [tiles[0]], "val_tiles": [], "test_tiles": []}},
        "predict": {"tile": tiles[0]}, "evaluate": {"tile": tiles[0]},
    })


def load_stack(archive: Path, tile: str, crop: int) -> tuple[np.ndarray, np.ndarray, list]:
    from rasterio.windows import Window

    start, end = agronomic_year(RUN_DATE)
    acqs = list_acquisitions(archive, tile, start, end)
    win = Window(0, 0, crop, crop)
    refl = np.stack([read_bands(a, S2_BANDS, win) for a in acqs])
    valid = np.stack([~np.isin(read_scl(a, win), MASKED) for a in acqs])
    return refl, valid, [a.date for a in acqs]


def xarray_groupby_baseline(refl: np.ndarray, valid: np.ndarray, dates: list) -> float:
    import pandas as pd
    import xarray as xr

    da = xr.DataArray(refl, dims=("time", "band", "y", "x"),
                      coords={"time": pd.to_datetime(dates)})
    mask = xr.DataArray(valid, dims=("time", "y", "x"), coords={"time": da.time})
    t0 = time.perf_counter()
    da.where(mask).groupby("time.month").median("time").values  # noqa: B018
    elapsed = time.perf_counter() - t0
    return refl.shape[0] * refl.shape[2] * refl.shape[3] / elapsed


def eeflow_kernel(refl: np.ndarray, valid: np.ndarray, dates: list) -> float:
    """In-memory throughput of eeflow's median kernel (same input as the xarray baseline)."""
    from tasks.food_security.harmonise import monthly_median_composite

    months = np.array([d.month for d in dates])
    t0 = time.perf_counter()
    for month in range(1, 13):
        sel = months == month
        monthly_median_composite(refl[sel], valid[sel])
    elapsed = time.perf_counter() - t0
    return refl.shape[0] * refl.shape[2] * refl.shape[3] / elapsed


def python_loop_baseline(refl: np.ndarray, valid: np.ndarray, dates: list) -> float:
    months = np.array([d.month for d in dates])
    t0 = time.perf_counter()
    for y in range(refl.shape[2]):
        for x in range(refl.shape[3]):
            for month in range(1, 13):
                sel = (months == month) & valid[:, y, x]
                for b in range(refl.shape[1]):
                    np.median(refl[sel, b, y, x]) if sel.any() else np.nan
    elapsed = time.perf_counter() - t0
    return refl.shape[0] * refl.shape[2] * refl.shape[3] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--revisit", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="p3_"))
    tiles = TILE_IDS[: args.tiles]
    t0 = time.perf_counter()
    many = config(root / "many", tiles, args.size, args.revisit, args.workers)
    gen = run_generate(many, RUN_DATE)
    print(f"generated {gen['acquisitions']} in {time.perf_counter() - t0:.0f} s")
    one = config(root / "many", tiles[:1], args.size, args.revisit, args.workers)
    results = {}
    for name, cfg in (("1 tile", one), (f"{args.tiles} tiles", many)):
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            out = run_harmonise(cfg, RUN_DATE)
            elapsed = time.perf_counter() - t0
        obs = sum(t["observations"] for t in out["tiles"].values())
        results[name] = (obs, elapsed, obs / elapsed, rss.peak / 2**20)
        print(f"eeflow harmonise {name}: {obs:,} obs in {elapsed:.1f} s = {obs / elapsed:,.0f} "
              f"obs/s, peak RSS (tree) {rss.peak / 2**20:.0f} MiB")
    archive = Path(gen["archive"])
    with PeakRSS() as rss:
        refl, valid, dates = load_stack(archive, tiles[0], 128)
        xr_rate = xarray_groupby_baseline(refl, valid, dates)
    print(f"baseline xarray groupby-median (128x128 crop, in memory): {xr_rate:,.0f} obs/s, "
          f"peak RSS {rss.peak / 2**20:.0f} MiB")
    kernel_rate = eeflow_kernel(refl, valid, dates)
    print(f"eeflow median kernel, same in-memory crop: {kernel_rate:,.0f} obs/s "
          f"({kernel_rate / xr_rate:.1f}x the xarray groupby)")
    small = refl[:, :, :16, :16], valid[:, :16, :16]
    loop_rate = python_loop_baseline(*small, dates)
    print(f"baseline per-pixel Python loop (16x16 crop): {loop_rate:,.0f} obs/s")
    best = results[f"{args.tiles} tiles"][2]
    print(f"end-to-end (incl. GeoTIFF reads) vs in-memory xarray groupby: {best / xr_rate:.1f}x;"
          f" vs python loop: "
          f"{best / loop_rate:.0f}x; dates per tile {gen['acquisitions']}; "
          f"{dt.datetime.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
