"""On-disk contracts of the polar stages (names shared by writers and readers).

Harmonised scene (``{root}/polar/harmonise/{day}/{scene_id}.zarr``, zarr v3, written by xarray):
    ``backscatter`` float32 (band, y, x), band = HH, HV (sigma0 in dB) and incidence (degrees);
    ``land_mask`` uint8 (y, x), 1 = land; ``valid_mask`` uint8 (y, x), 1 = data present.
    Attributes: ``crs`` (WKT/EPSG string), ``transform`` (6 GDAL geotransform numbers of the
    y/x grid in that CRS), ``scene_id``, ``start_time``, ``pixel_spacing_m``; plus spatial_ref
    (rioxarray) so ``rio.crs`` / ``rio.transform()`` work.

Label raster (``{root}/polar/labels/{day}/{scene_id}.zarr``): ``label`` uint8 (y, x) with codes of
``ice_classes.csv`` (0 = no label / land), and ``label_binary`` uint8 (0 = no label, 1 = water,
2 = ice), same grid and attributes as the harmonised scene.

Training set (``{root}/polar/patches/{dataset_version}/patches_{size}.zarr``): ``x`` float32
(n, band, size, size) raw values (dB / degrees), ``y`` uint8 (n,) five-class code (1..5),
``scene`` (n,) index into attribute ``scenes``; attributes ``band_mean``, ``band_std``,
``class_counts``, ``bands``, ``patch_size``, ``stride``, ``min_purity``, ``dataset_version``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BANDS: tuple[str, ...] = ("HH", "HV", "incidence")
BACKSCATTER_VAR = "backscatter"
LAND_MASK_VAR = "land_mask"
VALID_MASK_VAR = "valid_mask"
LABEL_VAR = "label"
LABEL_BINARY_VAR = "label_binary"
NO_LABEL = 0


@dataclass(frozen=True)
class IceClass:
    """One ice class of the five-class scheme and its binary (water/ice) merge."""

    code: int
    name: str
    label: str
    binary_code: int
    binary_name: str
    colour: str


@cache
def ice_classes() -> tuple[IceClass, ...]:
    """Return the ice classes from ``ice_classes.csv`` (code list kept as data)."""
    path = Path(__file__).with_name("ice_classes.csv")
    with path.open(newline="") as fh:
        return tuple(
            IceClass(
                code=int(row["code"]),
                name=row["name"],
                label=row["label"],
                binary_code=int(row["binary_code"]),
                binary_name=row["binary_name"],
                colour=row["colour"],
            )
            for row in csv.DictReader(fh)
        )


def class_names(scheme: str) -> list[str]:
    """Class names in model-output order for ``five_class`` or ``binary``."""
    if scheme == "five_class":
        return [c.name for c in ice_classes()]
    if scheme == "binary":
        return ["water", "ice"]
    raise ValueError(f"class scheme {scheme!r} unknown; allowed: ['five_class', 'binary']")


def to_model_target(code: int, scheme: str) -> int:
    """Map a five-class code (1..5) to the model's 0-based target index for ``scheme``."""
    by_code = {c.code: c for c in ice_classes()}
    if code not in by_code:
        raise ValueError(f"ice class code {code} unknown; allowed: {sorted(by_code)}")
    return code - 1 if scheme == "five_class" else by_code[code].binary_code
