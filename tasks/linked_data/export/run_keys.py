"""Run key of a product for a logical date (the rule is data: ``run_key`` in the mapping file)."""

from __future__ import annotations

import datetime as dt

from tasks.linked_data.mapping import MappingError, available_products, load_mapping

# Products without a mapping file: the ontology and code lists, one current version.
_RUN_KEY_WITHOUT_MAPPING: dict[str, str] = {"vocabulary": "current"}


def run_key_for(product: str, run_date: str | dt.date) -> str:
    """Return the run key of ``product`` for a logical date.

    The rule is the ``run_key`` of the product's shipped mapping file: ``day`` (ice charts),
    ``agronomic_year`` (crops, evaluations), ``year`` (LUCAS), ``current`` (models; also the
    vocabulary, which has no mapping).

    Raises:
        ValueError: the product has no mapping with a ``run_key`` (the message lists those that do).

    """
    from tasks.storage import agronomic_year_key, day_run_key, to_date

    if product in _RUN_KEY_WITHOUT_MAPPING:
        return _RUN_KEY_WITHOUT_MAPPING[product]
    try:
        rule = load_mapping(product).run_key
    except MappingError:
        rule = None
    if rule == "day":
        return day_run_key(run_date)
    if rule == "agronomic_year":
        return agronomic_year_key(run_date)
    if rule == "year":
        return str(to_date(run_date).year)
    if rule == "current":
        return "current"
    raise ValueError(f"product {product!r} unknown; allowed: {', '.join(products_with_run_key())}")


def products_with_run_key() -> list[str]:
    """Products :func:`run_key_for` knows: shipped mappings with a ``run_key``, and vocabulary."""
    keyed = [name for name in available_products() if load_mapping(name).run_key is not None]
    return [*keyed, *_RUN_KEY_WITHOUT_MAPPING]
