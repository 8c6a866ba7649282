"""Austrian INVEKOS crop code -> HCAT3 -> the 16 crop classes, from the code lists beside this file.

The tables are data (``codelists/``, see its ``SOURCES.md``): EuroCrops ``at_2021.csv`` maps the
INVEKOS code to an HCAT3 code; ``hcat3_crop_classes.csv`` maps HCAT3 codes to crop classes and is
looked up walking up the HCAT3 hierarchy (trailing digit pairs set to zero, e.g. ``3303011300`` ->
``3303010000`` -> ``3303000000``); ``invekos_code_overrides.csv`` fixes codes whose HCAT3 class is
too coarse (summer caraway). When a code is missing or unknown, the German crop name
(``SNAR_BEZEICHNUNG``) is tried in ``at_2021.csv`` and then in the eo-learn LPIS 2018 group table.
Whatever is still unknown becomes ``other`` and is reported as unknown, never dropped.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.domain.crops import CROP_CLASSES

CODELIST_DIR = Path(__file__).with_name("codelists")
OTHER_CLASS = "other"


@dataclass(frozen=True)
class CropClassMapping:
    """Lookup tables from INVEKOS codes / names to crop class names (see module docstring)."""

    code_to_hcat3: dict[int, int]
    code_to_name: dict[int, str]
    name_to_hcat3: dict[str, int]
    hcat3_to_class: dict[int, str]
    code_overrides: dict[int, str]
    group_of_name: dict[str, str]
    group_to_class: dict[str, str | None]
    hcat3_names: dict[int, str] = field(default_factory=dict)

    def class_of_hcat3(self, hcat3_code: int) -> str:
        """Return the crop class of an HCAT3 code, walking up the hierarchy."""
        code = int(hcat3_code)
        digits = f"{code:010d}"
        for level in range(5, 0, -1):
            candidate = int(digits[: 2 * level].ljust(10, "0"))
            if candidate in self.hcat3_to_class:
                return self.hcat3_to_class[candidate]
        return OTHER_CLASS

    def class_of_code(self, code: int) -> str | None:
        """Return the crop class of an INVEKOS crop code, or None when the code is unknown."""
        if code in self.code_overrides:
            return self.code_overrides[code]
        hcat3 = self.code_to_hcat3.get(code)
        return None if hcat3 is None else self.class_of_hcat3(hcat3)

    def class_of_name(self, name: str) -> str | None:
        """Return the crop class of a German INVEKOS crop name, or None when unknown/ambiguous."""
        key = _normalise_name(name)
        if not key:
            return None
        if key in self.name_to_hcat3:
            return self.class_of_hcat3(self.name_to_hcat3[key])
        group = self.group_of_name.get(key)
        return None if group is None else self.group_to_class.get(group)

    def codes_of_class(self, crop_class: str) -> list[int]:
        """Return the INVEKOS codes that map to ``crop_class`` (sorted)."""
        if crop_class not in CROP_CLASSES:
            raise ValueError(f"unknown crop class {crop_class!r}; allowed: {list(CROP_CLASSES)}")
        return sorted(c for c in self.code_to_hcat3 if self.class_of_code(c) == crop_class)


def _normalise_name(name: object) -> str:
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    return " ".join(str(name).strip().upper().split())


def _read_csv(name: str, delimiter: str = ",", encoding: str = "utf-8") -> list[dict[str, str]]:
    path = CODELIST_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"code list {path} is missing; reinstall eeflow (package data)")
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


@functools.cache
def load_crop_class_mapping() -> CropClassMapping:
    """Read the code lists (once per process) and check every target is one of the 16 classes."""
    code_to_hcat3: dict[int, int] = {}
    code_to_name: dict[int, str] = {}
    name_to_hcat3: dict[str, int] = {}
    for row in _read_csv("at_2021.csv"):
        raw_code = row["original_code"].strip()
        if not raw_code:  # second crop of a mixed declaration: no code of its own
            continue
        code = int(raw_code)
        code_to_hcat3.setdefault(code, int(row["HCAT3_code"]))
        code_to_name.setdefault(code, row["original_name"].strip())
        name_to_hcat3.setdefault(_normalise_name(row["original_name"]), int(row["HCAT3_code"]))
    hcat3_names = {int(r["HCAT3_code"]): r["HCAT3_name"] for r in _read_csv("HCAT3.csv")}
    hcat3_to_class: dict[int, str] = {}
    for row in _read_csv("hcat3_crop_classes.csv"):
        code = int(row["HCAT3_code"])
        if code not in hcat3_names:
            raise ValueError(f"hcat3_crop_classes.csv: HCAT3 code {code} is not in HCAT3.csv")
        hcat3_to_class[code] = _checked_class(row["crop_class"], "hcat3_crop_classes.csv")
    overrides = {
        int(r["original_code"]): _checked_class(r["crop_class"], "invekos_code_overrides.csv")
        for r in _read_csv("invekos_code_overrides.csv")
    }
    group_of_name = {
        _normalise_name(r["CROP_ID"]): r["GROUP_1"].strip()
        for r in _read_csv(
            "at_lpis_2018_crop_to_group_mapping_basic.csv", delimiter=";", encoding="utf-8-sig"
        )
    }
    group_to_class = {
        r["GROUP_1"].strip(): (
            _checked_class(r["crop_class"], "eolearn_group_crop_classes.csv")
            if r["crop_class"].strip() else None
        )
        for r in _read_csv("eolearn_group_crop_classes.csv")
    }
    return CropClassMapping(
        code_to_hcat3=code_to_hcat3,
        code_to_name=code_to_name,
        name_to_hcat3=name_to_hcat3,
        hcat3_to_class=hcat3_to_class,
        code_overrides=overrides,
        group_of_name=group_of_name,
        group_to_class=group_to_class,
        hcat3_names=hcat3_names,
    )


def _checked_class(value: str, source: str) -> str:
    value = value.strip()
    if value not in CROP_CLASSES:
        raise ValueError(f"{source}: crop class {value!r} is not one of {list(CROP_CLASSES)}")
    return value


@dataclass(frozen=True)
class MappedCropClasses:
    """Result of :func:`map_crop_codes`: one class index per parcel plus the unknown flags."""

    class_index: np.ndarray  # int16 (n,), index into CROP_CLASSES
    unknown: np.ndarray  # bool (n,), True where neither code nor name was known
    unknown_codes: dict[str, int]  # code (as text) -> parcels, for the warning/report


def map_crop_codes(
    codes: Sequence[object], names: Sequence[object] | None = None
) -> MappedCropClasses:
    """Map INVEKOS crop codes (and optionally German names) of parcels to class indices.

    Args:
        codes: one INVEKOS crop code per parcel (int, numeric string, None or NaN).
        names: optional German crop names (``SNAR_BEZEICHNUNG``), used when a code is unknown.

    Returns:
        Class indices into :data:`CROP_CLASSES`; unknown parcels are ``other`` and flagged.

    """
    mapping = load_crop_class_mapping()
    other = CROP_CLASSES.index(OTHER_CLASS)
    n = len(codes)
    if names is not None and len(names) != n:
        raise ValueError(f"got {n} crop codes but {len(names)} crop names")
    class_index = np.full(n, other, dtype=np.int16)
    unknown = np.zeros(n, dtype=bool)
    unknown_codes: dict[str, int] = {}
    for i, raw in enumerate(codes):
        code = _parse_code(raw)
        crop_class = mapping.class_of_code(code) if code is not None else None
        if crop_class is None and names is not None:
            crop_class = mapping.class_of_name(str(names[i]) if names[i] is not None else "")
        if crop_class is None:
            unknown[i] = True
            key = str(raw)
            unknown_codes[key] = unknown_codes.get(key, 0) + 1
            continue
        class_index[i] = CROP_CLASSES.index(crop_class)
    return MappedCropClasses(class_index, unknown, unknown_codes)


def _parse_code(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, float):
        return None if math.isnan(raw) else int(raw)
    text = str(raw).strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None
