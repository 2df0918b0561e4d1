"""The Dune API routes under ``/api/v1`` (auth, rate limits and faults live in ``gateway.py``)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import paging, wire
from .datasets import Dataset, UnknownParameters
from .emulator import MSG_ARCHIVED, MSG_BILLING, MSG_NO_LATEST, ApiError
from .executions import Execution, Script, Step
from .paging import BadRequest, ReadParams
from .payloads import status_body, wire_state
from .reading import read_results

if TYPE_CHECKING:
    from .emulator import DuneEmulator

log = logging.getLogger(__name__)

_SQL_QUERY_REF = re.compile(r"\s*select\s+\*\s+from\s+query_(\d+)\s*;?\s*", re.IGNORECASE)

Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(body), status, headers, media_type=wire.JSON_TYPE)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def _endpoint(handler: Handler) -> Handler:
    """Turn ``ApiError``/``BadRequest`` into Dune error bodies, and crashes into a JSON 500."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except BadRequest as exc:
            return error_response(400, exc.message)
        except Exception:
            log.exception("emulator handler failed")
            return error_response(500, "An internal error occured")

    return wrapped


def build_api(emu: DuneEmulator) -> Starlette:
    """Routes for the emulated endpoints."""

    @_endpoint
    async def execute(request: Request) -> Response:
        body = await _json_object(request)
        given = body.get("query_parameters") or {}
        if not isinstance(given, dict):
            raise BadRequest("query_parameters must be an object")
        performance = str(
            body.get("performance") or request.query_params.get("performance") or "medium"
        )
        with emu.lock:
            dataset = emu.dataset_for_request(request.path_params["query_id"])
            if dataset.archived:
                raise ApiError(403, MSG_ARCHIVED)
            try:
                parameters = dataset.resolve_parameters(given)
            except UnknownParameters as exc:
                raise BadRequest(str(exc)) from None
            if emu.config.billing_limit_reached:
                raise ApiError(402, MSG_BILLING)
            execution = emu.start_execution(dataset, parameters, performance)
            return _execute_answer(execution, emu)

    @_endpoint
    async def sql_execute(request: Request) -> Response:
        body = await _json_object(request)
        sql = body.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise BadRequest("sql is required")
        performance = str(body.get("performance") or "medium")
        with emu.lock:
            if emu.config.billing_limit_reached:
                raise ApiError(402, MSG_BILLING)
            match = _SQL_QUERY_REF.fullmatch(sql)
            if match:
                dataset = emu.dataset_for_request(match.group(1))
                execution = emu.start_execution(
                    dataset, dataset.resolve_parameters({}), performance, reported_query_id=0
                )
            else:
                token = sql.split()[0]
                failing = Script.build(
                    [Step("QUERY_STATE_PENDING", polls=1)],
                    "failed",
                    error={
                        "type": "FAILED_TYPE_EXECUTION_FAILED",
                        "message": f"line 1:1: mismatched input '{token}'",
                        "metadata": {"line": 1, "column": 1},
                    },
                )
                execution = _sql_without_dataset(emu, performance, failing)
            return _execute_answer(execution, emu)

    @_endpoint
    async def status(request: Request) -> Response:
        with emu.lock:
            execution = emu.execution_for_request(request.path_params["execution_id"])
            now = emu.clock.now_ns()
            execution.refresh(now)
            body = status_body(execution, emu.config, now)
            execution.record_poll(now)
        return json_response(body)

    @_endpoint
    async def cancel(request: Request) -> Response:
        with emu.lock:
            execution = emu.execution_for_request(request.path_params["execution_id"])
            cancelled = execution.cancel(emu.clock.now_ns())
        return json_response({"success": cancelled})

    def results(csv: bool, latest: bool) -> Handler:
        @_endpoint
        async def handler(request: Request) -> Response:
            params = paging.parse_read_params(request.query_params.multi_items())
            with emu.lock:
                if latest:
                    execution = _latest(emu, request.path_params["query_id"], params)
                else:
                    execution = emu.execution_for_request(request.path_params["execution_id"])
                if emu.config.billing_limit_reached:
                    raise ApiError(402, MSG_BILLING)
                base = f"{request.url.scheme}://{request.url.netloc}"
                return read_results(emu, execution, params, csv, base)

        return handler

    @_endpoint
    async def query_object(request: Request) -> Response:
        with emu.lock:
            dataset = emu.dataset_for_request(request.path_params["query_id"])
            return json_response(dataset.describe())

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(405, "method not allowed")

    prefix = "/api/v1"
    return Starlette(
        routes=[
            Route(f"{prefix}/query/{{query_id}}/execute", execute, methods=["POST"]),
            Route(f"{prefix}/sql/execute", sql_execute, methods=["POST"]),
            Route(f"{prefix}/execution/{{execution_id}}/status", status, methods=["GET"]),
            Route(
                f"{prefix}/execution/{{execution_id}}/results",
                results(csv=False, latest=False),
                methods=["GET"],
            ),
            Route(
                f"{prefix}/execution/{{execution_id}}/results/csv",
                results(csv=True, latest=False),
                methods=["GET"],
            ),
            Route(f"{prefix}/execution/{{execution_id}}/cancel", cancel, methods=["POST"]),
            Route(
                f"{prefix}/query/{{query_id}}/results",
                results(csv=False, latest=True),
                methods=["GET"],
            ),
            Route(
                f"{prefix}/query/{{query_id}}/results/csv",
                results(csv=True, latest=True),
                methods=["GET"],
            ),
            Route(f"{prefix}/query/{{query_id}}", query_object, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _execute_answer(execution: Execution, emu: DuneEmulator) -> Response:
    # Dune answers execute before the engine has looked at the query, so even an
    # execution scripted to fail instantly is reported PENDING here.
    state = "QUERY_STATE_PENDING" if execution.terminal else execution.state
    return json_response({"execution_id": execution.id, "state": wire_state(state, emu.config)})


def _sql_without_dataset(emu: DuneEmulator, performance: str, script: Script) -> Execution:
    empty = Dataset.from_rows(0, [], column_names=[], column_types=[])
    return emu.start_execution(empty, {}, performance, reported_query_id=0, script=script)


def _latest(emu: DuneEmulator, raw_query_id: str, params: ReadParams) -> Execution:
    dataset = emu.dataset_for_request(raw_query_id)
    known = {p.key for p in dataset.parameters}
    if any(name not in known for name in params.params):
        raise ApiError(404, MSG_NO_LATEST)
    execution = emu.store.latest(dataset.query_id, params.params)
    if execution is None:
        raise ApiError(404, MSG_NO_LATEST)
    return execution
