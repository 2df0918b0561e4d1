"""The pipeline steps against the emulator over loopback: credits are spent only when due."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from downstream import pipeline
from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator
from downstream.errors import ExecutionFailed
from downstream.spec import QuerySpec, Spec

from .conftest import NUMBER_ROWS, NUMBERS, numbers_spec


def rows(db_path: str, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(f'SELECT n, label, half FROM "{table}" ORDER BY n').fetchall()


def ledger(db_path: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT query_name, source, status, error FROM dune_execution ORDER BY loaded_at"
        ).fetchall()


def result_bytes(emulator: DuneEmulator) -> int:
    return int(emulator.stats()["response_bytes_by_kind"].get("results", 0))


def executions(emulator: DuneEmulator) -> int:
    return int(emulator.stats()["executions_created_total"])


EXPECTED = [(r["n"], r["label"], r["half"]) for r in NUMBER_ROWS]


def test_no_earlier_execution_executes_once_and_loads_every_row(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    result = pipeline.sync_query(client, db_path, numbers_spec())

    assert (result.outcome, result.source) == ("loaded", "executed")
    assert (result.rows, result.new) == (10, 10)
    assert executions(emulator) == 1
    assert rows(db_path, "numbers") == EXPECTED
    assert ledger(db_path) == [("numbers", "executed", "loaded", None)]


def test_fresh_latest_result_is_loaded_without_executing(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = QuerySpec(name="eth", query_id=1463956, primary_key=["day"])  # seeded 2 h ago

    result = pipeline.sync_query(client, db_path, spec)

    assert (result.outcome, result.source, result.rows) == ("loaded", "latest", 1538)
    assert executions(emulator) == 0


def test_a_loaded_execution_is_skipped_without_downloading_rows(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = QuerySpec(name="eth", query_id=1463956, primary_key=["day"])
    pipeline.sync_query(client, db_path, spec)
    emulator.reset_stats()

    again = pipeline.sync_query(client, db_path, spec)

    assert again.outcome == "skipped" and "already loaded" in again.detail
    assert result_bytes(emulator) == 0
    assert executions(emulator) == 0
    # Deciding read one row of the latest result, nothing more.
    assert emulator.stats()["requests_by_kind"] == {"latest": 1}


def test_stale_latest_result_executes(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = QuerySpec(name="eth", query_id=1463956, primary_key=["day"], max_age_hours=1)

    plan = pipeline.decide(client, db_path, spec)

    assert plan.action == "execute" and "2.0h old (max 1h)" in plan.reason


@pytest.mark.parametrize(
    ("kw", "refresh", "why"),
    [({"max_age_hours": 0}, False, "always execute"), ({}, True, "refresh requested")],
)
def test_max_age_zero_and_refresh_execute_without_asking(
    client: DuneClient,
    db_path: str,
    emulator: DuneEmulator,
    kw: dict[str, object],
    refresh: bool,
    why: str,
) -> None:
    spec = QuerySpec(name="eth", query_id=1463956, primary_key=["day"], **kw)  # type: ignore[arg-type]

    plan = pipeline.decide(client, db_path, spec, refresh=refresh)

    assert plan.action == "execute" and why in plan.reason
    assert emulator.stats()["requests_total"] == 0


def test_refresh_executes_again_without_duplicating_rows(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    first = pipeline.sync_query(client, db_path, numbers_spec())
    second = pipeline.sync_query(client, db_path, numbers_spec(), refresh=True)

    assert second.execution_id != first.execution_id
    assert (second.outcome, second.new, second.updated) == ("loaded", 0, 0)
    assert executions(emulator) == 2
    assert rows(db_path, "numbers") == EXPECTED


def test_a_running_execution_is_waited_for_not_paid_again(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    emulator.set_script(NUMBERS, [{"state": "QUERY_STATE_EXECUTING", "polls": 3}])
    running = client.execute(NUMBERS).execution_id
    emulator.set_script(NUMBERS, [], "completed")

    result = pipeline.sync_query(client, db_path, numbers_spec())

    assert result.execution_id == running and result.outcome == "loaded"
    assert executions(emulator) == 1


def test_two_runs_deciding_together_execute_once(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = numbers_spec()
    plans = [pipeline.decide(client, db_path, spec) for _ in range(2)]
    assert [p.action for p in plans] == ["execute", "execute"]

    submitted = [pipeline.submit(client, db_path, p) for p in plans]

    assert executions(emulator) == 1
    assert submitted[0].execution_id == submitted[1].execution_id
    # The second re-checked Dune under the lock and follows the first one's execution.
    assert (submitted[0].source, submitted[1].source) == ("executed", "latest")
    assert submitted[1].action in ("load", "wait")


def test_parameters_and_the_incremental_watermark_reach_dune(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = numbers_spec(
        parameters={"min": 3},
        max_age_hours=0,
        incremental={"parameter": "min", "column": "n"},
    )
    first = pipeline.sync_query(client, db_path, spec)
    assert rows(db_path, "numbers") == EXPECTED[3:]
    assert first.rows == 7

    second = pipeline.sync_query(client, db_path, spec)

    # The watermark (max n = 9) replaced the spec's min=3 for the second execution.
    assert second.rows == 1
    with sqlite3.connect(db_path) as conn:
        sent = conn.execute(
            "SELECT parameters FROM dune_execution WHERE execution_id = ?",
            [second.execution_id],
        ).fetchone()[0]
    assert sent == '{"min":"9"}'


def test_a_failed_query_is_a_typed_failure_recorded_in_the_ledger(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    pipeline.sync_query(client, db_path, numbers_spec())
    emulator.set_script(NUMBERS, [], "failed")

    result = pipeline.sync_query(client, db_path, numbers_spec(), refresh=True)

    assert result.outcome == "failed" and result.error_type == ExecutionFailed.__name__
    assert "Column 'x' cannot be resolved" in (result.error or "")
    assert rows(db_path, "numbers") == EXPECTED  # untouched
    assert [row[2] for row in ledger(db_path)] == ["loaded", "failed"]


def test_one_failing_query_does_not_stop_the_others(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    emulator.set_script(9000001, [], "failed")
    spec = Spec(
        queries=[
            numbers_spec(),
            QuerySpec(name="torture", query_id=9000001, max_age_hours=0),
            QuerySpec(name="eth", query_id=1463956, primary_key=["day"]),
        ]
    )

    results = pipeline.run_spec(client, db_path, spec, concurrency=2)

    assert [(r.name, r.outcome) for r in results] == [
        ("numbers", "loaded"),
        ("torture", "failed"),
        ("eth", "loaded"),
    ]


def test_a_result_older_than_it_claims_is_not_fresh(
    client: DuneClient, db_path: str, emulator: DuneEmulator
) -> None:
    spec = QuerySpec(name="eth", query_id=1463956, primary_key=["day"], max_age_hours=24)
    later = datetime.now(UTC) + timedelta(hours=30)

    plan = pipeline.decide(client, db_path, spec, now=lambda: later)

    assert plan.action == "execute"


def test_prefetch_keeps_order_and_hands_errors_to_the_consumer() -> None:
    def produce() -> Iterator[int]:
        yield from range(5)
        raise ValueError("page 6 broke")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 6 broke"):
        for item in pipeline.prefetch(produce(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stops_its_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            finished.set()

    stream = pipeline.prefetch(produce(), depth=1)
    assert next(stream) == 0
    stream.close()  # what a failing load does to its page iterator

    assert finished.wait(5)
    assert len(produced) < 10
