"""Error catalogue and authentication (dune-api.md 1.2, 2.1, 2.3, 5.1, 8.13)."""

from __future__ import annotations

import pytest

from downstream.emulator import DuneEmulator

from .helpers import ETH, HEADERS, NUMBERS, Client, execute, make_client, run, status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/execution/Wonky Job ID/status"),
        ("POST", "/api/v1/query/1463956/execute"),
        ("GET", "/api/v1/query/1463956/results"),
        ("GET", "/api/v1/nothing/here"),
    ],
)
def test_bad_or_missing_key_is_401_before_anything(
    emulator: DuneEmulator, method: str, path: str
) -> None:
    for headers in ({}, {"X-Dune-Api-Key": ""}):
        response = make_client(emulator, headers=headers).request(method, path)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid API Key"}
    emulator.config.valid_keys = ["right"]
    wrong = make_client(emulator, headers={"x-dune-api-key": "wrong"}).request(method, path)
    assert wrong.status_code == 401


def test_key_by_header_any_case_or_query_param(emulator: DuneEmulator) -> None:
    emulator.config.valid_keys = ["right"]
    for headers in ({"X-DUNE-API-KEY": "right"}, {"x-dune-api-key": "right"}):
        client = make_client(emulator, headers=headers)
        assert client.get(f"/api/v1/query/{ETH}/results?limit=1").status_code == 200
    anonymous = make_client(emulator, headers={})
    assert anonymous.get(f"/api/v1/query/{ETH}/results?limit=1&api_key=right").status_code == 200


def test_execution_id_errors(client: Client) -> None:
    malformed = client.get("/api/v1/execution/Wonky Job ID/status")
    assert malformed.status_code == 400
    assert malformed.json() == {
        "error": "The requested execution ID (ID: Wonky Job ID) is invalid."
    }
    for suffix in ("results", "results/csv"):
        assert client.get(f"/api/v1/execution/nope/{suffix}").status_code == 400
    assert client.post("/api/v1/execution/nope/cancel").status_code == 400
    unknown = client.get("/api/v1/execution/01HKZJ2683PHF9Q9PHHQ8FW4Q1/status")
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"error"}
    assert client.post("/api/v1/execution/01HKZJ2683PHF9Q9PHHQ8FW4Q1/cancel").status_code == 404


def test_execution_ids_are_case_insensitive(client: Client) -> None:
    eid = execute(client, NUMBERS)
    assert status(client, eid.lower())["execution_id"] == eid


def test_query_errors(emulator: DuneEmulator, client: Client) -> None:
    for query_id in (12345, 0, -5):
        response = client.post(f"/api/v1/query/{query_id}/execute", json={})
        assert response.status_code == 404
        assert response.json() == {"error": "Query not found"}
    huge = client.post("/api/v1/query/9999999999999/execute", json={})
    assert huge.status_code == 500
    assert huge.json() == {"error": "An internal error occured"}
    assert client.get("/api/v1/query/9999999999999/results").status_code == 500

    emulator.datasets[NUMBERS].archived = True
    archived = client.post(f"/api/v1/query/{NUMBERS}/execute", json={})
    assert archived.status_code == 403
    assert archived.json() == {
        "error": "Not allowed to execute query. Query is archived, unsaved or not enough "
        "permissions"
    }


def test_unknown_parameters_are_named(client: Client) -> None:
    response = client.post(
        f"/api/v1/query/{NUMBERS}/execute",
        json={"query_parameters": {"min": "2", "EnumField": "x", "other": 1}},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unknown parameters (EnumField, other)"}


def test_parameter_values_may_be_numbers_and_missing_ones_take_defaults(
    client: Client,
) -> None:
    eid = run(client, NUMBERS, min=8)
    rows = client.get(f"/api/v1/execution/{eid}/results").json()["result"]["rows"]
    assert [r["n"] for r in rows] == [8, 9]
    eid = run(client, NUMBERS)
    assert len(client.get(f"/api/v1/execution/{eid}/results").json()["result"]["rows"]) == 10


def test_execute_body_is_optional_and_performance_is_free_text(client: Client) -> None:
    assert client.post(f"/api/v1/query/{NUMBERS}/execute").status_code == 200
    response = client.post(
        f"/api/v1/query/{NUMBERS}/execute?performance=large", json={"performance": "small"}
    )
    assert response.status_code == 200
    bad = client.post(f"/api/v1/query/{NUMBERS}/execute", content=b"[1, 2]")
    assert bad.status_code == 400


def test_billing_cycle_limit_switch(emulator: DuneEmulator, client: Client) -> None:
    eid = run(client, NUMBERS)
    emulator.config.billing_limit_reached = True
    for response in (
        client.post(f"/api/v1/query/{NUMBERS}/execute", json={}),
        client.get(f"/api/v1/execution/{eid}/results"),
        client.get(f"/api/v1/query/{NUMBERS}/results/csv"),
    ):
        assert response.status_code == 402
        assert "per billing cycle" in response.json()["error"]
    assert client.get(f"/api/v1/execution/{eid}/status").status_code == 200


def test_raw_sql_reports_query_id_zero(emulator: DuneEmulator, client: Client) -> None:
    ok = client.post("/api/v1/sql/execute", json={"sql": f"SELECT * FROM query_{NUMBERS}"})
    eid = ok.json()["execution_id"]
    for _ in range(2):
        status(client, eid)
    done = status(client, eid)
    assert done["query_id"] == 0 and done["state"] == "QUERY_STATE_COMPLETED"
    assert client.get(f"/api/v1/query/{NUMBERS}/results").status_code == 404  # not "latest"

    broken = client.post("/api/v1/sql/execute", json={"sql": "SELECDT 1"}).json()
    status(client, broken["execution_id"])
    failed = status(client, broken["execution_id"])
    assert failed["state"] == "QUERY_STATE_FAILED"
    assert "SELECDT" in failed["error"]["message"]
    assert client.post("/api/v1/sql/execute", json={}).status_code == 400


def test_query_object(client: Client) -> None:
    body = client.get(f"/api/v1/query/{ETH}").json()
    assert body["query_id"] == ETH and body["name"] == "ETH net emission"
    assert body["parameters"] == [
        {"key": "start_date", "type": "datetime", "value": "2022-09-15 00:00:00"}
    ]


def test_unknown_route_is_json_404(client: Client) -> None:
    response = client.get("/api/v1/whatever", headers=HEADERS)
    assert response.status_code == 404 and set(response.json()) == {"error"}
