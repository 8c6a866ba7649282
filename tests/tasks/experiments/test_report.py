import json
from pathlib import Path

import pytest

from tasks.experiments.report import ReportError, write_study_report
from tasks.experiments.search import SearchError, prepare_study
from tests.tasks.experiments.experiments_toy import toy_config


def test_study_report_has_best_trial_importances_and_plots(finished_search):
    cfg, _ = finished_search
    result = write_study_report(cfg)
    folder = Path(result["report_dir"])
    best = json.loads((folder / "best_trial.json").read_text())
    assert best["value"] == result["best"]["value"] and "train.learning_rate" in best["params"]
    assert set(json.loads((folder / "importances.json").read_text())) == {
        "train.learning_rate", "train.hidden"}
    for name in ("optimization_history", "parallel_coordinate", "param_importances",
                 "intermediate_values"):
        assert (folder / f"{name}.png").stat().st_size > 5000
        assert (folder / f"{name}.html").is_file()
    assert "## Parameter importances" in (folder / "report.md").read_text()
    assert len((folder / "trials.csv").read_text().splitlines()) == 7
    assert (folder / "manifest.json").is_file()


def test_report_of_missing_or_empty_study(tmp_path):
    from tests.tasks.experiments.experiments_toy import toy_adapter

    cfg = toy_config(tmp_path)
    with pytest.raises(SearchError, match="no study 'toy-search'"):
        write_study_report(cfg)
    prepare_study(cfg, toy_adapter(cfg))
    with pytest.raises(ReportError, match="no completed trial"):
        write_study_report(cfg)
