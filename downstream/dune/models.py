"""Typed views of Dune's replies, parsed once at the boundary.

Dune adds fields over time and omits optional ones, so every model ignores unknown fields
and treats absent and ``null`` alike. Rows are *not* validated per value here: they stay the
decoded JSON objects (keyed by column name, in Dune's wire encoding) and normalisation
happens later, driven by ``column_types``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from downstream.errors import UnknownExecutionState


class ExecutionState(StrEnum):
    """Dune's execution states (wire values)."""

    PENDING = "QUERY_STATE_PENDING"
    EXECUTING = "QUERY_STATE_EXECUTING"
    COMPLETED = "QUERY_STATE_COMPLETED"
    PARTIAL = "QUERY_STATE_COMPLETED_PARTIAL"
    FAILED = "QUERY_STATE_FAILED"
    CANCELLED = "QUERY_STATE_CANCELLED"
    EXPIRED = "QUERY_STATE_EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self not in (ExecutionState.PENDING, ExecutionState.EXECUTING)

    @property
    def has_result(self) -> bool:
        """Whether rows can be read (PARTIAL only with ``allow_partial_results``)."""
        return self in (ExecutionState.COMPLETED, ExecutionState.PARTIAL)


# The newest docs spell it with one L; real payloads use two. Both mean the same.
_STATE_ALIASES = {"QUERY_STATE_CANCELED": ExecutionState.CANCELLED}


def parse_state(raw: object) -> ExecutionState:
    """Map a wire state to the enum; an unknown state is an explicit error, never a guess."""
    if not isinstance(raw, str):
        raise UnknownExecutionState(repr(raw))
    if raw in _STATE_ALIASES:
        return _STATE_ALIASES[raw]
    try:
        return ExecutionState(raw)
    except ValueError:
        raise UnknownExecutionState(raw) from None


def parse_timestamp(raw: object) -> datetime | None:
    """RFC 3339 with 0-9 fractional digits; the legacy epoch value means "not set"."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        value = datetime.fromisoformat(raw)
    else:
        raise ValueError(f"not a timestamp: {raw!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value.timestamp() <= 0:
        return None
    return value


Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]
State = Annotated[ExecutionState, BeforeValidator(parse_state)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ExecutionErrorInfo(_Model):
    """The ``error`` object of a FAILED execution; ``type`` is an opaque string."""

    type: str = "FAILED_TYPE_UNSPECIFIED"
    message: str = ""
    metadata: dict[str, Any] | None = None


class ResultMetadata(_Model):
    """``result.metadata`` (per page) or ``result_metadata`` (status, COMPLETED only)."""

    column_names: list[str]
    column_types: list[str] | None = None
    row_count: int | None = None
    total_row_count: int | None = None
    result_set_bytes: int | None = None
    total_result_set_bytes: int | None = None
    datapoint_count: int | None = None
    pending_time_millis: int | None = None
    execution_time_millis: int | None = None


class ExecutionStatus(_Model):
    """``GET /execution/{id}/status``; also the top level of every results page."""

    execution_id: str
    query_id: int | None = None
    state: State
    is_execution_finished: bool | None = None
    submitted_at: Timestamp = None
    execution_started_at: Timestamp = None
    execution_ended_at: Timestamp = None
    expires_at: Timestamp = None
    cancelled_at: Timestamp = None
    queue_position: int | None = None
    result_metadata: ResultMetadata | None = None
    error: ExecutionErrorInfo | None = None
    execution_cost_credits: float | None = None
    max_inflight_interactive_executions: int | None = None
    max_inflight_interactive_reached: int | None = None


class ResultPage(ExecutionStatus):
    """One JSON page of results. ``rows`` is empty (and ``metadata`` None) while running."""

    rows: list[dict[str, Any]] = Field(default_factory=list)
    metadata: ResultMetadata | None = None
    next_offset: int | None = None
    next_uri: str | None = None
    offset: int = 0

    @property
    def has_next(self) -> bool:
        # Only the presence of next_* means more rows; a short page never means the end.
        return self.next_offset is not None or self.next_uri is not None

    @classmethod
    def from_json(cls, body: dict[str, Any], *, offset: int = 0) -> ResultPage:
        """Build a page without validating every row value (that is the normaliser's job)."""
        result = body.get("result") or {}
        rows = result.get("rows") or []
        meta = result.get("metadata")
        fields = {k: v for k, v in body.items() if k != "result"}
        page = cls.model_validate({**fields, "metadata": meta, "offset": offset, "rows": []})
        # Rows are trusted as decoded JSON objects; skip pydantic's per-item copy.
        object.__setattr__(page, "rows", rows)
        return page


class CsvPage(_Model):
    """One CSV page: the header line, the body without it, and where the next page is."""

    header: str
    body: bytes
    row_count: int
    offset: int
    next_offset: int | None = None
    next_uri: str | None = None

    @property
    def has_next(self) -> bool:
        return self.next_offset is not None or self.next_uri is not None
