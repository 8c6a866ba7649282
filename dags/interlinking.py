"""Interlink two geometry sets by their DE-9IM relations and load them as a named graph (manual).

``interlink`` runs the exhaustive (or, with ``budget``, the budgeted progressive) interlinking of
``source`` x ``target`` (GeoParquet / GeoJSON / LUCAS CSV; paths relative to the config's
``data_root``) and writes GeoSPARQL triples under ``{data_root}/linked_data/interlinking/{run
date}/{source}__{target}``; ``load_relations`` loads them into their own named graph, one load at
a time (the embedded store allows one writer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task

CONFIG = "configs/linked_data.yaml"
SELECTORS = ["random", "cf", "js", "chi2", "mbro", "cf_mbro", "js_mbro", "chi2_mbro"]


@dag(
    dag_id="interlinking",
    description="Topological interlinking of two geometry sets -> GeoSPARQL named graph",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["eeflow", "linked-data", "interlinking", "geosparql"],
    default_args={
        "owner": "eeflow-linked-data",
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=2),
    },
    params={
        "config": Param(
            CONFIG, type="string", description="linked_data config (relative to EEFLOW_HOME)"
        ),
        "source": Param(
            None, type=["null", "string"],
            description="source geometries, relative to data_root (e.g. a parcels GeoParquet); "
            "required: an empty value fails the run",
        ),
        "target": Param(
            None, type=["null", "string"],
            description="target geometries, relative to data_root (e.g. crop field instances); "
            "required: an empty value fails the run",
        ),
        "target_crs": Param(
            None, type=["null", "string"],
            description="reproject both sets into this CRS (e.g. EPSG:32633); empty: they must "
            "share one",
        ),
        "budget": Param(
            None, type=["null", "integer"], minimum=0,
            description="verify at most this many candidate pairs (empty: exhaustive)",
        ),
        "selector": Param(
            "chi2_mbro", type="string", enum=SELECTORS,
            description="pair selector of the budgeted mode",
        ),
        "workers": Param(
            None, type=["null", "integer"], minimum=1, maximum=64,
            description="Dask LocalCluster workers for the exhaustive mode (empty: in process)",
        ),
        "run_date": Param(
            None, type=["null", "string"],
            description="date naming the output folder (YYYY-MM-DD); empty = the run's date",
        ),
    },
    doc_md=__doc__,
)
def interlinking() -> None:
    """Wire: interlink -> load_relations."""

    @task
    def interlink(**context: Any) -> dict[str, Any]:
        from operators.context import config_path, run_date_from_context
        from tasks.config.common import DaskConfig, load_config
        from tasks.interlinking.stages import interlinking_out_dir, run_interlinking

        params = context["params"]
        cfg = load_config(config_path(params, CONFIG))
        missing = [name for name in ("source", "target") if not params.get(name)]
        if missing:
            raise ValueError(f"params {missing} are empty; trigger the DAG with the geometry "
                             "files to interlink (paths relative to data_root)")
        root = cfg.resolved_root()
        source, target = root / params["source"], root / params["target"]
        day = run_date_from_context(context).isoformat()
        workers = params.get("workers")
        summary = run_interlinking(
            source, target, interlinking_out_dir(root, day, source, target),
            target_crs=params.get("target_crs") or None, budget=params.get("budget"),
            selector=params["selector"],
            dask=DaskConfig(cluster="local", n_workers=workers) if workers else None,
        )
        return {"out_dir": summary["out_dir"], "graph": summary["graph"],
                "triples": summary["counts"]["triples"]}

    @task(max_active_tis_per_dag=1)
    def load_relations(linked: dict[str, Any], **context: Any) -> dict[str, Any]:
        from operators.context import config_path
        from tasks.config.common import load_config
        from tasks.interlinking.stages import load_stage

        return load_stage(load_config(config_path(context["params"], CONFIG)), linked["out_dir"])

    load_relations(interlink())


interlinking_dag = interlinking()
