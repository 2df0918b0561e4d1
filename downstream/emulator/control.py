"""HTTP control API under ``/_emulator/`` for out-of-process drivers (benchmarks, crash tests).

Every route mirrors a ``DuneEmulator`` method and takes the same dicts:

==========================================  ==========================================
``GET    /_emulator/health``                 ``{"ok": true, "datasets": [...], ...}``
``GET    /_emulator/stats``                  ``stats()``
``POST   /_emulator/stats/reset``            ``reset_stats()``
``GET    /_emulator/faults``                 ``pending_faults()``
``POST   /_emulator/faults``                 ``add_fault`` for a rule or a list of rules
``DELETE /_emulator/faults``                 ``clear_faults()``
``POST   /_emulator/scripts/{query_id}``     ``set_script`` body ``{"steps", "outcome", "once",
                                             "expire_after_pages", "error", "partial_rows"}``
``DELETE /_emulator/scripts/{query_id}``     ``clear_scripts(query_id)``
``POST   /_emulator/seed/{query_id}``        ``seed_execution`` body ``{"parameters",
                                             "age_hours", "outcome"}`` -> ``{"execution_id"}``
``POST   /_emulator/datasets``               ``{"query": <query.json>, "rows": [...]}``
``POST   /_emulator/datasets/{id}/rows``     ``replace_rows`` body ``[...]`` or ``{"rows": [...]}``
``GET    /_emulator/executions/{query_id}``  ``[{"execution_id", "state"}]``, oldest first
``POST   /_emulator/clock``                  ``{"advance": seconds}`` -> ``{"now": ...}``
``GET    /_emulator/config``                 the config as a dict
``POST   /_emulator/config``                 a partial dict of config changes
==========================================  ==========================================
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import wire
from .datasets import dataset_from_dict

if TYPE_CHECKING:
    from .emulator import DuneEmulator

Handler = Callable[[Request], Awaitable[Response]]


def _reply(body: Any, status: int = 200) -> Response:
    return Response(wire.dumps(body), status, media_type=wire.JSON_TYPE)


def _control(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except KeyError as exc:
            return _reply({"error": f"not found: {exc.args[0] if exc.args else exc}"}, 404)
        except (ValueError, TypeError) as exc:
            return _reply({"error": str(exc)}, 400)

    return wrapped


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON body: {exc}") from None


async def _object(request: Request) -> dict[str, Any]:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def build_control(emu: DuneEmulator) -> Starlette:
    """The ``/_emulator`` routes for one emulator."""

    def query_id(request: Request) -> int:
        return int(request.path_params["query_id"])

    @_control
    async def health(request: Request) -> Response:
        with emu.lock:
            return _reply(
                {
                    "ok": True,
                    "datasets": sorted(emu.datasets),
                    "executions": len(emu.store),
                    "now": wire.rfc3339(emu.clock.now_ns(), 6),
                }
            )

    @_control
    async def stats(request: Request) -> Response:
        return _reply(emu.stats())

    @_control
    async def stats_reset(request: Request) -> Response:
        emu.reset_stats()
        return _reply({"ok": True})

    @_control
    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return _reply(emu.pending_faults())
        if request.method == "DELETE":
            emu.clear_faults()
            return _reply({"ok": True})
        body = await _body(request)
        rules = body if isinstance(body, list) else [body]
        emu.add_faults(rules)
        return _reply({"added": len(rules)})

    @_control
    async def scripts(request: Request) -> Response:
        if request.method == "DELETE":
            emu.clear_scripts(query_id(request))
            return _reply({"ok": True})
        body = await _object(request)
        emu.set_script(
            query_id(request),
            body.get(
                "steps",
                [
                    {"state": "QUERY_STATE_PENDING", "polls": 1},
                    {"state": "QUERY_STATE_EXECUTING", "polls": 1},
                ],
            ),
            str(body.get("outcome", "completed")),
            once=bool(body.get("once", False)),
            expire_after_pages=body.get("expire_after_pages"),
            error=body.get("error"),
            partial_rows=body.get("partial_rows"),
        )
        return _reply({"ok": True})

    @_control
    async def seed(request: Request) -> Response:
        body = await _object(request)
        execution_id = emu.seed_execution(
            query_id(request),
            body.get("parameters"),
            float(body.get("age_hours", 0.0)),
            str(body.get("outcome", "completed")),
        )
        return _reply({"execution_id": execution_id})

    @_control
    async def add_dataset(request: Request) -> Response:
        body = await _object(request)
        dataset = emu.register(dataset_from_dict(body["query"], body.get("rows") or []))
        return _reply({"query_id": dataset.query_id})

    @_control
    async def rows(request: Request) -> Response:
        body = await _body(request)
        new_rows = body.get("rows") if isinstance(body, dict) else body
        if not isinstance(new_rows, list):
            raise ValueError('expected a list of rows or {"rows": [...]}')
        emu.replace_rows(query_id(request), new_rows)
        return _reply({"ok": True, "rows": len(new_rows)})

    @_control
    async def executions(request: Request) -> Response:
        ids = emu.execution_ids(query_id(request))
        return _reply([{"execution_id": i, "state": emu.execution_state(i)} for i in ids])

    @_control
    async def clock(request: Request) -> Response:
        body = await _object(request)
        emu.advance_clock(float(body.get("advance", 0.0)))
        return _reply({"now": wire.rfc3339(emu.clock.now_ns(), 6)})

    @_control
    async def config(request: Request) -> Response:
        if request.method == "POST":
            with emu.lock:
                emu.config.update(await _object(request))
        return _reply(emu.config.to_dict())

    async def not_found(request: Request, exc: Exception) -> Response:
        return _reply({"error": "not found"}, 404)

    p = "/_emulator"
    return Starlette(
        routes=[
            Route(f"{p}/health", health, methods=["GET"]),
            Route(f"{p}/stats", stats, methods=["GET"]),
            Route(f"{p}/stats/reset", stats_reset, methods=["POST"]),
            Route(f"{p}/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route(f"{p}/scripts/{{query_id:int}}", scripts, methods=["POST", "DELETE"]),
            Route(f"{p}/seed/{{query_id:int}}", seed, methods=["POST"]),
            Route(f"{p}/datasets", add_dataset, methods=["POST"]),
            Route(f"{p}/datasets/{{query_id:int}}/rows", rows, methods=["POST"]),
            Route(f"{p}/executions/{{query_id:int}}", executions, methods=["GET"]),
            Route(f"{p}/clock", clock, methods=["POST"]),
            Route(f"{p}/config", config, methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_found},
    )
