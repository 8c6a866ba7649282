from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from tasks.linked_data.cli import app
from tests.tasks.linked_data.linked_data_samples import YEAR


def test_cli_export_load_query(ld_cfg, products, tmp_path):
    config = tmp_path / "linked_data.yaml"
    config.write_text(yaml.safe_dump({"use_case": "linked_data", "data_root": ld_cfg.data_root}))
    runner = CliRunner()
    for product in ("vocabulary", "crop_field_instances"):
        for command in ("export", "load"):
            result = runner.invoke(
                app, [command, "-p", product, "-c", str(config), "-d", "2018-03-01"]
            )
            assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "query",
            "crop_fields_in_region",
            "-c",
            str(config),
            "--param",
            "crop_type=maize",
            "--param",
            "region=POLYGON((15 47.5, 16 47.5, 16 48.5, 15 48.5, 15 47.5))",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 4
    assert YEAR in result.stdout
