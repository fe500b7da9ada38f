"""Record shapes at the boundaries, declared once in ``schemas/*.schema.json``.

Teacher answers are validated against the ``*_problem`` / ``*_attempt`` schemas; the Arrow
schemas of the output tables (``data``, ``rejected``, ``attempts``) are built here from the
``*_row`` schemas, so the JSON Schema files stay the single source of truth.
"""

from __future__ import annotations

import functools
import json

import jsonschema
import pyarrow as pa

from pipeline.records import SCHEMA_VERSION
from pipeline.resources import resource_dir

TABLES = {
    "data": "data_row",
    "packed": "packed_row",
    "rejected": "rejected_row",
    "attempts": "attempt_row",
}

_INTEGERS = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64()}


@functools.cache
def load_schema(name: str) -> dict:
    return json.loads((resource_dir("schemas") / f"{name}.schema.json").read_text())


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def schema_errors(name: str, value) -> str | None:
    """None when ``value`` matches schema ``name``, else the first error in one line."""
    error = jsonschema.exceptions.best_match(validator(name).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"[:500]


def _arrow_type(prop: dict) -> tuple[pa.DataType, bool]:
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    nullable = "null" in types
    (kind,) = [t for t in types if t != "null"]
    if kind == "string":
        return pa.string(), nullable
    if kind == "integer":
        return _INTEGERS[prop.get("format", "int64")], nullable
    if kind == "number":
        return pa.float64(), nullable
    if kind == "boolean":
        return pa.bool_(), nullable
    if kind == "array":
        item_type, _ = _arrow_type(prop["items"])
        return pa.list_(item_type), nullable
    raise ValueError(f"no Arrow type for JSON Schema type {kind!r}")


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of output table ``table`` ('data', 'rejected' or 'attempts')."""
    doc = load_schema(TABLES[table])
    fields = []
    for name, prop in doc["properties"].items():
        dtype, nullable = _arrow_type(prop)
        fields.append(pa.field(name, dtype, nullable=nullable))
    metadata = {"synthgen.schema": doc["$id"], "synthgen.schema_version": SCHEMA_VERSION}
    return pa.schema(fields, metadata=metadata)
