"""Fixtures for client unit tests: a respx router behind ``httpx.MockTransport`` and a
fake clock, so retries and polling run in milliseconds without patching anything."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from downstream.dune import DuneClient, RetryPolicy, make_http_client

BASE = "https://api.dune.com/api/v1"
KEY = "sk-test-7f3a9c1e5b"


@dataclass
class FakeClock:
    """Monotonic and wall clocks that only move when the code under test sleeps."""

    t: float = 0.0
    start: datetime = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router() -> Iterator[respx.Router]:
    r = respx.Router(base_url=BASE, assert_all_called=False, assert_all_mocked=True)
    yield r


@pytest.fixture
def client(router: respx.Router, clock: FakeClock) -> Iterator[DuneClient]:
    http = make_http_client("https://api.dune.com", transport=httpx.MockTransport(router.handler))
    yield DuneClient(
        http,
        KEY,
        retry=RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0, max_elapsed=600.0),
        sleep=clock.sleep,
        clock=clock.monotonic,
        now=clock.now,
    )
    http.close()


def status_body(eid: str, state: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "execution_id": eid,
        "query_id": 1463956,
        "state": state,
        "submitted_at": "2026-12-01T12:00:00.123456Z",
    }
    body.update(extra)
    return body


def meta(names: list[str], types: list[str], rows: int, total: int) -> dict[str, Any]:
    return {
        "column_names": names,
        "column_types": types,
        "row_count": rows,
        "total_row_count": total,
        "result_set_bytes": 10 * rows,
        "total_result_set_bytes": 10 * total,
        "datapoint_count": rows * len(names),
        "execution_time_millis": 10,
    }


def page_body(
    eid: str,
    rows: list[dict[str, Any]],
    *,
    total: int,
    names: list[str],
    types: list[str] | None = None,
    next_offset: int | None = None,
    host: str = "https://api.dune.com",
    state: str = "QUERY_STATE_COMPLETED",
) -> dict[str, Any]:
    body = status_body(
        eid,
        state,
        is_execution_finished=True,
        execution_ended_at="2026-12-01T11:59:00.5Z",
    )
    body["result"] = {
        "rows": rows,
        "metadata": meta(names, types or ["varchar"] * len(names), len(rows), total),
    }
    if next_offset is not None:
        body["next_offset"] = next_offset
        body["next_uri"] = (
            f"{host}/api/v1/execution/{eid}/results?limit={len(rows)}&offset={next_offset}"
        )
    return body
