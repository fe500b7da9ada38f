"""Teacher calls through the OpenAI-compatible API: request -> TeacherResult, never an exception.

Failure classes:
- retryable (429, 408, 409, >= 500, timeouts, connection errors): retried with exponential
  backoff and jitter up to ``teacher.retries`` times; a ``Retry-After`` header is honoured;
- permanent (any other 4xx, malformed body): no retry, status ``teacher_error`` with the code;
- fatal (401 / 403: the key is wrong; 404: unknown model or wrong base URL — true of every
  request alike): ``TeacherFatalError`` aborts the run with one line.
An answer cut off by ``max_tokens`` comes back with status ``truncated``.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass

import apache_beam as beam
import openai

from pipeline.config import TeacherConfig
from pipeline.records import TEACHER_ERROR, TRUNCATED

BUILTIN = "builtin"
OK = "ok"
_RETRYABLE_STATUS = {408, 409, 429}


class TeacherFatalError(RuntimeError):
    """A teacher error that no retry and no other request can fix (bad key, unknown model)."""


@dataclass
class TeacherResult:
    status: str  # OK, TEACHER_ERROR or TRUNCATED
    content: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    rate_limited: int = 0
    detail: str = ""


def sampling_params(cfg: TeacherConfig, seed: int) -> dict:
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "seed": seed,
    }


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class TeacherClient:
    """One OpenAI client with synthgen's retry policy. Thread-safe; create it in ``setup()``."""

    def __init__(self, cfg: TeacherConfig, base_url: str, api_key: str, sleep=time.sleep):
        self._cfg = cfg
        self._api_key = api_key
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=cfg.timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int) -> float:
        delay = min(self._cfg.max_backoff_s, self._cfg.backoff_s * (2**attempt))
        return delay * random.uniform(0.5, 1.0)

    def complete(self, messages: list[dict], seed: int) -> TeacherResult:
        retries = rate_limited = 0
        while True:
            try:
                response = self._client.chat.completions.create(
                    model=self._cfg.model, messages=messages, **sampling_params(self._cfg, seed)
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (401, 403):
                    raise TeacherFatalError(
                        f"teacher rejected the API key (HTTP {status}); check the variable "
                        f"named by teacher.api_key_env ({self._cfg.api_key_env})"
                    ) from None
                if status == 404:
                    message = _scrub(exc.message, self._api_key)
                    raise TeacherFatalError(
                        f"teacher answered HTTP 404 (unknown teacher.model "
                        f"{self._cfg.model!r} or wrong teacher.base_url): {message}"
                    ) from None
                retryable = status in _RETRYABLE_STATUS or status >= 500
                rate_limited += status == 429
                if not retryable or retries >= self._cfg.retries:
                    detail = _scrub(f"HTTP {status}: {exc.message}", self._api_key)
                    return TeacherResult(
                        TEACHER_ERROR, retries=retries, rate_limited=rate_limited, detail=detail
                    )
                wait_s = _retry_after(exc)
                self._sleep(self._backoff(retries) if wait_s is None else wait_s)
                retries += 1
                continue
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if retries >= self._cfg.retries:
                    detail = _scrub(f"{type(exc).__name__}: {exc}", self._api_key)
                    return TeacherResult(
                        TEACHER_ERROR, retries=retries, rate_limited=rate_limited, detail=detail
                    )
                self._sleep(self._backoff(retries))
                retries += 1
                continue
            return self._result(response, retries, rate_limited)

    @staticmethod
    def _result(response, retries: int, rate_limited: int) -> TeacherResult:
        usage = getattr(response, "usage", None)
        choices = getattr(response, "choices", None) or []
        if not choices or choices[0].message is None:
            return TeacherResult(
                TEACHER_ERROR,
                retries=retries,
                rate_limited=rate_limited,
                detail="malformed response: no choices",
            )
        choice = choices[0]
        content = choice.message.content or ""
        status = TRUNCATED if choice.finish_reason == "length" else OK
        return TeacherResult(
            status,
            content=content,
            finish_reason=choice.finish_reason or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            retries=retries,
            rate_limited=rate_limited,
            detail="finish_reason=length" if status == TRUNCATED else "",
        )


def open_teacher(cfg: TeacherConfig, run_seed: int):
    """(client, server) for a worker: starts the built-in teacher in process when configured.

    The API key is read here, on the worker, from the variable that ``api_key_env`` names.
    """
    server = None
    base_url = cfg.base_url
    api_key = os.environ.get(cfg.api_key_env, "")
    if base_url == BUILTIN:
        from pipeline.teacher_server import TeacherServer

        server = TeacherServer(
            seed=run_seed,
            defect_scale=cfg.builtin_defect_scale,
            latency=cfg.builtin_latency,
            faults=cfg.builtin_faults,
        )
        base_url = server.start()
        api_key = "builtin"
    elif not api_key:
        raise TeacherFatalError(
            f"environment variable {cfg.api_key_env} (teacher.api_key_env) is not set on the worker"
        )
    return TeacherClient(cfg, base_url, api_key), server


def count_usage(namespace: str, result: TeacherResult) -> None:
    """Beam counters for one teacher call; call from the DoFn's own thread, not a pool thread."""
    counter = beam.metrics.Metrics.counter
    counter(namespace, "requests").inc(1 + result.retries)
    counter(namespace, "prompt_tokens").inc(result.prompt_tokens)
    counter(namespace, "completion_tokens").inc(result.completion_tokens)
    counter(namespace, "retries").inc(result.retries)
    counter(namespace, "http_429").inc(result.rate_limited)
    if result.status != OK:
        counter(namespace, result.status).inc()


def sampling_json(cfg: TeacherConfig, seed: int) -> str:
    return json.dumps(sampling_params(cfg, seed), sort_keys=True)
