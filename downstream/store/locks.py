"""Advisory file locks that make one SQLite file safe for several runs at once.

SQLite's own lock protects a transaction, but a load holds its transaction while pages
arrive, which can outlast any busy timeout. So writers first take ``<db>.locks/writer``,
waiting as long as it takes (logging while they wait) instead of failing with "database
is locked"; and a run takes ``<db>.locks/query-<name>`` around deciding, executing and
loading one query, so two runs started together execute it once: the second finds the
first one's result in the ledger.

``flock`` locks belong to an open file, so they work between threads of one process as
well as between processes, and the kernel releases them when a process dies (SIGKILL
included): a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from downstream import shutdown

log = logging.getLogger("downstream.store")


class LockTimeout(TimeoutError):
    """Another run held the lock for longer than we were willing to wait."""


def lock_dir(db_path: str | os.PathLike[str]) -> Path:
    return Path(f"{db_path}.locks")


@contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float = 6 * 3600,
    poll: float = 0.05,
    sleep: Callable[[float], None] = shutdown.sleep,
    clock: Callable[[], float] = time.monotonic,
    what: str = "lock",
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; wait up to ``timeout`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start, announced = clock(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = clock() - start
                if waited >= timeout:
                    raise LockTimeout(
                        f"waited {waited:.0f}s for the {what} held by another run"
                    ) from None
                if not announced:
                    log.info("waiting for the %s held by another run", what)
                    announced = True
                sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def writer_lock(
    db_path: str | os.PathLike[str], *, timeout: float = 6 * 3600
) -> AbstractContextManager[None]:
    """The single-writer lock of a database file (a no-op for ``:memory:``)."""
    if str(db_path) == ":memory:":
        return nullcontext()
    return file_lock(lock_dir(db_path) / "writer", timeout=timeout, what="database writer lock")


def query_lock(
    db_path: str | os.PathLike[str], name: str, *, timeout: float = 6 * 3600
) -> AbstractContextManager[None]:
    """The lock serialising runs of one query against one database file."""
    if str(db_path) == ":memory:":
        return nullcontext()
    return file_lock(
        lock_dir(db_path) / f"query-{name}", timeout=timeout, what=f"lock of query {name}"
    )
