"""Synthetic Sentinel-2 L2A time series over farmland with an INVEKOS-style parcel map.

Made to be plausible to a remote-sensing reviewer (see ``GENERATORS.md``), not to be easy:

* **Parcels**: field blocks separated by roads (``road_width_px``), split recursively into
  adjacent rectangular parcels of a few hectares with sub-pixel boundaries; some blocks are forest
  (not in the parcel map). Parcels carry real Austrian INVEKOS codes and German names
  (``SNAR_CODE``, ``SNAR_BEZEICHNUNG``) drawn per class from ``crop_shares.csv`` (EuroCrops
  ``at_2021.csv`` codes), with the class imbalance of Austrian declarations (grassland and maize
  dominant, winter caraway ~1:200 to grassland). Grassland and plantations are permanent, arable
  parcels rotate from year to year. A small share declares a code missing from the code lists.
* **Phenology**: per-class green-cover / residue / flowering curves (``phenology.csv``, days since
  1 September) with per-parcel sowing shifts (+-2 weeks), amplitude and soil-brightness variation,
  grassland mowing cuts (2-5 per year, regrowth ~25 days), autumn catch crops before spring crops,
  in-field anomalies (wet / bare patches) and a few parcels whose declared crop is not the one
  grown (declaration errors). Reflectance is a linear mix of green-vegetation, soil, residue and
  flower spectra (typical Sentinel-2 L2A values), blurred by a Gaussian MTF (sigma 0.6 px, so
  border pixels are mixed) plus sensor noise.
* **Acquisitions**: per tile its own revisit (e.g. 3 vs 5 days) and phase, ~4 % missing dates,
  S2A/S2B alternating; swath-edge nodata wedges on some dates.
* **Atmosphere / snow**: per date cloud cover from a U-shaped Beta distribution around Austrian
  monthly means (winter 65-80 %, summer ~30 %), fractal cloud fields with thin cirrus (SCL 10),
  medium / high probability (8 / 9) and their shifted shadows (3); snow (11) in winter; months
  listed in a tile's ``clouded_months`` fully clouded.

Output (:func:`run_generate`): ``{root}/food_security/ingest/{agronomic_year}/`` with
``l2a/{tile}/{item_id}/...`` (see :mod:`tasks.sentinel2.l2a`) and ``parcels.parquet``
(GeoParquet, UTM 33N). Deterministic by ``seed``.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig, GeneratorConfig, TileConfig
from tasks.domain.crop_codes import load_crop_class_mapping
from tasks.domain.crops import CROP_CLASSES, S2_BANDS
from tasks.sentinel2.l2a import write_acquisition
from tasks.sentinel2.tiles import PIXEL_SIZE_M, TileGrid, synthetic_tile_grid
from tasks.storage import agronomic_year, agronomic_year_key, atomic_dir, stage_dir, write_manifest

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent
PARCELS_FILE = "parcels.parquet"
L2A_DIR = "l2a"
PARCEL_ID_COLUMN = "FS_KENNUNG"
CROP_CODE_COLUMN = "SNAR_CODE"
CROP_NAME_COLUMN = "SNAR_BEZEICHNUNG"
UNKNOWN_CODE = 998
UNKNOWN_NAME = "KULTUR NICHT IM CODEVERZEICHNIS"

# Typical L2A surface reflectance spectra, band order of S2_BANDS
# (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12); green vegetation / bare soil / dry residue after
# Clevers & Gitelson (2013) and the ESA S2 L2A validation reports; snow and cloud after
# Coluzzi et al. (2018).
SPECTRUM = {
    "vegetation": [0.030, 0.065, 0.035, 0.100, 0.260, 0.330, 0.380, 0.400, 0.190, 0.090],
    "soil": [0.075, 0.100, 0.130, 0.155, 0.170, 0.180, 0.190, 0.200, 0.300, 0.250],
    "residue": [0.080, 0.110, 0.140, 0.180, 0.210, 0.230, 0.250, 0.270, 0.360, 0.280],
    "flower": [0.045, 0.130, 0.110, 0.170, 0.280, 0.330, 0.370, 0.380, 0.220, 0.110],
    "forest": [0.025, 0.050, 0.030, 0.080, 0.200, 0.250, 0.290, 0.300, 0.140, 0.060],
    "asphalt": [0.090, 0.100, 0.110, 0.120, 0.130, 0.140, 0.150, 0.155, 0.180, 0.170],
    "snow": [0.850, 0.830, 0.800, 0.780, 0.760, 0.740, 0.720, 0.700, 0.080, 0.060],
    "cloud": [0.520, 0.500, 0.490, 0.500, 0.510, 0.510, 0.520, 0.510, 0.400, 0.300],
}
#: Mean cloud cover (0..1) per calendar month over Austria (ERA5 / S2 scene statistics, rounded).
MONTHLY_CLOUD_COVER = {
    1: 0.75, 2: 0.65, 3: 0.55, 4: 0.50, 5: 0.45, 6: 0.40,
    7: 0.33, 8: 0.30, 9: 0.35, 10: 0.45, 11: 0.70, 12: 0.80,
}
#: Probability of a snow-covered acquisition per calendar month (lowland Austria).
MONTHLY_SNOW_PROBABILITY = {11: 0.10, 12: 0.35, 1: 0.45, 2: 0.35, 3: 0.10}
SPRING_CROPS = frozenset(
    {"maize", "legumes", "potato", "beet", "spring_barley", "soy", "sunflower"}
)
PERMANENT_CLASSES = ("grassland", "permanent_plantations")


@dataclass(frozen=True)
class PhenologyProfile:
    """Piecewise-linear curves against days since 1 September."""

    day: np.ndarray
    green: np.ndarray
    residue: np.ndarray
    flower: np.ndarray


def _read_data_csv(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def load_phenology() -> dict[str, PhenologyProfile]:
    """Read ``phenology.csv`` into profiles (one per crop class plus ``other_*`` variants)."""
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in _read_data_csv("phenology.csv"):
        rows.setdefault(row["profile"], []).append(
            (float(row["day"]), float(row["green"]), float(row["residue"]), float(row["flower"]))
        )
    profiles = {}
    for name, points in rows.items():
        arr = np.array(sorted(points), dtype=np.float64)
        profiles[name] = PhenologyProfile(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    missing = [c for c in CROP_CLASSES if c != "other" and c not in profiles]
    if missing:
        raise ValueError(f"phenology.csv has no profile for classes {missing}")
    return profiles


def load_crop_shares() -> dict[str, tuple[float, list[int]]]:
    """Read ``crop_shares.csv``: class -> (parcel share, INVEKOS codes to declare)."""
    mapping = load_crop_class_mapping()
    shares = {}
    for row in _read_data_csv("crop_shares.csv"):
        crop_class = row["crop_class"]
        codes = [int(c) for c in row["main_invekos_codes"].split()]
        for code in codes:
            if mapping.class_of_code(code) != crop_class:
                raise ValueError(
                    f"crop_shares.csv: code {code} maps to {mapping.class_of_code(code)!r}, "
                    f"not {crop_class!r}"
                )
        shares[crop_class] = (float(row["area_share"]), codes)
    if set(shares) != set(CROP_CLASSES):
        raise ValueError(f"crop_shares.csv must list every class of {list(CROP_CLASSES)}")
    return shares


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def tile_key(tile: str) -> int:
    """Return a stable integer of a tile id (for seeds and parcel ids)."""
    return zlib.crc32(tile.encode())


def _parcel_id_base(tile: str) -> int:
    zone, band, col, row = int(tile[:2]), tile[2], tile[3], tile[4]
    index = ((zone * 26 + ord(band) - 65) * 26 + ord(col) - 65) * 26 + ord(row) - 65
    return index * 100_000


# --------------------------------------------------------------------------------------------
# Parcel layout (constant across years)


@dataclass(frozen=True)
class ParcelLayout:
    """Rectangles in pixel units (x0, y0, x1, y1; float, sub-pixel) of parcels and forest."""

    parcels: np.ndarray  # float64 (n, 4)
    forest: np.ndarray  # float64 (m, 4)


def layout_parcels(size_px: int, n_parcels: int, rng: np.random.Generator,
                   road_width_px: int, forest_fraction: float) -> ParcelLayout:
    """Cut a tile into road-separated blocks and the blocks into about ``n_parcels`` parcels."""
    target_area = 0.85 * size_px**2 / n_parcels
    block_edge = max(8.0, np.sqrt(target_area * 6.0))
    min_side = 3.0

    def cuts() -> list[float]:
        pos = [0.0]
        while pos[-1] < size_px:
            pos.append(pos[-1] + block_edge * rng.uniform(0.7, 1.3))
        pos[-1] = float(size_px)
        if len(pos) > 2 and pos[-1] - pos[-2] < block_edge * 0.4:
            pos.pop(-2)
        return pos

    xs, ys = cuts(), cuts()
    half = road_width_px / 2.0
    parcels: list[tuple[float, float, float, float]] = []
    forest: list[tuple[float, float, float, float]] = []
    for j in range(len(ys) - 1):
        for i in range(len(xs) - 1):
            x0 = xs[i] + (half if i > 0 else 0.0)
            x1 = xs[i + 1] - (half if i + 1 < len(xs) - 1 else 0.0)
            y0 = ys[j] + (half if j > 0 else 0.0)
            y1 = ys[j + 1] - (half if j + 1 < len(ys) - 1 else 0.0)
            if rng.random() < forest_fraction:
                forest.append((x0, y0, x1, y1))
                continue
            stack = [(x0, y0, x1, y1)]
            while stack:
                a0, b0, a1, b1 = stack.pop()
                w, h = a1 - a0, b1 - b0
                if w * h <= target_area * rng.uniform(0.7, 1.5) or max(w, h) < 2 * min_side:
                    parcels.append((a0, b0, a1, b1))
                    continue
                frac = rng.uniform(0.3, 0.7)
                if w >= h:
                    cut = a0 + w * frac
                    stack += [(a0, b0, cut, b1), (cut, b0, a1, b1)]
                else:
                    cut = b0 + h * frac
                    stack += [(a0, b0, a1, cut), (a0, cut, a1, b1)]
    if not parcels:  # every block drawn as forest: keep one field block
        parcels.append(forest.pop())
    return ParcelLayout(np.array(parcels, dtype=np.float64).reshape(-1, 4),
                        np.array(forest, dtype=np.float64).reshape(-1, 4))


def rasterise_rectangles(rects: np.ndarray, size_px: int) -> np.ndarray:
    """Return int32 (y, x): index of the rectangle containing each pixel centre, -1 outside."""
    out = np.full((size_px, size_px), -1, dtype=np.int32)
    for k, (x0, y0, x1, y1) in enumerate(rects):
        c0, c1 = int(np.ceil(x0 - 0.5)), int(np.ceil(x1 - 0.5))
        r0, r1 = int(np.ceil(y0 - 0.5)), int(np.ceil(y1 - 0.5))
        out[max(r0, 0):min(r1, size_px), max(c0, 0):min(c1, size_px)] = k
    return out


# --------------------------------------------------------------------------------------------
# Crops per year


@dataclass(frozen=True)
class ParcelCrops:
    """Per-parcel declaration and the hidden truth used to synthesise the imagery."""

    declared_class: list[str]
    code: np.ndarray  # int (n,)
    name: list[str]
    profile: list[str]  # phenology profile actually grown
    shift_days: np.ndarray  # float (n,)
    amplitude: np.ndarray  # float (n,)
    soil_brightness: np.ndarray  # float (n,)
    catch_crop: np.ndarray  # bool (n,)
    cut_days: list[np.ndarray]  # grassland mowing days per parcel (empty for others)


def assign_crops(n: int, tile: str, year: int, seed: int, difficulty: float,
                 unknown_code_fraction: float) -> ParcelCrops:
    """Draw each parcel's declared crop, INVEKOS code and phenology variation for one year."""
    shares = load_crop_shares()
    profiles = load_phenology()
    mapping = load_crop_class_mapping()
    classes = list(CROP_CLASSES)
    weights = np.array([shares[c][0] for c in classes])
    weights = weights / weights.sum()
    permanent_rng = _rng(seed, tile_key(tile), 1)
    year_rng = _rng(seed, tile_key(tile), year, 2)
    perm_idx = [classes.index(c) for c in PERMANENT_CLASSES]
    p_perm = weights[perm_idx].sum()
    arable_w = weights.copy()
    arable_w[perm_idx] = 0.0
    arable_w /= arable_w.sum()
    draw_perm = permanent_rng.random(n)
    perm_choice = permanent_rng.choice(perm_idx, size=n, p=weights[perm_idx] / p_perm)
    arable_choice = year_rng.choice(len(classes), size=n, p=arable_w)
    class_index = np.where(draw_perm < p_perm, perm_choice, arable_choice)
    declared = [classes[i] for i in class_index]
    other_profiles = sorted(p for p in profiles if p.startswith("other_"))
    codes = np.zeros(n, dtype=np.int64)
    names: list[str] = []
    grown: list[str] = []
    cut_days: list[np.ndarray] = []
    for k, crop_class in enumerate(declared):
        options = shares[crop_class][1]
        # the first code is the common one; the rest share the remaining 30 %
        probs = np.array([0.7] + [0.3 / (len(options) - 1)] * (len(options) - 1)) \
            if len(options) > 1 else np.array([1.0])
        code = int(year_rng.choice(options, p=probs))
        name = mapping.code_to_name[code]
        profile = crop_class if crop_class != "other" else str(year_rng.choice(other_profiles))
        if year_rng.random() < unknown_code_fraction:
            code, name, profile = UNKNOWN_CODE, UNKNOWN_NAME, str(year_rng.choice(other_profiles))
        elif year_rng.random() < 0.015 * difficulty:  # declaration error: another crop grown
            profile = str(year_rng.choice([c for c in classes if c not in ("other", crop_class)]))
        codes[k] = code
        names.append(name)
        grown.append(profile)
        if profile == "grassland":
            n_cuts = int(year_rng.integers(2, 6))
            first = year_rng.uniform(255, 275)  # mid-May..early June
            gaps = year_rng.uniform(32, 48, size=n_cuts - 1)
            days = np.concatenate([[first], first + np.cumsum(gaps)])
            days = np.concatenate([days[days < 365], [year_rng.uniform(-25, 15)]])
            cut_days.append(days)
        else:
            cut_days.append(np.empty(0))
    spread = 7.0 * difficulty
    return ParcelCrops(
        declared_class=declared,
        code=codes,
        name=names,
        profile=grown,
        shift_days=np.clip(year_rng.normal(0, spread, n), -2 * spread - 1e-9, 2 * spread + 1e-9),
        amplitude=year_rng.uniform(1 - 0.15 * difficulty, 1 + 0.05 * difficulty, n).clip(0.5, 1.2),
        soil_brightness=year_rng.uniform(1 - 0.25 * difficulty, 1 + 0.25 * difficulty, n).clip(
            0.4, 1.8),
        catch_crop=np.array([c in SPRING_CROPS for c in grown], dtype=bool)
        & (year_rng.random(n) < 0.3),
        cut_days=cut_days,
    )


def parcel_curves(crops: ParcelCrops, day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-parcel green cover, residue and flower fractions on ``day`` (since 1 Sep)."""
    profiles = load_phenology_cached()
    n = len(crops.profile)
    green, residue, flower = np.zeros(n), np.zeros(n), np.zeros(n)
    profile_arr = np.array(crops.profile)
    for name in set(crops.profile):
        idx = np.flatnonzero(profile_arr == name)
        p = profiles[name]
        t = day - crops.shift_days[idx]
        green[idx] = np.interp(t, p.day, p.green)
        residue[idx] = np.interp(t, p.day, p.residue)
        flower[idx] = np.interp(t, p.day, p.flower)
    for k, cuts in enumerate(crops.cut_days):
        for cut in cuts:
            since = day - cut
            if 0 <= since < 25:
                green[k] *= 0.35 + 0.65 * since / 25.0
    catch = crops.catch_crop & (day < 100)
    green[catch] = np.maximum(green[catch], 0.45 * (1 - day / 100.0))
    return np.clip(green * crops.amplitude, 0, 1), residue, flower


_PHENOLOGY: dict[str, PhenologyProfile] | None = None


def load_phenology_cached() -> dict[str, PhenologyProfile]:
    """Return :func:`load_phenology`, read once per process."""
    global _PHENOLOGY
    if _PHENOLOGY is None:
        _PHENOLOGY = load_phenology()
    return _PHENOLOGY


# --------------------------------------------------------------------------------------------
# Imagery


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scales: Sequence[float],
                 weights: Sequence[float]) -> np.ndarray:
    """Return a float32 field of summed bilinearly upsampled random grids (0 mean, ~unit std)."""
    h, w = shape
    total = np.zeros(shape, dtype=np.float32)
    for scale, weight in zip(scales, weights, strict=True):
        gh, gw = int(np.ceil(h / scale)) + 2, int(np.ceil(w / scale)) + 2
        coarse = rng.standard_normal((gh, gw)).astype(np.float32)
        fine = ndimage.zoom(coarse, scale, order=1, mode="nearest")
        total += weight * fine[:h, :w]
    return total / np.float32(np.sqrt(np.sum(np.square(weights))))


@dataclass
class TileScene:
    """Static per-tile, per-year rasters the acquisitions are synthesised from."""

    grid: TileGrid
    parcel_index: np.ndarray  # int32 (y, x), -1 outside parcels
    forest: np.ndarray  # bool (y, x)
    road: np.ndarray  # bool (y, x)
    pixel_gain: np.ndarray  # float32 (y, x) within-parcel variation of green cover
    pixel_soil: np.ndarray  # float32 (y, x) within-parcel soil brightness variation
    anomaly: np.ndarray  # bool (y, x) wet / bare patches
    crops: ParcelCrops
    tile_cfg: TileConfig
    season_start: dt.date


def build_scene(gen: GeneratorConfig, tile_cfg: TileConfig, season_start: dt.date,
                seed: int) -> tuple[TileScene, ParcelLayout]:
    """Lay out a tile's parcels and draw the year's crops and per-pixel variation."""
    size = gen.size_px
    tseed = tile_cfg.seed if tile_cfg.seed is not None else seed
    layout = layout_parcels(size, tile_cfg.parcels, _rng(tseed, tile_key(tile_cfg.id), 0),
                            gen.road_width_px, gen.forest_fraction)
    parcel_index = rasterise_rectangles(layout.parcels, size)
    forest = rasterise_rectangles(layout.forest, size) >= 0
    road = (parcel_index < 0) & ~forest
    crops = assign_crops(len(layout.parcels), tile_cfg.id, season_start.year, tseed,
                         gen.difficulty, gen.unknown_code_fraction)
    rng = _rng(tseed, tile_key(tile_cfg.id), season_start.year, 3)
    d = gen.difficulty
    pixel_gain = 1 + 0.06 * d * smooth_noise(rng, (size, size), [6, 2], [0.7, 0.3])
    pixel_gain += 0.03 * d * rng.standard_normal((size, size)).astype(np.float32)
    pixel_soil = 1 + 0.08 * d * smooth_noise(rng, (size, size), [10], [1.0])
    blobs = smooth_noise(rng, (size, size), [4], [1.0]) > 2.3
    has_anomaly = rng.random(len(layout.parcels)) < 0.1 * max(d, 0.1)
    anomaly = blobs & (parcel_index >= 0) & has_anomaly[np.maximum(parcel_index, 0)]
    scene = TileScene(synthetic_tile_grid(tile_cfg.id, size), parcel_index, forest, road,
                      pixel_gain.astype(np.float32), pixel_soil.astype(np.float32), anomaly,
                      crops, tile_cfg, season_start)
    return scene, layout


def surface_reflectance(scene: TileScene, date: dt.date, rng: np.random.Generator,
                        difficulty: float) -> np.ndarray:
    """Return cloud-free surface reflectance float32 (band, y, x) of the scene on ``date``."""
    day = float((date - scene.season_start).days)
    green_p, residue_p, flower_p = parcel_curves(scene.crops, day)
    idx = np.maximum(scene.parcel_index, 0)
    inside = scene.parcel_index >= 0
    green = np.where(inside, green_p[idx] * scene.pixel_gain, 0).astype(np.float32)
    green[scene.anomaly] *= 0.25
    seasonal = 0.5 + 0.5 * np.cos(2 * np.pi * (day - 320) / 365.0)  # 1 in late July
    green[scene.forest] = 0.55 + 0.3 * seasonal
    green = np.clip(green, 0, 1)
    residue = np.where(inside, residue_p[idx], 0).astype(np.float32)
    flower = np.where(inside, flower_p[idx], 0).astype(np.float32)
    soil_gain = np.where(inside, scene.crops.soil_brightness[idx] * scene.pixel_soil,
                         0.7).astype(np.float32)
    spec = {k: np.asarray(v, dtype=np.float32)[:, None, None] for k, v in SPECTRUM.items()}
    background = (1 - residue) * soil_gain * spec["soil"] + residue * spec["residue"]
    veg = np.where(scene.forest, spec["forest"], spec["vegetation"])
    refl = green * veg + (1 - green) * background
    refl = (1 - flower) * refl + flower * spec["flower"]
    refl = np.where(scene.road, spec["asphalt"], refl)
    refl = ndimage.gaussian_filter(refl, sigma=(0, 0.6, 0.6), mode="nearest")
    refl *= np.float32(1 + 0.02 * difficulty * rng.standard_normal())
    refl += np.float32(0.004) * rng.standard_normal(refl.shape, dtype=np.float32)
    return np.clip(refl, 0.0005, 1.2).astype(np.float32)


def _up2(a: np.ndarray) -> np.ndarray:
    """20 m -> 10 m: repeat every pixel 2 x 2."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def _clouds(rng: np.random.Generator, cfg: TileConfig, month: int,
            half: int) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Cloud cover of the date, the cloud field at 20 m, its mask and threshold."""
    mean_cover = min(0.97, MONTHLY_CLOUD_COVER[month] * cfg.cloudiness)
    if month in cfg.clouded_months:
        cover = 1.0
    elif mean_cover <= 0:
        cover = 0.0
    else:
        concentration = 0.8
        cover = float(rng.beta(concentration * mean_cover, concentration * (1 - mean_cover)))
    field = smooth_noise(rng, (half, half), [max(half / 3, 4), max(half / 12, 2)], [0.8, 0.4])
    cloud = np.zeros((half, half), dtype=bool)
    if cover >= 0.999:
        cloud[:] = True
        threshold = float(field.min()) - 1.0
    elif cover > 0.005:
        threshold = float(np.quantile(field, 1 - cover))
        cloud = field > threshold
    else:
        threshold = float(field.max()) + 1.0
    return cover, field, cloud, threshold


def _snow_and_nodata(rng: np.random.Generator, month: int, half: int,
                     cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Snow (not under clouds) and a swath-edge no-data wedge, both at 20 m."""
    snow = np.zeros((half, half), dtype=bool)
    if rng.random() < MONTHLY_SNOW_PROBABILITY.get(month, 0.0):
        snow_field = smooth_noise(rng, (half, half), [max(half / 4, 2)], [1.0])
        snow = (snow_field > np.quantile(snow_field, 1 - rng.uniform(0.5, 1.0))) & ~cloud
    nodata20 = np.zeros((half, half), dtype=bool)
    if rng.random() < 0.08:
        yy, xx = np.mgrid[0:half, 0:half]
        nodata20 = (xx + yy * rng.uniform(0.2, 0.6)) < half * rng.uniform(0.1, 0.5)
    return snow, nodata20


def _scene_classification(refl: np.ndarray, masks: dict[str, np.ndarray], field: np.ndarray,
                          threshold: float) -> np.ndarray:
    """SCL uint8 at 20 m: vegetation / bare by NDVI, then snow, shadow, clouds, no data."""
    green_nir, red = refl[6, ::2, ::2], refl[2, ::2, ::2]
    ndvi = (green_nir - red) / np.maximum(green_nir + red, 1e-6)
    scl = np.where(ndvi > 0.35, 4, 5).astype(np.uint8)
    cloud = masks["cloud"]
    scl[masks["snow"]] = 11
    scl[masks["shadow"]] = 3
    scl[cloud] = np.where(field[cloud] - threshold > 0.25, 9, 8)
    scl[masks["cirrus"]] = 10
    scl[masks["nodata"]] = 0
    return scl


def add_atmosphere(refl: np.ndarray, scene: TileScene, date: dt.date,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Add clouds, shadows, snow and swath nodata.

    Returns:
        (reflectance float32 (band, y, x), SCL uint8 (y/2, x/2) at 20 m, nodata bool (y, x),
        cloud cover fraction).

    """
    size = refl.shape[1]
    half = size // 2
    month = date.month
    cover, field, cloud, threshold = _clouds(rng, scene.tile_cfg, month, half)
    cirrus = cloud & (smooth_noise(rng, (half, half), [max(half / 6, 2)], [1.0]) > 1.0)
    opacity = np.clip((field - threshold) / 0.6, 0.35, 1.0)
    opacity = np.where(cirrus, 0.25, opacity)
    opacity = np.where(cloud, opacity, 0.0).astype(np.float32)
    shift = (4 + int(rng.integers(0, 4)), -3 - int(rng.integers(0, 3)))
    shadow = np.roll(cloud & ~cirrus, shift, axis=(0, 1)) & ~cloud
    snow, nodata20 = _snow_and_nodata(rng, month, half, cloud)

    spec = {k: np.asarray(v, dtype=np.float32)[:, None, None] for k, v in SPECTRUM.items()}
    out = refl.copy()
    snow10 = _up2(snow)
    out = np.where(snow10, 0.1 * out + 0.9 * spec["snow"], out)
    out = np.where(_up2(shadow), out * 0.45, out)
    op10 = _up2(opacity)
    out = (1 - op10) * out + op10 * spec["cloud"] * np.float32(rng.uniform(0.85, 1.25))
    masks = {"snow": snow, "shadow": shadow, "cloud": cloud, "cirrus": cirrus,
             "nodata": nodata20}
    scl = _scene_classification(refl, masks, field, threshold)
    return out.astype(np.float32), scl, _up2(nodata20), cover


def acquisition_dates(tile_cfg: TileConfig, start: dt.date, end: dt.date,
                      seed: int) -> list[tuple[dt.date, str]]:
    """Return (date, platform) of a tile's acquisitions in [start, end] (own revisit / phase)."""
    rng = _rng(seed, tile_key(tile_cfg.id), start.year, 4)
    phase = int(rng.integers(0, tile_cfg.revisit_days))
    dates = []
    k = 0
    day = start + dt.timedelta(days=phase)
    while day <= end:
        if rng.random() >= 0.04:
            dates.append((day, "S2A" if k % 2 == 0 else "S2B"))
        k += 1
        day += dt.timedelta(days=tile_cfg.revisit_days)
    return dates


def _footprint_lonlat(grid: TileGrid) -> list[list[float]]:
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    transformer = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    ring = [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]
    return [[round(v, 7) for v in transformer.transform(x, y)] for x, y in ring]


def parcels_frame(scene: TileScene, layout: ParcelLayout) -> Any:
    """Return the tile's parcels as a GeoDataFrame (UTM) with INVEKOS-style columns."""
    import geopandas as gpd
    from shapely.geometry import box

    t = scene.grid.transform
    geoms = [
        box(t.c + x0 * PIXEL_SIZE_M, t.f - y1 * PIXEL_SIZE_M,
            t.c + x1 * PIXEL_SIZE_M, t.f - y0 * PIXEL_SIZE_M)
        for x0, y0, x1, y1 in layout.parcels
    ]
    base = _parcel_id_base(scene.grid.tile)
    return gpd.GeoDataFrame(
        {
            PARCEL_ID_COLUMN: np.arange(len(geoms), dtype=np.int64) + base,
            CROP_CODE_COLUMN: scene.crops.code.astype(np.int64),
            CROP_NAME_COLUMN: scene.crops.name,
            "SL_FLAECHE_BRUTTO_HA": np.round([g.area / 10_000 for g in geoms], 4),
            "tile": scene.grid.tile,
        },
        geometry=geoms,
        crs=scene.grid.crs,
    )


def generate_tile(gen: GeneratorConfig, tile_cfg: TileConfig, season: tuple[dt.date, dt.date],
                  archive: Path, seed: int) -> tuple[Any, int]:
    """Write one tile's acquisitions of the season into ``archive``; return (parcels, dates)."""
    from tqdm.auto import tqdm

    scene, layout = build_scene(gen, tile_cfg, season[0], seed)
    tseed = tile_cfg.seed if tile_cfg.seed is not None else seed
    dates = acquisition_dates(tile_cfg, season[0], season[1], tseed)
    footprint = _footprint_lonlat(scene.grid)
    for date, platform in tqdm(dates, desc=f"generate {tile_cfg.id}", leave=False):
        rng = _rng(tseed, tile_key(tile_cfg.id), date.toordinal(), 5)
        surface = surface_reflectance(scene, date, rng, gen.difficulty)
        refl, scl, nodata, _ = add_atmosphere(surface, scene, date, rng)
        write_acquisition(archive, scene.grid, date, refl, scl, bands=S2_BANDS,
                          processing_baseline=gen.processing_baseline, platform=platform,
                          nodata_10m=nodata, footprint_lonlat=footprint)
    return parcels_frame(scene, layout), len(dates)


def run_generate(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Generate the L2A tiles and parcel map of the agronomic year containing ``run_date``.

    Writes ``{root}/food_security/ingest/{agronomic_year}/`` (``l2a/`` archive, ``parcels.parquet``,
    ``manifest.json``) atomically; re-running replaces it with identical content.

    Returns:
        ``{"output", "archive", "parcel_map", "agronomic_year", "acquisitions": {tile: n},
        "parcels": n}``.

    """
    import pandas as pd

    gen = cfg.ingest.generator
    season = agronomic_year(run_date)
    key = agronomic_year_key(run_date)
    final = stage_dir(cfg.resolved_root(), cfg.use_case, "ingest", key)
    counts: dict[str, int] = {}
    frames = []
    with atomic_dir(final) as tmp:
        archive = tmp / L2A_DIR
        for tile_cfg in gen.tiles:
            log.info("generating tile %s for %s", tile_cfg.id, key)
            parcels, n_dates = generate_tile(gen, tile_cfg, season, archive, cfg.seed)
            counts[tile_cfg.id] = n_dates
            if tile_cfg.id not in gen.outside_parcel_map:
                frames.append(parcels)
        import geopandas as gpd

        if frames:  # tiles of several UTM zones: one parcel map in the first tile's CRS
            frames = [f if f.crs == frames[0].crs else f.to_crs(frames[0].crs) for f in frames]
        parcel_map = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True) if frames else
                                      parcels.iloc[0:0], crs=(frames or [parcels])[0].crs)
        parcel_map.to_parquet(tmp / PARCELS_FILE, index=False)
        write_manifest(
            tmp, stage="ingest", inputs={"generator": gen.model_dump(mode="json")},
            config_hash=config_hash(cfg),
            counts={"acquisitions": counts, "parcels": len(parcel_map)},
            extra={"agronomic_year": key, "source": "generator", "seed": cfg.seed,
                   "parcel_map_license": "codes: CC BY-SA 4.0 EuroCrops (Schneider et al. 2023)"},
        )
    return {
        "output": str(final),
        "archive": str(final / L2A_DIR),
        "parcel_map": str(final / PARCELS_FILE),
        "agronomic_year": key,
        "acquisitions": counts,
        "parcels": int(len(parcel_map)),
    }
