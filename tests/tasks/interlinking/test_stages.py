"""tasks.interlinking.stages: interlink and load as StageResults; the params they refuse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tasks.config.linked_data import LinkedDataConfig
from tasks.interlinking.stages import interlink_stage, load_relations_stage
from tasks.stage_result import StageResult

DAY = dt.date(2026, 2, 1)


def test_interlink_then_load_return_results_whose_outputs_exist(tmp_path, generated):
    cfg = LinkedDataConfig(data_root=str(tmp_path / "data"))
    generated.write(cfg.resolved_root() / "inputs")
    linked = interlink_stage(cfg, DAY, source="inputs/parcels.parquet",
                             target="inputs/fields.parquet", budget=2000, selector="chi2_mbro")
    assert isinstance(linked, StageResult) and set(linked.outputs) == {"out_dir"}
    out_dir = Path(str(linked.outputs["out_dir"]))
    assert out_dir.is_dir()
    assert out_dir.parts[-3:] == ("interlinking", "2026-02-01", "parcels__fields")
    assert linked["triples"] > 0 and linked["graph"].startswith("http")
    loaded = load_relations_stage(cfg, DAY, out_dir=str(out_dir))
    assert isinstance(loaded, StageResult)
    assert loaded["graph"] == linked["graph"] and loaded["triples"] == linked["triples"]


@pytest.mark.parametrize(("source", "target", "missing"), [
    (None, "b.parquet", "['source']"), ("a.parquet", "", "['target']"),
    (None, None, "['source', 'target']")])
def test_interlink_needs_both_geometry_files(tmp_path, source, target, missing):
    cfg = LinkedDataConfig(data_root=str(tmp_path / "data"))
    with pytest.raises(ValueError) as caught:
        interlink_stage(cfg, DAY, source=source, target=target)
    assert str(caught.value) == (f"params {missing} are empty; trigger the DAG with the geometry "
                                 "files to interlink (paths relative to data_root)")
