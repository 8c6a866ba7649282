"""Validated configuration for every eeflow use case.

One YAML file per use case lives in ``configs/``; each is validated by the pydantic model
registered for its ``use_case`` key. Errors name the key path, the bad value and what is allowed.
``load_config(path, expect=PolarConfig)`` returns the typed model (and refuses a config of another
use case); :func:`eeflow_home` is the one folder relative paths resolve against.
"""

from tasks.config.common import (
    ConfigError,
    StrictModel,
    UseCaseConfig,
    config_hash,
    eeflow_home,
    load_config,
    register_use_case,
)

__all__ = [
    "ConfigError",
    "StrictModel",
    "UseCaseConfig",
    "config_hash",
    "eeflow_home",
    "load_config",
    "register_use_case",
]
