"""Stopping promptly on SIGTERM (what Kubernetes sends) with nothing half-written.

A signal handler can only run on the main thread, while loads and polls run on worker
threads. So the handler just sets one process-wide event; every place that can wait or
write checks it: sleeps (polling, retry backoff, lock waits) wake up at once and raise
``Interrupted``, and the loader checks it at every page, so an open transaction rolls
back within one page. Each query then ends as a failed result and the run finishes on
its own, quickly, with its state recorded, instead of dying mid-request.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from downstream.errors import DownstreamError

log = logging.getLogger("downstream.shutdown")

STOP = threading.Event()


class Interrupted(DownstreamError):
    """The process was asked to stop (SIGTERM); the work in progress was rolled back."""


def requested() -> bool:
    return STOP.is_set()


def check(where: str = "") -> None:
    """Raise ``Interrupted`` if a stop was requested (a safe point to abandon work)."""
    if STOP.is_set():
        raise Interrupted(f"stopped by SIGTERM{f' ({where})' if where else ''}")


def sleep(seconds: float) -> None:
    """``time.sleep`` that a stop request cuts short (raising ``Interrupted``)."""
    if STOP.wait(max(0.0, seconds)):
        check()


Handler = Callable[[int, FrameType | None], Any] | int | None


def install(signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> bool:
    """Make these signals request a stop, then run whatever handler was there before.

    Chaining keeps Prefect's own SIGTERM handling (``prefect flow-run execute`` may
    reschedule the run) working. Only the main thread can install handlers; elsewhere
    this does nothing and returns False.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in signals:
        previous: Handler = signal.getsignal(sig)
        if getattr(previous, "_downstream", False):
            continue
        signal.signal(sig, _handler(previous))
    return True


def _handler(previous: Handler) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if STOP.is_set() and previous == signal.SIG_DFL:
            # A second signal: the user insists. Die the default way (SQLite stays whole).
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.warning("%s received: stopping; loads in progress roll back", name)
        STOP.set()
        if callable(previous):
            previous(signum, frame)
        # SIG_DFL: do not die mid-write; the run unwinds on its own, within a page.

    handle._downstream = True  # type: ignore[attr-defined]
    return handle
