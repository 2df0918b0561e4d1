"""The emulator on loopback and a fast client, shared by the hostile-input tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downstream.dune import DuneClient, RetryPolicy, make_http_client
from downstream.emulator import DuneEmulator, serve

KEY = "hostile-test-key-3b9e1f7d"


@pytest.fixture
def emulator() -> DuneEmulator:
    emulator = DuneEmulator.bundled()
    emulator.config.valid_keys = [KEY]
    return emulator


@pytest.fixture
def base_url(emulator: DuneEmulator) -> Iterator[str]:
    with serve(emulator) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[DuneClient]:
    """Retries on, sleeping never: a hostile reply is retried like a real one, fast."""
    with DuneClient(
        make_http_client(base_url),
        KEY,
        sleep=lambda seconds: None,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_elapsed=30),
    ) as dune:
        yield dune


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bronze.db")


class ResultRewriter(httpx.BaseTransport):
    """Real HTTP to the emulator; while ``result`` is set, the ``result`` of every
    ``/execution/{id}/results`` page is replaced by that raw JSON text.

    For what the emulator cannot serialise (it writes valid JSON): lone-surrogate escapes,
    ``NaN``, integers of 10,000 digits, rows that are not objects, deep nesting. The rest
    of the page (execution id, state, times) stays the emulator's own.
    """

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.result: bytes | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.result is None or not request.url.path.endswith("/results"):
            return response
        if "/execution/" not in request.url.path:
            return response
        response.read()
        envelope = json.loads(response.content)
        envelope.pop("next_offset", None)
        envelope.pop("next_uri", None)
        envelope["result"] = "__RESULT__"
        body = json.dumps(envelope).encode().replace(b'"__RESULT__"', self.result)
        return httpx.Response(200, headers={"content-type": "application/json"}, content=body)

    def close(self) -> None:
        self.inner.close()


def raw_result(names: list[str], types: list[str], rows: str, count: int) -> bytes:
    """A ``result`` object whose rows are given as raw JSON text."""
    meta = json.dumps(
        {
            "column_names": names,
            "column_types": types,
            "row_count": count,
            "total_row_count": count,
        }
    )
    return f'{{"rows": {rows}, "metadata": {meta}}}'.encode()


@pytest.fixture
def rewriter() -> ResultRewriter:
    return ResultRewriter()


@pytest.fixture
def raw_client(base_url: str, rewriter: ResultRewriter) -> Iterator[DuneClient]:
    """Like ``client``, with results pages rewritten while ``rewriter.result`` is set."""
    with DuneClient(
        make_http_client(base_url, transport=rewriter),
        KEY,
        sleep=lambda seconds: None,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_elapsed=30),
    ) as dune:
        yield dune
