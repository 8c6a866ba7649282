"""(Re)export a chosen product set to RDF and load it into the triple store (manual trigger).

Each product of the set is exported (streaming, through its mapping) and then loaded into its own
named graph; re-running replaces those graphs. Loads run one at a time (the embedded store allows
one writer). Params choose the products and the logical date their run keys derive from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task

from operators.params import run_date_param

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

    @task
    def product_set(**context: Any) -> list[dict[str, str]]:
        from operators.context import run_date_from_context

        run_date = run_date_from_context(context).isoformat()
        return [{"product": p, "run_date": run_date} for p in context["params"]["products"]]

    @task(map_index_template="{{ task.op_kwargs['item']['product'] }}")
    def rdf_export(item: dict[str, str], **context: Any) -> dict[str, Any]:
        from operators.context import config_path
        from tasks.config.common import load_config
        from tasks.linked_data.stages import rdf_export_stage

        cfg = load_config(config_path(context["params"], CONFIG))
        return rdf_export_stage(cfg, item["run_date"], item["product"])

    @task(max_active_tis_per_dag=1)
    def load_triples(exported: dict[str, Any], **context: Any) -> dict[str, Any]:
        from operators.context import config_path
        from tasks.config.common import load_config
        from tasks.linked_data.store import load_product

        cfg = load_config(config_path(context["params"], CONFIG))
        return load_product(cfg, exported["product"], exported["run_key"],
                            entail=cfg.store.entail)

    load_triples.expand(exported=rdf_export.expand(item=product_set()))


linked_data_dag = linked_data()
