"""Standalone stages: ``synthgen dedup`` / ``synthgen decontam`` over any JSONL or Parquet set.

Contract. The input is every file matched by one glob (Beam ``FileSystems.match``), all of one
format: JSON lines (``.jsonl``, ``.jsonl.gz``) or Parquet (``.parquet``). Files are taken in
path order; file ``i`` is named ``input.files[i]`` in the manifest. A row is one JSON object
(blank lines are skipped) or one Parquet row, and it leaves the job with every field untouched:

- its text is ``row[field]``; a row whose field is missing, null or not a string (or a JSON line
  that is not an object) is rejected with reason ``error`` and a detail saying why;
- its id is ``row[id_field]`` as text when the row has one (ids must be unique), else the
  synthetic ``"<file index>:<row number>"`` (0-based, zero-padded), so "smallest id wins"
  keeps the first copy in input order;
- the stage (``pipeline.stages.dedup.Dedup`` or ``pipeline.stages.decontam.Decontaminate``)
  sees only the id and the text; the row rides along unread.

Outputs, written into ``OUT/.tmp-<run id>/`` and moved into place only after the job and its
checks succeeded (the same helpers as ``pipeline.run``), ``manifest.json`` last:

- ``OUT/data/part-*.parquet``: the surviving rows (zstd);
- ``OUT/rejected/part-*.parquet``: the other rows plus ``reason`` (``exact_duplicate``,
  ``near_duplicate``, ``contaminated`` or ``error``) and ``detail`` (the id of the surviving
  duplicate; ``benchmark=<name> item=<id>``; or the error);
- ``OUT/manifest.json``: input glob and files, field, id mode, counts, the stage's config,
  elapsed seconds, shard statistics and whether ``input == kept + rejected``.

Arrow schema. Parquet columns keep their file types; JSON columns get the type pyarrow infers
from all values. Where files or values disagree (widening such as int64 + double is allowed)
the column becomes a string column holding strings as they are and any other value as its
JSON text; those columns are listed in the manifest and in the files' ``synthgen`` metadata.
Rows are spread over shards by a hash of their id and sorted by id inside a shard.

The job refuses (``InputError``) an input that no file matches, mixed formats, a field no row
has as a string, repeated ids, an input without rows and a column already named ``reason`` or
``detail`` (rejected rows need them); a file that cannot be read raises ``ReadError``. Parquet
footers answer most of these before the job starts; for JSON lines the field, the ids and the
row count are known only once every row was read, so those refusals end the job instead (its
outputs are discarded). They rest on the reader's own per-file counts (``_checks/files.json``
in the temporary directory), not on Beam metrics, which some runners do not report.

Shards: one data shard per 64 MiB of input (at most 64), one rejected shard per 256 MiB (at
most 16); every shard is written, empty or not.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from pydantic import ValidationError

from pipeline import records
from pipeline.config import ConfigError, DecontamConfig, DedupConfig
from pipeline.output.write import ROW_GROUP_ROWS, shard_name, shard_of
from pipeline.run import (
    TABLE_DIRS,
    OutputError,
    _counters,
    _delete_tree,
    _files_under,
    _read_stats,
    manifest_header,
    new_run_id,
    publish,
)
from pipeline.stages.textfiles import open_raw, parse_json_line

JSONL, PARQUET = "jsonl", "parquet"
_SUFFIXES = {".jsonl": JSONL, ".jsonl.gz": JSONL, ".parquet": PARQUET}
TABLES = ("data", "rejected")
REJECT_COLUMNS = ("reason", "detail")
COMPRESSION = "zstd"
ROW_DIGITS = 10  # synthetic ids: "<file index>:<row number, ten digits>"
INPUT = "input"  # the reader's counts: input/rows, input/with_text, input/missing_field, ...
_INFER_BATCH = 1024  # JSON rows per pyarrow type inference

# Flags of the two commands, by the config field they set.
FLAGS = {
    "threshold": "--threshold",
    "num_perm": "--num-perm",
    "shingle_size": "--shingle-size",
    "ngram": "--ngram",
    "benchmarks": "--benchmarks",
    "field": "--benchmark-field",
}


class InputError(ValueError):
    """The input or the flags cannot be used as given (a usage error), as one line."""


class ReadError(RuntimeError):
    """An input file that cannot be read, as one line."""


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    size: int


@dataclass(frozen=True)
class Inputs:
    glob: str
    format: str
    files: tuple[InputFile, ...]

    @property
    def file_digits(self) -> int:
        return len(str(max(len(self.files) - 1, 0)))

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Job:
    """What a user asked for: one stage over one input into one output directory."""

    command: str
    input_glob: str
    output: str
    field: str
    id_field: str
    stage: DedupConfig | DecontamConfig


# ---- pure helpers --------------------------------------------------------------------------


def stage_config(command: str, **values) -> DedupConfig | DecontamConfig:
    """The stage's config from the flags given (None = the stage's default); errors name a flag."""
    model = {"dedup": DedupConfig, "decontam": DecontamConfig}[command]
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{FLAGS.get(name, name)}: {msg}") from None


def split_list(value: str | None) -> tuple[str, ...] | None:
    """``"a, b,,c"`` -> ``("a", "b", "c")``; None stays None."""
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def file_format(path: str) -> str | None:
    name = path.lower()
    return next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None)


def choose_format(glob: str, paths: Iterable[str]) -> str:
    """The one format of ``paths`` (``jsonl`` or ``parquet``); ``InputError`` otherwise."""
    by_format: dict[str, list[str]] = {}
    for path in paths:
        fmt = file_format(path)
        if fmt is None:
            raise InputError(f"{path}: not a .jsonl, .jsonl.gz or .parquet file")
        by_format.setdefault(fmt, []).append(path)
    if not by_format:
        raise InputError(f"no file matches {glob}")
    if len(by_format) > 1:
        counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_format.items()))
        raise InputError(f"{glob} matches mixed formats ({counts}); run one format at a time")
    return next(iter(by_format))


def synthetic_id(file_index: int, row_number: int, file_digits: int) -> str:
    """Zero-padded, so ids sort as the rows come: by file, then by row."""
    return f"{file_index:0{file_digits}d}:{row_number:0{ROW_DIGITS}d}"


def as_text(value) -> str | None:
    """Strings as they are, None as None, anything else as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def row_id(row: dict, id_field: str) -> str | None:
    """The row's own id as text, or None when it has none."""
    value = row.get(id_field)
    return None if value is None else as_text(value)


def text_problem(row: dict, field: str) -> str | None:
    """Why ``row[field]`` cannot be the text (missing, null, not a string), or None if it can."""
    if field not in row:
        return f"field '{field}' is missing"
    value = row[field]
    if value is None:
        return f"field '{field}' is null"
    if not isinstance(value, str):
        return f"field '{field}' is {type(value).__name__}, not a string"
    return None


def rejected(row: dict, reason: str, detail: str) -> dict:
    return {**row, "reason": reason, "detail": detail}


def is_text_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _parquet_writable(t: pa.DataType) -> bool:
    """Parquet cannot store a struct without fields (what ``{}`` infers to)."""
    if pa.types.is_struct(t):
        return t.num_fields > 0 and all(_parquet_writable(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _parquet_writable(t.value_type)
    if pa.types.is_map(t):
        return _parquet_writable(t.key_type) and _parquet_writable(t.item_type)
    return True


def column_types(rows: list[dict]) -> dict[str, pa.DataType | None]:
    """Column -> the Arrow type pyarrow infers from its values (None: no common type, so the
    column is stored as text), columns in order of first appearance."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    types: dict[str, pa.DataType | None] = {}
    for name in names:
        try:
            inferred = pa.array([row.get(name) for row in rows]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            inferred = None
        types[name] = inferred if inferred is not None and _parquet_writable(inferred) else None
    return types


def merge_type(a: pa.DataType | None, b: pa.DataType | None) -> pa.DataType | None:
    """The common type of two (pyarrow's permissive promotion), or None when there is none."""
    if a is None or b is None:
        return None
    if a.equals(b):
        return a
    try:
        merged = pa.unify_schemas(
            [pa.schema([pa.field("c", a)]), pa.schema([pa.field("c", b)])],
            promote_options="permissive",
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        return None
    return merged.field("c").type


def merge_columns(
    a: dict[str, pa.DataType | None], b: dict[str, pa.DataType | None]
) -> dict[str, pa.DataType | None]:
    """Columns of ``a`` then the new ones of ``b``; a column in both gets the merged type."""
    out = dict(a)
    for name, t in b.items():
        out[name] = merge_type(out[name], t) if name in out else t
    return out


def merge_file_columns(per_file: Iterable[tuple[int, dict]]) -> dict[str, pa.DataType | None]:
    """Merge the columns of every file in file order (so the column order is the input's)."""
    out: dict[str, pa.DataType | None] = {}
    for _, columns in sorted(per_file, key=lambda item: item[0]):
        out = merge_columns(out, columns)
    return out


def table_schema(
    columns: dict[str, pa.DataType | None], table: str, command: str
) -> tuple[pa.Schema, list[str]]:
    """The Arrow schema of ``table`` (``data`` or ``rejected``) and its JSON-text columns."""
    text_columns = [name for name, t in columns.items() if t is None]
    fields = [pa.field(name, pa.string() if t is None else t) for name, t in columns.items()]
    if table == "rejected":
        taken = [name for name in REJECT_COLUMNS if name in columns]
        if taken:
            raise InputError(f"the input already has a column '{taken[0]}'; rejected rows need it")
        fields += [pa.field(name, pa.string()) for name in REJECT_COLUMNS]
    note = {"command": command, "table": table, "json_text_columns": text_columns}
    return pa.schema(fields, metadata={"synthgen": json.dumps(note)}), text_columns


def rows_to_table(rows: list[dict], schema: pa.Schema, text_columns: Iterable[str]) -> pa.Table:
    """Rows in ``schema``; the values of text columns go in through ``as_text``."""
    text_columns = list(text_columns)
    if text_columns:
        rows = [{**row, **{c: as_text(row[c]) for c in text_columns if c in row}} for row in rows]
    return pa.Table.from_pylist(rows, schema=schema)


def shard_count(input_bytes: int, bytes_per_shard: int, most: int) -> int:
    return max(1, min(most, math.ceil(input_bytes / bytes_per_shard)))


# ---- reading ------------------------------------------------------------------------------


def parquet_schema(path: str) -> pa.Schema:
    try:
        with open_raw(path) as handle:
            return pq.ParquetFile(handle).schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise ReadError(f"cannot read {path}: {exc}") from None


def match_inputs(glob: str) -> Inputs:
    """The files ``glob`` matches, in path order, and their one format."""
    try:
        found = FileSystems.match([glob])[0].metadata_list
    except Exception as exc:  # noqa: BLE001 - any filesystem's failure, as one line
        raise InputError(f"cannot match {glob}: {exc}") from None
    found = sorted(found, key=lambda m: m.path)
    fmt = choose_format(glob, [m.path for m in found])
    return Inputs(
        glob, fmt, tuple(InputFile(i, m.path, m.size_in_bytes) for i, m in enumerate(found))
    )


def check_parquet_inputs(inputs: Inputs, field: str, id_field: str) -> bool:
    """Fail before the job when no Parquet file has ``field`` as a string column, or one has a
    column the rejected rows would overwrite. True when a file has an ``id_field`` column."""
    types, has_ids = {}, False
    for item in inputs.files:
        schema = parquet_schema(item.path)
        for name in REJECT_COLUMNS:
            if name in schema.names:
                raise InputError(
                    f"{item.path} already has a column '{name}'; rejected rows need it"
                )
        if field in schema.names:
            types[item.path] = schema.field(field).type
        has_ids = has_ids or id_field in schema.names
    if not types:
        raise InputError(f"no file matching {inputs.glob} has a column '{field}'")
    if not any(is_text_type(t) for t in types.values()):
        path, t = next(iter(types.items()))
        raise InputError(f"column '{field}' of {path} is {t}, not a string")
    return has_ids


def _jsonl_rows(path: str) -> Iterator[tuple[dict | None, str | None]]:
    """(row, None) per JSON object line; (None, why) per line that is not one."""
    with open_raw(path) as raw:
        binary = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        with io.TextIOWrapper(binary, encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield parse_json_line(line), None
                except ValueError as exc:
                    yield None, f"{path} line {number}: {exc}"


def _parquet_rows(path: str) -> Iterator[tuple[dict | None, str | None]]:
    with open_raw(path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=_INFER_BATCH):
            for row in batch.to_pylist():
                yield row, None


_REJECTED, _USER_IDS, _FILES = "rejected", "user_ids", "files"


class _ReadRowsFn(beam.DoFn):
    """(file index, path) -> stage records {id, statement, row}; rows without a text go to
    ``rejected`` as (id, row); ids taken from the rows go to ``user_ids``; once the file is
    read, (file index, its columns and their types, its row counts) goes to ``files``."""

    def __init__(self, fmt: str, field: str, id_field: str, file_digits: int):
        self._fmt = fmt
        self._field = field
        self._id_field = id_field
        self._file_digits = file_digits

    def process(self, item):
        index, path = item
        found: dict[str, pa.DataType | None] = {}
        if self._fmt == PARQUET:  # the file's own types; JSON types are inferred from values
            found = {f.name: f.type for f in parquet_schema(path)}
            rows = _parquet_rows(path)
        else:
            rows = _jsonl_rows(path)
        infer = self._fmt == JSONL
        batch: list[dict] = []
        counts: Counter = Counter()
        number = 0
        while True:
            try:
                row, problem = next(rows)
            except StopIteration:
                break
            except (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowException) as exc:
                raise ReadError(f"cannot read {path}: {exc}") from None
            yield from self._route(row, problem, index, number, counts)
            number += 1
            if infer and row is not None:
                batch.append(row)
                if len(batch) >= _INFER_BATCH:
                    found = merge_columns(found, column_types(batch))
                    batch = []
        if batch:
            found = merge_columns(found, column_types(batch))
        yield beam.pvalue.TaggedOutput(_FILES, (index, found, dict(counts)))

    def _route(self, row, problem, index, number, counts: Counter):
        """One row to its output; ``counts`` (this file's) and the counters say where."""

        def count(name: str) -> None:
            counts[name] += 1
            records.counter(INPUT, name).inc()

        count("rows")
        own = row_id(row, self._id_field) if row is not None else None
        sid = own if own is not None else synthetic_id(index, number, self._file_digits)
        if own is not None:
            count("user_ids")
            yield beam.pvalue.TaggedOutput(_USER_IDS, sid)
        if row is None:
            count("not_json")
            yield beam.pvalue.TaggedOutput(_REJECTED, (sid, rejected({}, records.ERROR, problem)))
            return
        problem = text_problem(row, self._field)
        if problem is not None:
            count("missing_field" if self._field not in row else "not_a_string")
            yield beam.pvalue.TaggedOutput(_REJECTED, (sid, rejected(row, records.ERROR, problem)))
            return
        count("with_text")
        yield {"id": sid, "statement": row[self._field], "row": row}


class ReadInputs(beam.PTransform):
    """Input files -> (records, rejected, user_ids, files)."""

    def __init__(self, inputs: Inputs, field: str, id_field: str):
        super().__init__()
        self._inputs = inputs
        self._fn = _ReadRowsFn(inputs.format, field, id_field, inputs.file_digits)

    def expand(self, pbegin):
        files = [(f.index, f.path) for f in self._inputs.files]
        return (
            pbegin
            # Spreading the files costs a shuffle; one file has nowhere to spread.
            | "ListFiles" >> beam.Create(files, reshuffle=len(files) > 1)
            | "ReadRows"
            >> beam.ParDo(self._fn).with_outputs(_REJECTED, _USER_IDS, _FILES, main="records")
        )


# ---- checks and writing -------------------------------------------------------------------


class _MergeColumnsFn(beam.CombineFn):
    """(file index, columns, counts) per file -> the columns of all files
    (``merge_file_columns``)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, item):
        return [*acc, item[:2]]

    def merge_accumulators(self, accs):
        return [item for acc in accs for item in acc]

    def extract_output(self, acc):
        return merge_file_columns(acc)


class _RepeatedIdsFn(beam.CombineFn):
    """(id, count > 1) pairs -> {"ids": how many, "examples": the five smallest}."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, acc, item):
        return acc[0] + 1, sorted([*acc[1], item])[:5]

    def merge_accumulators(self, accs):
        accs = list(accs)
        return sum(a[0] for a in accs), sorted(x for a in accs for x in a[1])[:5]

    def extract_output(self, acc):
        return {"ids": acc[0], "examples": [list(x) for x in acc[1]]}


def _write_file_counts(files: list, path: str) -> str:
    return _write_json({str(index): counts for index, _, counts in files}, path)


def _write_json(value, path: str) -> str:
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(value).encode())
    return path


def _repeated(item) -> bool:
    return item[1] > 1


def _kept_row(record: dict) -> tuple[str, dict]:
    return record["id"], record["row"]


def _rejected_row(record: dict) -> tuple[str, dict]:
    return record["id"], rejected(record["row"], record["reason"], record["detail"])


class _WriteShardFn(beam.DoFn):
    """((table, shard), [(id, row)]) -> one Parquet file sorted by id, and its stats file."""

    def __init__(self, command: str, out_dir: str, shards: dict[str, int]):
        self._command = command
        self._out_dir = out_dir
        self._shards = shards

    def process(self, keyed, columns):
        (table_name, index), items = keyed
        items = sorted((item for item in items if item is not None), key=lambda item: item[0])
        schema, text_columns = table_schema(columns, table_name, self._command)
        table = rows_to_table([row for _, row in items], schema, text_columns)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
        blob = buffer.getvalue()
        name = shard_name(index, self._shards[table_name])
        with FileSystems.create(FileSystems.join(self._out_dir, table_name, name)) as handle:
            handle.write(blob)
        stats = {
            "table": table_name,
            "file": f"{table_name}/{name}",
            "rows": len(items),
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "by_reason": dict(Counter(row["reason"] for _, row in items))
            if table_name == "rejected"
            else {},
            "columns": [[f.name, str(f.type)] for f in schema],
            "json_text_columns": text_columns,
        }
        stats_name = f"{table_name}-{index:05d}.json"
        _write_json(stats, FileSystems.join(self._out_dir, "_stats", stats_name))
        records.counter("write", f"{table_name}_rows").inc(len(items))
        yield stats


def _key_by_shard(pair: tuple[str, dict], table: str, shards: int):
    return (table, shard_of(pair[0], shards)), pair


class WriteTables(beam.PTransform):
    """{table: (id, row) pairs} -> ``<out_dir>/<table>/part-*.parquet`` in the schema of
    ``columns`` (a singleton side input), and ``<out_dir>/_stats/<table>-*.json``. Every shard
    is written, empty or not; one GroupByKey serves all tables."""

    def __init__(self, command: str, out_dir: str, shards: dict[str, int], columns):
        super().__init__()
        self._shards = shards
        self._columns = columns
        self._fn = _WriteShardFn(command, out_dir, shards)

    def expand(self, tables):  # {table name: PCollection}
        keyed = [
            pairs
            | f"KeyByShard{table.capitalize()}"
            >> beam.Map(_key_by_shard, table=table, shards=self._shards[table])
            for table, pairs in tables.items()
        ]
        every_shard = next(iter(tables.values())).pipeline | "EveryShard" >> beam.Create(
            [((t, i), None) for t in tables for i in range(self._shards[t])], reshuffle=False
        )
        return (
            (*keyed, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(self._fn, beam.pvalue.AsSingleton(self._columns))
        )


def _stage_transform(job: Job):
    if job.command == "dedup":
        from pipeline.stages.dedup import Dedup

        return "Dedup", Dedup(job.stage)
    from pipeline.stages.decontam import Decontaminate

    return "Decontaminate", Decontaminate(job.stage)


def build(p: beam.Pipeline, job: Job, inputs: Inputs, out_dir: str, has_ids: bool = True) -> None:
    """The job's graph; ``has_ids=False`` (no row can have ``id_field``) skips the id check."""
    read = p | "ReadInputs" >> ReadInputs(inputs, job.field, job.id_field)
    stage_records = read.records
    if job.command == "decontam":
        # A file is read by one worker; spread its rows before the per-row n-gram checks.
        # (Dedup starts with a GroupByKey, which spreads them anyway.)
        stage_records = stage_records | "SpreadRows" >> beam.Reshuffle()
    label, transform = _stage_transform(job)
    out = stage_records | label >> transform
    kept = out.kept | "KeptRows" >> beam.Map(_kept_row)
    dropped = (out.dropped, out.errors) | "StageRejected" >> beam.Flatten()
    rejected_rows = (
        read.rejected,
        dropped | "RejectedRows" >> beam.Map(_rejected_row),
    ) | "AllRejected" >> beam.Flatten()
    columns = read.files | "MergeColumns" >> beam.CombineGlobally(_MergeColumnsFn())
    _ = (
        read.files
        | "CollectFileCounts" >> beam.combiners.ToList()
        | "WriteFileCounts" >> beam.Map(_write_file_counts, path=_file_counts_path(out_dir))
    )
    shards = {
        "data": shard_count(inputs.size, 64 << 20, 64),
        "rejected": shard_count(inputs.size, 256 << 20, 16),
    }
    tables = {"data": kept, "rejected": rejected_rows}
    _ = tables | "WriteTables" >> WriteTables(job.command, out_dir, shards, columns)
    if has_ids:
        _ = (
            read.user_ids
            | "CountIds" >> beam.combiners.Count.PerElement()
            | "RepeatedIds" >> beam.Filter(_repeated)
            | "SummariseRepeatedIds" >> beam.CombineGlobally(_RepeatedIdsFn())
            | "WriteIdCheck" >> beam.Map(_write_json, path=_repeated_ids_path(out_dir))
        )


def _file_counts_path(out_dir: str) -> str:
    return FileSystems.join(out_dir, "_checks", "files.json")


def _repeated_ids_path(out_dir: str) -> str:
    return FileSystems.join(out_dir, "_checks", "repeated_ids.json")


# ---- the job ------------------------------------------------------------------------------


def check_outcome(job: Job, counts: dict[str, int], repeated: dict) -> None:
    """``InputError`` when the finished job shows the input could not be used as given."""
    rows = counts.get("rows", 0)
    if rows == 0:
        raise InputError(f"no rows in the files matching {job.input_glob}")
    if counts.get("with_text", 0) == 0:
        if counts.get("missing_field", 0) == rows:
            raise InputError(f"field '{job.field}' is missing in every row of {job.input_glob}")
        if counts.get("not_json", 0) == rows:
            raise InputError(f"no line of {job.input_glob} is a JSON object")
        raise InputError(f"no row of {job.input_glob} has a string in field '{job.field}'")
    if repeated.get("ids"):
        example, times = repeated["examples"][0]
        raise InputError(
            f"--id-field {job.id_field}: ids are not unique ({repeated['ids']} repeated, e.g. "
            f"{example!r} {times} times); pick another id field"
        )


def _id_mode(id_field: str, user_ids: int, rows: int) -> str:
    synthetic = "synthetic <file index>:<row number> (0-based, files as listed)"
    if not user_ids:
        return synthetic
    if user_ids == rows:
        return f"column '{id_field}'"
    return f"column '{id_field}' where present, else {synthetic}"


def total_counts(file_counts: dict[str, dict[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for counts in file_counts.values():
        total.update(counts)
    return dict(total)


def build_manifest(
    job: Job,
    inputs: Inputs,
    run_id: str,
    file_counts: dict[str, dict[str, int]],
    stats: list[dict],
    counters: dict,
    elapsed: float,
) -> dict:
    """``file_counts``: the reader's counts by file index (as text); ``stats``: the shard
    statistics; ``counters``: Beam's, reported as they are."""
    by_table = {t: sorted((s for s in stats if s.get("table") == t), key=lambda s: s["file"])
                for t in TABLES}  # fmt: skip
    reasons = Counter()
    for s in by_table["rejected"]:
        reasons.update(s["by_reason"])
    read = total_counts(file_counts)
    kept, rejected_count = (sum(s["rows"] for s in by_table[t]) for t in TABLES)
    first = by_table["data"][0] if by_table["data"] else {"columns": [], "json_text_columns": []}
    shard_fields = ("file", "rows", "bytes", "sha256")
    return {
        "command": job.command,
        **manifest_header(run_id, elapsed),
        "input": {
            "glob": job.input_glob,
            "format": inputs.format,
            "files": [
                {
                    "index": f.index,
                    "path": f.path,
                    "bytes": f.size,
                    "rows": file_counts.get(str(f.index), {}).get("rows", 0),
                }
                for f in inputs.files
            ],
            "field": job.field,
            "id_field": job.id_field,
            "ids": _id_mode(job.id_field, read.get("user_ids", 0), read.get("rows", 0)),
        },
        "config": {job.command: job.stage.model_dump(mode="json")},
        "counts": {
            "input": read.get("rows", 0),
            "kept": kept,
            "rejected": rejected_count,
            "rejected_by_reason": dict(sorted(reasons.items())),
            "reconciled": read.get("rows", 0) == kept + rejected_count,
        },
        "schema": {"columns": first["columns"], "json_text_columns": first["json_text_columns"]},
        "stages": {ns: v for ns, v in sorted(counters.items())},
        "shards": {t: [{k: s[k] for k in shard_fields} for s in by_table[t]] for t in TABLES},
    }


def _read_json(path: str) -> dict:
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path) as handle:
        return json.loads(handle.read())


def _discard(tmp_dir: str, output: str, output_existed: bool) -> None:
    """Best effort: remove the temporary tree, and the output directory if this run made it."""
    try:
        _delete_tree(tmp_dir)
        if not output_existed and not _files_under(output) and FileSystems.exists(output):
            FileSystems.delete([output])
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        pass


def run_stage(job: Job, beam_args: list[str], overwrite: bool = False) -> dict:
    """Run one stage over ``job.input_glob`` into ``job.output``; returns the manifest."""
    output = job.output.rstrip("/")
    if job.field == job.id_field:
        raise InputError("--field and --id-field must name different fields")
    if _files_under(output) and not overwrite:
        raise OutputError(f"output directory {output} is not empty; pass --overwrite to replace it")
    inputs = match_inputs(job.input_glob)
    has_ids = True  # JSON rows may carry an id anywhere
    if inputs.format == PARQUET:
        has_ids = check_parquet_inputs(inputs, job.field, job.id_field)
    if job.command == "decontam":
        from pipeline.stages.decontam import check_benchmarks

        check_benchmarks(job.stage.benchmarks)
    run_id = new_run_id()
    tmp_dir = FileSystems.join(output, f".tmp-{run_id}")
    output_existed = FileSystems.exists(output)
    started = time.monotonic()
    try:
        p = beam.Pipeline(options=PipelineOptions(beam_args))
        build(p, job, inputs, tmp_dir, has_ids)
        result = p.run()
        state = result.wait_until_finish()
        if state not in (None, PipelineState.DONE):
            raise RuntimeError(f"the pipeline ended {state}")
        file_counts = _read_json(_file_counts_path(tmp_dir))
        check_outcome(job, total_counts(file_counts), _read_json(_repeated_ids_path(tmp_dir)))
        stats = _read_stats(FileSystems.join(tmp_dir, "_stats"))
        counters = _counters(result)
    except BaseException:
        _discard(tmp_dir, output, output_existed)
        raise
    elapsed = time.monotonic() - started
    manifest = build_manifest(job, inputs, run_id, file_counts, stats, counters, elapsed)
    publish(tmp_dir, output, manifest, TABLES, stale=TABLE_DIRS)  # e.g. a run's attempts/
    return manifest
