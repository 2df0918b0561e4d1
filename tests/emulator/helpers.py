"""Shared helpers for the emulator tests: a frozen clock, a client, polling."""

from __future__ import annotations

import asyncio
import atexit
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.types import ASGIApp

from downstream.emulator import Clock, DuneEmulator

Client = httpx.Client
KEY = "test-key"
HEADERS = {"X-Dune-Api-Key": KEY}
START = datetime(2026, 3, 2, 14, 5, 11, tzinfo=UTC)
# A start instant with non-zero nanoseconds, so 9-digit timestamps show all digits.
START_NS = int(START.timestamp()) * 1_000_000_000 + 402_913_517

ETH = 1463956
TORTURE = 9000001
EMPTY = 9000002
NUMBERS = 42
TERMINAL = {
    "QUERY_STATE_COMPLETED",
    "QUERY_STATE_COMPLETED_PARTIAL",
    "QUERY_STATE_FAILED",
    "QUERY_STATE_CANCELLED",
    "QUERY_STATE_CANCELED",
    "QUERY_STATE_EXPIRED",
}


def make_emulator(**config: Any) -> DuneEmulator:
    """Bundled datasets plus query 42: ten rows n=0..9 with a ``min`` parameter filter."""
    emulator = DuneEmulator.bundled(clock=Clock.frozen(START_NS))
    emulator.config.update(config)
    emulator.add_dataset(
        NUMBERS,
        [{"n": n, "label": f"row {n}", "half": n / 2} for n in range(10)],
        column_names=["n", "label", "half"],
        column_types=["bigint", "varchar", "double"],
        name="numbers",
        parameters=[{"key": "min", "type": "number", "value": "0"}],
        filters=[{"parameter": "min", "column": "n", "op": ">="}],
    )
    return emulator


# One private loop for every in-process client: requests run on it synchronously.
_LOOP = asyncio.new_event_loop()
atexit.register(_LOOP.close)


class InProcessTransport(httpx.BaseTransport):
    """Call the ASGI app directly on a private event loop: no threads, no sockets.

    Starlette's TestClient starts a thread portal per request (~3 ms); this keeps
    the suite fast. Wire-level behaviour is tested against ``serve()`` instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._asgi.handle_async_request(request)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = _LOOP.run_until_complete(call())
        return httpx.Response(status, headers=headers, content=content)


def make_client(emulator: DuneEmulator, headers: dict[str, str] | None = None) -> Client:
    return httpx.Client(
        transport=InProcessTransport(emulator.app),
        base_url="http://testserver",
        headers=HEADERS if headers is None else headers,
    )


def execute(client: Client, query_id: int, **parameters: Any) -> str:
    response = client.post(
        f"/api/v1/query/{query_id}/execute", json={"query_parameters": parameters}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["execution_id"])


def status(client: Client, execution_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/execution/{execution_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait(client: Client, execution_id: str, max_polls: int = 50) -> dict[str, Any]:
    """Poll status until terminal (polls drive the state machine, no sleeping)."""
    for _ in range(max_polls):
        body = status(client, execution_id)
        if body["state"] in TERMINAL:
            return body
    raise AssertionError(f"{execution_id} did not finish in {max_polls} polls")


def run(client: Client, query_id: int, **parameters: Any) -> str:
    execution_id = execute(client, query_id, **parameters)
    wait(client, execution_id)
    return execution_id
