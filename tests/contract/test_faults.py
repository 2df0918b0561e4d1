"""Gateway faults over a real socket: the client retries what is safe and never pays twice.

dune-api.md 7.4 and 8.10-8.11: a 502 on ``POST /execute`` after Dune created the execution,
HTML 503s while polling, 429 with and without a usable ``Retry-After``, bodies cut short or
dropped mid-way, and answers slower than the client's timeout.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from downstream.dune import DuneClient, RateLimiter
from downstream.emulator import DuneEmulator
from downstream.errors import DuneServerError

from .conftest import Connect, FakeTime, WireLog, add_transfers, select, statuses

EXECUTE = "/execute$"
RESULTS = "/execution/.*/results$"
STATUS = "/status$"


def read_all(dune: DuneClient, eid: str, query_id: int) -> list[dict[str, Any]]:
    status = dune.wait_for_execution(eid, query_id=query_id)
    pages = dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata)
    return [row for page in pages for row in page.rows]


# --- execute: exactly one execution per logical run --------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 502, "body": "<html>502 Bad Gateway</html>"}, id="502-html"),
        pytest.param({"status": 504, "body": ""}, id="504-empty"),
        pytest.param({"action": "truncate"}, id="truncated-body"),
        pytest.param({"action": "reset"}, id="reset-mid-body"),
    ],
)
def test_execute_failing_after_creation_adopts_the_one_execution(
    emulator: DuneEmulator, dune: DuneClient, query_id: int, fault: dict[str, Any]
) -> None:
    rows = add_transfers(emulator, query_id, 30)
    emulator.add_fault({"method": "POST", "path": EXECUTE, "when": "after", **fault})
    outcome = dune.execute(query_id, {"chain": "base"})
    assert outcome.adopted
    assert emulator.execution_ids(query_id) == [outcome.execution_id]
    stats = emulator.stats()
    assert stats["executions_created"] == {str(query_id): 1}
    # Looked for the execution instead of submitting again.
    assert stats["requests_by_kind"]["execute"] == stats["requests_by_kind"]["latest"] == 1
    assert read_all(dune, outcome.execution_id, query_id) == select(rows, chain="base")


def test_execute_failing_before_creation_submits_again_once(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    # An older run exists: it must not be mistaken for the one that just failed.
    old = emulator.seed_execution(query_id, age_hours=1)
    emulator.add_fault({"method": "POST", "path": EXECUTE, "status": 502, "body": "<html>"})
    outcome = dune.execute(query_id)
    assert not outcome.adopted
    assert emulator.execution_ids(query_id) == [old, outcome.execution_id]
    assert emulator.stats()["requests_by_kind"]["execute"] == 2


def test_execute_answered_slower_than_the_client_timeout_adopts(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.add_fault({"method": "POST", "path": EXECUTE, "action": "slow", "delay": 2})
    dune = connect(timeout=httpx.Timeout(0.25))
    outcome = dune.execute(query_id)
    assert outcome.adopted
    assert emulator.execution_ids(query_id) == [outcome.execution_id]


def test_execute_429_is_rejected_before_running_so_it_is_retried(
    emulator: DuneEmulator, dune: DuneClient, fake_time: FakeTime, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.add_fault(
        {
            "method": "POST",
            "path": EXECUTE,
            "status": 429,
            "headers": {"Retry-After": "9"},
            "json": {"error": "Too many requests"},
        }
    )
    outcome = dune.execute(query_id)
    assert not outcome.adopted and emulator.execution_ids(query_id) == [outcome.execution_id]
    assert fake_time.sleeps == [9.0]


def test_execute_500_is_not_retried(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.add_fault(
        {
            "method": "POST",
            "path": EXECUTE,
            "status": 500,
            "json": {"error": "An internal error occured"},
        }
    )
    with pytest.raises(DuneServerError, match="An internal error occured") as info:
        dune.execute(query_id)
    assert info.value.status_code == 500 and info.value.query_id == query_id
    assert emulator.stats()["requests_by_kind"] == {"execute": 1}


# --- reads: retried until the rows are exact ------------------------------------------


def test_503_with_html_while_polling_is_retried(
    emulator: DuneEmulator, dune: DuneClient, fake_time: FakeTime, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 12)
    emulator.add_fault(
        {
            "method": "GET",
            "path": STATUS,
            "nth": 2,
            "times": 2,
            "status": 503,
            "body": "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        }
    )
    eid = dune.execute(query_id).execution_id
    assert read_all(dune, eid, query_id) == select(rows)
    stats = emulator.stats()
    assert stats["faults_fired"] == {"respond": 2}
    assert stats["requests_by_kind"]["status"] == 5  # 3 polls + 2 retried
    # Poll 1s, then two growing backoffs (1s base, 50% jitter) before the poll went through.
    poll, first, second, *rest = fake_time.sleeps
    assert poll == 1.0 and 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and rest == [1.5]


@pytest.mark.parametrize(("hint", "at_least"), [("7", 7.0), ("0", 0.5), (None, 0.5)])
def test_429_on_a_results_page_is_retried_and_honours_retry_after(
    emulator: DuneEmulator,
    connect: Connect,
    fake_time: FakeTime,
    query_id: int,
    hint: str | None,
    at_least: float,
) -> None:
    rows = add_transfers(emulator, query_id, 30)
    dune = connect(max_page_rows=6)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    fake_time.sleeps.clear()
    emulator.add_fault(
        {
            "method": "GET",
            "path": RESULTS,
            "nth": 2,
            "status": 429,
            "headers": {"Retry-After": hint} if hint is not None else {},
            "json": {"error": "Too many requests, rate limit exceeded. Please slow down."},
        }
    )
    pages = dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata)
    assert [row for page in pages for row in page.rows] == select(rows)
    # One wait, never shorter than the hint; a 0 (or no hint) still backs off.
    assert len(fake_time.sleeps) == 1 and fake_time.sleeps[0] >= at_least
    assert statuses(emulator.stats()).get("429") == 1


@pytest.mark.parametrize("action", ["reset", "truncate"])
def test_results_page_cut_short_is_retried_and_rows_stay_exact(
    emulator: DuneEmulator, connect: Connect, query_id: int, action: str
) -> None:
    rows = add_transfers(emulator, query_id, 60)
    dune = connect(max_page_rows=9)
    eid = dune.execute(query_id).execution_id
    emulator.add_fault({"method": "GET", "path": RESULTS, "nth": 2, "times": 2, "action": action})
    assert read_all(dune, eid, query_id) == select(rows)
    stats = emulator.stats()
    assert stats["faults_fired"] == {action: 2}
    assert stats["requests_by_kind"]["results"] == 5 + 2  # 40 rows in pages of 9, 2 retries


def test_csv_page_cut_short_is_retried(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    add_transfers(emulator, query_id, 30)
    dune = connect(max_page_rows=7)
    eid = dune.execute(query_id).execution_id
    dune.wait_for_execution(eid, query_id=query_id)
    emulator.add_fault({"method": "GET", "path": "/results/csv$", "nth": 2, "action": "reset"})
    pages = list(dune.iter_csv_pages(eid, n_columns=5, expected_rows=20, query_id=query_id))
    assert [p.row_count for p in pages] == [7, 7, 6]


def test_a_status_poll_slower_than_the_client_timeout_is_retried(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 12)
    emulator.add_fault({"method": "GET", "path": STATUS, "action": "slow", "delay": 2})
    dune = connect(timeout=httpx.Timeout(0.25))
    eid = dune.execute(query_id).execution_id
    assert read_all(dune, eid, query_id) == select(rows)


# --- rate limits the emulator enforces itself ------------------------------------------


def test_token_bucket_429s_are_waited_out_with_the_server_hint(
    emulator: DuneEmulator,
    connect: Connect,
    fake_time: FakeTime,
    wire_log: WireLog,
    query_id: int,
) -> None:
    rows = add_transfers(emulator, query_id, 150)  # 100 rows, one per page
    emulator.config.plan = "free"  # 40 reads a minute, bucket starts full
    dune = connect(max_page_rows=1)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    polls = len(fake_time.sleeps)
    pages = dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata)
    assert [row for page in pages for row in page.rows] == select(rows)

    hints = [float(r.headers["retry-after"]) for r in wire_log.responses if r.status_code == 429]
    waits = fake_time.sleeps[polls:]
    assert len(hints) == len(waits) == emulator.stats()["rate_limited"] > 0
    assert all(wait >= hint >= 1 for wait, hint in zip(waits, hints, strict=True))


def test_pacing_for_the_plan_never_trips_the_servers_limit(
    emulator: DuneEmulator, connect: Connect, fake_time: FakeTime, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 150)
    emulator.config.plan = "free"
    limiter = RateLimiter.for_plan("free", clock=fake_time.monotonic, sleep=fake_time.sleep)
    dune = connect(max_page_rows=1, limiter=limiter)
    eid = dune.execute(query_id).execution_id
    assert read_all(dune, eid, query_id) == select(rows)
    stats = emulator.stats()
    assert stats["requests_by_kind"]["results"] == 100
    assert stats["rate_limited"] == 0


def test_execute_failing_when_the_latest_run_was_partial_still_checks_and_resubmits(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    # The adoption check reads the latest result; a truncated one answers 400 "Partial
    # Result" unless asked with allow_partial_results, which must not abort the submit.
    add_transfers(emulator, query_id, 12)
    old = emulator.seed_execution(query_id, age_hours=1, outcome="partial")
    emulator.add_fault({"method": "POST", "path": EXECUTE, "status": 502, "body": "<html>"})
    outcome = dune.execute(query_id)
    assert not outcome.adopted
    assert emulator.execution_ids(query_id) == [old, outcome.execution_id]
