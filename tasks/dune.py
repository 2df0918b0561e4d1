"""Prefect tasks over the pipeline steps: names for the UI, retries, timeouts, logging.

Each task is a thin wrapper of one ``downstream.pipeline`` function. Retries use
exponential backoff with jitter and only fire for transient errors (429s, 5xx, network,
protocol hiccups); auth, not-found, bad-request, payment and failed-query errors fail
fast. Polling is a loop inside ``wait_for_result``, never task retries. No task caches:
every one has side effects or depends on Dune's current state.

No task sets ``timeout_seconds``: in Prefect 3.9 a sync task in a worker thread cannot be
interrupted, only judged late. Every blocking step has its own bound in the core instead:
HTTP timeouts, a retry budget, the execution deadline (``timeout_minutes``, then cancel)
and lock waits.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from blocks.dune import DuneCredentials
from downstream import pipeline
from downstream.dune import ResultPage
from downstream.errors import is_transient
from downstream.pipeline import Plan, QueryResult
from downstream.spec import QuerySpec

# Pages above this many rows in total get a progress artifact in the UI.
PROGRESS_ARTIFACT_MIN_ROWS = 50_000
PROGRESS_UPDATE_SECONDS = 3.0


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed later; everything else fails the query at once."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


_RETRYING: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


@task(name="decide", task_run_name="decide · {spec.name}", **_RETRYING)
def decide_plan(credentials: DuneCredentials, db_path: str, spec: QuerySpec, refresh: bool) -> Plan:
    """Latest result, ledger skip, running execution, or execute."""
    logger = get_run_logger()
    with credentials.get_client() as dune:
        plan = pipeline.decide(dune, db_path, spec, refresh=refresh)
    logger.info("%s: %s (%s)", spec.name, plan.action, plan.reason)
    return plan


@task(name="submit", task_run_name="submit · {plan.query.name}", **_RETRYING)
def submit_execution(credentials: DuneCredentials, db_path: str, plan: Plan) -> Plan:
    """Execute the query when the plan says so (re-checked under the query lock)."""
    logger = get_run_logger()
    with credentials.get_client() as dune:
        submitted = pipeline.submit(dune, db_path, plan)
    if submitted.source == "executed" and submitted.execution_id:
        logger.info(
            "%s: execution %s (%s)", plan.query.name, submitted.execution_id, submitted.reason
        )
    return submitted


@task(name="wait", task_run_name="wait · {plan.query.name}", **_RETRYING)
def wait_for_result(credentials: DuneCredentials, plan: Plan) -> Plan:
    """Poll until Dune finishes (backoff up to 20 s); cancel at the spec's deadline.

    The client logs each state change and queue position (``downstream`` is one of
    Prefect's extra loggers, so those lines land in the run's logs).
    """
    with credentials.get_client() as dune:
        return pipeline.wait(dune, plan)


@task(name="load", task_run_name="load · {plan.query.name}", **_RETRYING)
def load_result(
    credentials: DuneCredentials, db_path: str, plan: Plan, flow_run_id: str | None = None
) -> QueryResult:
    """Stream pages -> normalise -> upsert, in one transaction (loads take turns)."""
    logger = get_run_logger()
    progress = _Progress(plan, logger)
    with credentials.get_client() as dune:
        result = pipeline.load(dune, db_path, plan, flow_run_id=flow_run_id, on_page=progress.page)
    progress.done()
    if result.outcome == "skipped":
        logger.info("%s: skipped, %s", plan.query.name, result.detail)
    return result


class _Progress:
    """Logs each page and, for large results, keeps a progress artifact up to date.

    Both are written for the first and last page and at most every
    ``PROGRESS_UPDATE_SECONDS`` between: each is API traffic from the loading thread, and
    per page they made the flow measurably slower than the plain core (bench/).
    """

    def __init__(self, plan: Plan, logger: Any) -> None:
        self.plan, self.logger = plan, logger
        self.rows, self.pages = 0, 0
        self.artifact: Any = None
        self.updated = 0.0

    def page(self, page: ResultPage) -> None:
        total = page.metadata.total_row_count if page.metadata else None
        self.rows += len(page.rows)
        self.pages += 1
        if self.artifact is None and total and total >= PROGRESS_ARTIFACT_MIN_ROWS:
            self.artifact = create_progress_artifact(
                progress=0.0, description=f"Loading {self.plan.query.name}: {total:,} rows"
            )
        now = time.monotonic()
        last = not page.has_next
        if now - self.updated < PROGRESS_UPDATE_SECONDS and not last and self.pages > 1:
            return
        self.updated = now
        if self.artifact is not None and total:
            update_progress_artifact(self.artifact, progress=100.0 * self.rows / total)
        self.logger.info(
            "%s: page %d, %s of %s rows",
            self.plan.query.name,
            self.pages,
            f"{self.rows:,}",
            f"{total:,}" if total is not None else "?",
        )

    def done(self) -> None:
        if self.artifact is not None:
            update_progress_artifact(self.artifact, progress=100.0)
