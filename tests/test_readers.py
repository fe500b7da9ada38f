"""The readers a consumer is likely to use — pandas, pyarrow.dataset, DuckDB and HF datasets —
see the same rows in a real output, with the declared types, empty shards included.

Each reader's rows are brought to plain Python values (NumPy arrays -> lists, NumPy scalars ->
Python scalars, pandas' NaN for a missing string -> None) before comparing, so a test fails on
different content, and the type tests fail on different types.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from outputs import quickstart_output

OTHER_READERS = ("pyarrow", "duckdb", "hf")
TEXT_FIELDS = (
    "domain",
    "topic",
    "difficulty",
    "problem",
    "solution",
    "answer",
    "tokenizer",
    "verdict",
    "isolation_level",
    "language",
    "dedup_cluster",
)
LIST_TYPES = (("input_ids", pa.int32()), ("loss_mask", pa.int8()), ("audit_flags", pa.string()))


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return quickstart_output(tmp_path_factory)


@pytest.fixture(scope="module")
def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def hf(tmp_path, monkeypatch):
    """HF ``datasets``, offline, caching under ``tmp_path`` (also when an earlier test imported
    it and its config already holds the default ~/.cache paths)."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    return datasets


def files(out: Path, table: str) -> list[str]:
    return sorted(str(p) for p in (out / table).glob("*.parquet"))


def plain(value):
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value) or value is pd.NA:
        return None
    return value


def read_pandas(out: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / table)
    # pandas reads a nullable integer column (reasoning_tokens) as float64 with NaN for null:
    # the same numbers, compared as the integers they are.
    schema = pq.read_schema(files(out, table)[0])
    for field in schema:
        if pa.types.is_integer(field.type) and frame[field.name].dtype.kind == "f":
            frame[field.name] = frame[field.name].astype("Int64")
    return frame


def read_pyarrow(out: Path, table: str) -> pa.Table:
    return pads.dataset(str(out / table), format="parquet").to_table()


def read_duckdb(out: Path, table: str) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(f"select * from read_parquet('{out / table}/*.parquet')")


def read_hf(out: Path, table: str, datasets):
    return datasets.Dataset.from_parquet(
        files(out, table),
        cache_dir=str(datasets.config.HF_DATASETS_CACHE),
    )


def rows(reader: str, out: Path, table: str, datasets=None) -> tuple[list[str], list[dict]]:
    """(column names, rows as plain dicts) of ``table`` as ``reader`` sees it."""
    if reader == "pandas":
        df = read_pandas(out, table)
        return list(df.columns), [plain_row(r) for r in df.to_dict("records")]
    if reader == "pyarrow":
        t = read_pyarrow(out, table)
        return t.column_names, [plain_row(r) for r in t.to_pylist()]
    if reader == "duckdb":
        rel = read_duckdb(out, table)
        return rel.columns, [
            plain_row(dict(zip(rel.columns, r, strict=True))) for r in rel.fetchall()
        ]
    ds = read_hf(out, table, datasets)
    return ds.column_names, [plain_row(r) for r in ds.to_list()]


def plain_row(row: dict) -> dict:
    return {k: plain(v) for k, v in row.items()}


def by_id(row_list: list[dict]) -> dict[str, dict]:
    found = {r["id"]: r for r in row_list}
    assert len(found) == len(row_list), "duplicate ids"
    return found


def canonical(row_list: list[dict]) -> list[str]:
    """Order-free form of a table: one JSON text per row, sorted."""
    return sorted(json.dumps(r, sort_keys=True) for r in row_list)


def shard_rows(manifest: dict, table: str) -> int:
    return sum(s["rows"] for s in manifest["shards"][table])


def test_output_has_an_empty_shard(out, manifest):
    """Without one, the empty-shard checks below check nothing."""
    empty = [s for t in manifest["shards"].values() for s in t if s["rows"] == 0]
    assert empty
    for shard in empty:
        assert pq.ParquetFile(out / shard["file"]).metadata.num_rows == 0


def test_manifest_lists_exactly_the_shards_on_disk(out, manifest):
    on_disk = {str(p.relative_to(out)) for p in out.glob("*/*.parquet")}
    listed = {s["file"] for t in manifest["shards"].values() for s in t}
    assert listed == on_disk
    assert {"data", "rejected"} <= set(manifest["shards"])


@pytest.mark.parametrize("reader", OTHER_READERS)
def test_reader_sees_the_same_rows_as_pandas(reader, out, manifest, hf):
    """Every table of the manifest (data, rejected, attempts, and packed once it exists)."""
    for table in manifest["shards"]:
        expected_columns, expected = rows("pandas", out, table)
        columns, got = rows(reader, out, table, hf)
        assert columns == expected_columns, table
        assert len(got) == len(expected) == shard_rows(manifest, table), table
        assert canonical(got) == canonical(expected), table


@pytest.mark.parametrize(("table", "funnel_key"), [("data", "kept"), ("rejected", "rejected")])
def test_every_reader_sees_the_same_ids_as_the_funnel_counts(table, funnel_key, out, manifest, hf):
    ids = {r: sorted(by_id(rows(r, out, table, hf)[1])) for r in ("pandas", *OTHER_READERS)}
    assert len(ids["pandas"]) == manifest["funnel"][funnel_key] == shard_rows(manifest, table)
    for reader in OTHER_READERS:
        assert ids[reader] == ids["pandas"], reader


def test_token_ids_and_loss_masks_agree_per_id(out, manifest, hf):
    seen = {r: by_id(rows(r, out, "data", hf)[1]) for r in ("pandas", *OTHER_READERS)}
    assert seen["pandas"], "no kept samples to compare"
    for sample_id, expected in seen["pandas"].items():
        ids, mask = np.array(expected["input_ids"]), np.array(expected["loss_mask"])
        assert len(ids) == len(mask) == expected["num_tokens"] > 0, sample_id
        assert set(np.unique(mask)) == {0, 1}, sample_id
        for reader in OTHER_READERS:
            row = seen[reader][sample_id]
            np.testing.assert_array_equal(row["input_ids"], ids, err_msg=f"{reader} {sample_id}")
            np.testing.assert_array_equal(row["loss_mask"], mask, err_msg=f"{reader} {sample_id}")


def test_text_fields_and_audit_flags_agree_per_id(out, hf):
    seen = {r: by_id(rows(r, out, "data", hf)[1]) for r in ("pandas", *OTHER_READERS)}
    for sample_id, expected in seen["pandas"].items():
        assert isinstance(expected["audit_flags"], list)
        assert all(isinstance(f, str) for f in expected["audit_flags"])
        for reader in OTHER_READERS:
            row = seen[reader][sample_id]
            for field in (*TEXT_FIELDS, "audit_flags"):
                assert row[field] == expected[field], f"{reader} {sample_id} {field}"


def test_list_columns_have_the_declared_types_in_every_reader(out, hf):
    df = read_pandas(out, "data")
    assert {a.dtype for a in df["input_ids"]} == {np.dtype("int32")}
    assert {a.dtype for a in df["loss_mask"]} == {np.dtype("int8")}

    schema = read_pyarrow(out, "data").schema
    for name, value_type in LIST_TYPES:
        assert pa.types.is_list(schema.field(name).type), name
        assert schema.field(name).type.value_type == value_type, name

    rel = read_duckdb(out, "data")
    types = dict(zip(rel.columns, map(str, rel.types), strict=True))
    assert (types["input_ids"], types["loss_mask"], types["audit_flags"]) == (
        "INTEGER[]",
        "TINYINT[]",
        "VARCHAR[]",
    )

    ds = read_hf(out, "data", hf)
    for name, value_type in LIST_TYPES:
        assert ds.features[name].feature.dtype == str(value_type), name
        assert ds.data.schema.field(name).type.value_type == value_type, name


def test_every_shard_of_a_table_has_the_same_schema(out, manifest):
    """Readers of a directory take the schema of one file and cast the others to it, so a
    shard with other types would pass the tests above unseen."""
    for shards in manifest["shards"].values():
        first = pq.read_schema(out / shards[0]["file"])
        for shard in shards[1:]:
            schema = pq.read_schema(out / shard["file"])
            assert schema.equals(first, check_metadata=True), shard["file"]


def test_every_shard_alone_reads_with_its_manifest_row_count(out, manifest):
    """Empty shards included. HF datasets is left out: it refuses a split with no rows."""
    for shards in manifest["shards"].values():
        columns = pq.read_schema(out / shards[0]["file"]).names
        for shard in shards:
            path = out / shard["file"]
            df = pd.read_parquet(path)
            assert (len(df), list(df.columns)) == (shard["rows"], columns), shard["file"]
            assert pads.dataset(str(path), format="parquet").count_rows() == shard["rows"]
            rel = duckdb.sql(f"select count(*) from read_parquet('{path}')")
            assert rel.fetchall() == [(shard["rows"],)], shard["file"]


def test_hf_load_dataset_reads_empty_shards(out, manifest, hf):
    """What a consumer types. An empty shard has no row group at all: a row group of 0 rows
    made HF datasets take a batch size of 0 and fail."""
    ds = hf.load_dataset(
        "parquet",
        data_files=str(out / "rejected" / "*.parquet"),
        split="train",
        cache_dir=str(hf.config.HF_DATASETS_CACHE),
    )
    assert ds.num_rows == shard_rows(manifest, "rejected")
