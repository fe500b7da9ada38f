"""Packing: every sample lands whole in exactly one sequence and unpacks back exactly."""

import json
import shutil

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from support import data_row, learned_text

from pipeline.config import OutputConfig, load_config
from pipeline.output.pack import pack_rows, unpack
from pipeline.output.write import WriteShards
from pipeline.run import run
from pipeline.stages.tokens import load_tokenizer

FNAPI = ["--runner=FnApiRunner"]
EOS = 7


def samples(n: int, seed: int = 0, longest: int = 200) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(1, longest))
        mask = np.zeros(length, np.int8)
        mask[length // 2 :] = 1
        out.append(
            {
                **data_row(i),
                "id": f"s{i:05d}",
                "input_ids": rng.integers(100, 1000, length).astype(np.int32),
                "loss_mask": mask,
                "num_tokens": length,
                "tokenizer": "t",
            }
        )
    return out


def assert_round_trip(packed: list[dict], originals: list[dict], seq_len: int) -> None:
    by_id = {s["id"]: s for s in originals}
    seen = []
    for row in packed:
        ids, mask, pos, cu = (
            np.asarray(row[k]) for k in ("input_ids", "loss_mask", "position_ids", "cu_seqlens")
        )
        assert len(ids) == len(mask) == len(pos) == seq_len
        assert cu[0] == 0 and cu[-1] == seq_len and (np.diff(cu) > 0).all()
        assert row["num_tokens"] == cu[row["num_samples"]]
        for start, end in zip(cu[:-1], cu[1:], strict=True):
            assert (pos[start:end] == np.arange(end - start)).all()
        # Separators and padding: EOS ids with loss 0.
        assert (ids[cu[1 : row["num_samples"] + 1] - 1] == EOS).all()
        assert (ids[row["num_tokens"] :] == EOS).all() and not mask[row["num_tokens"] :].any()
        for sample_id, (back_ids, back_mask) in unpack(row).items():
            assert back_ids.tolist() == by_id[sample_id]["input_ids"].tolist()
            assert back_mask.tolist() == by_id[sample_id]["loss_mask"].tolist()
            seen.append(sample_id)
        assert mask.sum() == sum(by_id[s]["loss_mask"].sum() for s in row["sample_ids"])
    assert sorted(seen) == sorted(by_id)  # each sample exactly once


@pytest.mark.parametrize("seq_len, n", [(256, 500), (201, 50), (1024, 1)])
def test_pack_rows_round_trip(seq_len, n):
    originals = samples(n)
    packed = pack_rows(originals, seq_len, EOS, "t")
    assert_round_trip(packed, originals, seq_len)
    if n > 100:  # best-fit decreasing leaves little room on many small documents
        fill = sum(r["num_tokens"] for r in packed) / (len(packed) * seq_len)
        assert fill > 0.95


def test_a_sample_that_fills_a_sequence_exactly_has_no_padding_segment():
    (row,) = pack_rows([_exact(63)], 64, EOS, "t")
    assert row["cu_seqlens"].tolist() == [0, 64] and row["num_tokens"] == 64


def _exact(length):
    return {
        "id": "x",
        "input_ids": np.full(length, 5, np.int32),
        "loss_mask": np.ones(length, np.int8),
    }


def test_packing_is_deterministic_whatever_the_input_order():
    originals = samples(300, seed=3)
    first = pack_rows(originals, 512, EOS, "t")
    again = pack_rows(originals[::-1], 512, EOS, "t")
    assert [r["sample_ids"] for r in first] == [r["sample_ids"] for r in again]
    assert [r["id"] for r in first] == [r["id"] for r in again]


def test_packed_shards_written_by_the_pipeline_round_trip(tmp_path):
    originals = samples(600, seed=1)
    with BeamTestPipeline(argv=FNAPI) as p:
        _ = (
            p
            | beam.Create(originals)
            | WriteShards(
                "data", str(tmp_path), OutputConfig(shard_tokens=20_000), pack=(512, EOS, "t")
            )
        )
    stats = [json.loads(f.read_text()) for f in sorted((tmp_path / "_stats").glob("packed*"))]
    tokens = sum(s["num_tokens"] for s in originals) + len(originals)
    assert len(stats) == -(-tokens // 20_000)
    assert sum(s["samples"] for s in stats) == 600
    assert sum(s["tokens"] for s in stats) == tokens
    table = pq.read_table(tmp_path / "packed")
    assert table.schema.field("input_ids").type.value_type.bit_width == 32
    assert_round_trip(table.to_pylist(), originals, 512)


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packed")
    cfg = load_config(
        "examples/quickstart.yaml",
        ["run.problems_per_combo=3", "tokens.pack=1024", f"teacher.cache_dir={tmp / 'cache'}"],
    )
    manifest = run(cfg, str(tmp / "out"), FNAPI)
    return tmp / "out", manifest


def test_a_packed_run_round_trips_to_its_samples(packed_run):
    out, manifest = packed_run
    data = pd.read_parquet(out / "data")
    packed = pd.read_parquet(out / "packed")
    assert len(data) > 20
    tok = load_tokenizer("qwen2")
    unpacked = {}
    for row in packed.to_dict("records"):
        assert len(row["input_ids"]) == 1024
        unpacked.update(unpack(row))
    assert sorted(unpacked) == sorted(data["id"])
    for row in data.to_dict("records"):
        ids, mask = unpacked[row["id"]]
        assert ids.tolist() == row["input_ids"].tolist()
        assert mask.tolist() == row["loss_mask"].tolist()
        # The loss covers exactly the assistant's turn (thinking and answer) and its end.
        assert tok.decode(ids[mask == 1]) == learned_text(row)
    summary = manifest["tokens"]["packed"]
    assert summary["rows"] == len(packed) and summary["samples"] == len(data)
    assert summary["tokens"] == int(data["num_tokens"].sum()) + len(data)
    assert summary["fill"] == round(summary["tokens"] / (len(packed) * 1024), 4)
    assert {s["file"].split("/")[0] for s in manifest["shards"]["packed"]} == {"packed"}


def test_a_run_without_packing_removes_an_earlier_packed_table(packed_run, tmp_path):
    out, _ = packed_run
    assert (out / "packed").is_dir()
    cfg = load_config(
        "examples/quickstart.yaml",
        [
            "run.problems_per_combo=1",
            "generation.domains=[math]",
            f"teacher.cache_dir={tmp_path / 'cache'}",
        ],
    )
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    manifest = run(cfg, str(copy), FNAPI, overwrite=True)
    assert not (copy / "packed").exists() and "packed" not in manifest["shards"]
