"""Console output of the ``eeflow`` commands (a low-level module every command group may use)."""

from __future__ import annotations

import json
from typing import Any

import typer


def echo_json(payload: Any) -> None:
    """Print a result (a stage's ``StageResult`` included) as indented JSON on stdout."""
    from tasks.stage_result import as_json

    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=as_json))
