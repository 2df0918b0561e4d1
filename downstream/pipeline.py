"""The steps of keeping one query loaded, as plain functions: decide, submit, wait, load.

Prefect tasks wrap these one to one (``tasks/``); ``run_spec`` composes them with threads
for runs without Prefect (benchmarks, tests, embedding). Credits are spent only where the
rules say so:

* a fresh enough latest result is loaded instead of executing (``max_age_hours``);
* an execution already in the ledger for this table is skipped without downloading;
* a matching execution that is still running is waited for, not paid for again;
* submitting re-checks under a per-query file lock, so two runs started together
  execute once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlite_utils

from downstream import shutdown
from downstream.dune import (
    DuneClient,
    ExecutionState,
    ExecutionStatus,
    ResultMetadata,
    ResultPage,
    is_fresh,
)
from downstream.dune.params import ParamValue, encode_parameters
from downstream.errors import DownstreamError
from downstream.spec import QuerySpec, Spec
from downstream.store import (
    ExecutionInfo,
    LoadReport,
    is_loaded,
    load_execution,
    open_database,
    query_lock,
    read_watermark,
    record_execution,
    utc_iso,
    watermark_parameter,
    writer_lock,
)

log = logging.getLogger("downstream.pipeline")

Action = Literal["skip", "load", "wait", "execute"]
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """What to do for one query, and why (the reason is logged and shown in artifacts)."""

    query: QuerySpec
    parameters: dict[str, ParamValue]  # what an execution would be submitted with
    action: Action
    reason: str
    execution_id: str | None = None
    source: Literal["latest", "executed"] = "latest"
    status: ExecutionStatus | None = None
    refresh: bool = False  # execute now: no re-check of Dune's latest result


@dataclass
class QueryResult:
    """The outcome of one query in one run: one row of the summary table."""

    name: str
    query_id: int
    outcome: Literal["loaded", "partial", "skipped", "failed"]
    source: str = ""
    execution_id: str | None = None
    rows: int = 0
    new: int = 0
    updated: int = 0
    seconds: float = 0.0
    credits: float | None = None
    error: str | None = None
    error_type: str | None = None
    detail: str = ""
    report: LoadReport | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


def effective_parameters(db_path: str | Path, spec: QuerySpec) -> dict[str, ParamValue]:
    """The spec's parameters plus the incremental watermark, if there is data already."""
    parameters: dict[str, ParamValue] = dict(spec.parameters)
    if spec.incremental is None:
        return parameters
    db = open_database(db_path)
    try:
        value = watermark_parameter(spec, read_watermark(db, spec))
    finally:
        db.close()
    if value is not None:
        parameters[spec.incremental.parameter] = value
        log.info("%s: incremental from %s = %s", spec.name, spec.incremental.parameter, value)
    return parameters


def decide(
    client: DuneClient,
    db_path: str | Path,
    spec: QuerySpec,
    *,
    refresh: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Plan:
    """Choose between skipping, loading the latest result, waiting and executing.

    Reads at most one row from Dune (``limit=1`` on the latest result) to decide.
    """
    parameters = effective_parameters(db_path, spec)
    plan = Plan(
        spec, parameters, "execute", "refresh requested" if refresh else "", refresh=refresh
    )
    if refresh:
        return plan
    if spec.max_age_hours <= 0:
        return replace(plan, reason="max_age_hours is 0: always execute")
    latest = _latest(client, spec)
    return _judge_latest(plan, latest, db_path, now())


def _latest(client: DuneClient, spec: QuerySpec) -> ResultPage | None:
    """The latest execution run with the spec's own parameters.

    The incremental watermark is deliberately left out: Dune matches ``params.*``
    partially, so this finds the newest execution whatever watermark it ran with. A fresh
    one (already loaded or not) makes executing again pointless.
    """
    return client.get_latest_result(
        spec.query_id, spec.parameters, allow_partial=spec.allow_partial
    )


def _judge_latest(
    plan: Plan, latest: ResultPage | None, db_path: str | Path, now: datetime
) -> Plan:
    spec = plan.query
    max_age = timedelta(hours=spec.max_age_hours)
    if latest is None:
        return replace(plan, reason="no earlier execution with these parameters")
    if is_fresh(latest, max_age, now, allow_partial=spec.allow_partial):
        db = open_database(db_path)
        try:
            loaded = is_loaded(db, latest.execution_id, spec.name)
        finally:
            db.close()
        age = now - latest.execution_ended_at if latest.execution_ended_at else timedelta(0)
        if loaded:
            return replace(
                plan,
                action="skip",
                execution_id=latest.execution_id,
                status=latest,
                reason=f"latest execution ({_hours(age)} old) is already loaded",
            )
        return replace(
            plan,
            action="load",
            execution_id=latest.execution_id,
            status=latest,
            reason=f"latest result is {_hours(age)} old (max {spec.max_age_hours:g}h)",
        )
    if not latest.state.is_terminal and latest.submitted_at and now - latest.submitted_at < max_age:
        return replace(
            plan,
            action="wait",
            execution_id=latest.execution_id,
            status=latest,
            reason=f"an execution submitted {_hours(now - latest.submitted_at)} ago "
            "is still running; waiting for it instead of paying again",
        )
    ended = latest.execution_ended_at
    why = (
        f"latest result is {_hours(now - ended)} old (max {spec.max_age_hours:g}h)"
        if ended
        else f"latest execution is {latest.state.value}"
    )
    return replace(plan, reason=why)


def submit(
    client: DuneClient,
    db_path: str | Path,
    plan: Plan,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Plan:
    """Execute if the plan says so, re-checking under the query's lock first.

    Another run may have executed since we decided; if so we follow its execution.
    Returns a plan whose action is ``wait`` (or unchanged when there is nothing to submit).
    """
    if plan.action != "execute":
        return plan
    spec = plan.query
    with query_lock(db_path, spec.name):
        if spec.max_age_hours > 0 and not plan.refresh:
            latest = _latest(client, spec)
            rechecked = _judge_latest(plan, latest, db_path, now())
            if rechecked.action != "execute":
                log.info("%s: another run got there first: %s", spec.name, rechecked.reason)
                return rechecked
        outcome = client.execute(spec.query_id, plan.parameters, performance=spec.performance)
        reason = (
            "adopted the execution an ambiguous submit created"
            if outcome.adopted
            else (plan.reason or "executing")
        )
        return replace(
            plan, action="wait", execution_id=outcome.execution_id, source="executed", reason=reason
        )


def wait(
    client: DuneClient,
    plan: Plan,
    *,
    on_status: Callable[[ExecutionStatus], None] | None = None,
) -> Plan:
    """Wait for the plan's execution to finish; returns a plan ready to load."""
    if plan.action not in ("wait", "load") or plan.execution_id is None:
        return plan
    spec = plan.query
    if plan.action == "load" and plan.status is not None and plan.status.state.is_terminal:
        return plan
    status = client.wait_for_execution(
        plan.execution_id,
        query_id=spec.query_id,
        timeout=spec.timeout_minutes * 60,
        allow_partial=spec.allow_partial,
        on_status=on_status,
    )
    return replace(plan, action="load", status=status)


def load(
    client: DuneClient,
    db_path: str | Path,
    plan: Plan,
    *,
    flow_run_id: str | None = None,
    on_page: Callable[[ResultPage], None] | None = None,
    checkpoint: Callable[[str], None] | None = None,
    prefetch_pages: int = 1,
) -> QueryResult:
    """Stream the execution's pages into the database (one writer at a time)."""
    spec = plan.query
    started = time.monotonic()
    if plan.action == "skip" or plan.execution_id is None:
        return QueryResult(
            spec.name,
            spec.query_id,
            "skipped",
            source="skipped",
            execution_id=plan.execution_id,
            detail=plan.reason,
        )
    status = plan.status
    info = execution_info(plan, flow_run_id)
    with writer_lock(db_path):
        db = open_database(db_path)
        try:
            if is_loaded(db, plan.execution_id, spec.name):
                return QueryResult(
                    spec.name,
                    spec.query_id,
                    "skipped",
                    source="skipped",
                    execution_id=plan.execution_id,
                    detail="execution was loaded by another run meanwhile",
                )
            pages = client.iter_result_pages(
                plan.execution_id,
                query_id=spec.query_id,
                metadata=_metadata(status),
                allow_partial=spec.allow_partial,
            )
            reader = prefetch(pages, prefetch_pages) if prefetch_pages > 0 else pages
            # Observed in the loading thread, where the caller's context (a Prefect run) is.
            stream = _observe(reader, on_page) if on_page is not None else reader
            try:
                report = load_execution(
                    db, spec, info, stream, checkpoint=checkpoint or _stop_if_requested
                )
            finally:
                # Stop the page reader now, not whenever the failed load's traceback is
                # collected (a reference cycle): it may hold a connection and a page.
                for iterator in (stream, reader):
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
        except DownstreamError as exc:
            record_failure(db, plan, flow_run_id, exc)
            raise
        finally:
            db.close()
    log.info(
        "%s: loaded %d rows from execution %s (%d new, %d updated) in %d pages",
        spec.name,
        report.rows,
        plan.execution_id,
        report.new,
        report.updated,
        report.pages,
    )
    return QueryResult(
        spec.name,
        spec.query_id,
        "partial" if report.status == "partial" else "loaded",
        source=plan.source,
        execution_id=plan.execution_id,
        rows=report.rows,
        new=report.new,
        updated=report.updated,
        seconds=time.monotonic() - started,
        credits=info.credits,
        detail=plan.reason,
        report=report,
    )


def _stop_if_requested(where: str) -> None:
    """The loader's safe points: on SIGTERM, abandon (roll back) before the commit."""
    if where != "committed":
        shutdown.check(where)


def _metadata(status: ExecutionStatus | None) -> ResultMetadata | None:
    """Column metadata to size pages: from the COMPLETED status, or the latest-result page."""
    if status is None:
        return None
    if status.result_metadata is not None:
        return status.result_metadata
    return status.metadata if isinstance(status, ResultPage) else None


def execution_info(plan: Plan, flow_run_id: str | None = None) -> ExecutionInfo:
    status = plan.status
    # A latest result is known by the parameters we asked for it with; an execution we
    # submitted, by everything we sent (the watermark included).
    sent = plan.parameters if plan.source == "executed" else plan.query.parameters
    return ExecutionInfo(
        execution_id=plan.execution_id or "",
        query_id=plan.query.query_id,
        parameters=encode_parameters(sent),
        source=plan.source,
        state=status.state.value if status else ExecutionState.COMPLETED.value,
        submitted_at=status.submitted_at if status else None,
        ended_at=status.execution_ended_at if status else None,
        credits=status.execution_cost_credits if status else None,
        flow_run_id=flow_run_id,
    )


def record_failure(
    db: sqlite_utils.Database, plan: Plan, flow_run_id: str | None, error: BaseException
) -> None:
    """Write a ``failed`` ledger row for an execution we could not load (never over a
    ``loaded`` one)."""
    if plan.execution_id is None or is_loaded(db, plan.execution_id, plan.query.name):
        return
    try:
        with db.atomic():
            record_execution(
                db,
                plan.query,
                execution_info(plan, flow_run_id),
                status="failed",
                loaded_at=utc_iso(datetime.now(UTC)) or "",
                error=f"{type(error).__name__}: {error}",
            )
    except Exception as exc:  # the original error matters more than the ledger note
        log.warning("%s: could not record the failure in the ledger: %s", plan.query.name, exc)


def record_failure_at(
    db_path: str | Path, plan: Plan, flow_run_id: str | None, error: BaseException
) -> None:
    db = open_database(db_path)
    try:
        record_failure(db, plan, flow_run_id, error)
    finally:
        db.close()


def sync_query(
    client: DuneClient,
    db_path: str | Path,
    spec: QuerySpec,
    *,
    refresh: bool = False,
    flow_run_id: str | None = None,
) -> QueryResult:
    """All steps for one query; a failure becomes a ``failed`` result, never an exception
    (except for bugs), so one query cannot stop the others."""
    started = time.monotonic()
    plan: Plan | None = None
    try:
        shutdown.check("before the query started")
        plan = decide(client, db_path, spec, refresh=refresh)
        log.info("%s: %s (%s)", spec.name, plan.action, plan.reason)
        plan = submit(client, db_path, plan)
        plan = wait(client, plan)
        result = load(client, db_path, plan, flow_run_id=flow_run_id)
    except DownstreamError as exc:
        if plan is not None:
            record_failure_at(db_path, plan, flow_run_id, exc)
        log.error("%s: failed: %s", spec.name, exc)
        return failed_result(spec, exc, plan, time.monotonic() - started)
    result.seconds = time.monotonic() - started
    return result


def failed_result(
    spec: QuerySpec, exc: BaseException, plan: Plan | None, seconds: float
) -> QueryResult:
    return QueryResult(
        spec.name,
        spec.query_id,
        "failed",
        source=plan.source if plan and plan.execution_id else "",
        execution_id=plan.execution_id if plan else None,
        seconds=seconds,
        error=str(exc),
        error_type=type(exc).__name__,
    )


def run_spec(
    client: DuneClient,
    db_path: str | Path,
    spec: Spec,
    *,
    refresh: bool = False,
    concurrency: int = 3,
) -> list[QueryResult]:
    """Every query of a spec, ``concurrency`` at a time; loads take turns (one writer)."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="query") as pool:
        futures = [
            pool.submit(sync_query, client, db_path, q, refresh=refresh) for q in spec.queries
        ]
        return [f.result() for f in futures]


def _observe(pages: Iterable[T], callback: Callable[[T], None]) -> Iterator[T]:
    for page in pages:
        callback(page)
        yield page


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Produce items in a background thread, ``depth`` ahead of the consumer.

    Downloading page n+1 while page n is written overlaps network and SQLite time. Errors
    from the producer surface in the consumer, in order; closing the iterator stops it.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Queue ``item`` unless the consumer has stopped; never block past that."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            # The end marker too: a consumer that stopped early (a LoadError on an earlier
            # page) never takes it, and a plain put() would block this thread for good.
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer
            offer(exc)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        close = getattr(items, "close", None)
        thread.join(timeout=5)
        if close is not None and not thread.is_alive():
            close()


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f}h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f}min"
