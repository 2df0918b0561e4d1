"""The tasks as plain functions (``.fn``), and which failures they retry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.logging import disable_run_logger
from prefect.states import Completed, Failed
from pydantic import SecretStr

from blocks.dune import DuneCredentials
from downstream.emulator import DuneEmulator
from downstream.errors import (
    DuneAuthError,
    DuneBadRequest,
    DuneNotFound,
    DunePaymentRequired,
    DuneProtocolError,
    DuneRateLimited,
    DuneServerError,
    DuneTransportError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimedOut,
    LoadError,
)
from downstream.spec import QuerySpec
from tasks.dune import decide_plan, load_result, retry_if_transient, submit_execution
from tasks.dune import wait_for_result as wait_task

from .conftest import KEY


@pytest.fixture
def credentials(dune_url: str) -> DuneCredentials:
    return DuneCredentials(api_key=SecretStr(KEY), base_url=dune_url, plan="none")


@pytest.fixture(autouse=True)
def _no_run_logger() -> Iterator[None]:
    with disable_run_logger():
        yield


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (DuneRateLimited("slow down", retry_after=3), True),
        (DuneServerError("bad gateway", status_code=502), True),
        (DuneTransportError("connection reset"), True),
        (DuneProtocolError("truncated page"), True),
        (DuneAuthError("invalid API Key", status_code=401), False),
        (DuneNotFound("Query not found", status_code=404), False),
        (DuneBadRequest("unknown parameters (x)", status_code=400), False),
        (DunePaymentRequired("billing cycle", status_code=402), False),
        (ExecutionFailed("FAILED_TYPE_EXECUTION_FAILED", "syntax"), False),
        (ExecutionCancelled("cancelled", state="QUERY_STATE_CANCELLED"), False),
        (ExecutionTimedOut("too slow", state="QUERY_STATE_EXECUTING"), False),
        (LoadError("NULL key"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_transient_failures_are_retried(error: Exception, retried: bool) -> None:
    assert retry_if_transient(None, None, Failed(data=error)) is retried


def test_a_completed_state_is_never_retried() -> None:
    assert retry_if_transient(None, None, Completed(data=1)) is False


def test_the_task_chain_loads_one_query(
    credentials: DuneCredentials, emulator: DuneEmulator, tmp_path: Path
) -> None:
    db = str(tmp_path / "bronze.db")
    spec = QuerySpec(name="torture", query_id=9000001, max_age_hours=0)

    plan = decide_plan.fn(credentials, db, spec, False)
    assert plan.action == "execute"
    plan = submit_execution.fn(credentials, db, plan)
    assert plan.action == "wait" and plan.source == "executed"
    plan = wait_task.fn(credentials, plan)
    assert plan.action == "load" and plan.status is not None
    result = load_result.fn(credentials, db, plan, "flow-run-1")

    assert (result.outcome, result.rows, result.execution_id) == ("loaded", 8, plan.execution_id)
    assert emulator.stats()["executions_created_total"] == 1
