"""Generation: seeds -> teacher-written problems -> k solution attempts per problem.

- ``make_seeds(cfg)``: one seed per domain x topic x difficulty x ``run.problems_per_combo``, or
  the lines of ``run.seeds_file``; ids are stable strings, so "smallest id wins" is meaningful.
- ``GenerateProblems``: seed -> problem record (kept) | dropped (``teacher_error``,
  ``truncated``, ``parse_error``, ``schema_invalid``; raw text kept) | errors.
- ``GenerateAttempts``: problem -> one attempt element per attempt index. The attempt is the
  teacher's free-form answer (``pipeline.stages.answers``): ``solution`` is its visible text as
  written, ``attempt_program`` the code block to test (code), ``attempt_answer`` the last
  ``\\boxed{}`` (math); ``reasoning``, ``reasoning_tokens``, ``reasoning_complete`` and
  ``finish_reason`` come from the teacher client. A failed attempt is not dropped here: it
  carries ``attempt_status`` (the client's status, or ``no_code_block`` / ``no_entry_point`` /
  ``ambiguous_code`` / ``no_answer``) and is judged with the others in ``SelectAttempt``.

Templates come from ``pipeline.prompts.resolve_prompts`` on the launching machine and travel
inside the DoFns; problem requests carry ``teacher.response_format`` when it is set.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path

import apache_beam as beam
import xxhash

from pipeline import records
from pipeline.config import Config
from pipeline.prompts import ATTEMPT_TEMPLATES, PROBLEM_TEMPLATES, Template, resolve_prompts
from pipeline.schemas import load_schema, schema_errors
from pipeline.stages.answers import final_answer, solution_code
from pipeline.stages.concurrent import ConcurrentDoFn
from pipeline.teacher.client import (
    OK,
    TeacherFatalError,
    count_usage,
    open_teacher,
    sampling_json,
)

log = logging.getLogger("synthgen")
_JSON_FENCE = re.compile(r"```json\s*(.*?)```", re.DOTALL)
_MAX_STARTS = 32


class ParseError(ValueError):
    pass


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def seed_id(domain: str, topic: str, difficulty: str, index: int) -> str:
    return f"{domain}-{slug(topic)}-{slug(difficulty)}-{index:05d}"


def request_seed(run_seed: int, record_id: str, attempt: int = -1) -> int:
    """The OpenAI ``seed`` parameter of one request: stable per run seed, record and attempt."""
    return xxhash.xxh32_intdigest(f"{run_seed}/{record_id}/{attempt}".encode()) & 0x7FFFFFFF


def make_seeds(cfg: Config) -> list[dict]:
    if cfg.run.seeds_file:
        return _seeds_from_file(Path(cfg.run.seeds_file), cfg)
    seeds = []
    for domain in cfg.generation.domains:
        for topic in cfg.generation.topics[domain]:
            for difficulty in cfg.generation.difficulties:
                for index in range(cfg.run.problems_per_combo):
                    seeds.append(_seed(domain, topic, difficulty, index))
    return seeds


def _seed(domain, topic, difficulty, index, record_id=None) -> dict:
    return {
        "id": record_id or seed_id(domain, topic, difficulty, index),
        "domain": domain,
        "topic": topic,
        "difficulty": difficulty,
        "index": index,
    }


def _seeds_from_file(path: Path, cfg: Config) -> list[dict]:
    """Seeds from JSONL: ``{"domain", "topic", "difficulty"[, "id"]}`` per line."""
    seeds, counts, ids = [], {}, set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            domain, topic, difficulty = item["domain"], item["topic"], item["difficulty"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a seed object ({exc})") from None
        fields = [domain, topic, difficulty] + ([item["id"]] if "id" in item else [])
        if not all(isinstance(v, str) and v for v in fields):
            raise ValueError(f"{path}:{number}: domain, topic, difficulty and id must be text")
        if domain not in cfg.generation.domains:
            raise ValueError(f"{path}:{number}: domain {domain!r} is not in generation.domains")
        key = (domain, topic, difficulty)
        index = counts.get(key, 0)
        counts[key] = index + 1
        seed = _seed(domain, topic, difficulty, index, item.get("id"))
        if seed["id"] in ids:
            raise ValueError(f"{path}:{number}: duplicate seed id {seed['id']!r}")
        ids.add(seed["id"])
        seeds.append(seed)
    return seeds


def parse_json_answer(text: str, fields: frozenset = frozenset()) -> dict:
    """The JSON object in a teacher answer: the whole text, a ```json fence, or the first
    object that decodes from one of the first ``_MAX_STARTS`` opening braces (models wrap JSON
    in prose, and a JSON string may itself hold a fenced code block). With ``fields``, only an
    object holding at least one of them counts, so a fragment of a broken answer is not taken
    for the answer."""

    def wanted(value) -> bool:
        return isinstance(value, dict) and (not fields or bool(fields & value.keys()))

    for candidate in [text.strip(), *(m.group(1) for m in _JSON_FENCE.finditer(text))]:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if wanted(value):
            return value
    decoder = json.JSONDecoder()
    first_error = None
    starts = [i for i, ch in enumerate(text) if ch == "{"][:_MAX_STARTS]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            first_error = first_error or exc
            continue
        if wanted(value):
            return value
    if first_error is None:
        raise ParseError("no JSON object in the answer")
    raise ParseError(f"invalid JSON: {first_error.msg} at char {first_error.pos}")


def parse_answer(text: str, schema: str) -> tuple[dict | None, str | None, str]:
    """(fields, reason, detail): fields when ``text`` holds a JSON object matching ``schema``."""
    props = frozenset(load_schema(schema)["properties"])
    try:
        value = parse_json_answer(text, props)
    except ParseError as exc:
        return None, records.PARSE_ERROR, str(exc)
    # Teachers add bookkeeping fields of their own; only the schema's fields are used.
    fields = {k: v for k, v in value.items() if k in props}
    problem = schema_errors(schema, fields)
    if problem:
        return None, records.SCHEMA_INVALID, problem
    return fields, None, ""


def _builtin() -> dict[str, Template]:
    return resolve_prompts(Config())


def problem_messages(seed: dict, templates: dict[str, Template] | None = None) -> list[dict]:
    template = (templates or _builtin())[PROBLEM_TEMPLATES[seed["domain"]]]
    text = template.render(topic=seed["topic"], difficulty=seed["difficulty"], index=seed["index"])
    return [{"role": "user", "content": text}]


def attempt_messages(problem: dict, templates: dict[str, Template] | None = None) -> list[dict]:
    template = (templates or _builtin())[ATTEMPT_TEMPLATES[problem["domain"]]]
    if problem["domain"] == "code":
        text = template.render(statement=problem["statement"], entry_point=problem["entry_point"])
    else:
        text = template.render(statement=problem["statement"])
    return [{"role": "user", "content": text}]


def _strict_schema(schema: dict) -> dict:
    """A problem schema as structured-output endpoints take it: types, required, no extras
    (OpenAI's strict mode refuses length and pattern keywords; the answer is validated against
    the full schema afterwards anyway)."""
    properties = {k: {"type": v["type"]} for k, v in schema["properties"].items()}
    return {
        "type": "object",
        "properties": properties,
        "required": schema["required"],
        "additionalProperties": False,
    }


def response_format(kind: str, domain: str) -> dict | None:
    """The ``response_format`` of a problem request for ``teacher.response_format``."""
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = f"{domain}_problem"
        spec = {"name": name, "schema": _strict_schema(load_schema(name)), "strict": True}
        return {"type": "json_schema", "json_schema": spec}
    return None


class _TeacherFn(ConcurrentDoFn):
    """Shared plumbing: a teacher client per worker, usage counters per stage, and a progress
    line on the ``synthgen`` logger every ``teacher.progress_s`` seconds while calls run."""

    stage = ""

    def __init__(self, cfg: Config, run_id: str, expected: int):
        super().__init__(cfg.teacher.concurrency)
        self._cfg = cfg
        self._config_hash = cfg.config_hash()  # once, not per request
        self._run_id = run_id
        self._expected = expected
        self._templates = resolve_prompts(cfg)  # read here, on the launcher; pickled along

    def setup(self):
        super().setup()
        self._client, self._server = open_teacher(
            self._cfg.teacher, self._cfg.run.seed, self._run_id
        )
        self._done, self._started = 0, time.monotonic()
        self._stopped = threading.Event()
        threading.Thread(target=self._report_progress, daemon=True).start()

    def teardown(self):
        super().teardown()
        self._stopped.set()
        if getattr(self, "_client", None) is not None:
            self._client.close()
        if getattr(self, "_server", None) is not None:
            self._server.stop()

    def _report_progress(self):
        while not self._stopped.wait(self._cfg.teacher.progress_s):
            if self.pending:
                log.info(self.progress_line())

    def progress_line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self._done / elapsed
        eta = (self._expected - self._done) / rate if rate else float("inf")
        gate = self._client.gate
        in_flight = min(self.pending, self.threads)
        return (
            f"teacher {self.stage}: {self._done} done of <= {self._expected}, "
            f"{in_flight} in flight, {rate:.1f}/s, {gate.tokens} tokens, "
            f"${gate.cost_usd:.4f}, ETA {eta:.0f} s"
        )

    def work(self, element):
        try:
            return [self.generate(element)]
        except TeacherFatalError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad record goes to the errors output
            return [(records.ERRORS, records.error(element, self.stage, exc))]

    def generate(self, element) -> tuple[str, dict]:
        raise NotImplementedError

    @staticmethod
    def counter_name(tag: str, value: dict) -> str:
        return value["reason"] if tag in (records.DROPPED, records.ERRORS) else tag

    def on_result(self, tag, value):
        self._done += 1
        result = value.pop("_usage", None)
        if result is not None:
            count_usage(f"teacher.{self.stage}", result)
        records.counter(self.stage, self.counter_name(tag, value)).inc()
        return value


class _ProblemFn(_TeacherFn):
    stage = records.GENERATE

    def generate(self, seed):
        cfg = self._cfg
        template = self._templates[PROBLEM_TEMPLATES[seed["domain"]]]
        req_seed = request_seed(cfg.run.seed, seed["id"])
        messages = problem_messages(seed, self._templates)
        form = response_format(cfg.teacher.response_format, seed["domain"])
        result = self._client.complete(messages, req_seed, form)
        record = {
            **seed,
            "teacher_model": cfg.teacher.model,
            "sampling": sampling_json(cfg.teacher, req_seed),
            "problem_prompt_hash": template.hash,
            "config_hash": self._config_hash,
            "_usage": result,
        }
        if result.status != OK:
            raw = result.content or result.raw_content or None
            return records.DROPPED, records.drop(
                record, self.stage, result.status, result.detail, raw=raw
            )
        fields, reason, detail = parse_answer(result.content, f"{seed['domain']}_problem")
        if reason:
            return records.DROPPED, records.drop(
                record, self.stage, reason, detail, raw=result.content
            )
        return records.KEPT, {**record, **fields}


class GenerateProblems(beam.PTransform):
    def __init__(self, cfg: Config, run_id: str, expected: int):
        super().__init__()
        self._fn = _ProblemFn(cfg, run_id, expected)

    def expand(self, seeds):
        return records.apply_stage(seeds, "AskTeacherForProblems", self._fn)


def attempt_requests(problem: dict, attempts: int):
    for attempt in range(attempts):
        yield {**problem, "attempt": attempt}


class _AttemptFn(_TeacherFn):
    stage = records.ATTEMPTS

    def generate(self, element):
        cfg = self._cfg
        template = self._templates[ATTEMPT_TEMPLATES[element["domain"]]]
        req_seed = request_seed(cfg.run.seed, element["id"], element["attempt"])
        result = self._client.complete(attempt_messages(element, self._templates), req_seed)
        out = {
            **element,
            "attempt_prompt_hash": template.hash,
            "attempt_sampling": sampling_json(cfg.teacher, req_seed),
            "attempt_raw": result.content,
            "attempt_status": result.status,
            "attempt_detail": result.detail,
            "solution": None,
            "attempt_answer": None,
            "attempt_program": None,
            "reasoning": result.reasoning,
            "reasoning_tokens": result.reasoning_tokens,
            "reasoning_complete": result.reasoning_complete,
            "finish_reason": result.finish_reason or None,
            "_usage": result,
        }
        if result.status == OK:
            out.update(parse_attempt(element, result.content))
        return records.KEPT, out

    @staticmethod
    def counter_name(tag, value):
        return value["attempt_status"] if tag == records.KEPT else value["reason"]


def parse_attempt(problem: dict, answer: str) -> dict:
    """The fields a free-form answer gives an attempt: what to check, or why nothing can be."""
    if problem["domain"] == "code":
        found, reason, detail = solution_code(answer, problem["entry_point"])
        fields = {"attempt_program": found}
    else:
        found, reason, detail = final_answer(answer)
        fields = {"attempt_answer": found}
    if reason:
        return {"attempt_status": reason, "attempt_detail": detail}
    return {**fields, "solution": answer}


class GenerateAttempts(beam.PTransform):
    """problem -> ``generation.attempts`` attempt elements (kept) | errors."""

    def __init__(self, cfg: Config, run_id: str, expected: int):
        super().__init__()
        self._attempts = cfg.generation.attempts
        self._fn = _AttemptFn(cfg, run_id, expected)

    def expand(self, problems):
        requests = (
            problems
            | "FanOutAttempts" >> beam.FlatMap(attempt_requests, self._attempts)
            | "SpreadAttempts" >> beam.Reshuffle()
        )
        return records.apply_stage(requests, "AskTeacherForAttempts", self._fn)
