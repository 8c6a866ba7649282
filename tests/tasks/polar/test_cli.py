"""``eeflow polar``: the stage commands run the DAG's stage functions and print their XCom dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.polar import stages
from tasks.polar.cli import app
from tasks.stage_result import StageResult

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "polar.yaml"


@pytest.mark.parametrize("command", ["ingest", "harmonise", "labels"])
def test_stage_commands_print_the_stages_result(command: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def stage(cfg, run_date):
        calls.append((cfg.use_case, run_date))
        return StageResult(outputs={"output_dir": Path("/data/out")}, summary={"n_scenes": 1})

    monkeypatch.setattr(stages, f"{command}_stage", stage)
    result = CliRunner().invoke(app, [command, "--config", str(CONFIG),
                                      "--run-date", "2026-01-14"])
    assert result.exit_code == 0, result.output
    assert calls == [("polar", "2026-01-14")]
    assert json.loads(result.output) == {"n_scenes": 1, "output_dir": "/data/out"}
