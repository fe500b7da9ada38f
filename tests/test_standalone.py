"""``synthgen dedup`` / ``synthgen decontam`` on user data sets (pipeline/standalone.py).

The commands run as a user runs them (the installed entry point, a fresh process); the pure
helpers and the refusals that need no Beam job are tested in-process.
"""

import io
import json
import math
import random
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import jaccard
from test_cli import assert_one_line_error, synthgen

from pipeline import cli
from pipeline.config import ConfigError
from pipeline.standalone import (
    InputError,
    Job,
    as_text,
    check_outcome,
    choose_format,
    column_types,
    merge_columns,
    merge_file_columns,
    merge_type,
    parse_json_line,
    row_id,
    rows_to_table,
    shard_count,
    split_list,
    stage_config,
    synthetic_id,
    table_schema,
    text_problem,
)

_RNG = random.Random(20261129)


def text(words: int = 60) -> str:
    """Words of random letters: two texts share no 5-word shingle (nor 13-word n-gram)."""
    return " ".join("".join(_RNG.choices("abcdefghijklmnop", k=7)) for _ in range(words))


def one_word_changed(value: str, position: int) -> str:
    words = value.split()
    words[position] = "changedword"
    return " ".join(words)


def plain(value):
    """A value read back by pandas as the plain Python value it was written from."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def read_rows(directory) -> list[dict]:
    frame = pd.read_parquet(directory)
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def write_jsonl(path, rows, blank_line=False):
    lines = [json.dumps(row) for row in rows]
    if blank_line:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")


# ---- through the entry point ----------------------------------------------------------------

A, B, C, E = text(), text(), text(), text()


def meta(n: int) -> dict:
    return {"source": f"s{n}", "n": n}


JSONL_ROWS = [
    {"id": "a1", "text": A, "meta": meta(1), "tags": ["x"], "score": 0.5},
    {"id": "c9", "text": C, "meta": meta(2), "tags": [], "score": 1.0},
    {"id": "a2", "text": A.upper() + "!", "meta": meta(3), "tags": ["y"], "score": 1.5},
    {"id": "a3", "text": one_word_changed(A, 0), "meta": meta(4), "tags": [], "score": 2.0},
    {"id": "b1", "text": B, "meta": meta(5), "tags": ["z", "w"], "score": 2.5},
    {"id": "c1", "text": C, "meta": meta(6), "tags": [], "score": 3.0},
    {"id": "d1", "text": one_word_changed(B, 59), "meta": meta(7), "tags": [], "score": 3.5},
    {"id": "e1", "text": E, "meta": meta(8), "tags": ["v"], "score": 4.0},
    {"id": "x1", "meta": meta(9), "tags": [], "score": 4.5},
    {"id": "x2", "text": 7, "meta": meta(10), "tags": [], "score": 5.0},
]


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory):
    assert jaccard(A, one_word_changed(A, 0)) > 0.9 and jaccard(B, one_word_changed(B, 59)) > 0.9
    root = tmp_path_factory.mktemp("jsonl")
    write_jsonl(root / "rows.jsonl", JSONL_ROWS, blank_line=True)
    out = root / "out"
    proc = synthgen(
        "dedup", "--input", str(root / "*.jsonl"), "--output", str(out), "--field", "text"
    )
    return root, out, proc


def test_dedup_jsonl_keeps_the_first_of_each_cluster_with_every_field(jsonl_run):
    _, out, proc = jsonl_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("synthgen dedup: 4 kept, 6 rejected") and not proc.stderr

    by_id = {row["id"]: row for row in JSONL_ROWS}
    kept = sorted(read_rows(out / "data"), key=lambda r: r["id"])
    assert kept == [by_id[i] for i in ("a1", "b1", "c1", "e1")]

    rejected = {row["id"]: row for row in read_rows(out / "rejected")}
    expected = {
        "a2": ("exact_duplicate", "a1"),
        "a3": ("near_duplicate", "a1"),
        "c9": ("exact_duplicate", "c1"),  # the smallest id wins, not the first row
        "d1": ("near_duplicate", "b1"),
        "x1": ("error", "field 'text' is missing"),
        "x2": ("error", "field 'text' is int, not a string"),
    }
    assert {i: (r["reason"], r["detail"]) for i, r in rejected.items()} == expected
    for row_id_, row in rejected.items():
        original = {**by_id[row_id_], "text": as_text(by_id[row_id_].get("text"))}
        assert {k: v for k, v in row.items() if k not in ("reason", "detail")} == original

    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts == {
        "input": 10,
        "kept": 4,
        "rejected": 6,
        "rejected_by_reason": {"error": 2, "exact_duplicate": 2, "near_duplicate": 2},
        "reconciled": True,
    }
    assert manifest["input"]["field"] == "text" and manifest["input"]["format"] == "jsonl"
    assert manifest["input"]["ids"] == "column 'id'"
    assert [f["rows"] for f in manifest["input"]["files"]] == [10]
    assert manifest["config"]["dedup"]["threshold"] == 0.8
    assert manifest["schema"]["json_text_columns"] == ["text"]  # x2's 7 has no common type
    assert not list(out.glob(".tmp-*"))


def test_refuses_a_non_empty_output_and_overwrites_only_when_asked(jsonl_run, tmp_path, capsys):
    root, first, _ = jsonl_run
    out = tmp_path / "out"
    shutil.copytree(first, out)
    manifest = (out / "manifest.json").read_text()
    args = ("--input", str(root / "rows.jsonl"), "--output", str(out), "--field", "text")

    assert_one_line_error(synthgen("dedup", *args), 2, "is not empty; pass --overwrite")
    assert (out / "manifest.json").read_text() == manifest

    # In-process (a Beam job is the same there); decontam, the cheaper stage, replaces dedup.
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, [{"id": "b", "text": A}])
    code = cli.main(["decontam", *args, "--overwrite", "--benchmarks", str(bench)])
    assert code == 0, capsys.readouterr().err
    replaced = json.loads((out / "manifest.json").read_text())
    assert replaced["command"] == "decontam" and replaced["counts"]["reconciled"]
    assert replaced["counts"]["rejected_by_reason"] == {"contaminated": 3, "error": 2}
    data = sorted(r["id"] for r in read_rows(out / "data"))
    assert data == ["b1", "c1", "c9", "d1", "e1"]
    assert len(list((out / "data").glob("*.parquet"))) == len(replaced["shards"]["data"])
    assert not list(out.glob(".tmp-*"))


def test_dedup_parquet_files_with_synthetic_ids(tmp_path):
    """No id column: ids are "<file>:<row>", so the first copy in file order survives."""
    d = text()
    first = [{"text": t, "source": f"f0-{i}", "n": i} for i, t in enumerate((A, B, C))]
    second = [
        {"text": A, "source": "f1-0", "n": 10},
        {"text": one_word_changed(C, 30), "source": "f1-1", "n": 11},
        {"text": d, "source": "f1-2", "n": 12},
    ]
    schema = pa.schema([("text", pa.string()), ("source", pa.string()), ("n", pa.int32())])
    pq.write_table(pa.Table.from_pylist(first, schema=schema), tmp_path / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(second, schema=schema), tmp_path / "part-1.parquet")
    out = tmp_path / "out"

    proc = synthgen(
        "dedup", "--input", str(tmp_path / "part-*.parquet"), "--output", str(out),
        "--field", "text",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    kept = sorted(read_rows(out / "data"), key=lambda r: r["source"])
    assert kept == [*first, second[2]]
    rejected = sorted(read_rows(out / "rejected"), key=lambda r: r["source"])
    assert rejected == [
        {**second[0], "reason": "exact_duplicate", "detail": "0:0000000000"},
        {**second[1], "reason": "near_duplicate", "detail": "0:0000000002"},
    ]
    assert pq.read_schema(next((out / "data").glob("*.parquet"))).field("n").type == pa.int32()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["path"] for f in manifest["input"]["files"]] == [
        str(tmp_path / "part-0.parquet"),
        str(tmp_path / "part-1.parquet"),
    ]
    assert manifest["input"]["ids"].startswith("synthetic")
    assert [f["rows"] for f in manifest["input"]["files"]] == [3, 3]
    assert manifest["counts"]["reconciled"] and manifest["counts"]["input"] == 6


def test_decontam_drops_exactly_the_rows_sharing_a_13_gram(tmp_path):
    b1, b2 = text(30).split(), text(30).split()
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, [{"id": "b1", "text": " ".join(b1)}, {"id": "b2", "text": " ".join(b2)}])
    rows = [
        {"id": "r1", "text": f"{text(10)} {' '.join(b1[4:17])} {text(10)}", "lang": "en"},
        {"id": "r2", "text": f"{text(10)} {' '.join(b2[4:16])} {text(10)}", "lang": "en"},
        {"id": "r3", "text": text(40), "lang": "de"},
        {"id": "r4", "text": f"{' '.join(b2[17:30]).upper()}, {text(5)}", "lang": "fr"},
    ]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out"

    proc = synthgen(
        "decontam", "--input", str(tmp_path / "rows.jsonl"), "--output", str(out),
        "--field", "text", "--benchmarks", str(bench),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("synthgen decontam: 2 kept, 2 rejected (contaminated 2)")

    assert sorted(read_rows(out / "data"), key=lambda r: r["id"]) == [rows[1], rows[2]]
    rejected = sorted(read_rows(out / "rejected"), key=lambda r: r["id"])
    assert rejected == [
        {**rows[0], "reason": "contaminated", "detail": f"benchmark={bench} item=b1"},
        {**rows[3], "reason": "contaminated", "detail": f"benchmark={bench} item=b2"},
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["decontam"]["ngram"] == 13
    assert manifest["config"]["decontam"]["benchmarks"] == [str(bench)]


@pytest.mark.parametrize(
    "pattern, field, message",
    [
        ("nothing-*.parquet", "text", "no file matches"),
        ("*.parquet", "body", "has a column 'body'"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, pattern, field, message):
    pq.write_table(pa.table({"text": ["a b c"]}), tmp_path / "rows.parquet")
    out = tmp_path / "out"
    proc = synthgen(
        "dedup", "--input", str(tmp_path / pattern), "--output", str(out), "--field", field
    )
    assert_one_line_error(proc, 2, message)
    assert not out.exists()


# ---- in-process: refusals before (or right after) the job ------------------------------------


def run_main(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line(err: str, text: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def inputs(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "text": "one"}, {"id": "1", "text": "two"}])
    write_jsonl(tmp_path / "bench.jsonl", [{"id": "b", "text": text(13)}])
    pq.write_table(pa.table({"text": ["x"], "n": [1]}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"text": ["x"], "reason": ["mine"]}), tmp_path / "c.parquet")
    (tmp_path / "d.csv").write_text("text\nx\n")
    return tmp_path


@pytest.mark.parametrize(
    "argv, text",
    [
        (
            ["--input", "{d}/[ab].*", "--field", "text"],
            "matches mixed formats (1 jsonl, 1 parquet)",
        ),
        (["--input", "{d}/*.csv", "--field", "text"], "d.csv: not a .jsonl, .jsonl.gz or .parquet"),
        (["--input", "{d}/b.parquet", "--field", "body"], "has a column 'body'"),
        (["--input", "{d}/b.parquet", "--field", "n"], "column 'n' of"),
        (["--input", "{d}/c.parquet", "--field", "text"], "already has a column 'reason'"),
        (["--input", "{d}/b.parquet", "--field", "text", "--threshold", "7"], "--threshold: "),
        (["--input", "{d}/b.parquet", "--field", "text", "--num-perm", "3"], "--num-perm: "),
        (["--input", "{d}/b.parquet", "--field", "text", "--id-field", "text"], "must name"),
        (["--input", "{d}/b.parquet", "{d}/c.parquet", "--field", "text"], "quote the --input"),
    ],
)
def test_dedup_refuses_before_the_job(inputs, capsys, argv, text):
    argv = [a.format(d=inputs) for a in argv]
    code, err = run_main(capsys, "dedup", "--output", str(inputs / "out"), *argv)
    assert code == 2
    assert_one_line(err, text)
    assert not (inputs / "out").exists()


def test_decontam_refuses_a_missing_benchmark(inputs, capsys):
    code, err = run_main(
        capsys, "decontam", "--input", str(inputs / "b.parquet"), "--output",
        str(inputs / "out"), "--field", "text", "--benchmarks", "humaneval,nope.jsonl",
    )  # fmt: skip
    assert code == 2
    assert_one_line(err, "--benchmarks: 'nope.jsonl' is neither a built-in benchmark")


def test_a_bad_flag_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dedup", "--input", "x", "--output", "y", "--field", "t", "--threshold", "x"])
    assert exit_.value.code == 2
    assert_one_line(capsys.readouterr().err, "argument --threshold: invalid float value: 'x'")
    code, err = run_main(capsys, "dedup", "--input", "x", "--output", "y", "--field", "t",
                         "--ngram", "3", "--runner=FnApiRunner")  # fmt: skip
    assert code == 2
    assert_one_line(err, "unrecognized argument --ngram: neither a synthgen dedup flag nor")


@pytest.mark.parametrize(
    "field, message",
    [
        ("text", "--id-field id: ids are not unique (1 repeated, e.g. '1' 2 times)"),
        ("body", "field 'body' is missing in every row of"),
    ],
)
def test_refusals_found_by_the_job_leave_no_output(inputs, capsys, field, message):
    """Seen only once every JSON row is read; decontam is the cheaper stage to run for it."""
    code, err = run_main(
        capsys, "decontam", "--input", str(inputs / "a.jsonl"), "--output", str(inputs / "out"),
        "--field", field, "--benchmarks", str(inputs / "bench.jsonl"),
    )  # fmt: skip
    assert code == 2
    assert_one_line(err, message)
    assert not (inputs / "out").exists()


def test_an_unreadable_file_is_a_run_failure_in_one_line(inputs, capsys):
    (inputs / "bad.parquet").write_bytes(b"PAR1 and then nothing")
    (inputs / "bad.jsonl.gz").write_bytes(b"not gzip")
    for name, text in (("bad.parquet", "Parquet magic bytes"), ("bad.jsonl.gz", "Not a gzip")):
        code, err = run_main(
            capsys, "decontam", "--input", str(inputs / name), "--output", str(inputs / "out"),
            "--field", "text", "--benchmarks", str(inputs / "bench.jsonl"),
        )  # fmt: skip
        assert code == 1
        assert_one_line(err, f"synthgen: cannot read {inputs / name}: {text}")
        assert not (inputs / "out").exists()


# ---- pure helpers -----------------------------------------------------------------------


def test_synthetic_ids_sort_in_input_order():
    positions = [(0, 0), (0, 9), (0, 10), (1, 0), (10, 2), (11, 0)]
    ids = [synthetic_id(f, r, file_digits=2) for f, r in positions]
    assert ids == sorted(ids) and ids[1] == "00:0000000009" and len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["a.jsonl", "b.JSONL.gz"], "jsonl"),
        (["a.parquet"], "parquet"),
        (["a.jsonl", "b.parquet"], InputError("mixed formats (1 jsonl, 1 parquet)")),
        (["a.json"], InputError("a.json: not a .jsonl, .jsonl.gz or .parquet file")),
        ([], InputError("no file matches g")),
    ],
)
def test_choose_format(paths, expected):
    if isinstance(expected, Exception):
        with pytest.raises(InputError, match=str(expected).replace("(", r"\(").replace(")", r"\)")):
            choose_format("g", paths)
    else:
        assert choose_format("g", paths) == expected


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"t": "text"}, None),
        ({"t": ""}, None),
        ({}, "field 't' is missing"),
        ({"t": None}, "field 't' is null"),
        ({"t": 3}, "field 't' is int, not a string"),
        ({"t": ["a"]}, "field 't' is list, not a string"),
    ],
)
def test_text_problem(row, problem):
    assert text_problem(row, "t") == problem


@pytest.mark.parametrize(
    "row, expected", [({"id": "a"}, "a"), ({"id": 5}, "5"), ({"id": None}, None), ({}, None)]
)
def test_row_id(row, expected):
    assert row_id(row, "id") == expected


@pytest.mark.parametrize(
    "line, error",
    [
        ('{"a": 1}', None),
        ("[1, 2]", "a JSON list, not an object"),
        ("{bad", "not JSON"),
        ('"text"', "a JSON str, not an object"),
    ],
)
def test_parse_json_line(line, error):
    if error is None:
        assert parse_json_line(line) == {"a": 1}
    else:
        with pytest.raises(ValueError, match=error):
            parse_json_line(line)


def test_column_types_fall_back_to_text_only_without_a_common_type():
    types = column_types(
        [
            {"i": 1, "f": 1, "mixed": 1, "empty": {}, "huge": 2**70, "s": {"a": 1}},
            {"i": 2, "f": 2.5, "mixed": "x", "empty": {}, "huge": 1, "late": True},
        ]
    )
    assert list(types) == ["i", "f", "mixed", "empty", "huge", "s", "late"]
    assert types["i"] == pa.int64() and types["f"] == pa.float64() and types["late"] == pa.bool_()
    assert types["mixed"] is None and types["empty"] is None and types["huge"] is None
    assert merge_type(pa.int64(), pa.float64()) == pa.float64()
    assert merge_type(pa.null(), pa.string()) == pa.string()
    assert merge_type(pa.int64(), pa.string()) is None
    assert merge_type(None, pa.string()) is None
    merged = merge_columns({"a": pa.int64(), "b": pa.string()}, {"c": pa.bool_(), "a": pa.int32()})
    assert merged == {"a": pa.int64(), "b": pa.string(), "c": pa.bool_()}
    by_file = merge_file_columns([(1, {"z": pa.int64()}), (0, {"y": pa.string()})])
    assert list(by_file) == ["y", "z"]


def test_rows_round_trip_through_parquet_with_text_columns():
    rows = [
        {"id": "1", "text": "plain", "tags": ["a"]},
        {"id": "2", "text": {"k": [1, 2]}, "tags": []},
        {"id": "3", "tags": None},
    ]
    columns = {"id": pa.string(), "text": None, "tags": pa.list_(pa.string())}
    schema, text_columns = table_schema(columns, "data", "dedup")
    assert text_columns == ["text"] and schema.field("text").type == pa.string()
    buffer = io.BytesIO()
    pq.write_table(rows_to_table(rows, schema, text_columns), buffer)
    back = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    assert [plain(v) for v in back["text"]] == ["plain", '{"k": [1, 2]}', None]
    note = json.loads(pq.read_schema(io.BytesIO(buffer.getvalue())).metadata[b"synthgen"])
    assert note == {"command": "dedup", "table": "data", "json_text_columns": ["text"]}

    rejected_schema, _ = table_schema(columns, "rejected", "dedup")
    assert rejected_schema.names == ["id", "text", "tags", "reason", "detail"]
    with pytest.raises(InputError, match="already has a column 'detail'"):
        table_schema({**columns, "detail": pa.string()}, "rejected", "dedup")


def test_stage_config_names_the_flag():
    assert stage_config("dedup", threshold=None).threshold == 0.8
    assert stage_config("dedup", threshold=0.9, num_perm=64).num_perm == 64
    assert stage_config("decontam", ngram=8, benchmarks=None).benchmarks == ("humaneval",)
    for values, flag in (
        ({"threshold": 0}, "--threshold"),
        ({"shingle_size": 0}, "--shingle-size"),
    ):
        with pytest.raises(ConfigError, match=f"^{flag}: "):
            stage_config("dedup", **values)
    with pytest.raises(ConfigError, match="^--ngram: "):
        stage_config("decontam", ngram=1)


def test_small_helpers():
    assert split_list(" humaneval, gsm8k,,") == ("humaneval", "gsm8k")
    assert split_list(None) is None
    assert [shard_count(n, 100, 4) for n in (0, 1, 100, 101, 10_000)] == [1, 1, 1, 2, 4]
    assert as_text(None) is None and as_text("s") == "s" and as_text({"b": 1}) == '{"b": 1}'
    assert cli._stray_argument(["--runner", "FnApiRunner", "--x=1"]) is None
    assert cli._stray_argument(["b.jsonl", "--runner=FnApiRunner"]) == "b.jsonl"
    assert cli._stray_argument(["--runner=FnApiRunner", "b.jsonl"]) == "b.jsonl"
    assert (
        cli._unknown_flag(["--runner", "X", "--temp_location=/t", "--direct_num_workers=2"]) is None
    )
    assert cli._unknown_flag(["--runner=X", "--shingles=3"]) == "--shingles"


@pytest.mark.parametrize(
    "counts, repeated, message",
    [
        ({"rows": 0}, {}, "no rows in the files matching g"),
        ({"rows": 2, "missing_field": 2}, {}, "field 't' is missing in every row of g"),
        ({"rows": 2, "not_json": 2}, {}, "no line of g is a JSON object"),
        ({"rows": 2, "missing_field": 1, "not_a_string": 1}, {}, "has a string in field 't'"),
        ({"rows": 2, "with_text": 2}, {"ids": 1, "examples": [["a", 2]]}, "not unique"),
        ({"rows": 2, "with_text": 1, "missing_field": 1}, {"ids": 0, "examples": []}, None),
    ],
)
def test_check_outcome(counts, repeated, message):
    job = Job("dedup", "g", "out", "t", "id", stage_config("dedup"))
    if message is None:
        check_outcome(job, counts, repeated)
    else:
        with pytest.raises(InputError, match=message):
            check_outcome(job, counts, repeated)
