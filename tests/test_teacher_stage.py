"""The teacher stage at run level: never pay twice, never overspend, never lose a seed, never
leak the key. Every run talks to the built-in teacher over real HTTP on 127.0.0.1."""

import json

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import records
from pipeline.config import load_config
from pipeline.run import build, run
from pipeline.stages.generate import GenerateProblems, make_seeds
from pipeline.teacher.builtin.server import TeacherServer

SMALL = ["run.problems_per_combo=2", "generation.attempts=2", "verify.timeout_s=2"]
KEY_ENV, SECRET = "SYNTHGEN_STAGE_KEY", "sk-stage-secret-abcdef123456"


def run_against(server, out, cache_dir, extra=()):
    cfg = load_config(
        "examples/quickstart.yaml",
        [
            f"teacher.base_url={server.url}",
            f"teacher.api_key_env={KEY_ENV}",
            f"teacher.cache_dir={cache_dir}",
            *SMALL,
            *extra,
        ],
    )
    return cfg, run(cfg, str(out), ["--runner=FnApiRunner"])


def answered(request_log) -> list[str]:
    """Requests the teacher answered: paid for, a cut answer too (it is cached as well, so that
    the same token cap never pays for it twice)."""
    lines = [json.loads(line) for line in request_log.read_text().splitlines()]
    return [line["request_hash"] for line in lines if line["status"] == 200]


def table(out, name, columns):
    return pd.read_parquet(out / name)[columns].sort_values(columns[0]).reset_index(drop=True)


def test_rerun_after_a_dead_teacher_pays_only_for_what_was_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cache = tmp_path / "cache"
    # The same endpoint (host and port) before and after: the cache key names the endpoint.
    with TeacherServer(faults="fail_after=30", request_log=str(tmp_path / "a.jsonl")) as dying:
        port = int(dying.url.rsplit(":", 1)[1].split("/")[0])
        _, first = run_against(dying, tmp_path / "first", cache)
    assert first["funnel"]["rejected_by_reason"].get("generate/teacher_error", 0) > 0
    with TeacherServer(port=port, request_log=str(tmp_path / "b.jsonl")) as healthy:
        _, second = run_against(healthy, tmp_path / "second", cache)
    with TeacherServer() as fresh:
        _, whole = run_against(fresh, tmp_path / "whole", tmp_path / "fresh-cache")

    paid_before, paid_again = answered(tmp_path / "a.jsonl"), answered(tmp_path / "b.jsonl")
    assert 25 <= len(paid_before) <= 30
    assert not set(paid_before) & set(paid_again)  # nothing answered twice
    assert second["teacher"]["total"]["cache_hits"] == len(paid_before)
    data_cols = ["id", "problem", "solution", "attempt", "pass_rate"]
    pd.testing.assert_frame_equal(
        table(tmp_path / "second", "data", data_cols), table(tmp_path / "whole", "data", data_cols)
    )
    rejected_cols = ["id", "stage", "reason"]
    pd.testing.assert_frame_equal(
        table(tmp_path / "second", "rejected", rejected_cols),
        table(tmp_path / "whole", "rejected", rejected_cols),
    )
    assert (tmp_path / "second" / "data").exists() and whole["funnel"]["reconciled"]


def test_cost_cap_ends_the_run_with_outputs_and_budget_rejects(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cap = 0.02
    with TeacherServer() as server:
        cfg, manifest = run_against(
            server,
            tmp_path / "out",
            tmp_path / "cache",
            [
                f"teacher.max_cost_usd={cap}",
                "teacher.prices={synthgen-builtin-teacher: {prompt: 10.0, completion: 30.0}}",
                "teacher.concurrency=4",
            ],
        )
    funnel, teacher = manifest["funnel"], manifest["teacher"]
    assert funnel["reconciled"]
    assert teacher["budget"]["exhausted"] and teacher["budget"]["max_cost_usd"] == cap
    rejected = pd.read_parquet(tmp_path / "out" / "rejected")
    assert (rejected["reason"] == records.BUDGET_EXHAUSTED).sum() > 0
    assert (
        rejected.loc[rejected["reason"] == records.BUDGET_EXHAUSTED, "detail"]
        .str.contains("max_cost_usd")
        .all()
    )
    # Overshoot is bounded by what was in flight when the cap was reached.
    per_request = (4000 * 10.0 + cfg.teacher.max_tokens * 30.0) / 1e6
    assert teacher["cost_usd"] <= cap + cfg.teacher.concurrency * per_request


@pytest.mark.parametrize("stream", ["false", "true"])
def test_fault_profile_loses_no_seed(tmp_path, monkeypatch, stream):
    """429s, 5xx, timeouts and cut answers, streamed or not: every seed ends once."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    faults = "429=0.2,500=0.05,timeout=0.02,retry_after=0.2,timeout_s=3"
    rates = {"truncated": 0.03}
    with TeacherServer(faults=faults, defect_rates=rates) as server:
        cfg, manifest = run_against(
            server,
            tmp_path / "out",
            tmp_path / "cache",
            ["teacher.timeout_s=1", "teacher.retries=8", "teacher.backoff_s=0.05"]
            + [f"teacher.stream={stream}"],
        )
        stats = server.stats()
    assert stats["by_status"].get("429", 0) > 0 and stats["by_status"].get("500", 0) > 0
    seeds = {s["id"] for s in make_seeds(cfg)}
    ids = list(pd.read_parquet(tmp_path / "out" / "data")["id"])
    ids += list(pd.read_parquet(tmp_path / "out" / "rejected")["id"])
    assert sorted(ids) == sorted(seeds)
    assert manifest["funnel"]["reconciled"]
    assert manifest["teacher"]["total"]["http_429"] > 0
    assert manifest["teacher"]["total"]["retries"] > 0


def test_the_api_key_never_enters_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = load_config(
        "examples/quickstart.yaml",
        ["teacher.base_url=http://127.0.0.1:9/v1", f"teacher.api_key_env={KEY_ENV}"],
    )
    options = PipelineOptions(["--runner=FnApiRunner"])
    p = beam.Pipeline(options=options)
    build(p, cfg, make_seeds(cfg), str(tmp_path / "out"), "run-id")
    assert SECRET.encode() not in p.to_runner_api().SerializeToString()
    assert SECRET not in json.dumps(options.get_all_options(), default=str)
    assert SECRET not in cfg.model_dump_json()


@pytest.mark.parametrize("mode, paid", [("on", 0), ("read-only", 0), ("refresh", 1), ("off", 1)])
def test_cache_modes_on_a_rerun(tmp_path, monkeypatch, mode, paid):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cache = tmp_path / "cache"
    with TeacherServer() as server:
        _, first = run_against(server, tmp_path / "first", cache, ["generation.domains=[math]"])
        _, again = run_against(
            server,
            tmp_path / "again",
            cache,
            ["generation.domains=[math]", f"teacher.cache_mode={mode}"],
        )
    sent_first = first["teacher"]["total"]["requests"]
    assert again["teacher"]["total"]["requests"] == paid * sent_first


def test_progress_lines_while_teacher_calls_run(tmp_path, caplog):
    cfg = load_config(
        "examples/quickstart.yaml",
        [
            "teacher.builtin_latency=fixed:0.3",
            "teacher.concurrency=2",
            "teacher.progress_s=0.2",
            f"teacher.cache_dir={tmp_path / 'cache'}",
            "generation.domains=[math]",
            "run.problems_per_combo=1",
        ],
    )
    seeds = make_seeds(cfg)
    caplog.set_level("INFO", logger="synthgen")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = p | beam.Create(seeds) | GenerateProblems(cfg, "progress-test", len(seeds))
    lines = [r.getMessage() for r in caplog.records if r.name == "synthgen"]
    assert any("teacher generate: " in line and f"of <= {len(seeds)}" in line for line in lines)
    assert all("in flight" in line and "ETA" in line for line in lines)
