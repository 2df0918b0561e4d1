"""Execute, wait and read every row, as JSON pages and as CSV pages (dune-api.md 2, 4)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from downstream.dune import DuneClient, ExecutionState, ExecutionStatus
from downstream.dune.params import ParamValue
from downstream.emulator import DuneEmulator

from .conftest import (
    COLUMNS,
    Connect,
    FakeTime,
    add_transfers,
    select,
    statuses,
)

PENDING, EXECUTING, COMPLETED = (
    ExecutionState.PENDING,
    ExecutionState.EXECUTING,
    ExecutionState.COMPLETED,
)
START = datetime(2024, 1, 2)
PARAMS: dict[str, ParamValue] = {
    "start": START,
    "max_n": 200,
    "chain": "ethereum",
    "tokens": ["WETH", "DAI"],
}


def test_execute_wait_and_page_every_row(
    emulator: DuneEmulator, connect: Connect, fake_time: FakeTime, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 240)
    expected = select(rows, start=START, max_n=200, tokens=["WETH", "DAI"])
    assert len(expected) == 59  # 8 full pages of 7 and a short last one
    emulator.config.max_page_rows = 7  # the server caps pages below what we ask for
    emulator.set_script(
        query_id,
        [{"state": PENDING.value, "polls": 3}, {"state": EXECUTING.value, "polls": 2}],
    )
    dune = connect(max_page_rows=10)

    outcome = dune.execute(query_id, PARAMS, performance="large")
    assert not outcome.adopted
    assert emulator.execution_ids(query_id) == [outcome.execution_id]

    seen: list[ExecutionStatus] = []
    status = dune.wait_for_execution(outcome.execution_id, query_id=query_id, on_status=seen.append)
    assert [(s.state, s.queue_position) for s in seen] == [
        (PENDING, 3),
        (PENDING, 2),
        (PENDING, 1),
        (EXECUTING, None),
        (EXECUTING, None),
        (COMPLETED, None),
    ]
    assert fake_time.sleeps == [1.0, 1.5, 2.25, 3.375, 5.0625]
    assert status.execution_cost_credits == 20  # "large" reached the server
    assert status.result_metadata is not None
    assert status.result_metadata.total_row_count == len(expected)

    pages = list(
        dune.iter_result_pages(
            outcome.execution_id, query_id=query_id, metadata=status.result_metadata
        )
    )
    assert [len(p.rows) for p in pages] == [7] * 8 + [3]
    assert [p.offset for p in pages] == list(range(0, 59, 7))
    assert all(p.has_next for p in pages[:-1]) and not pages[-1].has_next
    assert [row for p in pages for row in p.rows] == expected
    assert all(p.metadata is not None and p.metadata.column_names == list(COLUMNS) for p in pages)
    stats = emulator.stats()
    assert stats["requests_by_kind"]["results"] == len(pages)
    assert statuses(stats) == {"200": 1 + len(seen) + len(pages)}


def test_default_page_size_stays_under_the_250k_datapoint_cap(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    # 8 columns: a 32,000-row page would be 256,000 datapoints and answered 402.
    dataset = emulator.add_synthetic(query_id, 40_000)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    pages = list(dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata))
    assert [len(p.rows) for p in pages] == [31_250, 8_750]
    assert [p.metadata.datapoint_count for p in pages if p.metadata] == [250_000, 70_000]
    assert [row for p in pages for row in p.rows] == dataset.source.slice(0, 40_000)
    assert "402" not in statuses(emulator.stats())


def test_without_metadata_the_first_page_learns_the_width(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    dataset = emulator.add_synthetic(query_id, 35_000)
    eid = dune.execute(query_id).execution_id
    dune.wait_for_execution(eid, query_id=query_id)
    pages = list(dune.iter_result_pages(eid, query_id=query_id))
    assert [len(p.rows) for p in pages] == [1, 31_250, 3_749]
    assert [row for p in pages for row in p.rows] == dataset.source.slice(0, 35_000)


def test_a_lower_datapoint_cap_on_the_server_shrinks_pages_once(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    rows = add_transfers(emulator, query_id, 60)
    expected = select(rows)  # defaults: every ethereum row, 40 of them
    emulator.config.max_datapoints_per_request = 40  # 8 rows of 5 columns
    dune = connect(max_page_rows=32)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    pages = list(dune.iter_result_pages(eid, query_id=query_id, metadata=status.result_metadata))
    assert [len(p.rows) for p in pages] == [8] * 5
    assert [row for p in pages for row in p.rows] == expected
    # 32 -> 16 -> 8 rows: two refusals to learn the cap, then it is remembered.
    assert statuses(emulator.stats())["402"] == 2


def test_csv_pages_repeat_the_header_and_add_up(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    awkward = [
        {"n": 1, "label": "plain", "note": None},
        {"n": 2, "label": "comma, inside", "note": 'say "hi"'},
        {"n": 3, "label": "two\nlines", "note": "windows\r\nline end"},
        {"n": 4, "label": "", "note": "🦄 中文 עברית"},
    ]
    rows = [{"n": i, "label": f"row {i}", "note": None} for i in range(5, 24)] + awkward
    emulator.add_dataset(
        query_id,
        rows,
        column_names=["n", "label", "note"],
        column_types=["bigint", "varchar", "varchar"],
    )
    emulator.config.max_page_rows = 5
    dune = connect(max_page_rows=8)
    eid = dune.execute(query_id).execution_id
    dune.wait_for_execution(eid, query_id=query_id)

    pages = list(dune.iter_csv_pages(eid, n_columns=3, expected_rows=len(rows), query_id=query_id))
    assert [p.row_count for p in pages] == [5, 5, 5, 5, 3]
    assert [p.offset for p in pages] == [0, 5, 10, 15, 20]
    assert {p.header for p in pages} == {"n,label,note"}
    assert not any(p.body.startswith(b"n,label") for p in pages)
    records = list(csv.reader(io.StringIO(b"".join(p.body for p in pages).decode(), newline="")))
    assert records == [
        [str(r["n"]), r["label"], "<nil>" if r["note"] is None else r["note"]] for r in rows
    ]
    assert emulator.stats()["requests_by_kind"]["results_csv"] == 5
