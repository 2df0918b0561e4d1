"""Stop requests: sleeps and safe points raise ``Interrupted``; handlers chain."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from downstream import shutdown


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGUSR1)
    shutdown.STOP.clear()
    yield
    shutdown.STOP.clear()
    signal.signal(signal.SIGUSR1, previous)


def test_nothing_happens_until_a_stop_is_requested() -> None:
    shutdown.check("anywhere")
    shutdown.sleep(0)
    assert not shutdown.requested()


def test_a_stop_request_cuts_sleeps_short_and_fails_safe_points() -> None:
    sleeper_error: list[BaseException] = []

    def sleeper() -> None:
        try:
            shutdown.sleep(60)
        except shutdown.Interrupted as exc:
            sleeper_error.append(exc)

    thread = threading.Thread(target=sleeper)
    thread.start()
    shutdown.STOP.set()
    thread.join(timeout=5)

    assert not thread.is_alive() and len(sleeper_error) == 1
    with pytest.raises(shutdown.Interrupted, match=r"stopped by SIGTERM \(page:3\)"):
        shutdown.check("page:3")


def test_the_handler_requests_a_stop_then_runs_the_previous_one() -> None:
    seen: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    signal.signal(signal.SIGUSR1, previous)
    assert shutdown.install((signal.SIGUSR1,))
    assert shutdown.install((signal.SIGUSR1,))  # idempotent: not chained twice

    os.kill(os.getpid(), signal.SIGUSR1)

    assert shutdown.requested()
    assert seen == [signal.SIGUSR1]


def test_handlers_are_only_installed_from_the_main_thread() -> None:
    installed: list[bool] = []
    thread = threading.Thread(target=lambda: installed.append(shutdown.install()))
    thread.start()
    thread.join()
    assert installed == [False]
