"""Guards of issue 13: unknown crop codes in labels, tiles without observations in harmonise."""

from __future__ import annotations

import pytest

from tasks.config.food_security import FoodSecurityConfig
from tasks.domain.crop_codes import map_crop_codes
from tasks.food_security.harmonise import EmptyTileError, check_empty_months
from tasks.food_security.labels import UnknownCropCodesError, check_unknown_share


def test_labels_fail_when_most_codes_are_unknown():
    codes = ["999001"] * 6 + ["999002"] * 3 + ["bad"] * 2
    mapped = map_crop_codes(codes)
    assert int(mapped.unknown.sum()) == 11
    share = FoodSecurityConfig().labels.max_unknown_code_share
    assert share == 0.5
    with pytest.raises(UnknownCropCodesError) as info:
        check_unknown_share("33UWP", "SNAR_CODE", len(codes), int(mapped.unknown.sum()),
                            mapped.unknown_codes, share)
    message = str(info.value)
    assert "11 of 11 parcels (100%)" in message and "'SNAR_CODE'" in message
    assert message.index("'999001' x6") < message.index("'999002' x3")  # most frequent first


def test_labels_pass_under_the_share():
    check_unknown_share("33UWP", "SNAR_CODE", 10, 5, {"x": 5}, 0.5)  # 50 % is not "more than"


def test_harmonise_fails_a_tile_without_observations():
    months = [f"2017-{m:02d}" for m in range(9, 13)] + [f"2018-{m:02d}" for m in range(1, 9)]
    check_empty_months("33UXP", [3], months, 12)  # one clouded month: fine
    with pytest.raises(EmptyTileError, match=r"tile 33UVP: no valid .* in 12 of 12 months"):
        check_empty_months("33UVP", list(range(12)), months, 12)
    with pytest.raises(EmptyTileError, match="harmonise.max_empty_months 2"):
        check_empty_months("33UVP", [0, 5], months, 2)
