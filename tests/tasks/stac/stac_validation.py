"""Validate STAC JSON against the schemas kept in tests/data/stac_schemas (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "stac_schemas"
STAC = "https://schemas.stacspec.org/v1.1.0"
CORE = {"Feature": f"{STAC}/item-spec/json-schema/item.json",
        "Catalog": f"{STAC}/catalog-spec/json-schema/catalog.json",
        "Collection": f"{STAC}/collection-spec/json-schema/collection.json"}


def _registry() -> Registry:
    resources = []
    for path in sorted((SCHEMAS / "stac-spec" / "v1.1.0").glob("*.json")):
        spec = {"catalog": "catalog-spec", "collection": "collection-spec"}.get(path.stem,
                                                                                "item-spec")
        url = f"{STAC}/{spec}/json-schema/{path.name}"
        resources.append((url, Resource.from_contents(json.loads(path.read_text()), DRAFT7)))
    for path in sorted((SCHEMAS / "geojson").glob("*.json")):
        resources.append((f"https://geojson.org/schema/{path.name}",
                          Resource.from_contents(json.loads(path.read_text()), DRAFT7)))
    for path in sorted((SCHEMAS / "extensions").glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validate_stac(document: dict[str, Any]) -> list[str]:
    """Validate against the core schema of its type and every declared extension; return errors.

    A declared extension without a kept schema is an error too (it could not be checked).
    """
    errors = []
    if document.get("stac_version") != "1.1.0":
        errors.append(f"stac_version {document.get('stac_version')!r}, not 1.1.0")
    urls = [CORE[document["type"]], *document.get("stac_extensions", [])]
    for url in urls:
        try:
            schema = REGISTRY.contents(url)
        except LookupError:
            errors.append(f"no local schema for {url}")
            continue
        validator = Draft7Validator(schema, registry=REGISTRY)
        errors += [f"{url}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                   for e in validator.iter_errors(document)]
    return errors
