from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tasks.domain.crops import CROP_CLASSES
from tasks.lucas.codelist import CODELIST_DIR, load_lc1_mapping


def test_packaged_mapping_covers_the_2018_legend() -> None:
    mapping = load_lc1_mapping()
    with (CODELIST_DIR / "lc1_legend_2018.csv").open() as handle:
        legend = {row["code"] for row in csv.DictReader(handle)}
    assert legend <= set(mapping.reference_class)
    assert mapping.classify("B11") == "winter_wheat"
    assert mapping.classify("b16 ") == "maize"
    assert mapping.classify("B31") == "sunflower"
    assert mapping.classify("B32") == "rapeseed"
    assert mapping.classify("B33") == "soy"
    assert mapping.classify("B41") == "legumes"
    assert mapping.classify("E20") == "grassland"
    assert mapping.classify("B82") == "permanent_plantations"
    assert mapping.classify("C10") == "non_crop"
    assert mapping.classify("Bx1") == "not_comparable"
    assert mapping.classify("Z99") is None
    assert mapping.labels["B32"] == "Rape and turnip rape"


def test_barley_rules() -> None:
    merged = load_lc1_mapping(barley_rule="merge")
    assert merged.classify("B13") == "barley"
    assert "barley" in merged.evaluation_classes
    assert "winter_barley" not in merged.evaluation_classes
    assert len(merged.evaluation_classes) == len(CROP_CLASSES) - 1
    assert merged.map_class_to_evaluation["spring_barley"] == "barley"
    assert merged.map_class_to_evaluation["winter_barley"] == "barley"
    strict = load_lc1_mapping(barley_rule="spring_barley")
    assert strict.classify("B13") == "spring_barley"
    assert strict.evaluation_classes == CROP_CLASSES
    # winter caraway has no LC1 code of its own
    assert "winter_caraway" not in merged.lucas_side_classes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("code,class\nB11,winter_wheat\n", "missing column"),
        ("lc1_code,reference_class\nB11,wheat\n", "not allowed"),
        ("lc1_code,reference_class\nB11,winter_wheat\nB11,rye\n", "duplicate code B11"),
    ],
)
def test_bad_mapping_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_lc1_mapping(path)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lucas.mapping_file"):
        load_lc1_mapping(tmp_path / "nope.csv")
