"""Executions: the per-execution state machine, the scripts that drive it, and the store.

A script is a list of non-terminal steps, each lasting a number of polls or of
(clock) seconds, then an outcome. A "poll" is any status or results GET that
reaches the execution. The response to a poll shows the state *before* that
poll is counted, so the default script (PENDING 1 poll, EXECUTING 1 poll,
completed) answers PENDING, then EXECUTING, then COMPLETED.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import values
from .rows import RowSource

PENDING = "QUERY_STATE_PENDING"
EXECUTING = "QUERY_STATE_EXECUTING"
COMPLETED = "QUERY_STATE_COMPLETED"
PARTIAL = "QUERY_STATE_COMPLETED_PARTIAL"
FAILED = "QUERY_STATE_FAILED"
CANCELLED = "QUERY_STATE_CANCELLED"
EXPIRED = "QUERY_STATE_EXPIRED"

TERMINAL = frozenset({COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED})
READABLE = frozenset({COMPLETED, PARTIAL})
OUTCOMES = {
    "completed": COMPLETED,
    "partial": PARTIAL,
    "failed": FAILED,
    "cancelled": CANCELLED,
    "expired": EXPIRED,
}

NS = 1_000_000_000
DEFAULT_ERROR: dict[str, Any] = {
    "type": "FAILED_TYPE_EXECUTION_FAILED",
    "message": "line 1:8: Column 'x' cannot be resolved",
    "metadata": {"line": 1, "column": 8},
}

# Fractional digits per timestamp field, rotated per execution so clients see
# every precision Dune has been seen to send (Go trims trailing zeros further).
# cancelled_at uses the "ended" precision: real payloads show it equal to ended_at.
PRECISIONS: tuple[dict[str, int], ...] = (
    {"submitted": 6, "started": 9, "ended": 9, "expires": 5},
    {"submitted": 3, "started": 9, "ended": 6, "expires": 6},
    {"submitted": 6, "started": 5, "ended": 9, "expires": 0},
    {"submitted": 0, "started": 6, "ended": 3, "expires": 9},
    {"submitted": 9, "started": 3, "ended": 0, "expires": 3},
)


@dataclass(frozen=True)
class Step:
    """A non-terminal state held for ``polls`` polls or ``seconds`` clock seconds."""

    state: str
    polls: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.polls is None) == (self.seconds is None):
            raise ValueError("a step needs exactly one of 'polls' or 'seconds'")
        if self.state in TERMINAL:
            raise ValueError(f"{self.state} is terminal; use the script outcome instead")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Step:
        polls = raw.get("polls")
        seconds = raw.get("seconds")
        return cls(
            str(raw.get("state", PENDING)),
            None if polls is None else int(polls),
            None if seconds is None else float(seconds),
        )

    @property
    def empty(self) -> bool:
        return (self.polls is not None and self.polls <= 0) or (
            self.seconds is not None and self.seconds <= 0
        )


DEFAULT_STEPS = (Step(PENDING, polls=1), Step(EXECUTING, polls=1))


@dataclass(frozen=True)
class Script:
    """How an execution unfolds: steps, then an outcome (see ``OUTCOMES``)."""

    steps: tuple[Step, ...] = DEFAULT_STEPS
    outcome: str = "completed"
    error: Mapping[str, Any] | None = None
    expire_after_pages: int | None = None
    partial_rows: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; choose from {sorted(OUTCOMES)}")

    @classmethod
    def build(
        cls,
        steps: Iterable[Step | Mapping[str, Any]],
        outcome: str = "completed",
        *,
        error: Mapping[str, Any] | None = None,
        expire_after_pages: int | None = None,
        partial_rows: int | None = None,
    ) -> Script:
        return cls(
            tuple(s if isinstance(s, Step) else Step.from_dict(s) for s in steps),
            outcome,
            error,
            expire_after_pages,
            partial_rows,
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Script:
        return cls.build(
            raw.get("steps", DEFAULT_STEPS),
            str(raw.get("outcome", "completed")),
            error=raw.get("error"),
            expire_after_pages=raw.get("expire_after_pages"),
            partial_rows=raw.get("partial_rows"),
        )


DEFAULT_SCRIPT = Script()


class Execution:
    """One execution's timeline. Callers hold the emulator lock around every method."""

    def __init__(
        self,
        *,
        execution_id: str,
        query_id: int,
        parameters: Mapping[str, Any],
        performance: str,
        source: RowSource,
        column_names: Sequence[str],
        column_types: Sequence[str],
        script: Script,
        seq: int,
        submitted_ns: int,
        retention_ns: int,
        latest_eligible: bool = True,
    ) -> None:
        self.id = execution_id
        self.query_id = query_id
        self.parameters = dict(parameters)
        self.performance = performance
        self.source = source
        self.column_names = tuple(column_names)
        self.column_types = tuple(column_types)
        self.script = script
        self.seq = seq
        self.precision = PRECISIONS[seq % len(PRECISIONS)]
        self.latest_eligible = latest_eligible
        self.retention_ns = retention_ns
        self.submitted_ns = submitted_ns
        self.started_ns: int | None = None
        self.ended_ns: int | None = None
        self.cancelled_ns: int | None = None
        self.expires_ns: int | None = None
        self.error: dict[str, Any] | None = None
        self.pages_served = 0
        self.state = PENDING
        self._step_index = 0
        self._step_polls = 0
        self._step_started_ns = submitted_ns
        self._enter(0, submitted_ns)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    # --- time and polls -------------------------------------------------

    def refresh(self, now_ns: int) -> None:
        """Apply everything the clock implies: timed steps ending, results expiring."""
        while not self.terminal:
            step = self.script.steps[self._step_index]
            if step.seconds is None:
                break
            end = self._step_started_ns + int(step.seconds * NS)
            if now_ns < end:
                break
            self._enter(self._step_index + 1, end)
        if self.state in READABLE and self.expires_ns is not None and now_ns > self.expires_ns:
            self.state = EXPIRED

    def record_poll(self, now_ns: int) -> None:
        """Count one poll against a poll-based step (after the response was decided)."""
        if self.terminal:
            return
        step = self.script.steps[self._step_index]
        if step.polls is not None:
            self._step_polls += 1
            if self._step_polls >= step.polls:
                self._enter(self._step_index + 1, now_ns)

    def record_page(self, now_ns: int) -> None:
        """Count a served result page; ``expire_after_pages`` flips to EXPIRED here."""
        self.pages_served += 1
        limit = self.script.expire_after_pages
        if limit is not None and self.pages_served >= limit and self.state in READABLE:
            self.state = EXPIRED
            self.expires_ns = now_ns

    def cancel(self, now_ns: int) -> bool:
        """Cancel if still running; False when already terminal."""
        self.refresh(now_ns)
        if self.terminal:
            return False
        self._finish_cancelled(now_ns)
        return True

    def queue_position(self, now_ns: int) -> int | None:
        """Shrinking position while PENDING: remaining polls or seconds of the step."""
        if self.state != PENDING:
            return None
        step = self.script.steps[self._step_index]
        if step.polls is not None:
            return max(1, step.polls - self._step_polls)
        assert step.seconds is not None
        left = step.seconds - (now_ns - self._step_started_ns) / NS
        return max(1, math.ceil(left))

    # --- transitions ----------------------------------------------------

    def _enter(self, index: int, at_ns: int) -> None:
        steps = self.script.steps
        while index < len(steps) and steps[index].empty:
            if steps[index].state != PENDING and self.started_ns is None:
                self.started_ns = at_ns
            index += 1
        if index >= len(steps):
            self._finish(at_ns)
            return
        self._step_index = index
        self._step_polls = 0
        self._step_started_ns = at_ns
        self.state = steps[index].state
        if self.state != PENDING and self.started_ns is None:
            self.started_ns = at_ns

    def _finish(self, at_ns: int) -> None:
        outcome = self.script.outcome
        if outcome == "cancelled":
            self._finish_cancelled(at_ns)
            return
        if self.started_ns is None:
            self.started_ns = at_ns
        self.ended_ns = at_ns
        self.expires_ns = at_ns if outcome == "expired" else at_ns + self.retention_ns
        self.state = OUTCOMES[outcome]
        if outcome == "partial":
            total = len(self.source)
            keep = self.script.partial_rows
            self.source = self.source.head(math.ceil(total / 2) if keep is None else keep)
        if outcome == "failed":
            self.error = self._error_object()

    def _finish_cancelled(self, at_ns: int) -> None:
        self.state = CANCELLED
        self.cancelled_ns = at_ns
        if self.started_ns is not None:
            self.ended_ns = at_ns
        self.expires_ns = at_ns + self.retention_ns

    def _error_object(self) -> dict[str, Any]:
        spec = {**DEFAULT_ERROR, **dict(self.script.error or {})}
        message = str(spec["message"])
        if "[Execution ID:" not in message:
            message = f"{message} [Execution ID: {self.id}]"
        error: dict[str, Any] = {"type": spec["type"], "message": message}
        if spec.get("metadata") is not None:
            error["metadata"] = spec["metadata"]
        return error

    # --- derived numbers ------------------------------------------------

    @property
    def pending_millis(self) -> int:
        end = self.started_ns if self.started_ns is not None else self.submitted_ns
        return (end - self.submitted_ns) // 1_000_000

    @property
    def execution_millis(self) -> int:
        if self.started_ns is None or self.ended_ns is None:
            return 0
        return (self.ended_ns - self.started_ns) // 1_000_000

    @property
    def cost_credits(self) -> float:
        if self.state in (FAILED, CANCELLED):
            return 0
        return 20 if self.performance == "large" else 10


class ExecutionStore:
    """All executions, by id and by query, with Dune's "latest result" lookup."""

    def __init__(self) -> None:
        self._by_id: dict[str, Execution] = {}
        self._by_query: dict[int, list[Execution]] = {}
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, execution: Execution) -> None:
        self._by_id[execution.id] = execution
        self._by_query.setdefault(execution.query_id, []).append(execution)

    def get(self, execution_id: str) -> Execution | None:
        return self._by_id.get(execution_id.upper())

    def for_query(self, query_id: int) -> list[Execution]:
        return list(self._by_query.get(query_id, []))

    def latest(self, query_id: int, wanted: Mapping[str, list[str]]) -> Execution | None:
        """Newest execution of the query (any state) whose parameters match ``wanted``.

        Parameters not named in ``wanted`` are unconstrained, as on Dune.
        """
        candidates = [e for e in self._by_query.get(query_id, []) if e.latest_eligible]
        candidates.sort(key=lambda e: (e.submitted_ns, e.seq), reverse=True)
        for execution in candidates:
            if all(
                name in execution.parameters
                and values.same_parameter(execution.parameters[name], requested)
                for name, requested in wanted.items()
            ):
                return execution
        return None

    def __len__(self) -> int:
        return len(self._by_id)
