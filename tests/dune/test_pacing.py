"""Backoff, Retry-After parsing, polling intervals and the rate limiter."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from downstream.dune.pacing import PollPolicy, RateLimiter, RetryPolicy, parse_retry_after


def test_backoff_grows_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5)
    rng = random.Random(1)
    delays = [policy.delay(a, rng=rng) for a in range(1, 8)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[3] >= 4.0  # 8 * (1 - jitter)
    assert len(set(delays)) == len(delays)  # jitter spreads clients apart


def test_retry_after_wins_when_longer_and_zero_still_backs_off() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=0.0)
    assert policy.delay(1, retry_after=30.0) == 30.0
    assert policy.delay(1, retry_after=0.0) == 1.0
    assert policy.delay(3, retry_after=None) == 4.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12", 12.0),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("", None),
        (None, None),
        ("soon", None),
        ("-3", 0.0),
        ("Thu, 03 Dec 2026 12:00:30 GMT", 30.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


def test_poll_intervals_start_near_a_second_and_grow_to_the_cap() -> None:
    intervals = PollPolicy().intervals()
    assert intervals[0] == 1.0
    assert intervals[-1] == 20.0
    assert intervals == sorted(intervals)


def test_unknown_plan_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown Dune plan 'gold'"):
        RateLimiter.for_plan("gold")


def test_free_plan_never_exceeds_its_per_minute_budget() -> None:
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    limiter = RateLimiter.for_plan("free", clock=lambda: t[0], sleep=sleep)
    for _ in range(40 + 40):
        limiter.acquire("high")
    # 80 high-class requests at 40 rpm with a small burst take at least ~1.8 minutes.
    assert t[0] >= 60 * (80 - 40 / 6) / 40 - 1e-6


@pytest.mark.parametrize("start", [0.0, 4.75, 19.8, 19.9, 1234.5678])
def test_limiter_with_an_injected_clock_always_makes_progress(start: float) -> None:
    # The wait for the next token is computed from a float; after sleeping it, rounding can
    # leave the bucket at 0.9999999999999994 tokens. With a fake clock the follow-up wait
    # is too small to move the clock at all, so it must not be needed.
    t = [start]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) > 1000:
            raise AssertionError(f"limiter is stuck at t={t[0]}: {sleeps[-3:]}")
        t[0] += s

    limiter = RateLimiter.for_plan("free", clock=lambda: t[0], sleep=sleep)
    for _ in range(100):
        limiter.acquire("high")
    assert len(sleeps) <= 100
    assert t[0] - start >= 60 * (100 - 40 / 6) / 40 - 1e-6
