"""The domain vocabularies every layer may use: ice classes, crop classes, crop code lists.

The classes and code lists are data (``codelists/``, sources and licences in its ``SOURCES.md``);
these modules read them and import nothing from the use cases, so sensors, datasets, RDF export
and the use cases all share one definition.
"""
