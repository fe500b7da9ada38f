"""synthgen plan: every number follows from a real pilot's manifest and the stated rates."""

import copy
import math

import pytest

from pipeline.config import load_config
from pipeline.output import plan as planning
from pipeline.output.plan import Assumptions, format_plan, load_manifest, plan
from pipeline.run import run

N = 1_000_000_000
PRICED = Assumptions(price_prompt=1.2, price_completion=6.0)


@pytest.fixture(scope="module")
def pilots(tmp_path_factory):
    """A cold pilot and the same pilot rerun from its response cache into another directory."""
    tmp = tmp_path_factory.mktemp("pilot")
    overrides = ["run.problems_per_combo=3", f"teacher.cache_dir={tmp / 'cache'}"]
    cfg = load_config("examples/quickstart.yaml", overrides)
    cold = run(cfg, str(tmp / "cold"), ["--runner=FnApiRunner"])
    warm = run(cfg, str(tmp / "warm"), ["--runner=FnApiRunner"])
    return cold, warm, tmp


def calls_of(manifest: dict, stage: str) -> int:
    counters = manifest["teacher"]["by_stage"][stage]
    return counters.get("cache_hits", 0) + counters["cache_misses"]


def test_the_target_becomes_kept_samples_then_problems(pilots):
    cold, _, _ = pilots
    p = plan(cold, N)
    per_sample = cold["tokens"]["data"] / cold["tokens"]["samples"]
    kept_needed, problems = p["teacher"]["kept_needed"], p["teacher"]["problems"]
    assert kept_needed * per_sample >= N > (kept_needed - 1) * per_sample
    yield_ = cold["funnel"]["kept"] / cold["funnel"]["requested"]
    assert problems * yield_ >= kept_needed > (problems - 1) * yield_
    assert p["teacher"]["scale"] == problems / cold["funnel"]["requested"]


def test_calls_and_tokens_are_pilot_ratios_times_the_problems(pilots):
    cold, _, _ = pilots
    p = plan(cold, N, PRICED)
    t = p["teacher"]
    requested, problems = cold["funnel"]["requested"], t["problems"]
    # A cold pilot pays for every call, so every call's tokens are measured. (A counter never
    # incremented is absent from the manifest.)
    assert cold["teacher"]["total"].get("cache_hits", 0) == 0
    prompt = completion = 0.0
    for stage in ("generate", "attempts"):
        counters = cold["teacher"]["by_stage"][stage]
        calls = problems * calls_of(cold, stage) / requested
        assert t["by_stage"][stage]["calls"] == pytest.approx(calls, rel=1e-12)
        prompt += calls * counters["prompt_tokens"] / calls_of(cold, stage)
        completion += calls * counters["completion_tokens"] / calls_of(cold, stage)
    # One problem call per requested problem; k attempt calls per problem that survived dedup.
    assert calls_of(cold, "generate") == requested
    attempts = cold["config"]["generation"]["attempts"]
    assert calls_of(cold, "attempts") == attempts * cold["stages"]["dedup"]["kept"]
    assert t["calls"] == pytest.approx(sum(s["calls"] for s in t["by_stage"].values()))
    assert t["prompt_tokens"] == pytest.approx(prompt)
    assert t["completion_tokens"] == pytest.approx(completion)
    assert t["cost_usd"] == pytest.approx((prompt * 1.2 + completion * 6.0) / 1e6)
    assert p["cost"]["total_usd"] == pytest.approx(
        t["cost_usd"] + p["cost"]["dataflow_compute_usd"] + p["cost"]["dataflow_shuffle_usd"]
    )


def test_sandbox_checks_follow_the_pilots_stage_counters(pilots):
    cold, _, _ = pilots
    p = plan(cold, N)
    verify, reference = cold["stages"]["verify"], cold["stages"]["reference"]
    # Math attempts are compared with the verified answer, not run: no sandbox check.
    run_attempts = verify["kept"] - verify.get("not_run", 0) - verify["compared"]
    judged = sum(v for k, v in verify.items() if k not in ("kept", "not_run", "error", "compared"))
    assert run_attempts == judged - verify["compared"] and verify["compared"] > 0
    checks = (sum(reference.values()) + run_attempts) * p["teacher"]["scale"]
    assert p["sandbox"]["checks"] == pytest.approx(checks)
    timeouts = verify.get("fail_timeout", 0) * p["teacher"]["scale"]
    cpu_s = checks / planning.SANDBOX_CHECKS_PER_CORE_S + timeouts * 2.0  # quickstart: 2 s
    assert p["sandbox"]["cpu_hours"] == pytest.approx(cpu_s / 3600)


def test_ten_times_the_tokens_is_ten_times_the_calls_and_cost(pilots):
    cold, _, _ = pilots
    one, ten = plan(cold, N, PRICED), plan(cold, 10 * N, PRICED)
    for section, key in [
        ("teacher", "calls"),
        ("teacher", "cost_usd"),
        ("teacher", "prompt_tokens"),
        ("sandbox", "checks"),
        ("dedup", "docs"),
        ("dedup", "shuffle_gb"),
        ("compute", "worker_hours"),
    ]:
        assert ten[section][key] / one[section][key] == pytest.approx(10, rel=1e-5), key


def test_a_pilot_rerun_from_the_cache_plans_what_a_cold_pilot_plans(pilots):
    cold, warm, _ = pilots
    assert warm["funnel"] == cold["funnel"]
    # The rerun sent almost nothing: planning from `requests` would plan a fraction of the calls.
    assert warm["teacher"]["total"]["cache_hits"] > 0
    assert warm["teacher"]["total"]["requests"] < cold["teacher"]["total"]["requests"] / 2
    from_cold, from_warm = plan(cold, N), plan(warm, N)
    for key in ("kept_needed", "problems", "calls", "http_requests"):
        assert from_warm["teacher"][key] == pytest.approx(from_cold["teacher"][key]), key
    assert from_warm["sandbox"]["checks"] == pytest.approx(from_cold["sandbox"]["checks"])
    # Cached answers carry the tokens they were billed for: the same tokens and cost.
    priced_cold, priced_warm = plan(cold, N, PRICED), plan(warm, N, PRICED)
    for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
        assert priced_warm["teacher"][key] == pytest.approx(priced_cold["teacher"][key]), key


def test_a_pilot_without_token_counts_has_calls_but_no_token_figures(pilots):
    cold, _, _ = pilots
    cached = copy.deepcopy(cold)
    for counters in cached["teacher"]["by_stage"].values():
        counters["cache_hits"] = counters.get("cache_hits", 0) + counters["cache_misses"]
        counters.update(cache_misses=0, requests=0, prompt_tokens=0, completion_tokens=0)
        counters.update(cached_prompt_tokens=0, cached_completion_tokens=0)
    cached["teacher"]["total"].update(requests=0, cache_misses=0)
    p = plan(cached, N, PRICED)
    assert p["teacher"]["calls"] == pytest.approx(plan(cold, N)["teacher"]["calls"])
    assert p["teacher"]["prompt_tokens"] is None and p["teacher"]["cost_usd"] is None
    assert p["cost"]["total_usd"] is None
    assert any("tokens per call unknown" in note for note in p["notes"])
    assert "unknown" in format_plan(p)


def test_price_comes_from_flags_then_config_then_nowhere(pilots):
    cold, _, _ = pilots
    model = cold["config"]["teacher"]["model"]
    priced = copy.deepcopy(cold)
    priced["config"]["teacher"]["prices"] = {model: {"prompt": 2.0, "completion": 8.0}}
    assert plan(priced, N)["teacher"]["price_usd_per_1m"] == (2.0, 8.0)
    assert plan(priced, N, PRICED)["teacher"]["price_usd_per_1m"] == (1.2, 6.0)
    bare = plan(cold, N)
    assert bare["teacher"]["cost_usd"] is None and bare["teacher"]["prompt_tokens"] > 0
    assert bare["teacher"]["price_source"] == "no price given"
    assert any("no price given" in note for note in bare["notes"])


@pytest.mark.parametrize("hours", [6.0, 24.0, 240.0])
@pytest.mark.parametrize("quota_share", [0.0, 0.7])
def test_the_workers_planned_are_the_fewest_that_finish_in_time(pilots, hours, quota_share):
    """With an API quota that alone takes ``quota_share`` of the hours, or none."""
    cold, _, _ = pilots
    rpm = 0
    if quota_share:
        t = plan(cold, N)["teacher"]
        rpm = math.ceil(t["http_requests"] / (quota_share * hours * 60))
    p = plan(cold, N, Assumptions(hours=hours, rpm=rpm))
    workers = p["compute"]["workers"]
    assert p["compute"]["hours"] <= hours
    assert p["compute"]["worker_hours"] == pytest.approx(workers * p["compute"]["hours"])
    if workers > 1:
        fewer = plan(cold, N, Assumptions(workers=workers - 1, rpm=rpm))
        assert fewer["compute"]["hours"] > hours
    assert sum(p["compute"]["stage_hours"].values()) == pytest.approx(p["compute"]["hours"])


def test_a_quota_bounds_the_teacher_whatever_the_workers(pilots):
    cold, _, _ = pilots
    p = plan(cold, N, Assumptions(rpm=600, hours=24))
    calls_per_s = 600 / 60 / p["teacher"]["http_requests"] * p["teacher"]["calls"]
    assert p["teacher"]["quota_calls_per_s"] == pytest.approx(calls_per_s)
    quota_h = p["teacher"]["calls"] / calls_per_s / 3600
    assert quota_h > 24 and p["compute"]["hours"] >= quota_h
    assert p["bottleneck"]["stage"] == "teacher" and "quota" in p["bottleneck"]["bound"]
    assert any("API quota alone" in note for note in p["notes"])
    rest = sum(h for stage, h in p["compute"]["stage_hours"].items() if stage != "teacher")
    assert rest <= 24  # the workers keep up with the quota and run the rest within the hours
    more = plan(cold, N, Assumptions(rpm=600, workers=10 * p["compute"]["workers"]))
    assert more["compute"]["stage_hours"]["teacher"] == pytest.approx(quota_h)


def test_in_flight_calls_bound_the_teacher_until_the_cpu_does(pilots):
    cold, _, _ = pilots
    slow = plan(cold, N, Assumptions(concurrency=16, teacher_latency_s=20))
    assert slow["teacher"]["calls_per_s_per_process"] == pytest.approx(16 / 20)
    assert "in flight" in slow["bottleneck"]["bound"]
    fast = plan(cold, N, Assumptions(concurrency=1000, teacher_latency_s=0.1))
    assert fast["teacher"]["calls_per_s_per_process"] == planning.TEACHER_CALLS_PER_CORE_S
    assert fast["compute"]["workers"] < slow["compute"]["workers"]


def test_dedup_memory_is_sized_from_the_pilots_duplicates(pilots):
    cold, _, _ = pilots
    p = plan(cold, N)
    d, counts = p["dedup"], cold["stages"]["dedup"]
    assert d["docs"] == pytest.approx(sum(counts.values()) * p["teacher"]["scale"])
    assert (d["bands"], d["rows"]) == (18, 7)  # threshold 0.8, 128 permutations
    dups = counts.get("exact_duplicate", 0) + counts.get("near_duplicate", 0)
    assert d["largest_cluster_max"] == math.ceil(d["docs"] * dups / sum(counts.values())) + 1
    assert d["largest_group_mb"] == pytest.approx(d["largest_cluster_max"] * 100 / 1e6)
    assert d["signatures_gb_if_held"] == pytest.approx(d["docs"] * 128 * 4 / 1e9)
    assert d["shuffle_gb"] == pytest.approx(
        d["docs"] * sum(d["shuffle_bytes_per_doc"].values()) / 1e9
    )
    off = copy.deepcopy(cold)
    off["config"]["dedup"]["enabled"] = False
    assert plan(off, N)["dedup"]["shuffle_gb"] == 0


def test_the_text_has_every_section_and_the_key_numbers(pilots):
    cold, _, tmp = pilots
    p = plan(load_manifest(str(tmp / "cold")), N, PRICED)
    text = format_plan(p)
    for title in ("target", "from the pilot", "teacher", "sandbox", "dedup", "compute", "cost",
                  "bottleneck"):  # fmt: skip
        assert f"\n{title}" in text, title
    assert f"{p['teacher']['problems']:,}" in text
    assert f"${p['teacher']['cost_usd']:,.2f}" in text
    assert "built-in teacher, not a language model" in text


@pytest.mark.parametrize(
    "change, target, message",
    [
        (None, 0, "--target-tokens must be > 0"),
        (None, -5, "--target-tokens must be > 0"),
        ("no_kept", N, "the pilot kept no sample"),
        ("standalone", N, "not a synthgen run's"),
    ],
)
def test_bad_input_is_a_value_error(pilots, change, target, message):
    manifest = copy.deepcopy(pilots[0])
    if change == "no_kept":
        manifest["funnel"]["kept"] = 0
        manifest["tokens"].update(data=0, samples=0)
    elif change == "standalone":
        manifest = {"counts": {"input": 10, "kept": 9}}
    with pytest.raises(ValueError, match=message):
        plan(manifest, target)


@pytest.mark.parametrize(
    "assumed, message",
    [
        (Assumptions(price_prompt=1.0), "give both"),
        (Assumptions(hours=0), "--hours must be > 0"),
        (Assumptions(workers=0), "--workers must be > 0"),
        (Assumptions(teacher_latency_s=-1), "--teacher-latency-s must be > 0"),
        (Assumptions(rpm=-1), "--rpm must be >= 0"),
    ],
)
def test_bad_assumptions_are_value_errors(pilots, assumed, message):
    with pytest.raises(ValueError, match=message):
        plan(pilots[0], N, assumed)


def test_a_missing_manifest_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        load_manifest(str(tmp_path))
