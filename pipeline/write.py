"""Write: rows -> balanced Parquet shards with an explicit, versioned Arrow schema.

The number of shards comes from the table's size: ``output.shards`` if given, else
``ceil(tokens / output.shard_tokens)`` for the token tables (data, packed) when that is set,
else ``ceil(rows / output.shard_rows)`` (packed: rows estimated as tokens / ``tokens.pack``);
at least one. The totals are counted in the pipeline and reach the writers as a side input.
Each row goes to shard ``xxh64(id) % num_shards`` (deterministic, and balanced to within a
few percent once a shard holds more than a few dozen rows; Beam's own ``WriteToParquet`` shards
whole record batches, which left 2,000 rows as 0/0/2000/0 here). One ``GroupByKey`` per table
gathers a shard's rows on one worker, sorted by id (packed: the shard's samples are packed
there, see ``pipeline.pack``), and writes ``<dir>/part-SSSSS-of-NNNNN.parquet`` through Beam's
``FileSystems`` (local, gs://, s3://): zstd by default, row groups of at most 8,192 rows and
about 64 MiB of uncompressed data, token columns built from NumPy buffers. Every shard is
written, empty or not, so the names always add up. For each shard a small JSON stats file
(rows, tokens, SHA-256, counts by stage/reason) goes to ``<stats_dir>``: the manifest is
assembled from those without reading the data again.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems

from pipeline.config import OutputConfig
from pipeline.pack import pack_rows
from pipeline.records import SCHEMA_VERSION, counter
from pipeline.schemas import arrow_schema

ROW_GROUP_ROWS = 8192
ROW_GROUP_BYTES = 64 << 20
TOKEN_TABLES = ("data", "packed")


def shard_of(row_id: str, num_shards: int) -> int:
    return xxhash.xxh64_intdigest(row_id.encode()) % num_shards


def shard_count(rows: int, tokens: int, table: str, cfg: OutputConfig, seq_len=None) -> int:
    """How many shards ``table`` gets for ``rows`` rows holding ``tokens`` tokens."""
    if cfg.shards:
        return cfg.shards
    if cfg.shard_tokens and table in TOKEN_TABLES:
        return max(1, math.ceil(tokens / cfg.shard_tokens))
    if table == "packed":
        rows = math.ceil(tokens / seq_len)
    return max(1, math.ceil(rows / cfg.shard_rows))


def row_group_rows(table: pa.Table) -> int:
    """Rows per row group: at most ROW_GROUP_ROWS and about ROW_GROUP_BYTES uncompressed."""
    if table.num_rows == 0:
        return ROW_GROUP_ROWS
    per_row = max(1, table.nbytes // table.num_rows)
    return max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // per_row))


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
    def __init__(self, table: str, directory: str, stats_dir: str, compression: str, pack=None):
        self._table = table
        self._directory = directory
        self._stats_dir = stats_dir
        self._compression = compression
        self._pack = pack  # (seq_len, eos_id, tokenizer name) for the packed table

    def process(self, keyed, num_shards):
        index, rows = keyed
        rows = sorted((r for r in rows if r is not None), key=_sort_key)
        samples = len(rows)
        if self._pack:
            rows = sorted(pack_rows(rows, *self._pack), key=_sort_key)
        table = rows_to_table(rows, arrow_schema(self._table))
        buffer = io.BytesIO()
        pq.write_table(
            table, buffer, compression=self._compression, row_group_size=row_group_rows(table)
        )
        blob = buffer.getvalue()
        name = shard_name(index, num_shards)
        with FileSystems.create(FileSystems.join(self._directory, name)) as handle:
            handle.write(blob)
        stats = {
            "table": self._table,
            "file": f"{self._table}/{name}",
            "rows": len(rows),
            "samples": samples,
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "tokens": int(sum(r.get("num_tokens") or 0 for r in rows)),
            "tokenizers": sorted({r["tokenizer"] for r in rows if r.get("tokenizer")}),
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


def _size(row: dict) -> tuple[int, int]:
    return 1, row.get("num_tokens") or 0


def _key_by_shard(row: dict, num_shards: int):
    return shard_of(_sort_key(row)[0], num_shards), row


class WriteShards(beam.PTransform):
    """rows -> ``<directory>/part-*.parquet``; returns a PCollection of per-shard stats.

    ``pack`` = (seq_len, eos_id, tokenizer name) packs the rows (tokenized samples) first.
    """

    def __init__(
        self, table: str, directory: str, stats_dir: str, output: OutputConfig, pack=None
    ):
        super().__init__()
        self._table = table
        self._output = output
        self._seq_len = pack[0] if pack else None
        self._fn = _WriteShardFn(table, directory, stats_dir, output.compression, pack)

    def expand(self, rows):
        table, output, seq_len = self._table, self._output, self._seq_len
        if output.shards:
            count = rows.pipeline | "ShardCount" >> beam.Create([output.shards])
        else:
            count = (
                rows
                | "Size" >> beam.Map(_size)
                | "Total" >> beam.CombineGlobally(beam.combiners.TupleCombineFn(sum, sum))
                | "ShardCount" >> beam.Map(lambda s: shard_count(*s, table, output, seq_len))
            )
        num_shards = beam.pvalue.AsSingleton(count)
        keyed = rows | "KeyByShard" >> beam.Map(_key_by_shard, num_shards=num_shards)
        every_shard = count | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        return (
            (keyed, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(self._fn, num_shards=num_shards)
        )
