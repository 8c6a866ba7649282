"""Sea-ice classes: the five-class scheme and its binary (water / ice) merge.

The classes are data: ``codelists/ice_classes.csv`` (code, name, label, binary code and name,
legend colour). Codes 1..5 are the five classes; 0 means no label / land in the polar rasters.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ICE_CLASSES_CSV = Path(__file__).with_name("codelists") / "ice_classes.csv"


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
    with ICE_CLASSES_CSV.open(newline="") as fh:
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
