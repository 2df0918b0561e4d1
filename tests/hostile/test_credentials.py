"""The API key goes only in the ``X-Dune-Api-Key`` header, and only to the configured host.

Over real loopback: the emulator is "Dune"; a second server on another port records
whatever reaches it. A transport in front of the client points every ``next_uri`` at that
second server (or answers with a redirect to it). The client rebuilds each next page on
its own host from the offset (``DuneClient._next_offset``), so the other host receives
nothing, with or without the key.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from downstream.dune import DuneClient, RetryPolicy, make_http_client
from downstream.emulator import DuneEmulator
from downstream.pipeline import sync_query
from downstream.spec import QuerySpec

from .conftest import KEY

QID = 700002
ROWS = [{"n": n} for n in range(5)]


class Recorder(BaseHTTPRequestHandler):
    """Answers anything with a plausible results page, and records the request."""

    seen: list[dict[str, Any]]

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        body = json.dumps({"execution_id": "x", "state": "QUERY_STATE_COMPLETED"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Another HTTP server on loopback: its base URL and the requests it received."""
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


class Misdirect(httpx.BaseTransport):
    """Real HTTP to the emulator; records every request; points ``next_uri`` elsewhere
    (``drop_offset`` also removes ``next_offset``), or with ``redirect`` answers results
    pages with a 307 to the other host."""

    def __init__(self, other: str, *, drop_offset: bool = False, redirect: bool = False):
        self.inner = httpx.HTTPTransport()
        self.other, self.drop_offset, self.redirect = other, drop_offset, redirect
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = self.inner.handle_request(request)
        if "/execution/" not in request.url.path or not request.url.path.endswith("/results"):
            return response
        if self.redirect:
            response.close()
            location = f"{self.other}{request.url.raw_path.decode()}"
            return httpx.Response(307, headers={"Location": location})
        response.read()
        page = json.loads(response.content)
        if "next_uri" in page:
            uri = httpx.URL(page["next_uri"])
            page["next_uri"] = f"{self.other}{uri.raw_path.decode()}"
            if self.drop_offset:
                page.pop("next_offset", None)
        return httpx.Response(200, json=page)


def run_through(emulator: DuneEmulator, base_url: str, transport: Misdirect, db_path: str) -> Any:
    emulator.add_dataset(QID, ROWS, column_names=["n"], column_types=["bigint"])
    emulator.set_script(QID, [], "completed")
    http = make_http_client(base_url, transport=transport)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_elapsed=10)
    with DuneClient(http, KEY, sleep=lambda s: None, max_page_rows=2, retry=retry) as dune:
        spec = QuerySpec(name="numbers", query_id=QID, max_age_hours=0, primary_key=["n"])
        return sync_query(dune, db_path, spec)


def assert_key_only_in_our_header(transport: Misdirect, base_url: str) -> None:
    ours = httpx.URL(base_url)
    assert transport.sent, "no request was made"
    for request in transport.sent:
        assert (request.url.host, request.url.port) == (ours.host, ours.port), request.url
        assert request.headers["x-dune-api-key"] == KEY
        assert "api_key" not in request.url.params
        assert KEY not in str(request.url)


@pytest.mark.parametrize("drop_offset", [False, True], ids=["with next_offset", "next_uri only"])
def test_a_next_uri_on_another_host_is_never_followed(
    emulator: DuneEmulator,
    base_url: str,
    elsewhere: tuple[str, list[dict[str, Any]]],
    db_path: str,
    caplog: pytest.LogCaptureFixture,
    drop_offset: bool,
) -> None:
    other, seen = elsewhere
    transport = Misdirect(other, drop_offset=drop_offset)

    with caplog.at_level(logging.WARNING, logger="downstream"):
        result = run_through(emulator, base_url, transport, db_path)

    assert (result.outcome, result.rows) == ("loaded", 5), result.error
    assert seen == []
    assert_key_only_in_our_header(transport, base_url)
    pages = [r for r in transport.sent if r.url.path.endswith("/results")]
    assert [r.url.params["offset"] for r in pages] == ["0", "2", "4"]
    warned = [r for r in caplog.records if "next_uri points at another host" in r.getMessage()]
    assert len(warned) == 2  # one per page that had a next one


def test_a_redirect_to_another_host_is_not_followed(
    emulator: DuneEmulator,
    base_url: str,
    elsewhere: tuple[str, list[dict[str, Any]]],
    db_path: str,
) -> None:
    other, seen = elsewhere
    transport = Misdirect(other, redirect=True)

    result = run_through(emulator, base_url, transport, db_path)

    assert (result.outcome, result.error_type) == ("failed", "DuneProtocolError")
    assert seen == []
    assert_key_only_in_our_header(transport, base_url)
