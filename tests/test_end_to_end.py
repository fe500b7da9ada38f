"""The offline quickstart, end to end, against the built-in teacher over real HTTP on 127.0.0.1.

The teacher writes a label log of every defect it planted; the test checks that each planted
problem defect ends in ``rejected/`` with the matching reason, that no planted attempt defect is
ever chosen, that clean problems survive, that every seed is accounted for exactly once, that
the token ids decode back to the text, and that the API key appears nowhere in the outputs.
"""

import json
from collections import Counter

import pandas as pd
import pytest
from support import learned_text

from pipeline import records
from pipeline.config import load_config
from pipeline.run import run
from pipeline.sandbox.sandbox import LEVELS
from pipeline.stages.generate import make_seeds, seed_id
from pipeline.stages.tokens import load_tokenizer
from pipeline.teacher.builtin.server import TeacherServer

KEY_ENV, SECRET = "SYNTHGEN_E2E_KEY", "sk-e2e-very-secret-0123456789"

EXPECTED_PROBLEM_REASON = {
    "malformed_json": {"generate/parse_error"},
    "truncated": {"generate/truncated"},
    "schema_invalid": {"generate/schema_invalid"},
    "failing_tests": {"reference/reference_failed"},
    "wrong_reference_answer": {"reference/reference_failed"},
    "non_english": {"language/language_not_allowed", "language/language_low_confidence"},
    "exact_duplicate": {"dedup/exact_duplicate"},
    "near_duplicate": {"dedup/near_duplicate"},
    "benchmark_copy": {"decontam/contaminated"},
}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    labels = tmp / "labels.jsonl"
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, SECRET)
    quickstart = load_config("examples/quickstart.yaml")
    # The quickstart itself, with its built-in teacher started here (same seed and defect
    # rates, so the same answers) so that the teacher's label log can be read afterwards.
    with TeacherServer(
        seed=quickstart.run.seed,
        defect_scale=quickstart.teacher.builtin_defect_scale,
        label_log=str(labels),
    ) as server:
        cfg = load_config(
            "examples/quickstart.yaml",
            [
                f"teacher.base_url={server.url}",
                f"teacher.api_key_env={KEY_ENV}",
                f"teacher.cache_dir={tmp / 'cache'}",
            ],
        )
        manifest = run(cfg, str(tmp / "out"), ["--runner=FnApiRunner"])
    mp.undo()
    out = tmp / "out"
    return {
        "cfg": cfg,
        "out": out,
        "manifest": manifest,
        "labels": [json.loads(line) for line in labels.read_text().splitlines()],
        "data": pd.read_parquet(out / "data"),
        "rejected": pd.read_parquet(out / "rejected"),
        "attempts": pd.read_parquet(out / "attempts"),
    }


def test_every_seed_ends_exactly_once(e2e):
    seeds = {s["id"] for s in make_seeds(e2e["cfg"])}
    ids = list(e2e["data"]["id"]) + list(e2e["rejected"]["id"])
    assert len(ids) == len(set(ids)) == len(seeds)
    assert set(ids) == seeds
    funnel = e2e["manifest"]["funnel"]
    assert funnel["reconciled"] and funnel["requested"] == len(seeds)
    assert funnel["kept"] == len(e2e["data"])
    by_reason = e2e["rejected"].groupby(["stage", "reason"]).size()
    assert {f"{s}/{r}": n for (s, r), n in by_reason.items()} == funnel["rejected_by_reason"]
    assert json.loads((e2e["out"] / "manifest.json").read_text()) == e2e["manifest"]


def test_planted_problem_defects_are_rejected_with_the_right_reason(e2e):
    rejected = e2e["rejected"].set_index("id")
    planted = [lab for lab in e2e["labels"] if lab["kind"] == "problem" and lab["defects"]]
    kinds = Counter(d for lab in planted for d in lab["defects"])
    assert set(kinds) == set(EXPECTED_PROBLEM_REASON), kinds  # every kind was exercised
    for lab in planted:
        rid = seed_id(lab["domain"], lab["topic"], lab["difficulty"], lab["index"])
        assert rid in rejected.index, (rid, lab["defects"])
        row = rejected.loc[rid]
        got = f"{row['stage']}/{row['reason']}"
        for defect in lab["defects"]:
            assert got in EXPECTED_PROBLEM_REASON[defect], (rid, defect, got, row["detail"])
        if "near_duplicate" in lab["defects"] or "exact_duplicate" in lab["defects"]:
            original = seed_id(
                lab["domain"], lab["topic"], lab["difficulty"], lab["copied_from_index"]
            )
            assert row["detail"] == original
        if row["reason"] in (records.PARSE_ERROR, records.SCHEMA_INVALID):
            assert row["raw"]


def test_planted_attempt_defects_never_win(e2e):
    attempts = e2e["attempts"].copy()
    attempts["seed"] = attempts["sampling"].map(lambda s: json.loads(s)["seed"])
    by_seed = attempts.set_index("seed")
    planted = [lab for lab in e2e["labels"] if lab["kind"] == "attempt" and lab["defects"]]
    assert {d for lab in planted for d in lab["defects"]} >= {
        "wrong_solution",
        "fake_pass",
        "infinite_loop",
        "malformed_json",
        "inconsistent_answer",
        "ambiguous_code",
    }
    kept = set(e2e["data"]["id"])
    for lab in planted:
        row = by_seed.loc[lab["seed"]]
        assert not row["chosen"], (lab, row["verdict"])
        # A self-consistent wrong math answer runs fine; it loses the vote, which marks it
        # FAIL_ANSWER when the problem is kept and drops the problem when the wrong answer wins.
        assert row["verdict"] != "PASS" or row["problem_id"] not in kept, (lab, row["verdict"])
        if "infinite_loop" in lab["defects"]:
            assert row["verdict"] == records.FAIL_TIMEOUT
        if "fake_pass" in lab["defects"]:
            # os._exit / sys.exit in the solution: its own process dies (pipe judging)
            fake = (records.FAIL_CRASH, records.FAIL_NO_REPORT, records.FAIL_TESTS)
            assert row["verdict"] in fake, row["detail"]
        if "malformed_json" in lab["defects"]:  # a free-form answer with no block to take
            assert row["reason"] in (records.NO_CODE_BLOCK, records.NO_ANSWER) and row["raw"]
        if "ambiguous_code" in lab["defects"]:
            assert row["reason"] == records.AMBIGUOUS_CODE and row["raw"]


def test_clean_problems_survive(e2e):
    kept = set(e2e["data"]["id"])
    clean = [
        seed_id(lab["domain"], lab["topic"], lab["difficulty"], lab["index"])
        for lab in e2e["labels"]
        if lab["kind"] == "problem" and not lab["defects"]
    ]
    survived = sum(rid in kept for rid in clean)
    assert survived >= 0.9 * len(clean), (survived, len(clean))


def test_attempt_rows_match_kept_samples(e2e):
    attempts, data = e2e["attempts"], e2e["data"]
    k = e2e["cfg"].generation.attempts
    for _, row in data.iterrows():
        mine = attempts[attempts["problem_id"] == row["id"]]
        assert len(mine) == k
        chosen = mine[mine["chosen"]]
        assert len(chosen) == 1 and chosen.iloc[0]["verdict"] == "PASS"
        assert chosen.iloc[0]["attempt"] == row["attempt"]
        assert row["pass_rate"] == pytest.approx((mine["verdict"] == "PASS").sum() / k)
    assert (data["verdict"] == "PASS").all()
    assert data["isolation_level"].isin(LEVELS).all()
    assert data["judge_mode"].isin(["pipe", "in_process", "answer"]).all()


def test_tokens_decode_back_to_the_conversation(e2e):
    tok = load_tokenizer("qwen2")
    for _, row in e2e["data"].iterrows():
        text = tok.decode(row["input_ids"])
        learned = learned_text(row)
        assert text == (
            f"<|im_start|>user\n{row['problem']}<|im_end|>\n<|im_start|>assistant\n{learned}\n"
        )
        assert tok.decode(row["input_ids"][row["loss_mask"] == 1]) == learned
        assert row["num_tokens"] == len(row["input_ids"])


def test_kept_rows_keep_the_thinking_they_were_served(e2e):
    """Mixed style: each kept row has reasoning exactly when its chosen attempt was served a
    trace, and no kept solution holds a thinking tag or the trace."""
    served = {
        lab["seed"]: lab for lab in e2e["labels"] if lab["kind"] == "attempt" and lab["style"]
    }
    data = e2e["data"]
    styles = set()
    for _, row in data.iterrows():
        label = served[json.loads(row["attempt_sampling"])["seed"]]
        styles.add(label["style"])
        assert pd.notna(row["reasoning"]) == label["reasoning_served"], (row["id"], label)
        assert "<think>" not in row["solution"] and "</think>" not in row["solution"]
        if pd.notna(row["reasoning"]):
            assert row["reasoning"] not in row["solution"] and row["reasoning"].strip()
    assert styles == {"json", "reasoning_content", "reasoning", "think", "think_open", "plain"}
    assert data["reasoning"].notna().sum() >= len(data) / 3
    assert e2e["manifest"]["reasoning"]["data"]["rows"] == data["reasoning"].notna().sum()


def test_manifest_describes_the_run(e2e):
    m = e2e["manifest"]
    assert m["tokenizer"]["name"] == "qwen2" and len(m["tokenizer"]["sha256"]) == 64
    assert m["tokenizer"]["chat_template"]["source"] == "chatml"
    assert m["tokens"]["data"] == e2e["data"]["num_tokens"].sum()
    assert m["tokens"]["samples"] == len(e2e["data"]) == m["funnel"]["kept"]
    assert len(m["prompts"]) == 4
    assert m["teacher"]["total"]["requests"] > len(e2e["data"])
    assert m["teacher"]["total"]["completion_tokens"] > 0
    for table in ("data", "rejected", "attempts"):
        shards = m["shards"][table]
        assert len(shards) == max(1, -(-len(e2e[table]) // e2e["cfg"].output.shard_rows))
        assert sum(s["rows"] for s in shards) == len(e2e[table])
    assert sum(s["tokens"] for s in m["shards"]["data"]) == e2e["data"]["num_tokens"].sum()


def test_the_api_key_is_nowhere_in_the_outputs(e2e):
    for path in e2e["out"].rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for table in ("data", "rejected", "attempts"):
        frame = e2e[table]
        for column in frame.columns:
            if frame[column].dtype == object:
                assert not frame[column].astype(str).str.contains(SECRET).any(), (table, column)
