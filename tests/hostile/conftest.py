"""The emulator on loopback and a fast client, shared by the hostile-input tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
