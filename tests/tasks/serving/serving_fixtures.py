"""Helpers of the serving tests: a hand-written patch training set and a serving config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

RUN_DATE = "2017-10-15"
#: five-class codes 1..5 of the hand-written patch set; class k has HH = -25 + 3k dB.
N_PATCHES = 160


def write_patch_set(path: Path, n: int = N_PATCHES, size: int = 32, seed: int = 0) -> Path:
    """Write a patches-stage training set (x, y, attributes) whose classes differ in level."""
    rng = np.random.default_rng(seed)
    codes = (np.arange(n) % 5 + 1).astype(np.uint8)
    x = rng.normal(0.0, 1.0, (n, 3, size, size)).astype(np.float32)
    x[:, 0] += (-25.0 + 3.0 * codes)[:, None, None]
    x[:, 1] += (-32.0 + 2.0 * codes)[:, None, None]
    x[:, 2] += 35.0
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("x", data=x, chunks=(64, 3, size, size))
    group.create_array("y", data=codes, chunks=(n,))
    flat = x.transpose(1, 0, 2, 3).reshape(3, -1)
    group.attrs.update({"band_mean": flat.mean(1).tolist(), "band_std": flat.std(1).tolist(),
                        "bands": ["HH", "HV", "incidence"], "patch_size": size,
                        "class_counts": np.bincount(codes, minlength=6)[1:].tolist(),
                        "dataset_version": "serving-test"})
    return path


def serving_config(root: Path, **overrides: Any) -> Any:
    """A serving config under ``root``: sea-ice (registry), crop-type (registry), ice-folder."""
    from tasks.config.serving import ServingConfig

    data: dict[str, Any] = {
        "data_root": str(root),
        "limits": {"max_batch": 64, "max_body_bytes": 2_000_000},
        "version_refresh_s": 0,
        "models": {
            "sea-ice": {"project": "polar", "use_case": "polar"},
            "crop-type": {"project": "food-security", "use_case": "food_security"},
        },
    }
    data.update(overrides)
    return ServingConfig.model_validate(data)
