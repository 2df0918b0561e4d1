"""Latest-result endpoints (dune-api.md 2.6, 2.7, 8.12) and snapshot isolation."""

from __future__ import annotations

from downstream.emulator import DuneEmulator

from .helpers import ETH, NUMBERS, Client, execute, run, status

NO_EXECUTION = "not found: No execution found for the latest version of the given query"


def test_seeded_execution_serves_latest_without_executing(
    emulator: DuneEmulator, client: Client
) -> None:
    body = client.get(f"/api/v1/query/{ETH}/results?limit=10").json()
    assert body["state"] == "QUERY_STATE_COMPLETED"
    assert body["result"]["metadata"]["total_row_count"] == 1538
    assert body["result"]["rows"][0]["day"] == "2022-09-15 00:00:00.000 UTC"
    assert body["next_uri"].endswith(
        f"/api/v1/execution/{body['execution_id']}/results?limit=10&offset=10"
    )
    assert emulator.stats()["executions_created_total"] == 0


def test_latest_is_newest_even_while_running(client: Client) -> None:
    old = run(client, NUMBERS)
    new = execute(client, NUMBERS)
    body = client.get(f"/api/v1/query/{NUMBERS}/results").json()
    assert body["execution_id"] == new
    assert body["state"] == "QUERY_STATE_PENDING" and "result" not in body
    assert body["is_execution_finished"] is False
    csv = client.get(f"/api/v1/query/{NUMBERS}/results/csv")
    assert csv.status_code == 400
    assert "cannot provide CSV result" in csv.json()["error"]
    assert old != new


def test_latest_params_match_partially_and_404_when_never_run(client: Client) -> None:
    run(client, NUMBERS, min="5")
    run(client, NUMBERS, min=7)
    five = client.get(f"/api/v1/query/{NUMBERS}/results?params.min=5").json()
    assert [r["n"] for r in five["result"]["rows"]] == [5, 6, 7, 8, 9]
    seven = client.get(f"/api/v1/query/{NUMBERS}/results?params.min=7").json()
    assert [r["n"] for r in seven["result"]["rows"]] == [7, 8, 9]
    unconstrained = client.get(f"/api/v1/query/{NUMBERS}/results").json()
    assert unconstrained["execution_id"] == seven["execution_id"]
    never = client.get(f"/api/v1/query/{NUMBERS}/results?params.min=3")
    assert never.status_code == 404
    unknown = client.get(f"/api/v1/query/{NUMBERS}/results?params.nope=1")
    assert unknown.status_code == 404


def test_no_execution_and_unknown_query(client: Client) -> None:
    response = client.get(f"/api/v1/query/{NUMBERS}/results")
    assert response.status_code == 404
    assert response.json() == {"error": NO_EXECUTION}
    assert client.get(f"/api/v1/query/{NUMBERS}/results/csv").json() == {"error": NO_EXECUTION}
    missing = client.get("/api/v1/query/12345/results")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Query not found"}


def test_latest_counts_as_a_poll_of_its_execution(client: Client) -> None:
    eid = execute(client, NUMBERS)
    assert client.get(f"/api/v1/query/{NUMBERS}/results").json()["state"] == ("QUERY_STATE_PENDING")
    assert status(client, eid)["state"] == "QUERY_STATE_EXECUTING"


def test_pinned_execution_survives_a_new_run_between_pages(
    emulator: DuneEmulator, client: Client
) -> None:
    run(client, NUMBERS)
    first = client.get(f"/api/v1/query/{NUMBERS}/results?limit=4").json()
    emulator.replace_rows(NUMBERS, [{"n": 100 + n, "label": "new", "half": 0.0} for n in range(3)])
    newer = run(client, NUMBERS)
    # The latest endpoint now shows the new run...
    latest = client.get(f"/api/v1/query/{NUMBERS}/results").json()
    assert latest["execution_id"] == newer
    assert [r["n"] for r in latest["result"]["rows"]] == [100, 101, 102]
    # ...but next_uri stays on the old execution and its snapshot.
    rest = client.get(first["next_uri"]).json()
    assert rest["execution_id"] == first["execution_id"]
    assert [r["n"] for r in rest["result"]["rows"]] == [4, 5, 6, 7]


def test_parameter_filter_moves_with_the_watermark(client: Client) -> None:
    eid = run(client, ETH, start_date="2026-11-28 00:00:00")
    rows = client.get(f"/api/v1/execution/{eid}/results").json()["result"]["rows"]
    assert [r["day"][:10] for r in rows] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    later = client.get(f"/api/v1/query/{ETH}/results?params.start_date=2026-11-28 00:00:00")
    assert later.json()["execution_id"] == eid


def test_latest_with_multi_select_parameter(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_dataset(
        55,
        [{"symbol": s} for s in ("WETH", "USDC", "DAI")],
        column_names=["symbol"],
        column_types=["varchar"],
        parameters=[{"key": "tokens", "type": "enum", "value": ["WETH"]}],
        filters=[{"parameter": "tokens", "column": "symbol", "op": "in"}],
    )
    eid = run(client, 55, tokens=["WETH", "DAI"])
    rows = client.get(f"/api/v1/execution/{eid}/results").json()["result"]["rows"]
    assert rows == [{"symbol": "WETH"}, {"symbol": "DAI"}]
    repeated = client.get("/api/v1/query/55/results?params.tokens=DAI&params.tokens=WETH")
    assert repeated.json()["execution_id"] == eid
    joined = client.get("/api/v1/query/55/results?params.tokens=WETH,DAI")
    assert joined.json()["execution_id"] == eid
