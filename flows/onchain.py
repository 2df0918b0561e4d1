"""The ``onchain`` flow: keep every query of a spec loaded in the bronze database.

Per query, in order: decide (latest result, ledger skip, incremental watermark) -> submit
-> wait -> load (stream pages -> normalise -> upsert). Queries run concurrently, at most
``concurrency`` at a time (Dune plans allow few executions in flight); loads into the one
SQLite file take turns, waits do not. One query failing never stops the others; the run
ends Failed listing which failed and why.

Ad hoc, without a deployment::

    python flows/onchain.py [--spec PATH] [--db PATH] [--only NAME ...] [--refresh] [--demo]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# ``python flows/onchain.py`` puts flows/ first on sys.path, not the project root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Offline machines: no telemetry attempts (and no noise about them failing).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The core logs through ``logging`` (retries, state changes, pages); show it in run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "downstream")

import logging  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.client.schemas.objects import State  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from blocks.dune import DuneCredentials, resolve_credentials  # noqa: E402
from downstream import shutdown  # noqa: E402
from downstream.pipeline import QueryResult, failed_result, record_failure_at  # noqa: E402
from downstream.spec import QuerySpec, Spec, load_spec, parse_spec  # noqa: E402
from downstream.store import db_path_from_env, open_database  # noqa: E402
from flows.cli import DEFAULT_SPEC, main  # noqa: E402
from tasks.dune import decide_plan, load_result, submit_execution, wait_for_result  # noqa: E402

MAX_CONCURRENCY = 16
if logging.getLogger("downstream").level == logging.NOTSET:
    logging.getLogger("downstream").setLevel(logging.INFO)


@task(name="sync query", task_run_name="sync · {spec.name}", cache_policy=NO_CACHE)
def sync_query(
    credentials: DuneCredentials, db_path: str, spec: QuerySpec, refresh: bool
) -> QueryResult | State[QueryResult]:
    """decide -> submit -> wait -> load for one query.

    A failure ends this task run Failed (red in the UI) but still hands the flow a
    ``failed`` result row, so the other queries go on.
    """
    started, plan = time.monotonic(), None
    run_id = str(flow_run.id) if flow_run.id else None
    try:
        shutdown.check("before the query started")
        plan = decide_plan(credentials, db_path, spec, refresh)
        plan = submit_execution(credentials, db_path, plan)
        plan = wait_for_result(credentials, plan)
        result = load_result(credentials, db_path, plan, run_id)
    except Exception as exc:  # typed Dune errors, Prefect timeouts, and bugs alike
        if plan is not None:
            record_failure_at(db_path, plan, run_id, exc)
        failed = failed_result(spec, exc, plan, time.monotonic() - started)
        return Failed(message=f"{spec.name}: {failed.error_type}: {failed.error}", data=failed)
    result.seconds = time.monotonic() - started
    return result


@flow(
    name="onchain",
    description="Keep Dune query results loaded in the SQLite bronze database.",
    # Prefect's TaskRunner generic is invariant, so its own runner does not type-check here.
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENCY),  # type: ignore[arg-type]
    validate_parameters=True,
)
def onchain(
    queries: list[QuerySpec] | None = None,
    db_path: str | None = None,
    refresh: bool = False,
    concurrency: int = 3,
    credentials_block: str | None = None,
) -> State[Any]:
    """Load every query; Failed (naming each failed query and why) if any failed.

    ``queries`` defaults to ``deployments/queries.yaml``; ``db_path`` to
    ``$BRONZE_DB_PATH`` or ``data/bronze.db``. Credentials: the ``credentials_block``
    block, else ``DUNE_API_KEY``, else a block named ``dune``.
    """
    shutdown.install()  # SIGTERM: loads roll back within a page, the run ends Failed
    spec = validate_queries(queries)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}, got {concurrency}")
    credentials = resolve_credentials(credentials_block)
    path = str(db_path_from_env(db_path))
    open_database(path).close()  # schema set-up (idempotent) before any query starts
    results = run_bounded(credentials, path, spec.queries, refresh, concurrency)
    rows = [summary_row(r) for r in results]
    create_table_artifact(
        key="onchain-summary", table=rows, description=f"Bronze database `{path}`"
    )
    failed = [r for r in results if not r.ok]
    if failed:
        reasons = "; ".join(f"{r.name}: {r.error_type}: {r.error}" for r in failed)
        return Failed(
            message=f"{len(failed)} of {len(results)} queries failed: {reasons}", data=rows
        )
    return Completed(message=f"{len(results)} queries loaded or up to date", data=rows)


def validate_queries(queries: list[QuerySpec] | None) -> Spec:
    """The spec to run: the given queries (checked together) or the default file."""
    if queries is None:
        return load_spec(os.environ.get("DOWNSTREAM_SPEC") or DEFAULT_SPEC)
    return parse_spec({"queries": [q.model_dump() for q in queries]}, source="queries parameter")


def run_bounded(
    credentials: DuneCredentials,
    db_path: str,
    queries: list[QuerySpec],
    refresh: bool,
    concurrency: int,
) -> list[QueryResult]:
    """Submit one ``sync_query`` per query, never more than ``concurrency`` in flight."""
    waiting = list(queries)
    running: list[PrefectFuture[Any]] = []
    done: dict[str, QueryResult] = {}
    while waiting or running:
        while waiting and len(running) < concurrency:
            running.append(sync_query.submit(credentials, db_path, waiting.pop(0), refresh))
        finished = next(as_completed(running))
        running.remove(finished)
        finished.wait()  # sets the final state locally (no API round trip)
        result = finished.state.result(raise_on_failure=False)
        if not isinstance(result, QueryResult):  # the task itself crashed
            raise RuntimeError(f"a query task ended without a result: {result!r}")
        done[result.name] = result
    return [done[q.name] for q in queries]


def summary_row(result: QueryResult) -> dict[str, Any]:
    """One line of the run's table artifact and of the CLI summary."""
    return {
        "query": result.name,
        "query_id": result.query_id,
        "outcome": result.outcome,
        "source": result.source,
        "execution_id": result.execution_id or "",
        "rows": result.rows,
        "new": result.new,
        "updated": result.updated,
        "seconds": round(result.seconds, 2),
        "credits": result.credits,
        "detail": result.error if result.error else result.detail,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], onchain))
