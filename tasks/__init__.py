"""eeflow science and data-engineering stages; importable without Airflow."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
