"""A Dune API client over an injected ``httpx.Client``.

It covers the read path a loader needs: execute a saved query, wait for it, page through
its result (JSON or CSV), read a query's latest result, cancel. What it adds over a plain
HTTP wrapper is the part that costs money or data when done wrong:

* GETs are retried on 429, 5xx, connection errors, timeouts and truncated bodies, with
  exponential backoff and jitter that honours ``Retry-After`` (0 or missing still backs off).
* ``POST /execute`` is never retried blindly: after an ambiguous failure it first looks for
  an execution of the query submitted since the first attempt and adopts it, so one logical
  run never pays for two executions.
* Pages stream (a generator), stay on one ``execution_id``, size themselves under the
  per-request datapoint cap, and must add up to ``total_row_count``.
* The API key goes only in the ``X-Dune-Api-Key`` header and only to the configured host.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

import httpx
import orjson
from pydantic import ValidationError

from downstream import shutdown
from downstream.dune.models import (
    CsvPage,
    ExecutionState,
    ExecutionStatus,
    ResultMetadata,
    ResultPage,
)
from downstream.dune.pacing import (
    Clock,
    Limiter,
    PollPolicy,
    RateLimiter,
    RetryPolicy,
    Sleep,
    parse_retry_after,
)
from downstream.dune.params import ParamValue, encode_parameters, latest_result_params
from downstream.errors import (
    DuneAPIError,
    DuneAuthError,
    DuneBadRequest,
    DuneError,
    DuneNotFound,
    DunePaymentRequired,
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

log = logging.getLogger("downstream.dune")

DEFAULT_BASE_URL = "https://api.dune.com"
API_PREFIX = "/api/v1"
API_KEY_HEADER = "X-Dune-Api-Key"
# Every official SDK pages in batches of 32,000 rows; Dune caps pages around there.
MAX_PAGE_ROWS = 32_000
# Default account cap on rows x columns per results request.
MAX_DATAPOINTS_PER_REQUEST = 250_000

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_AMBIGUOUS_STATUSES = frozenset({502, 503, 504})
# The request surely never reached Dune, so executing again cannot pay twice.
_SAFE_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_ERRORS_BY_STATUS: dict[int, type[DuneAPIError]] = {
    400: DuneBadRequest,
    401: DuneAuthError,
    402: DunePaymentRequired,
    403: DuneAuthError,
    404: DuneNotFound,
    429: DuneRateLimited,
}


def default_timeout() -> httpx.Timeout:
    """Explicit timeouts: a 32k-row page of wide rows can take a while to arrive."""
    read = float(os.environ.get("DUNE_API_REQUEST_TIMEOUT", "60"))
    return httpx.Timeout(read, connect=10.0)


def make_http_client(
    base_url: str | None = None,
    *,
    timeout: httpx.Timeout | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for Dune: base URL from ``DUNE_API_BASE_URL``, explicit timeouts.

    The key is deliberately *not* a default header: the client adds it per request, and
    only for the configured host.
    """
    base = (base_url or os.environ.get("DUNE_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return httpx.Client(
        base_url=base + API_PREFIX,
        timeout=timeout or default_timeout(),
        transport=transport,
        headers={"User-Agent": "downstream (+https://github.com/downstream-etl)"},
    )


@dataclass(frozen=True)
class ExecuteOutcome:
    """The execution a run is following, and whether we adopted one after a failure."""

    execution_id: str
    adopted: bool = False


class DuneClient:
    """Talks to Dune for one API key. Thread-safe as long as the ``httpx.Client`` is."""

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Sleep = shutdown.sleep,
        clock: Clock = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_page_rows: int = MAX_PAGE_ROWS,
        max_datapoints: int = MAX_DATAPOINTS_PER_REQUEST,
        adopt_window: timedelta = timedelta(seconds=30),
        latest_multi_value: Literal["repeat", "comma"] = "repeat",
    ) -> None:
        if not api_key:
            raise ValueError("a Dune API key is required")
        self.http = http
        self._key = api_key
        self.retry = retry or RetryPolicy()
        self.limiter: Limiter = limiter or RateLimiter(None, None)
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.max_page_rows = max_page_rows
        self.max_datapoints = max_datapoints
        self.adopt_window = adopt_window
        self.latest_multi_value = latest_multi_value
        self._origin = _origin(http.base_url)

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self.http.close()

    def __enter__(self) -> DuneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- executions -------------------------------------------------------------------

    def execute(
        self,
        query_id: int,
        parameters: Mapping[str, ParamValue] | None = None,
        *,
        performance: str = "medium",
    ) -> ExecuteOutcome:
        """Start an execution of a saved query; never pays for two on an ambiguous failure."""
        body: dict[str, Any] = {"performance": performance}
        wire = encode_parameters(parameters)
        if wire:
            body["query_parameters"] = wire
        started = self.now()
        t0, attempt = self.clock(), 0
        while True:
            attempt += 1
            try:
                data = self._json(
                    "POST",
                    f"/query/{query_id}/execute",
                    json=body,
                    kind="low",
                    retry=False,
                    query_id=query_id,
                )
            except DuneRateLimited as exc:
                # Rejected before it ran: safe to ask again after the server's hint.
                self._wait_before(attempt, exc.retry_after, t0, exc)
                continue
            except DuneTransportError as exc:
                # Only raised for errors where the request never reached Dune.
                self._wait_before(attempt, None, t0, exc)
                continue
            except _Ambiguous as amb:
                # Dune may have created the execution before failing: look before retrying.
                self.sleep(self.retry.delay(attempt, amb.retry_after))
                found = self._find_execution_since(query_id, parameters, started)
                if found is not None:
                    log.warning(
                        "query %s: execute failed ambiguously (%s); adopting execution %s "
                        "submitted since, instead of paying twice",
                        query_id,
                        amb.error.message,
                        found,
                    )
                    return ExecuteOutcome(found, adopted=True)
                self._check_budget(attempt, t0, amb.error)
                log.warning(
                    "query %s: execute failed ambiguously (%s) and no new execution "
                    "exists; submitting again",
                    query_id,
                    amb.error.message,
                )
                continue
            execution_id = data.get("execution_id")
            if not isinstance(execution_id, str) or not execution_id:
                raise DuneProtocolError("execute returned no execution_id", query_id=query_id)
            log.info("query %s: submitted execution %s", query_id, execution_id)
            return ExecuteOutcome(execution_id)

    def get_status(self, execution_id: str, *, query_id: int | None = None) -> ExecutionStatus:
        """The execution's state and, once COMPLETED, its result metadata."""
        data = self._json(
            "GET",
            f"/execution/{execution_id}/status",
            query_id=query_id,
            execution_id=execution_id,
        )
        return self._parse(ExecutionStatus, data, query_id=query_id, execution_id=execution_id)

    def cancel(self, execution_id: str, *, query_id: int | None = None) -> bool:
        """Ask Dune to cancel; ``False`` when it refused (e.g. already finished)."""
        data = self._json(
            "POST",
            f"/execution/{execution_id}/cancel",
            query_id=query_id,
            execution_id=execution_id,
        )
        return bool(data.get("success"))

    def wait_for_execution(
        self,
        execution_id: str,
        *,
        query_id: int | None = None,
        timeout: float = 30 * 60,
        poll: PollPolicy | None = None,
        allow_partial: bool = False,
        on_status: Callable[[ExecutionStatus], None] | None = None,
    ) -> ExecutionStatus:
        """Poll until the execution is terminal; cancel it and raise if ``timeout`` passes.

        Returns the COMPLETED (or, when allowed, COMPLETED_PARTIAL) status; every other end
        raises the matching ``ExecutionError``.
        """
        poll = poll or PollPolicy()
        deadline = self.clock() + timeout
        interval: float | None = None
        last_state: ExecutionState | None = None
        while True:
            status = self.get_status(execution_id, query_id=query_id)
            if status.state != last_state:
                log.info(
                    "execution %s: %s%s",
                    execution_id,
                    status.state.value,
                    f" (queue position {status.queue_position})"
                    if status.queue_position is not None
                    else "",
                )
                last_state = status.state
            if on_status is not None:
                on_status(status)
            if status.state.is_terminal:
                self.raise_for_state(status, allow_partial=allow_partial, query_id=query_id)
                return status
            remaining = deadline - self.clock()
            if remaining <= 0:
                self._cancel_quietly(execution_id, query_id)
                raise ExecutionTimedOut(
                    f"still {status.state.value} after {timeout:.0f}s; cancelled it",
                    state=status.state.value,
                    query_id=query_id,
                    execution_id=execution_id,
                )
            interval = poll.next(interval)
            self.sleep(min(interval, remaining))

    def raise_for_state(
        self, status: ExecutionStatus, *, allow_partial: bool = False, query_id: int | None = None
    ) -> None:
        """Raise the typed error for a terminal state that has no usable result."""
        state = status.state
        qid, eid = query_id or status.query_id, status.execution_id
        if state is ExecutionState.COMPLETED:
            return
        if state is ExecutionState.PARTIAL:
            if allow_partial:
                return
            raise ExecutionPartial(
                "Dune truncated this result (COMPLETED_PARTIAL); set allow_partial to accept it",
                state=state.value,
                query_id=qid,
                execution_id=eid,
            )
        if state is ExecutionState.FAILED:
            err = status.error
            # Dune's text can quote anything, the key included (a parameter, the SQL).
            raise ExecutionFailed(
                self._redact(err.type) if err else "FAILED_TYPE_UNSPECIFIED",
                self._redact(err.message) if err else "no error message from Dune",
                query_id=qid,
                execution_id=eid,
            )
        if state is ExecutionState.CANCELLED:
            raise ExecutionCancelled(
                "execution was cancelled", state=state.value, query_id=qid, execution_id=eid
            )
        if state is ExecutionState.EXPIRED:
            raise ExecutionExpired(
                "the stored result has expired", state=state.value, query_id=qid, execution_id=eid
            )
        raise DuneProtocolError(
            f"execution is not finished ({state.value})", query_id=qid, execution_id=eid
        )

    # -- latest results and freshness ---------------------------------------------------

    def get_latest_result(
        self,
        query_id: int,
        parameters: Mapping[str, ParamValue] | None = None,
        *,
        limit: int = 1,
        allow_partial: bool = False,
    ) -> ResultPage | None:
        """The query's latest execution (possibly still running), or None if it has none.

        Reads only ``limit`` rows, so asking costs almost nothing.
        """
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if allow_partial:
            params.append(("allow_partial_results", "true"))
        params += latest_result_params(parameters, multi_value=self.latest_multi_value)
        try:
            data = self._json("GET", f"/query/{query_id}/results", params=params, query_id=query_id)
        except DuneNotFound as exc:
            if "query not found" in exc.message.lower():
                raise
            return None
        except DuneBadRequest as exc:
            if _refused_as_partial(exc):
                # The latest result exists but is truncated; report it as such, not as absent.
                raise _partial("the latest result", query_id, None) from exc
            raise
        return self._page(data, offset=0, query_id=query_id)

    def fresh_latest_result(
        self,
        query_id: int,
        parameters: Mapping[str, ParamValue] | None = None,
        *,
        max_age: timedelta,
        allow_partial: bool = False,
    ) -> ResultPage | None:
        """The latest result if it finished less than ``max_age`` ago, else None (execute)."""
        if max_age <= timedelta(0):
            return None
        page = self.get_latest_result(query_id, parameters, allow_partial=allow_partial)
        if page is None or not is_fresh(page, max_age, self.now(), allow_partial=allow_partial):
            return None
        return page

    # -- result pages -------------------------------------------------------------------

    def page_limit(self, n_columns: int) -> int:
        """Rows per request that keep rows x columns under the datapoint cap."""
        return max(1, min(self.max_page_rows, self.max_datapoints // max(1, n_columns)))

    def iter_result_pages(
        self,
        execution_id: str,
        *,
        query_id: int | None = None,
        metadata: ResultMetadata | None = None,
        allow_partial: bool = False,
        limit: int | None = None,
    ) -> Iterator[ResultPage]:
        """Yield every page of one execution's result, in order, with bounded memory.

        ``metadata`` (from the COMPLETED status) sizes the pages; without it the first
        request reads one row to learn the width. The pages must all belong to
        ``execution_id`` and add up to ``total_row_count``, else ``DuneProtocolError``.
        """
        width = len(metadata.column_names) if metadata else None
        page_size = limit or (self.page_limit(width) if width else 1)
        # Rows per page the server accepted after refusing more (402 per request): the
        # account's cap is lower than ours, so later pages must not ask for more again.
        learned_cap: int | None = None
        offset, seen, total = 0, 0, None
        while True:
            try:
                with _partial_refusal(query_id, execution_id):
                    data = self._json(
                        "GET",
                        f"/execution/{execution_id}/results",
                        params=_page_params(page_size, offset, allow_partial),
                        query_id=query_id,
                        execution_id=execution_id,
                    )
            except DunePaymentRequired as exc:
                if "per request" in exc.message.lower() and page_size > 1:
                    page_size = learned_cap = max(1, page_size // 2)
                    log.info(
                        "execution %s: page over the per-request cap; %d rows per page now",
                        execution_id,
                        page_size,
                    )
                    continue
                raise
            page = self._page(data, offset=offset, query_id=query_id)
            self._check_page(page, execution_id, allow_partial, query_id)
            assert page.metadata is not None  # _check_page guarantees it
            if total is None:
                total = page.metadata.total_row_count
            elif page.metadata.total_row_count not in (None, total):
                raise DuneProtocolError(
                    f"total_row_count changed between pages ({total} -> "
                    f"{page.metadata.total_row_count})",
                    query_id=query_id,
                    execution_id=execution_id,
                )
            seen += len(page.rows)
            yield page
            if not page.has_next:
                break
            offset = self._next_offset(page, offset, query_id=query_id, execution_id=execution_id)
            if limit is None:
                page_size = self.page_limit(len(page.metadata.column_names))
                if learned_cap is not None:
                    page_size = min(page_size, learned_cap)
        if total is not None and seen != total:
            raise DuneProtocolError(
                f"pages held {seen} rows but total_row_count is {total}",
                query_id=query_id,
                execution_id=execution_id,
            )

    def iter_csv_pages(
        self,
        execution_id: str,
        *,
        n_columns: int,
        expected_rows: int | None = None,
        query_id: int | None = None,
        allow_partial: bool = False,
    ) -> Iterator[CsvPage]:
        """Yield CSV pages (header split off each) following the ``x-dune-next-*`` headers."""
        page_size = self.page_limit(n_columns)
        offset, seen = 0, 0
        while True:
            with _partial_refusal(query_id, execution_id):
                resp = self._send(
                    "GET",
                    f"/execution/{execution_id}/results/csv",
                    params=_page_params(page_size, offset, allow_partial),
                    query_id=query_id,
                    execution_id=execution_id,
                )
            header, body, rows = split_csv_page(resp.content)
            page = CsvPage(
                header=header,
                body=body,
                row_count=rows,
                offset=offset,
                next_offset=_int_or_none(resp.headers.get("x-dune-next-offset")),
                next_uri=resp.headers.get("x-dune-next-uri"),
            )
            seen += rows
            yield page
            if not page.has_next:
                break
            offset = self._next_offset(page, offset, query_id=query_id, execution_id=execution_id)
        if expected_rows is not None and seen != expected_rows:
            raise DuneProtocolError(
                f"CSV pages held {seen} rows but the result has {expected_rows}",
                query_id=query_id,
                execution_id=execution_id,
            )

    # -- internals ----------------------------------------------------------------------

    def _check_page(
        self, page: ResultPage, execution_id: str, allow_partial: bool, query_id: int | None
    ) -> None:
        if page.execution_id != execution_id:
            raise DuneProtocolError(
                f"page belongs to execution {self._redact(page.execution_id)}",
                query_id=query_id,
                execution_id=execution_id,
            )
        self.raise_for_state(page, allow_partial=allow_partial, query_id=query_id)
        if page.metadata is None:
            raise DuneProtocolError(
                "a finished execution returned a page without a result",
                query_id=query_id,
                execution_id=execution_id,
            )
        if page.metadata.row_count is not None and page.metadata.row_count != len(page.rows):
            raise DuneProtocolError(
                f"page says row_count={page.metadata.row_count} but holds {len(page.rows)} rows",
                query_id=query_id,
                execution_id=execution_id,
            )

    def _next_offset(
        self,
        page: ResultPage | CsvPage,
        offset: int,
        *,
        query_id: int | None,
        execution_id: str,
    ) -> int:
        """Where the next page starts. We rebuild the request on our own host from the
        offset rather than follow ``next_uri`` verbatim: our parameters survive, and the key
        can never be sent to a host that ``next_uri`` names.

        ``next_offset`` decides when Dune sends it; otherwise the ``offset`` parameter of
        ``next_uri``. The scheme, host, port and path of ``next_uri`` are never used; one
        that names another host is logged as a warning (tests/hostile/test_credentials.py).
        """
        nxt = page.next_offset
        if page.next_uri is not None:
            uri = httpx.URL(page.next_uri)
            if nxt is None:
                nxt = _int_or_none(uri.params.get("offset"))
            if _origin(uri) != self._origin:
                log.warning(
                    "execution %s: next_uri points at another host; "
                    "continuing on %s without following it",
                    execution_id,
                    self._origin,
                )
        if nxt is None or nxt <= offset:
            raise DuneProtocolError(
                f"next page offset {nxt} does not move past {offset}",
                query_id=query_id,
                execution_id=execution_id,
            )
        return nxt

    def _find_execution_since(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None, since: datetime
    ) -> str | None:
        """An execution of this query submitted since ``since`` (minus clock-skew slack)."""
        try:
            # Only the id and submit time are read, so a truncated latest result will do;
            # without the flag Dune refuses to show it and the check would fail for nothing.
            page = self.get_latest_result(query_id, parameters, allow_partial=True)
        except DuneError as exc:
            # Cannot tell whether our execute went through: refuse to risk paying twice.
            raise DuneServerError(
                f"execute failed ambiguously and the check for an execution it may have "
                f"created failed too ({exc.message})",
                status_code=getattr(exc, "status_code", 502),
                query_id=query_id,
            ) from exc
        if page is None or page.submitted_at is None:
            return None
        if page.submitted_at >= since - self.adopt_window:
            return page.execution_id
        return None

    def _page(self, data: dict[str, Any], *, offset: int, query_id: int | None) -> ResultPage:
        try:
            return ResultPage.from_json(data, offset=offset)
        except UnknownExecutionState as exc:
            raise self._redacted_state(exc, query_id, data.get("execution_id")) from None
        except ValidationError as exc:
            raise DuneProtocolError(
                f"unexpected results body: {_first_error(exc)}",
                query_id=query_id,
                execution_id=data.get("execution_id"),
            ) from None

    def _parse(
        self,
        model: type[ExecutionStatus],
        data: dict[str, Any],
        *,
        query_id: int | None,
        execution_id: str | None,
    ) -> ExecutionStatus:
        try:
            return model.model_validate(data)
        except UnknownExecutionState as exc:
            raise self._redacted_state(exc, query_id, execution_id) from None
        except ValidationError as exc:
            raise DuneProtocolError(
                f"unexpected status body: {_first_error(exc)}",
                query_id=query_id,
                execution_id=execution_id,
            ) from None

    def _json(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, Any] | None = None,
        kind: Literal["low", "high"] = "high",
        retry: bool = True,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> dict[str, Any]:
        """Send and decode a JSON object; a truncated body counts as a transient failure."""
        t0, attempt = self.clock(), 0
        while True:
            attempt += 1
            resp = self._send(
                method,
                url,
                params=params,
                json=json,
                kind=kind,
                retry=retry,
                query_id=query_id,
                execution_id=execution_id,
            )
            data = decode_json(resp.content)
            if data is _INVALID:
                err = DuneProtocolError(
                    f"{method} {resp.request.url.path}: response is not valid JSON "
                    f"({len(resp.content)} bytes)",
                    query_id=query_id,
                    execution_id=execution_id,
                )
                if not retry:
                    raise _Ambiguous(err, None) from None
                self._wait_before(attempt, None, t0, err)
                continue
            if not isinstance(data, dict):
                raise DuneProtocolError(
                    f"{method} {resp.request.url.path}: expected a JSON object",
                    query_id=query_id,
                    execution_id=execution_id,
                )
            return data

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, Any] | None = None,
        kind: Literal["low", "high"] = "high",
        retry: bool = True,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> httpx.Response:
        """One logical request: rate-limited, keyed for our host only, retried if allowed.

        With ``retry=False`` (execute), an ambiguous failure raises ``_Ambiguous`` so the
        caller can check what happened before trying again.
        """
        t0, attempt = self.clock(), 0
        while True:
            attempt += 1
            self.limiter.acquire(kind)
            request = self.http.build_request(method, url, params=cast(Any, params), json=json)
            if _origin(request.url) == self._origin:
                request.headers[API_KEY_HEADER] = self._key
            try:
                resp = self._fetch(request)
            except httpx.TransportError as exc:
                err = DuneTransportError(
                    f"{method} {request.url.path}: {type(exc).__name__}: "
                    f"{self._redact(str(exc)) or 'no detail'}",
                    query_id=query_id,
                    execution_id=execution_id,
                )
                if not retry:
                    if isinstance(exc, _SAFE_TRANSPORT_ERRORS):
                        raise err from exc
                    raise _Ambiguous(err, None) from exc
                self._wait_before(attempt, None, t0, err)
                continue
            if resp.status_code < 400:
                return resp
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            api_err = self._error(
                resp, retry_after=retry_after, query_id=query_id, execution_id=execution_id
            )
            if retry and resp.status_code in _RETRY_STATUSES:
                self._wait_before(attempt, retry_after, t0, api_err)
                continue
            if not retry and resp.status_code in _AMBIGUOUS_STATUSES:
                raise _Ambiguous(api_err, retry_after)
            raise api_err

    def _fetch(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole response, then unlink it from its body stream.

        httpx links a response and its stream both ways, so a response is otherwise
        freed only by the cyclic garbage collector, which a loop over pages can put off
        for dozens of pages: every page's body (8 MB for 31,250 rows x 8 columns) stayed
        in memory until then. The stream is read and closed by now; without it the
        response goes away as soon as the caller drops it.
        """
        resp = self.http.send(request)
        resp.stream = httpx.ByteStream(b"")
        return resp

    def _wait_before(
        self, attempt: int, retry_after: float | None, t0: float, err: DuneError
    ) -> None:
        """Sleep before the next attempt, or raise ``err`` when the budget is spent."""
        self._check_budget(attempt, t0, err)
        delay = self.retry.delay(attempt, retry_after)
        if self.clock() + delay - t0 > self.retry.max_elapsed:
            raise err
        log.info(
            "%s; retrying in %.1fs (attempt %d of %d)",
            err,
            delay,
            attempt + 1,
            self.retry.max_attempts,
        )
        self.sleep(delay)

    def _check_budget(self, attempt: int, t0: float, err: DuneError) -> None:
        if attempt >= self.retry.max_attempts or self.clock() - t0 > self.retry.max_elapsed:
            raise err

    def _error(
        self,
        resp: httpx.Response,
        *,
        retry_after: float | None,
        query_id: int | None,
        execution_id: str | None,
    ) -> DuneAPIError:
        message = self._redact(_error_message(resp))
        code = resp.status_code
        cls = _ERRORS_BY_STATUS.get(code) or (DuneServerError if code >= 500 else DuneAPIError)
        url = resp.request.url.path
        if cls is DuneRateLimited:
            return DuneRateLimited(
                message,
                retry_after=retry_after,
                url=url,
                query_id=query_id,
                execution_id=execution_id,
            )
        return cls(message, status_code=code, url=url, query_id=query_id, execution_id=execution_id)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key in text else text

    def _redacted_state(
        self, exc: UnknownExecutionState, query_id: int | None, execution_id: object
    ) -> UnknownExecutionState:
        """The state string is Dune's text: it never carries the key into an error."""
        eid = execution_id if isinstance(execution_id, str) else None
        return UnknownExecutionState(
            self._redact(exc.state), query_id=query_id, execution_id=eid and self._redact(eid)
        )

    def _cancel_quietly(self, execution_id: str, query_id: int | None) -> None:
        try:
            self.cancel(execution_id, query_id=query_id)
        except DuneError as exc:
            log.warning("execution %s: cancel after timeout failed: %s", execution_id, exc)


_INVALID = object()
# Column types whose JSON values must survive decoding exactly.
_EXACT_TYPE_PREFIXES = (
    "boolean",  # an INTEGER column too: a huge number there must not arrive as a float
    "bigint",
    "integer",
    "int",
    "smallint",
    "tinyint",
    "uint",
    "hugeint",
    "decimal",
    "numeric",
)


def decode_json(content: bytes) -> Any:
    """Decode a body with orjson, falling back to the exact stdlib decoder when needed.

    orjson turns integers beyond 64 bits into floats silently; Dune sends uint256 and
    decimals as strings, but if an exact-typed column ever arrives as a float we re-decode
    the page with ``json`` (arbitrary-precision ints, ``Decimal`` for fractions) so no
    digit is lost. Returns ``_INVALID`` for a body that is not JSON (e.g. truncated).
    """
    try:
        with _no_cyclic_gc():
            data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return _exact_json(content)
    if isinstance(data, dict) and _has_inexact_values(data):
        return _exact_json(content)
    return data


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold the cyclic GC off while a page is decoded.

    A page is tens of thousands of new dicts, which set off a young-generation collection
    every 700 allocations; decoded JSON holds no cycles, so all of them are wasted work
    (about a tenth of a load's CPU at 1M rows). Collection resumes right after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _exact_json(content: bytes) -> Any:
    """The stdlib decoder, for what orjson refuses or rounds. Hostile bodies get a defined
    outcome here: integers beyond int()'s 4300-digit limit stay exact as ``Decimal``;
    nesting too deep for the decoder counts as invalid JSON; ``\ud800``-style escapes of
    lone surrogates (which no UTF-8 text can hold) become U+FFFD, as Go's encoder writes
    invalid text; ``NaN``/``Infinity`` literals are accepted as floats."""
    try:
        data = json.loads(content, parse_float=Decimal, parse_int=_exact_int)
        if _SURROGATE_ESCAPE.search(content):
            data, replaced = _replace_surrogates(data)
            if replaced:
                log.warning(
                    "a response held %d text value(s) with lone surrogates; kept with U+FFFD",
                    replaced,
                )
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _INVALID
    return data


# A \uD800-\uDFFF escape: orjson refuses lone ones, the stdlib decodes them as they are.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _exact_int(text: str) -> int | Decimal:
    return int(text) if len(text) < 4300 else Decimal(text)


def _replace_surrogates(value: Any) -> tuple[Any, int]:
    """``value`` with lone surrogates in every string (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        fixed, n = _SURROGATES.subn("\ufffd", value)
        return fixed, 1 if n else 0
    if isinstance(value, list):
        pairs = [_replace_surrogates(item) for item in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        out, count = {}, 0
        for key, item in value.items():
            (new_key, a), (new_item, b) = _replace_surrogates(key), _replace_surrogates(item)
            out[new_key] = new_item
            count += a + b
        return out, count
    return value, 0


def _has_inexact_values(data: dict[str, Any]) -> bool:
    result = data.get("result")
    if not isinstance(result, dict):
        return False
    meta, rows = result.get("metadata"), result.get("rows")
    if not isinstance(meta, dict) or not isinstance(rows, list) or not rows:
        return False
    names, types = meta.get("column_names") or [], meta.get("column_types") or []
    exact = [
        n
        for n, t in zip(names, types, strict=False)
        if isinstance(t, str) and t.lower().startswith(_EXACT_TYPE_PREFIXES)
    ]
    return any(type(row.get(name)) is float for name in exact for row in rows)


class _Ambiguous(Exception):
    """Internal: a non-retried request failed in a way that may have reached Dune."""

    def __init__(self, error: DuneError, retry_after: float | None) -> None:
        self.error = error
        self.retry_after = retry_after
        super().__init__(str(error))


def _page_params(limit: int, offset: int, allow_partial: bool) -> list[tuple[str, str]]:
    params = [("limit", str(limit)), ("offset", str(offset))]
    if allow_partial:
        params.append(("allow_partial_results", "true"))
    return params


@contextmanager
def _partial_refusal(query_id: int | None, execution_id: str) -> Iterator[None]:
    """Dune refuses a truncated result with a 400; say so as ``ExecutionPartial``."""
    try:
        yield
    except DuneBadRequest as exc:
        if _refused_as_partial(exc):
            raise _partial("this result", query_id, execution_id) from exc
        raise


def _refused_as_partial(exc: DuneBadRequest) -> bool:
    """Dune's 400 "Partial Result, please request with allow_partial_results=true"."""
    return "partial" in exc.message.lower()


def _partial(what: str, query_id: int | None, execution_id: str | None) -> ExecutionPartial:
    # That 400 is an outcome of the execution, not a bad request: give it the typed error.
    return ExecutionPartial(
        f"{what} is truncated (COMPLETED_PARTIAL); set allow_partial to accept it",
        state=ExecutionState.PARTIAL.value,
        query_id=query_id,
        execution_id=execution_id,
    )


def is_fresh(
    page: ExecutionStatus, max_age: timedelta, now: datetime, *, allow_partial: bool = False
) -> bool:
    """Whether a latest result is usable without executing: finished within ``max_age``."""
    usable = page.state is ExecutionState.COMPLETED or (
        allow_partial and page.state is ExecutionState.PARTIAL
    )
    ended = page.execution_ended_at
    return usable and ended is not None and now - ended < max_age


def split_csv_page(content: bytes) -> tuple[str, bytes, int]:
    """Split a CSV page into its header line, the rest, and the number of records.

    Records are counted with the csv module, so quoted newlines inside values count right.
    """
    text = content.decode("utf-8")
    if not text:
        return "", b"", 0
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    header_lines = reader.line_num
    rows = sum(1 for _ in reader)
    cut = 0
    for _ in range(header_lines):
        cut = text.index("\n", cut) + 1
    return text[:cut].rstrip("\r\n"), text[cut:].encode("utf-8"), rows


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _error_message(resp: httpx.Response) -> str:
    """Dune's ``{"error": ...}`` text, or a short snippet of a non-JSON (gateway) body."""
    data = decode_json(resp.content)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    snippet = " ".join(resp.text.split())[:200]
    return snippet or resp.reason_phrase or "no body"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg')}"
