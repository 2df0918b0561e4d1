"""Comparing Dune values that arrive in different spellings.

Parameter filters compare a row value (``2022-09-15 00:00:00.000 UTC``) with a
parameter value (``2022-09-15 00:00:00``), and latest-result lookups compare
``params.n=3`` with an execution run with ``{"n": 3}``. Both need one notion of
"the same value" that ignores spelling: numbers compare as decimals and
timestamps in any of Dune's forms compare as instants.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})"
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d{1,9}))?)?"
    r"\s*(?:Z|UTC|[+-]00:?00)?"
)

_NUMERIC, _TIME, _TEXT = 0, 1, 2


def comparable(value: Any) -> tuple[int, Any]:
    """A (kind, key) pair; keys of the same kind order like the values they stand for."""
    if isinstance(value, bool):
        return _TEXT, "true" if value else "false"
    if isinstance(value, int | float):
        return _NUMERIC, Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            try:
                return _NUMERIC, Decimal(text)
            except InvalidOperation:  # pragma: no cover - regex guarantees a number
                pass
        match = _TIMESTAMP.fullmatch(text)
        if match:
            day, hour, minute, second, fraction = match.groups()
            return _TIME, (
                f"{day} {hour or '00'}:{minute or '00'}:{second or '00'}."
                f"{(fraction or '').ljust(9, '0')}"
            )
        return _TEXT, text
    return _TEXT, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def compare(left: Any, right: Any) -> int:
    """-1, 0 or 1. Values of different kinds fall back to comparing their text."""
    kind_l, key_l = comparable(left)
    kind_r, key_r = comparable(right)
    if kind_l != kind_r:
        key_l, key_r = str(key_l), str(key_r)
    return int(key_l > key_r) - int(key_l < key_r)


def same_value(left: Any, right: Any) -> bool:
    return compare(left, right) == 0


OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in")


def matches(row_value: Any, op: str, param_value: Any) -> bool:
    """SQL-ish ``row_value op param_value``; NULL never matches, as in SQL."""
    if row_value is None or param_value is None:
        return False
    if op == "in" or isinstance(param_value, list):
        options = param_value if isinstance(param_value, list) else [param_value]
        found = any(same_value(row_value, option) for option in options)
        return found if op in ("in", "=") else not found
    result = compare(row_value, param_value)
    return {
        "=": result == 0,
        "!=": result != 0,
        "<": result < 0,
        "<=": result <= 0,
        ">": result > 0,
        ">=": result >= 0,
    }[op]


def same_parameter(stored: Any, requested: list[str]) -> bool:
    """Does an execution's parameter value match the ``params.<name>`` values asked for?

    Multi-select values may be requested as repeated keys or as one
    comma-joined value; both are accepted and compared as multisets.
    """
    if isinstance(stored, list):
        wanted = requested
        if len(requested) == 1 and "," in requested[0]:
            wanted = requested[0].split(",")
        have = sorted(str(comparable(v)[1]) for v in stored)
        want = sorted(str(comparable(v)[1]) for v in wanted)
        return have == want
    return len(requested) == 1 and same_value(stored, requested[0])
