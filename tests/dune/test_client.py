"""The Dune client against scripted HTTP sequences (no network, no real sleeps)."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx

from downstream.dune import DuneClient, ExecutionState, PollPolicy, make_http_client
from downstream.dune.client import decode_json
from downstream.errors import (
    DuneAuthError,
    DuneBadRequest,
    DuneNotFound,
    DuneProtocolError,
    DuneRateLimited,
    DuneServerError,
    DuneTransportError,
    ExecutionCancelled,
    ExecutionExpired,
    ExecutionFailed,
    ExecutionPartial,
    ExecutionTimedOut,
    UnknownExecutionState,
)
from tests.dune.conftest import KEY, FakeClock, page_body, status_body

EID = "01HKZJ2683PHF9Q9PHHQ8FW4Q1"
EID2 = "01HKZJ2683PHF9Q9PHHQ8FW4Q2"
NAMES = ["day", "value"]


def rows(start: int, n: int) -> list[dict[str, Any]]:
    return [{"day": f"d{i}", "value": str(i)} for i in range(start, start + n)]


def test_wait_polls_pending_executing_completed_with_growing_backoff(
    client: DuneClient, router: respx.Router, clock: FakeClock
) -> None:
    route = router.get(f"/execution/{EID}/status").mock(
        side_effect=[
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_PENDING", queue_position=3)),
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_PENDING", queue_position=1)),
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING")),
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING")),
            httpx.Response(
                200,
                json=status_body(
                    EID,
                    "QUERY_STATE_COMPLETED",
                    execution_ended_at="2026-12-01T12:00:09.123456789Z",
                    result_metadata={"column_names": NAMES, "total_row_count": 5},
                    some_future_field={"x": 1},
                ),
            ),
        ]
    )
    seen: list[ExecutionState] = []
    status = client.wait_for_execution(
        EID,
        poll=PollPolicy(initial=1.0, factor=2.0, max_interval=4.0),
        on_status=lambda s: seen.append(s.state),
    )
    assert status.state is ExecutionState.COMPLETED
    assert status.result_metadata is not None and status.result_metadata.total_row_count == 5
    assert route.call_count == 5
    assert clock.sleeps == [1.0, 2.0, 4.0, 4.0]
    assert seen[0] is ExecutionState.PENDING and seen[-1] is ExecutionState.COMPLETED


def test_wait_deadline_cancels_the_execution_and_raises(
    client: DuneClient, router: respx.Router, clock: FakeClock
) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING"))
    )
    cancel = router.post(f"/execution/{EID}/cancel").mock(
        return_value=httpx.Response(200, json={"success": True})
    )
    with pytest.raises(ExecutionTimedOut) as info:
        client.wait_for_execution(EID, query_id=7, timeout=60)
    assert cancel.call_count == 1
    assert clock.t == pytest.approx(60)
    assert EID in str(info.value) and "query 7" in str(info.value)


@pytest.mark.parametrize(
    ("state", "extra", "error"),
    [
        (
            "QUERY_STATE_FAILED",
            {
                "error": {
                    "type": "FAILED_TYPE_EXECUTION_FAILED",
                    "message": f"line 1:8: Column 'x' cannot be resolved [Execution ID: {EID}]",
                    "metadata": {"line": 1, "column": 8},
                }
            },
            ExecutionFailed,
        ),
        ("QUERY_STATE_CANCELLED", {"cancelled_at": "2026-12-01T12:00:01Z"}, ExecutionCancelled),
        ("QUERY_STATE_CANCELED", {"cancelled_at": "2026-12-01T12:00:01Z"}, ExecutionCancelled),
        ("QUERY_STATE_EXPIRED", {}, ExecutionExpired),
        ("QUERY_STATE_COMPLETED_PARTIAL", {}, ExecutionPartial),
    ],
)
def test_terminal_states_without_a_usable_result_raise_typed_errors(
    client: DuneClient, router: respx.Router, state: str, extra: dict[str, Any], error: type
) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(200, json=status_body(EID, state, **extra))
    )
    with pytest.raises(error) as info:
        client.wait_for_execution(EID, query_id=1463956)
    assert EID in str(info.value) and "1463956" in str(info.value)
    if error is ExecutionFailed:
        assert info.value.error_type == "FAILED_TYPE_EXECUTION_FAILED"
        assert "cannot be resolved" in info.value.error_message


def test_partial_is_returned_when_the_caller_allows_it(
    client: DuneClient, router: respx.Router
) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_COMPLETED_PARTIAL"))
    )
    status = client.wait_for_execution(EID, allow_partial=True)
    assert status.state is ExecutionState.PARTIAL


def test_unknown_state_is_an_explicit_error(client: DuneClient, router: respx.Router) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_TELEPORTING"))
    )
    with pytest.raises(UnknownExecutionState, match="QUERY_STATE_TELEPORTING") as info:
        client.get_status(EID, query_id=1463956)
    # Like every Dune error, it names what it is about.
    assert (info.value.query_id, info.value.execution_id) == (1463956, EID)
    assert info.value.state == "QUERY_STATE_TELEPORTING"
    router.get("/query/1463956/results").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_TELEPORTING"))
    )
    with pytest.raises(UnknownExecutionState) as on_page:
        client.get_latest_result(1463956)
    assert (on_page.value.query_id, on_page.value.execution_id) == (1463956, EID)


def test_status_tolerates_missing_optional_fields_and_epoch_expiry(
    client: DuneClient, router: respx.Router
) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(
            200,
            json={
                "execution_id": EID,
                "state": "QUERY_STATE_EXECUTING",
                "expires_at": "1970-01-01T00:00:00Z",
                "submitted_at": "2026-12-01T12:00:00Z",
                "execution_started_at": None,
            },
        )
    )
    status = client.get_status(EID)
    assert status.expires_at is None and status.execution_started_at is None
    assert status.query_id is None and status.result_metadata is None


def test_429_honours_retry_after_then_succeeds(
    client: DuneClient, router: respx.Router, clock: FakeClock
) -> None:
    route = router.get(f"/execution/{EID}/status").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "17"}, json={"error": "Too many"}),
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING")),
        ]
    )
    assert client.get_status(EID).state is ExecutionState.EXECUTING
    assert route.call_count == 2 and clock.sleeps == [17.0]


@pytest.mark.parametrize("retry_after", ["0", None])
def test_429_with_zero_or_missing_retry_after_still_backs_off(
    client: DuneClient, router: respx.Router, clock: FakeClock, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    router.get(f"/execution/{EID}/status").mock(
        side_effect=[httpx.Response(429, headers=headers, json={"error": "slow down"})] * 3
        + [httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING"))]
    )
    client.get_status(EID)
    assert len(clock.sleeps) == 3
    assert all(s >= 0.5 for s in clock.sleeps)  # never an instant retry storm
    assert clock.sleeps[2] > clock.sleeps[0]  # and it grows


def test_503_html_body_is_retried_and_reported_readably_when_it_persists(
    client: DuneClient, router: respx.Router, clock: FakeClock
) -> None:
    html = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    route = router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(503, text=html, headers={"content-type": "text/html"})
    )
    with pytest.raises(DuneServerError) as info:
        client.get_status(EID, query_id=42)
    assert route.call_count == 5  # bounded by max_attempts
    assert info.value.status_code == 503
    assert "503 Service Temporarily Unavailable" in str(info.value)
    assert "query 42" in str(info.value) and EID in str(info.value)


def test_connection_errors_and_truncated_json_are_retried_for_gets(
    client: DuneClient, router: respx.Router
) -> None:
    route = router.get(f"/execution/{EID}/status").mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("timed out"),
            httpx.Response(200, content=b'{"execution_id": "01HK'),
            httpx.Response(200, json=status_body(EID, "QUERY_STATE_PENDING")),
        ]
    )
    assert client.get_status(EID).state is ExecutionState.PENDING
    assert route.call_count == 4


def test_transport_errors_that_persist_raise_a_typed_error(
    client: DuneClient, router: respx.Router
) -> None:
    router.get(f"/execution/{EID}/status").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(DuneTransportError, match="ReadTimeout"):
        client.get_status(EID)


@pytest.mark.parametrize(
    ("code", "body", "error"),
    [
        (400, {"error": "The requested execution ID (ID: Wonky) is invalid."}, DuneBadRequest),
        (401, {"error": "invalid API Key"}, DuneAuthError),
        (403, {"error": "Not allowed to execute query."}, DuneAuthError),
        (404, {"error": "Query not found"}, DuneNotFound),
    ],
)
def test_client_errors_are_not_retried_and_carry_dunes_message(
    client: DuneClient, router: respx.Router, code: int, body: dict[str, str], error: type
) -> None:
    route = router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(code, json=body)
    )
    with pytest.raises(error) as info:
        client.get_status(EID)
    assert route.call_count == 1
    assert body["error"] in str(info.value)


def test_the_key_goes_in_the_header_and_never_into_errors(
    client: DuneClient, router: respx.Router
) -> None:
    route = router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(401, json={"error": f"invalid API Key {KEY}"})
    )
    with pytest.raises(DuneAuthError) as info:
        client.get_status(EID)
    request = route.calls.last.request
    assert request.headers["x-dune-api-key"] == KEY
    assert KEY not in str(request.url)
    assert KEY not in str(info.value) and "***" in str(info.value)


# -- execute ----------------------------------------------------------------------------


def test_execute_sends_typed_parameters_and_performance(
    client: DuneClient, router: respx.Router
) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    route = router.post("/query/1463956/execute").mock(
        return_value=httpx.Response(200, json={"execution_id": EID, "state": "QUERY_STATE_PENDING"})
    )
    outcome = client.execute(
        1463956,
        {
            "chain": "ethereum",
            "min usd": 1000,
            "ratio": Decimal("0.25"),
            "start": datetime(2026, 1, 1, 3, 4, 5, tzinfo=UTC),
            "tokens": ["WETH", "USDC"],
        },
        performance="large",
    )
    assert outcome.execution_id == EID and not outcome.adopted
    import json

    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "performance": "large",
        "query_parameters": {
            "chain": "ethereum",
            "min usd": "1000",
            "ratio": "0.25",
            "start": "2026-01-01 03:04:05",
            "tokens": ["WETH", "USDC"],
        },
    }


def _latest(eid: str, submitted: str, state: str = "QUERY_STATE_EXECUTING") -> dict[str, Any]:
    body = status_body(eid, state)
    body["submitted_at"] = submitted
    return body


def test_execute_502_after_creation_adopts_the_execution_instead_of_paying_twice(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/1463956/execute").mock(
        return_value=httpx.Response(502, text="<html>Bad Gateway</html>")
    )
    latest = router.get("/query/1463956/results").mock(
        return_value=httpx.Response(200, json=_latest(EID, "2026-12-01T12:00:00.2Z"))
    )
    outcome = client.execute(1463956, {"start_date": "2026-01-01 00:00:00"})
    assert outcome.execution_id == EID and outcome.adopted
    assert execute.call_count == 1
    params = latest.calls.last.request.url.params
    assert params["limit"] == "1" and params["params.start_date"] == "2026-01-01 00:00:00"


def test_execute_timeout_with_only_an_old_execution_submits_again(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/1463956/execute").mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            httpx.Response(200, json={"execution_id": EID2, "state": "QUERY_STATE_PENDING"}),
        ]
    )
    router.get("/query/1463956/results").mock(
        return_value=httpx.Response(
            200, json=_latest(EID, "2026-11-30T08:00:00Z", "QUERY_STATE_COMPLETED")
        )
    )
    outcome = client.execute(1463956)
    assert outcome.execution_id == EID2 and not outcome.adopted
    assert execute.call_count == 2


def test_execute_ambiguous_failure_when_the_latest_run_was_truncated_submits_again(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/1463956/execute").mock(
        side_effect=[
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(200, json={"execution_id": EID2, "state": "QUERY_STATE_PENDING"}),
        ]
    )

    def latest(request: httpx.Request) -> httpx.Response:
        # Dune refuses to show a truncated latest result unless asked to.
        if request.url.params.get("allow_partial_results") != "true":
            return httpx.Response(
                400,
                json={"error": "Partial Result, please request with 'allow_partial_results=true'"},
            )
        old = _latest(EID, "2026-11-30T08:00:00Z", "QUERY_STATE_COMPLETED_PARTIAL")
        return httpx.Response(200, json=old)

    router.get("/query/1463956/results").mock(side_effect=latest)
    outcome = client.execute(1463956)
    assert outcome.execution_id == EID2 and not outcome.adopted
    assert execute.call_count == 2


def test_execute_ambiguous_failure_with_no_execution_at_all_submits_again(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/5/execute").mock(
        side_effect=[
            httpx.Response(504, content=b""),
            httpx.Response(200, json={"execution_id": EID2}),
        ]
    )
    router.get("/query/5/results").mock(
        return_value=httpx.Response(
            404, json={"error": "not found: No execution found for the latest version"}
        )
    )
    assert client.execute(5).execution_id == EID2
    assert execute.call_count == 2


def test_execute_is_retried_directly_when_the_request_never_reached_dune(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/5/execute").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "rate"}),
            httpx.Response(200, json={"execution_id": EID}),
        ]
    )
    latest = router.get("/query/5/results")
    assert client.execute(5).execution_id == EID
    assert execute.call_count == 3 and latest.call_count == 0


def test_execute_500_is_not_retried(client: DuneClient, router: respx.Router) -> None:
    execute = router.post("/query/5/execute").mock(
        return_value=httpx.Response(500, json={"error": "An internal error occured"})
    )
    with pytest.raises(DuneServerError, match="internal error"):
        client.execute(5)
    assert execute.call_count == 1


def test_execute_gives_up_when_it_cannot_tell_whether_dune_executed(
    client: DuneClient, router: respx.Router
) -> None:
    execute = router.post("/query/5/execute").mock(return_value=httpx.Response(503))
    router.get("/query/5/results").mock(return_value=httpx.Response(503))
    with pytest.raises(DuneServerError, match="ambiguously"):
        client.execute(5)
    assert execute.call_count == 1


# -- result pages -------------------------------------------------------------------------


def test_pages_follow_next_offset_until_absent_even_after_short_pages(
    client: DuneClient, router: respx.Router
) -> None:
    # The server caps pages at 2 rows although we ask for more: short pages are not the end.
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        chunk = rows(offset, min(2, 5 - offset))
        nxt = offset + len(chunk) if offset + len(chunk) < 5 else None
        return httpx.Response(
            200, json=page_body(EID, chunk, total=5, names=NAMES, next_offset=nxt)
        )

    route = router.get(f"/execution/{EID}/results").mock(side_effect=handler)
    pages = list(client.iter_result_pages(EID, limit=1000))
    assert [len(p.rows) for p in pages] == [2, 2, 1]
    assert [p.offset for p in pages] == [0, 2, 4]
    assert [r["day"] for p in pages for r in p.rows] == [f"d{i}" for i in range(5)]
    assert route.call_count == 3


def test_page_size_respects_the_datapoint_cap_and_learns_the_width(
    client: DuneClient, router: respx.Router
) -> None:
    names = [f"c{i}" for i in range(100)]  # 250_000 / 100 = 2_500 rows per page
    limits: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        limits.append(limit)
        n = min(limit, 6000 - offset)
        body_rows = [dict.fromkeys(names, "x")] * n
        nxt = offset + n if offset + n < 6000 else None
        return httpx.Response(
            200, json=page_body(EID, body_rows, total=6000, names=names, next_offset=nxt)
        )

    router.get(f"/execution/{EID}/results").mock(side_effect=handler)
    total = sum(len(p.rows) for p in client.iter_result_pages(EID))
    assert total == 6000
    assert limits[0] == 1  # width unknown: one row first
    assert set(limits[1:]) == {2500}


def test_402_per_request_cap_halves_the_page_size(client: DuneClient, router: respx.Router) -> None:
    limits: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        limits.append(limit)
        if limit > 2:
            return httpx.Response(
                402,
                json={"error": "This api request would exceed your configured limits per request."},
            )
        chunk = rows(offset, min(limit, 4 - offset))
        nxt = offset + len(chunk) if offset + len(chunk) < 4 else None
        return httpx.Response(
            200, json=page_body(EID, chunk, total=4, names=NAMES, next_offset=nxt)
        )

    router.get(f"/execution/{EID}/results").mock(side_effect=handler)
    from downstream.dune import ResultMetadata

    pages = list(client.iter_result_pages(EID, metadata=ResultMetadata(column_names=NAMES)))
    assert sum(len(p.rows) for p in pages) == 4
    assert limits[:4] == [32000, 16000, 8000, 4000]
    # Learned once: 15 halvings to reach 1 row, then every later page asks for 1 row.
    assert limits[14:] == [1, 1, 1, 1]


def test_pages_do_not_keep_earlier_response_bodies_alive() -> None:
    # httpx links a response and its stream both ways; if a page's response is left in
    # that cycle, its whole body waits for the cyclic GC (which a page loop can put off
    # for dozens of pages). With the GC off, anything but refcounting shows up here.
    names = ["c0", "c1"]
    n_pages, per_page = 12, 2000
    pad = "x" * 200  # ~0.5 MB of JSON per page

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        chunk = [{"c0": offset + i, "c1": pad} for i in range(per_page)]
        total = n_pages * per_page
        nxt = offset + per_page if offset + per_page < total else None
        return httpx.Response(
            200, json=page_body(EID, chunk, total=total, names=names, next_offset=nxt)
        )

    # A bare MockTransport: respx would keep every response in its call log.
    http = make_http_client("https://api.dune.com", transport=httpx.MockTransport(handler))
    client = DuneClient(http, KEY, sleep=lambda s: None)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        pages = client.iter_result_pages(EID, limit=per_page)
        first = next(pages)
        page_bytes = tracemalloc.get_traced_memory()[0]
        del first
        rows = per_page + sum(len(p.rows) for p in pages)
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
        client.close()
    assert rows == n_pages * per_page
    # Only the last page may still be around, not one body per page read.
    assert left < 2 * page_bytes, (left, page_bytes)


def test_offset_past_the_end_is_an_empty_last_page(
    client: DuneClient, router: respx.Router
) -> None:
    router.get(f"/execution/{EID}/results").mock(
        return_value=httpx.Response(200, json=page_body(EID, [], total=0, names=NAMES))
    )
    pages = list(client.iter_result_pages(EID, limit=10))
    assert len(pages) == 1 and pages[0].rows == []
    assert pages[0].metadata is not None and pages[0].metadata.column_names == NAMES


def test_rows_missing_from_the_pages_are_detected(client: DuneClient, router: respx.Router) -> None:
    router.get(f"/execution/{EID}/results").mock(
        return_value=httpx.Response(200, json=page_body(EID, rows(0, 3), total=5, names=NAMES))
    )
    with pytest.raises(DuneProtocolError, match="3 rows but total_row_count is 5"):
        list(client.iter_result_pages(EID, limit=10))


def test_a_page_from_another_execution_is_refused(client: DuneClient, router: respx.Router) -> None:
    router.get(f"/execution/{EID}/results").mock(
        return_value=httpx.Response(200, json=page_body(EID2, rows(0, 2), total=2, names=NAMES))
    )
    with pytest.raises(DuneProtocolError, match=EID2):
        list(client.iter_result_pages(EID, limit=10))


def test_an_execution_that_expires_between_pages_raises_expired(
    client: DuneClient, router: respx.Router
) -> None:
    expired = status_body(EID, "QUERY_STATE_EXPIRED")
    router.get(f"/execution/{EID}/results").mock(
        side_effect=[
            httpx.Response(
                200, json=page_body(EID, rows(0, 2), total=4, names=NAMES, next_offset=2)
            ),
            httpx.Response(200, json=expired),
        ]
    )
    pages = client.iter_result_pages(EID, limit=2)
    next(pages)
    with pytest.raises(ExecutionExpired):
        next(pages)


def test_partial_pages_need_allow_partial(client: DuneClient, router: respx.Router) -> None:
    route = router.get(f"/execution/{EID}/results").mock(
        return_value=httpx.Response(
            200,
            json=page_body(
                EID, rows(0, 2), total=2, names=NAMES, state="QUERY_STATE_COMPLETED_PARTIAL"
            ),
        )
    )
    with pytest.raises(ExecutionPartial):
        list(client.iter_result_pages(EID, limit=10))
    pages = list(client.iter_result_pages(EID, limit=10, allow_partial=True))
    assert len(pages[0].rows) == 2
    assert route.calls.last.request.url.params["allow_partial_results"] == "true"


def test_partial_refused_by_the_server_is_execution_partial(
    client: DuneClient, router: respx.Router
) -> None:
    # What Dune actually answers for a truncated result read without the flag (2.0, 2.4).
    refusal = httpx.Response(
        400, json={"error": "Partial Result, please request with 'allow_partial_results=true'"}
    )
    router.get(f"/execution/{EID}/results").mock(return_value=refusal)
    router.get(f"/execution/{EID}/results/csv").mock(return_value=refusal)
    with pytest.raises(ExecutionPartial) as info:
        next(client.iter_result_pages(EID, query_id=7, limit=10))
    assert info.value.state == "QUERY_STATE_COMPLETED_PARTIAL"
    assert (info.value.query_id, info.value.execution_id) == (7, EID)
    with pytest.raises(ExecutionPartial):
        next(client.iter_csv_pages(EID, n_columns=2))


def test_next_uri_on_another_host_never_receives_the_key(
    client: DuneClient, router: respx.Router
) -> None:
    evil = respx.Router(assert_all_called=False)
    evil_route = evil.get(host="evil.example").mock(return_value=httpx.Response(500))

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        chunk = rows(offset, 2)
        nxt = 2 if offset == 0 else None
        body = page_body(EID, chunk, total=4, names=NAMES, host="https://evil.example")
        if nxt is not None:
            body["next_uri"] = f"https://evil.example/api/v1/execution/{EID}/results?offset=2"
        return httpx.Response(200, json=body)

    route = router.get(f"/execution/{EID}/results").mock(side_effect=handler)
    pages = list(client.iter_result_pages(EID, limit=2))
    assert sum(len(p.rows) for p in pages) == 4
    assert evil_route.call_count == 0
    assert all(c.request.url.host == "api.dune.com" for c in route.calls)
    assert all(c.request.headers["x-dune-api-key"] == KEY for c in route.calls)


def test_csv_pages_follow_headers_and_drop_the_repeated_header(
    client: DuneClient, router: respx.Router
) -> None:
    page1 = b'day,value\nd0,"multi\nline"\nd1,<nil>\n'
    page2 = b"day,value\nd2,2\n"
    router.get(f"/execution/{EID}/results/csv").mock(
        side_effect=[
            httpx.Response(
                200,
                content=page1,
                headers={
                    "X-Dune-Next-Offset": "2",
                    "X-Dune-Next-Uri": f"https://api.dune.com/api/v1/execution/{EID}/results/csv?offset=2",
                },
            ),
            httpx.Response(200, content=page2),
        ]
    )
    pages = list(client.iter_csv_pages(EID, n_columns=2, expected_rows=3))
    assert [p.row_count for p in pages] == [2, 1]
    assert pages[0].header == "day,value" and pages[1].header == "day,value"
    assert pages[0].body == b'd0,"multi\nline"\nd1,<nil>\n'
    assert pages[1].body == b"d2,2\n"


def test_csv_row_count_mismatch_raises(client: DuneClient, router: respx.Router) -> None:
    router.get(f"/execution/{EID}/results/csv").mock(
        return_value=httpx.Response(200, content=b"day\nd0\n")
    )
    with pytest.raises(DuneProtocolError, match="1 rows but the result has 2"):
        list(client.iter_csv_pages(EID, n_columns=1, expected_rows=2))


# -- latest result and freshness -----------------------------------------------------------


def test_latest_result_reads_one_row_with_params(client: DuneClient, router: respx.Router) -> None:
    route = router.get("/query/9/results").mock(
        return_value=httpx.Response(
            200, json=page_body(EID, rows(0, 1), total=10, names=NAMES, next_offset=1)
        )
    )
    page = client.get_latest_result(9, {"chain": "ethereum", "tokens": ["a", "b"]})
    assert page is not None and page.execution_id == EID
    url = route.calls.last.request.url
    assert url.params["limit"] == "1"
    assert url.params.get_list("params.tokens") == ["a", "b"]


def test_latest_result_absent_is_none_but_unknown_query_raises(
    client: DuneClient, router: respx.Router
) -> None:
    router.get("/query/9/results").mock(
        return_value=httpx.Response(
            404,
            json={
                "error": "not found: No execution found for the latest version of the given query"
            },
        )
    )
    router.get("/query/10/results").mock(
        return_value=httpx.Response(404, json={"error": "Query not found"})
    )
    assert client.get_latest_result(9) is None
    with pytest.raises(DuneNotFound):
        client.get_latest_result(10)


@pytest.mark.parametrize(("age_hours", "fresh"), [(1, True), (23.9, True), (24.1, False)])
def test_freshness_uses_execution_ended_at(
    client: DuneClient, router: respx.Router, clock: FakeClock, age_hours: float, fresh: bool
) -> None:
    ended = clock.now() - timedelta(hours=age_hours)
    body = page_body(EID, rows(0, 1), total=1, names=NAMES)
    body["execution_ended_at"] = ended.isoformat().replace("+00:00", "Z")
    router.get("/query/9/results").mock(return_value=httpx.Response(200, json=body))
    page = client.fresh_latest_result(9, max_age=timedelta(hours=24))
    assert (page is not None) is fresh


def test_freshness_ignores_a_running_latest_execution(
    client: DuneClient, router: respx.Router
) -> None:
    router.get("/query/9/results").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING"))
    )
    assert client.fresh_latest_result(9, max_age=timedelta(hours=24)) is None


def test_max_age_zero_never_reads(client: DuneClient, router: respx.Router) -> None:
    route = router.get("/query/9/results")
    assert client.fresh_latest_result(9, max_age=timedelta(0)) is None
    assert route.call_count == 0


def test_rate_limiter_paces_requests_per_class(router: respx.Router, clock: FakeClock) -> None:
    from downstream.dune import RateLimiter, make_http_client
    from downstream.dune.pacing import TokenBucket

    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(200, json=status_body(EID, "QUERY_STATE_EXECUTING"))
    )
    limiter = RateLimiter(
        low=None,
        high=TokenBucket(60, burst=2, clock=clock.monotonic, sleep=clock.sleep),
    )
    http = make_http_client(transport=httpx.MockTransport(router.handler))
    dune = DuneClient(http, KEY, limiter=limiter, sleep=clock.sleep, clock=clock.monotonic)
    for _ in range(5):
        dune.get_status(EID)
    # burst of 2, then one request per second at 60 rpm
    assert clock.t == pytest.approx(3.0)


def test_rate_limited_for_too_long_raises_rate_limited(
    client: DuneClient, router: respx.Router
) -> None:
    router.get(f"/execution/{EID}/status").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "5"}, json={"error": "rate limit"})
    )
    with pytest.raises(DuneRateLimited) as info:
        client.get_status(EID)
    assert info.value.retry_after == 5.0


def test_integers_beyond_64_bits_survive_decoding_exactly(
    client: DuneClient, router: respx.Router
) -> None:
    big = 2**256 - 1
    raw = (
        (
            '{"execution_id": "EID", "state": "QUERY_STATE_COMPLETED", "result": {"rows": '
            '[{"v": BIG, "d": 0.1}], "metadata": {"column_names": ["v", "d"], '
            '"column_types": ["uint256", "double"], "row_count": 1, "total_row_count": 1}}}'
        )
        .replace("EID", EID)
        .replace("BIG", str(big))
        .encode()
    )
    router.get(f"/execution/{EID}/results").mock(return_value=httpx.Response(200, content=raw))
    (page,) = list(client.iter_result_pages(EID, limit=10))
    assert page.rows[0]["v"] == big


def test_decoding_leaves_the_cyclic_gc_as_it_found_it() -> None:
    # decode_json holds the GC off while orjson builds a page (issue 6), never longer.
    assert gc.isenabled()
    assert decode_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert decode_json(b"<html>502</html>") is not None  # invalid: falls back, still enabled
    assert gc.isenabled()
    gc.disable()
    try:
        decode_json(b'{"a": 1}')
        assert not gc.isenabled()
    finally:
        gc.enable()
