"""Verify: execute references and attempts in the sandbox, then pick each problem's best attempt.

``VerifyReference``  problem -> kept (+ ``isolation_level``) | dropped ``reference_failed``
                     (code: the reference solution fails its tests; math: the program fails or
                     its last printed line does not match ``answer``) | errors.
``VerifyAttempts``   attempt element -> the same element + ``verdict``, ``verify_detail``,
                     ``duration_s``, ``isolation_level`` | errors. Code: the code block taken
                     from the answer runs against the problem's tests in the sandbox. Math:
                     the final ``\\boxed{}`` answer is compared with the problem's verified
                     answer (PASS or FAIL_ANSWER; ``judge_mode`` "answer", nothing runs;
                     ``isolation_level`` is the reference run's, which verified that answer).
                     Attempts whose ``attempt_status`` is not "ok" (cut, unparseable, no
                     answer) are not judged: verdict ``NOT_RUN``.
``SelectAttempt``    verified attempts, grouped by problem id -> kept problem (+ ``attempt``,
                     ``attempts``, ``pass_rate``, ``verdict``, ``solution``, ``answer``,
                     ``isolation_level``) | dropped ``no_passing_attempt`` / ``answer_disagreement``
                     | errors, plus ``attempt_rows``: one row per attempt (attempt_row schema).

Sandbox failures are never held against a sample: an ``INFRA_ERROR`` run is retried once; a
reference that still fails that way is rejected with reason ``sandbox_error`` (detail
"INFRA_ERROR: ..."), an attempt keeps verdict ``INFRA_ERROR``, and a problem without a passing
attempt but with an infra failure is rejected with ``sandbox_error`` instead of
``no_passing_attempt``. ``SUSPICIOUS`` (passed only in-process, by code with red flags) is not
a pass. Every checked attempt carries ``judge_mode`` and ``audit_flags`` (see
``pipeline.sandbox.sandbox``); the kept sample carries its chosen attempt's.

Selection rule (``choose_attempt``): among attempts with verdict PASS, the shortest
``solution`` text wins, then the lowest attempt index. ``pass_rate`` = passing attempts /
attempts requested (an attempt that never arrived counts as failed). Math: every attempt with
a final answer votes (PASS and FAIL_ANSWER alike), the reference ``answer`` casting one more
vote and winning ties, grouped by ``answers_match``; the majority must match the reference
``answer`` (else ``answer_disagreement``: the attempts doubt the reference). The kept
``answer`` is the majority, normalised (exact form).

The sandbox DoFns run checks on a small thread pool (``verify.workers``, 0 = CPU count): a
check is mostly a wait on a child process, which releases the GIL. Results are emitted from
``process`` as they finish and drained in ``finish_bundle``; like every stage here they assume
the global window (batch). Counters: ``reference/<reason>``, ``verify/<verdict>``,
``select/<reason>``, plus the distribution ``<stage>/sandbox_ms``.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from typing import Any, NamedTuple

import apache_beam as beam

from pipeline import records
from pipeline.records import DROPPED, ERRORS, KEPT, REFERENCE, SELECT, VERIFY
from pipeline.sandbox.sandbox import Limits, Sandbox
from pipeline.stages.answers import last_box
from pipeline.stages.concurrent import ConcurrentDoFn

JUDGE_ANSWER = "answer"  # judge mode of a math attempt: its final answer, compared
COMPARED = "compared"  # counter verify/compared: attempts judged by comparison (no sandbox)
NOT_RUN = "NOT_RUN"  # attempt verdict: the teacher's answer could not be parsed, nothing ran
ERRORED = "ERROR"  # attempt verdict: a stage raised on this attempt (see ``errored_attempt``)
ATTEMPT_ROWS = "attempt_rows"
FAILED = "failed"  # attempt-row reason: it ran and did not pass
RAW_STATUSES = (
    records.PARSE_ERROR,
    records.SCHEMA_INVALID,
    records.TRUNCATED,
    *records.ANSWER_REASONS,
)

# Keys an attempt element adds to its problem record (dropped again by SelectAttempt, except
# the chosen attempt's lineage: attempt_prompt_hash and attempt_sampling).
ATTEMPT_KEYS = (
    "attempt",
    "attempt_prompt_hash",
    "attempt_sampling",
    "attempt_status",
    "attempt_detail",
    "attempt_raw",
    "solution",
    "attempt_answer",
    "attempt_program",
    "reasoning",
    "reasoning_tokens",
    "reasoning_complete",
    "finish_reason",
    "verdict",
    "verify_detail",
    "duration_s",
    "isolation_level",
    "judge_mode",
    "audit_flags",
)
# Markers of an attempt that went through an errors output upstream and is judged as a failure.
DROP_KEYS = ("stage", "reason", "detail")

# --------------------------------------------------------------------- answers (pure)

MAX_ANSWER_CHARS = 200
MAX_EXPONENT = 400  # "1e999999" would build a huge integer
_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?")
_THOUSANDS = re.compile(r"[+-]?(?:[1-9]\d{0,2})(?:,\d{3})+(?:\.\d+)?")  # not "0,111"
_FRAC = re.compile(r"([+-]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_FRAC_SHORT = re.compile(r"([+-]?)\\[dt]?frac(\d)(\d)")
_MIXED = re.compile(r"([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_ASSIGNMENT = re.compile(r"^[A-Za-z]\w*\s*=\s*")
_ANSWER_PREFIX = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|:)?\s*", re.IGNORECASE)
_LATEX_NOISE = (
    ("\\$", ""),
    ("$", ""),
    ("\\(", ""),
    ("\\)", ""),
    ("\\[", ""),
    ("\\]", ""),
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\:", ""),
    ("\\ ", ""),
    ("{,}", ","),
    ("\\%", "%"),
    ("\u2212", "-"),
    ("\u2013", "-"),
)


# What a number's unit may look like after it: \text{ cm}, degrees, or a word of a few units
# that answers carry ("18 dollars", "1320 km"); a variable ("3x") is not one of them.
_UNIT = re.compile(
    r"(?:\^\{?\\circ\}?|°|\\text\{\s*[A-Za-z][A-Za-z .]*\}|\\(?:mbox|mathrm)\{\s*[A-Za-z .]+\}"
    r"|\s+(?:dollars?|cents?|percent|degrees?|units?|cm|mm|km|m|kg|g|mg|ml|l|s|sec|seconds?"
    r"|minutes?|min|hours?|h|days?|weeks?|years?|feet|foot|ft|inch(?:es)?|in|miles?|mph"
    r"|meters?|metres?|square\s+\w+|sq\s*\w+)\b\.?)\s*$",
    re.I,
)
_STYLE = re.compile(r"\\(?:mathbf|textbf|mathrm|text)\{([^{}]*)\}")


def _unbox(text: str) -> str:
    """Content of the last ``\\boxed{...}`` (``\\fbox``, ``\\boxed 5``); else ``text``."""
    boxed = last_box(text)
    return text if boxed is None else boxed


def _strip_wrapping(text: str) -> str:
    while len(text) >= 2 and (text[0], text[-1]) in (("{", "}"), ("(", ")")):
        inner = text[1:-1]
        if inner.count("{") != inner.count("}") or inner.count("(") != inner.count(")"):
            break
        text = inner.strip()
    return text


def _plain_number(text: str) -> tuple[Fraction, bool] | None:
    match = _PLAIN.fullmatch(text)
    if not match or (match.group(1) and abs(int(match.group(1))) > MAX_EXPONENT):
        return None
    is_decimal = "." in text or "e" in text.lower()
    return Fraction(text), is_decimal


def _parse_number(text: Any) -> tuple[Fraction, bool] | None:
    """``(exact value, written as a decimal?)`` or None if ``text`` is not a number."""
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, (int, float)):
        text = repr(text)
    if not isinstance(text, str) or len(text) > 4 * MAX_ANSWER_CHARS:
        return None
    s = _unbox(text.strip())
    for old, new in _LATEX_NOISE:
        s = s.replace(old, new)
    s = _ASSIGNMENT.sub("", _ANSWER_PREFIX.sub("", s.strip())).rstrip(".").strip()
    while (unit := _UNIT.search(s)) is not None and unit.start() > 0:
        s = s[: unit.start()].strip()
    s = _STYLE.sub(r"\1", s).strip()
    s = _strip_wrapping(s).removesuffix("%").strip()
    if re.search(r",\s", s):  # "32, 349": a list, not a number
        return None
    if len(s) > MAX_ANSWER_CHARS:
        return None
    try:
        mixed = _MIXED.fullmatch(s)
        if mixed:
            sign, whole, num, den = mixed.groups()
            value = int(whole) + Fraction(int(num), int(den))
            return (-value if sign == "-" else value), False
        s = re.sub(r"\s+", "", s)
        if _THOUSANDS.fullmatch(s):
            s = s.replace(",", "")
        frac = _FRAC.fullmatch(s) or _FRAC_SHORT.fullmatch(s)
        if frac:
            sign, num, den = frac.groups()
            parts = _plain_number(_strip_wrapping(num)), _plain_number(_strip_wrapping(den))
        elif s.count("/") == 1:
            sign = ""
            parts = tuple(_plain_number(_strip_wrapping(p)) for p in s.split("/"))
        else:
            return _plain_number(s)
        if parts[0] is None or parts[1] is None:
            return None
        value = parts[0][0] / parts[1][0]
        return (-value if sign == "-" else value), parts[0][1] or parts[1][1]
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _canonical(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def normalize_answer(text: str) -> str | None:
    """Canonical form of a numeric answer: "42", "-7/3" (exact), or None if not a number.

    Strips ``\\boxed{}``, ``$``, LaTeX spacing, thousands separators, a trailing period or
    ``%`` and a leading "Answer:" or ``x =``; reads integers, decimals ("3.50" -> "7/2"), scientific
    notation, fractions ("7/3", ``\\frac{7}{3}``, ``\\dfrac``) and mixed numbers ("2 1/3").
    """
    parsed = _parse_number(text)
    return None if parsed is None else _canonical(parsed[0])


def _numbers_match(x: tuple[Fraction, bool], y: tuple[Fraction, bool], rel_tol: float) -> bool:
    (a, a_decimal), (b, b_decimal) = x, y
    if a == b:
        return True
    if not (a_decimal or b_decimal):
        return False
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def answers_match(a: str, b: str, rel_tol: float = 1e-6) -> bool:
    """Exact equality for rationals; ``rel_tol`` applies when either side was a decimal."""
    pa, pb = _parse_number(a), _parse_number(b)
    return pa is not None and pb is not None and _numbers_match(pa, pb, rel_tol)


def _majority(
    answers: list[str], rel_tol: float, prefer: str | None = None
) -> tuple[str, int] | None:
    """``(representative raw answer, votes)`` of the largest group of matching answers.

    Answers are grouped with ``answers_match`` ("2.3333333" and "7/3" are one vote each for
    the same answer). Exact forms come first, then smaller canonical strings, so the groups,
    their representative and the tie-break (the group matching ``prefer``, then the smaller
    canonical string) ignore input order.
    """
    parsed = [(a, p) for a in answers if (p := _parse_number(a)) is not None]
    parsed.sort(key=lambda item: (item[1][1], _canonical(item[1][0]), str(item[0])))
    groups: list[list[tuple[str, tuple[Fraction, bool]]]] = []
    for raw, number in parsed:
        for group in groups:
            if _numbers_match(group[0][1], number, rel_tol):
                group.append((raw, number))
                break
        else:
            groups.append([(raw, number)])
    if not groups:
        return None
    preferred = _parse_number(prefer) if prefer is not None else None

    def rank(group):
        favoured = preferred is not None and _numbers_match(group[0][1], preferred, rel_tol)
        return -len(group), not favoured, _canonical(group[0][1][0])

    best = min(groups, key=rank)
    return best[0][0], len(best)


def majority_answer(answers: list[str], rel_tol: float = 1e-6) -> str | None:
    """The normalised majority answer (ties: the smaller canonical string); None if none.

    Votes are grouped by ``answers_match``; the group speaks through its exact form if any.
    """
    majority = _majority(answers, rel_tol)
    return None if majority is None else normalize_answer(majority[0])


def choose_attempt(
    attempts: list[dict], attempts_requested: int | None = None
) -> tuple[dict | None, float]:
    """``(best passing attempt or None, pass rate)``.

    Rule: only verdict PASS counts; the shortest ``solution`` wins, then the lowest
    ``attempt`` index. Pass rate = passing / max(attempts_requested, attempts seen).
    """
    passing = [a for a in attempts if a.get("verdict") == records.PASS]
    total = max(attempts_requested or 0, len(attempts))
    rate = len(passing) / total if total else 0.0
    chosen = min(
        passing, key=lambda a: (len(a.get("solution") or ""), a.get("attempt", 0)), default=None
    )
    return chosen, rate


# ------------------------------------------------------------ sandbox checks (pure-ish)


def _run_with_retry(call) -> dict:
    """One retry for failures of the sandbox itself; candidate verdicts are final."""
    result = call()
    if result["verdict"] == records.INFRA_ERROR:
        result = call()
    return result


def _check_printed_answer(result: dict, expected: Any, rel_tol: float) -> dict:
    """Turn a PASS program run into FAIL_ANSWER when its last line is not ``expected``."""
    if result["verdict"] != records.PASS:
        return result
    printed = result.get("stdout_last_line", "")
    if normalize_answer(expected) is None:
        return {
            **result,
            "verdict": records.FAIL_ANSWER,
            "detail": f"the stated answer {str(expected)[:100]!r} is not a number",
        }
    if not answers_match(printed, expected, rel_tol):
        return {
            **result,
            "verdict": records.FAIL_ANSWER,
            "detail": f"program printed {printed[:100]!r}, expected {str(expected)[:100]!r}",
        }
    return result


def check_reference(problem: dict, sandbox, rel_tol: float = 1e-6) -> dict:
    """Sandbox result for a problem's own reference: code tests or math program vs answer.

    Raises ValueError for a record that cannot be checked (unknown domain, missing fields).
    """
    domain = problem.get("domain")
    if domain == "code":
        solution, tests = problem.get("reference_solution"), problem.get("tests")
        if not solution or not tests:
            raise ValueError("code problem without reference_solution or tests")
        return _run_with_retry(lambda: sandbox.run_tests(solution, tests))
    if domain == "math":
        program, answer = problem.get("program"), problem.get("answer")
        if not program or answer is None:
            raise ValueError("math problem without program or answer")
        result = _run_with_retry(lambda: sandbox.run_program(program))
        return _check_printed_answer(result, answer, rel_tol)
    raise ValueError(f"unknown domain {domain!r}")


def reference_decision(problem: dict, result: dict) -> tuple[dict, str | None, str]:
    """``(record, reason, detail)``: reason None keeps, SANDBOX_ERROR is an infra failure."""
    record = {**problem, "isolation_level": result["isolation_level"]}
    if result["verdict"] == records.PASS:
        return record, None, ""
    if result["verdict"] == records.INFRA_ERROR:
        return record, records.SANDBOX_ERROR, f"INFRA_ERROR: {result['detail']}"
    return record, records.REFERENCE_FAILED, f"{result['verdict']}: {result['detail']}"


def check_attempt(attempt: dict, sandbox, rel_tol: float = 1e-6) -> dict:
    """The attempt plus ``verdict``, ``verify_detail``, ``duration_s``, ``isolation_level``."""
    status = attempt.get("attempt_status")
    if status != "ok":
        return {
            **attempt,
            "verdict": NOT_RUN,
            "verify_detail": f"not run: {status}",
            "duration_s": None,
            "isolation_level": None,
            "judge_mode": None,
            "audit_flags": [],
        }
    domain = attempt.get("domain")
    if domain == "code":
        program, tests = attempt.get("attempt_program"), attempt.get("tests")
        call = (lambda: sandbox.run_tests(program, tests)) if program and tests else None
    elif domain == "math":
        return _judge_answer(attempt, rel_tol)
    else:
        raise ValueError(f"unknown domain {domain!r}")
    if call is None:
        return {
            **attempt,
            "verdict": NOT_RUN,
            "verify_detail": "not run: nothing to execute",
            "duration_s": None,
            "isolation_level": None,
            "judge_mode": None,
            "audit_flags": [],
        }
    result = _run_with_retry(call)
    return {
        **attempt,
        "verdict": result["verdict"],
        "verify_detail": result["detail"],
        "duration_s": result["duration_s"],
        "isolation_level": result["isolation_level"],
        "judge_mode": result.get("judge_mode"),
        "audit_flags": result.get("audit_flags", []),
    }


def _judge_answer(attempt: dict, rel_tol: float) -> dict:
    """A math attempt's final answer against the problem's verified answer (nothing runs)."""
    given, expected = attempt.get("attempt_answer"), attempt.get("answer")
    if answers_match(given, expected, rel_tol):
        verdict, detail = records.PASS, ""
    else:
        verdict = records.FAIL_ANSWER
        detail = f"answer {str(given)[:100]!r}, expected {str(expected)[:100]!r}"
    return {
        **attempt,
        "verdict": verdict,
        "verify_detail": detail,
        "duration_s": None,
        # Nothing runs: the answer it is compared with was verified by the reference run.
        "isolation_level": attempt.get("isolation_level"),
        "judge_mode": JUDGE_ANSWER,
        "audit_flags": [],
    }


# ------------------------------------------------------------------- selection (pure)


class Selection(NamedTuple):
    record: dict  # the problem record (kept fields added when reason is None)
    reason: str | None  # None = kept; NO_PASSING_ATTEMPT, ANSWER_DISAGREEMENT, SANDBOX_ERROR, ...
    detail: str
    attempt_rows: list[dict]


def _verdict_counts(attempts: list[dict], requested: int) -> str:
    counts = Counter(a["verdict"] for a in attempts)
    missing = requested - len(attempts)
    if missing > 0:
        counts["missing"] = missing
    parts = ", ".join(f"{verdict}={n}" for verdict, n in sorted(counts.items()))
    return f"0/{max(requested, len(attempts))} attempts passed: {parts}"


def _attempt_row(attempt: dict, chosen: bool, reason: str | None) -> dict:
    status = attempt.get("attempt_status")
    return {
        "schema_version": records.SCHEMA_VERSION,
        "problem_id": attempt["id"],
        "attempt": attempt.get("attempt"),
        "domain": attempt.get("domain"),
        "problem": attempt.get("statement"),
        "solution": attempt.get("solution"),
        "answer": attempt.get("attempt_answer"),
        "program": attempt.get("attempt_program"),
        "reasoning": attempt.get("reasoning"),
        "reasoning_tokens": attempt.get("reasoning_tokens"),
        "reasoning_complete": attempt.get("reasoning_complete"),
        "finish_reason": attempt.get("finish_reason"),
        "verdict": attempt["verdict"],
        "chosen": chosen,
        "reason": reason,
        "detail": str(
            (attempt.get("attempt_detail") if status != "ok" else attempt.get("verify_detail"))
            or ""
        ),
        "duration_s": attempt.get("duration_s"),
        "isolation_level": attempt.get("isolation_level"),
        "judge_mode": attempt.get("judge_mode"),
        "audit_flags": attempt.get("audit_flags") or [],
        "raw": attempt.get("attempt_raw") if status in RAW_STATUSES else None,
        "teacher_model": attempt.get("teacher_model"),
        "sampling": attempt.get("attempt_sampling"),
        "config_hash": attempt.get("config_hash"),
        "attempt_prompt_hash": attempt.get("attempt_prompt_hash"),
    }


def _final_answer(majority: str, reference: str) -> str | None:
    """The majority answer normalised; a decimal majority that matched an exact reference
    within tolerance ("2.3333333" vs "7/3") takes the reference's exact form."""
    number = _parse_number(majority)
    if number is not None and number[1]:
        reference_number = _parse_number(reference)
        if reference_number is not None and not reference_number[1]:
            return _canonical(reference_number[0])
    return normalize_answer(majority)


def errored_attempt(record: dict) -> dict:
    """An attempt that raised inside a stage still takes part in SelectAttempt, as a failure."""
    return {
        **record,
        "verdict": ERRORED,
        "verify_detail": record.get("detail", ""),
        "attempt_status": records.ERROR,
        "attempt_detail": record.get("detail", ""),
        "isolation_level": None,
        "judge_mode": None,
        "audit_flags": [],
    }


def select_attempt(
    attempts: list[dict], attempts_requested: int, rel_tol: float = 1e-6
) -> Selection:
    """Decide one problem from its verified attempts (see the module docstring)."""
    work = [dict(a) for a in sorted(attempts, key=lambda a: a.get("attempt", 0))]
    problem = {k: v for k, v in work[0].items() if k not in ATTEMPT_KEYS + DROP_KEYS}
    is_math = problem.get("domain") == "math"
    majority = None
    if is_math:
        judged = [a for a in work if a["verdict"] in (records.PASS, records.FAIL_ANSWER)]
        # The reference answer (its program already printed it) is one more vote: a tie
        # between it and a wrong answer that several attempts share goes to the reference.
        reference = problem.get("answer")
        votes = [a.get("attempt_answer") for a in judged] + [reference]
        voted = _majority(votes, rel_tol, prefer=reference) if judged else None
        majority = voted[0] if voted else None
    chosen, rate = choose_attempt(work, attempts_requested)
    reason, detail = None, ""
    if majority is not None and not answers_match(majority, problem.get("answer"), rel_tol):
        agreeing = sum(answers_match(a.get("attempt_answer"), majority, rel_tol) for a in work)
        reason = records.ANSWER_DISAGREEMENT
        detail = (
            f"majority answer {majority[:100]!r} ({agreeing} of {len(work)} attempts) != "
            f"reference answer {str(problem.get('answer'))[:100]!r}"
        )
        chosen = None
    elif chosen is None:
        broken = [a for a in work if a["verdict"] in (records.INFRA_ERROR, ERRORED)]
        unpaid = [a for a in work if a.get("attempt_status") == records.BUDGET_EXHAUSTED]
        if broken:
            first = broken[0]
            infra = first["verdict"] == records.INFRA_ERROR
            reason = records.SANDBOX_ERROR if infra else records.ERROR
            detail = f"{first['verdict']}: {first.get('verify_detail', '')}"
        elif unpaid:
            reason, detail = records.BUDGET_EXHAUSTED, unpaid[0].get("attempt_detail", "")
        else:
            reason, detail = records.NO_PASSING_ATTEMPT, _verdict_counts(work, attempts_requested)

    rows = []
    for a in work:
        if a is chosen:
            row_reason = None
        elif a["verdict"] == records.PASS:
            row_reason = reason or records.LOST
        elif a.get("attempt_status", "ok") != "ok":
            row_reason = a["attempt_status"]
        else:
            row_reason = FAILED
        rows.append(_attempt_row(a, a is chosen, row_reason))

    if reason is not None:
        return Selection(problem, reason, detail, rows)
    record = {
        **problem,
        "attempt": chosen["attempt"],
        "attempts": attempts_requested,
        "pass_rate": rate,
        "verdict": records.PASS,
        "solution": chosen.get("solution"),
        "reasoning": chosen.get("reasoning"),
        "reasoning_tokens": chosen.get("reasoning_tokens"),
        "attempt_prompt_hash": chosen.get("attempt_prompt_hash"),
        "attempt_sampling": chosen.get("attempt_sampling"),
        "isolation_level": chosen.get("isolation_level"),
        "judge_mode": chosen.get("judge_mode"),
        "audit_flags": chosen.get("audit_flags") or [],
        "answer": _final_answer(majority, problem.get("answer")) if is_math else None,
    }
    return Selection(record, None, "", rows)


# ------------------------------------------------------------------------------ Beam


class SelectOutputs(NamedTuple):
    kept: beam.PCollection
    dropped: beam.PCollection
    errors: beam.PCollection
    attempt_rows: beam.PCollection


class _Output(NamedTuple):
    tag: str
    value: dict
    counters: tuple[str, ...]
    duration_s: float | None = None


class _SandboxFn(ConcurrentDoFn):
    """Runs ``_check(element) -> _Output`` on ``verify.workers`` threads, one sandbox per worker."""

    def __init__(self, stage: str, limits: Limits, workers: int, rel_tol: float, require, factory):
        super().__init__(workers)
        self._stage = stage
        self._limits = limits
        self._require = require
        self._rel_tol = rel_tol
        self._factory = factory

    def setup(self):
        super().setup()
        self._sandbox = self._factory(self._limits, require=self._require)

    def teardown(self):
        super().teardown()
        sandbox = getattr(self, "_sandbox", None)
        if sandbox is not None:
            sandbox.close()

    def work(self, element):
        try:
            out = self._check(element)
        except Exception as exc:  # noqa: BLE001 - a bad record or a bug: errors output
            out = _Output(ERRORS, records.error(element, self._stage, exc), (records.ERROR,))
        return [(out.tag, out)]

    def on_result(self, tag, out: _Output):
        if out.duration_s is not None:
            beam.metrics.Metrics.distribution(self._stage, "sandbox_ms").update(
                int(out.duration_s * 1000)
            )
        for name in out.counters:
            records.counter(self._stage, name).inc()
        return out.value

    def _check(self, element) -> _Output:
        raise NotImplementedError


class _VerifyReferenceFn(_SandboxFn):
    def _check(self, problem):
        result = check_reference(problem, self._sandbox, self._rel_tol)
        record, reason, detail = reference_decision(problem, result)
        duration = result.get("duration_s")
        if reason is None:
            return _Output(KEPT, record, (KEPT,), duration)
        tag = ERRORS if reason == records.ERROR else DROPPED
        return _Output(tag, records.drop(record, self._stage, reason, detail), (reason,), duration)


class _VerifyAttemptFn(_SandboxFn):
    def _check(self, attempt):
        verified = check_attempt(attempt, self._sandbox, self._rel_tol)
        counters = (KEPT, verified["verdict"].lower())
        if verified["judge_mode"] == JUDGE_ANSWER:  # compared, not run: no sandbox check
            counters += (COMPARED,)
        return _Output(KEPT, verified, counters, verified["duration_s"])


def _sandbox_args(verify_cfg) -> tuple[Limits, int, float, str | None]:
    limits = Limits.from_config(verify_cfg)
    return limits, verify_cfg.workers, verify_cfg.math_rel_tol, verify_cfg.require_isolation


class VerifyReference(beam.PTransform):
    """Problems whose own reference passes in the sandbox; see the module docstring."""

    def __init__(self, verify_cfg, *, sandbox_factory=Sandbox):
        super().__init__()
        self._fn = _VerifyReferenceFn(REFERENCE, *_sandbox_args(verify_cfg), sandbox_factory)

    def expand(self, problems):
        return records.apply_stage(problems, "RunReferenceInSandbox", self._fn)


class VerifyAttempts(beam.PTransform):
    """Every attempt with its sandbox verdict (``dropped`` stays empty); see the docstring."""

    def __init__(self, verify_cfg, *, sandbox_factory=Sandbox):
        super().__init__()
        self._fn = _VerifyAttemptFn(VERIFY, *_sandbox_args(verify_cfg), sandbox_factory)

    def expand(self, attempts):
        return records.apply_stage(attempts, "RunAttemptsInSandbox", self._fn)


class _SelectFn(beam.DoFn):
    def __init__(self, attempts_requested: int, rel_tol: float):
        self._requested = attempts_requested
        self._rel_tol = rel_tol

    def process(self, keyed):
        problem_id, attempts = keyed
        try:
            selection = select_attempt(list(attempts), self._requested, self._rel_tol)
        except Exception as exc:  # noqa: BLE001 - routed to the errors output with its text
            records.counter(SELECT, records.ERROR).inc()
            first = next(iter(attempts), {"id": problem_id})
            problem = {k: v for k, v in first.items() if k not in ATTEMPT_KEYS + DROP_KEYS}
            yield beam.pvalue.TaggedOutput(ERRORS, records.error(problem, SELECT, exc))
            return
        for row in selection.attempt_rows:
            yield beam.pvalue.TaggedOutput(ATTEMPT_ROWS, row)
        reason = selection.reason
        records.counter(SELECT, reason or KEPT).inc()
        if reason is None:
            yield selection.record
            return
        tag = ERRORS if reason == records.ERROR else DROPPED
        yield beam.pvalue.TaggedOutput(
            tag, records.drop(selection.record, SELECT, reason, selection.detail)
        )


def _problem_key(attempt: dict) -> tuple[str, dict]:
    return attempt["id"], attempt


class SelectAttempt(beam.PTransform):
    """One record per problem from its verified attempts; returns ``SelectOutputs``."""

    def __init__(self, verify_cfg, attempts_requested: int):
        super().__init__()
        self._requested = attempts_requested
        self._rel_tol = verify_cfg.math_rel_tol

    def expand(self, attempts):
        tagged = (
            attempts
            | "KeyAttemptsByProblem" >> beam.Map(_problem_key)
            | "GroupAttemptsByProblem" >> beam.GroupByKey()
            | "SelectBestAttempt"
            >> records.dict_outputs(
                beam.ParDo(_SelectFn(self._requested, self._rel_tol)), DROPPED, ERRORS, ATTEMPT_ROWS
            )
        )
        return SelectOutputs(tagged[KEPT], tagged[DROPPED], tagged[ERRORS], tagged[ATTEMPT_ROWS])
