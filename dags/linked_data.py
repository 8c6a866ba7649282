"""(Re)export a chosen product set to RDF and load it into the triple store (manual trigger).

Each product of the set is exported (streaming, through its mapping) and then loaded into its own
named graph; re-running replaces those graphs. Loads run one at a time (the embedded store allows
one writer). Params choose the products and the logical date their run keys derive from.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from operators.params import run_date_param
from operators.stage import EeflowStageOperator

CONFIG = "configs/linked_data.yaml"
PRODUCTS = [
    "vocabulary",
    "ice_chart",
    "crop_field_instances",
    "lucas_points",
    "model",
    "evaluation",
]


@dag(
    dag_id="linked_data",
    description="Export eeflow products to RDF and load them into the triple store",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["eeflow", "linked-data", "rdf", "geosparql"],
    default_args={
        "owner": "eeflow-linked-data",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
    },
    params={
        "config": Param(
            CONFIG, type="string", description="linked_data config (relative to EEFLOW_HOME)"
        ),
        "run_date": run_date_param("Date the run keys derive from"),
        "products": Param(
            ["vocabulary", "ice_chart", "crop_field_instances"],
            type="array",
            items={"type": "string", "enum": PRODUCTS},
            description="product set to export and load",
        ),
    },
    doc_md=__doc__,
)
def linked_data() -> None:
    """Wire: product set -> rdf_export (mapped) -> load_triples (mapped, one at a time)."""
    stages = "tasks.linked_data.stages"
    products = EeflowStageOperator(
        task_id="product_set", target=f"{stages}:product_set", default_config=CONFIG,
        param_to_kwarg={"products": "products"})
    exported = EeflowStageOperator.partial(
        task_id="rdf_export", target=f"{stages}:rdf_export_stage", default_config=CONFIG,
        map_index_template="{{ task.stage_kwargs['product'] }}",
    ).expand(stage_kwargs=products.output)
    loaded = EeflowStageOperator.partial(
        task_id="load_triples", target=f"{stages}:load_triples_stage", default_config=CONFIG,
        max_active_tis_per_dag=1,
    ).expand(stage_kwargs=products.output)
    exported >> loaded


linked_data_dag = linked_data()
