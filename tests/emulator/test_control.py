"""The /_emulator control API mirrors the Python API, and stats count what clients did."""

from __future__ import annotations

from downstream.emulator import DuneEmulator

from .helpers import ETH, NUMBERS, Client, execute, make_client, run, status


def test_health_needs_no_key(emulator: DuneEmulator) -> None:
    client = make_client(emulator, headers={})
    body = client.get("/_emulator/health").json()
    assert body["ok"] is True
    assert {ETH, NUMBERS, 9000001, 9000002} <= set(body["datasets"])


def test_faults_over_http(emulator: DuneEmulator, client: Client) -> None:
    added = client.post(
        "/_emulator/faults",
        json=[{"path": "/results$", "status": 429, "headers": {"Retry-After": "7"}}],
    )
    assert added.json() == {"added": 1}
    assert client.get("/_emulator/faults").json()[0]["status"] == 429
    limited = client.get(f"/api/v1/query/{ETH}/results")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    client.post("/_emulator/faults", json={"path": "/results$", "status": 500})
    assert client.delete("/_emulator/faults").json() == {"ok": True}
    assert client.get(f"/api/v1/query/{ETH}/results?limit=1").status_code == 200
    bad = client.post("/_emulator/faults", json={"bogus": 1})
    assert bad.status_code == 400


def test_scripts_seed_rows_and_clock_over_http(emulator: DuneEmulator, client: Client) -> None:
    script = {"steps": [{"state": "QUERY_STATE_EXECUTING", "seconds": 30}], "outcome": "failed"}
    assert client.post(f"/_emulator/scripts/{NUMBERS}", json=script).status_code == 200
    eid = execute(client, NUMBERS)
    assert status(client, eid)["state"] == "QUERY_STATE_EXECUTING"
    assert "now" in client.post("/_emulator/clock", json={"advance": 31}).json()
    assert status(client, eid)["state"] == "QUERY_STATE_FAILED"
    client.delete(f"/_emulator/scripts/{NUMBERS}")

    rows = [{"n": 1, "label": "only", "half": 0.5}]
    assert client.post(f"/_emulator/datasets/{NUMBERS}/rows", json=rows).json()["rows"] == 1
    seeded = client.post(
        f"/_emulator/seed/{NUMBERS}", json={"parameters": {"min": "1"}, "age_hours": 1}
    ).json()["execution_id"]
    assert status(client, seeded)["state"] == "QUERY_STATE_COMPLETED"
    body = client.get(f"/api/v1/query/{NUMBERS}/results?params.min=1").json()
    assert body["execution_id"] == seeded
    assert body["result"]["rows"] == [{"half": 0.5, "label": "only", "n": 1}]
    listed = client.get(f"/_emulator/executions/{NUMBERS}").json()
    assert [e["execution_id"] for e in listed] == [eid, seeded]
    assert client.post("/_emulator/seed/424242", json={}).status_code == 404


def test_once_script_over_http(client: Client) -> None:
    client.post(
        f"/_emulator/scripts/{NUMBERS}", json={"steps": [], "outcome": "cancelled", "once": True}
    )
    assert status(client, execute(client, NUMBERS))["state"] == "QUERY_STATE_CANCELLED"
    assert status(client, execute(client, NUMBERS))["state"] == "QUERY_STATE_PENDING"


def test_add_dataset_and_config_over_http(emulator: DuneEmulator, client: Client) -> None:
    query = {
        "query_id": 31337,
        "name": "posted",
        "column_names": ["x"],
        "column_types": ["bigint"],
        "seed_execution": {"age_hours": 3},
    }
    created = client.post("/_emulator/datasets", json={"query": query, "rows": [{"x": 1}]})
    assert created.json() == {"query_id": 31337}
    assert client.get("/api/v1/query/31337/results").json()["result"]["rows"] == [{"x": 1}]

    config = client.post("/_emulator/config", json={"max_page_rows": 2, "csv_null": ""}).json()
    assert config["max_page_rows"] == 2 and emulator.config.csv_null == ""
    assert client.post("/_emulator/config", json={"nope": 1}).status_code == 404
    assert client.post("/_emulator/config", json={"plan": "gold"}).status_code == 400
    assert emulator.config.plan == "none"


def test_stats_count_kinds_statuses_bytes_rows(emulator: DuneEmulator, client: Client) -> None:
    eid = run(client, NUMBERS)  # execute + 3 status polls
    client.get(f"/api/v1/execution/{eid}/results?limit=4")
    client.get(f"/api/v1/execution/{eid}/results/csv")
    client.get(f"/api/v1/query/{NUMBERS}/results/csv?limit=1")
    client.post(f"/api/v1/execution/{eid}/cancel")
    client.get("/api/v1/execution/bad/status")
    emulator.add_fault({"path": "/results$", "status": 502})
    client.get(f"/api/v1/query/{NUMBERS}/results")
    stats = client.get("/_emulator/stats").json()
    assert stats["requests_total"] == 10
    assert stats["requests_by_kind"] == {
        "execute": 1,
        "status": 4,
        "results": 1,
        "results_csv": 1,
        "latest_csv": 1,
        "cancel": 1,
        "latest": 1,
    }
    assert stats["requests_by_status"] == {"200": 8, "400": 1, "502": 1}
    assert stats["rows_served"] == 4 + 10 + 1
    assert stats["executions_created"] == {str(NUMBERS): 1}
    assert stats["faults_fired"] == {"respond": 1}
    assert stats["response_bytes_by_kind"]["results"] > 0
    client.post("/_emulator/stats/reset")
    assert emulator.stats()["requests_total"] == 0
