import pyarrow as pa
import pytest

from pipeline.records import SCHEMA_VERSION
from pipeline.schemas import TABLES, arrow_schema, load_schema, schema_errors


@pytest.mark.parametrize("table", sorted(TABLES))
def test_arrow_schema_follows_json_schema(table):
    doc = load_schema(TABLES[table])
    schema = arrow_schema(table)
    assert schema.names == list(doc["properties"])
    for field in schema:
        types = doc["properties"][field.name]["type"]
        types = types if isinstance(types, list) else [types]
        assert field.nullable == ("null" in types), field.name
    assert schema.metadata[b"synthgen.schema_version"] == SCHEMA_VERSION.encode()


def test_token_columns_are_compact():
    schema = arrow_schema("data")
    assert schema.field("input_ids").type == pa.list_(pa.int32())
    assert schema.field("loss_mask").type == pa.list_(pa.int8())


def test_every_row_schema_has_version_and_lineage():
    for name in TABLES.values():
        props = load_schema(name)["properties"]
        assert "schema_version" in props and "config_hash" in props and "teacher_model" in props


def test_schema_errors_name_the_field():
    good = {"statement": "A statement of twenty characters.", "answer": "1", "program": "p"}
    assert schema_errors("math_problem", good) is None
    problem = schema_errors("math_problem", {**good, "answer": 1})
    assert problem.startswith("answer:")
