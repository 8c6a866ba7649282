"""Geocoding error per fixture (affine vs thin-plate spline) and warp cost relative to harmonise.

Fixtures: the real EW GRDM grid (tests/data/s1_ew_grd, EPSG:3413), the real IW GRDH grid
(tests/data/s1_safe/sarsen, its UTM zone), and a generated curved EW swath (4000 x 256, known
truth). Error per fixture and method: leave-one-out error at the interior tie points (metres;
median / p95 / max); for the generated scene also the placement error against the true geometry
at a dense set of image pixels. Cost: a generated 2000 x 2000 scene harmonised with 2 threads;
``warp_share`` is the share of the harmonise tasks' time spent in the warp (inverse geocoding of
every map pixel, bilinear sampling of 3 bands), as harmonise itself measures it per tile.
Headline ratio: affine / TPS leave-one-out median error on the real EW GRDM grid (the affine fit is
the plain baseline); goals: TPS LOO max <= 40 m on that grid and a median placement error <= 0.5 px
(20 m at 40 m pixels) on the generated curved swath. CPU of the harmonise = user + system.
Usage: .venv/bin/python bench/geocoding.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import Timer, add_quick_flag, report  # noqa: E402

PIXEL_M = 40.0
EW = (ROOT / "tests/data/s1_ew_grd"
      / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE")
IW = (ROOT / "tests/data/s1_safe/sarsen"
      / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
EW_SLC = (ROOT / "tests/data/s1_safe/xarray-sentinel"
          / "S1A_EW_SLC__1SDH_20210403T122536_20210403T122630_037286_046484_8152.SAFE")
START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)


def _utm(grid) -> str:
    lon, lat = float(np.mean(grid.longitude)), float(np.mean(grid.latitude))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1}"


def _row(name: str, crs: str, grid, truth=None) -> list[dict]:
    from tasks.sentinel1.geocode import fit_geocoding

    rows = []
    for method in ("affine", "tps"):
        geo = fit_geocoding(grid, crs, method)
        r = geo.residuals
        row = {"fixture": name, "crs": crs, "method": method, "tie_points": r["n_tie_points"],
               "loo_median_m": r["loo_median_m"], "loo_p95_m": r["loo_p95_m"],
               "loo_max_m": r["loo_max_m"], "affine_rms_m": r["affine_rms_m"]}
        if truth is not None:
            line, pixel, tx, ty = truth
            fx, fy = geo.to_crs(line, pixel)
            err = np.hypot(fx - tx, fy - ty)
            row |= {"truth_median_m": float(np.median(err)),
                    "truth_p95_m": float(np.percentile(err, 95)), "truth_max_m": float(err.max())}
        rows.append(row)
    return rows


def accuracy(tmp: Path, lines: int = 4000) -> list[dict]:
    from tasks.sentinel1.generator import generate_ew_grd_scene
    from tasks.sentinel1.safe import open_safe

    rows = _row("EW GRDM real (483 tie points)", "EPSG:3413", open_safe(EW).geolocation_grid())
    iw = open_safe(IW).geolocation_grid()
    rows += _row("IW GRDH real", _utm(iw), iw)
    slc = open_safe(EW_SLC).geolocation_grid()
    rows += _row("EW SLC real (EW1 swath)", "EPSG:3413", slc)
    scene = generate_ew_grd_scene(tmp / "curved", seed=3, start_time=START, lines=lines,
                                  samples=256, land_fraction=0.0)
    line, pixel = np.meshgrid(np.arange(0, lines, 7.3), np.arange(0, 256, 5.1), indexing="ij")
    tx, ty = scene.true_map_position(line, pixel)
    rows += _row(f"generated curved {lines}x256", "EPSG:3413",
                 open_safe(scene.safe_path).geolocation_grid(), (line, pixel, tx, ty))
    return rows


def cost(tmp: Path, size: int = 2000) -> dict:
    """Harmonise a generated scene; the share of task time spent geocoding + resampling."""
    import dask

    from tasks.config.polar import HarmoniseConfig
    from tasks.polar.harmonise import harmonise_scene
    from tasks.sentinel1.generator import generate_ew_grd_scene

    scene = generate_ew_grd_scene(tmp / "cost", seed=1, start_time=START, lines=size,
                                  samples=size)
    with Timer() as timer, dask.config.set(scheduler="threads", num_workers=2):
        summary = harmonise_scene(scene.safe_path, tmp / "h.zarr", HarmoniseConfig(chunk=512))
    return {"scene": f"generated {size}x{size}", "grid": summary["shape"],
            "harmonise_s": timer.wall_s, "harmonise_cpu_s": timer.cpu_s,
            "warp_share": summary["warp_share"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_quick_flag(parser)
    args = parser.parse_args()
    lines, size = (1000, 600) if args.quick else (4000, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        rows = accuracy(Path(tmp), lines)
        for row in rows:
            print(json.dumps(row))
        harmonise = cost(Path(tmp), size)
        print(json.dumps(harmonise))
    ew = {r["method"]: r for r in rows if r["fixture"].startswith("EW GRDM")}
    curved = next(r for r in rows if r["fixture"].startswith("generated") and r["method"] == "tps")
    met = (ew["tps"]["loo_max_m"] <= 40.0
           and curved["truth_median_m"] <= 0.5 * PIXEL_M)
    report("geocoding", ew["affine"]["loo_median_m"] / ew["tps"]["loo_median_m"],
           "TPS LOO max <= 40 m (real EW GRDM), median <= 0.5 px on the curved swath "
           "(ratio: affine / TPS LOO median, EW GRDM)", met,
           {"accuracy": rows, "harmonise_cost": harmonise},
           baseline="affine geocoding fitted to the same tie points", quick=args.quick)


if __name__ == "__main__":
    main()
