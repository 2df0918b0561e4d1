"""Fault injection (dune-api.md 8.10-8.11): canned errors, after-handler faults, cut bodies.

The last tests run a real uvicorn server on loopback, because a dropped
connection and a client timeout only exist on a real socket.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from downstream.emulator import DuneEmulator, serve
from downstream.emulator.server import bind_socket

from .helpers import ETH, HEADERS, KEY, NUMBERS, Client, execute, make_emulator, run, status


def test_respond_fault_with_html_body_then_normal(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_fault(
        {
            "method": "GET",
            "path": "/execution/.*/status$",
            "status": 502,
            "body": "<html><body>Bad Gateway</body></html>",
        }
    )
    eid = execute(client, NUMBERS)
    faulted = client.get(f"/api/v1/execution/{eid}/status")
    assert faulted.status_code == 502
    assert faulted.headers["content-type"].startswith("text/html")
    assert faulted.text.startswith("<html>")
    # The fault answered before the handler, so it was not a poll.
    assert status(client, eid)["state"] == "QUERY_STATE_PENDING"
    assert emulator.stats()["faults_fired"] == {"respond": 1}


def test_nth_and_times(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_fault({"path": "/query/.*/results$", "nth": 2, "times": 2, "status": 503})
    url = f"/api/v1/query/{ETH}/results?limit=1"
    assert [client.get(url).status_code for _ in range(5)] == [200, 503, 503, 200, 200]
    assert emulator.pending_faults() == []


def test_json_fault_and_empty_body(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_faults(
        [
            {"status": 500, "json": {"error": "An internal error occured"}},
            {"status": 504},
        ]
    )
    first = client.get(f"/api/v1/query/{ETH}/results")
    assert first.status_code == 500 and first.json() == {"error": "An internal error occured"}
    second = client.get(f"/api/v1/query/{ETH}/results")
    assert second.status_code == 504 and second.content == b""


def test_faults_only_match_their_method(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_fault({"method": "POST", "path": "/execute", "status": 503})
    assert client.get(f"/api/v1/query/{ETH}/results?limit=1").status_code == 200
    assert client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).status_code == 503
    emulator.add_fault({"method": "POST", "path": "/execute", "status": 503})
    emulator.clear_faults()
    assert client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).status_code == 200


def test_after_fault_on_execute_still_creates_the_execution(
    emulator: DuneEmulator, client: Client
) -> None:
    emulator.add_fault(
        {"method": "POST", "path": "/execute$", "when": "after", "status": 502, "body": ""}
    )
    response = client.post(f"/api/v1/query/{NUMBERS}/execute", json={})
    assert response.status_code == 502
    assert emulator.stats()["executions_created"] == {str(NUMBERS): 1}
    created = emulator.execution_ids(NUMBERS)
    assert len(created) == 1
    # A client checking the latest result finds the execution it never heard about.
    latest = client.get(f"/api/v1/query/{NUMBERS}/results").json()
    assert latest["execution_id"] == created[0]


def test_truncate_cuts_the_body_in_half(emulator: DuneEmulator, client: Client) -> None:
    eid = run(client, NUMBERS)
    whole = client.get(f"/api/v1/execution/{eid}/results").content
    emulator.add_fault({"path": "/results$", "action": "truncate"})
    cut = client.get(f"/api/v1/execution/{eid}/results")
    assert cut.status_code == 200
    assert cut.content == whole[: len(whole) // 2]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut.content)
    assert emulator.stats()["faults_fired"] == {"truncate": 1}


def test_slow_and_delay_are_async(emulator: DuneEmulator, client: Client) -> None:
    emulator.add_fault({"path": "/status$", "action": "slow", "delay": 0.05})
    emulator.add_fault({"path": "/status$", "status": 503, "delay": 0.05})
    eid = execute(client, NUMBERS)
    started = time.monotonic()
    assert client.get(f"/api/v1/execution/{eid}/status").status_code == 200
    assert client.get(f"/api/v1/execution/{eid}/status").status_code == 503
    assert time.monotonic() - started >= 0.1


def test_rules_accept_only_known_keys(emulator: DuneEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault keys"):
        emulator.add_fault({"statsu": 500})
    with pytest.raises(ValueError, match="action"):
        emulator.add_fault({"action": "explode"})


# --- real sockets ---------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[DuneEmulator, str]]:
    emulator = make_emulator()
    with serve(emulator) as base_url:
        yield emulator, base_url


def test_serve_gives_a_loopback_url(live: tuple[DuneEmulator, str]) -> None:
    _, base_url = live
    assert base_url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=base_url, headers=HEADERS) as http:
        body = http.get(f"/api/v1/query/{ETH}/results?limit=2").json()
        assert body["next_uri"].startswith(base_url + "/api/v1/execution/")
        assert http.get(body["next_uri"]).status_code == 200


def test_reset_is_a_protocol_error_mid_body(live: tuple[DuneEmulator, str]) -> None:
    emulator, base_url = live
    emulator.add_fault({"path": f"/query/{ETH}/results$", "action": "reset"})
    with httpx.Client(base_url=base_url, headers=HEADERS) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"/api/v1/query/{ETH}/results?limit=50")
        # The server is fine afterwards.
        assert http.get(f"/api/v1/query/{ETH}/results?limit=50").status_code == 200


def test_delay_trips_a_client_timeout(live: tuple[DuneEmulator, str]) -> None:
    emulator, base_url = live
    emulator.add_fault({"path": "/status$", "action": "slow", "delay": 5})
    with httpx.Client(base_url=base_url, headers=HEADERS, timeout=0.2) as http:
        eid = http.post(f"/api/v1/query/{NUMBERS}/execute", json={}).json()["execution_id"]
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"/api/v1/execution/{eid}/status")
        # Other requests are not blocked by the sleeping one.
        assert http.get(f"/api/v1/execution/{eid}/status").status_code == 200


def test_the_served_socket_says_tcp_so_asyncio_sets_nodelay() -> None:
    # Without proto=IPPROTO_TCP asyncio skips TCP_NODELAY on accepted sockets, and Nagle
    # plus delayed ACKs add ~40 ms to every keep-alive response.
    sock = bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (None, 200),
        ({"status": 503, "body": "<html>"}, 503),
        ({"status": 502, "when": "after"}, 502),
        ({"action": "truncate"}, 200),
        ({"action": "reset"}, 200),
        ({"action": "slow", "delay": 0.01}, 200),
    ],
)
def test_stats_count_a_response_before_it_is_sent(
    emulator: DuneEmulator, client: Client, fault: dict[str, Any] | None, status: int
) -> None:
    # A client that reads stats right after its last response must see that response,
    # and a reset between two tests must not be undone by a late count from the first.
    eid = execute(client, NUMBERS)
    if fault is not None:
        emulator.add_fault({"path": "/status$", **fault})
    emulator.reset_stats()
    at_last_byte: list[dict[str, int]] = []

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            at_last_byte.append(dict(emulator.stats()["requests_by_status"]))

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": f"/api/v1/execution/{eid}/status",
        "raw_path": f"/api/v1/execution/{eid}/status".encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"x-dune-api-key", KEY.encode())],
    }
    asyncio.run(emulator.app(scope, receive, send))  # type: ignore[arg-type]
    assert at_last_byte == [{str(status): 1}]
