"""Write: rows -> balanced Parquet shards with an explicit, versioned Arrow schema.

The number of shards comes from the table's size: ``output.shards`` if given, else
``ceil(tokens / output.shard_tokens)`` for data/ when that is set, else
``ceil(rows / output.shard_rows)``; at least one. The totals are counted in the pipeline and
reach the writers as a side input. Each row goes to shard ``xxh64(id) % num_shards``
(deterministic, and balanced to within a few percent once a shard holds more than a few dozen
rows; Beam's own ``WriteToParquet`` shards whole record batches, which left 2,000 rows as
0/0/2000/0 here).

Rows are first gathered into Arrow tables of up to ``BATCH_ROWS`` rows (token columns from
NumPy buffers), then split by shard; what waits for the shard count and what the
``GroupByKey`` moves are a few large Arrow IPC buffers, not a pickled dict per row. The
shard's worker concatenates them, sorts by id and writes
``<out>/<table>/part-SSSSS-of-NNNNN.parquet`` through Beam's ``FileSystems`` (local, gs://,
s3://): zstd by default, row groups of at most 8,192 rows and about 64 MiB uncompressed. With
packing, the same worker packs the shard's samples (see ``pipeline.output.pack``) into
``<out>/packed/`` under the same shard number. Every shard is written, empty or not (an empty
one has no row group), so the names always add up. For each file a small JSON stats file
(rows, tokens, SHA-256, counts by stage/reason) goes to ``<out>/_stats``: the manifest is
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
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipeline.config import OutputConfig
from pipeline.output.pack import pack_rows
from pipeline.records import SCHEMA_VERSION, counter
from pipeline.schemas import arrow_schema

ROW_GROUP_ROWS = 8192
ROW_GROUP_BYTES = 64 << 20
BATCH_ROWS = 1024  # rows per Arrow chunk
STATS_DIR = "_stats"


def id_hash(row_id: str) -> int:
    return xxhash.xxh64_intdigest(row_id.encode())


def shard_of(row_id: str, num_shards: int) -> int:
    return id_hash(row_id) % num_shards


def shard_count(rows: int, tokens: int, table: str, cfg: OutputConfig) -> int:
    """How many shards ``table`` gets for ``rows`` rows holding ``tokens`` tokens."""
    if cfg.shards:
        return cfg.shards
    if cfg.shard_tokens and table == "data":
        return max(1, math.ceil(tokens / cfg.shard_tokens))
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


def _text_array(values: list, field: pa.Field) -> pa.Array:
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_as_text(v, True) for v in values], type=field.type)


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """One Arrow table in ``schema``'s column order; keys outside the schema are ignored.

    String columns take any value as text (an error row may lack fields or carry a number
    where text was expected); a record must never fail the write of its shard.
    """
    columns = []
    for field in schema:
        if field.name == "schema_version":
            columns.append(pa.array([SCHEMA_VERSION] * len(rows), type=field.type))
            continue
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type):
            column = _text_array(values, field)
            if not field.nullable and column.null_count:
                column = pc.fill_null(column, "")
            columns.append(column)
        elif pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type):
            columns.append(pa.array([v or [] for v in values], type=field.type))
        elif pa.types.is_list(field.type):
            columns.append(_list_array(values, field.type.value_type))
        else:
            columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _shard_key(row: dict) -> str:
    return row.get("id") or row.get("problem_id") or ""


def _sort_columns(table: str) -> list[tuple[str, str]]:
    columns = ("problem_id", "attempt") if table == "attempts" else ("id",)
    return [(c, "ascending") for c in columns]


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()


class _ToArrowFn(beam.DoFn):
    """rows -> Arrow chunks of up to BATCH_ROWS rows: (IPC bytes, xxh64 of each row's id as
    uint64 bytes, rows, tokens). Chunks, not rows, are what the later steps move around."""

    def __init__(self, table: str):
        self._table = table

    def start_bundle(self):
        self._rows: list[dict] = []

    def _flush(self):
        rows, self._rows = self._rows, []
        table = rows_to_table(rows, arrow_schema(self._table))
        hashes = np.fromiter((id_hash(_shard_key(r)) for r in rows), np.uint64, len(rows))
        tokens = sum(r.get("num_tokens") or 0 for r in rows)
        return _to_ipc(table), hashes.tobytes(), len(rows), tokens

    def process(self, row):
        self._rows.append(row)
        if len(self._rows) >= BATCH_ROWS:
            yield self._flush()

    def finish_bundle(self):
        if self._rows:
            yield GlobalWindows.windowed_value(self._flush())


def _split_by_shard(chunk, num_shards: int):
    """A chunk -> (shard, IPC bytes of the chunk's rows in that shard) per shard it touches."""
    blob, hashes, _, _ = chunk
    if num_shards == 1:
        yield 0, blob
        return
    shards = np.frombuffer(hashes, np.uint64) % np.uint64(num_shards)
    table = _from_ipc(blob)
    for shard in np.unique(shards):
        yield int(shard), _to_ipc(table.filter(pa.array(shards == shard)))


def _samples(table: pa.Table) -> list[dict]:
    """The tokenized samples of a data table, token columns as NumPy views, for packing."""
    out = [{"id": i} for i in table.column("id").to_pylist()]
    for name in ("input_ids", "loss_mask"):
        column = table.column(name).combine_chunks()
        values, offsets = column.values.to_numpy(), column.offsets.to_numpy()
        for sample, start, end in zip(out, offsets[:-1], offsets[1:], strict=True):
            sample[name] = values[start:end]
    for name in ("teacher_model", "config_hash"):
        for sample, value in zip(out, table.column(name).to_pylist(), strict=True):
            sample[name] = value
    return out


def _counts(table: pa.Table, column: str) -> dict[str, int]:
    if column not in table.column_names:
        return {}
    values = pc.fill_null(table.column(column), "none").to_pylist()
    return dict(Counter(values))


def _parquet_bytes(table: pa.Table, compression: str) -> bytes:
    buffer = io.BytesIO()
    if table.num_rows:
        rows = row_group_rows(table)
        pq.write_table(table, buffer, compression=compression, row_group_size=rows)
    else:  # no row group at all: an empty row group trips some readers (HF datasets)
        pq.ParquetWriter(buffer, table.schema, compression=compression).close()
    return buffer.getvalue()


def _stats(table_name: str, table: pa.Table, name: str, blob: bytes, samples: int) -> dict:
    by_reason = {}
    if table_name == "rejected":
        joined = pc.binary_join_element_wise(
            pc.fill_null(table.column("stage"), "None"),
            pc.fill_null(table.column("reason"), "None"),
            "/",
        )
        by_reason = dict(Counter(joined.to_pylist()))
    tokens = pc.sum(table.column("num_tokens")).as_py() if "num_tokens" in table.schema.names else 0
    thinking = {}
    if "reasoning" in table.schema.names:
        counted = pc.sum(table.column("reasoning_tokens")).as_py()
        thinking = {"rows": table.num_rows - table.column("reasoning").null_count}
        thinking["tokens"] = int(counted or 0)
    return {
        "table": table_name,
        "file": f"{table_name}/{name}",
        "rows": table.num_rows,
        "samples": samples,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "tokens": int(tokens or 0),
        "tokenizers": sorted(_counts(table, "tokenizer")),
        "by_reason": by_reason,
        "isolation_levels": _counts(table, "isolation_level"),
        "judge_modes": _counts(table, "judge_mode"),
        "reasoning": thinking,  # rows with the teacher's thinking, its tokens (as reported)
    }


class _WriteShardFn(beam.DoFn):
    def __init__(self, table: str, out_dir: str, compression: str, pack=None):
        self._table = table
        self._out_dir = out_dir
        self._compression = compression
        self._pack = pack  # (seq_len, eos_id, tokenizer name): also write packed/

    def _write(self, table_name: str, table: pa.Table, index: int, num_shards: int, samples: int):
        table = table.sort_by(_sort_columns(table_name))
        blob = _parquet_bytes(table, self._compression)
        name = shard_name(index, num_shards)
        path = FileSystems.join(self._out_dir, table_name, name)
        with FileSystems.create(path) as handle:
            handle.write(blob)
        stats = _stats(table_name, table, name, blob, samples)
        stats_path = FileSystems.join(self._out_dir, STATS_DIR, f"{table_name}-{index:05d}.json")
        with FileSystems.create(stats_path) as handle:
            handle.write(json.dumps(stats).encode())
        counter("write", f"{table_name}_rows").inc(table.num_rows)
        return stats

    def process(self, keyed, num_shards):
        index, blobs = keyed
        parts = [_from_ipc(b) for b in blobs if b is not None]
        table = pa.concat_tables(parts) if parts else arrow_schema(self._table).empty_table()
        yield self._write(self._table, table, index, num_shards, table.num_rows)
        if self._pack:
            packed = rows_to_table(pack_rows(_samples(table), *self._pack), arrow_schema("packed"))
            yield self._write("packed", packed, index, num_shards, table.num_rows)


class WriteShards(beam.PTransform):
    """rows -> ``<out_dir>/<table>/part-*.parquet`` and a stats file per shard in
    ``<out_dir>/_stats``; returns a PCollection of the per-shard stats.

    ``pack`` = (seq_len, eos_id, tokenizer name), for the data table: each data shard's samples
    are also packed into the packed shard of the same number.
    """

    def __init__(self, table: str, out_dir: str, output: OutputConfig, pack=None):
        super().__init__()
        self._table = table
        self._output = output
        self._fn = _WriteShardFn(table, out_dir, output.compression, pack)

    def expand(self, rows):
        table, output = self._table, self._output
        chunks = rows | "ToArrow" >> beam.ParDo(_ToArrowFn(table))
        if output.shards:
            count = rows.pipeline | "ShardCount" >> beam.Create([output.shards])
        else:
            count = (
                chunks
                | "Size" >> beam.Map(lambda chunk: (chunk[2], chunk[3]))
                | "Total" >> beam.CombineGlobally(beam.combiners.TupleCombineFn(sum, sum))
                | "ShardCount" >> beam.Map(lambda s: shard_count(*s, table, output))
            )
        num_shards = beam.pvalue.AsSingleton(count)
        batches = chunks | "SplitByShard" >> beam.FlatMap(_split_by_shard, num_shards=num_shards)
        every_shard = count | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        return (
            (batches, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(self._fn, num_shards=num_shards)
        )
