"""Unions of the use-case config models, for code that serves more than one use case.

The models live in their own modules (``tasks/config/polar.py`` ...); this module only names the
combinations, so that a function taking "a config with a ``search`` / ``ablation`` / ``registry``
section" says so in its signature instead of taking ``Any``.
"""

from __future__ import annotations

from typing import TypeAlias

from tasks.config.food_security import FoodSecurityConfig
from tasks.config.polar import PolarConfig

#: A use case with training, hyper-parameter search, ablation and a model registry.
ExperimentConfig: TypeAlias = PolarConfig | FoodSecurityConfig
#: Every use case whose products the RDF stages export (they name a linked-data config).
ProductConfig: TypeAlias = PolarConfig | FoodSecurityConfig

__all__ = ["ExperimentConfig", "ProductConfig"]
