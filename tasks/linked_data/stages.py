"""Stage functions the pipelines call last: ``rdf_export`` and ``load_triples``.

They follow the stage signature of ``operators.stage.EeflowStageOperator``
(``target(cfg, run_date, **kwargs)``) so the polar and crop DAGs add, e.g.::

    EeflowStageOperator(task_id="rdf_export", target="tasks.linked_data.stages:rdf_export_stage",
                        stage_kwargs={"product": "ice_chart"}, **common)
    EeflowStageOperator(task_id="load_triples",
                        target="tasks.linked_data.stages:load_triples_stage",
                        stage_kwargs={"product": "ice_chart"}, pool="triple_store", **common)

``cfg`` may be any use-case config: its ``data_root`` is used, the linked-data settings come from
``configs/linked_data.yaml`` (or ``linked_data_config``). The ``linked_data`` DAG fans the two
stages out over its product set (:func:`product_set`). Each returns a
:class:`~tasks.stage_result.StageResult`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from tasks.config.common import UseCaseConfig
from tasks.config.linked_data import LinkedDataConfig
from tasks.stage_result import StagePlan, StageResult

DEFAULT_LINKED_DATA_CONFIG = "configs/linked_data.yaml"


def linked_data_config_for(
    cfg: UseCaseConfig | None, linked_data_config: str | None = None
) -> LinkedDataConfig:
    """Return the linked-data config, with ``cfg``'s data root for another use case's cfg."""
    from tasks.config.common import eeflow_home, load_config

    if isinstance(cfg, LinkedDataConfig):
        return cfg
    path = Path(linked_data_config or DEFAULT_LINKED_DATA_CONFIG)
    if not path.is_absolute():
        path = eeflow_home() / path
    overrides = {"data_root": str(cfg.resolved_root())} if cfg is not None else {}
    return load_config(path, overrides) if path.is_file() else LinkedDataConfig(**overrides)


def product_set(
    cfg: LinkedDataConfig, run_date: dt.date | str, products: Sequence[str]
) -> StagePlan:
    """Plan one ``rdf_export`` / ``load_triples`` task per product of the ``products`` param."""
    del cfg, run_date  # the run date reaches every mapped task through its own context
    return StagePlan(tuple({"product": product} for product in products))


def rdf_export_stage(
    cfg: UseCaseConfig, run_date: dt.date | str, product: str,
    linked_data_config: str | None = None,
) -> StageResult:
    """Export ``product`` of the run containing ``run_date`` to RDF (see export_product)."""
    from tasks.linked_data.export import export_product, run_key_for

    ld = linked_data_config_for(cfg, linked_data_config)
    return StageResult.from_dict(export_product(ld, product, run_key_for(product, run_date)),
                                 outputs=("rdf", "rejected_csv"))


def load_triples_stage(
    cfg: UseCaseConfig, run_date: dt.date | str, product: str,
    linked_data_config: str | None = None,
) -> StageResult:
    """Load the exported ``product`` run into its named graph (replacing it)."""
    from tasks.linked_data.export import run_key_for
    from tasks.linked_data.store import load_product

    ld = linked_data_config_for(cfg, linked_data_config)
    return StageResult.from_dict(
        load_product(ld, product, run_key_for(product, run_date), entail=ld.store.entail))
