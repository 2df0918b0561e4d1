"""Executions that end without a usable result raise the typed errors (dune-api.md 3, 8.4-8.7)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from downstream.dune import DuneClient, ExecutionState, PollPolicy
from downstream.emulator import DuneEmulator
from downstream.errors import (
    ExecutionCancelled,
    ExecutionExpired,
    ExecutionFailed,
    ExecutionPartial,
    ExecutionTimedOut,
)

from .conftest import Connect, FakeTime, add_transfers, select, statuses

PENDING = ExecutionState.PENDING.value
EXECUTING = ExecutionState.EXECUTING.value


def test_failed_carries_dunes_error_type_and_message(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.set_script(
        query_id,
        [{"state": PENDING, "polls": 1}],
        "failed",
        error={
            "type": "FAILED_TYPE_EXECUTION_FAILED",
            "message": "line 4:12: Column 'amount_usd' cannot be resolved",
            "metadata": {"line": 4, "column": 12},
        },
    )
    eid = dune.execute(query_id).execution_id
    with pytest.raises(ExecutionFailed) as info:
        dune.wait_for_execution(eid, query_id=query_id)
    err = info.value
    assert err.error_type == "FAILED_TYPE_EXECUTION_FAILED"
    assert err.error_message == (
        f"line 4:12: Column 'amount_usd' cannot be resolved [Execution ID: {eid}]"
    )
    assert err.state == "QUERY_STATE_FAILED"
    assert (err.query_id, err.execution_id) == (query_id, eid)
    # The results endpoint of a failed execution says the same, with HTTP 200.
    with pytest.raises(ExecutionFailed, match="amount_usd"):
        next(dune.iter_result_pages(eid, query_id=query_id))


@pytest.mark.parametrize("spelling", ["QUERY_STATE_CANCELLED", "QUERY_STATE_CANCELED"])
def test_cancelled_in_either_spelling(
    emulator: DuneEmulator, dune: DuneClient, query_id: int, spelling: str
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.config.cancelled_state = spelling
    emulator.set_script(query_id, [{"state": EXECUTING, "polls": 2}], "cancelled")
    eid = dune.execute(query_id).execution_id
    with pytest.raises(ExecutionCancelled) as info:
        dune.wait_for_execution(eid, query_id=query_id)
    assert info.value.state == "QUERY_STATE_CANCELLED"
    assert info.value.execution_id == eid
    status = dune.get_status(eid)
    assert status.cancelled_at is not None and status.execution_ended_at == status.cancelled_at
    with pytest.raises(ExecutionCancelled):
        next(dune.iter_result_pages(eid, query_id=query_id))


def test_cancelled_by_someone_else_while_pending(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.set_script(query_id, [{"state": PENDING, "polls": 100}])
    eid = dune.execute(query_id).execution_id
    assert dune.get_status(eid).state is ExecutionState.PENDING
    assert dune.cancel(eid) is True  # as if from the web app
    assert dune.cancel(eid) is False  # already terminal: Dune refuses
    with pytest.raises(ExecutionCancelled):
        dune.wait_for_execution(eid, query_id=query_id)
    status = dune.get_status(eid)
    assert status.execution_started_at is None and status.execution_ended_at is None


def test_expired_between_pages(emulator: DuneEmulator, connect: Connect, query_id: int) -> None:
    add_transfers(emulator, query_id, 30)
    emulator.set_script(query_id, [], "completed", expire_after_pages=1)
    dune = connect(max_page_rows=5)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    pages = dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata)
    assert len(next(pages).rows) == 5
    with pytest.raises(ExecutionExpired) as info:
        next(pages)
    assert info.value.state == "QUERY_STATE_EXPIRED" and info.value.execution_id == eid


def test_expired_once_the_clock_passes_expires_at(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.config.retention_days = 1
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    assert status.expires_at is not None and status.execution_ended_at is not None
    assert status.expires_at - status.execution_ended_at == pytest.approx(
        timedelta(days=1), abs=timedelta(seconds=1)
    )
    emulator.advance_clock(86_400 + 1)
    with pytest.raises(ExecutionExpired):
        dune.wait_for_execution(eid, query_id=query_id)
    with pytest.raises(ExecutionExpired):
        next(dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata))


def test_partial_is_refused_unless_allowed_then_read_in_full(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 30)
    emulator.set_script(query_id, [{"state": EXECUTING, "polls": 1}], "partial", partial_rows=11)
    dune = connect(max_page_rows=4)
    eid = dune.execute(query_id).execution_id
    with pytest.raises(ExecutionPartial) as info:
        dune.wait_for_execution(eid, query_id=query_id)
    assert info.value.state == "QUERY_STATE_COMPLETED_PARTIAL"
    assert info.value.execution_id == eid

    status = dune.wait_for_execution(eid, query_id=query_id, allow_partial=True)
    assert status.state is ExecutionState.PARTIAL
    pages = list(
        dune.iter_result_pages(
            eid, query_id=query_id, metadata=status.result_metadata, allow_partial=True
        )
    )
    assert all(p.state is ExecutionState.PARTIAL for p in pages)
    # Truncated to its first 11 rows (of the 20 the parameters select), then read in full.
    assert [r for p in pages for r in p.rows] == select(rows)[:11]


def test_partial_pages_without_the_flag_are_execution_partial(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    # Dune refuses with a 400; the client reports the outcome, not a bad request.
    add_transfers(emulator, query_id, 12)
    emulator.set_script(query_id, [], "partial")
    eid = dune.execute(query_id).execution_id
    with pytest.raises(ExecutionPartial) as info:
        next(dune.iter_result_pages(eid, query_id=query_id))
    assert (info.value.query_id, info.value.execution_id) == (query_id, eid)
    with pytest.raises(ExecutionPartial):
        next(dune.iter_csv_pages(eid, n_columns=5, query_id=query_id))
    assert statuses(emulator.stats())["400"] == 2


def test_our_deadline_cancels_the_execution_and_raises_timed_out(
    emulator: DuneEmulator, dune: DuneClient, fake_time: FakeTime, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.set_script(query_id, [{"state": EXECUTING, "polls": 10_000}])
    eid = dune.execute(query_id).execution_id
    with pytest.raises(ExecutionTimedOut) as info:
        dune.wait_for_execution(
            eid,
            query_id=query_id,
            timeout=60,
            poll=PollPolicy(initial=2, factor=2, max_interval=10),
        )
    assert info.value.state == "QUERY_STATE_EXECUTING" and info.value.execution_id == eid
    assert "cancelled it" in str(info.value)
    assert sum(fake_time.sleeps) == pytest.approx(60)
    assert emulator.execution_state(eid) == "QUERY_STATE_CANCELLED"
    stats = emulator.stats()
    assert stats["requests_by_kind"]["cancel"] == 1
    assert statuses(stats) == {"200": stats["requests_total"]}
