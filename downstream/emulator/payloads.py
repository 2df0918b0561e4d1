"""JSON bodies for status and results, with field presence driven by state.

Dune omits optional fields instead of sending ``null`` (the TS SDK loops on
``next_uri !== undefined``), so every field below is added only when it has a
value. Schema-drift knobs from the config are applied here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from . import wire
from .config import EmulatorConfig
from .executions import CANCELLED, EXECUTING, PARTIAL, PENDING, TERMINAL, Execution


@dataclass(frozen=True)
class Page:
    """A slice of an execution's rows, already encoded."""

    rows_json: bytes
    row_count: int
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    result_set_bytes: int


def wire_state(state: str, config: EmulatorConfig) -> str:
    if state == CANCELLED:
        return config.cancelled_state
    if state == EXECUTING and config.unknown_state:
        return config.unknown_state
    return state


def _times(execution: Execution, config: EmulatorConfig) -> dict[str, str]:
    digits = execution.precision
    out = {"submitted_at": wire.rfc3339(execution.submitted_ns, digits["submitted"])}
    if execution.expires_ns is not None:
        out["expires_at"] = wire.rfc3339(execution.expires_ns, digits["expires"])
    elif config.legacy_zero_expires_at and execution.state not in TERMINAL:
        out["expires_at"] = wire.ZERO_TIME
    if execution.started_ns is not None:
        out["execution_started_at"] = wire.rfc3339(execution.started_ns, digits["started"])
    if execution.ended_ns is not None:
        out["execution_ended_at"] = wire.rfc3339(execution.ended_ns, digits["ended"])
    if execution.cancelled_ns is not None and execution.state == CANCELLED:
        out["cancelled_at"] = wire.rfc3339(execution.cancelled_ns, digits["ended"])
    return out


def metadata(
    execution: Execution,
    config: EmulatorConfig,
    page: Page | None,
) -> dict[str, Any]:
    """``result.metadata`` for a page, or the status ``result_metadata`` (``page=None``)."""
    total_rows = len(execution.source)
    total_bytes = execution.source.value_bytes(0, total_rows)
    if page is None:
        names, types = execution.column_names, execution.column_types
        rows, page_bytes = total_rows, total_bytes
    else:
        names, types = page.column_names, page.column_types
        rows, page_bytes = page.row_count, page.result_set_bytes
    out: dict[str, Any] = {"column_names": list(names)}
    if not config.drop_optional_fields:
        out["column_types"] = list(types)
    out["row_count"] = rows
    out["result_set_bytes"] = page_bytes
    out["total_row_count"] = total_rows
    out["total_result_set_bytes"] = total_bytes
    out["datapoint_count"] = rows * len(names)
    if not config.drop_optional_fields:
        out["pending_time_millis"] = execution.pending_millis
    out["execution_time_millis"] = execution.execution_millis
    if config.add_unknown_fields:
        out["future_metric"] = 1.5
    return out


def status_body(execution: Execution, config: EmulatorConfig, now_ns: int) -> dict[str, Any]:
    """``GET /execution/{id}/status``."""
    state = execution.state
    body: dict[str, Any] = {
        "execution_id": execution.id,
        "query_id": execution.query_id,
        "state": wire_state(state, config),
    }
    if not config.drop_optional_fields:
        body["is_execution_finished"] = state in TERMINAL
    body.update(_times(execution, config))
    position = execution.queue_position(now_ns)
    if state == PENDING and position is not None:
        body["queue_position"] = position
    if state in TERMINAL and not config.drop_optional_fields:
        body["execution_cost_credits"] = execution.cost_credits
    if state == "QUERY_STATE_COMPLETED" or (state == PARTIAL and config.partial_status_metadata):
        body["result_metadata"] = metadata(execution, config, None)
    if execution.error is not None:
        body["error"] = execution.error
    _drift(body, config)
    return body


def results_body(
    execution: Execution,
    config: EmulatorConfig,
    page: Page | None,
    next_uri: str | None,
    next_offset: int | None,
) -> dict[str, Any]:
    """``GET /execution/{id}/results``: the status fields plus ``result`` and paging."""
    state = execution.state
    body: dict[str, Any] = {"execution_id": execution.id, "query_id": execution.query_id}
    if not config.drop_optional_fields:
        body["is_execution_finished"] = state in TERMINAL
    body["state"] = wire_state(state, config)
    body.update(_times(execution, config))
    if execution.error is not None:
        body["error"] = execution.error
    if page is not None:
        body["result"] = {
            "rows": orjson.Fragment(page.rows_json),
            "metadata": metadata(execution, config, page),
        }
    if next_uri is not None and next_offset is not None:
        body["next_uri"] = next_uri
        body["next_offset"] = next_offset
    _drift(body, config)
    return body


def _drift(body: dict[str, Any], config: EmulatorConfig) -> None:
    if config.add_unknown_fields:
        body["future_field"] = {"note": "added by the emulator's schema-drift knob", "n": [1, 2]}
