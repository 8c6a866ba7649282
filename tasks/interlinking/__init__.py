"""Topological interlinking of two geometry sets (the paper's JedAI-spatial), as a library.

Modules: ``readers`` (files, CRS check, feature IRIs), ``grid`` (equi-grid filtering with
reference-cell deduplication), ``relations`` (DE-9IM -> relation masks, table in
``relations.yaml``), ``link`` (exhaustive filtering + verification, in process or over Dask),
``progressive`` (budgeted verification with pair selectors, recall curves), ``triples``
(GeoSPARQL N-Triples, named-graph load), ``generator`` (synthetic parcels / fields / points),
``stage`` (the stages the CLI and the DAG call) and ``cli`` (``eeflow interlink``).
Importing this package loads no heavy library.
"""
