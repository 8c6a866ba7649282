"""The LUCAS stage of the crop pipeline as a uniform ``stage(cfg, run_date) -> StageResult`` call.

The science (matching maps to points, the reports and the year's comparison) lives in
:mod:`tasks.lucas.run`; this module finds the stage's inputs from the crop config.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from tasks.config.common import eeflow_home
from tasks.config.food_security import FoodSecurityConfig
from tasks.lucas.run import USE_CASE, run_lucas_evaluation
from tasks.stage_result import StageResult
from tasks.storage import agronomic_year_key, stage_dir

log = logging.getLogger(__name__)


def lucas_stage(cfg: FoodSecurityConfig, run_date: dt.date | str) -> StageResult:
    """Crop-pipeline stage: evaluate the year's field-instance maps against LUCAS points.

    Reads every ``{root}/food_security/predict/{agronomic_year}/{tile}/{tile}_instances.parquet``
    and the points file ``cfg.lucas.points_path`` (``{agronomic_year}`` in it is replaced;
    relative paths resolve against ``$EEFLOW_HOME``). Without configured points the stage does
    nothing and says so in its summary.
    """
    run_key = agronomic_year_key(run_date)
    if not cfg.lucas.points_path:
        log.warning("lucas.points_path is not set: LUCAS evaluation of %s skipped", run_key)
        return StageResult(summary={"skipped": "lucas.points_path is not configured",
                                    "agronomic_year": run_key})
    points = Path(cfg.lucas.points_path.replace("{agronomic_year}", run_key)).expanduser()
    if not points.is_absolute():
        points = eeflow_home() / points
    if not points.is_file():
        raise FileNotFoundError(f"LUCAS points {points} (lucas.points_path) do not exist")
    root = cfg.resolved_root()
    predicted = stage_dir(root, USE_CASE, "predict", run_key)
    maps = {p.parent.name: p for p in sorted(predicted.glob("*/*_instances.parquet"))}
    if not maps:
        raise FileNotFoundError(
            f"no field instances under {predicted}; run the predict stage for {run_key} first"
        )
    return StageResult.from_dict(run_lucas_evaluation(cfg.lucas, points, maps, root, run_date),
                                 outputs=("output", "comparison"))
