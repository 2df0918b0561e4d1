"""One contender, run in its own process: ``python -m bench.contenders NAME --base-url ...``.

Each contender has a ``prepare`` step (imports, clients, pre-built data; not timed) that
returns the timed ``work``. The child writes ``{"rows", "prepare_s", "work_s", ...}`` as JSON
to ``--result``; the parent measures wall time, peak RSS and the emulator's counters.

Contenders do what a user of each tool would write, with one concession each where the
tool's default fails against Dune's 250k-datapoint cap: the page size (``PAGE_ROWS``).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

TABLE = "transfers"
PRIMARY_KEY = "block_number"
API_KEY = "bench-key"
N_COLUMNS = 8
# 32,000 rows x 8 columns is over Dune's default 250k datapoints per request, so every
# contender pages at the largest size under the cap (Downstream chooses this itself).
PAGE_ROWS = 250_000 // N_COLUMNS

Work = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Context:
    base_url: str
    query_id: int
    rows: int
    db: Path
    workdir: Path
    extra: dict[str, str]


# -- Downstream -------------------------------------------------------------------------


def _core_spec(ctx: Context) -> Any:
    from downstream.spec import QuerySpec, Spec

    return Spec(queries=[QuerySpec(name=TABLE, query_id=ctx.query_id, primary_key=[PRIMARY_KEY])])


def core(ctx: Context) -> Work:
    """Downstream's plain-Python pipeline: decide, stream pages, normalise, atomic upsert."""
    from downstream.dune import DuneClient, make_http_client
    from downstream.pipeline import run_spec

    spec = _core_spec(ctx)

    def work() -> dict[str, Any]:
        with DuneClient(make_http_client(ctx.base_url), API_KEY) as client:
            (result,) = run_spec(client, ctx.db, spec)
        if not result.ok:
            raise RuntimeError(f"core failed: {result.error_type}: {result.error}")
        return {"rows": result.rows, "outcome": result.outcome}

    return work


def flow(ctx: Context) -> Work:
    """The Prefect flow ``flows.onchain.onchain`` against an already running server.

    The parent sets ``PREFECT_API_URL``; credentials come from the environment as in a
    deployment, with no client-side pacing (``DUNE_API_PLAN=none``), as for ``core``.
    """
    import os

    os.environ |= {
        "DUNE_API_KEY": API_KEY,
        "DUNE_API_BASE_URL": ctx.base_url,
        "DUNE_API_PLAN": "none",
    }
    from downstream.spec import QuerySpec
    from flows.onchain import onchain

    query = QuerySpec(name=TABLE, query_id=ctx.query_id, primary_key=[PRIMARY_KEY])

    def work() -> dict[str, Any]:
        state = onchain(queries=[query], db_path=str(ctx.db), refresh=False, return_state=True)
        if not state.is_completed():
            raise RuntimeError(f"flow ended {state.type.value}: {state.message}")
        # Typed as the flow's own return type (a State); the value is its data.
        rows: list[dict[str, Any]] = cast(Any, state.result())
        return {"rows": rows[0]["rows"], "outcome": rows[0]["outcome"]}

    return work


# -- peers --------------------------------------------------------------------------------


def dune_client_json(ctx: Context) -> Work:
    """The official SDK as its README shows: ``get_latest_result``, then pandas ``to_sql``."""
    import pandas as pd
    from dune_client.client import DuneClient

    def work() -> dict[str, Any]:
        dune = DuneClient(api_key=API_KEY, base_url=ctx.base_url, request_timeout=60)
        results = dune.get_latest_result(ctx.query_id, batch_size=PAGE_ROWS)
        assert results.result is not None
        frame = pd.DataFrame(results.get_rows(), columns=results.result.metadata.column_names)
        with sqlite3.connect(ctx.db) as conn:
            frame.to_sql(TABLE, conn, if_exists="replace", index=False)
        return {"rows": len(frame)}

    return work


def dune_client_csv(ctx: Context) -> Work:
    """The SDK's pandas route: ``get_latest_result_dataframe`` (CSV pages), then ``to_sql``."""
    from dune_client.client import DuneClient

    def work() -> dict[str, Any]:
        dune = DuneClient(api_key=API_KEY, base_url=ctx.base_url, request_timeout=60)
        frame = dune.get_latest_result_dataframe(ctx.query_id, batch_size=PAGE_ROWS)
        with sqlite3.connect(ctx.db) as conn:
            frame.to_sql(TABLE, conn, if_exists="replace", index=False)
        return {"rows": len(frame)}

    return work


def dlt_rest_api(ctx: Context) -> Work:
    """dlt's ``rest_api`` source on the results endpoint, merged by key into SQLite."""
    import os

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    config: Any = {
        "client": {
            "base_url": f"{ctx.base_url}/api/v1/",
            "auth": {
                "type": "api_key",
                "name": "X-Dune-Api-Key",
                "api_key": API_KEY,
                "location": "header",
            },
            "paginator": {"type": "json_link", "next_url_path": "next_uri"},
        },
        "resources": [
            {
                "name": TABLE,
                "primary_key": PRIMARY_KEY,
                "write_disposition": "merge",
                "endpoint": {
                    "path": f"query/{ctx.query_id}/results",
                    "params": {"limit": PAGE_ROWS},
                    "data_selector": "result.rows",
                },
            }
        ],
    }
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(ctx.workdir / "dlt"),
        destination=dlt.destinations.sqlalchemy(
            credentials=f"sqlite:///{ctx.db}",
            create_primary_keys=ctx.extra.get("dlt_pk", "1") == "1",
        ),
        dataset_name="main",
    )

    def work() -> dict[str, Any]:
        info = pipeline.run(rest_api_source(config))
        info.raise_on_failed_jobs()
        return {"rows": _count_rows(ctx.db)}

    return work


# -- ceilings -----------------------------------------------------------------------------


def fetch_only(ctx: Context) -> Work:
    """Our HTTP and JSON decoding of every page; rows are counted and dropped."""
    from downstream.dune import DuneClient, make_http_client

    def work() -> dict[str, Any]:
        rows = 0
        with DuneClient(make_http_client(ctx.base_url), API_KEY) as client:
            latest = client.get_latest_result(ctx.query_id)
            assert latest is not None
            for page in client.iter_result_pages(
                latest.execution_id, query_id=ctx.query_id, metadata=latest.metadata
            ):
                rows += len(page.rows)
        return {"rows": rows}

    return work


def load_only(ctx: Context) -> Work:
    """``executemany`` of pre-built, already normalised tuples into the core's schema."""
    from downstream.emulator.synthetic import COLUMN_NAMES, COLUMN_TYPES, SyntheticRows
    from downstream.normalize import columns_from_metadata, normalize_rows
    from downstream.store import open_database, quote

    columns = columns_from_metadata(list(COLUMN_NAMES), list(COLUMN_TYPES))
    source = SyntheticRows(ctx.rows)
    tuples: list[tuple[Any, ...]] = []
    for start in range(0, ctx.rows, PAGE_ROWS):
        page = normalize_rows(source.slice(start, start + PAGE_ROWS), columns)
        n = page.row_count
        tuples += zip(
            *page.values, ["01BENCH"] * n, ["2026-01-01T00:00:00.000000Z"] * n, strict=True
        )
    names = [c.name for c in columns] + ["_execution_id", "_loaded_at"]

    def work() -> dict[str, Any]:
        db = open_database(ctx.db)
        cols: dict[str, Any] = {
            c.name: {"INTEGER": int, "REAL": float}.get(c.sqlite_type, str) for c in columns
        }
        cols |= {"_execution_id": str, "_loaded_at": str}
        db.table(TABLE).create(cols, pk=PRIMARY_KEY, not_null={"_execution_id", "_loaded_at"})
        sql = (
            f"INSERT INTO {quote(TABLE)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, tuples)
        conn.execute("COMMIT")
        db.close()
        return {"rows": len(tuples)}

    return work


CONTENDERS: dict[str, Callable[[Context], Work]] = {
    "core": core,
    "flow": flow,
    "dune-client": dune_client_json,
    "dune-client-csv": dune_client_csv,
    "dlt": dlt_rest_api,
    "fetch-only": fetch_only,
    "load-only": load_only,
}


def _count_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contenders")
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--query-id", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    ctx = Context(
        base_url=args.base_url,
        query_id=args.query_id,
        rows=args.rows,
        db=args.db,
        workdir=args.workdir,
        extra=dict(item.split("=", 1) for item in args.set),
    )
    t0 = time.perf_counter()
    work = CONTENDERS[args.name](ctx)
    t1, c1 = time.perf_counter(), time.process_time()
    out = work()
    t2, c2 = time.perf_counter(), time.process_time()
    # CPU seconds of every thread: far steadier than wall time on a shared machine.
    out |= {"prepare_s": t1 - t0, "work_s": t2 - t1, "work_cpu_s": c2 - c1}
    args.result.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
