"""Contract fixtures: one emulator served on loopback for the session, a fresh client per test.

The server is shared because starting uvicorn per test would dominate the run time; each
test gets its own query ids (so executions and latest results never leak between tests)
and the fixtures reset faults, scripts, stats, rate-limit buckets and config around it.
Time is fake on the client side: ``sleep`` records the wait and moves both the client's
monotonic clock and the emulator's frozen clock, so retries, polling and expiry cost no
wall time and the two sides agree on "now".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from downstream.dune import DuneClient, RetryPolicy, make_http_client
from downstream.emulator import Clock, DuneEmulator, EmulatorConfig, serve

KEY = "sk-contract-5f0c2e9ab7d1"
START = datetime(2026, 3, 2, 14, 5, 11, 402913, tzinfo=UTC)

# A "transfers" query with one parameter of every type the client encodes, each tied to a
# column by an emulator filter, so the rows returned prove the parameters arrived typed.
COLUMNS = ("n", "day", "chain", "symbol", "amount_raw")
TYPES = ("bigint", "timestamp(3) with time zone", "varchar", "varchar", "uint256")
SYMBOLS = ("WETH", "USDC", "DAI", "PEPE")
FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)
PARAMETERS: list[dict[str, Any]] = [
    {"key": "start", "type": "datetime", "value": "2024-01-01 00:00:00"},
    {"key": "max_n", "type": "number", "value": "100000"},
    {"key": "chain", "type": "text", "value": "ethereum"},
    {"key": "tokens", "type": "enum", "value": list(SYMBOLS)},
]
FILTERS = [
    {"parameter": "start", "column": "day", "op": ">="},
    {"parameter": "max_n", "column": "n", "op": "<="},
    {"parameter": "chain", "column": "chain", "op": "="},
    {"parameter": "tokens", "column": "symbol", "op": "in"},
]


def transfer_rows(count: int) -> list[dict[str, Any]]:
    """Rows in Dune's wire encoding; ``amount_raw`` passes 2^64 from row 185 on."""
    return [
        {
            "n": i,
            "day": f"{FIRST_DAY + timedelta(hours=i):%Y-%m-%d %H:%M:%S}.000 UTC",
            "chain": "base" if i % 3 == 0 else "ethereum",
            "symbol": SYMBOLS[i % 4],
            "amount_raw": str(i * 10**17 + 7),
        }
        for i in range(count)
    ]


def select(
    rows: Sequence[dict[str, Any]],
    *,
    start: datetime = FIRST_DAY,
    max_n: int = 100_000,
    chain: str = "ethereum",
    tokens: Sequence[str] = SYMBOLS,
) -> list[dict[str, Any]]:
    """What the query returns for these parameters (our own reading, not the emulator's)."""
    first = f"{start:%Y-%m-%d %H:%M:%S}"
    return [
        r
        for r in rows
        if r["day"][:19] >= first
        and r["n"] <= max_n
        and r["chain"] == chain
        and r["symbol"] in tokens
    ]


def add_transfers(emulator: DuneEmulator, query_id: int, count: int) -> list[dict[str, Any]]:
    rows = transfer_rows(count)
    emulator.add_dataset(
        query_id,
        rows,
        column_names=COLUMNS,
        column_types=TYPES,
        name="transfers",
        parameters=PARAMETERS,
        filters=FILTERS,
    )
    return rows


@dataclass
class FakeTime:
    """The client's clock and sleep; sleeping also advances the emulator's clock."""

    emulator_clock: Clock
    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        self.emulator_clock.advance(seconds)

    def monotonic(self) -> float:
        return self.t


@dataclass
class Live:
    emulator: DuneEmulator
    base_url: str


@pytest.fixture(scope="session")
def live() -> Iterator[Live]:
    emulator = DuneEmulator(config=EmulatorConfig(valid_keys=[KEY]), clock=Clock.frozen(START))
    with serve(emulator) as base_url:
        yield Live(emulator, base_url)


_query_ids = itertools.count(7_000_001)


@pytest.fixture
def query_id() -> int:
    """A query id no other test uses."""
    return next(_query_ids)


@pytest.fixture
def emulator(live: Live) -> Iterator[DuneEmulator]:
    emu = live.emulator
    emu.clear_faults()
    emu.clear_scripts()
    emu.reset_stats()
    emu.limiter.reset()
    emu.config.update(EmulatorConfig(valid_keys=[KEY]).to_dict())
    yield emu
    # Like respx's assert_all_called: a fault that never fired tested nothing.
    unfired = emu.pending_faults()
    emu.clear_faults()
    assert unfired == [], f"faults that never fired: {unfired}"


@pytest.fixture
def fake_time(emulator: DuneEmulator) -> FakeTime:
    return FakeTime(emulator.clock)


@dataclass
class WireLog:
    """Every request the client put on the wire and every response head it got back."""

    requests: list[httpx.Request] = field(default_factory=list)
    responses: list[httpx.Response] = field(default_factory=list)

    def request(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def response(self, response: httpx.Response) -> None:
        self.responses.append(response)


Connect = Callable[..., DuneClient]


@pytest.fixture
def wire_log() -> WireLog:
    return WireLog()


@pytest.fixture
def connect(live: Live, fake_time: FakeTime, wire_log: WireLog) -> Iterator[Connect]:
    """Build a client for the live emulator; keyword arguments go to ``DuneClient``."""
    made: list[DuneClient] = []

    def make(
        *, api_key: str = KEY, timeout: httpx.Timeout | None = None, **options: Any
    ) -> DuneClient:
        # Plain HTTP on loopback: skip loading the CA bundle (~50 ms per client otherwise).
        transport = httpx.HTTPTransport(verify=False)
        http = make_http_client(live.base_url, timeout=timeout, transport=transport)
        http.event_hooks = {"request": [wire_log.request], "response": [wire_log.response]}
        options.setdefault(
            "retry", RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=30.0, max_elapsed=600)
        )
        client = DuneClient(
            http,
            api_key,
            sleep=fake_time.sleep,
            clock=fake_time.monotonic,
            now=live.emulator.clock.now,
            **options,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def dune(connect: Connect) -> DuneClient:
    """A client with production defaults (page and datapoint caps, retry budget)."""
    return connect()


def statuses(stats: Mapping[str, Any]) -> dict[str, int]:
    """``requests_by_status`` of an emulator stats snapshot."""
    return dict(stats["requests_by_status"])
