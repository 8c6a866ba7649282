"""OGC GeoSPARQL 1.0 (and cheap 1.1 additions) on top of pyoxigraph.

* :mod:`.literals` / :mod:`.gml` - ``geo:wktLiteral`` (optional CRS IRI, the CRS's own axis order,
  empty literals) and ``geo:gmlLiteral`` (GML 3.1 / 3.2 simple-features profile) to shapely and
  back, CRS transforms with pyproj.
* :mod:`.functions` - every ``geof:`` function of the standard as pyoxigraph custom functions.
* :mod:`.entailment` - RDFS entailment (GeoSPARQL, Simple Features, GML and eeflow class /
  property hierarchies) and the geometry properties (``geo:dimension`` ...) materialised into a
  companion graph ``{graph}/entailed`` at load.
* :mod:`.rewrite` - the query-rewrite extension: ``?f1 geo:sfWithin ?f2`` answered from the
  features' default geometries as well as from asserted triples.
* :mod:`.engine` - one entry point that applies both to a pyoxigraph store (used by the embedded
  store and by ``eeflow rdf serve``).

The standard's requirement list as executable checks (tests, bench) is
:mod:`tasks.linked_data.geosparql_conformance`: it runs them on the embedded store and the HTTP
server, which sit above this package (nothing here imports ``store`` or ``server``).
"""
