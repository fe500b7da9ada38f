"""Teacher calls through the OpenAI-compatible API: request -> TeacherResult, never an exception.

Failure classes:
- retryable (429, 408, 409, >= 500, timeouts, connection errors, a stream that breaks off or
  reports an error): retried with exponential backoff and jitter up to ``teacher.retries``
  times; a 429's ``Retry-After`` pauses every request of the worker (``WorkerGate.pause``);
- permanent (any other 4xx, a content filter, a malformed body): no retry, ``teacher_error``
  with the status and the server's message;
- fatal (401 / 403: the key is wrong; 404: unknown model or wrong base URL; the first
  ``teacher.fail_fast`` requests of the run all refused with the same 4xx, e.g. an unsupported
  parameter): ``TeacherFatalError`` aborts the run with one line quoting the server.
An answer cut off by the token limit comes back with status ``truncated``; it is never
retried (the same cap would cut it again) and is cached (``cache_truncated``) so that a
re-run at the same cap does not pay for it twice.

The request: ``request_params`` — the token limit under ``teacher.token_limit_param``,
``temperature`` / ``top_p`` unless null, ``reasoning_effort``, ``response_format`` (problem
requests), then ``teacher.extra_body`` as it is. With ``teacher.stream`` the answer arrives as
server-sent events (``stream_options.include_usage`` for the usage); thinking and answer
deltas are assembled from whichever field carries them, and the result is the same as a
non-streamed call's. The thinking is split from the answer (``pipeline.teacher.reasoning``):
``content`` is the visible answer, ``reasoning`` the trace.

Never paying twice: every request is looked up first in the content-addressed
``ResponseCache`` (``pipeline.teacher.cache``); the key leaves out the token limit and
whether the call streamed, so a streamed and a plain request share an entry. Never
overspending: the ``WorkerGate`` of the worker process holds the rate limits and the hard
caps; once a cap is reached no request is sent and the result is ``budget_exhausted``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass

import openai

from pipeline.config import TeacherConfig
from pipeline.records import BUDGET_EXHAUSTED, TEACHER_ERROR, TRUNCATED, counter
from pipeline.teacher.cache import (
    ResponseCache,
    base_url_family,
    default_cache_dir,
    entry_from_result,
    request_key,
)
from pipeline.teacher.limits import WorkerGate, worker_gate
from pipeline.teacher.reasoning import FIELDS, field_reasoning, split

BUILTIN = "builtin"
OK = "ok"
_RETRYABLE_STATUS = {408, 409, 429}
_MICRO = 1_000_000
log = logging.getLogger("synthgen")


class TeacherFatalError(RuntimeError):
    """A teacher error that no retry and no other request can fix (bad key, unknown model)."""


@dataclass
class TeacherResult:
    status: str  # OK, TEACHER_ERROR, TRUNCATED or BUDGET_EXHAUSTED
    content: str = ""  # the visible answer: thinking removed, outer whitespace stripped
    reasoning: str | None = None  # the thinking trace, when the teacher returned one
    reasoning_tokens: int | None = None  # from usage, when the server reports it
    reasoning_complete: bool | None = None  # False: cut before the thinking ended
    raw_content: str = ""  # the message content as the server sent it
    raw_reasoning: str = ""  # the message's reasoning field as the server sent it
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP requests sent for this call (0 when cached or refused)
    retries: int = 0
    rate_limited: int = 0
    cached: bool = False
    cost_usd: float = 0.0
    detail: str = ""


def request_params(cfg: TeacherConfig, seed: int, response_format: dict | None = None) -> dict:
    """Every field of a request but the model and the messages."""
    params = {"seed": seed, cfg.token_limit_param: cfg.max_tokens}
    if cfg.temperature is not None:
        params["temperature"] = cfg.temperature
    if cfg.top_p is not None:
        params["top_p"] = cfg.top_p
    if cfg.reasoning_effort:
        params["reasoning_effort"] = cfg.reasoning_effort
    if response_format:
        params["response_format"] = response_format
    return {**params, **cfg.extra_body}


def sampling_params(cfg: TeacherConfig, seed: int) -> dict:
    """The request fields recorded as a row's lineage (the response format is in the config)."""
    return request_params(cfg, seed)


def sampling_json(cfg: TeacherConfig, seed: int) -> str:
    return json.dumps(sampling_params(cfg, seed), sort_keys=True)


def server_message(exc: openai.APIStatusError) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": …}}``)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner.get("message"), str):
            return inner["message"]
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class TeacherClient:
    """One OpenAI client with synthgen's retry policy, cache and gate. Thread-safe; create it
    in ``setup()``."""

    def __init__(
        self,
        cfg: TeacherConfig,
        base_url: str,
        api_key: str,
        *,
        gate: WorkerGate | None = None,
        cache: ResponseCache | None = None,
        family: str | None = None,
        sleep=time.sleep,
    ):
        self._cfg = cfg
        self._api_key = api_key
        self._sleep = sleep
        self.gate = gate or WorkerGate(cfg, sleep=sleep)
        self._cache = cache
        self._family = family or base_url_family(base_url)
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=cfg.timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int) -> float:
        delay = min(self._cfg.max_backoff_s, self._cfg.backoff_s * (2**attempt))
        return delay * random.uniform(0.5, 1.0)

    def complete(
        self, messages: list[dict], seed: int, response_format: dict | None = None
    ) -> TeacherResult:
        if self._cfg.system_prompt:
            messages = [{"role": "system", "content": self._cfg.system_prompt}, *messages]
        params = request_params(self._cfg, seed, response_format)
        if self._cache is None:
            return self._send(messages, params)
        key = request_key(self._family, self._cfg.model, messages, params)
        entry = self._cache.get(key, self._cfg.max_tokens)
        if entry is not None:
            return _split(
                TeacherResult(
                    TRUNCATED if entry["finish_reason"] == "length" else OK,
                    raw_content=entry["content"],
                    raw_reasoning=entry.get("reasoning", ""),
                    reasoning_tokens=entry.get("reasoning_tokens"),
                    finish_reason=entry["finish_reason"],
                    prompt_tokens=entry["prompt_tokens"],
                    completion_tokens=entry["completion_tokens"],
                    cached=True,
                )
            )
        result = self._send(messages, params)
        if result.status in (OK, TRUNCATED) and result.requests:
            entry = entry_from_result(
                result,
                model=self._cfg.model,
                max_tokens=self._cfg.max_tokens,
                allow_truncated=self._cfg.cache_truncated,
            )
            self._cache.put(key, entry)
        return result

    def _post(self, body: dict) -> dict:
        """One request; the answer as a ``chat.completion`` body, streamed or not."""
        # The client's own HTTP stack (auth, errors, timeouts) without its typed request
        # transform and response models: they cost more CPU per request than everything else
        # here, and a worker sends hundreds of requests a second.
        if not self._cfg.stream:
            return self._client.post("/chat/completions", body=body, cast_to=dict)
        events = self._client.post(
            "/chat/completions",
            body={**body, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=object,
            stream=True,
            stream_cls=openai.Stream[object],
        )
        return assemble(events)

    def _send(self, messages: list[dict], params: dict) -> TeacherResult:
        result = TeacherResult(OK)
        body = {"model": self._cfg.model, "messages": messages, **params}
        while True:
            refused = self.gate.acquire()
            if refused:
                result.status, result.detail = BUDGET_EXHAUSTED, refused
                return result
            result.requests += 1
            try:
                response = self._post(body)
            except openai.APIStatusError as exc:
                status = exc.status_code
                self._raise_if_fatal(status, exc)
                retryable = status in _RETRYABLE_STATUS or status >= 500
                if not retryable:
                    self._fail_fast(status, exc)
                wait_s = _retry_after(exc)
                wait_s = self._backoff(result.retries) if wait_s is None else wait_s
                if status == 429:
                    result.rate_limited += 1
                    self.gate.pause(wait_s)  # the whole worker backs off, not one request
                if not retryable or result.retries >= self._cfg.retries:
                    result.status = TEACHER_ERROR
                    detail = f"HTTP {status}: {server_message(exc)}"
                    result.detail = _scrub(detail, self._api_key)
                    return result
                if status != 429:
                    self._sleep(wait_s)
                result.retries += 1
                continue
            except (openai.APIResponseValidationError, ValueError) as exc:
                result.status = TEACHER_ERROR
                result.detail = f"malformed response body: {type(exc).__name__}"
                return result
            except (openai.APITimeoutError, openai.APIConnectionError, StreamBroken) as exc:
                if result.retries >= self._cfg.retries:
                    result.status = TEACHER_ERROR
                    result.detail = _scrub(f"{type(exc).__name__}: {exc}", self._api_key)
                    return result
                self._sleep(self._backoff(result.retries))
                result.retries += 1
                continue
            except openai.APIError as exc:  # an error event inside a stream: the server failed
                if result.retries >= self._cfg.retries:
                    result.status = TEACHER_ERROR
                    detail = f"stream error: {exc.message}"
                    result.detail = _scrub(detail, self._api_key)
                    return result
                self._sleep(self._backoff(result.retries))
                result.retries += 1
                continue
            self.gate.answered()
            return _split(self._read(response, result))

    def _fail_fast(self, status: int, exc: openai.APIStatusError) -> None:
        """Stop the run when its first requests are all refused alike (see the docstring)."""
        message = _scrub(server_message(exc), self._api_key)
        alike = self.gate.refused(f"{status} {re.sub(r'[0-9]+', 'N', message)}")
        if self._cfg.fail_fast and alike >= self._cfg.fail_fast:
            raise TeacherFatalError(
                f"the teacher refused the first {alike} requests with HTTP {status}: {message}"
            ) from None

    def _raise_if_fatal(self, status: int, exc: openai.APIStatusError) -> None:
        if status in (401, 403):
            raise TeacherFatalError(
                f"teacher rejected the API key (HTTP {status}); check the variable "
                f"named by teacher.api_key_env ({self._cfg.api_key_env})"
            ) from None
        if status == 404:
            message = _scrub(exc.message, self._api_key)
            raise TeacherFatalError(
                f"teacher answered HTTP 404 (unknown teacher.model {self._cfg.model!r} or "
                f"wrong teacher.base_url): {message}"
            ) from None

    def _read(self, body: dict, result: TeacherResult) -> TeacherResult:
        try:
            usage = body.get("usage") or {}
            choice = (body.get("choices") or [None])[0]
            message = choice["message"]
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            result.status, result.detail = TEACHER_ERROR, "malformed response body"
            return result
        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        result.completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        if isinstance(details.get("reasoning_tokens"), int):
            result.reasoning_tokens = details["reasoning_tokens"]
        result.cost_usd = self.gate.charge(result.prompt_tokens, result.completion_tokens)
        result.raw_content = message.get("content") or ""
        result.raw_reasoning = field_reasoning(message)
        result.finish_reason = choice.get("finish_reason") or ""
        if result.finish_reason == "length":
            result.status = TRUNCATED
        elif result.finish_reason == "content_filter":
            result.status, result.detail = TEACHER_ERROR, "finish_reason=content_filter"
        return result


class StreamBroken(Exception):
    """A stream that ended without a finish_reason: the answer is incomplete; retried."""


def assemble(events) -> dict:
    """A ``chat.completion`` body from the ``chat.completion.chunk`` events of a stream."""
    content: list[str] = []
    thinking: dict[str, list[str]] = {}
    finish, usage = None, None
    with events:
        for chunk in events:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    content.append(delta["content"])
                for name in FIELDS:
                    if delta.get(name):
                        thinking.setdefault(name, []).append(delta[name])
                finish = choice.get("finish_reason") or finish
    if finish is None:
        raise StreamBroken("the stream ended without a finish_reason")
    message = {"content": "".join(content), **{k: "".join(v) for k, v in thinking.items()}}
    return {"choices": [{"message": message, "finish_reason": finish}], "usage": usage or {}}


def _split(result: TeacherResult) -> TeacherResult:
    """Fill ``content`` and ``reasoning`` from what the server sent (``reasoning.split``)."""
    answer, reasoning, complete = split(
        result.raw_content, result.raw_reasoning, result.finish_reason
    )
    result.content, result.reasoning, result.reasoning_complete = answer, reasoning, complete
    if result.status == TRUNCATED:  # the same detail whether the answer came cached or not
        where = " inside the thinking" if complete is False else ""
        result.detail = f"finish_reason=length{where}"
    return result


def open_teacher(cfg: TeacherConfig, run_seed: int, run_id: str):
    """(client, server) for a worker: starts the built-in teacher in process when configured.

    The API key is read here, on the worker, from the variable that ``api_key_env`` names; it
    is held by the client only (never in the cache, the gate, a log line or a record).
    """
    server = None
    base_url = cfg.base_url
    api_key = os.environ.get(cfg.api_key_env, "")
    if base_url == BUILTIN:
        from pipeline.teacher.builtin.server import TeacherServer

        server = TeacherServer(
            seed=run_seed,
            defect_scale=cfg.builtin_defect_scale,
            latency=cfg.builtin_latency,
            faults=cfg.builtin_faults,
            style=cfg.builtin_style,
            provider=cfg.builtin_provider,
        )
        base_url = server.start()
        api_key = "builtin"
    elif not api_key:
        raise TeacherFatalError(
            f"environment variable {cfg.api_key_env} (teacher.api_key_env) is not set on the worker"
        )
    cache = ResponseCache(cfg.cache_dir or default_cache_dir(), mode=cfg.cache_mode)
    family = BUILTIN if cfg.base_url == BUILTIN else None
    client = TeacherClient(
        cfg, base_url, api_key, gate=worker_gate(cfg, run_id), cache=cache, family=family
    )
    return client, server


def count_usage(namespace: str, result: TeacherResult) -> None:
    """Beam counters for one teacher call; call from the DoFn's own thread, not a pool thread."""
    counter(namespace, "requests").inc(result.requests)
    counter(namespace, "cache_hits" if result.cached else "cache_misses").inc()
    # Tokens of billed calls; a cached answer's tokens are counted apart (what it would cost
    # uncached, for planning from a re-run pilot).
    prefix = "cached_" if result.cached else ""
    counter(namespace, f"{prefix}prompt_tokens").inc(result.prompt_tokens)
    counter(namespace, f"{prefix}completion_tokens").inc(result.completion_tokens)
    counter(namespace, "cost_micro_usd").inc(round(result.cost_usd * _MICRO))
    counter(namespace, "retries").inc(result.retries)
    counter(namespace, "http_429").inc(result.rate_limited)
    if result.status != OK:
        counter(namespace, result.status).inc()
