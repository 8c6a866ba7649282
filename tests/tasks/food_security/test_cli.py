"""``eeflow crops``: the stage commands run the DAG's stage functions and print their XCom dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.food_security import stages
from tasks.food_security.cli import app
from tasks.stage_result import StageResult

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "food_security.yaml"


@pytest.mark.parametrize("command", ["ingest", "harmonise", "labels", "samples"])
def test_stage_commands_print_the_stages_result(command: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def stage(cfg, run_date):
        calls.append((cfg.use_case, run_date))
        return StageResult(outputs={"output": Path("/data/out")}, summary={"n": 2})

    monkeypatch.setattr(stages, f"{command}_stage", stage)
    result = CliRunner().invoke(app, [command, "--config", str(CONFIG),
                                      "--run-date", "2018-03-01"])
    assert result.exit_code == 0, result.output
    assert calls == [("food_security", "2018-03-01")]
    assert json.loads(result.output) == {"n": 2, "output": "/data/out"}
