"""How long to wait: retry backoff, ``Retry-After``, polling intervals and the rate limiter.

Time is always injected (``sleep``, ``clock``) so tests take milliseconds and the same
code paces real runs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by elapsed time.

    ``Retry-After`` from the server raises the wait to at least its value; a value of 0 or
    a missing header still backs off (a 0 must never turn into a retry storm).
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_elapsed: float = 300.0
    jitter: float = 0.5  # fraction of the delay that is randomised

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        r: float = (rng or random).random()
        backoff = backoff * (1 - self.jitter) + backoff * self.jitter * r
        if retry_after is not None and retry_after > backoff:
            return retry_after
        return backoff


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class PollPolicy:
    """Polling an execution: start near 1 s, grow by ``factor`` up to ``max_interval``."""

    initial: float = 1.0
    factor: float = 1.5
    max_interval: float = 20.0

    def intervals(self) -> list[float]:
        """The first intervals, for documentation and tests; the last one repeats."""
        out, current = [], self.initial
        while current < self.max_interval:
            out.append(current)
            current *= self.factor
        out.append(self.max_interval)
        return out

    def next(self, current: float | None) -> float:
        if current is None:
            return self.initial
        return min(self.max_interval, current * self.factor)


_TOKEN_EPSILON = 1e-9

# Requests per minute per endpoint class (docs.dune.com rate-limits page).
PLANS: dict[str, tuple[float, float] | None] = {
    "free": (15, 40),
    "plus": (70, 200),
    "enterprise": (350, 1000),
    "none": None,
}


@dataclass
class TokenBucket:
    """A thread-safe token bucket: ``rate_per_minute`` sustained, ``burst`` at once."""

    rate_per_minute: float
    burst: float
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    _tokens: float = field(init=False)
    _updated: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_minute / 60.0)
        self._updated = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                # Tolerate float rounding: after sleeping the exact wait the bucket can
                # hold 0.9999999999999994 tokens, and with an injected clock the
                # follow-up wait (~1e-15 s) would not move the clock at all.
                if self._tokens >= 1.0 - _TOKEN_EPSILON:
                    self._tokens -= 1.0
                    return waited
                wait = (1.0 - self._tokens) * 60.0 / self.rate_per_minute
            self.sleep(wait)
            waited += wait


class Limiter(Protocol):
    """Anything that can pace one request of an endpoint class (``low`` or ``high``)."""

    def acquire(self, kind: str) -> float: ...


@dataclass
class RateLimiter:
    """One bucket per Dune endpoint class: ``low`` (execute) and ``high`` (reads)."""

    low: TokenBucket | None
    high: TokenBucket | None

    @classmethod
    def for_plan(
        cls, plan: str, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> RateLimiter:
        if plan not in PLANS:
            raise ValueError(f"unknown Dune plan {plan!r}; choose one of {', '.join(PLANS)}")
        rates = PLANS[plan]
        if rates is None:
            return cls(None, None)
        low, high = rates
        # A small burst keeps a run snappy without ever exceeding the per-minute budget.
        return cls(
            TokenBucket(low, burst=max(1.0, low / 6), clock=clock, sleep=sleep),
            TokenBucket(high, burst=max(1.0, high / 6), clock=clock, sleep=sleep),
        )

    def acquire(self, kind: str) -> float:
        bucket = self.low if kind == "low" else self.high
        return bucket.acquire() if bucket is not None else 0.0


_shared: dict[tuple[str, str], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(plan: str, scope: str) -> RateLimiter:
    """The process-wide limiter for ``(plan, scope)``, so every task in a process shares it.

    ``scope`` identifies the budget (e.g. the Dune host plus a hash of the key), never the
    key itself.
    """
    with _shared_lock:
        key = (plan, scope)
        if key not in _shared:
            _shared[key] = RateLimiter.for_plan(plan)
        return _shared[key]
