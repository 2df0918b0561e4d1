"""The ad hoc command line behind ``python flows/onchain.py``.

It validates the spec before any request, checks that credentials exist, runs the
``onchain`` flow through Prefect (the temporary local server when ``PREFECT_API_URL`` is
not set), prints a summary table and exits 0 only when every query loaded or was already
up to date.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from blocks.dune import resolve_credentials
from downstream.errors import ConfigurationError, SpecError
from downstream.spec import load_spec
from downstream.store import db_path_from_env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "deployments" / "queries.yaml"
DEMO_SPEC = ROOT / "deployments" / "demo.yaml"
DEMO_KEY = "demo-key-for-the-local-emulator"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_COLUMNS = ("query", "outcome", "source", "execution_id", "rows", "new", "updated", "seconds")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python flows/onchain.py",
        description="Load Dune query results into the SQLite bronze database.",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        help=f"query spec YAML (default: {DEFAULT_SPEC.relative_to(ROOT)}; "
        f"with --demo: {DEMO_SPEC.relative_to(ROOT)})",
    )
    parser.add_argument("--db", help="SQLite file (default: $BRONZE_DB_PATH, else data/bronze.db)")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these queries of the spec"
    )
    parser.add_argument(
        "--refresh", action="store_true", help="execute every query now, ignoring freshness"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="serve the bundled datasets from the built-in Dune emulator on loopback and "
        "run against it (no key, no network)",
    )
    parser.add_argument("--block", help="name of a saved DuneCredentials block to use")
    parser.add_argument(
        "--concurrency", type=int, default=3, help="queries in flight at once (default 3)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only validate the spec; send no request"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str], flow: Callable[..., Any]) -> int:
    """Run ``flow`` (the ``onchain`` flow) as the command line asks; returns the exit code."""
    args = parse_args(argv)
    spec_path = args.spec or (DEMO_SPEC if args.demo else DEFAULT_SPEC)
    try:
        spec = load_spec(spec_path).select(args.only)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        print(f"{spec_path}: {len(spec.queries)} queries, all valid")
        return EXIT_OK
    db_path = str(db_path_from_env(args.db))
    with demo_emulator() if args.demo else nullcontext():
        try:
            resolve_credentials(args.block)
        except ConfigurationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        state = flow(
            queries=list(spec.queries),
            db_path=db_path,
            refresh=args.refresh,
            concurrency=args.concurrency,
            credentials_block=args.block,
            return_state=True,
        )
    rows = state.result(raise_on_failure=False)
    if isinstance(rows, list):
        print(render_summary(rows))
    print(f"\n{state.name}: {state.message or ''}".rstrip())
    print(f"database: {db_path}")
    return EXIT_OK if state.is_completed() else EXIT_FAILED


@contextmanager
def demo_emulator() -> Iterator[str]:
    """Serve the bundled datasets on a free loopback port; point Dune settings at it."""
    from downstream.emulator import DuneEmulator, serve

    saved = {k: os.environ.get(k) for k in ("DUNE_API_KEY", "DUNE_API_BASE_URL", "DUNE_API_PLAN")}
    with serve(DuneEmulator.bundled()) as base_url:
        os.environ.update(DUNE_API_KEY=DEMO_KEY, DUNE_API_BASE_URL=base_url, DUNE_API_PLAN="none")
        print(f"demo: Dune emulator serving the bundled datasets at {base_url}")
        try:
            yield base_url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def render_summary(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the run, one line per query, plus why any query failed."""
    table = [[str(row.get(c, "")) for c in _COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    for row in rows:
        if row.get("outcome") == "failed":
            lines.append(f"{row['query']} failed: {row.get('detail', '')}")
    return "\n".join(lines)
