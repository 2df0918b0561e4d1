"""State progression and exactly which fields each state carries (dune-api.md 8.1-8.7)."""

from __future__ import annotations

from datetime import datetime, timedelta

from downstream.emulator import DuneEmulator

from .helpers import NUMBERS, Client, execute, make_client, make_emulator, status, wait

OPTIONAL = {
    "execution_started_at",
    "execution_ended_at",
    "expires_at",
    "cancelled_at",
    "queue_position",
    "result_metadata",
    "error",
    "execution_cost_credits",
}


def present(body: dict[str, object]) -> set[str]:
    return OPTIONAL & set(body)


def parse(ts: object) -> datetime:
    return datetime.fromisoformat(str(ts))


def test_default_script_pending_executing_completed(client: Client) -> None:
    answer = client.post(f"/api/v1/query/{NUMBERS}/execute", json={})
    assert answer.json()["state"] == "QUERY_STATE_PENDING"
    eid = answer.json()["execution_id"]

    pending = status(client, eid)
    assert pending["state"] == "QUERY_STATE_PENDING"
    assert pending["is_execution_finished"] is False
    assert present(pending) == {"queue_position"}
    assert pending["query_id"] == NUMBERS and pending["submitted_at"].endswith("Z")

    executing = status(client, eid)
    assert executing["state"] == "QUERY_STATE_EXECUTING"
    assert present(executing) == {"execution_started_at"}

    done = status(client, eid)
    assert done["state"] == "QUERY_STATE_COMPLETED"
    assert done["is_execution_finished"] is True
    assert present(done) == {
        "execution_started_at",
        "execution_ended_at",
        "expires_at",
        "execution_cost_credits",
        "result_metadata",
    }
    meta = done["result_metadata"]
    assert meta["column_names"] == ["n", "label", "half"]
    assert meta["total_row_count"] == meta["row_count"] == 10
    assert meta["datapoint_count"] == 30
    assert parse(done["expires_at"]) - parse(done["execution_ended_at"]) < timedelta(
        days=90, seconds=1
    )
    assert parse(done["expires_at"]) - parse(done["execution_ended_at"]) > timedelta(
        days=89, hours=23
    )
    assert all(v is not None for v in done.values())


def test_results_while_running_is_200_without_result(client: Client) -> None:
    eid = execute(client, NUMBERS)
    body = client.get(f"/api/v1/execution/{eid}/results").json()
    assert body["state"] == "QUERY_STATE_PENDING"
    assert body["is_execution_finished"] is False
    assert "result" not in body and "next_uri" not in body and "error" not in body
    # The results GET counted as a poll, so the next look is EXECUTING.
    assert status(client, eid)["state"] == "QUERY_STATE_EXECUTING"


def test_queue_position_shrinks(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [{"state": "QUERY_STATE_PENDING", "polls": 3}])
    eid = execute(client, NUMBERS)
    positions = [status(client, eid).get("queue_position") for _ in range(4)]
    assert positions == [3, 2, 1, None]


def test_timed_steps_follow_the_clock(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(
        NUMBERS,
        [
            {"state": "QUERY_STATE_PENDING", "seconds": 5},
            {"state": "QUERY_STATE_EXECUTING", "seconds": 10},
        ],
    )
    eid = execute(client, NUMBERS)
    for _ in range(3):
        assert status(client, eid)["state"] == "QUERY_STATE_PENDING"
    assert status(client, eid)["queue_position"] == 5
    emulator.advance_clock(4.5)
    assert status(client, eid)["queue_position"] == 1
    emulator.advance_clock(1)
    assert status(client, eid)["state"] == "QUERY_STATE_EXECUTING"
    emulator.advance_clock(10)
    done = status(client, eid)
    assert done["state"] == "QUERY_STATE_COMPLETED"
    assert done["result_metadata"]["pending_time_millis"] == 5000
    assert done["result_metadata"]["execution_time_millis"] == 10000


def test_skip_pending_and_instant_failure(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [{"state": "QUERY_STATE_EXECUTING", "polls": 1}], once=True)
    emulator.set_script(NUMBERS, [], "failed", once=True)
    first = client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).json()
    assert first["state"] == "QUERY_STATE_EXECUTING"
    assert status(client, first["execution_id"])["state"] == "QUERY_STATE_EXECUTING"

    second = client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).json()
    assert second["state"] == "QUERY_STATE_PENDING"  # execute never reports the outcome
    failed = status(client, second["execution_id"])
    assert failed["state"] == "QUERY_STATE_FAILED"

    # The once-scripts are used up: back to the default.
    third = execute(client, NUMBERS)
    assert status(client, third)["state"] == "QUERY_STATE_PENDING"


def test_failed_has_error_on_status_and_results(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(
        NUMBERS,
        [{"state": "QUERY_STATE_EXECUTING", "polls": 1}],
        "failed",
        error={
            "message": "line 3:14: Table 'x' does not exist",
            "metadata": {"line": 3, "column": 14},
        },
    )
    eid = execute(client, NUMBERS)
    done = wait(client, eid)
    assert done["state"] == "QUERY_STATE_FAILED"
    assert present(done) == {
        "execution_started_at",
        "execution_ended_at",
        "expires_at",
        "execution_cost_credits",
        "error",
    }
    assert done["error"] == {
        "type": "FAILED_TYPE_EXECUTION_FAILED",
        "message": f"line 3:14: Table 'x' does not exist [Execution ID: {eid}]",
        "metadata": {"line": 3, "column": 14},
    }
    results = client.get(f"/api/v1/execution/{eid}/results")
    assert results.status_code == 200
    assert results.json()["error"] == done["error"]
    assert "result" not in results.json()


def test_partial_needs_allow_partial_results(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [], "partial", partial_rows=4)
    eid = execute(client, NUMBERS)
    done = status(client, eid)
    assert done["state"] == "QUERY_STATE_COMPLETED_PARTIAL"
    assert "result_metadata" not in done
    refused = client.get(f"/api/v1/execution/{eid}/results")
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "Partial Result, please request with 'allow_partial_results=true'"
    }
    allowed = client.get(f"/api/v1/execution/{eid}/results?allow_partial_results=true").json()
    assert allowed["state"] == "QUERY_STATE_COMPLETED_PARTIAL"
    assert [r["n"] for r in allowed["result"]["rows"]] == [0, 1, 2, 3]
    assert allowed["result"]["metadata"]["total_row_count"] == 4


def test_partial_status_metadata_knob() -> None:
    emulator = make_emulator(partial_status_metadata=True)
    client = make_client(emulator)
    emulator.set_script(NUMBERS, [], "partial")
    eid = execute(client, NUMBERS)
    assert status(client, eid)["result_metadata"]["total_row_count"] == 5


def test_cancel_from_pending_has_no_start_or_end(client: Client) -> None:
    eid = execute(client, NUMBERS)
    assert client.post(f"/api/v1/execution/{eid}/cancel").json() == {"success": True}
    body = status(client, eid)
    assert body["state"] == "QUERY_STATE_CANCELLED"
    assert present(body) == {"cancelled_at", "expires_at", "execution_cost_credits"}
    results = client.get(f"/api/v1/execution/{eid}/results").json()
    assert results["state"] == "QUERY_STATE_CANCELLED" and "result" not in results
    assert "cancelled_at" in results
    assert client.post(f"/api/v1/execution/{eid}/cancel").json() == {"success": False}


def test_cancel_while_executing_sets_ended_at(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [{"state": "QUERY_STATE_EXECUTING", "polls": 5}])
    eid = execute(client, NUMBERS)
    assert status(client, eid)["state"] == "QUERY_STATE_EXECUTING"
    client.post(f"/api/v1/execution/{eid}/cancel")
    body = status(client, eid)
    assert body["state"] == "QUERY_STATE_CANCELLED"
    assert "execution_started_at" in body
    assert parse(body["execution_ended_at"]) == parse(body["cancelled_at"])


def test_cancel_finished_execution_is_not_successful(client: Client) -> None:
    eid = execute(client, NUMBERS)
    wait(client, eid)
    assert client.post(f"/api/v1/execution/{eid}/cancel").json() == {"success": False}
    assert status(client, eid)["state"] == "QUERY_STATE_COMPLETED"


def test_scripted_cancel_and_one_l_spelling() -> None:
    emulator = make_emulator(cancelled_state="QUERY_STATE_CANCELED")
    client = make_client(emulator)
    emulator.set_script(NUMBERS, [{"state": "QUERY_STATE_EXECUTING", "polls": 1}], "cancelled")
    eid = execute(client, NUMBERS)
    assert wait(client, eid)["state"] == "QUERY_STATE_CANCELED"


def test_expires_when_clock_passes_expires_at(emulator: DuneEmulator, client: Client) -> None:
    eid = execute(client, NUMBERS)
    wait(client, eid)
    emulator.advance_clock(89 * 86400)
    assert status(client, eid)["state"] == "QUERY_STATE_COMPLETED"
    emulator.advance_clock(2 * 86400)
    expired = status(client, eid)
    assert expired["state"] == "QUERY_STATE_EXPIRED"
    assert "result_metadata" not in expired
    results = client.get(f"/api/v1/execution/{eid}/results").json()
    assert results["state"] == "QUERY_STATE_EXPIRED" and "result" not in results
    csv = client.get(f"/api/v1/execution/{eid}/results/csv")
    assert csv.status_code == 400
    assert csv.json() == {"error": "Query state is QUERY_STATE_EXPIRED, cannot provide CSV result"}


def test_expired_outcome(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [], "expired")
    eid = execute(client, NUMBERS)
    body = status(client, eid)
    assert body["state"] == "QUERY_STATE_EXPIRED"
    assert body["is_execution_finished"] is True
    assert "result_metadata" not in body


def test_expire_after_pages(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [], "completed", expire_after_pages=2)
    eid = execute(client, NUMBERS)
    url = f"/api/v1/execution/{eid}/results?limit=3"
    first = client.get(url).json()
    second = client.get(first["next_uri"]).json()
    # The pages that are served still say COMPLETED; only the next read finds it expired.
    assert [first["state"], second["state"]] == ["QUERY_STATE_COMPLETED"] * 2
    assert len(second["result"]["rows"]) == 3
    third = client.get(second["next_uri"]).json()
    assert third["state"] == "QUERY_STATE_EXPIRED"
    assert "result" not in third and "next_uri" not in third


def test_timestamp_precisions_are_mixed(client: Client) -> None:
    fractions: set[int] = set()
    for _ in range(5):
        eid = execute(client, NUMBERS)
        body = wait(client, eid)
        for field in ("submitted_at", "execution_started_at", "execution_ended_at", "expires_at"):
            text = body[field]
            fractions.add(len(text.split(".")[1]) - 1 if "." in text else 0)
            parse(text)
    assert {0, 3, 5, 6, 9} <= fractions


def test_per_query_script_persists_until_changed(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [], "failed")
    for _ in range(2):
        assert status(client, execute(client, NUMBERS))["state"] == "QUERY_STATE_FAILED"
    emulator.clear_scripts(NUMBERS)
    assert status(client, execute(client, NUMBERS))["state"] == "QUERY_STATE_PENDING"


def test_schema_drift_knobs() -> None:
    emulator = make_emulator(
        drop_optional_fields=True,
        add_unknown_fields=True,
        unknown_state="QUERY_STATE_QUEUED_ELSEWHERE",
        legacy_zero_expires_at=True,
    )
    client = make_client(emulator)
    eid = execute(client, NUMBERS)
    pending = status(client, eid)
    assert pending["expires_at"] == "1970-01-01T00:00:00Z"
    assert "is_execution_finished" not in pending
    assert "future_field" in pending
    assert status(client, eid)["state"] == "QUERY_STATE_QUEUED_ELSEWHERE"
    done = status(client, eid)
    assert done["state"] == "QUERY_STATE_COMPLETED"
    meta = done["result_metadata"]
    assert "column_types" not in meta and "pending_time_millis" not in meta
    assert "execution_cost_credits" not in done
    assert meta["future_metric"] == 1.5
    page = client.get(f"/api/v1/execution/{eid}/results").json()
    assert "future_field" in page and "column_types" not in page["result"]["metadata"]
