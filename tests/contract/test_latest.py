"""Latest results by ``params.*`` and the max-age check against the emulator clock (2.6, 7.2)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from downstream.dune import DuneClient, ExecutionState
from downstream.dune.params import ParamValue
from downstream.emulator import DuneEmulator
from downstream.errors import DuneNotFound, ExecutionPartial

from .conftest import Connect, add_transfers


def run(dune: DuneClient, query_id: int, parameters: dict[str, ParamValue] | None = None) -> str:
    eid = dune.execute(query_id, parameters).execution_id
    dune.wait_for_execution(eid, query_id=query_id)
    return eid


def test_latest_result_matches_params_partially_and_exactly(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 48)
    weth = run(dune, query_id, {"chain": "ethereum", "tokens": ["WETH"]})
    base = run(dune, query_id, {"chain": "base", "tokens": ["WETH", "DAI"], "max_n": 30})

    latest = dune.get_latest_result(query_id)
    assert latest is not None and latest.execution_id == base  # newest, whatever its params
    on_ethereum = dune.get_latest_result(query_id, {"chain": "ethereum"})
    assert on_ethereum is not None and on_ethereum.execution_id == weth
    exact = dune.get_latest_result(
        query_id, {"chain": "base", "max_n": 30, "tokens": ["DAI", "WETH"]}
    )
    assert exact is not None and exact.execution_id == base
    # Reads one row only, but reports the whole result's size.
    assert exact.state is ExecutionState.COMPLETED and len(exact.rows) == 1
    assert exact.metadata is not None and exact.metadata.total_row_count == 6


@pytest.mark.parametrize("multi_value", ["repeat", "comma"])
def test_multi_select_params_in_either_spelling(
    emulator: DuneEmulator, connect: Connect, query_id: int, multi_value: str
) -> None:
    add_transfers(emulator, query_id, 12)
    dune = connect(latest_multi_value=multi_value)
    eid = run(dune, query_id, {"tokens": ["USDC", "PEPE"]})
    latest = dune.get_latest_result(query_id, {"tokens": ["USDC", "PEPE"]})
    assert latest is not None and latest.execution_id == eid


def test_never_run_combination_is_none_but_unknown_query_raises(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    assert dune.get_latest_result(query_id) is None  # never executed at all
    run(dune, query_id, {"chain": "ethereum"})
    assert dune.get_latest_result(query_id, {"chain": "solana"}) is None
    assert dune.get_latest_result(query_id, {"no_such_param": "x"}) is None
    with pytest.raises(DuneNotFound, match="Query not found") as info:
        dune.get_latest_result(query_id + 500_000)
    assert info.value.status_code == 404 and info.value.query_id == query_id + 500_000
    assert emulator.stats()["requests_by_kind"]["latest"] == 4  # 404s are not retried


def test_fresh_latest_result_uses_max_age_against_the_server_clock(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    eid = emulator.seed_execution(query_id, {"chain": "ethereum"}, age_hours=2)

    fresh = dune.fresh_latest_result(query_id, {"chain": "ethereum"}, max_age=timedelta(hours=3))
    assert fresh is not None and fresh.execution_id == eid
    assert fresh.execution_ended_at is not None
    assert emulator.clock.now() - fresh.execution_ended_at == pytest.approx(
        timedelta(hours=2), abs=timedelta(seconds=1)
    )
    assert dune.fresh_latest_result(query_id, max_age=timedelta(hours=1)) is None
    emulator.advance_clock(3600.5)  # now 3 hours old
    assert dune.fresh_latest_result(query_id, max_age=timedelta(hours=3)) is None
    assert dune.fresh_latest_result(query_id, max_age=timedelta(hours=4)) is not None
    assert dune.fresh_latest_result(query_id, max_age=timedelta(0)) is None


def test_a_running_latest_execution_is_never_fresh(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    emulator.set_script(query_id, [{"state": "QUERY_STATE_EXECUTING", "polls": 50}])
    eid = dune.execute(query_id).execution_id
    latest = dune.get_latest_result(query_id)
    assert latest is not None and latest.execution_id == eid
    assert latest.state is ExecutionState.EXECUTING and latest.rows == []
    assert dune.fresh_latest_result(query_id, max_age=timedelta(days=365)) is None


def test_latest_params_encode_datetimes_like_execute(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 48)
    eid = run(dune, query_id, {"start": datetime(2024, 1, 1, 12)})
    latest = dune.get_latest_result(query_id, {"start": datetime(2024, 1, 1, 12)})
    assert latest is not None and latest.execution_id == eid
    assert dune.get_latest_result(query_id, {"start": datetime(2024, 1, 1, 13)}) is None


def test_a_truncated_latest_result_is_reported_not_hidden(
    emulator: DuneEmulator, dune: DuneClient, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    eid = emulator.seed_execution(query_id, age_hours=1, outcome="partial")
    with pytest.raises(ExecutionPartial) as info:
        dune.get_latest_result(query_id)
    assert info.value.query_id == query_id
    page = dune.get_latest_result(query_id, allow_partial=True)
    assert page is not None and page.execution_id == eid
    assert page.state is ExecutionState.PARTIAL
    fresh = dune.fresh_latest_result(query_id, max_age=timedelta(hours=2), allow_partial=True)
    assert fresh is not None and fresh.execution_id == eid
