"""CSV endpoints (dune-api.md 2.5, 6.4, 8.9): headers for paging, header line per page, NULLs."""

from __future__ import annotations

import csv
import io

from downstream.emulator import DuneEmulator

from .helpers import EMPTY, NUMBERS, TORTURE, Client, execute, make_client, make_emulator, run


def test_csv_pages_repeat_the_header_and_use_paging_headers() -> None:
    emulator = make_emulator(max_page_rows=4)
    client = make_client(emulator)
    eid = run(client, NUMBERS)
    url: str | None = f"http://example.test/api/v1/execution/{eid}/results/csv?limit=100"
    bodies = []
    offsets = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        bodies.append(response.text)
        url = response.headers.get("x-dune-next-uri")
        if url:
            assert url.startswith(f"http://example.test/api/v1/execution/{eid}/results/csv?")
            offsets.append(int(response.headers["x-dune-next-offset"]))
    assert offsets == [4, 8]
    assert len(bodies) == 3
    for body in bodies:
        assert body.startswith("n,label,half\n")
        assert body.endswith("\n") and "\r" not in body
    assert bodies[0] == "n,label,half\n0,row 0,0\n1,row 1,0.5\n2,row 2,1\n3,row 3,1.5\n"
    assert bodies[2] == "n,label,half\n8,row 8,4\n9,row 9,4.5\n"


def test_csv_nulls_quoting_and_go_floats(client: Client) -> None:
    eid = run(client, TORTURE)
    text = client.get(f"/api/v1/execution/{eid}/results/csv").text
    records = list(csv.reader(io.StringIO(text, newline="")))
    header, rows = records[0], records[1:]
    assert header[-3:] == ["Token Symbol", "TableName", "value.usd"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_id["<nil>"] == dict.fromkeys(header, "<nil>")  # the all-NULL row
    assert by_id["2"]["value.usd"] == "4.474223e+06"
    assert by_id["2"]["u256"] == str(2**256 - 1)
    assert by_id["3"]["i256"] == str(-(2**255))
    assert by_id["3"]["Token Symbol"] == "USD,C"
    assert by_id["3"]["TableName"] == 'say "hi"'
    assert by_id["4"]["note"] == "line one\nline two"
    assert by_id["5"]["note"] == "windows\r\nline end"
    assert by_id["4"]["TableName"] == ""  # empty string, not NULL
    assert by_id["1"]["flag"] == "true" and by_id["2"]["flag"] == "false"
    assert by_id["1"]["tags"] == '["WETH","USDC"]'
    assert '"USD,C"' in text and '"say ""hi"""' in text


def test_csv_null_can_be_empty() -> None:
    emulator = make_emulator(csv_null="")
    client = make_client(emulator)
    eid = run(client, TORTURE)
    lines = client.get(f"/api/v1/execution/{eid}/results/csv").text.splitlines()
    assert ",,,,,,,,,,,,,,,," in lines


def test_csv_refused_until_finished(emulator: DuneEmulator, client: Client) -> None:
    eid = execute(client, NUMBERS)
    pending = client.get(f"/api/v1/execution/{eid}/results/csv")
    assert pending.status_code == 400
    assert pending.json() == {
        "error": "Query state is QUERY_STATE_PENDING, cannot provide CSV result"
    }
    executing = client.get(f"/api/v1/execution/{eid}/results/csv")
    assert executing.json() == {
        "error": "Query state is QUERY_STATE_EXECUTING, cannot provide CSV result"
    }
    assert client.get(f"/api/v1/execution/{eid}/results/csv").status_code == 200


def test_csv_partial_needs_the_flag(emulator: DuneEmulator, client: Client) -> None:
    emulator.set_script(NUMBERS, [], "partial")
    eid = execute(client, NUMBERS)
    assert client.get(f"/api/v1/execution/{eid}/results/csv").status_code == 400
    ok = client.get(f"/api/v1/execution/{eid}/results/csv?allow_partial_results=true")
    assert ok.text.count("\n") == 6  # header + 5 of 10 rows


def test_empty_result(client: Client) -> None:
    eid = run(client, EMPTY)
    body = client.get(f"/api/v1/execution/{eid}/results").json()
    assert body["state"] == "QUERY_STATE_COMPLETED"
    assert body["result"]["rows"] == []
    assert body["result"]["metadata"]["column_names"] == ["block_time", "tx_hash", "amount_raw"]
    assert body["result"]["metadata"]["total_row_count"] == 0
    assert "next_uri" not in body
    csv_text = client.get(f"/api/v1/execution/{eid}/results/csv").text
    assert csv_text == "block_time,tx_hash,amount_raw\n"
