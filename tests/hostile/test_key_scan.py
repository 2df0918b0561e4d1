"""A real flow run with a distinctive key, some queries failing: the key is nowhere.

The run mixes a load, a FAILED execution, a 401 and an unknown execution state, and
Dune's texts echo the key (a hostile or buggy server could). Afterwards the key must not
appear in: the logs captured in-process, the run's logs read back from Prefect's API, its
artifacts, the flow and task run states and messages, the flow run parameters, any file
in the database folder (the database, its ``-wal`` and ``-shm``, the lock files) or in
Prefect's local result storage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

from downstream.emulator import DuneEmulator
from downstream.spec import QuerySpec
from downstream.store import open_database
from flows.onchain import onchain

pytestmark = pytest.mark.integration
SCAN_KEY = "dune-SCAN-key-5e1b0c97f3a24d68"


@pytest.fixture
def dune_env(
    emulator: DuneEmulator, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DuneEmulator]:
    emulator.config.valid_keys = [SCAN_KEY]
    monkeypatch.setenv("DUNE_API_KEY", SCAN_KEY)
    monkeypatch.setenv("DUNE_API_BASE_URL", base_url)
    monkeypatch.setenv("DUNE_API_PLAN", "none")
    yield emulator


def files_under(root: Path, since: float) -> dict[Path, bytes]:
    if not root.exists():
        return {}
    return {
        p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since
    }


def test_the_key_is_in_no_log_artifact_state_parameter_or_file(
    prefect_api_url: str,
    dune_env: DuneEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = dune_env
    # FAILED, with Dune's error message quoting the key
    emulator.set_script(
        9000001,
        [],
        "failed",
        error={
            "type": "FAILED_TYPE_EXECUTION_FAILED",
            "message": f"line 1:8: Column '{SCAN_KEY}' cannot be resolved",
        },
    )
    # 401 for one query only, its body quoting the key
    emulator.add_fault(
        {
            "path": "^/api/v1/query/9000002/",
            "status": 401,
            "times": 100,
            "json": {"error": f"invalid API Key {SCAN_KEY}"},
        }
    )
    # an execution state no client knows, spelled with the key
    emulator.config.unknown_state = f"QUERY_STATE_{SCAN_KEY}"
    emulator.add_dataset(700003, [{"n": 1}], column_names=["n"], column_types=["bigint"])
    emulator.set_script(700003, [{"state": "QUERY_STATE_EXECUTING", "polls": 1}], "completed")
    started = time.time() - 1
    db_dir = tmp_path / "data"
    queries = [
        QuerySpec(name="eth_net_emission", query_id=1463956, primary_key=["day"]),
        QuerySpec(name="typing_torture", query_id=9000001, max_age_hours=0),
        QuerySpec(name="empty_result", query_id=9000002),
        QuerySpec(name="strange_state", query_id=700003, max_age_hours=0),
    ]

    # A reader held open through the run keeps bronze.db-wal on disk (the last connection
    # to close would checkpoint and delete it), so the scan sees the WAL's frames too.
    holder = open_database(db_dir / "bronze.db")
    try:
        state = onchain(queries=queries, db_path=str(db_dir / "bronze.db"), return_state=True)
        with_wal = files_under(db_dir, started)
    finally:
        holder.close()

    rows = state.result(raise_on_failure=False)
    outcomes = {r["query"]: (r["outcome"], r["detail"]) for r in rows}
    assert outcomes["eth_net_emission"][0] == "loaded"
    assert outcomes["typing_torture"][0] == "failed"
    assert outcomes["empty_result"][0] == "failed"
    assert outcomes["strange_state"][0] == "failed"
    # The texts that quoted the key are there, redacted: the scan below is not vacuous.
    assert "Column '***' cannot be resolved" in outcomes["typing_torture"][1]
    assert "invalid API Key ***" in outcomes["empty_result"][1]
    assert "unknown execution state 'QUERY_STATE_***'" in outcomes["strange_state"][1]

    flow_run_id = state.state_details.flow_run_id
    APILogHandler().flush()  # send what the background worker still holds
    with get_client(sync_client=True) as client:
        logs = read_all_logs(client, flow_run_id)
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        artifacts = client.read_artifacts(flow_run_filter=runs)
        task_runs = client.read_task_runs(flow_run_filter=runs)
        flow_run = client.read_flow_run(flow_run_id)

    assert any("invalid API Key ***" in log.message for log in logs), "no API logs read"
    assert artifacts and task_runs
    places: dict[str, str] = {
        "captured logs": caplog.text
        + "".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "API logs": "\n".join(log.model_dump_json() for log in logs),
        "artifacts": "\n".join(a.model_dump_json() for a in artifacts),
        "task runs and their states": "\n".join(t.model_dump_json() for t in task_runs),
        "flow run, its parameters and state": flow_run.model_dump_json(),
        "flow state message and result": f"{state.message} {json.dumps(rows, default=str)}",
    }
    for place, text in places.items():
        assert SCAN_KEY not in text, f"the key is in the {place}"
    assert {p.name for p in with_wal} >= {"bronze.db", "bronze.db-wal"}
    assert len(with_wal[db_dir / "bronze.db-wal"]) > 0
    files = [*with_wal.items(), *files_under(db_dir, started).items()]
    files += files_under(Path(PREFECT_LOCAL_STORAGE_PATH.value()), started).items()
    for path, data in files:
        assert SCAN_KEY.encode() not in data, f"the key is in {path}"


def read_all_logs(client: Any, flow_run_id: Any) -> list[Any]:
    """Every log of the run (flow and task runs), waiting briefly for the last batch."""
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline, logs = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        logs = client.read_logs(log_filter=log_filter, limit=200)
        if any("failed" in log.message for log in logs):
            break
        time.sleep(0.2)
    return logs
