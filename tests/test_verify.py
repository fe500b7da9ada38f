"""Verify: answer normalisation, attempt selection, and the three Beam transforms."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import records
from pipeline.config import VerifyConfig
from pipeline.sandbox.sandbox import LEVELS, Limits
from pipeline.stages.verify import (
    NOT_RUN,
    SelectAttempt,
    VerifyAttempts,
    VerifyReference,
    answers_match,
    choose_attempt,
    majority_answer,
    normalize_answer,
    select_attempt,
)

CFG = VerifyConfig(timeout_s=2.0, memory_mb=256, workers=2)

# ----------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", "42"),
        ("  42  ", "42"),
        ("-42", "-42"),
        ("+7", "7"),
        ("42.", "42"),
        ("3.5", "7/2"),
        ("3.50", "7/2"),
        ("2.0", "2"),
        ("-0", "0"),
        (".5", "1/2"),
        ("1e3", "1000"),
        ("1,234,567", "1234567"),
        ("1{,}000", "1000"),
        ("7/3", "7/3"),
        ("14/6", "7/3"),
        ("-7/3", "-7/3"),
        ("7 / 3", "7/3"),
        ("\\frac{7}{3}", "7/3"),
        ("\\dfrac{7}{3}", "7/3"),
        ("-\\frac{7}{3}", "-7/3"),
        ("\\frac{-7}{3}", "-7/3"),
        ("\\frac12", "1/2"),
        ("\\boxed{7/3}", "7/3"),
        ("$\\boxed{\\frac{7}{3}}$.", "7/3"),
        ("The answer is \\boxed{42}", "42"),
        ("$1,000$", "1000"),
        ("x = 5", "5"),
        ("Answer: 42", "42"),
        ("The final answer is 42.", "42"),
        ("50\\%", "50"),
        ("2 1/3", "7/3"),
        ("\u22125", "-5"),
        ("(7/3)", "7/3"),
        (42, "42"),
        (3.5, "7/2"),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "5 apples",  # a unit it does not know
        "1,2",
        "1/0",
        "inf",
        "nan",
        "1e999999",
        "1/2/3",
        "\\boxed{}",
        "\\boxed{x}",
        "9" * 5000,
        None,
        True,
        ["42"],
    ],
)
def test_normalize_answer_rejects_non_numbers(text):
    assert normalize_answer(text) is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("3.5", "7/2", True),
        ("3.50", "\\frac{7}{2}", True),
        ("0.3333333", "1/3", True),
        ("0.333", "1/3", False),
        ("0.30000000000000004", "0.3", True),
        ("1/3", "333333/1000000", False),
        ("42", "42.0000000001", True),
        ("42", "43", False),
        ("0", "0.0", True),
        ("0", "0.0000001", False),
        ("-1/3", "-0.33333333", True),
        ("1/3", "-0.33333333", False),
        ("abc", "abc", False),
        ("42", None, False),
    ],
)
def test_answers_match(a, b, expected):
    assert answers_match(a, b) is expected
    assert answers_match(b, a) is expected


def test_answers_match_tolerance_is_configurable():
    assert answers_match("3.14", "3.14159", rel_tol=1e-3)
    assert not answers_match("3.14", "3.14159", rel_tol=1e-6)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([], None),
        (["abc", ""], None),
        (["42"], "42"),
        (["3.5", "7/2", "4"], "7/2"),
        (["1", "2"], "1"),
        (["2", "1"], "1"),
        (["10", "9"], "10"),
        (["x", "5", "\\boxed{5}", "6"], "5"),
        (["2.3333333333", "5", "7/3"], "7/3"),
        (["5", "2.3333333333", "2.33333333334"], "116666666667/50000000000"),
    ],
)
def test_majority_answer(answers, expected):
    assert majority_answer(answers) == expected


def _attempt(index, verdict, solution="x", **extra):
    return {"attempt": index, "verdict": verdict, "solution": solution, **extra}


def test_choose_attempt_prefers_pass_then_shortest_then_lowest_index():
    attempts = [
        _attempt(0, records.FAIL_TESTS, "a"),
        _attempt(1, records.PASS, "longer"),
        _attempt(2, records.PASS, "short"),
        _attempt(3, records.PASS, "tie!!"),
    ]
    chosen, rate = choose_attempt(attempts, 4)
    assert chosen["attempt"] == 2
    assert rate == 0.75
    assert choose_attempt(list(reversed(attempts)), 4)[0]["attempt"] == 2


@pytest.mark.parametrize(
    ("attempts", "requested", "chosen", "rate"),
    [
        ([], 4, None, 0.0),
        ([], None, None, 0.0),
        ([_attempt(0, records.FAIL_TESTS)], 4, None, 0.0),
        ([_attempt(0, records.PASS)], 4, 0, 0.25),
        ([_attempt(0, records.PASS), _attempt(1, records.PASS)], None, 0, 1.0),
        ([_attempt(0, records.PASS, None)], 1, 0, 1.0),
    ],
)
def test_choose_attempt_edge_cases(attempts, requested, chosen, rate):
    best, pass_rate = choose_attempt(attempts, requested)
    assert (best["attempt"] if best else None) == chosen
    assert pass_rate == rate


# ------------------------------------------------------------------ records


def _problem(pid, domain="code", **fields):
    base = {
        "id": pid,
        "domain": domain,
        "topic": "strings" if domain == "code" else "arithmetic",
        "difficulty": "easy",
        "index": 0,
        "teacher_model": "synthgen-builtin-teacher",
        "sampling": '{"temperature": 0.8}',
        "problem_prompt_hash": "p" * 8,
        "config_hash": "c" * 16,
        "statement": f"Statement of {pid}.",
    }
    if domain == "code":
        base.update(entry_point="add", reference_solution=ADD, tests=ADD_TESTS)
    else:
        base.update(answer="7/3", program="from fractions import Fraction\nprint(Fraction(7, 3))\n")
    return {**base, **fields}


def _attempt_element(problem, index, status="ok", **fields):
    element = {
        **problem,
        "isolation_level": "process",
        "attempt": index,
        "attempt_prompt_hash": "a" * 8,
        "attempt_sampling": f'{{"seed": {index}}}',
        "attempt_status": status,
        "attempt_detail": "" if status == "ok" else f"{status} detail",
        "attempt_raw": "raw teacher text",
        "solution": None,
        "attempt_answer": None,
        "attempt_program": None,
    }
    return {**element, **fields}


ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def _verified(problem, index, verdict, **fields):
    base = _attempt_element(problem, index, **fields)
    base.setdefault("solution", "def add(a, b):\n    return a + b\n")
    return {
        **base,
        "verdict": verdict,
        "verify_detail": "" if verdict == records.PASS else f"{verdict} detail",
        "duration_s": 0.03,
        "isolation_level": "process",
    }


# ------------------------------------------------------------ select (pure)


def test_select_code_keeps_shortest_passing_and_reports_every_attempt():
    problem = _problem("code-1")
    attempts = [
        _verified(problem, 2, records.PASS, solution="def add(a, b):\n    return b + a  # ok\n"),
        _verified(problem, 0, records.FAIL_TESTS, solution="def add(a, b):\n    return 0\n"),
        _verified(problem, 1, records.PASS, solution=ADD),
        _verified(problem, 3, NOT_RUN, status=records.PARSE_ERROR),
    ]
    selection = select_attempt(attempts, 4)
    assert selection.reason is None
    record = selection.record
    assert (record["attempt"], record["attempts"], record["pass_rate"]) == (1, 4, 0.5)
    assert record["solution"] == ADD and record["verdict"] == records.PASS
    assert record["reference_solution"] == ADD and record["isolation_level"] == "process"
    assert "attempt_status" not in record and "verify_detail" not in record
    rows = {row["attempt"]: row for row in selection.attempt_rows}
    assert [rows[i]["reason"] for i in range(4)] == [
        "failed",
        None,
        records.LOST,
        records.PARSE_ERROR,
    ]
    assert [rows[i]["chosen"] for i in range(4)] == [False, True, False, False]
    assert rows[3]["raw"] == "raw teacher text" and rows[1]["raw"] is None
    assert rows[3]["detail"] == "parse_error detail"
    assert rows[1]["schema_version"] == records.SCHEMA_VERSION
    assert rows[1]["problem"] == "Statement of code-1." and rows[1]["sampling"] == '{"seed": 1}'


def test_select_ignores_drop_markers_of_errored_attempts():
    problem = _problem("code-4")
    errored = records.drop(_verified(problem, 0, "ERROR"), records.ATTEMPTS, records.ERROR, "boom")
    selection = select_attempt([errored, _verified(problem, 1, records.PASS)], 2)
    assert selection.reason is None
    assert not {"stage", "reason", "detail"} & selection.record.keys()
    assert [row["reason"] for row in selection.attempt_rows] == ["failed", None]


def test_select_no_passing_attempt_counts_verdicts():
    problem = _problem("code-2")
    attempts = [
        _verified(problem, 0, records.FAIL_TESTS),
        _verified(problem, 1, records.FAIL_TIMEOUT),
    ]
    selection = select_attempt(attempts, 3)
    assert selection.reason == records.NO_PASSING_ATTEMPT
    assert selection.detail == "0/3 attempts passed: FAIL_TESTS=1, FAIL_TIMEOUT=1, missing=1"
    assert [row["chosen"] for row in selection.attempt_rows] == [False, False]


def test_select_infra_error_without_a_pass_is_a_sandbox_error_not_a_failure():
    problem = _problem("code-3")
    attempts = [
        _verified(problem, 0, records.FAIL_TESTS),
        _verified(problem, 1, records.INFRA_ERROR),
    ]
    selection = select_attempt(attempts, 2)
    assert selection.reason == records.SANDBOX_ERROR
    assert selection.detail.startswith("INFRA_ERROR:")


def _math_attempt(problem, index, answer):
    """A math attempt as VerifyAttempts leaves it: its final answer against the reference."""
    verdict = records.PASS if answers_match(answer, problem["answer"]) else records.FAIL_ANSWER
    return _verified(
        problem, index, verdict, solution=f"Reasoning. \\boxed{{{answer}}}", attempt_answer=answer
    )


def test_select_math_majority_vote_marks_dissent_as_fail_answer():
    problem = _problem("math-1", "math", answer="\\boxed{7/3}")
    attempts = [
        _math_attempt(problem, 0, "2.3333333333"),
        _math_attempt(problem, 1, "7/3"),
        _math_attempt(problem, 2, "5"),
        _math_attempt(problem, 3, "\\frac{7}{3}"),
    ]
    selection = select_attempt(attempts, 4)
    assert selection.reason is None
    assert selection.record["answer"] == "7/3"
    assert selection.record["pass_rate"] == 0.75
    rows = {row["attempt"]: row for row in selection.attempt_rows}
    assert rows[2]["verdict"] == records.FAIL_ANSWER and rows[2]["reason"] == "failed"
    assert rows[2]["answer"] == "5" and rows[2]["program"] is None
    assert sum(row["chosen"] for row in rows.values()) == 1


def test_select_math_decimal_majority_takes_the_exact_reference_form():
    problem = _problem("math-3", "math", answer="7/3")
    attempts = [_math_attempt(problem, 0, "2.3333333"), _math_attempt(problem, 1, "2.33333333")]
    selection = select_attempt(attempts, 2)
    assert selection.reason is None
    assert selection.record["answer"] == "7/3"
    assert selection.record["attempt"] == 0


def test_select_math_majority_disagreeing_with_reference_is_dropped():
    problem = _problem("math-2", "math", answer="6")
    attempts = [
        _math_attempt(problem, 0, "5"),
        _math_attempt(problem, 1, "5"),
        _math_attempt(problem, 2, "6"),
        _math_attempt(problem, 3, "5"),
    ]
    selection = select_attempt(attempts, 4)
    assert selection.reason == records.ANSWER_DISAGREEMENT
    assert "majority answer '5' (3 of 4 attempts)" in selection.detail
    reasons = [row["reason"] for row in selection.attempt_rows]
    # The one attempt that agreed with the reference is not kept either: the reference is doubted.
    assert reasons == ["failed", "failed", records.ANSWER_DISAGREEMENT, "failed"]
    assert not any(row["chosen"] for row in selection.attempt_rows)


def test_select_math_reference_breaks_a_tie():
    """Two attempts share a wrong answer, two agree with the reference: the reference wins."""
    problem = _problem("math-4", "math", answer="136")
    attempts = [
        _math_attempt(problem, 0, "101"),
        _math_attempt(problem, 1, "136"),
        _math_attempt(problem, 2, "101"),
        _math_attempt(problem, 3, "136"),
    ]
    selection = select_attempt(attempts, 4)
    assert selection.reason is None and selection.record["answer"] == "136"
    verdicts = [row["verdict"] for row in selection.attempt_rows]
    assert verdicts == [records.FAIL_ANSWER, records.PASS, records.FAIL_ANSWER, records.PASS]


# ------------------------------------------------------------------ Beam


def _pipeline():
    return BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"]))


def _outcomes(outputs):
    """(id, output, reason) for every record leaving a stage: the conservation check."""
    labelled = [
        outputs.kept | "KeptIds" >> beam.Map(lambda r: (r["id"], "kept", None)),
        outputs.dropped | "DroppedIds" >> beam.Map(lambda r: (r["id"], "dropped", r["reason"])),
        outputs.errors | "ErrorIds" >> beam.Map(lambda r: (r["id"], "errors", r["reason"])),
    ]
    return labelled | "AllOutcomes" >> beam.Flatten()


def _check(predicate, what):
    def matcher(actual):
        bad = [row for row in actual if not predicate(row)]
        if bad:
            raise AssertionError(f"{what}: {bad[:2]}")

    return matcher


def test_verify_reference_routes_every_problem():
    problems = [
        _problem("code-pass"),
        _problem("code-fail", reference_solution="def add(a, b):\n    return a * b\n"),
        _problem("code-no-tests", tests="from solution import add\n"),
        _problem("math-pass", "math", answer="\\boxed{\\frac{7}{3}}"),
        _problem("math-decimal", "math", answer="2.3333333", program="print(7 / 3)\n"),
        _problem("math-wrong", "math", answer="42"),
        _problem("math-crash", "math", program="print(1 / 0)\n"),
        _problem("math-not-a-number", "math", answer="seven thirds"),
        _problem("bad-domain", "poetry"),
    ]
    with _pipeline() as p:
        outputs = p | beam.Create(problems) | VerifyReference(CFG)
        assert_that(
            _outcomes(outputs),
            equal_to(
                [
                    ("code-pass", "kept", None),
                    ("code-fail", "dropped", records.REFERENCE_FAILED),
                    ("code-no-tests", "dropped", records.REFERENCE_FAILED),
                    ("math-pass", "kept", None),
                    ("math-decimal", "kept", None),
                    ("math-wrong", "dropped", records.REFERENCE_FAILED),
                    ("math-crash", "dropped", records.REFERENCE_FAILED),
                    ("math-not-a-number", "dropped", records.REFERENCE_FAILED),
                    ("bad-domain", "errors", records.ERROR),
                ]
            ),
        )
        assert_that(
            outputs.kept,
            _check(lambda r: r["isolation_level"] in LEVELS, "isolation"),
            label="KeptHaveIsolation",
        )
        assert_that(
            outputs.dropped | beam.Map(lambda r: (r["id"], r["detail"].split(":")[0])),
            equal_to(
                [
                    ("code-fail", records.FAIL_TESTS),
                    ("code-no-tests", records.FAIL_TESTS),
                    ("math-wrong", records.FAIL_ANSWER),
                    ("math-crash", records.FAIL_CRASH),
                    ("math-not-a-number", records.FAIL_ANSWER),
                ]
            ),
            label="DropDetails",
        )


class FakeSandbox:
    """Sandbox stand-in: solutions containing INFRA fail as infrastructure, FLAKY only once."""

    isolation_level = "fake"

    def __init__(self, limits: Limits, require=None):
        self._seen: set[str] = set()

    def _result(self, code: str) -> dict:
        if "INFRA" in code or ("FLAKY" in code and code not in self._seen):
            self._seen.add(code)
            verdict = records.INFRA_ERROR
        else:
            verdict = records.PASS
        return {"verdict": verdict, "detail": "fake", "duration_s": 0.0, "isolation_level": "fake"}

    def run_tests(self, solution: str, tests: str) -> dict:
        return {**self._result(solution), "tests_run": 1, "tests_passed": 1}

    def run_program(self, program: str) -> dict:
        return {**self._result(program), "stdout_last_line": "7/3"}

    def close(self):
        pass


def test_verify_reference_retries_infra_errors_once_then_rejects_them():
    problems = [
        _problem("infra", reference_solution="# INFRA\n"),
        _problem("flaky", reference_solution="# FLAKY\n"),
        _problem("math-infra", "math", program="# INFRA\n"),
    ]
    with _pipeline() as p:
        outputs = p | beam.Create(problems) | VerifyReference(CFG, sandbox_factory=FakeSandbox)
        assert_that(
            _outcomes(outputs),
            equal_to(
                [
                    ("infra", "dropped", records.SANDBOX_ERROR),
                    ("flaky", "kept", None),
                    ("math-infra", "dropped", records.SANDBOX_ERROR),
                ]
            ),
        )
        assert_that(
            outputs.dropped,
            _check(lambda r: r["detail"].startswith("INFRA_ERROR: "), "infra detail"),
            label="InfraDetail",
        )


def test_verify_attempts_adds_verdicts_and_counts_them():
    code, math = _problem("code-1"), _problem("math-1", "math")
    attempts = [
        _attempt_element(code, 0, attempt_program=ADD),
        _attempt_element(code, 1, attempt_program="def add(a, b):\n    return a - b\n"),
        _attempt_element(code, 2, status=records.NO_CODE_BLOCK),
        _attempt_element(math, 0, attempt_answer="\\frac{7}{3}"),
        _attempt_element(math, 1, attempt_answer="2"),
        _attempt_element(math, 2, attempt_answer="2.3333333333"),
        _attempt_element(math, 3, status=records.TRUNCATED),
        _attempt_element(_problem("odd", "poetry"), 0, solution="x"),
    ]
    p = _pipeline()
    outputs = p | beam.Create(attempts) | VerifyAttempts(CFG)
    assert_that(
        outputs.kept | beam.Map(lambda a: (a["id"], a["attempt"], a["verdict"])),
        equal_to(
            [
                ("code-1", 0, records.PASS),
                ("code-1", 1, records.FAIL_TESTS),
                ("code-1", 2, NOT_RUN),
                ("math-1", 0, records.PASS),
                ("math-1", 1, records.FAIL_ANSWER),
                ("math-1", 2, records.PASS),
                ("math-1", 3, NOT_RUN),
            ]
        ),
    )
    assert_that(
        outputs.kept,
        _check(
            lambda a: (
                {"verify_detail", "duration_s", "isolation_level"} <= a.keys()
                and (a["verdict"] == NOT_RUN) == (a["isolation_level"] is None)
                # a math answer is compared with the reference's, nothing runs
                and (a["judge_mode"] == "answer")
                == (a["domain"] == "math" and a["verdict"] != NOT_RUN)
            ),
            "verified fields",
        ),
        label="VerifiedFields",
    )
    assert_that(outputs.dropped, equal_to([]), label="NothingDropped")
    assert_that(
        outputs.errors | beam.Map(lambda r: (r["id"], r["reason"])),
        equal_to([("odd", records.ERROR)]),
        label="Errors",
    )
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(beam.metrics.MetricsFilter())["counters"]
        if c.key.metric.namespace == records.VERIFY
    }
    assert counters == {
        "kept": 7,
        "pass": 3,
        "fail_tests": 1,
        "fail_answer": 1,
        "not_run": 2,
        "error": 1,
        "compared": 3,  # the math attempts: judged by their answer, nothing ran
    }


def test_select_attempt_one_outcome_per_problem_and_one_row_per_attempt():
    code_ok, code_bad = _problem("code-ok"), _problem("code-bad")
    math_ok, math_off = _problem("math-ok", "math"), _problem("math-off", "math", answer="6")
    infra = _problem("code-infra")
    attempts = [
        _verified(code_ok, 0, records.FAIL_TESTS),
        _verified(code_ok, 1, records.PASS),
        _verified(code_bad, 0, records.FAIL_TESTS),
        _verified(code_bad, 1, NOT_RUN, status=records.SCHEMA_INVALID),
        _math_attempt(math_ok, 0, "7/3"),
        _math_attempt(math_ok, 1, "2.33333333333"),
        _math_attempt(math_off, 0, "5"),
        _math_attempt(math_off, 1, "5"),
        _verified(infra, 0, records.INFRA_ERROR),
    ]
    with _pipeline() as p:
        outputs = p | beam.Create(attempts) | SelectAttempt(CFG, attempts_requested=2)
        assert_that(
            _outcomes(outputs),
            equal_to(
                [
                    ("code-ok", "kept", None),
                    ("code-bad", "dropped", records.NO_PASSING_ATTEMPT),
                    ("math-ok", "kept", None),
                    ("math-off", "dropped", records.ANSWER_DISAGREEMENT),
                    ("code-infra", "dropped", records.SANDBOX_ERROR),
                ]
            ),
        )
        assert_that(
            outputs.kept | beam.Map(lambda r: (r["id"], r["attempt"], r["pass_rate"], r["answer"])),
            equal_to([("code-ok", 1, 0.5, None), ("math-ok", 0, 1.0, "7/3")]),
            label="KeptFields",
        )
        assert_that(
            outputs.attempt_rows | beam.Map(lambda r: (r["problem_id"], r["attempt"], r["chosen"])),
            equal_to(
                [
                    ("code-ok", 0, False),
                    ("code-ok", 1, True),
                    ("code-bad", 0, False),
                    ("code-bad", 1, False),
                    ("math-ok", 0, True),
                    ("math-ok", 1, False),
                    ("math-off", 0, False),
                    ("math-off", 1, False),
                    ("code-infra", 0, False),
                ]
            ),
            label="AttemptRows",
        )


def test_reference_attempts_select_chain_with_the_real_sandbox():
    problem = _problem("code-chain")
    attempts = [
        _attempt_element(problem, 0, attempt_program="def add(a, b):\n    return a - b\n"),
        _attempt_element(problem, 1, attempt_program=ADD),
        _attempt_element(problem, 2, attempt_program="import os\nos._exit(0)\n"),
    ]
    with _pipeline() as p:
        verified = p | beam.Create(attempts) | VerifyAttempts(CFG)
        selected = verified.kept | SelectAttempt(CFG, attempts_requested=4)
        assert_that(
            selected.kept | beam.Map(lambda r: (r["id"], r["attempt"], r["pass_rate"])),
            equal_to([("code-chain", 1, 0.25)]),
        )
        assert_that(
            selected.attempt_rows | beam.Map(lambda r: (r["attempt"], r["verdict"], r["reason"])),
            equal_to(
                [
                    (0, records.FAIL_TESTS, "failed"),
                    (1, records.PASS, None),
                    (2, records.FAIL_CRASH, "failed"),  # the solution process died
                ]
            ),
            label="Rows",
        )


@pytest.mark.parametrize(
    "given, expected",
    [
        ("\\$18", "18"),
        ("120^\\circ", "120"),
        ("90^{\\circ}", "90"),
        ("40 \\text{ feet}", "40"),
        ("1320 km", "1320"),
        ("\\$16,\\!386.20", "16386.20"),
        ("18 dollars", "18"),
        ("\\mathbf{18}", "18"),
        ("28 percent", "28"),
        ("\\frac{1}{3} \\text{meters}", "1/3"),
    ],
)
def test_units_and_currency_do_not_change_the_number(given, expected):
    assert answers_match(given, expected)


@pytest.mark.parametrize("given, other", [("3x", "3"), ("32, 349", "32349"), ("0,111", "111")])
def test_lists_variables_and_decimal_commas_are_not_numbers(given, other):
    assert not answers_match(given, other)
