"""The run key of each product is data (``run_key`` in its mapping file), not an if-chain."""

import pytest

from tasks.linked_data.export import run_key_for
from tasks.linked_data.export.run_keys import products_with_run_key
from tasks.linked_data.mapping import available_products, load_mapping

# The rule as it was written in code before it moved into the mapping files.
EXPECTED = {
    "ice_chart": "2018-03-01",
    "crop_field_instances": "2017-09_2018-08",
    "evaluation": "2017-09_2018-08",
    "lucas_points": "2018",
    "model": "current",
    "vocabulary": "current",
}


def test_every_shipped_mapping_names_its_run_key():
    assert all(load_mapping(name).run_key is not None for name in available_products())
    assert sorted(products_with_run_key()) == sorted(EXPECTED)


@pytest.mark.parametrize("product", sorted(EXPECTED))
def test_run_key_matches_the_former_rule(product):
    assert run_key_for(product, "2018-03-01") == EXPECTED[product]


def test_agronomic_year_starts_in_september():
    assert run_key_for("evaluation", "2018-09-01") == "2018-09_2019-08"
    assert run_key_for("crop_field_instances", "2018-08-31") == "2017-09_2018-08"


def test_unknown_product_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: .*ice_chart.*vocabulary"):
        run_key_for("tides", "2018-01-01")
    with pytest.raises(ValueError, match="allowed"):
        run_key_for("../escape", "2018-01-01")
