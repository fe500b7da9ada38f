import hashlib
import json

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from support import data_row

from pipeline.config import OutputConfig
from pipeline.output.write import WriteShards, row_group_rows, rows_to_table, shard_of
from pipeline.records import SCHEMA_VERSION
from pipeline.schemas import arrow_schema

FNAPI = ["--runner=FnApiRunner"]


def test_round_trip_balanced_shards(tmp_path):
    rows = [data_row(i) for i in range(400)]
    with BeamTestPipeline(argv=FNAPI) as p:
        _ = p | beam.Create(rows) | WriteShards("data", str(tmp_path), OutputConfig(shards=4))
    files = sorted((tmp_path / "data").glob("*.parquet"))
    assert [f.name for f in files] == [f"part-{i:05d}-of-00004.parquet" for i in range(4)]
    counts = [pq.read_metadata(f).num_rows for f in files]
    assert sum(counts) == 400 and max(counts) - min(counts) < 60
    table = pq.read_table(files[0])
    assert table.schema.equals(arrow_schema("data"), check_metadata=False)
    assert table.schema.metadata[b"synthgen.schema_version"] == SCHEMA_VERSION.encode()
    frame = pd.read_parquet(tmp_path / "data")
    assert len(frame) == 400
    back = frame.set_index("id").loc["code-x-easy-00003"]
    assert list(back["input_ids"]) == list(range(8)) and back["pass_rate"] == 0.75
    assert (frame["num_tokens"] == frame["input_ids"].map(len)).all()
    shard_stats = [json.loads(p.read_text()) for p in (tmp_path / "_stats").glob("*.json")]
    for s in shard_stats:
        blob = (tmp_path / s["file"]).read_bytes()
        assert s["sha256"] == hashlib.sha256(blob).hexdigest()
    assert sum(s["tokens"] for s in shard_stats) == int(frame["num_tokens"].sum())


def test_every_shard_is_written_even_when_empty(tmp_path):
    row = {
        "id": "a",
        "domain": "code",
        "topic": "t",
        "difficulty": "d",
        "stage": "generate",
        "reason": "parse_error",
        "detail": "x",
        "teacher_model": "m",
        "config_hash": "c",
    }
    with BeamTestPipeline(argv=FNAPI) as p:
        _ = p | beam.Create([row]) | WriteShards("rejected", str(tmp_path), OutputConfig(shards=3))
    files = sorted((tmp_path / "rejected").glob("*.parquet"))
    assert len(files) == 3
    assert sum(pq.read_metadata(f).num_rows for f in files) == 1
    by_reason = [
        json.loads(p.read_text())["by_reason"] for p in (tmp_path / "_stats").glob("*.json")
    ]
    assert {"generate/parse_error": 1} in by_reason


def test_shard_assignment_is_deterministic():
    assert shard_of("abc", 7) == shard_of("abc", 7)
    spread = np.bincount([shard_of(f"id-{i}", 8) for i in range(8000)], minlength=8)
    assert spread.min() > 900


def test_rows_to_table_fills_missing_optional_fields():
    table = rows_to_table(
        [
            {
                "problem_id": "p",
                "attempt": 1,
                "domain": "math",
                "verdict": "PASS",
                "chosen": True,
                "detail": "",
                "teacher_model": "m",
                "sampling": "{}",
                "config_hash": "c",
                "attempt_prompt_hash": "h",
            }
        ],
        arrow_schema("attempts"),
    )
    assert table.num_rows == 1 and table.column("answer").null_count == 1


def _write(tmp_path, rows, output: OutputConfig, table="data") -> list[dict]:
    with BeamTestPipeline(argv=FNAPI) as p:
        _ = p | beam.Create(rows) | WriteShards(table, str(tmp_path), output)
    return [json.loads(f.read_text()) for f in sorted((tmp_path / "_stats").glob("*.json"))]


@pytest.mark.parametrize(
    "output, expected",
    [
        (OutputConfig(shard_rows=150), 3),  # ceil(400 / 150)
        (OutputConfig(shard_rows=1000), 1),
        (OutputConfig(shard_tokens=1000), 4),  # 3,197 tokens
        (OutputConfig(shard_rows=1, shard_tokens=400), 8),  # tokens win for data/
    ],
)
def test_shard_count_follows_the_target_size(tmp_path, output, expected):
    rows = [data_row(i) for i in range(400)]
    assert sum(r["num_tokens"] for r in rows) == 3197
    stats = _write(tmp_path, rows, output)
    assert [s["file"] for s in stats] == [
        f"data/part-{i:05d}-of-{expected:05d}.parquet" for i in range(expected)
    ]
    assert sum(s["rows"] for s in stats) == 400
    if expected > 1 and output.shard_tokens is None:
        assert max(s["rows"] for s in stats) <= 1.25 * output.shard_rows
    assert all(s["tokenizers"] == ["qwen2"] for s in stats if s["rows"])


def test_an_empty_table_is_one_empty_shard(tmp_path):
    stats = _write(tmp_path, [], OutputConfig(shard_rows=10))
    assert [(s["file"], s["rows"]) for s in stats] == [("data/part-00000-of-00001.parquet", 0)]
    assert pq.read_table(tmp_path / stats[0]["file"]).schema.names == arrow_schema("data").names


def test_row_groups_are_sized_by_bytes():
    small = rows_to_table([data_row(i) for i in range(10)], arrow_schema("data"))
    assert row_group_rows(small) == 8192
    big_row = {**data_row(0), "input_ids": np.zeros(2_000_000, np.int32)}
    big_row["loss_mask"] = np.zeros(2_000_000, np.int8)
    big = rows_to_table([big_row] * 4, arrow_schema("data"))
    assert row_group_rows(big) == (64 << 20) // (big.nbytes // 4)  # 6 rows of ~10 MB


def test_the_manifest_refuses_shards_of_another_tokenizer():
    from pipeline.config import Config
    from pipeline.run import OutputError, build_manifest

    def shard(table, index, tokenizers):
        return {
            "table": table,
            "file": f"{table}/part-{index:05d}-of-00002.parquet",
            "rows": 1,
            "samples": 1,
            "bytes": 1,
            "sha256": "0" * 64,
            "tokens": 5,
            "tokenizers": tokenizers,
            "by_reason": {},
            "isolation_levels": {},
            "judge_modes": {},
        }

    good = [shard("data", 0, ["qwen2"]), shard("data", 1, ["qwen2"])]
    assert build_manifest(Config(), "r", 2, good, {}, 1.0)["tokens"]["data"] == 10
    mixed = [shard("data", 0, ["qwen2"]), shard("data", 1, ["other.json"])]
    with pytest.raises(OutputError, match="refusing to mix tokenizers"):
        build_manifest(Config(), "r", 2, mixed, {}, 1.0)
