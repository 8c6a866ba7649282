from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tasks.config.common import ConfigError
from tasks.lucas.cli import load_lucas_config


def test_cli_evaluate(lucas_dir: Path, tmp_path: Path) -> None:
    from tasks.cli.root import _register_subcommands, app

    _register_subcommands()
    result = CliRunner().invoke(app, [
        "lucas", "evaluate", "--points", str(lucas_dir / "points.csv"),
        "--map", f"lstm={lucas_dir / 'model.parquet'}", "--radius", "15", "--root", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # run key from the points' median SURVEY_DATE (summer 2018)
    assert summary["output"].endswith("food_security/lucas/2017-09_2018-08")
    report = json.loads(Path(summary["reports"]["lstm"]).read_text())
    assert report["radius_m"] == 15.0


def test_config_section_file(tmp_path: Path) -> None:
    path = tmp_path / "lucas.yaml"
    path.write_text(yaml.safe_dump({"radius_m": 12, "barley_rule": "merge"}))
    cfg, root = load_lucas_config(path, {"radius_m": None})
    assert cfg.radius_m == 12 and root is None
    path.write_text(yaml.safe_dump({"radius": 12}))
    with pytest.raises(ConfigError, match="unknown key.*radius_m"):
        load_lucas_config(path, {})
    with pytest.raises(ConfigError, match="barley_rule"):
        load_lucas_config(None, {"barley_rule": "both"})


def test_crop_pipeline_stage_reads_the_years_instances(lucas_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tasks.config.common import validate_config
    from tasks.lucas.stages import lucas_stage
    from tasks.stage_result import StageResult

    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    cfg = validate_config({"use_case": "food_security", "data_root": "data"})
    assert lucas_stage(cfg, "2018-06-30")["skipped"].startswith("lucas.points_path")

    tile_dir = tmp_path / "data/food_security/predict/2017-09_2018-08/33UVP"
    tile_dir.mkdir(parents=True)
    cfg.lucas.points_path = "points_{agronomic_year}.csv"
    with pytest.raises(FileNotFoundError, match="points_2017-09_2018-08.csv"):
        lucas_stage(cfg, "2018-06-30")
    shutil.copy(lucas_dir / "points.csv", tmp_path / "points_2017-09_2018-08.csv")
    with pytest.raises(FileNotFoundError, match="run the predict stage"):
        lucas_stage(cfg, "2018-06-30")
    shutil.copy(lucas_dir / "model.parquet", tile_dir / "33UVP_instances.parquet")
    summary = lucas_stage(cfg, "2018-06-30")
    assert set(summary["reports"]) == {"33UVP"} and summary["points_used"]["33UVP"] > 0
    assert isinstance(summary, StageResult) and set(summary.outputs) == {"output", "comparison"}
    assert all(Path(str(uri)).exists() for uri in summary.outputs.values())
