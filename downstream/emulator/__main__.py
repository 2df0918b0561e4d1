"""Command line: serve the Dune API emulator over HTTP.

    python -m downstream.emulator [--host 127.0.0.1] [--port 8000] [--data DIR ...]
        [--max-page-rows 32000] [--max-datapoints 250000] [--plan none|free|plus|enterprise]
        [--api-key KEY ...] [--csv-null '<nil>'] [--retry-after auto|off|SECONDS]
        [--synthetic-rows N] [--synthetic-query-id 9100001] [--synthetic-seed 0]
        [--page-cache-mb 256] [--log-level warning]

Without ``--data`` the bundled datasets are served (see ``downstream/emulator/data``).
``--port 0`` picks a free port. The first line on stdout is always
``Dune emulator listening on http://HOST:PORT``, so a parent process can read
the URL. Drive faults, scripts and the clock through ``/_emulator/*``
(``control.py``). SIGTERM or Ctrl-C stops the server cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from .config import PLANS, EmulatorConfig
from .datasets import Dataset, load_datasets
from .emulator import BUNDLED_DATA, DuneEmulator
from .server import base_url, bind_socket, uvicorn_config


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m downstream.emulator",
        description="Serve an emulated Dune API (/api/v1) from datasets on disk. "
        "Control it over HTTP under /_emulator/ (faults, scripts, clock, stats).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="DIR",
        help="dataset directory with <query_id>/query.json + rows.json(l); repeatable; "
        "without it the bundled datasets are served",
    )
    parser.add_argument("--max-page-rows", type=int, default=32_000, help="server cap on limit")
    parser.add_argument(
        "--max-datapoints",
        type=int,
        default=250_000,
        help="rows x columns per request before a 402; 0 disables the cap",
    )
    parser.add_argument("--plan", choices=sorted(PLANS), default="none", help="rate-limit plan")
    parser.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help="accepted API key, repeatable; without it any non-empty key is accepted",
    )
    parser.add_argument("--csv-null", default="<nil>", help="how NULL is written in CSV")
    parser.add_argument(
        "--retry-after",
        default="auto",
        help="Retry-After on 429: auto (seconds until a token), off, or fixed SECONDS",
    )
    parser.add_argument("--synthetic-rows", type=int, default=0, help="serve N generated rows")
    parser.add_argument(
        "--synthetic-query-id", type=int, default=9_100_001, help="query id of the generated rows"
    )
    parser.add_argument("--synthetic-seed", type=int, default=0, help="seed of the generated rows")
    parser.add_argument(
        "--page-cache-mb", type=int, default=256, help="encoded-page cache for generated rows"
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser.parse_args(argv)


def build_emulator(args: argparse.Namespace) -> DuneEmulator:
    config = EmulatorConfig(
        max_page_rows=args.max_page_rows,
        max_datapoints_per_request=args.max_datapoints or None,
        plan=args.plan,
        valid_keys=list(args.api_key) if args.api_key else None,
        csv_null=args.csv_null,
    )
    if args.retry_after == "off":
        config.emit_retry_after = False
    elif args.retry_after != "auto":
        config.retry_after_seconds = int(args.retry_after)
    emulator = DuneEmulator(config=config)
    for directory in args.data or [BUNDLED_DATA]:
        for dataset in load_datasets(directory):
            emulator.register(dataset)
    if args.synthetic_rows:
        emulator.register(
            Dataset.synthetic(
                args.synthetic_query_id,
                args.synthetic_rows,
                seed=args.synthetic_seed,
                cache_bytes=args.page_cache_mb << 20,
            )
        )
    return emulator


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emulator = build_emulator(args)
    sock = bind_socket(args.host, args.port)
    print(f"Dune emulator listening on {base_url(sock)}", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal;
    # ignoring that second delivery lets the process exit 0 instead of dying by signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(uvicorn_config(emulator, args.log_level)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
