"""LUCAS LC1 land-cover codes -> evaluation classes of the 16-class crop map (mapping as data).

The table ``codelists/lc1_to_crop_class.csv`` (columns ``lc1_code, lc1_label, reference_class,
note``) says, per LC1 code, which crop class a survey point of that code is compared with.
``reference_class`` is a class of :data:`tasks.domain.crops.CROP_CLASSES`, ``barley``
(resolved by ``barley_rule``), ``non_crop`` or ``not_comparable``. See ``codelists/SOURCES.md`` for
the decisions.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from tasks.config.lucas import BarleyRule
from tasks.domain.crops import CROP_CLASSES

CODELIST_DIR = Path(__file__).resolve().parent / "codelists"
DEFAULT_MAPPING_FILE = CODELIST_DIR / "lc1_to_crop_class.csv"

#: Evaluation class that merges the map's winter and spring barley (``barley_rule='merge'``).
MERGED_BARLEY = "barley"
NON_CROP = "non_crop"
NOT_COMPARABLE = "not_comparable"
_REQUIRED_COLUMNS = ("lc1_code", "reference_class")


@dataclass(frozen=True)
class Lc1Mapping:
    """A validated LC1 -> evaluation-class table with the barley rule applied.

    Attributes:
        reference_class: LC1 code -> evaluation class, ``non_crop`` or ``not_comparable``.
        labels: LC1 code -> English label (may be empty).
        evaluation_classes: the classes metrics are reported for, in model-output order
            (CROP_CLASSES, with winter/spring barley replaced by ``barley`` under ``merge``).
        map_class_to_evaluation: map label (one of CROP_CLASSES) -> evaluation class.
        source: the file the table came from.

    """

    reference_class: dict[str, str]
    labels: dict[str, str]
    evaluation_classes: tuple[str, ...]
    map_class_to_evaluation: dict[str, str]
    barley_rule: BarleyRule
    source: str
    notes: dict[str, str] = field(default_factory=dict)

    def classify(self, lc1_code: str) -> str | None:
        """Return the evaluation class (or ``non_crop``/``not_comparable``); None when unknown."""
        return self.reference_class.get(lc1_code.strip().upper() if lc1_code else "")

    def lucas_side_classes(self) -> set[str]:
        """Return the evaluation classes that at least one LC1 code maps to."""
        return {c for c in self.reference_class.values() if c in self.evaluation_classes}


def load_lc1_mapping(
    mapping_file: str | Path | None = None, barley_rule: BarleyRule = "merge"
) -> Lc1Mapping:
    """Read and validate the LC1 mapping table and apply the barley rule.

    Args:
        mapping_file: CSV with at least ``lc1_code`` and ``reference_class``; None = packaged table.
        barley_rule: ``merge`` (B13 matches winter or spring barley, reported as ``barley``),
            ``winter_barley`` or ``spring_barley`` (every B13 point is that class).

    Returns:
        The mapping, whose reference classes are evaluation classes.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a column is missing, a code is duplicated or a class is not allowed.

    """
    path = Path(mapping_file) if mapping_file is not None else DEFAULT_MAPPING_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"LC1 mapping file {path} does not exist; set lucas.mapping_file to a CSV with columns "
            f"lc1_code,reference_class (see {DEFAULT_MAPPING_FILE})"
        )
    allowed = set(CROP_CLASSES) | {MERGED_BARLEY, NON_CROP, NOT_COMPARABLE}
    if barley_rule == "merge":
        evaluation = tuple(
            MERGED_BARLEY if c == "winter_barley" else c
            for c in CROP_CLASSES
            if c != "spring_barley"
        )
        map_to_eval = {
            c: MERGED_BARLEY if c in ("winter_barley", "spring_barley") else c for c in CROP_CLASSES
        }
    else:
        evaluation = CROP_CLASSES
        map_to_eval = {c: c for c in CROP_CLASSES}
    reference: dict[str, str] = {}
    labels: dict[str, str] = {}
    notes: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"LC1 mapping file {path}: missing column(s) {missing}; found {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            code = (row["lc1_code"] or "").strip().upper()
            target = (row["reference_class"] or "").strip()
            if not code:
                raise ValueError(f"LC1 mapping file {path}, line {line}: empty lc1_code")
            if code in reference:
                raise ValueError(f"LC1 mapping file {path}, line {line}: duplicate code {code}")
            if target not in allowed:
                raise ValueError(
                    f"LC1 mapping file {path}, line {line}: reference_class {target!r} for {code} "
                    f"is not allowed; allowed: {sorted(allowed)}"
                )
            if target == MERGED_BARLEY:
                target = MERGED_BARLEY if barley_rule == "merge" else barley_rule
            elif target in ("winter_barley", "spring_barley"):
                target = map_to_eval[target]
            reference[code] = target
            labels[code] = (row.get("lc1_label") or "").strip()
            notes[code] = (row.get("note") or "").strip()
    return Lc1Mapping(
        reference_class=reference,
        labels=labels,
        evaluation_classes=evaluation,
        map_class_to_evaluation=map_to_eval,
        barley_rule=barley_rule,
        source=str(path),
        notes=notes,
    )
