"""Interlinking stages of the ``interlinking`` DAG: ``interlink`` and ``load_relations``.

Uniform ``stage(cfg, run_date, **kwargs) -> StageResult`` calls over :mod:`tasks.interlinking.run`
(where the runs, the selector comparison and the test-data generator live): the DAG's params
arrive as keyword arguments, paths are relative to the config's ``data_root``.
"""

from __future__ import annotations

import datetime as dt

from tasks.config.common import DaskConfig
from tasks.config.linked_data import LinkedDataConfig
from tasks.stage_result import StageResult


def interlink_stage(
    cfg: LinkedDataConfig,
    run_date: dt.date,
    source: str | None = None,
    target: str | None = None,
    target_crs: str | None = None,
    budget: int | None = None,
    selector: str = "chi2_mbro",
    workers: int | None = None,
) -> StageResult:
    """Interlink ``source`` x ``target`` into ``{root}/linked_data/interlinking/{day}/...``.

    Raises:
        ValueError: ``source`` or ``target`` is empty.

    """
    from tasks.interlinking.run import interlinking_out_dir, run_interlinking

    missing = [name for name, value in (("source", source), ("target", target)) if not value]
    if missing:
        raise ValueError(f"params {missing} are empty; trigger the DAG with the geometry "
                         "files to interlink (paths relative to data_root)")
    root = cfg.resolved_root()
    source_path, target_path = root / str(source), root / str(target)
    summary = run_interlinking(
        source_path, target_path,
        interlinking_out_dir(root, run_date.isoformat(), source_path, target_path),
        target_crs=target_crs or None, budget=budget, selector=selector,
        dask=DaskConfig(cluster="local", n_workers=workers) if workers else None,
    )
    return StageResult(outputs={"out_dir": summary["out_dir"]},
                       summary={"graph": summary["graph"],
                                "triples": summary["counts"]["triples"]})


def load_relations_stage(cfg: LinkedDataConfig, run_date: dt.date, out_dir: str) -> StageResult:
    """Load an ``interlink`` output folder's relations into their named graph (replacing it)."""
    from tasks.interlinking.run import load_stage

    del run_date  # the folder names its day
    return StageResult.from_dict(load_stage(cfg, out_dir))
