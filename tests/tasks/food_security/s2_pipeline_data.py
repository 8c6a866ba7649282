"""Tiny generated Sentinel-2 inputs and stage outputs shared by the data-side tests.

Built once per test session (cached here): 3 tiles of 64 x 64 px with different revisits, one tile
with a fully clouded December, for the agronomic year 2017-09_2018-08.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.config.common import validate_config

RUN_DATE = "2018-03-01"
YEAR_KEY = "2017-09_2018-08"
_CACHE: dict[str, Any] = {}


def small_config(root: Path, **overrides: Any) -> Any:
    """Return a FoodSecurityConfig of three 64 x 64 tiles writing under ``root``."""
    data: dict[str, Any] = {
        "use_case": "food_security",
        "data_root": str(root),
        "seed": 7,
        "dask": {"cluster": "synchronous"},
        "ingest": {"generator": {
            "size_px": 64,
            "tiles": [
                {"id": "33UWP", "revisit_days": 15, "parcels": 14},
                {"id": "33UXP", "revisit_days": 9, "parcels": 14, "clouded_months": [12]},
                {"id": "33UVP", "revisit_days": 15, "parcels": 14},
            ],
        }},
        "harmonise": {"chunk": 64},
        "labels": {"min_parcel_pixels": 10},
        "samples": {"split": {"train_tiles": ["33UWP"], "val_tiles": ["33UXP"],
                              "test_tiles": ["33UVP"]}},
    }
    for dotted, value in overrides.items():
        target = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return validate_config(data)


def pipeline_run(tmp_path_factory: Any, upto: str = "samples") -> tuple[Any, dict[str, Any]]:
    """Run generate -> harmonise -> labels -> samples once per session; return (cfg, results)."""
    from tasks.food_security.harmonise import run_harmonise
    from tasks.food_security.labels import run_labels
    from tasks.food_security.samples import run_samples
    from tasks.sentinel2.generator import run_generate

    if "cfg" not in _CACHE:
        _CACHE["cfg"] = small_config(tmp_path_factory.mktemp("s2_pipeline"))
        _CACHE["results"] = {}
    cfg, results = _CACHE["cfg"], _CACHE["results"]
    for stage, run in (("generate", run_generate), ("harmonise", run_harmonise),
                       ("labels", run_labels), ("samples", run_samples)):
        if stage not in results:
            results[stage] = run(cfg, RUN_DATE)
        if stage == upto:
            break
    return cfg, results
