"""The outermost ASGI layer: faults, stats, auth and rate limits around the API routes.

Order of a request under ``/api``:

1. count it in stats and ask the fault queue (faults act like a misbehaving
   gateway in front of Dune, so a ``before`` fault answers even a bad key);
2. check the API key (401 before anything else the API does);
3. take a rate-limit token (429);
4. run the route, capturing its response so ``after``/``slow``/``truncate``/
   ``reset`` faults can rewrite it.

``/_emulator/*`` goes straight to the control API (no auth, no stats).
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import wire
from .faults import FaultRule
from .ratelimit import HIGH, LOW

if TYPE_CHECKING:
    from .emulator import DuneEmulator

Headers = list[tuple[bytes, bytes]]

_KINDS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/api/v1/query/[^/]+/execute/?"), "execute"),
    ("POST", re.compile(r"/api/v1/sql/execute/?"), "sql_execute"),
    ("GET", re.compile(r"/api/v1/execution/[^/]+/status/?"), "status"),
    ("GET", re.compile(r"/api/v1/execution/[^/]+/results/?"), "results"),
    ("GET", re.compile(r"/api/v1/execution/[^/]+/results/csv/?"), "results_csv"),
    ("POST", re.compile(r"/api/v1/execution/[^/]+/cancel/?"), "cancel"),
    ("GET", re.compile(r"/api/v1/query/[^/]+/results/?"), "latest"),
    ("GET", re.compile(r"/api/v1/query/[^/]+/results/csv/?"), "latest_csv"),
    ("GET", re.compile(r"/api/v1/query/[^/]+/?"), "query"),
)
_LOW_KINDS = frozenset({"execute", "sql_execute"})
CLIENT_GONE = 499
"""Status recorded in stats when the client hung up during a fault's delay (nginx's code)."""
MSG_RATE_LIMITED = "Too many requests, rate limit exceeded. Please slow down."


def route_kind(method: str, path: str) -> str:
    """Which Dune endpoint a request is for (``other`` if none)."""
    for kind_method, pattern, kind in _KINDS:
        if method == kind_method and pattern.fullmatch(path):
            return kind
    return "other"


def build_app(emu: DuneEmulator) -> ASGIApp:
    from .app import build_api
    from .control import build_control

    return Gateway(emu, build_api(emu), build_control(emu))


class Gateway:
    """ASGI callable; see the module docstring for the order of checks."""

    def __init__(self, emu: DuneEmulator, api: ASGIApp, control: ASGIApp) -> None:
        self.emu = emu
        self.api = api
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_emulator"):
            await self.control(scope, receive, send)
            return
        method: str = scope["method"]
        kind = route_kind(method, path)
        body = await _read_body(receive)
        stats = self.emu.counters
        stats.request(kind)
        rule = self.emu.faults.take(method, path)
        if rule is not None:
            stats.fault(rule.action)
        if rule is not None and rule.action == "respond" and rule.when == "before":
            response = _Response(*rule.canned_response())
        else:
            response = _Response(*await self._handle(scope, body, kind))
            if rule is not None:
                response = _rewrite(rule, response)
        if rule is not None and await _pause(rule.delay, receive):
            stats.response(kind, CLIENT_GONE, 0)
            return
        # Count before sending: a client reading stats right after its response (or a
        # test resetting them before the next one) must not race the count.
        stats.response(kind, response.status, len(response.payload))
        await response.send(send)

    async def _handle(self, scope: Scope, body: bytes, kind: str) -> tuple[int, Headers, bytes]:
        """Auth, rate limit, then the route; returns the complete response."""
        emu = self.emu
        api_key = _api_key(scope)
        if not emu.config.key_is_valid(api_key):
            return _json_error(401, "invalid API Key")
        with emu.lock:
            limits = emu.config.limits_for(api_key)
            wait = None
            if limits is not None:
                klass = LOW if kind in _LOW_KINDS else HIGH
                per_minute = limits[0] if klass == LOW else limits[1]
                wait = emu.limiter.acquire(api_key, klass, per_minute)
        if wait is not None:
            emu.counters.rate_limited()
            status, headers, payload = _json_error(429, MSG_RATE_LIMITED)
            if emu.config.emit_retry_after:
                headers.append((b"retry-after", _retry_after(emu, wait).encode()))
            return status, headers, payload
        return await _capture(self.api, scope, body)


@dataclass(frozen=True)
class _Response:
    """A response ready to go; ``complete=False`` drops the connection mid-body."""

    status: int
    headers: Headers
    payload: bytes
    complete: bool = True

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        # An incomplete body promises more and then returns, which makes the server
        # close the connection mid-body.
        await send(
            {"type": "http.response.body", "body": self.payload, "more_body": not self.complete}
        )


def _rewrite(rule: FaultRule, real: _Response) -> _Response:
    """The real response as the fault rule rewrites it."""
    if rule.action == "respond":
        return _Response(*rule.canned_response())
    if rule.action == "slow":
        return real
    half = real.payload[: len(real.payload) // 2]
    if rule.action == "truncate":
        return _Response(real.status, _with_length(real.headers, len(half)), half)
    # reset: promise the whole body, deliver half.
    return _Response(
        real.status, _with_length(real.headers, len(real.payload)), half, complete=False
    )


def _api_key(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-dune-api-key":
            return str(value.decode("latin-1"))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    keys = query.get("api_key")
    return keys[0] if keys else ""


def _retry_after(emu: DuneEmulator, wait_seconds: float) -> str:
    """The configured value, or whole seconds until a token is back (never 0)."""
    fixed = emu.config.retry_after_seconds
    if fixed is not None:
        return str(fixed)
    return str(max(1, math.ceil(wait_seconds)))


def _json_error(status: int, message: str) -> tuple[int, Headers, bytes]:
    payload = wire.dumps({"error": message})
    headers: Headers = [
        (b"content-type", wire.JSON_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    return status, headers, payload


def _with_length(headers: Headers, length: int) -> Headers:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _capture(app: ASGIApp, scope: Scope, body: bytes) -> tuple[int, Headers, bytes]:
    """Run an ASGI app to completion and return its response."""
    delivered = False
    status = 500
    headers: Headers = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


async def _pause(seconds: float, receive: Receive) -> bool:
    """Sleep without blocking other requests; True if the client went away meanwhile."""
    if seconds <= 0:
        return False

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(disconnected())
    done, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return watcher in done


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
