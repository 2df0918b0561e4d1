"""Request accounting, so tests and benchmarks can assert what a client actually did."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

ROUTE_KINDS = (
    "execute",
    "sql_execute",
    "status",
    "results",
    "results_csv",
    "latest",
    "latest_csv",
    "cancel",
    "query",
    "other",
)


class Stats:
    """Counters; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_kind: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._bytes_by_kind: Counter[str] = Counter()
            self._rows_served = 0
            self._executions: Counter[int] = Counter()
            self._faults: Counter[str] = Counter()
            self._rate_limited = 0

    def request(self, kind: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_kind[kind] += 1

    def response(self, kind: str, status: int, body_bytes: int) -> None:
        with self._lock:
            self._by_status[status] += 1
            self._bytes_by_kind[kind] += body_bytes

    def rows(self, count: int) -> None:
        with self._lock:
            self._rows_served += count

    def execution_created(self, query_id: int) -> None:
        with self._lock:
            self._executions[query_id] += 1

    def fault(self, action: str) -> None:
        with self._lock:
            self._faults[action] += 1

    def rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy (dict keys are strings)."""
        with self._lock:
            return {
                "requests_total": self._requests,
                "requests_by_kind": dict(self._by_kind),
                "requests_by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "response_bytes_by_kind": dict(self._bytes_by_kind),
                "rows_served": self._rows_served,
                "executions_created": {str(k): v for k, v in sorted(self._executions.items())},
                "executions_created_total": sum(self._executions.values()),
                "faults_fired": dict(self._faults),
                "rate_limited": self._rate_limited,
            }
