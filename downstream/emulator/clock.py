"""The emulator's notion of "now", injectable so tests can jump past ``expires_at``.

Everything time-dependent (timed script steps, expiry, token buckets,
metadata timestamps) reads this clock, never ``time.time`` directly.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Real time plus an offset, or a frozen instant; both can be advanced.

    A frozen clock only moves when :meth:`advance` is called, which makes
    token buckets and timed steps fully deterministic in tests.
    """

    def __init__(self, start: datetime | int | None = None) -> None:
        """``start``: freeze at this instant (a datetime, or nanoseconds since the epoch)."""
        self._lock = threading.Lock()
        self._offset_ns = 0
        self._frozen_ns: int | None = None
        if isinstance(start, int):
            self._frozen_ns = start
        elif start is not None:
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            self._frozen_ns = _to_ns(start)

    @classmethod
    def frozen(cls, start: datetime | int | None = None) -> Clock:
        """A clock that stands still until advanced (defaults to the current instant)."""
        return cls(start if start is not None else datetime.now(UTC))

    @property
    def is_frozen(self) -> bool:
        return self._frozen_ns is not None

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        with self._lock:
            base = self._frozen_ns if self._frozen_ns is not None else time.time_ns()
            return base + self._offset_ns

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns() / 1e9, UTC)

    def advance(self, seconds: float) -> None:
        """Move time forward (or back, with a negative value)."""
        with self._lock:
            self._offset_ns += int(seconds * 1_000_000_000)


def _to_ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
