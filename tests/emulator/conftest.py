from __future__ import annotations

import pytest

from downstream.emulator import DuneEmulator

from .helpers import Client, make_client, make_emulator


@pytest.fixture
def emulator() -> DuneEmulator:
    return make_emulator()


@pytest.fixture
def client(emulator: DuneEmulator) -> Client:
    return make_client(emulator)
