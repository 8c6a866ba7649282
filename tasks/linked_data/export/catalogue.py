"""DCAT catalogue entry of one exported product run."""

from __future__ import annotations

import datetime as dt
import math
import re

import shapely

from tasks.linked_data.export.exporter import RDF_TYPE
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.mapping import Mapping
from tasks.linked_data.namespaces import (
    CRS84,
    DCAT,
    DCT,
    EEO,
    PROV,
    WKT_LITERAL,
    XSD,
    concept_iri,
    iri_segment,
)
from tasks.linked_data.terms import RdfFormatName, TermArray, TripleSink

MEDIA_TYPES: dict[str, str] = {
    "nt": "application/n-triples",
    "nq": "application/n-quads",
    "ttl": "text/turtle",
}


def _temporal(mapping: Mapping, run_key: str, stats: ExportStats) -> tuple[str, str] | None:
    kind = mapping.temporal
    if kind == "run_key_day":
        day = dt.date.fromisoformat(run_key)
        return day.isoformat(), day.isoformat()
    if kind == "agronomic_year":
        found = re.match(r"^(\d{4})-(\d{2})_(\d{4})-(\d{2})$", run_key)
        if not found:
            raise ValueError(f"run key {run_key!r} is not an agronomic year like 2017-09_2018-08")
        y0, m0, y1, m1 = (int(g) for g in found.groups())
        end = dt.date(y1 + (m1 == 12), m1 % 12 + 1, 1) - dt.timedelta(days=1)
        return dt.date(y0, m0, 1).isoformat(), end.isoformat()
    if kind.startswith("column:") and stats.dates:
        return min(stats.dates).isoformat(), max(stats.dates).isoformat()
    return None


def write_catalogue_entry(
    sink: TripleSink,
    mapping: Mapping,
    base: str,
    run_key: str,
    stats: ExportStats,
    inputs: list[str],
    fmt: RdfFormatName,
) -> str:
    """DCAT entry of this product run (in the same graph, so a re-load replaces it too)."""
    dataset = (
        f"{base}dataset/{iri_segment(mapping.use_case)}/{iri_segment(mapping.product)}/"
        f"{iri_segment(run_key)}"
    )
    subject = TermArray.iris([dataset])

    def iri(predicate: str, value: str, node: TermArray = subject) -> None:
        sink.write(node, predicate, TermArray.iris([value]))

    def lit(
        predicate: str, value: str, datatype: str | None = None, node: TermArray = subject
    ) -> None:
        sink.write(node, predicate, TermArray.literals([value], datatype))

    iri(RDF_TYPE, EEO + "Product")
    iri(RDF_TYPE, DCAT + "Dataset")
    iri(RDF_TYPE, PROV + "Entity")
    iri(EEO + "productType", concept_iri(base, "product_type", mapping.product))
    lit(DCT + "title", f"{mapping.product.replace('_', ' ')} {run_key}")
    lit(EEO + "runKey", run_key)
    lit(EEO + "featureCount", str(stats.features), XSD + "integer")
    for crs in sorted(stats.source_crs):
        authority = re.match(r"^EPSG:(\d+)$", crs)
        if authority:
            iri(EEO + "sourceCrs", f"http://www.opengis.net/def/crs/EPSG/0/{authority.group(1)}")
    if all(math.isfinite(v) for v in stats.bounds):
        x0, y0, x1, y1 = stats.bounds
        box = shapely.box(x0, y0, x1, y1) if (x1 > x0 and y1 > y0) else shapely.Point(x0, y0)
        lit(
            DCAT + "bbox",
            f"<{CRS84}> {shapely.to_wkt(box, rounding_precision=7, trim=True)}",
            WKT_LITERAL,
        )
    period = _temporal(mapping, run_key, stats)
    if period is not None:
        node = TermArray.iris([dataset + "/temporal"])
        iri(DCT + "temporal", dataset + "/temporal")
        iri(RDF_TYPE, DCT + "PeriodOfTime", node)
        lit(DCAT + "startDate", period[0], XSD + "date", node)
        lit(DCAT + "endDate", period[1], XSD + "date", node)
    distribution = TermArray.iris([dataset + "/distribution/rdf"])
    iri(DCAT + "distribution", dataset + "/distribution/rdf")
    iri(RDF_TYPE, DCAT + "Distribution", distribution)
    lit(DCAT + "mediaType", MEDIA_TYPES[fmt], node=distribution)
    for source in inputs:
        lit(DCT + "source", source)
    catalog = TermArray.iris([base + "catalog"])
    iri(RDF_TYPE, DCAT + "Catalog", catalog)
    iri(DCAT + "dataset", dataset, catalog)
    return dataset
