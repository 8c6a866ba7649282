"""Every command that reads a config takes --config / -c and repeatable --set the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tasks.config.options import parse_overrides

REPO = Path(__file__).resolve().parents[3]


def test_parse_overrides_reads_yaml_scalars():
    assert parse_overrides(["train.epochs=2", "ingest.source=stac", "train.augment=false",
                            "a.b=x=y", " dask.address =tcp://h:8786"]) == {
        "train.epochs": 2, "ingest.source": "stac", "train.augment": False, "a.b": "x=y",
        "dask.address": "tcp://h:8786"}
    assert parse_overrides(None) == {}
    with pytest.raises(typer.BadParameter, match="--set 'train.epochs': expected key.path=value"):
        parse_overrides(["train.epochs"])


def _capture(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> dict[str, Any]:
    import importlib

    seen: dict[str, Any] = {}

    def stage(cfg: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
        seen["cfg"] = cfg
        return {"ok": "yes"}

    monkeypatch.setattr(importlib.import_module(module), name, stage)
    return seen


def test_crops_commands_apply_set(monkeypatch, tmp_path):
    from tasks.food_security.cli import app

    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    seen = _capture(monkeypatch, "tasks.food_security.harmonise", "run_harmonise")
    result = CliRunner().invoke(app, [
        "harmonise", "-c", str(REPO / "configs" / "food_security.yaml"), "--run-date",
        "2017-09-01", "--set", "harmonise.chunk=64", "--set", f"data_root={tmp_path}"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].harmonise.chunk == 64 and seen["cfg"].data_root == str(tmp_path)


def test_crops_refuse_a_config_of_another_use_case():
    from tasks.config.common import ConfigError
    from tasks.food_security.cli import app

    result = CliRunner().invoke(app, ["labels", "--config", str(REPO / "configs" / "polar.yaml"),
                                      "--run-date", "2017-09-01"])
    assert isinstance(result.exception, ConfigError)
    assert "use_case is 'polar', expected 'food_security'" in str(result.exception)


def test_rdf_commands_apply_set(monkeypatch, tmp_path):
    from tasks.linked_data.cli import app

    seen = _capture(monkeypatch, "tasks.linked_data.query", "run_named_query")
    result = CliRunner().invoke(app, [
        "query", "crop_fields_in_region", "--config", str(REPO / "configs" / "linked_data.yaml"),
        "--set", "store.mode=http", "--set", "store.url=http://127.0.0.1:9999"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].store.mode == "http" and seen["cfg"].store.url == "http://127.0.0.1:9999"


def test_set_of_an_unknown_key_names_it(tmp_path):
    from tasks.config.common import ConfigError
    from tasks.linked_data.cli import app

    result = CliRunner().invoke(app, [
        "query", "x", "-c", str(REPO / "configs" / "linked_data.yaml"), "--set", "store.mdoe=http"])
    assert isinstance(result.exception, ConfigError)
    assert "key 'store.mdoe': unknown key" in str(result.exception)


def test_lucas_set_applies_to_the_section_file(tmp_path):
    from tasks.lucas.cli import load_lucas_config

    section = tmp_path / "lucas.yaml"
    section.write_text(yaml.safe_dump({"radius_m": 5.0}))
    cfg, root = load_lucas_config(section, {"barley_rule": None},
                                  parse_overrides(["radius_m=20", "location=gps"]))
    assert (cfg.radius_m, cfg.location, root) == (20.0, "gps", None)


@pytest.mark.parametrize("module", [
    "tasks.polar.cli", "tasks.food_security.cli", "tasks.linked_data.cli", "tasks.experiments.cli",
    "tasks.serving.cli", "tasks.serving.process_cli", "tasks.interlinking.cli", "tasks.lucas.cli",
])
def test_every_config_reading_command_has_config_and_set(module):
    import importlib

    from typer.main import get_command

    commands: list[Any] = []

    def walk(command: Any) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            commands.append(command)
            return
        for sub in subcommands.values():
            walk(sub)

    walk(get_command(importlib.import_module(module).app))
    readers = [c for c in commands if any("--config" in p.opts for p in c.params)]
    assert readers
    for command in readers:
        options = {o for p in command.params for o in p.opts}
        assert {"--config", "-c", "--set"} <= options, command.name
