"""Interlink two geometry sets by their DE-9IM relations and load them as a named graph (manual).

``interlink`` runs the exhaustive (or, with ``budget``, the budgeted progressive) interlinking of
``source`` x ``target`` (GeoParquet / GeoJSON / LUCAS CSV; paths relative to the config's
``data_root``) and writes GeoSPARQL triples under ``{data_root}/linked_data/interlinking/{run
date}/{source}__{target}``; ``load_relations`` loads them into their own named graph, one load at
a time (the embedded store allows one writer).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from operators.stage import EeflowStageOperator

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
    stages = "tasks.interlinking.stages"
    linked = EeflowStageOperator(
        task_id="interlink", target=f"{stages}:interlink_stage", default_config=CONFIG,
        param_to_kwarg={name: name for name in ("source", "target", "target_crs", "budget",
                                                "selector", "workers")},
    )
    loaded = EeflowStageOperator(
        task_id="load_relations", target=f"{stages}:load_relations_stage", default_config=CONFIG,
        stage_kwargs={"out_dir": "{{ ti.xcom_pull(task_ids='interlink')['out_dir'] }}"},
        max_active_tis_per_dag=1,
    )
    linked >> loaded


interlinking_dag = interlinking()
