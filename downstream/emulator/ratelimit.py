"""Per-key token buckets for Dune's two rate-limit classes.

Dune limits requests per minute per API key, separately for a "low" class
(execute) and a "high" class (status, results, cancel, latest results). A
bucket holds up to one minute's allowance and refills continuously, read from
the emulator clock so tests can refill it by advancing time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock

LOW = "low"
HIGH = "high"


@dataclass
class _Bucket:
    capacity: float
    tokens: float
    updated_ns: int


class RateLimiter:
    """Token buckets keyed by (api key, class)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def acquire(self, api_key: str, klass: str, per_minute: int) -> float | None:
        """Take a token. Returns ``None`` if allowed, else seconds until one is back."""
        now = self._clock.now_ns()
        bucket = self._buckets.get((api_key, klass))
        if bucket is None or bucket.capacity != per_minute:
            bucket = _Bucket(float(per_minute), float(per_minute), now)
            self._buckets[(api_key, klass)] = bucket
        rate = per_minute / 60.0
        elapsed = max(0, now - bucket.updated_ns) / 1e9
        bucket.tokens = min(bucket.capacity, bucket.tokens + elapsed * rate)
        bucket.updated_ns = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate

    def reset(self) -> None:
        self._buckets.clear()
