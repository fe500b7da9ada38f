"""The command line as a user runs it: a fresh process, the installed ``synthgen`` entry point."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SYNTHGEN = shutil.which("synthgen") or str(Path(sys.executable).parent / "synthgen")
SMALL = [
    "--set",
    "run.problems_per_combo=1",
    "--set",
    "generation.topics={code: [strings], math: [arithmetic]}",
    "--set",
    "generation.difficulties=[easy, hard]",
    "--set",
    "generation.attempts=2",
]


def synthgen(*args, env=None, timeout=240):
    return subprocess.run(
        [SYNTHGEN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc, code, text):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_inspect_and_refuse_to_overwrite(tmp_path):
    out = tmp_path / "out"
    proc = synthgen("run", "examples/quickstart.yaml", "--output", str(out), *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "4 requested" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["funnel"]["reconciled"] and manifest["funnel"]["requested"] == 4
    assert not list(out.glob(".tmp-*"))
    assert len(pd.read_parquet(out / "data")) == manifest["funnel"]["kept"]

    again = synthgen("run", "examples/quickstart.yaml", "--output", str(out), *SMALL)
    assert_one_line_error(again, 2, "is not empty; pass --overwrite")
    assert json.loads((out / "manifest.json").read_text()) == manifest  # untouched

    over = synthgen("run", "examples/quickstart.yaml", "--output", str(out), "--overwrite", *SMALL)
    assert over.returncode == 0, over.stderr
    assert json.loads((out / "manifest.json").read_text())["run_id"] != manifest["run_id"]

    shown = synthgen("inspect", str(out))
    assert shown.returncode == 0 and "funnel: 4 requested" in shown.stdout
    sampled = synthgen("inspect", str(out), "--sample", "1")
    assert sampled.returncode == 0 and sampled.stdout.count("pass rate") >= 1, sampled.stderr
    assert_one_line_error(
        synthgen("inspect", str(out), "--rejected", "no_such_reason"), 2, "reasons present"
    )

    reported = synthgen("report", str(out))
    assert reported.returncode == 0 and (out / "report.html").is_file(), reported.stderr
    # A new run replaces the outputs; the old run's report must not stay behind.
    synthgen("run", "examples/quickstart.yaml", "--output", str(out), "--overwrite", *SMALL)
    assert not (out / "report.html").exists()


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["run", "missing.yaml", "--output", "x"], 2, "config file not found"),
        (
            ["run", "examples/quickstart.yaml", "--output", "x", "--set", "dedup.threshold=7"],
            2,
            "dedup.threshold: Input should be less than or equal to 1",
        ),
        (
            ["run", "examples/quickstart.yaml", "--output", "x", "--set", "teacher.bogus=1"],
            2,
            "teacher.bogus: unknown key",
        ),
        (
            [
                "run",
                "examples/quickstart.yaml",
                "--output",
                "x",
                "--set",
                "teacher.base_url=http://127.0.0.1:9/v1",
                "--set",
                "teacher.api_key_env=SYNTHGEN_UNSET_KEY",
            ],
            2,
            "SYNTHGEN_UNSET_KEY is not set",
        ),
        (["inspect", "nowhere"], 2, "has no manifest.json"),
        (["report", "nowhere"], 2, "has no manifest.json"),
        (
            ["run", "examples/quickstart.yaml", "--output", "x", "--set", "tokens.pack=8"],
            2,
            "tokens.pack: Input should be greater than or equal to 64",
        ),
        (
            [
                "run",
                "examples/quickstart.yaml",
                "--output",
                "x",
                "--set",
                "tokens.tokenizer=/nonexistent/tokenizer.json",
            ],
            2,
            "tokens.tokenizer: cannot load '/nonexistent/tokenizer.json'",
        ),
        (["teacher-server", "--latency", "sometimes"], 2, "latency"),
    ],
)
def test_bad_input_is_one_clear_line(args, code, text):
    assert_one_line_error(synthgen(*args), code, text)


def test_unreachable_teacher_rejects_seeds_instead_of_crashing(tmp_path):
    out = tmp_path / "out"
    proc = synthgen(
        "run",
        "examples/quickstart.yaml",
        "--output",
        str(out),
        *SMALL,
        "--set",
        "teacher.base_url=http://127.0.0.1:9/v1",
        "--set",
        "teacher.retries=1",
        "--set",
        "teacher.backoff_s=0",
        env={"OPENAI_API_KEY": "sk-unused"},
    )
    assert proc.returncode == 0, proc.stderr
    rejected = pd.read_parquet(out / "rejected")
    assert len(rejected) == 4 and set(rejected["reason"]) == {"teacher_error"}
    assert rejected["detail"].str.contains("APIConnectionError").all()


def test_sandbox_probe_reports_the_level_it_would_use():
    proc = synthgen("sandbox", "probe", "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["level"] in facts["levels"]
    assert {"root", "unshare", "bwrap", "interpreter"} <= facts.keys()
    text = synthgen("sandbox", "probe")
    assert (
        text.returncode == 0
        and f"level used (canary pair passed):          {facts['level']}" in (text.stdout)
    )


def test_check_code_exits_zero_only_for_pass(tmp_path):
    (tmp_path / "good.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "bad.py").write_text(
        "import sys\n\ndef add(a, b):\n    print('oops', file=sys.stderr)\n    return a - b\n"
    )
    (tmp_path / "tests.py").write_text(
        "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    good = synthgen("check-code", str(tmp_path / "good.py"), str(tmp_path / "tests.py"), "--json")
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert result["verdict"] == "PASS" and result["judge_mode"] == "pipe"
    assert {"isolation_level", "duration_s"} <= result.keys()
    bad = synthgen("check-code", str(tmp_path / "bad.py"), str(tmp_path / "tests.py"))
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL_TESTS") and "stderr: oops" in bad.stdout
    missing = synthgen("check-code", str(tmp_path / "nope.py"), str(tmp_path / "tests.py"))
    assert_one_line_error(missing, 2, "cannot read")


def test_a_run_below_the_required_isolation_stops_with_one_line(tmp_path):
    """Without unshare and bwrap on PATH no namespace level is possible here."""
    out = tmp_path / "out"
    proc = synthgen(
        "run",
        "examples/quickstart.yaml",
        "--output",
        str(out),
        *SMALL,
        "--set",
        "verify.require_isolation=namespaces",
        env={"PATH": str(tmp_path)},
    )
    assert_one_line_error(proc, 1, "no sandbox isolation level at or above 'namespaces'")
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith(".tmp-"))


def test_plan_scales_a_real_pilot_and_refuses_bad_input_in_one_line(tmp_path):
    out = tmp_path / "pilot"
    ran = synthgen("run", "examples/quickstart.yaml", "--output", str(out), *SMALL)
    assert ran.returncode == 0, ran.stderr
    target = ["--target-tokens", "1000000000"]
    text = synthgen("plan", *target, str(out), "--price-prompt", "1.2", "--price-completion", "6")
    assert text.returncode == 0, text.stderr
    titles = [line for line in text.stdout.splitlines() if line and not line[0].isspace()]
    for title in ("target", "from the pilot", "teacher", "sandbox", "dedup", "compute", "cost",
                  "bottleneck"):  # fmt: skip
        assert any(t.startswith(title) for t in titles), (title, titles)
    as_json = synthgen("plan", *target, str(out / "manifest.json"), "--json")
    assert as_json.returncode == 0, as_json.stderr
    estimate = json.loads(as_json.stdout)
    assert f"{estimate['teacher']['problems']:,}" in text.stdout
    assert estimate["teacher"]["cost_usd"] is None  # no price in the config, none given
    assert estimate["pilot"]["requested"] == 4

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["funnel"]["kept"], manifest["tokens"]["data"] = 0, 0
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps(manifest))
    for args, message in [
        (["--target-tokens", "0", str(out)], "--target-tokens must be > 0"),
        ([*target, str(tmp_path / "nowhere")], "has no manifest.json"),
        ([*target, str(tmp_path / "empty")], "the pilot kept no sample"),
        ([*target, str(out), "--workers", "3", "--hours", "5"], "not allowed with"),
    ]:
        assert_one_line_error(synthgen("plan", *args), 2, message)
