from __future__ import annotations

import numpy as np
import pytest

from tasks.domain.crop_codes import load_crop_class_mapping, map_crop_codes
from tasks.domain.crops import CROP_CLASSES
from tasks.sentinel2.generator import load_crop_shares


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (138, "winter_wheat"),  # WINTERWEICHWEIZEN
        (110, "winter_barley"),
        (105, "maize"), (109, "maize"),  # grain maize, silage maize (green_silo_maize)
        (536, "winter_caraway"), (535, "other"),  # summer caraway overridden
        (817, "permanent_plantations"),  # apples: via the HCAT3 hierarchy (3303...)
        (717, "grassland"), (308, "soy"), (651, "beet"), (303, "other"),
        (116, "triticale"), (142, "rye"), (201, "legumes"), (112, "other"),  # winter oats
    ],
)
def test_known_invekos_codes(code, expected):
    assert load_crop_class_mapping().class_of_code(code) == expected


def test_unknown_code_is_other_and_counted_and_names_are_a_fallback():
    mapped = map_crop_codes([138, 99999, "536", None, float("nan"), 424242],
                            ["x", "KÖRNERMAIS", "", "BERGMÄHDER", "WINTERGERSTE", "FOO"])
    names = [CROP_CLASSES[i] for i in mapped.class_index]
    # 99999 falls back on the EuroCrops name; None on the eo-learn group table ('Alpine meadows')
    assert names == ["winter_wheat", "maize", "winter_caraway", "grassland", "winter_barley",
                     "other"]
    assert mapped.unknown.tolist() == [False, False, False, False, False, True]
    assert mapped.unknown_codes == {"424242": 1}


def test_ambiguous_eolearn_group_is_unknown():
    mapping = load_crop_class_mapping()
    name = "SOMMERHAFER / FUTTERRÜBE"  # 2018 name missing from the 2021 table
    assert mapping.group_of_name[name] == "Multi use"
    assert mapping.class_of_name(name) is None
    mapped = map_crop_codes([None], [name])
    assert mapped.unknown.all() and CROP_CLASSES[mapped.class_index[0]] == "other"


def test_every_class_is_reachable_and_generator_codes_are_consistent():
    mapping = load_crop_class_mapping()
    for crop_class in CROP_CLASSES:
        assert mapping.codes_of_class(crop_class), crop_class
    shares = load_crop_shares()  # raises if a generator code maps to another class
    assert np.isclose(sum(s for s, _ in shares.values()), 1.0, atol=0.01)
    assert shares["grassland"][0] / shares["winter_caraway"][0] > 100
