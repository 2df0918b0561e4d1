"""Scripted transport-level faults: canned errors, slow answers, cut or reset bodies.

A rule matches requests by method and a regex searched in the URL path
(``/execution/.*/results`` matches ``/api/v1/execution/X/results`` and its
``/csv`` variant; anchor with ``$`` to be strict). Each rule counts its own
matching calls; it fires on call ``nth`` (or the next one) and the ``times - 1``
calls after it, then leaves the queue. When several rules would fire on the
same call, the oldest wins and the others wait for their next match.

Actions:

* ``respond``: answer ``status``/``headers`` with ``body`` (raw text) or ``json``.
  ``when="after"`` runs the real handler first, so its side effects happen (an
  execution is created) although the client sees the fault.
* ``slow``: the real response, sent ``delay`` seconds late (the handler runs first).
* ``truncate``: the real status and headers, the body cut in half (Content-Length
  matches the cut body, so the client sees a complete but invalid JSON document).
* ``reset``: the real status line and headers with the full Content-Length, half the
  body, then the connection is dropped: a protocol error mid-body.

``delay`` also applies to ``respond`` (sleep, then answer).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import wire

ACTIONS = ("respond", "reset", "truncate", "slow")
_KEYS = {
    "method",
    "path",
    "nth",
    "times",
    "status",
    "headers",
    "body",
    "json",
    "delay",
    "when",
    "action",
}


@dataclass
class FaultRule:
    """One queued fault. ``seen``/``fired`` count this rule's matching and firing calls."""

    method: str = "*"
    path: str = ".*"
    nth: int | None = None
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    json: Any = None
    has_json: bool = False
    delay: float = 0.0
    when: str = "before"
    action: str = "respond"
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._pattern = re.compile(self.path)
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; choose from {ACTIONS}")
        if self.when not in ("before", "after"):
            raise ValueError("'when' must be 'before' or 'after'")
        if self.times < 1 or (self.nth is not None and self.nth < 1):
            raise ValueError("'times' and 'nth' count from 1")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultRule:
        unknown = set(raw) - _KEYS
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        return cls(
            method=str(raw.get("method", "*")),
            path=str(raw.get("path", ".*")),
            nth=None if raw.get("nth") is None else int(raw["nth"]),
            times=int(raw.get("times", 1)),
            status=int(raw.get("status", 500)),
            headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
            body=None if raw.get("body") is None else str(raw["body"]),
            json=raw.get("json"),
            has_json="json" in raw,
            delay=float(raw.get("delay", 0.0)),
            when=str(raw.get("when", "before")),
            action=str(raw.get("action", "respond")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "nth": self.nth,
            "times": self.times,
            "status": self.status,
            "headers": dict(self.headers),
            "delay": self.delay,
            "when": self.when,
            "action": self.action,
            "seen": self.seen,
            "fired": self.fired,
        }
        if self.has_json:
            out["json"] = self.json
        if self.body is not None:
            out["body"] = self.body
        return out

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and self._pattern.search(path) is not None

    def canned_response(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of a ``respond`` fault."""
        content_type: str | None = None
        if self.has_json:
            payload = wire.dumps(self.json)
            content_type = wire.JSON_TYPE
        elif self.body is not None:
            payload = self.body.encode()
            content_type = "text/html" if self.body.lstrip().startswith("<") else "text/plain"
        else:
            payload = b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if content_type is not None:
            headers.setdefault("content-type", content_type)
        headers["content-length"] = str(len(payload))
        return self.status, [(k.encode(), v.encode()) for k, v in headers.items()], payload


class FaultQueue:
    """The ordered rules; thread-safe because tests add rules from outside the server loop."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        parsed = rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule)
        with self._lock:
            self._rules.append(parsed)
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """Count this call against every matching rule; return the rule that fires, if any."""
        fired: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                due = rule.seen >= (rule.nth or 1)
                if fired is None and due and rule.fired < rule.times:
                    rule.fired += 1
                    fired = rule
                if rule.fired >= rule.times:
                    self._rules.remove(rule)
        return fired
