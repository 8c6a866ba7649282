"""Term encoding of input columns checked value by value on tiny hand-made columns (issue 19).

Each test gives a few values and the exact lexical forms, IRIs, datatypes, rejected rows and
rejection reasons the export must produce for them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from tasks.domain.crops import CROP_CLASSES
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.export.values import (
    _auto_literals,
    column_values,
    convert_values,
    has_column,
)
from tasks.linked_data.mapping import Mapping, MappingError, PropertySpec, load_mapping
from tasks.linked_data.namespaces import XSD

BASE = "https://example.org/eeflow/"


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping("lucas_points")


def _convert(
    prop: PropertySpec, values: pa.Array, mapping: Mapping, rejected: list[bool] | None = None,
    reasons: list[str | None] | None = None,
) -> tuple[list, np.ndarray, list[str | None], ExportStats]:
    n = len(values)
    reject = np.array(rejected if rejected is not None else [False] * n)
    why: list[str | None] = reasons if reasons is not None else [None] * n
    stats = ExportStats()
    terms = convert_values(prop, values, mapping, BASE, reject, why, stats)
    return terms, reject, why, stats


def _values(prop: PropertySpec, table: pa.Table) -> pa.Array:
    values = column_values(prop, table, "m")
    assert values is not None
    return values


def test_column_values_first_present_fallback_and_errors() -> None:
    table = pa.table({"a": [1, None, 3], "b": ["x", "y", None], "c": [7, 8, 9]})
    prop = PropertySpec(predicate="ex:p", column="z", fallback_columns=["c", "a"])
    # two present columns: coalesced as text, the first present one wins
    assert _values(prop, table).to_pylist() == ["7", "8", "9"]
    prop = PropertySpec(predicate="ex:p", column="a", fallback_columns=["b"])
    assert _values(prop, table).to_pylist() == ["1", "y", "3"]
    single = _values(PropertySpec(predicate="ex:p", column="c"), table)
    assert single.to_pylist() == [7, 8, 9] and single.type == pa.int64()
    single = _values(PropertySpec(predicate="ex:p", column="q", fallback_columns=["a"]), table)
    assert single.to_pylist() == [1, None, 3]
    assert column_values(PropertySpec(predicate="ex:p", column="q", optional=True), table,
                         "m") is None
    with pytest.raises(MappingError) as err:
        column_values(PropertySpec(predicate="ex:p", column="q"), table, "map.yaml")
    assert str(err.value) == (
        "map.yaml: property ex:p reads column 'q', which the input does not have; columns: "
        "['a', 'b', 'c']"
    )
    with pytest.raises(MappingError) as err:
        column_values(PropertySpec(predicate="ex:p", column="q", fallback_columns=["r", "s"]),
                      table, "map.yaml")
    assert str(err.value) == (
        "map.yaml: property ex:p reads column 'q' (or ['r', 's']), which the input does not "
        "have; columns: ['a', 'b', 'c']"
    )
    chunked = pa.table({"a": pa.chunked_array([[1], [2, 3]])})
    values = column_values(PropertySpec(predicate="ex:p", column="a"), chunked, "m")
    assert isinstance(values, pa.Array) and values.to_pylist() == [1, 2, 3]
    assert has_column(PropertySpec(predicate="ex:p", column="q", fallback_columns=["b"]), table)
    assert not has_column(PropertySpec(predicate="ex:p", column="q"), table)
    assert not has_column(PropertySpec(predicate="ex:p", value="x"), table)


def test_auto_literals_one_column_per_datatype() -> None:
    values = pa.array(['true', '3', '2.5', '"text"', 'null', None, 'NaN', '{"b": 1, "a": [2]}',
                       'false', '-7', 'Infinity', '1e300'])
    columns = _auto_literals(values)
    by_type = {c.datatype: c.values.to_pylist() for c in columns}
    assert [c.datatype for c in columns] == [XSD + "boolean", XSD + "integer", XSD + "double",
                                             None]  # xsd:string is the plain literal
    n = None
    assert by_type[XSD + "boolean"] == ["true", n, n, n, n, n, n, n, "false", n, n, n]
    assert by_type[XSD + "integer"] == [n, "3", n, n, n, n, n, n, n, "-7", n, n]
    assert by_type[XSD + "double"] == [n, n, "2.5", n, n, n, n, n, n, n, n, "1e+300"]
    assert by_type[None] == [n, n, n, "text", n, n, n, '{"a": [2], "b": 1}', n, n, n, n]
    assert all(c.kind == "literal" for c in columns)
    assert _auto_literals(pa.array([None, "null"], pa.string())) == []


def test_concept_values_become_code_list_iris(mapping: Mapping) -> None:
    prop = PropertySpec(predicate="ex:crop", column="crop_class", concept="crop_type")
    values = pa.array(["maize", None, "banana", "soy"])
    (terms,), reject, reasons, _ = _convert(prop, values, mapping)
    assert terms.kind == "iri"
    assert terms.values.to_pylist() == [
        BASE + "concept/crop_type/maize", None, BASE + "concept/crop_type/banana",
        BASE + "concept/crop_type/soy"]
    assert reject.tolist() == [False, True, True, False]
    assert reasons == [
        None, "crop_class is empty",
        f"crop_class 'banana' is not in code list crop_type {list(CROP_CLASSES)}", None]
    # a row rejected before keeps its first reason
    (terms,), reject, reasons, _ = _convert(prop, values, mapping, [False, False, True, False],
                                            [None, None, "earlier", None])
    assert reject.tolist() == [False, True, True, False]
    assert reasons == [None, "crop_class is empty", "earlier", None]
    numbers = pa.array([1, 2])  # codes given as numbers are compared as text
    _, reject, reasons, _ = _convert(prop, numbers, mapping)
    assert reject.tolist() == [True, True]
    assert reasons[0] == f"crop_class '1' is not in code list crop_type {list(CROP_CLASSES)}"


def test_dates_by_hand(mapping: Mapping) -> None:
    prop = PropertySpec(predicate="ex:date", column="day", date_format="%d.%m.%Y")
    values = pa.array(["05.07.2024", "2024-07-06", None, "31.12.2023", "01.08.2024"])
    (terms,), reject, reasons, stats = _convert(prop, values, mapping)
    assert terms.kind == "literal" and terms.datatype == XSD + "date"
    assert terms.needs_escape is False
    assert terms.values.to_pylist() == ["2024-07-05", None, None, "2023-12-31", "2024-08-01"]
    assert reject.tolist() == [False, True, True, False, False]
    assert reasons == [None, "day '2024-07-06' does not match date format '%d.%m.%Y'",
                       "day is empty", None, None]
    assert stats.dates == [dt.date(2023, 12, 31), dt.date(2024, 8, 1)]
    (terms,), reject, reasons, stats = _convert(prop, pa.array([None, "x"], pa.string()), mapping)
    assert stats.dates == []
    assert reasons == ["day is empty", "day 'x' does not match date format '%d.%m.%Y'"]


def test_numeric_arrow_columns(mapping: Mapping) -> None:
    values = pa.array([1.5, float("nan"), None, float("inf"), -2.0, 1e21])
    prop = PropertySpec(predicate="ex:v", column="v", datatype="xsd:double")
    (terms,), reject, reasons, _ = _convert(prop, values, mapping)
    assert terms.datatype == XSD + "double" and terms.needs_escape is False
    assert terms.values.to_pylist() == ["1.5", None, None, None, "-2", "1e+21"]
    assert reject.tolist() == [False, True, False, True, False, False]
    assert reasons == [None, "v nan is not a finite number", None, "v inf is not a finite number",
                       None, None]
    integer = PropertySpec(predicate="ex:v", column="v", datatype="xsd:integer")
    (terms,), reject, reasons, _ = _convert(integer, pa.array([2.0, 2.5, None, -3.0, np.nan]),
                                            mapping)
    assert terms.datatype == XSD + "integer"
    ok = ~reject
    assert np.array(terms.values.to_pylist(), object)[ok].tolist() == ["2", None, "-3"]
    assert reject.tolist() == [False, True, False, False, True]
    assert reasons == [None, "v 2.5 is not an integer", None, None, "v nan is not a finite number"]
    (terms,), reject, _, _ = _convert(integer, pa.array([7, None, -12], pa.int32()), mapping)
    assert terms.values.to_pylist() == ["7", None, "-12"]
    assert reject.tolist() == [False, False, False]
    decimal = PropertySpec(predicate="ex:v", column="v", datatype="xsd:decimal")
    (terms,), _, _, _ = _convert(decimal, pa.array([7, -120], pa.int64()), mapping)
    assert terms.values.to_pylist() == ["7", "-120"]
    assert terms.datatype == XSD + "decimal"
    # xsd:decimal has no exponent form: small, large and huge integral doubles written out
    (terms,), reject, _, _ = _convert(
        decimal, pa.array([1e-07, 2**53 + 0.0, -1.25e21, 0.1, None, float("nan")]), mapping)
    assert terms.values.to_pylist() == ["0.0000001", "9007199254740992",
                                        "-1250000000000000000000", "0.1", None, None]
    assert reject.tolist() == [False, False, False, False, False, True]
    (terms,), _, _, _ = _convert(decimal, pa.array(["1e-07", "2.5E3"]), mapping)
    assert terms.values.to_pylist() == ["0.0000001", "2500"]
    flt = PropertySpec(predicate="ex:v", column="v", datatype=XSD + "float")
    (terms,), _, _, _ = _convert(flt, pa.array([0.25], pa.float32()), mapping)
    assert terms.values.to_pylist() == ["0.25"] and terms.datatype == XSD + "float"


def test_numbers_given_as_text(mapping: Mapping) -> None:
    prop = PropertySpec(predicate="ex:v", column="v", datatype="xsd:decimal")
    values = pa.array(["1.5", "abc", None, "2", "inf", " 3 "])
    (terms,), reject, reasons, _ = _convert(prop, values, mapping)
    assert terms.datatype == XSD + "decimal" and terms.needs_escape is False
    assert terms.values.to_pylist() == ["1.5", None, None, "2", None, "3"]
    assert reject.tolist() == [False, True, False, False, True, False]
    assert reasons == [None, "v 'abc' is not a finite number", None, None,
                       "v 'inf' is not a finite number", None]
    integer = PropertySpec(predicate="ex:v", column="v", datatype="xsd:integer")
    values = pa.array(["3", "3.5", "x", None, "-4.0"])
    (terms,), reject, reasons, _ = _convert(integer, values, mapping)
    assert reject.tolist() == [False, True, True, False, False]
    assert reasons == [None, "v '3.5' is not an integer", "v 'x' is not a finite number", None,
                       None]
    assert np.array(terms.values.to_pylist(), object)[~reject].tolist() == ["3", None, "-4"]
    assert terms.datatype == XSD + "integer"


def test_plain_auto_and_language_literals(mapping: Mapping) -> None:
    text = PropertySpec(predicate="ex:label", column="v", lang="de")
    (terms,), reject, _, _ = _convert(text, pa.array(["Mais", None]), mapping)
    assert terms.kind == "literal" and terms.lang == "de" and terms.datatype is None
    assert terms.values.to_pylist() == ["Mais", None] and terms.needs_escape is True
    assert not reject.any()
    typed = PropertySpec(predicate="ex:v", column="v", datatype="xsd:anyURI")
    (terms,), _, _, _ = _convert(typed, pa.array([5]), mapping)
    assert terms.datatype == XSD + "anyURI" and terms.values.to_pylist() == ["5"]
    auto = PropertySpec(predicate="ex:v", column="v", datatype="auto")
    terms, _, _, _ = _convert(auto, pa.array(['1', '"a"']), mapping)
    assert [(t.datatype, t.values.to_pylist()) for t in terms] == [
        (XSD + "integer", ["1", None]), (None, [None, "a"])]
    with pytest.raises(MappingError, match="nope"):
        _convert(PropertySpec(predicate="ex:v", column="v", datatype="nope:x"), pa.array([1]),
                 mapping)


def test_large_integers_keep_every_digit(mapping: Mapping) -> None:
    big = pa.array([2**53 + 1, -(2**60) - 3], pa.int64())
    integer = PropertySpec(predicate="ex:v", column="v", datatype="xsd:integer")
    (terms,), _, _, _ = _convert(integer, big, mapping)
    assert terms.values.to_pylist() == ["9007199254740993", "-1152921504606846979"]
    text = PropertySpec(predicate="ex:v", column="v", datatype="xsd:string")
    (terms,), _, _, _ = _convert(text, big, mapping)
    assert terms.values.to_pylist() == ["9007199254740993", "-1152921504606846979"]


@pytest.mark.parametrize("datatype", ["double", "float"])
def test_text_numbers_as_double_and_float(mapping: Mapping, datatype: str) -> None:
    prop = PropertySpec(predicate="ex:v", column="v", datatype=f"xsd:{datatype}")
    (terms,), reject, reasons, _ = _convert(prop, pa.array(["0.5", "abc", " 3 ", None]), mapping)
    assert terms.datatype == XSD + datatype
    assert terms.values.to_pylist() == ["0.5", None, "3", None]
    assert reject.tolist() == [False, True, False, False]
    assert reasons[1] == "v 'abc' is not a finite number"
