"""Query parameters in Dune's wire format.

Dune's parameter types are text, number, datetime, enum and multi-select enum (a list).
The execute body takes ``{"query_parameters": {key: value}}``; the latest-result endpoint
takes ``params.<key>=value`` query-string pairs. Numbers are sent as strings (as the
official SDK does), datetimes as ``YYYY-MM-DD HH:MM:SS`` in UTC with no zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal, TypeAlias

ParamValue: TypeAlias = str | int | float | Decimal | datetime | date | Sequence[str]
WireValue: TypeAlias = str | list[str]

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_datetime(value: datetime | date) -> str:
    """Render a datetime the way Dune's datetime parameters expect it (UTC, no zone)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime(DATETIME_FORMAT)
    return f"{value.isoformat()} 00:00:00"


def encode_value(key: str, value: ParamValue) -> WireValue:
    """Encode one parameter value; raises ``ValueError`` naming the key on bad input."""
    if isinstance(value, bool):
        # bool is an int subclass; Dune has no boolean parameter type.
        raise ValueError(f"parameter {key!r}: booleans are not a Dune parameter type")
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return format_datetime(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"parameter {key!r}: {value} is not a finite number")
        return repr(value)
    if isinstance(value, Sequence):
        items = list(value)
        if not all(isinstance(v, str) for v in items):
            raise ValueError(f"parameter {key!r}: a multi-select list holds strings only")
        return [str(v) for v in items]
    raise ValueError(f"parameter {key!r}: unsupported type {type(value).__name__}")


def encode_parameters(parameters: Mapping[str, ParamValue] | None) -> dict[str, WireValue]:
    """The ``query_parameters`` object of an execute request."""
    return {key: encode_value(key, value) for key, value in (parameters or {}).items()}


def latest_result_params(
    parameters: Mapping[str, ParamValue] | None,
    *,
    multi_value: Literal["repeat", "comma"] = "repeat",
) -> list[tuple[str, str]]:
    """``params.<key>=value`` pairs selecting the latest execution run with these values.

    How Dune wants multi-select values here is not documented: the SDK repeats the key,
    spice joins with commas. ``multi_value`` picks one.
    """
    pairs: list[tuple[str, str]] = []
    for key, wire in encode_parameters(parameters).items():
        name = f"params.{key}"
        if isinstance(wire, list):
            if multi_value == "comma":
                pairs.append((name, ",".join(wire)))
            else:
                pairs.extend((name, item) for item in wire)
        else:
            pairs.append((name, wire))
    return pairs
