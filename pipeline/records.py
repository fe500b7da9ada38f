"""Record shapes, stage names and reason codes shared by every stage.

Records are plain dicts (cheap to pickle across Beam process boundaries). A stage returns
``StageOutputs(kept, dropped, errors)``: ``dropped`` records carry ``stage``, ``reason`` and
``detail``; ``errors`` records carry ``stage``, ``reason="error"`` and the exception text.
Reason codes are defined here once; Beam counters are named ``<stage>/<reason>``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

SCHEMA_VERSION = "2"  # 2: reasoning columns, free-form attempts

KEPT, DROPPED, ERRORS = "kept", "dropped", "errors"


@functools.cache
def counter(namespace: str, name: str):
    """Beam counter ``namespace/name``, built once: a counter object only delegates to the
    metrics container current at ``inc()``, and hot stages count several things per element."""
    return beam.metrics.Metrics.counter(namespace, name)


# Stages, in data-flow order.
GENERATE = "generate"
REFERENCE = "reference"
LANGUAGE = "language"
DEDUP = "dedup"
DECONTAM = "decontam"
ATTEMPTS = "attempts"
VERIFY = "verify"
SELECT = "select"
TOKENS = "tokens"

# Reason codes (problem level unless noted).
TEACHER_ERROR = "teacher_error"  # retries exhausted or a permanent API error
BUDGET_EXHAUSTED = "budget_exhausted"  # a teacher cap was reached before this request
TRUNCATED = "truncated"  # finish_reason == "length"
PARSE_ERROR = "parse_error"  # no JSON object in the answer
SCHEMA_INVALID = "schema_invalid"  # JSON that does not match schemas/*.schema.json
REFERENCE_FAILED = "reference_failed"  # reference solution fails its own tests / wrong answer
LANGUAGE_NOT_ALLOWED = "language_not_allowed"
LANGUAGE_LOW_CONFIDENCE = "language_low_confidence"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
DUPLICATE_OF_EXISTING = "duplicate_of_existing"  # matches a row of a dedup.against corpus
CONTAMINATED = "contaminated"
NO_PASSING_ATTEMPT = "no_passing_attempt"
ANSWER_DISAGREEMENT = "answer_disagreement"  # math: majority of attempts != reference answer
TOO_LONG = "too_long"  # more tokens than tokens.max_length
SANDBOX_ERROR = "sandbox_error"  # INFRA_ERROR again after a retry
ERROR = "error"  # an exception inside a stage (a bug or bad record), with its text
# Attempt-level reasons (rows in OUT/attempts/).
LOST = "lost"  # passed, but another attempt was chosen
# Free-form answers that give nothing to check (attempt level, pipeline.stages.answers).
NO_CODE_BLOCK = "no_code_block"  # no Python code block in the answer
NO_ENTRY_POINT = "no_entry_point"  # Python blocks, none defining the entry point
AMBIGUOUS_CODE = "ambiguous_code"  # several different blocks define it
NO_ANSWER = "no_answer"  # math: no \boxed{} (or "Final answer:") in the answer
ANSWER_REASONS = (NO_CODE_BLOCK, NO_ENTRY_POINT, AMBIGUOUS_CODE, NO_ANSWER)


# Sandbox verdicts.
PASS = "PASS"
FAIL_TESTS = "FAIL_TESTS"
FAIL_ANSWER = "FAIL_ANSWER"  # math: the program ran but its result differs from the answer
FAIL_TIMEOUT = "FAIL_TIMEOUT"
FAIL_MEMORY = "FAIL_MEMORY"
FAIL_CRASH = "FAIL_CRASH"
FAIL_NO_REPORT = "FAIL_NO_REPORT"
SUSPICIOUS = "SUSPICIOUS"  # passed, but only by a judge the candidate could have forged
INFRA_ERROR = "INFRA_ERROR"  # the sandbox itself failed: never a verdict on the candidate


class StageOutputs(NamedTuple):
    kept: beam.PCollection
    dropped: beam.PCollection
    errors: beam.PCollection


def drop(record: dict, stage: str, reason: str, detail: str = "", **extra: Any) -> dict:
    """A copy of ``record`` marked as dropped by ``stage`` for ``reason``."""
    return {**record, **extra, "stage": stage, "reason": reason, "detail": detail[:2000]}


def error(record: Any, stage: str, exc: BaseException) -> dict:
    base = record if isinstance(record, dict) else {"id": str(record)}
    return drop(base, stage, ERROR, f"{type(exc).__name__}: {exc}")


def stable_hash(value: Any) -> str:
    """SHA-256 hex of the canonical JSON form of ``value``."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def global_window_value(value: Any) -> WindowedValue:
    """Wrap ``value`` for output from ``finish_bundle`` (batch pipelines, global window)."""
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


def split_outputs(pcoll_with_tags) -> StageOutputs:
    return StageOutputs(pcoll_with_tags[KEPT], pcoll_with_tags[DROPPED], pcoll_with_tags[ERRORS])


class _RouteFn(beam.DoFn):
    """Applies ``decide(record) -> (record, reason, detail)`` and routes the result.

    ``reason`` None keeps the (possibly updated) record; otherwise it is dropped. An exception
    sends the input to ``errors``. Counters: ``<stage>/kept``, ``<stage>/<reason>``.
    """

    def __init__(self, stage: str, decide):
        self._stage = stage
        self._decide = decide

    def process(self, record):
        try:
            out, reason, detail = self._decide(record)
        except Exception as exc:  # noqa: BLE001 - routed to the errors output with its text
            counter(self._stage, ERROR).inc()
            yield beam.pvalue.TaggedOutput(ERRORS, error(record, self._stage, exc))
            return
        if reason is None:
            counter(self._stage, KEPT).inc()
            yield out
        else:
            counter(self._stage, reason).inc()
            yield beam.pvalue.TaggedOutput(DROPPED, drop(out, self._stage, reason, detail))


def apply_stage(pcoll, label: str, fn: beam.DoFn) -> StageOutputs:
    """``fn`` emits kept records on its main output and dropped / errors on tagged outputs."""
    return split_outputs(pcoll | label >> dict_outputs(beam.ParDo(fn), DROPPED, ERRORS))


def dict_outputs(transform, *tags: str, main: str = KEPT):
    """``transform.with_outputs(*tags, main=main)``, its main output declared as plain dicts:
    Beam 2.78 infers it from the yields as Union[TaggedOutput, dict], which no annotated
    consumer accepts."""
    return transform.with_output_types(dict).with_outputs(*tags, main=main)


def route(pcoll, label: str, stage: str, decide) -> StageOutputs:
    """Route every record of ``pcoll`` through ``decide`` into kept / dropped / errors."""
    return apply_stage(pcoll, label, _RouteFn(stage, decide))
