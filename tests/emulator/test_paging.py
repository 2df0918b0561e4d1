"""Pagination fidelity (dune-api.md 4 and 8.8): caps, next_uri, offsets, datapoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from downstream.emulator import DuneEmulator

from .helpers import (
    ETH,
    HEADERS,
    NUMBERS,
    TORTURE,
    Client,
    execute,
    make_client,
    make_emulator,
    run,
    wait,
)


def pages(client: Client, url: str) -> list[dict[str, Any]]:
    out = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append(body)
        url = body.get("next_uri")
    return out


def test_server_caps_limit_and_next_uri_uses_request_host() -> None:
    emulator = make_emulator(max_page_rows=4)
    client = make_client(emulator)
    eid = run(client, NUMBERS)
    first = client.get(
        f"http://dune.proxy.example:8123/api/v1/execution/{eid}/results?limit=1000"
    ).json()
    assert first["result"]["metadata"]["row_count"] == 4
    assert first["next_offset"] == 4 and isinstance(first["next_offset"], int)
    next_uri = urlsplit(first["next_uri"])
    assert (next_uri.scheme, next_uri.netloc) == ("http", "dune.proxy.example:8123")
    assert next_uri.path == f"/api/v1/execution/{eid}/results"
    assert parse_qs(next_uri.query) == {"limit": ["4"], "offset": ["4"]}

    bodies = pages(client, f"/api/v1/execution/{eid}/results?limit=1000")
    assert [len(b["result"]["rows"]) for b in bodies] == [4, 4, 2]
    assert [b["result"]["metadata"]["row_count"] for b in bodies] == [4, 4, 2]
    assert all(b["result"]["metadata"]["total_row_count"] == 10 for b in bodies)
    assert "next_uri" not in bodies[-1] and "next_offset" not in bodies[-1]
    rows = [r["n"] for b in bodies for r in b["result"]["rows"]]
    assert rows == list(range(10))
    assert {b["execution_id"] for b in bodies} == {eid}


def test_next_uri_carries_read_params_but_not_api_key(client: Client) -> None:
    eid = run(client, NUMBERS)
    body = client.get(
        f"/api/v1/execution/{eid}/results",
        params={
            "limit": 3,
            "columns": "label,n",
            "sort_by": "n desc",
            "filters": "n > 1",
            "allow_partial_results": "true",
            "ignore_max_datapoints_per_request": "true",
            "api_key": "in-the-query",
        },
    ).json()
    query = parse_qs(urlsplit(body["next_uri"]).query)
    assert query == {
        "limit": ["3"],
        "offset": ["3"],
        "columns": ["label,n"],
        "sort_by": ["n desc"],
        "filters": ["n > 1"],
        "allow_partial_results": ["true"],
        "ignore_max_datapoints_per_request": ["true"],
    }
    # Keys are sorted like Go's url.Values.Encode.
    keys = [part.split("=")[0] for part in urlsplit(body["next_uri"]).query.split("&")]
    assert keys == sorted(keys)


def test_offset_past_end_is_an_empty_page(client: Client) -> None:
    eid = run(client, NUMBERS)
    body = client.get(f"/api/v1/execution/{eid}/results?offset=30&limit=5").json()
    assert body["result"]["rows"] == []
    meta = body["result"]["metadata"]
    assert meta["row_count"] == 0 and meta["datapoint_count"] == 0
    assert meta["result_set_bytes"] == 0 and meta["total_row_count"] == 10
    assert "next_uri" not in body


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "offset=-2",
        "sample_count=3&limit=2",
        "sample_count=3&offset=0",
        "sample_count=3&filters=n%20%3E%201",
        "columns=nope",
        "columns=",
    ],
)
def test_bad_read_params_are_400(client: Client, query: str) -> None:
    eid = run(client, NUMBERS)
    response = client.get(f"/api/v1/execution/{eid}/results?{query}")
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_sample_count_returns_a_subset_without_next(client: Client) -> None:
    eid = run(client, NUMBERS)
    body = client.get(f"/api/v1/execution/{eid}/results?sample_count=4&columns=n").json()
    rows = body["result"]["rows"]
    assert len(rows) == 4 and all(set(r) == {"n"} for r in rows)
    assert body["result"]["metadata"]["total_row_count"] == 10
    assert "next_uri" not in body


def test_columns_select_and_order(client: Client) -> None:
    eid = run(client, TORTURE)
    body = client.get(
        f"/api/v1/execution/{eid}/results",
        params={"columns": '"value.usd","Token Symbol",row_id', "limit": 2},
    ).json()
    meta = body["result"]["metadata"]
    assert meta["column_names"] == ["value.usd", "Token Symbol", "row_id"]
    assert meta["column_types"] == ["double", "varchar", "bigint"]
    assert meta["datapoint_count"] == 6
    assert list(body["result"]["rows"][0]) == ["Token Symbol", "row_id", "value.usd"]


def test_row_keys_are_byte_sorted_but_column_names_keep_query_order(
    client: Client,
) -> None:
    eid = run(client, TORTURE)
    response = client.get(f"/api/v1/execution/{eid}/results?limit=1")
    body = response.json()
    names = body["result"]["metadata"]["column_names"]
    assert names[:3] == ["row_id", "label", "u256"]
    keys = list(body["result"]["rows"][0])
    assert keys == sorted(names, key=lambda s: s.encode())
    assert keys[:2] == ["TableName", "Token Symbol"]
    # And in the raw bytes too, not just after parsing.
    raw = response.content.decode()
    assert raw.index('"TableName"') < raw.index('"Token Symbol"') < raw.index('"amount_dec"')


def test_page_metadata_is_consistent(client: Client) -> None:
    eid = run(client, ETH)
    bodies = pages(client, f"/api/v1/execution/{eid}/results?limit=500")
    metas = [b["result"]["metadata"] for b in bodies]
    assert sum(m["row_count"] for m in metas) == metas[0]["total_row_count"] == 1538
    assert sum(m["result_set_bytes"] for m in metas) == metas[0]["total_result_set_bytes"]
    assert all(m["datapoint_count"] == m["row_count"] * 3 for m in metas)
    for key in (
        "column_names",
        "column_types",
        "row_count",
        "result_set_bytes",
        "total_row_count",
        "total_result_set_bytes",
        "datapoint_count",
        "pending_time_millis",
        "execution_time_millis",
    ):
        assert key in metas[0]


def test_no_limit_pages_at_the_server_cap() -> None:
    emulator = make_emulator(max_page_rows=1000)
    client = make_client(emulator)
    eid = run(client, ETH)
    body = client.get(f"/api/v1/execution/{eid}/results").json()
    assert body["result"]["metadata"]["row_count"] == 1000
    assert body["next_offset"] == 1000


def test_datapoint_cap_is_402_unless_ignored(emulator: DuneEmulator, client: Client) -> None:
    emulator.config.max_datapoints_per_request = 20
    eid = run(client, NUMBERS)
    refused = client.get(f"/api/v1/execution/{eid}/results?limit=7")  # 7 x 3 = 21
    assert refused.status_code == 402
    assert refused.json()["error"].startswith(
        "This api request would exceed your configured limits per request."
    )
    assert client.get(f"/api/v1/execution/{eid}/results?limit=6").status_code == 200
    assert client.get(f"/api/v1/execution/{eid}/results?limit=7&columns=n").status_code == 200
    ignored = client.get(
        f"/api/v1/execution/{eid}/results?limit=7&ignore_max_datapoints_per_request=true"
    )
    assert ignored.status_code == 200
    csv = client.get(f"/api/v1/execution/{eid}/results/csv?limit=7")
    assert csv.status_code == 402
    emulator.config.max_datapoints_per_request = None
    assert client.get(f"/api/v1/execution/{eid}/results?limit=10").status_code == 200


def test_default_page_of_8_columns_trips_the_250k_cap() -> None:
    emulator = make_emulator()
    emulator.add_synthetic(777, 40_000)
    client = make_client(emulator)
    latest = client.get("/api/v1/query/777/results")
    assert latest.status_code == 402  # 32,000 x 8 = 256,000 datapoints
    ok = client.get("/api/v1/query/777/results?limit=31250")
    assert ok.status_code == 200 and ok.json()["next_offset"] == 31250


def test_next_uri_needs_the_key_again(emulator: DuneEmulator) -> None:
    keyed = make_client(emulator)
    eid = execute(keyed, NUMBERS)
    wait(keyed, eid)
    anonymous = make_client(emulator, headers={})
    body = anonymous.get(f"/api/v1/execution/{eid}/results?limit=2&api_key=k").json()
    assert "api_key" not in body["next_uri"]
    assert anonymous.get(body["next_uri"]).status_code == 401
    assert anonymous.get(body["next_uri"], headers=HEADERS).status_code == 200
