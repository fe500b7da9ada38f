"""Text files of other corpora (benchmarks, earlier outputs): JSONL, JSON, JSONL.gz or Parquet.

Read with Beam's ``FileSystems``; each row is a JSON object. ``file_items(path, field)`` yields
``(item id, text)``: the text is the field ``field``, the id ``task_id`` or ``id`` when the row
has one, else its 0-based row number. Used by decontamination (benchmark files), dedup
(``dedup.against``) and the standalone stages.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator

from pipeline.config import ConfigError

_FILE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".parquet")
_ID_FIELDS = ("task_id", "id")


class BenchmarkError(ConfigError):
    """A benchmark that cannot be loaded (missing package, unreadable file), as one line."""


def parse_json_line(line: str) -> dict:
    """One JSON object; ``ValueError`` with a short reason otherwise."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"a JSON {type(row).__name__}, not an object")
    return row


def read_json_lines(lines: Iterable[str], where: str) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield parse_json_line(line)
        except ValueError as exc:
            raise BenchmarkError(f"{where}: line {number} is {exc}") from None


def open_raw(path: str):
    """``path`` through Beam's FileSystems, bytes as stored (gzip is handled by the reader)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type="uncompressed")


def _file_rows(path: str, field: str) -> Iterator[dict]:
    name = path.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_raw(path) as handle:
            parquet = pq.ParquetFile(handle)
            wanted = {*_ID_FIELDS, field}
            columns = [c for c in parquet.schema_arrow.names if c in wanted]
            for batch in parquet.iter_batches(columns=columns):
                yield from batch.to_pylist()
    elif name.endswith(".json"):
        with open_raw(path) as handle:
            data = handle.read().decode("utf-8")
        if data.lstrip().startswith("["):
            try:
                rows = json.loads(data)
            except json.JSONDecodeError as exc:
                raise BenchmarkError(f"{path}: not a JSON array ({exc.msg})") from None
            for number, row in enumerate(rows, 1):
                if not isinstance(row, dict):
                    raise BenchmarkError(f"{path}: item {number} is not a JSON object")
                yield row
        else:
            yield from read_json_lines(data.splitlines(), path)
    else:
        with open_raw(path) as raw:
            binary = gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw
            with io.TextIOWrapper(binary, encoding="utf-8") as lines:
                yield from read_json_lines(lines, path)


def file_items(path: str, field: str) -> Iterator[tuple[str, str]]:
    if not path.lower().endswith(_FILE_SUFFIXES):
        raise BenchmarkError(f"{path}: benchmark files must end with {', '.join(_FILE_SUFFIXES)}")
    try:
        for row_number, row in enumerate(_file_rows(path, field)):
            text = row.get(field)
            if not isinstance(text, str):
                raise BenchmarkError(f"{path}: row {row_number} has no text field '{field}'")
            item_id = next((row[k] for k in _ID_FIELDS if row.get(k) is not None), row_number)
            yield str(item_id), text
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read ({exc})") from None
