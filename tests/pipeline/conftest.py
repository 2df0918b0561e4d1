"""A served emulator and a fast client for the pipeline tests (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from downstream.dune import DuneClient, RetryPolicy, make_http_client
from downstream.emulator import DuneEmulator, serve
from downstream.spec import QuerySpec

KEY = "pipeline-test-key"
NUMBERS = 77  # a query with no earlier execution
NUMBER_ROWS = [{"n": n, "label": f"row {n}", "half": n / 2} for n in range(10)]


@dataclass
class Sleeps:
    """An injected ``sleep`` that records instead of sleeping."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def emulator() -> DuneEmulator:
    emulator = DuneEmulator.bundled()
    emulator.add_dataset(
        NUMBERS,
        NUMBER_ROWS,
        column_names=["n", "label", "half"],
        column_types=["bigint", "varchar", "double"],
        name="numbers",
        parameters=[{"key": "min", "type": "number", "value": "0"}],
        filters=[{"parameter": "min", "column": "n", "op": ">="}],
    )
    for query_id in (NUMBERS, 1463956, 9000001, 9000002):
        emulator.set_script(query_id, [], "completed")  # finished at the first poll
    return emulator


@pytest.fixture
def base_url(emulator: DuneEmulator) -> Iterator[str]:
    with serve(emulator) as url:
        yield url


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(base_url: str, sleeps: Sleeps) -> Iterator[DuneClient]:
    with DuneClient(
        make_http_client(base_url),
        KEY,
        sleep=sleeps,
        retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_elapsed=30),
    ) as dune:
        yield dune


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bronze.db")


def numbers_spec(**kw: object) -> QuerySpec:
    base: dict[str, object] = {"name": "numbers", "query_id": NUMBERS, "primary_key": ["n"]}
    return QuerySpec.model_validate({**base, **kw})
