"""Serving one page of an execution's result, as JSON or CSV (the four read endpoints).

Every read counts as a poll of the execution, whatever the answer, because a
client polling ``/results`` instead of ``/status`` (as the Go SDK does) must
still see the state advance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from . import paging, wire
from .emulator import ApiError
from .executions import COMPLETED, READABLE, Execution
from .paging import BadRequest, ReadParams
from .payloads import Page, results_body, wire_state
from .rows import Row, is_float_type, project, value_size

if TYPE_CHECKING:
    from .emulator import DuneEmulator

MSG_PARTIAL = "Partial Result, please request with 'allow_partial_results=true'"
MSG_DATAPOINTS = (
    "This api request would exceed your configured limits per request. Please visit your "
    "settings on dune.com and adjust your limits to continue usage."
)


@dataclass(frozen=True)
class _Window:
    """Which rows a request gets: a contiguous slice, or a random sample."""

    start: int
    stop: int
    limit: int
    sample: list[Row] | None = None

    @property
    def count(self) -> int:
        return len(self.sample) if self.sample is not None else self.stop - self.start


def read_results(
    emu: DuneEmulator, execution: Execution, params: ReadParams, csv: bool, base_url: str
) -> Response:
    """One results page. The caller holds ``emu.lock``."""
    now = emu.clock.now_ns()
    execution.refresh(now)
    try:
        return _page(emu, execution, params, csv, base_url, now)
    finally:
        execution.record_poll(now)


def _page(
    emu: DuneEmulator,
    execution: Execution,
    params: ReadParams,
    csv: bool,
    base_url: str,
    now: int,
) -> Response:
    config = emu.config
    state = execution.state
    if csv and state not in READABLE:
        raise BadRequest(f"Query state is {wire_state(state, config)}, cannot provide CSV result")
    if state in READABLE and state != COMPLETED and not params.allow_partial:
        raise BadRequest(MSG_PARTIAL)
    if state not in READABLE:
        return _json(results_body(execution, config, None, None, None))

    names, types, projection = _columns(execution, params)
    window = _window(execution, params, projection, config.max_page_rows)
    cap = config.max_datapoints_per_request
    if cap is not None and window.count * len(names) > cap and not params.ignore_datapoint_cap:
        raise ApiError(402, MSG_DATAPOINTS)

    total = len(execution.source)
    next_offset = window.stop if window.sample is None and window.stop < total else None
    next_url = None
    if next_offset is not None:
        next_url = paging.next_uri(base_url, execution.id, csv, params, window.limit, next_offset)
    emu.counters.rows(window.count)

    if csv:
        headers = {}
        if next_url is not None:
            headers = {"x-dune-next-uri": next_url, "x-dune-next-offset": str(next_offset)}
        body = wire.csv_header(names).encode() + _csv_rows(execution, window, names, types, emu)
        response = Response(body, 200, headers, media_type=wire.CSV_TYPE)
    else:
        if window.sample is not None:
            rows_json = wire.dumps_rows(window.sample)
            page_bytes = sum(value_size(v) for row in window.sample for v in row.values())
        else:
            rows_json = execution.source.json_rows(window.start, window.stop, projection)
            page_bytes = execution.source.value_bytes(window.start, window.stop)
        page = Page(rows_json, window.count, names, types, page_bytes)
        response = _json(results_body(execution, config, page, next_url, next_offset))
    # Counted after the body is built: ``expire_after_pages`` expires the result for the
    # next read, while the page being served still reports the state it was served in.
    execution.record_page(now)
    return response


def _columns(
    execution: Execution, params: ReadParams
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...] | None]:
    """Column names and types of the page, in the requested order, plus the projection."""
    names, types = execution.column_names, execution.column_types
    if params.columns is None:
        return names, types, None
    unknown = [c for c in params.columns if c not in names]
    if unknown:
        raise BadRequest(f"unknown columns: {', '.join(unknown)}")
    projection = tuple(dict.fromkeys(params.columns))
    type_of = dict(zip(names, types, strict=True))
    return projection, tuple(type_of[c] for c in projection), projection


def _window(
    execution: Execution,
    params: ReadParams,
    projection: tuple[str, ...] | None,
    max_page_rows: int,
) -> _Window:
    total = len(execution.source)
    if params.sample_count is not None:
        picked = sorted(random.sample(range(total), min(params.sample_count, total)))
        return _Window(0, 0, 0, project(execution.source.take(picked), projection))
    limit = min(params.limit or max_page_rows, max_page_rows)
    start = min(params.offset, total)
    return _Window(start, min(start + limit, total), limit)


def _csv_rows(
    execution: Execution,
    window: _Window,
    names: tuple[str, ...],
    types: tuple[str, ...],
    emu: DuneEmulator,
) -> bytes:
    floats = [is_float_type(t) for t in types]
    null = emu.config.csv_null
    if window.sample is not None:
        lines = (wire.csv_line([r.get(c) for c in names], null, floats) for r in window.sample)
        return "".join(lines).encode()
    return execution.source.csv_rows(window.start, window.stop, names, floats, null)


def _json(body: dict[str, Any]) -> Response:
    return Response(wire.dumps(body), 200, media_type=wire.JSON_TYPE)
