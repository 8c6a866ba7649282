"""Silent wrong results and path escapes: each now fails loudly or gives the right answer."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from tasks.linked_data.export import export_product
from tasks.linked_data.query import QueryError, bind_parameters, load_query
from tasks.naming import UnsafeNameError, safe_name
from tasks.polar.stages import update_latest
from tasks.storage import day_run_key, stage_dir, to_date
from tests.faults.conftest import run_cli, snapshot
from tests.tasks.linked_data.linked_data_samples import YEAR


def _config_file(cfg, folder: Path) -> Path:
    path = folder / "linked_data.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_cli_export_with_traversal_product_fails_and_touches_nothing(ld_cfg, products, tmp_path):
    root = ld_cfg.resolved_root()
    export_product(ld_cfg, "crop_field_instances", YEAR)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    before_root, before_victim = snapshot(root), snapshot(victim)
    config = _config_file(ld_cfg, tmp_path)
    done = run_cli("rdf", "export", "--config", str(config), "--product", "../../..",
                   "--run-key", YEAR)
    assert done.returncode == 1
    assert "product name '../../..' cannot be used" in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(root) == before_root and snapshot(victim) == before_victim


@pytest.mark.parametrize(
    ("kind", "value"),
    [("product", "../../.."), ("product", "a/b"), ("run_key", ".."), ("model", ".hidden"),
     ("map", ""), ("run_key", "2018\n"), ("product", "x" * 200), ("map", "a\\b")],
)
def test_safe_name_refuses_path_escapes(kind, value):
    with pytest.raises(UnsafeNameError, match=f"{kind} name"):
        safe_name(kind, value)


def test_export_api_refuses_unsafe_names_before_writing(ld_cfg, products):
    root = ld_cfg.resolved_root()
    before = snapshot(root)
    for product, key in (("../../..", YEAR), ("crop_field_instances", "../..")):
        with pytest.raises(UnsafeNameError):
            export_product(ld_cfg, product, key)
    assert snapshot(root) == before
    with pytest.raises(UnsafeNameError):
        stage_dir(root, "polar", "published", "../../etc")


def test_latest_json_does_not_go_backwards(tmp_path):
    published = tmp_path / "polar" / "published"
    for day in ("2026-01-24", "2026-01-26"):
        (published / day).mkdir(parents=True)
    latest = published / "latest.json"
    assert update_latest(latest, "2026-01-26", published / "2026-01-26") == "2026-01-26"
    before = latest.read_bytes()
    assert update_latest(latest, "2026-01-24", published / "2026-01-24") == "2026-01-26"
    assert latest.read_bytes() == before  # the re-run of an older day left it alone
    assert update_latest(latest, "2026-01-27", published / "2026-01-27") == "2026-01-27"
    latest.write_text("{broken")
    assert update_latest(latest, "2026-01-25", published / "2026-01-25") == "2026-01-25"
    assert json.loads(latest.read_text())["day"] == "2026-01-25"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("2026-11-26T00:30:00+02:00", "2026-11-25"),
        ("2026-11-25T23:30:00-05:00", "2026-11-26"),
        ("2026-11-25T12:00:00Z", "2026-11-25"),
        (dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=3))), "2026-11-25"),
        ("2026-11-25", "2026-11-25"),
    ],
)
def test_run_dates_with_offsets_are_keyed_by_utc(value, key):
    assert day_run_key(value) == key


def test_bad_run_date_names_the_value():
    with pytest.raises(ValueError, match=r"run date 'yesterday' is not an ISO date"):
        to_date("yesterday")


@pytest.mark.parametrize("radius", ["-1e6", "-0.5", "nan", "inf", "ten", "30"])
def test_query_radius_is_checked_by_type_before_use(radius):
    query = load_query("lucas_unmatched")
    with pytest.raises(QueryError, match=r"radius"):
        bind_parameters(query, {"radius": radius}, "https://w3id.org/eeflow/data/")


def test_query_radius_error_says_why():
    query = load_query("lucas_unmatched")
    with pytest.raises(QueryError, match=r"radius='-1e6' is not a valid double: a distance in"):
        bind_parameters(query, {"radius": "-1e6"}, "https://w3id.org/eeflow/data/")
    assert "VALUES" in bind_parameters(query, {"radius": "0"}, "https://w3id.org/eeflow/data/")
