"""``eeflow`` command line: run any stage or pipeline without Airflow.

The root command and the CLI's error boundary are in :mod:`tasks.cli.root`, ``eeflow demo`` in
:mod:`tasks.cli.demo`, the embedded local Airflow in :mod:`tasks.cli.local_airflow` and the
``eeflow airflow ...`` commands in :mod:`tasks.cli.airflow_commands`. This package sits above every
use case: it imports their command groups, none of them imports it.
"""

from tasks.cli.root import app, main

__all__ = ["app", "main"]
