"""Linked geospatial data: ontology, mappings, streaming RDF export, store loading, GeoSPARQL.

Public entry points: :func:`tasks.linked_data.export.export_product`,
:func:`tasks.linked_data.store.load_product`, :func:`tasks.linked_data.query.run_named_query`,
:func:`tasks.linked_data.federation.run_federated_query`.
"""
