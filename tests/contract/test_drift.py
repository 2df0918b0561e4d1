"""Schema drift the emulator can produce (dune-api.md 1.3, 8.19-8.20): tolerate, or say why not."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from downstream.dune import DuneClient, ExecutionState, ExecutionStatus
from downstream.emulator import DuneEmulator
from downstream.errors import UnknownExecutionState

from .conftest import Connect, add_transfers, select

EXECUTING = ExecutionState.EXECUTING.value


def test_unknown_fields_are_ignored(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 30)
    emulator.config.add_unknown_fields = True
    dune = connect(max_page_rows=8)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    pages = list(dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata))
    assert [r for p in pages for r in p.rows] == select(rows)
    assert not hasattr(status, "future_field")


def test_dropped_optional_fields_are_tolerated(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 30)
    emulator.config.drop_optional_fields = True
    dune = connect(max_page_rows=8)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    assert status.is_execution_finished is None and status.execution_cost_credits is None
    meta = status.result_metadata
    assert meta is not None and meta.column_types is None and meta.pending_time_millis is None
    pages = list(dune.iter_result_pages(eid, query_id=query_id, metadata=meta))
    assert [r for p in pages for r in p.rows] == select(rows)
    csv_rows = sum(p.row_count for p in dune.iter_csv_pages(eid, n_columns=5))
    assert csv_rows == len(select(rows))


def test_legacy_zero_expires_at_means_not_set(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.config.legacy_zero_expires_at = True
    emulator.set_script(query_id, [{"state": EXECUTING, "polls": 1}])
    eid = dune.execute(query_id).execution_id
    seen: list[ExecutionStatus] = []
    status = dune.wait_for_execution(eid, query_id=query_id, on_status=seen.append)
    assert [s.expires_at for s in seen[:-1]] == [None]
    assert status.expires_at is not None and status.expires_at > emulator.clock.now()


def test_metadata_timestamps_parse_at_every_precision(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    for _ in range(5):  # the emulator rotates 0, 3, 5, 6 and 9 fractional digits
        eid = dune.execute(query_id).execution_id
        status = dune.wait_for_execution(eid, query_id=query_id)
        times = [
            status.submitted_at,
            status.execution_started_at,
            status.execution_ended_at,
            status.expires_at,
        ]
        assert None not in times
        # In order, up to what truncating to fewer digits takes off (under a millisecond).
        for earlier, later in itertools.pairwise(times):
            assert earlier is not None and later is not None
            assert later - earlier > -timedelta(milliseconds=1)


def test_an_unknown_state_is_an_explicit_error_naming_the_execution(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.config.unknown_state = "QUERY_STATE_RUNNING_ON_GPU"
    emulator.set_script(query_id, [{"state": EXECUTING, "polls": 5}])
    eid = dune.execute(query_id).execution_id
    with pytest.raises(UnknownExecutionState, match="QUERY_STATE_RUNNING_ON_GPU") as info:
        dune.wait_for_execution(eid, query_id=query_id)
    assert info.value.state == "QUERY_STATE_RUNNING_ON_GPU"
    assert (info.value.query_id, info.value.execution_id) == (query_id, eid)
    assert not info.value.transient
    # The same on a results page and on the latest-result endpoint.
    with pytest.raises(UnknownExecutionState) as on_page:
        next(dune.iter_result_pages(eid, query_id=query_id))
    assert on_page.value.execution_id == eid
    with pytest.raises(UnknownExecutionState) as on_latest:
        dune.get_latest_result(query_id)
    assert on_latest.value.query_id == query_id
