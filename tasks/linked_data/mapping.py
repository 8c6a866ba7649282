r"""Mapping files: how one product type's rows become RDF (data, one YAML file per product).

A mapping is a small, RML-like description (see ``mappings/*.yaml``)::

    product: crop_field_instances          # product type (code list product_types.csv)
    use_case: food_security
    source: {format: geoparquet, file_pattern: '^(?P<tile>.+)_instances\\.parquet$'}
    temporal: agronomic_year               # how the catalogue's time extent is found
    run_key: agronomic_year                # run key of a logical date (day | year | current)
    features:                              # one triples map per row set
      - subject: 'feature/crop/{run_key}/{tile}/{row}'
        types: [eeo:CropFieldInstance, geo:Feature]
        properties:
          - {predicate: eeo:hasCropType, column: crop_class, concept: crop_type}
          - {predicate: eeo:confidence, column: confidence, datatype: xsd:double}
        geometry: {subject: 'geometry/crop/{run_key}/{tile}/{row}', grid_cells: true}
    per_file:                              # resources emitted once per input file
      - subject: 'observation/crop/{run_key}/{tile}'
        types: [eeo:Observation]
        properties: [{predicate: eeo:hasImageID, iri: 'image/{tile}_{run_key}'}]

Templates use ``{name}`` placeholders: input columns, ``row`` (the row id), ``run_key`` and the
context variables (``file_pattern`` groups, ``context`` entries read from the file's JSON or the
``manifest.json`` beside it). Relative IRIs are resolved against the configured base IRI.
"""

from __future__ import annotations

import re
import string
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.errors import EeflowError
from tasks.linked_data.namespaces import expand_curie

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"


class MappingError(EeflowError, ValueError):
    """A mapping file is invalid or does not fit its input (names the file and the key)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def template_fields(template: str) -> list[str]:
    """Return the ``{placeholder}`` names of a template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


class SourceSpec(_Strict):
    """How to read the product's input files."""

    format: Literal["geojson", "geoparquet", "csv", "shapefile", "json"]
    file_pattern: str = Field(description="regex on the file name; named groups become context")
    geometry_column: str = "geometry"
    wkt_column: str | None = Field(default=None, description="csv: geometry as WKT")
    lon_columns: list[str] = Field(
        default_factory=list, description="csv: longitude, first non-null"
    )
    lat_columns: list[str] = Field(
        default_factory=list, description="csv: latitude, first non-null"
    )
    crs: str | None = Field(default=None, description="source CRS when the file does not say")
    rows_from: str | None = Field(default=None, description="json: dotted path of rows")
    manifest: bool = Field(default=False, description="read manifest.json beside the file")
    null_values: list[str] = Field(
        default_factory=list, description="csv: values meaning 'missing' (LUCAS: 88.888888)"
    )

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The compiled :attr:`file_pattern`."""
        return re.compile(self.file_pattern)

    @model_validator(mode="after")
    def _geometry_source(self) -> SourceSpec:
        re.compile(self.file_pattern)
        if (
            self.format == "csv"
            and not self.wkt_column
            and not (self.lon_columns and self.lat_columns)
        ):
            raise ValueError("csv sources need wkt_column or both lon_columns and lat_columns")
        return self


class PropertySpec(_Strict):
    """One predicate and where its object comes from (exactly one of column / iri / value)."""

    predicate: str
    column: str | None = None
    fallback_columns: list[str] = Field(default_factory=list)
    iri: str | None = Field(default=None, description="IRI template")
    value: str | None = Field(default=None, description="literal template")
    concept: str | None = Field(default=None, description="code list the column's value is in")
    datatype: str | None = Field(default=None, description="xsd:... or 'auto' (json values)")
    lang: str | None = None
    date_format: str | None = Field(default=None, description="strptime format -> xsd:date")
    optional: bool = Field(default=False, description="the column may be absent from the input")

    @model_validator(mode="after")
    def _one_source(self) -> PropertySpec:
        given = [k for k in ("column", "iri", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"property {self.predicate}: give exactly one of column / iri / value, got {given}"
            )
        if self.concept is not None and self.column is None:
            raise ValueError(f"property {self.predicate}: concept needs a column")
        return self

    def columns(self) -> list[str]:
        """Input columns this property reads (first present one wins)."""
        return [self.column, *self.fallback_columns] if self.column else []


class GeometrySpec(_Strict):
    """The feature's geo:Geometry node."""

    subject: str
    grid_cells: bool = False


class TriplesMapSpec(_Strict):
    """Rows -> one subject each, with types, properties and an optional geometry."""

    rows_from: str | None = None
    subject: str
    types: list[str] = Field(default_factory=list)
    properties: list[PropertySpec] = Field(default_factory=list)
    geometry: GeometrySpec | None = None


class ResourceSpec(_Strict):
    """A resource emitted once per input file (observation, image, scene, model ...)."""

    subject: str
    types: list[str] = Field(default_factory=list)
    properties: list[PropertySpec] = Field(default_factory=list)
    when: str | None = Field(default=None, description="emit only when this context key is set")

    @model_validator(mode="after")
    def _no_columns(self) -> ResourceSpec:
        for prop in self.properties:
            if prop.column is not None:
                raise ValueError(f"per_file property {prop.predicate}: use iri/value, not column")
        return self


class Mapping(_Strict):
    """A validated mapping file (see the module docstring)."""

    product: str
    use_case: str
    title: str
    source: SourceSpec
    id_column: str | None = None
    context: dict[str, str] = Field(default_factory=dict)
    temporal: str = Field(
        default="none", description="run_key_day | agronomic_year | column:NAME | none"
    )
    run_key: Literal["day", "agronomic_year", "year", "current"] | None = Field(
        default=None,
        description="run key of a logical date: the day, the agronomic year (Sep-Aug), the year, "
        "or 'current' (one run, replaced on re-export)",
    )
    features: list[TriplesMapSpec] = Field(min_length=1)
    per_file: list[ResourceSpec] = Field(default_factory=list)
    path: str = ""

    def expanded(self, curie: str) -> str:
        """Expand a prefixed name, naming this mapping file on error."""
        try:
            return expand_curie(curie)
        except ValueError as err:
            raise MappingError(f"mapping {self.path}: {err}") from None

    def required_columns(self, rows_from: str | None = None) -> set[str]:
        """Input columns the feature maps need (optional properties and fallbacks excluded)."""
        needed: set[str] = set()
        for tmap in self.features:
            if tmap.rows_from != rows_from:
                continue
            for prop in tmap.properties:
                if prop.column and not prop.optional and not prop.fallback_columns:
                    needed.add(prop.column)
        if self.id_column and self.source.format != "json":
            needed.add(self.id_column)
        return needed


def mapping_path(product: str) -> Path:
    """Path of the shipped mapping of a product type (the name is checked: no path escapes)."""
    from tasks.naming import safe_name

    return MAPPINGS_DIR / f"{safe_name('product', product)}.yaml"


def available_products() -> list[str]:
    """Product types that have a shipped mapping file."""
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(product_or_path: str | Path) -> Mapping:
    """Load and validate a mapping by product name (shipped file) or path.

    Raises:
        MappingError: the file is missing, not YAML, or a key is invalid (the message names it).

    """
    candidate = Path(product_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        path = candidate  # a mapping file named in the config: a path, not a product name
    else:
        try:
            path = mapping_path(str(product_or_path))
        except ValueError as err:
            raise MappingError(f"{err}; shipped product mappings: {available_products()}") from None
    if not path.is_file():
        raise MappingError(
            f"mapping {path} does not exist; shipped product mappings: {available_products()}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MappingError(f"mapping {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping {path}: the top level must be a mapping")
    try:
        mapping = Mapping.model_validate({**data, "path": str(path)})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise MappingError(f"mapping {path}: {problems}") from None
    for tmap in mapping.features:
        for curie in [*tmap.types, *(p.predicate for p in tmap.properties)]:
            mapping.expanded(curie)
    return mapping
