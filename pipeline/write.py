"""Write: rows -> balanced Parquet shards with an explicit, versioned Arrow schema.

Each row goes to shard ``xxh64(id) % num_shards`` (deterministic, and balanced to within a
few percent once a shard holds more than a few dozen rows; Beam's own ``WriteToParquet`` shards
whole record batches, which left 2,000 rows as 0/0/2000/0 here). One ``GroupByKey`` per table
gathers a shard's rows on one worker, sorted by id, and writes
``<dir>/part-SSSSS-of-NNNNN.parquet`` through Beam's ``FileSystems`` (local, gs://, s3://).
Every shard is written, empty or not, so the names always add up. For each shard a small JSON
stats file (rows, tokens, SHA-256, counts by stage/reason) goes to ``<stats_dir>``: the
manifest is assembled from those without reading the data again.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems

from pipeline.records import SCHEMA_VERSION, counter
from pipeline.schemas import arrow_schema

ROW_GROUP_ROWS = 8192


def shard_of(row_id: str, num_shards: int) -> int:
    return xxhash.xxh64_intdigest(row_id.encode()) % num_shards


def shard_name(index: int, num_shards: int) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}.parquet"


def _list_array(values: list, value_type: pa.DataType) -> pa.Array:
    """A list column from NumPy arrays: offsets + one concatenated buffer, no Python lists."""
    arrays = [np.asarray(v) for v in values]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int32, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(flat.astype(value_type.to_pandas_dtype(), copy=False))
    )


def _as_text(value, nullable: bool):
    if value is None:
        return None if nullable else ""
    return value if isinstance(value, str) else str(value)


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """One Arrow table in ``schema``'s column order; keys outside the schema are ignored.

    String columns take any value as text (an error row may lack fields or carry a number
    where text was expected); a record must never fail the write of its shard.
    """
    columns = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if field.name == "schema_version":
            values = [SCHEMA_VERSION] * len(rows)
        if pa.types.is_string(field.type):
            values = [_as_text(v, field.nullable) for v in values]
        if pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type):
            columns.append(pa.array([v or [] for v in values], type=field.type))
        elif pa.types.is_list(field.type):
            columns.append(_list_array(values, field.type.value_type))
        else:
            columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _sort_key(row: dict):
    return (row.get("id") or row.get("problem_id") or "", row.get("attempt") or 0)


class _WriteShardFn(beam.DoFn):
    def __init__(self, table: str, directory: str, stats_dir: str, num_shards: int, compression):
        self._table = table
        self._directory = directory
        self._stats_dir = stats_dir
        self._num_shards = num_shards
        self._compression = compression

    def process(self, keyed):
        index, rows = keyed
        rows = sorted((r for r in rows if r is not None), key=_sort_key)
        table = rows_to_table(rows, arrow_schema(self._table))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=self._compression, row_group_size=ROW_GROUP_ROWS)
        blob = buffer.getvalue()
        name = shard_name(index, self._num_shards)
        with FileSystems.create(FileSystems.join(self._directory, name)) as handle:
            handle.write(blob)
        stats = {
            "table": self._table,
            "file": f"{self._table}/{name}",
            "rows": len(rows),
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "tokens": int(sum(r.get("num_tokens") or 0 for r in rows)),
            "by_reason": dict(Counter(f"{r.get('stage')}/{r.get('reason')}" for r in rows))
            if self._table == "rejected"
            else {},
            "isolation_levels": dict(Counter(r.get("isolation_level") or "none" for r in rows)),
            "judge_modes": dict(Counter(r.get("judge_mode") or "none" for r in rows)),
        }
        stats_name = f"{self._table}-{index:05d}.json"
        with FileSystems.create(FileSystems.join(self._stats_dir, stats_name)) as handle:
            handle.write(json.dumps(stats).encode())
        counter("write", f"{self._table}_rows").inc(len(rows))
        yield stats


class WriteShards(beam.PTransform):
    """rows -> ``<directory>/part-*.parquet``; returns a PCollection of per-shard stats."""

    def __init__(self, table: str, directory: str, stats_dir: str, num_shards: int, compression):
        super().__init__()
        self._num_shards = num_shards
        self._fn = _WriteShardFn(table, directory, stats_dir, num_shards, compression)

    def expand(self, rows):
        n = self._num_shards
        keyed = rows | "KeyByShard" >> beam.Map(lambda r: (shard_of(_sort_key(r)[0], n), r))
        every_shard = rows.pipeline | "EveryShard" >> beam.Create(
            [(i, None) for i in range(n)], reshuffle=False
        )
        return (
            (keyed, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(self._fn)
        )
