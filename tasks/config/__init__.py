"""Validated configuration for every eeflow use case.

One YAML file per use case lives in ``configs/``; each is validated by the pydantic model
registered for its ``use_case`` key. Errors name the key path, the bad value and what is allowed.
"""

from tasks.config.common import (
    ConfigError,
    StrictModel,
    config_hash,
    load_config,
    register_use_case,
)

__all__ = ["ConfigError", "StrictModel", "config_hash", "load_config", "register_use_case"]
