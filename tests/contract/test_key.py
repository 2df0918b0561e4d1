"""The API key: header only, refused when wrong, never echoed in an error (dune-api.md 1.2)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from downstream.emulator import DuneEmulator
from downstream.errors import DuneAuthError, DuneBadRequest, DuneError, DuneServerError

from .conftest import KEY, Connect, WireLog, add_transfers


def test_the_key_goes_in_the_header_of_every_request_and_nowhere_else(
    emulator: DuneEmulator, connect: Connect, wire_log: WireLog, query_id: int
) -> None:
    add_transfers(emulator, query_id, 30)
    dune = connect(max_page_rows=4)
    eid = dune.execute(query_id).execution_id
    status = dune.wait_for_execution(eid, query_id=query_id)
    rows = [r for p in dune.iter_result_pages(eid, metadata=status.result_metadata) for r in p.rows]
    assert len(rows) == 20
    dune.get_latest_result(query_id)
    dune.cancel(eid)

    assert len(wire_log.requests) == emulator.stats()["requests_total"] > 8
    for request in wire_log.requests:
        assert request.headers.get_list("X-Dune-Api-Key") == [KEY]
        assert KEY not in str(request.url) and "api_key" not in request.url.params
        assert KEY not in request.content.decode()
        others = [v for k, v in request.headers.multi_items() if k.lower() != "x-dune-api-key"]
        assert not any(KEY in v for v in others)


def test_a_wrong_key_is_an_auth_error_and_not_retried(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    wrong = "sk-wrong-0000000000"
    dune = connect(api_key=wrong)
    with pytest.raises(DuneAuthError) as info:
        dune.execute(query_id)
    assert info.value.status_code == 401 and "invalid api key" in str(info.value).lower()
    assert wrong not in str(info.value)
    with pytest.raises(DuneAuthError):
        dune.get_latest_result(query_id)
    stats = emulator.stats()
    assert stats["requests_total"] == 2 and stats["executions_created_total"] == 0


def _raised(call: Callable[[], object]) -> DuneError:
    try:
        call()
    except DuneError as exc:
        return exc
    raise AssertionError("expected a DuneError")


def test_the_key_never_appears_in_error_messages_even_when_the_server_echoes_it(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    dune = connect()
    eid = dune.execute(query_id).execution_id
    # Gateways and error pages sometimes echo request headers back.
    echo = f"<html><pre>X-Dune-Api-Key: {KEY}</pre></html>"
    emulator.add_faults(
        [
            {"method": "POST", "path": "/execute$", "status": 403, "json": {"error": f"{KEY}?"}},
            {"method": "GET", "path": "/status$", "status": 503, "body": echo, "times": 6},
            {"method": "POST", "path": "/cancel$", "status": 400, "json": {"error": f"bad {KEY}"}},
            {
                "method": "GET",
                "path": "/query/.*/results$",
                "status": 401,
                "json": {"error": f"invalid API Key {KEY}"},
            },
        ]
    )
    errors = [
        _raised(lambda: dune.execute(query_id)),
        _raised(lambda: dune.get_status(eid)),
        _raised(lambda: dune.cancel(eid)),
        _raised(lambda: dune.get_latest_result(query_id)),
    ]
    assert [type(e) for e in errors] == [
        DuneAuthError,
        DuneServerError,
        DuneBadRequest,
        DuneAuthError,
    ]
    for exc in errors:
        for text in (str(exc), repr(exc), exc.message, *map(str, exc.args)):
            assert KEY not in text
        assert "***" in exc.message


def test_transport_errors_do_not_leak_the_key(
    emulator: DuneEmulator, connect: Connect, query_id: int
) -> None:
    add_transfers(emulator, query_id, 12)
    dune = connect(timeout=httpx.Timeout(0.2))
    emulator.add_fault(
        {"method": "GET", "path": "/query/.*/results$", "action": "reset", "times": 6}
    )
    exc = _raised(lambda: dune.get_latest_result(query_id))
    assert "RemoteProtocolError" in exc.message
    assert KEY not in str(exc) and KEY not in repr(exc)
