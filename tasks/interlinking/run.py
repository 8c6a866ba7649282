"""Interlinking runs: interlink (exhaustive or budgeted), compare selectors, generate test data.

Each run reads its input files, writes one output folder atomically (``tasks.storage.atomic_dir``)
with a ``manifest.json``, and returns the output paths and a small summary (JSON-able). The CLI
calls them directly, the ``interlinking`` DAG through :mod:`tasks.interlinking.stages`.

``run`` output folder: ``relations.nt`` (GeoSPARQL triples, source -> target), ``pairs.parquet``
(one row per verified pair: source / target row and IRI, DE-9IM matrix, relation mask) and the
manifest (graph IRI, counts per relation, grid, timings).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import DaskConfig
from tasks.config.linked_data import LinkedDataConfig
from tasks.interlinking.readers import GeometrySet, read_geometry_sets
from tasks.linked_data.namespaces import DEFAULT_BASE, iri_segment
from tasks.storage import atomic_dir, write_manifest

log = logging.getLogger(__name__)

RDF_FILE = "relations.nt"
PAIRS_FILE = "pairs.parquet"


def _hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def relations_graph_iri(source: GeometrySet, target: GeometrySet, base: str = DEFAULT_BASE) -> str:
    """IRI of the named graph holding the relations between two datasets."""
    return (f"{base}graph/interlinking/{iri_segment(source.name)}/"
            f"{iri_segment(target.name)}")


def interlinking_out_dir(root: str | Path, day: str, source: str | Path,
                         target: str | Path) -> Path:
    """Default output folder: ``{root}/linked_data/interlinking/{day}/{source}__{target}``."""
    from tasks.storage import stage_dir

    name = f"{Path(source).name.split('.')[0]}__{Path(target).name.split('.')[0]}"
    return stage_dir(root, "linked_data", "interlinking", day) / name


def _write_pairs(path: Path, source: GeometrySet, target: GeometrySet, src: np.ndarray,
                 tgt: np.ndarray, de9im: np.ndarray, masks: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "source_row": source.rows[src], "target_row": target.rows[tgt],
        "source_iri": pa.array(source.iris[src], pa.string()),
        "target_iri": pa.array(target.iris[tgt], pa.string()),
        "de9im": pa.array(de9im.astype(str), pa.string()),
        "relations": masks,
    })
    pq.write_table(table, path)


def run_interlinking(
    source_path: str | Path,
    target_path: str | Path,
    out_dir: str | Path,
    *,
    target_crs: str | None = None,
    budget: int | None = None,
    selector: str = "chi2_mbro",
    seed: int = 0,
    cell_factor: float = 1.0,
    n_partitions: int | None = None,
    dask: DaskConfig | None = None,
    source_iri_template: str | None = None,
    target_iri_template: str | None = None,
    base: str = DEFAULT_BASE,
    graph: str | None = None,
    include_disjoint: bool = False,
) -> dict[str, Any]:
    """Interlink two geometry files and write the relations as GeoSPARQL N-Triples.

    Args:
        source_path: source geometry file (GeoParquet, GeoJSON, LUCAS CSV ...).
        target_path: target geometry file.
        out_dir: output folder (replaced atomically).
        target_crs: reproject both sets into this CRS; None: they must share one.
        budget: verify at most this many candidate pairs, by ``selector`` weight (None: all).
        selector: budgeted mode's pair selector (see ``progressive.SELECTORS``).
        seed: seed of the random selector and tie breaking.
        cell_factor: multiplier of the data-derived grid cell size.
        n_partitions: column strips (Dask tasks); default 1 in process, 4 per worker on Dask.
        dask: run the exhaustive mode's strips on this Dask cluster (None: in this process).
        source_iri_template: IRI template of source features (see ``readers.feature_iris``).
        target_iri_template: of target features.
        base: base of relative IRI templates and of the graph IRI.
        graph: named graph IRI (default ``{base}graph/interlinking/{source}/{target}``).
        include_disjoint: also write ``geo:sfDisjoint`` for verified disjoint pairs.

    Returns:
        ``{"out_dir", "rdf_file", "graph", "counts": {...}, "seconds": {...}}``.

    """
    from tasks.interlinking.triples import DEFAULT_RELATIONS, relation_counts

    started = time.perf_counter()
    source, target = read_geometry_sets(source_path, target_path, target_crs,
                                        source_iri_template, target_iri_template, base)
    read_s = time.perf_counter() - started
    counts: dict[str, Any] = {"source_features": source.geometries.size,
                              "target_features": target.geometries.size,
                              "source_dropped": source.dropped, "target_dropped": target.dropped}
    t0 = time.perf_counter()
    if budget is None:
        links, extra = _link_exhaustive(source, target, counts, cell_factor=cell_factor,
                                        n_partitions=n_partitions, dask=dask)
    else:
        links, extra = _link_budgeted(source, target, counts, budget=budget, selector=selector,
                                      seed=seed, cell_factor=cell_factor)
    link_s = time.perf_counter() - t0
    counts["relations"] = relation_counts(links.masks)
    graph = graph or relations_graph_iri(source, target, base)
    wanted = DEFAULT_RELATIONS + (("disjoint",) if include_disjoint else ())
    settings = {"target_crs": target_crs, "budget": budget, "selector": selector,
                "seed": seed, "cell_factor": cell_factor, "include_disjoint": include_disjoint,
                "source_iri_template": source_iri_template,
                "target_iri_template": target_iri_template}
    out_dir = Path(out_dir)
    triples, seconds = _write_run(
        out_dir, source, target, links, wanted, counts,
        inputs={"source": str(source_path), "target": str(target_path)},
        settings=settings, extra={**extra, "graph": graph}, read_s=read_s, link_s=link_s,
    )
    log.info("interlinking %s x %s: %s triples into %s", source.name, target.name, triples,
             out_dir)
    return {"out_dir": str(out_dir), "rdf_file": str(out_dir / RDF_FILE), "graph": graph,
            "counts": counts, "seconds": seconds}


@dataclass(frozen=True)
class _Links:
    """The verified pairs of a run: source / target rows, DE-9IM matrices, relation masks."""

    source: np.ndarray
    target: np.ndarray
    de9im: np.ndarray
    masks: np.ndarray


def _link_exhaustive(
    source: GeometrySet, target: GeometrySet, counts: dict[str, Any], *, cell_factor: float,
    n_partitions: int | None, dask: DaskConfig | None,
) -> tuple[_Links, dict[str, Any]]:
    """Verify every candidate pair (on ``dask`` when given); add the pair counts to ``counts``."""
    from tasks.interlinking.link import interlink

    if dask is not None:
        from tasks.dask_cluster import dask_client

        with dask_client(dask) as client:
            parts = n_partitions or (4 * dask.n_workers if client is not None else 1)
            result = interlink(source.geometries, target.geometries, cell_factor=cell_factor,
                               n_partitions=parts, client=client)
    else:
        result = interlink(source.geometries, target.geometries, cell_factor=cell_factor,
                           n_partitions=n_partitions or 1)
    counts.update(candidates=result.candidates, verified=result.verified)
    links = _Links(result.source, result.target, result.de9im, result.masks)
    return links, {"mode": "exhaustive", "grid": vars(result.grid)}


def _link_budgeted(
    source: GeometrySet, target: GeometrySet, counts: dict[str, Any], *, budget: int,
    selector: str, seed: int, cell_factor: float,
) -> tuple[_Links, dict[str, Any]]:
    """Verify at most ``budget`` pairs, by ``selector`` weight; add the counts to ``counts``."""
    from tasks.interlinking.progressive import budgeted_interlink

    budgeted = budgeted_interlink(source.geometries, target.geometries, selector, budget,
                                  seed=seed, cell_factor=cell_factor)
    counts.update(candidates=budgeted.candidates, selected=budgeted.selected,
                  verified=int(budgeted.source.size), budget=budget)
    links = _Links(budgeted.source, budgeted.target, budgeted.de9im, budgeted.masks)
    return links, {"mode": "budgeted", "selector": selector, "seed": seed}


def _write_run(
    out_dir: Path, source: GeometrySet, target: GeometrySet, links: _Links,
    wanted: tuple[str, ...], counts: dict[str, Any], *, inputs: dict[str, str],
    settings: dict[str, Any], extra: dict[str, Any], read_s: float, link_s: float,
) -> tuple[int, dict[str, float]]:
    """Write relations.nt, pairs.parquet and the manifest atomically; return (triples, seconds).

    ``counts`` gets the triple count; ``extra`` (mode, grid or selector, graph) goes into the
    manifest with the file names, the CRS, ``settings`` and the timings.
    """
    from tasks.interlinking.triples import write_ntriples

    t0 = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        triples = write_ntriples(tmp / RDF_FILE, source.iris, target.iris, links.source,
                                 links.target, links.masks, wanted)
        _write_pairs(tmp / PAIRS_FILE, source, target, links.source, links.target, links.de9im,
                     links.masks)
        counts["triples"] = triples
        seconds = {"read": round(read_s, 3), "interlink": round(link_s, 3),
                   "write": round(time.perf_counter() - t0, 3)}
        write_manifest(tmp, stage="interlinking", inputs=inputs, config_hash=_hash(settings),
                       counts=counts,
                       extra={**extra, "rdf_file": RDF_FILE, "pairs_file": PAIRS_FILE,
                              "crs": source.crs, "settings": settings, "seconds": seconds})
    return triples, seconds


def load_stage(cfg: LinkedDataConfig, out_dir: str | Path, store: Any = None) -> dict[str, Any]:
    """Load a ``run`` output folder's relations into their named graph (replacing it)."""
    from tasks.interlinking.triples import load_relations_graph
    from tasks.storage import read_manifest

    manifest = read_manifest(out_dir)
    if manifest.get("stage") != "interlinking":
        raise ValueError(f"{out_dir} is a {manifest.get('stage')!r} output, not an interlinking "
                         "one; pass the folder `eeflow interlink run --out` wrote")
    return load_relations_graph(cfg, Path(out_dir) / manifest["rdf_file"], manifest["graph"],
                                store=store)


def compare_selectors_stage(
    source_path: str | Path,
    target_path: str | Path,
    out_dir: str | Path,
    *,
    target_crs: str | None = None,
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5),
    seed: int = 0,
    cell_factor: float = 1.0,
) -> dict[str, Any]:
    """Compare every selector's recall against the exhaustive result; write JSON + curve PNG.

    Returns:
        ``{"out_dir", "report", "figure", "at_fractions", "paper_ordering"}``.

    """
    from tasks.interlinking.progressive import compare_selectors, plot_recall_curves

    source, target = read_geometry_sets(source_path, target_path, target_crs)
    report = compare_selectors(source.geometries, target.geometries, fractions=fractions,
                               seed=seed, cell_factor=cell_factor)
    report["inputs"] = {"source": str(source_path), "target": str(target_path)}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / "selectors.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        plot_recall_curves(report, tmp / "recall_vs_budget.png",
                           title=f"{source.name} x {target.name}: {report['candidates']:,} "
                                 f"candidates, {report['related']:,} related pairs")
        write_manifest(tmp, stage="interlinking_selectors",
                       inputs={"source": str(source_path), "target": str(target_path)},
                       config_hash=_hash({"fractions": fractions, "seed": seed,
                                          "cell_factor": cell_factor, "target_crs": target_crs}),
                       counts={"candidates": report["candidates"], "related": report["related"]})
    return {"out_dir": str(out_dir), "report": str(out_dir / "selectors.json"),
            "figure": str(out_dir / "recall_vs_budget.png"),
            "at_fractions": report["at_fractions"], "paper_ordering": report["paper_ordering"]}


def generate_stage(out_dir: str | Path, n_parcels: int = 10_000, seed: int = 0,
                   n_points: int | None = None) -> dict[str, Any]:
    """Generate parcels / fields / points GeoParquet files (see ``generator``) into ``out_dir``."""
    from tasks.interlinking.generator import generate_sets

    sets = generate_sets(n_parcels, seed=seed, n_points=n_points)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        paths = sets.write(tmp)
        counts = {"parcels": len(sets.parcels), "fields": len(sets.fields),
                  "points": len(sets.points),
                  "field_kinds": sets.fields["kind"].value_counts().to_dict()}
        write_manifest(tmp, stage="interlinking_generate", inputs=[],
                       config_hash=_hash({"n_parcels": n_parcels, "seed": seed,
                                          "n_points": n_points}),
                       counts=counts, extra={"crs": sets.crs})
    return {"out_dir": str(out_dir),
            "files": {name: str(out_dir / p.name) for name, p in paths.items()},
            "counts": counts}
