"""The emulator on loopback, with the Dune settings of a run pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from downstream.emulator import DuneEmulator, serve
from downstream.spec import Spec, load_spec
from flows.cli import DEMO_SPEC

KEY = "flow-test-key-6f1d2a9c"
QUERY_IDS = (1463956, 9000001, 9000002)


@pytest.fixture
def emulator() -> DuneEmulator:
    emulator = DuneEmulator.bundled()
    emulator.config.valid_keys = [KEY]
    for query_id in QUERY_IDS:
        emulator.set_script(query_id, [], "completed")  # done at the first poll
    return emulator


@pytest.fixture
def dune_url(emulator: DuneEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(emulator) as url:
        monkeypatch.setenv("DUNE_API_KEY", KEY)
        monkeypatch.setenv("DUNE_API_BASE_URL", url)
        monkeypatch.setenv("DUNE_API_PLAN", "none")
        yield url


@pytest.fixture
def demo_spec() -> Spec:
    return load_spec(DEMO_SPEC)
