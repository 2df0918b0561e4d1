"""The ``onchain`` flow on a real Prefect server against the emulator over loopback."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from downstream.emulator import DuneEmulator
from downstream.spec import QuerySpec, Spec
from flows.onchain import onchain

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _server(prefect_api_url: str, dune_url: str) -> None:
    """Every test here runs on the shared Prefect server, against the emulator."""


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def run(queries: list[QuerySpec], db: Path, **kw: Any) -> Any:
    return onchain(queries=queries, db_path=str(db), return_state=True, **kw)


def test_the_demo_spec_loads_then_a_rerun_skips_by_the_ledger(
    demo_spec: Spec, emulator: DuneEmulator, tmp_path: Path
) -> None:
    db = tmp_path / "bronze.db"
    state = run(demo_spec.queries, db)

    assert state.is_completed(), state.message
    summary = state.result()
    assert [(r["query"], r["outcome"], r["rows"]) for r in summary] == [
        ("eth_net_emission", "loaded", 1538),
        ("typing_torture", "loaded", 8),
        ("empty_result", "loaded", 0),
    ]
    assert count(db, "eth_net_emission") == 1538
    assert count(db, "recorded_raw_metric") == 1538

    emulator.reset_stats()
    again = run(demo_spec.queries, db)

    assert again.is_completed()
    assert {r["outcome"] for r in again.result()} == {"skipped"}
    stats = emulator.stats()
    assert stats["response_bytes_by_kind"].get("results", 0) == 0
    assert stats["executions_created_total"] == 0
    assert count(db, "eth_net_emission") == 1538


def test_refresh_executes_again_without_duplicating_rows(
    demo_spec: Spec, emulator: DuneEmulator, tmp_path: Path
) -> None:
    db = tmp_path / "bronze.db"
    run(demo_spec.queries, db)

    state = run(demo_spec.queries, db, refresh=True)

    assert state.is_completed(), state.message
    assert emulator.stats()["executions_created_total"] == 3
    assert {r["source"] for r in state.result()} == {"executed"}
    assert count(db, "eth_net_emission") == 1538
    assert count(db, "typing_torture") == 8


def test_a_failed_query_fails_the_run_naming_it_while_the_others_load(
    demo_spec: Spec, emulator: DuneEmulator, tmp_path: Path
) -> None:
    emulator.set_script(9000001, [], "failed")
    db = tmp_path / "bronze.db"

    state = run(demo_spec.queries, db, refresh=True)

    assert state.is_failed()
    assert "1 of 3 queries failed: typing_torture: ExecutionFailed" in (state.message or "")
    assert "Column 'x' cannot be resolved" in (state.message or "")
    outcomes = {r["query"]: r["outcome"] for r in state.result(raise_on_failure=False)}
    assert outcomes == {
        "eth_net_emission": "loaded",
        "typing_torture": "failed",
        "empty_result": "loaded",
    }
    assert count(db, "eth_net_emission") == 1538


def test_transient_faults_are_ridden_out(
    demo_spec: Spec, emulator: DuneEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNE_API_REQUEST_TIMEOUT", "0.5")
    emulator.add_faults(
        [
            # a 429 burst on the latest-result reads, with and without a Retry-After hint
            {
                "method": "GET",
                "path": "/results$",
                "status": 429,
                "times": 2,
                "headers": {"Retry-After": "0"},
                "json": {"error": "Too many requests"},
            },
            {
                "method": "GET",
                "path": "/results$",
                "status": 429,
                "times": 1,
                "json": {"error": "Too many requests"},
            },
            # a gateway 503 with an HTML body while polling
            {
                "method": "GET",
                "path": "/status$",
                "status": 503,
                "times": 2,
                "body": "<html><body>503 Service Unavailable</body></html>",
            },
            # a page slower than the client's timeout
            {"method": "GET", "path": "/execution/.*/results$", "action": "slow", "delay": 1.5},
        ]
    )
    db = tmp_path / "bronze.db"

    state = run(demo_spec.queries, db, refresh=True)

    assert state.is_completed(), state.message
    assert emulator.pending_faults() == []
    assert emulator.stats()["executions_created_total"] == 3
    assert count(db, "eth_net_emission") == 1538


def test_the_run_publishes_a_summary_table_artifact(demo_spec: Spec, tmp_path: Path) -> None:
    state = run(demo_spec.queries[:1], tmp_path / "bronze.db")

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["onchain-summary"]))
        )
    mine = [a for a in artifacts if a.flow_run_id == state.state_details.flow_run_id]
    assert len(mine) == 1
    table = mine[0].data
    assert "eth_net_emission" in str(table) and "execution_id" in str(table)


def test_an_invalid_queries_parameter_fails_before_any_request(
    emulator: DuneEmulator, tmp_path: Path
) -> None:
    twice = QuerySpec(name="a", query_id=1463956)
    state = run([twice, twice.model_copy(update={"name": "b"})], tmp_path / "bronze.db")

    assert state.is_failed()
    assert "one Dune execution can feed one table" in (state.message or "")
    assert emulator.stats()["requests_total"] == 0


def test_a_large_result_gets_a_progress_artifact_that_reaches_100(
    emulator: DuneEmulator, tmp_path: Path
) -> None:
    emulator.add_synthetic(9100002, 60_000)
    state = run([QuerySpec(name="big", query_id=9100002)], tmp_path / "bronze.db")
    assert state.is_completed(), state.message

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
        )
    mine = [a for a in artifacts if a.flow_run_id == state.state_details.flow_run_id]
    assert len(mine) == 1
    assert float(mine[0].data) == 100.0  # type: ignore[arg-type]
    assert "60,000 rows" in (mine[0].description or "")
