"""The LUCAS stage of the crop pipeline as a uniform ``stage(cfg, run_date) -> StageResult`` call.

The science (matching maps to points, the reports and the year's comparison) lives in
:mod:`tasks.lucas.run`; this module finds the stage's inputs from the crop config.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

from tasks.config.common import eeflow_home
from tasks.config.food_security import FoodSecurityConfig
from tasks.fs import is_remote, normalise_s3_url, s3_filesystem
from tasks.lucas.run import USE_CASE, run_lucas_evaluation
from tasks.stage_result import StageResult
from tasks.storage import agronomic_year_key, stage_dir

log = logging.getLogger(__name__)


def lucas_stage(cfg: FoodSecurityConfig, run_date: dt.date | str) -> StageResult:
    """Crop-pipeline stage: evaluate the year's field-instance maps against LUCAS points.

    Reads every ``{root}/food_security/predict/{agronomic_year}/{tile}/{tile}_instances.parquet``
    and the points file ``cfg.lucas.points_path`` (``{agronomic_year}`` in it is replaced;
    relative paths resolve against ``$EEFLOW_HOME``; an ``s3://`` URL is read from a local copy,
    the reports naming the URL). Without configured points the stage does nothing and says so in
    its summary.
    """
    run_key = agronomic_year_key(run_date)
    if not cfg.lucas.points_path:
        log.warning("lucas.points_path is not set: LUCAS evaluation of %s skipped", run_key)
        return StageResult(summary={"skipped": "lucas.points_path is not configured",
                                    "agronomic_year": run_key})
    location = cfg.lucas.points_path.replace("{agronomic_year}", run_key)
    if is_remote(location):  # an s3:// points file: read from a local copy
        with tempfile.TemporaryDirectory(prefix="eeflow-lucas-points-") as scratch:
            local = Path(scratch) / location.rsplit("/", 1)[-1]
            try:
                s3_filesystem().get_file(normalise_s3_url(location), str(local))
            except FileNotFoundError as err:
                raise FileNotFoundError(
                    f"LUCAS points {location} (lucas.points_path) do not exist") from err
            return _evaluate(cfg, run_date, run_key, local, source=location)
    points = Path(location).expanduser()
    if not points.is_absolute():
        points = eeflow_home() / points
    if not points.is_file():
        raise FileNotFoundError(f"LUCAS points {points} (lucas.points_path) do not exist")
    return _evaluate(cfg, run_date, run_key, points)


def _evaluate(cfg: FoodSecurityConfig, run_date: dt.date | str, run_key: str,
              points: Path, source: str | None = None) -> StageResult:
    root = cfg.resolved_root()
    predicted = stage_dir(root, USE_CASE, "predict", run_key)
    maps = {p.parent.name: p for p in sorted(predicted.glob("*/*_instances.parquet"))}
    if not maps:
        raise FileNotFoundError(
            f"no field instances under {predicted}; run the predict stage for {run_key} first"
        )
    result = run_lucas_evaluation(cfg.lucas, points, maps, root, run_date, points_source=source)
    return StageResult.from_dict(result, outputs=("output", "comparison"))
