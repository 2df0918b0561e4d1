"""Run the emulator on a real loopback socket in a background thread (for wire-level tests).

We bind the socket ourselves (port 0 picks a free port) and hand it to
uvicorn, so the URL is known before the server starts and no other process can
grab the port in between.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .emulator import DuneEmulator


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 lets the OS choose.

    ``proto=IPPROTO_TCP`` matters: asyncio only sets TCP_NODELAY on accepted
    sockets whose proto says TCP, and without it Nagle plus delayed ACKs add
    ~40 ms to every keep-alive response (uvicorn writes headers and body apart).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(
    emulator: DuneEmulator, log_level: str = "warning", *, own_logging: bool = True
) -> uvicorn.Config:
    """``own_logging=False`` leaves the host process's logging config alone (in-thread use:
    uvicorn's ``dictConfig`` would otherwise re-enable every logger the host disabled)."""
    return uvicorn.Config(
        emulator.app,
        log_level=log_level,
        log_config=LOGGING_CONFIG if own_logging else None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )


@contextmanager
def serve(
    emulator: DuneEmulator, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> Iterator[str]:
    """Serve ``emulator`` in a daemon thread; yields the base URL, stops on exit."""
    sock = bind_socket(host, port)
    server = uvicorn.Server(uvicorn_config(emulator, log_level, own_logging=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="dune-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
