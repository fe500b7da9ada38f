"""What one worker process may still send: request / token rate limits, the 429 pause and the
hard caps (requests, tokens, cost). One ``WorkerGate`` per run and process (``worker_gate``)."""

from __future__ import annotations

import threading
import time

from pipeline.config import TeacherConfig

_MICRO = 1_000_000


def call_cost(cfg: TeacherConfig, prompt_tokens: int, completion_tokens: int) -> float:
    price = cfg.prices.get(cfg.model)
    if price is None:
        return 0.0
    return (prompt_tokens * price.prompt + completion_tokens * price.completion) / _MICRO


class WorkerGate:
    """What one worker process may still send: rate limits, the 429 pause, hard caps.

    Shared by every teacher client of a run in the process (see ``worker_gate``); each of
    ``teacher.workers`` processes gets 1/workers of every quota and cap. Token buckets refill
    continuously; tokens are charged when the answer arrives, so the token bucket may go
    negative and then holds back the next requests until it has refilled.
    """

    def __init__(self, cfg: TeacherConfig, clock=time.monotonic, sleep=time.sleep):
        share = 1.0 / cfg.workers
        self._cfg = cfg
        self._clock, self._sleep = clock, sleep
        self._request_rate = cfg.rpm * share / 60.0
        self._token_rate = cfg.tpm * share / 60.0
        self._max_requests = cfg.max_requests * share
        self._max_tokens = cfg.max_total_tokens * share
        self._max_cost = cfg.max_cost_usd * share
        self._lock = threading.Lock()
        self._requests_left = max(1.0, self._request_rate)  # one second of burst
        self._tokens_left = self._token_rate * 60.0 / 10.0  # six seconds of tokens
        self._refilled = clock()
        self._paused_until = 0.0
        self._answered = False  # some request of this run got an answer
        self._refusal, self._refusals = "", 0  # the first requests' refusal, while all alike
        self.requests = self.tokens = 0
        self.cost_usd = 0.0

    def _cap_reached(self) -> str:
        if self._max_requests and self.requests >= self._max_requests:
            return f"max_requests {self._cfg.max_requests} reached"
        if self._max_tokens and self.tokens >= self._max_tokens:
            return f"max_total_tokens {self._cfg.max_total_tokens} reached"
        if self._max_cost and self.cost_usd >= self._max_cost:
            return f"max_cost_usd {self._cfg.max_cost_usd} reached"
        return ""

    def _refill(self, now: float) -> None:
        elapsed, self._refilled = now - self._refilled, now
        if self._request_rate:
            cap = max(1.0, self._request_rate)
            self._requests_left = min(cap, self._requests_left + elapsed * self._request_rate)
        if self._token_rate:
            cap = self._token_rate * 6.0
            self._tokens_left = min(cap, self._tokens_left + elapsed * self._token_rate)

    def acquire(self) -> str:
        """Wait until a request may go; '' then, or the reason a cap stops all requests."""
        while True:
            with self._lock:
                cap = self._cap_reached()
                if cap:
                    return cap
                now = self._clock()
                self._refill(now)
                wait = self._paused_until - now
                if self._request_rate and self._requests_left < 1.0:
                    wait = max(wait, (1.0 - self._requests_left) / self._request_rate)
                if self._token_rate and self._tokens_left < 0.0:
                    wait = max(wait, -self._tokens_left / self._token_rate)
                if wait <= 0:
                    self._requests_left -= 1.0
                    self.requests += 1
                    return ""
            self._sleep(min(wait, 1.0))

    def charge(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Record an answer's tokens; returns its estimated cost in USD."""
        cost = call_cost(self._cfg, prompt_tokens, completion_tokens)
        with self._lock:
            self.tokens += prompt_tokens + completion_tokens
            self.cost_usd += cost
            self._tokens_left -= prompt_tokens + completion_tokens
        return cost

    def answered(self) -> None:
        self._answered = True

    def refused(self, refusal: str) -> int:
        """Count a permanent refusal; how many of the run's first requests were refused with
        this same one (0 once a request was answered or the refusals differ)."""
        with self._lock:
            if self._answered or (self._refusal and refusal != self._refusal):
                self._answered = True  # not a refusal of every request: stop counting
                return 0
            self._refusal, self._refusals = refusal, self._refusals + 1
            return self._refusals

    def pause(self, seconds: float) -> None:
        """Hold every request of this worker for ``seconds`` (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


_GATES: dict[str, WorkerGate] = {}
_GATES_LOCK = threading.Lock()


def worker_gate(cfg: TeacherConfig, run_id: str) -> WorkerGate:
    """The process-wide gate of run ``run_id`` (a new run starts with a fresh budget)."""
    with _GATES_LOCK:
        if run_id not in _GATES:
            _GATES[run_id] = WorkerGate(cfg)
        return _GATES[run_id]
