"""Stage functions the pipelines call last: ``rdf_export`` and ``load_triples``.

They follow the stage signature of ``operators.stage.EeflowStageOperator``
(``target(cfg, run_date, **kwargs)``) so the polar and crop DAGs add, e.g.::

    EeflowStageOperator(task_id="rdf_export", target="tasks.linked_data.stages:rdf_export_stage",
                        stage_kwargs={"product": "ice_chart"}, **common)
    EeflowStageOperator(task_id="load_triples",
                        target="tasks.linked_data.stages:load_triples_stage",
                        stage_kwargs={"product": "ice_chart"}, pool="triple_store", **common)

``cfg`` is the linked_data config, or a use-case config whose ``linked_data.config`` names one:
load_config loaded it at the edge with the use case's ``data_root``. The ``linked_data`` DAG fans
the two stages out over its product set (:func:`product_set`). Each returns a
:class:`~tasks.stage_result.StageResult`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tasks.config.common import UseCaseConfig
from tasks.config.linked_data import LinkedDataConfig
from tasks.stage_result import StagePlan, StageResult


def linked_data_config_for(cfg: UseCaseConfig | None) -> LinkedDataConfig:
    """Return the linked-data config of ``cfg``: itself, or the one its ``linked_data`` names.

    Raises:
        ConfigError: ``cfg`` names no linked-data config (or was not loaded by load_config).

    """
    from tasks.config.common import ConfigError
    from tasks.config.linked_data import LinksLinkedData

    if isinstance(cfg, LinkedDataConfig):
        return cfg
    if not isinstance(cfg, LinksLinkedData):
        use_case = "no" if cfg is None else f"the {cfg.use_case}"
        raise ConfigError(f"{use_case} config has no linked-data settings; pass the linked_data "
                          "config or a polar / food_security config naming one")
    return cfg.linked_data_settings()


def product_set(
    cfg: LinkedDataConfig, run_date: dt.date | str, products: Sequence[str]
) -> StagePlan:
    """Plan one ``rdf_export`` / ``load_triples`` task per product of the ``products`` param."""
    del cfg, run_date  # the run date reaches every mapped task through its own context
    return StagePlan(tuple({"product": product} for product in products))


def rdf_export_stage(
    cfg: UseCaseConfig, run_date: dt.date | str, product: str
) -> StageResult:
    """Export ``product`` of the run containing ``run_date`` to RDF (see export_product)."""
    from tasks.linked_data.export import export_product, run_key_for
    from tasks.linked_data.export_s3 import export_product_s3

    ld = linked_data_config_for(cfg)
    export = export_product_s3 if ld.is_remote_root() else export_product  # s3:// data root
    return StageResult.from_dict(export(ld, product, run_key_for(product, run_date)),
                                 outputs=("rdf", "rejected_csv"))


def load_triples_stage(
    cfg: UseCaseConfig, run_date: dt.date | str, product: str
) -> StageResult:
    """Load the exported ``product`` run into its named graph (replacing it)."""
    from tasks.linked_data.export import run_key_for
    from tasks.linked_data.store import load_product

    ld = linked_data_config_for(cfg)
    run_key = run_key_for(product, run_date)
    if ld.is_remote_root():
        return StageResult.from_dict(_load_from_s3(ld, product, run_key))
    return StageResult.from_dict(load_product(ld, product, run_key, entail=ld.store.entail))


def _load_from_s3(ld: LinkedDataConfig, product: str, run_key: str) -> dict[str, object]:
    """:func:`load_triples_stage` on an ``s3://`` data root.

    The export's published version (``linked_data/rdf/{run_key}/{product}``) is downloaded to a
    temporary folder and loaded from there like a local export (the graph IRI from its manifest).
    The store itself is not on S3: an HTTP store, or an embedded one at an absolute path.
    """
    import tempfile
    from pathlib import Path

    from tasks.linked_data.store import load_product
    from tasks.naming import safe_name
    from tasks.storage import download_stage_dir, read_manifest, resolve_stage_dir, stage_location

    if ld.store.mode != "http" and not Path(ld.store.path).is_absolute():
        raise ValueError(
            f"store.path {ld.store.path!r} is relative to data_root, but data_root "
            f"{ld.data_root!r} is on S3 and an embedded store needs a local folder: set an "
            "absolute store.path, or store.mode: http with the server's endpoint")
    export = f"{stage_location(ld.storage_root(), 'linked_data', 'rdf', run_key)}/{product}"
    try:
        manifest = read_manifest(export)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no {product} export for {run_key} at {export}; run the rdf export stage for that "
            "run first (on the same s3:// data_root)") from err
    name = safe_name("rdf_file", manifest["rdf_file"])
    with tempfile.TemporaryDirectory(prefix="eeflow-load-") as scratch:
        # the export in the local layout, so the load reads its manifest (graph, triple count)
        download_stage_dir(export, Path(scratch) / "linked_data" / "rdf" / run_key / product)
        local = ld.model_copy(update={"data_root": scratch})
        result = load_product(local, product, run_key, entail=ld.store.entail)
    result["rdf"] = f"{resolve_stage_dir(export)}/{name}"
    return result
