"""``DuneEmulator``: the state behind the fake API, and the Python control surface.

One object holds datasets, executions, scripts, faults, rate-limit buckets,
stats and config. The HTTP handlers (``app.py``) and the control API
(``control.py``) both work through it. A single re-entrant lock guards the
state, because tests call these methods from their own thread while the
server answers requests on its event-loop thread.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from . import wire
from .clock import Clock
from .config import EmulatorConfig
from .datasets import (
    Dataset,
    Parameter,
    ParamFilter,
    ParamValue,
    SeedSpec,
    load_datasets,
)
from .executions import (
    DEFAULT_SCRIPT,
    EXECUTING,
    NS,
    PENDING,
    Execution,
    ExecutionStore,
    Script,
    Step,
)
from .faults import FaultQueue, FaultRule
from .payloads import wire_state
from .ratelimit import RateLimiter
from .rows import RowSource
from .stats import Stats

BUNDLED_DATA = Path(__file__).parent / "data"


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


MSG_QUERY_NOT_FOUND = "Query not found"
MSG_INTERNAL = "An internal error occured"
MSG_ARCHIVED = "Not allowed to execute query. Query is archived, unsaved or not enough permissions"
MSG_BILLING = (
    "This api request would exceed your configured limits per billing cycle. Please visit "
    "your settings on dune.com and adjust your limits to continue usage."
)
MSG_NO_LATEST = "not found: No execution found for the latest version of the given query"


class DuneEmulator:
    """A fake Dune API over in-memory datasets. Serve ``.app`` with uvicorn or TestClient."""

    def __init__(
        self,
        datasets: Iterable[Dataset] = (),
        *,
        config: EmulatorConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.clock = clock if clock is not None else Clock()
        self.lock = threading.RLock()
        self.datasets: dict[int, Dataset] = {}
        self.store = ExecutionStore()
        self.faults = FaultQueue()
        self.limiter = RateLimiter(self.clock)
        self._stats = Stats()
        self._scripts: dict[int, Script] = {}
        self._once: dict[int, list[Script]] = {}
        self._app: ASGIApp | None = None
        for dataset in datasets:
            self.register(dataset)

    # --- construction ---------------------------------------------------

    @classmethod
    def from_dir(
        cls, path: str | Path, *, config: EmulatorConfig | None = None, clock: Clock | None = None
    ) -> DuneEmulator:
        """Datasets from ``path/<query_id>/{query.json,rows.json}``."""
        return cls(load_datasets(Path(path)), config=config, clock=clock)

    @classmethod
    def bundled(
        cls, *, config: EmulatorConfig | None = None, clock: Clock | None = None
    ) -> DuneEmulator:
        """The datasets shipped in ``downstream/emulator/data`` (parsed once per process)."""
        fresh = [dataclasses.replace(d) for d in _bundled_datasets()]
        return cls(fresh, config=config, clock=clock)

    @property
    def app(self) -> ASGIApp:
        """The ASGI application (built once)."""
        if self._app is None:
            from .gateway import build_app

            self._app = build_app(self)
        return self._app

    # --- datasets -------------------------------------------------------

    def register(self, dataset: Dataset) -> Dataset:
        """Add (or replace) a dataset; seeds its declared execution, if any."""
        with self.lock:
            self.datasets[dataset.query_id] = dataset
            seed = dataset.seed_execution
            if seed is not None:
                self.seed_execution(
                    dataset.query_id, dict(seed.parameters), seed.age_hours, seed.outcome
                )
        return dataset

    def add_dataset(
        self,
        query_id: int,
        rows: Iterable[Mapping[str, Any]] = (),
        *,
        column_names: Iterable[str],
        column_types: Iterable[str],
        name: str = "",
        parameters: Iterable[Parameter | Mapping[str, Any]] = (),
        filters: Iterable[ParamFilter | Mapping[str, Any]] = (),
        archived: bool = False,
        seed_execution: SeedSpec | Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Add a query whose rows are given in Dune's wire encoding."""
        return self.register(
            Dataset.from_rows(
                query_id,
                rows,
                column_names=list(column_names),
                column_types=list(column_types),
                name=name,
                parameters=parameters,
                filters=filters,
                archived=archived,
                seed_execution=seed_execution,
            )
        )

    def add_synthetic(self, query_id: int, rows: int, *, seed: int = 0) -> Dataset:
        """Add the generated 8-column benchmark dataset, with a seeded execution."""
        return self.register(Dataset.synthetic(query_id, rows, seed=seed))

    def replace_rows(self, query_id: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """New rows for future executions; existing executions keep their snapshot."""
        with self.lock:
            self._dataset(query_id).replace_rows(rows)

    # --- scripts and seeds ------------------------------------------------

    def set_script(
        self,
        query_id: int,
        steps: Iterable[Step | Mapping[str, Any]],
        outcome: str = "completed",
        *,
        once: bool = False,
        expire_after_pages: int | None = None,
        error: Mapping[str, Any] | None = None,
        partial_rows: int | None = None,
    ) -> None:
        """Script the next executions of a query (``once``: only the next one).

        ``steps``: ``{"state": "QUERY_STATE_PENDING", "polls": 2}`` or ``{"state": ...,
        "seconds": 1.5}``. ``outcome``: completed, partial, failed, cancelled, expired.
        """
        script = Script.build(
            steps,
            outcome,
            error=error,
            expire_after_pages=expire_after_pages,
            partial_rows=partial_rows,
        )
        with self.lock:
            if once:
                self._once.setdefault(query_id, []).append(script)
            else:
                self._scripts[query_id] = script

    def clear_scripts(self, query_id: int | None = None) -> None:
        """Back to the default script (for one query, or all)."""
        with self.lock:
            if query_id is None:
                self._scripts.clear()
                self._once.clear()
            else:
                self._scripts.pop(query_id, None)
                self._once.pop(query_id, None)

    def seed_execution(
        self,
        query_id: int,
        parameters: Mapping[str, ParamValue] | None = None,
        age_hours: float = 0.0,
        outcome: str = "completed",
    ) -> str:
        """Create an execution that ended ``age_hours`` ago; returns its id."""
        pending_s, running_s = 0.615123457, 7.711987654
        steps = (Step(PENDING, seconds=pending_s), Step(EXECUTING, seconds=running_s))
        script = Script(steps, outcome)
        with self.lock:
            dataset = self._dataset(query_id)
            now = self.clock.now_ns()
            submitted = now - int((age_hours * 3600 + pending_s + running_s) * NS)
            execution = self._new_execution(
                dataset, dataset.resolve_parameters(parameters), "medium", script, submitted
            )
            execution.refresh(now)
            return execution.id

    # --- faults, clock, stats --------------------------------------------

    def add_fault(self, rule: FaultRule | Mapping[str, Any]) -> None:
        """Queue a fault rule (see ``faults.py`` for the keys)."""
        self.faults.add(rule)

    def add_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        for rule in rules:
            self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        return self.faults.pending()

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    @property
    def counters(self) -> Stats:
        """The live counters (handlers record into these)."""
        return self._stats

    # --- inspection -------------------------------------------------------

    def execution_ids(self, query_id: int) -> list[str]:
        """Ids of a query's executions, oldest first (seeded ones included)."""
        with self.lock:
            return [e.id for e in self.store.for_query(query_id)]

    def execution_state(self, execution_id: str) -> str:
        """The wire state an execution would report now (without counting a poll)."""
        with self.lock:
            execution = self.store.get(execution_id)
            if execution is None:
                raise KeyError(execution_id)
            execution.refresh(self.clock.now_ns())
            return wire_state(execution.state, self.config)

    # --- used by the HTTP handlers (callers hold self.lock) -----------------

    def dataset_for_request(self, raw_query_id: str) -> Dataset:
        """Resolve a path's query id the way Dune answers bad ones."""
        query_id = parse_query_id(raw_query_id)
        if query_id > self.config.max_query_id:
            raise ApiError(500, MSG_INTERNAL)
        dataset = self.datasets.get(query_id)
        if dataset is None:
            raise ApiError(404, MSG_QUERY_NOT_FOUND)
        return dataset

    def execution_for_request(self, raw_id: str) -> Execution:
        if not wire.is_valid_ulid(raw_id):
            raise ApiError(400, f"The requested execution ID (ID: {raw_id}) is invalid.")
        execution = self.store.get(raw_id)
        if execution is None:
            raise ApiError(404, f"not found: execution {raw_id} not found")
        return execution

    def start_execution(
        self,
        dataset: Dataset,
        parameters: Mapping[str, ParamValue],
        performance: str,
        *,
        reported_query_id: int | None = None,
        script: Script | None = None,
    ) -> Execution:
        """A new execution of ``dataset`` with the query's current script."""
        if script is None:
            queued = self._once.get(dataset.query_id)
            if queued:
                script = queued.pop(0)
            else:
                script = self._scripts.get(dataset.query_id, DEFAULT_SCRIPT)
        execution = self._new_execution(
            dataset,
            parameters,
            performance,
            script,
            self.clock.now_ns(),
            reported_query_id=reported_query_id,
        )
        self._stats.execution_created(dataset.query_id)
        return execution

    def _new_execution(
        self,
        dataset: Dataset,
        parameters: Mapping[str, ParamValue],
        performance: str,
        script: Script,
        submitted_ns: int,
        *,
        reported_query_id: int | None = None,
    ) -> Execution:
        source: RowSource = dataset.snapshot(parameters)
        execution = Execution(
            execution_id=wire.new_ulid(submitted_ns),
            query_id=dataset.query_id if reported_query_id is None else reported_query_id,
            parameters=parameters,
            performance=performance,
            source=source,
            column_names=dataset.column_names,
            column_types=dataset.column_types,
            script=script,
            seq=self.store.next_seq(),
            submitted_ns=submitted_ns,
            retention_ns=int(self.config.retention_days * 86_400 * NS),
            latest_eligible=reported_query_id is None,
        )
        self.store.add(execution)
        return execution

    def _dataset(self, query_id: int) -> Dataset:
        dataset = self.datasets.get(query_id)
        if dataset is None:
            raise KeyError(f"no dataset for query {query_id}")
        return dataset


@functools.cache
def _bundled_datasets() -> tuple[Dataset, ...]:
    # Row sources are immutable, so emulators can share them; each emulator gets
    # its own Dataset objects because replace_rows/archived mutate those.
    return tuple(load_datasets(BUNDLED_DATA))


def parse_query_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"The requested query ID (ID: {raw}) is invalid.") from None
    if value <= 0:
        raise ApiError(404, MSG_QUERY_NOT_FOUND)
    return value
