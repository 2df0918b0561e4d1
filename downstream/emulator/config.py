"""Knobs that change how the emulator answers, settable at runtime (Python or HTTP).

Defaults follow the best-supported reading of dune-api.md; each knob exists
because the spec marks that behaviour as unknown or variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PLANS: dict[str, tuple[int, int] | None] = {
    "none": None,
    "free": (15, 40),
    "plus": (70, 200),
    "enterprise": (350, 1000),
}
"""Requests per minute for the (low, high) endpoint classes; ``None`` means unlimited."""


@dataclass
class EmulatorConfig:
    """Runtime settings. Mutate fields directly, or call :meth:`update` with a dict."""

    max_page_rows: int = 32_000
    """Server-side cap on ``limit`` (also the page size when ``limit`` is absent)."""
    max_datapoints_per_request: int | None = 250_000
    """Rows x columns allowed in one page; ``None`` disables the 402."""
    csv_null: str = "<nil>"
    """How NULL is written in CSV (Go's ``<nil>``; set ``""`` for empty fields)."""
    plan: str = "none"
    """Default rate-limit plan for every key: none, free, plus or enterprise."""
    key_plans: dict[str, str] = field(default_factory=dict)
    """Per-key plan overrides."""
    emit_retry_after: bool = True
    """Send ``Retry-After`` on 429s from the token bucket."""
    retry_after_seconds: int | None = None
    """Fixed ``Retry-After`` value; ``None`` means "seconds until a token is back"."""
    valid_keys: list[str] | None = None
    """Accepted API keys; ``None`` accepts any non-empty key."""
    billing_limit_reached: bool = False
    """Answer execute and result reads with the 402 billing-cycle error."""
    cancelled_state: str = "QUERY_STATE_CANCELLED"
    """Wire spelling of the cancelled state (``QUERY_STATE_CANCELED`` in newer docs)."""
    partial_status_metadata: bool = False
    """Include ``result_metadata`` in the status of a COMPLETED_PARTIAL execution."""
    retention_days: float = 90.0
    """``expires_at`` = ``execution_ended_at`` + this."""
    drop_optional_fields: bool = False
    """Schema drift: omit ``pending_time_millis``, ``is_execution_finished``,
    ``column_types`` and ``execution_cost_credits``."""
    add_unknown_fields: bool = False
    """Schema drift: add fields no client knows, at the top level and in metadata."""
    unknown_state: str | None = None
    """Schema drift: report the EXECUTING state under this unknown name."""
    legacy_zero_expires_at: bool = False
    """Legacy quirk: non-terminal statuses carry ``expires_at: 1970-01-01T00:00:00Z``."""
    max_query_id: int = 2_147_483_647
    """Query ids above this answer 500 ``An internal error occured`` (Dune's int overflow)."""

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial dict of changes; unknown names raise ``KeyError``."""
        names = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in names:
                raise KeyError(name)
        plans = [changes.get("plan", self.plan), *changes.get("key_plans", {}).values()]
        if any(p not in PLANS for p in plans):
            raise ValueError(f"unknown plan; choose from {sorted(PLANS)}")
        for name, value in changes.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def limits_for(self, api_key: str) -> tuple[int, int] | None:
        return PLANS[self.key_plans.get(api_key, self.plan)]

    def key_is_valid(self, api_key: str) -> bool:
        if not api_key:
            return False
        return self.valid_keys is None or api_key in self.valid_keys
