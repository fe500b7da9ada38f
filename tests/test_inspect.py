"""``inspect_output``: the summary, ``rejected=REASON`` and ``sample=N``, on a real output."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from outputs import quickstart_output

from pipeline.output.inspect import clip, inspect_output, pick_samples, select_rejected

REJECTED_HEADER = re.compile(r"^--- (\S+) \((\S+)\)$", re.MULTILINE)
SAMPLE_HEADER = re.compile(r"^=== (\S+) \(", re.MULTILINE)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return quickstart_output(tmp_path_factory)


@pytest.fixture(scope="module")
def data(out) -> pd.DataFrame:
    return pd.read_parquet(out / "data")


@pytest.fixture(scope="module")
def rejected(out) -> pd.DataFrame:
    return pd.read_parquet(out / "rejected")


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")[:50]


def shown_rejected(text: str) -> list[tuple[str, str]]:
    """(id, stage/reason) of each rejected row printed."""
    return REJECTED_HEADER.findall(text)


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("x" * 25, 10, "x" * 10 + "... [15 more chars]"),
        (None, 10, ""),
        (math.nan, 10, ""),
        (pd.NA, 10, ""),
        ("", 10, ""),
        (42, 10, "42"),
    ],
)
def test_clip(text, limit, expected):
    assert clip(text, limit) == expected


def test_summary_without_options(out):
    manifest = json.loads((out / "manifest.json").read_text())
    text = inspect_output(str(out))
    funnel = manifest["funnel"]
    assert f"funnel: {funnel['requested']} requested -> {funnel['kept']} kept" in text
    assert "kept by domain:" in text


def test_rejected_by_reason_shows_every_matching_row_and_no_other(out, rejected):
    for reason, rows in rejected.groupby("reason"):
        text = inspect_output(str(out), samples=len(rejected), rejected=reason)
        assert text.startswith(f"rejected {reason!r}: {len(rows)} rows"), text
        expected = sorted(zip(rows["id"], rows["stage"] + "/" + rows["reason"], strict=True))
        assert shown_rejected(text) == expected


def test_rejected_by_stage_and_reason(out, rejected):
    row = rejected.sort_values("id").iloc[0]
    key = f"{row['stage']}/{row['reason']}"
    text = inspect_output(str(out), samples=len(rejected), rejected=key)
    same = rejected[(rejected["stage"] == row["stage"]) & (rejected["reason"] == row["reason"])]
    assert sorted(i for i, _ in shown_rejected(text)) == sorted(same["id"])
    assert {k for _, k in shown_rejected(text)} == {key}


def test_rejected_rows_are_capped_by_samples_in_id_order(out, rejected):
    counts = rejected["reason"].value_counts()
    reason = counts.index[0]
    assert counts.iloc[0] >= 2, "needs a reason with two rows"
    text = inspect_output(str(out), samples=1, rejected=reason)
    first = rejected[rejected["reason"] == reason]["id"].min()
    assert [i for i, _ in shown_rejected(text)] == [first]
    assert f"{counts.iloc[0]} rows" in text and "showing 1" in text


def test_rejected_rows_show_detail_problem_and_raw_when_present(out, rejected):
    shown = {
        reason: inspect_output(str(out), samples=len(rejected), rejected=reason)
        for reason in rejected["reason"].unique()
    }
    assert rejected["raw"].notna().any(), "no raw teacher text to look for"
    for _, row in rejected.iterrows():
        block = shown[row["reason"]].split(f"--- {row['id']} (", 1)[1].split("\n--- ", 1)[0]
        assert f"detail: {first_line(row['detail'])}" in block
        if pd.isna(row["problem"]):
            assert "problem: (none)" in block
        else:
            assert first_line(row["problem"]) in block
        if pd.isna(row["raw"]):
            assert "raw teacher text" not in block
        else:
            assert "raw teacher text:" in block
            assert first_line(row["raw"]) in block


def test_unknown_reason_lists_the_reasons_present(out, rejected):
    with pytest.raises(ValueError) as info:
        inspect_output(str(out), rejected="not_a_reason")
    message = str(info.value)
    assert "\n" not in message and "'not_a_reason'" in message
    for (stage, reason), n in rejected.groupby(["stage", "reason"]).size().items():
        assert f"{stage}/{reason} {n}" in message


def test_known_reason_under_another_stage_is_refused(out, rejected):
    stage, reason = rejected.iloc[0][["stage", "reason"]]
    other = next(s for s in ("generate", "dedup", "tokens") if s != stage)
    with pytest.raises(ValueError, match="reasons present"):
        inspect_output(str(out), rejected=f"{other}/{reason}")


def test_select_rejected_on_an_output_without_rejected_rows():
    with pytest.raises(ValueError, match="no rejected rows"):
        select_rejected(pd.DataFrame(), "near_duplicate")


def test_sample_shows_n_distinct_kept_samples(out, data):
    text = inspect_output(str(out), sample=5)
    ids = SAMPLE_HEADER.findall(text)
    assert len(ids) == len(set(ids)) == 5
    assert set(ids) <= set(data["id"])
    assert ids == sorted(ids)
    row = data.set_index("id").loc[ids[0]]
    assert f"{row['num_tokens']} tokens, pass rate {row['pass_rate']:.2f}" in text
    assert f"verdict {row['verdict']}, language {row['language']}" in text
    assert first_line(row["problem"]) in text and first_line(row["solution"]) in text


def test_sample_is_reproducible_and_follows_the_seed(out):
    first = inspect_output(str(out), sample=5)
    assert inspect_output(str(out), sample=5) == first
    other = inspect_output(str(out), sample=5, seed=1)
    assert SAMPLE_HEADER.findall(other) != SAMPLE_HEADER.findall(first)


def test_sample_ignores_row_order(data):
    shuffled = data.sample(frac=1, random_state=7)
    assert list(pick_samples(shuffled, 5)["id"]) == list(pick_samples(data, 5)["id"])


def test_sample_larger_than_the_output_shows_every_sample(out, data):
    text = inspect_output(str(out), sample=len(data) + 10)
    assert sorted(SAMPLE_HEADER.findall(text)) == sorted(data["id"])
    assert text.startswith(f"{len(data)} of {len(data)} kept samples")


def test_rejected_and_sample_together(out, rejected):
    reason = rejected["reason"].iloc[0]
    text = inspect_output(str(out), rejected=reason, sample=2)
    assert text.startswith(f"rejected {reason!r}")
    assert len(SAMPLE_HEADER.findall(text)) == 2
    assert "funnel:" not in text


@pytest.mark.parametrize("kwargs", [{"samples": -1}, {"sample": -2}])
def test_negative_counts_are_refused(out, kwargs):
    with pytest.raises(ValueError, match=">= 0"):
        inspect_output(str(out), **kwargs)


def test_not_an_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        inspect_output(str(tmp_path), rejected="near_duplicate")
