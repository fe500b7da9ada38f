"""The built-in teacher's simulated latency and faults: spec strings -> ``Latency`` / ``Faults``.

``latency``: ``none`` | ``fixed:S`` | ``lognormal:median=S,p99=S`` (samples capped at 10 x p99).
``faults``: a comma list of probabilities (429, 500, 502, 503, timeout) and settings
(``retry_after``, ``timeout_s``, ``fail_after``), e.g. ``429=0.1,500=0.05,retry_after=1``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

ERROR_STATUSES = ("429", "500", "502", "503")
_FAULT_KEYS = (*ERROR_STATUSES, "timeout")
_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


@dataclass(frozen=True)
class Latency:
    kind: str = "none"  # none | fixed | lognormal
    value: float = 0.0  # fixed seconds, or the lognormal median
    p99: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.value
        if self.kind == "lognormal":
            sigma = math.log(self.p99 / self.value) / _Z99
            return min(rng.lognormvariate(math.log(self.value), sigma), 10 * self.p99)
        return 0.0


def parse_latency(spec: str | None) -> Latency:
    """``none`` | ``fixed:0.2`` | ``lognormal:median=0.2,p99=2.0``; ValueError otherwise."""
    text = (spec or "none").strip()
    usage = "expected none, fixed:SECONDS or lognormal:median=SECONDS,p99=SECONDS"
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "none" and not rest:
            return Latency()
        if kind == "fixed":
            value = float(rest)
            if value >= 0 and math.isfinite(value):
                return Latency("fixed", value)
        elif kind == "lognormal":
            pairs = dict(key_values(rest))
            if set(pairs) == {"median", "p99"}:
                median, p99 = float(pairs["median"]), float(pairs["p99"])
                if 0 < median <= p99 and math.isfinite(p99):
                    return Latency("lognormal", median, p99)
    except ValueError:
        pass
    raise ValueError(f"bad latency spec {spec!r}: {usage}")


@dataclass(frozen=True)
class Faults:
    rates: tuple[tuple[str, float], ...] = ()  # ("429", 0.1), ("timeout", 0.02), ...
    retry_after: float = 1.0
    timeout_s: float = 30.0
    fail_after: int = 0  # > 0: every chat request after this many answers 400 (a dead teacher)

    def draw(self, rng: random.Random) -> str | None:
        u = rng.random()
        for name, p in self.rates:
            u -= p
            if u < 0:
                return name
        return None


def parse_faults(spec: str | None) -> Faults:
    """Comma list like ``429=0.1,500=0.05,timeout=0.02,retry_after=1,timeout_s=30``."""
    usage = f"keys are {', '.join(_FAULT_KEYS)} (probabilities), retry_after, timeout_s, fail_after"
    rates: dict[str, float] = {}
    retry_after, timeout_s, fail_after = 1.0, 30.0, 0
    try:
        pairs = key_values(spec or "")
    except ValueError as exc:
        raise ValueError(f"bad faults spec {spec!r}: {exc}; {usage}") from None
    for key, raw in pairs:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"bad faults spec {spec!r}: {key}={raw!r} is not a number") from None
        if key in _FAULT_KEYS and 0 <= value <= 1:
            rates[key] = value
        elif key == "retry_after" and 0 <= value <= 3600:
            retry_after = value
        elif key == "timeout_s" and 0 < value <= 3600:
            timeout_s = value
        elif key == "fail_after" and value >= 1 and value == int(value):
            fail_after = int(value)
        else:
            raise ValueError(f"bad faults spec {spec!r}: {key}={raw} is not allowed; {usage}")
    if sum(rates.values()) > 1:
        raise ValueError(f"bad faults spec {spec!r}: fault probabilities add up to more than 1")
    ordered = tuple((k, rates[k]) for k in _FAULT_KEYS if rates.get(k))
    return Faults(ordered, retry_after, timeout_s, fail_after)


def key_values(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE")
        pairs.append((key.strip().lower(), value.strip()))
    return pairs
