"""Byte-level encodings Dune uses on the wire: ULIDs, RFC 3339 times, JSON and CSV.

Dune's API server is written in Go, so several encodings here copy Go's
formatting (``time.RFC3339Nano``, ``fmt``'s ``%v`` for floats, ``encoding/csv``
quoting) rather than Python's, so the client is tested against what Dune
actually sends.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import orjson

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.IGNORECASE)

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"


def new_ulid(timestamp_ns: int, randomness: bytes | None = None) -> str:
    """A 26-character Crockford ULID: 48-bit millisecond time + 80 random bits.

    Dune's ids start with ``01`` today; that follows from the time part.
    """
    rand = randomness if randomness is not None else os.urandom(10)
    value = ((timestamp_ns // 1_000_000) << 80) | int.from_bytes(rand[:10], "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def is_valid_ulid(text: str) -> bool:
    """True for a well-formed ULID (case-insensitive, as ULID parsers accept)."""
    return _ULID_RE.fullmatch(text) is not None


def rfc3339(ns: int, digits: int) -> str:
    """RFC 3339 UTC with at most ``digits`` fractional digits, trailing zeros trimmed.

    This is Go's ``RFC3339Nano`` after truncation, which is why Dune's
    timestamps come with 0 to 9 fractional digits.
    """
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if digits > 0:
        fraction = f"{frac:09d}"[:digits].rstrip("0")
        if fraction:
            text += "." + fraction
    return text + "Z"


ZERO_TIME = "1970-01-01T00:00:00Z"


def dumps(value: Any) -> bytes:
    """Encode a response body. Map keys inside row values are sorted like Go maps."""
    return orjson.dumps(value)


def dumps_rows(rows: Sequence[dict[str, Any]]) -> bytes:
    """Encode rows with byte-order-sorted keys, as Dune does (Go marshals maps sorted)."""
    try:
        return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits; a fixture may still contain one.
        return json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def go_float(value: float) -> str:
    """Format a float like Go's ``fmt`` ``%v`` (``strconv`` 'g', shortest digits).

    Go switches to exponent form when the decimal exponent is < -4 or >= 21
    for JSON, but ``%v`` uses the threshold 6, giving ``4.474223e+06``: the
    form Dune's CSV has been seen to carry.
    """
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    negative = value < 0 or (value == 0 and str(value).startswith("-"))
    text = repr(abs(value))
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + exponent
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    sign = "-" if negative else ""
    if not digits:
        return sign + "0"
    exp = point - 1
    if exp < -4 or exp >= 6:
        head = digits[0]
        tail = digits[1:]
        body = head + ("." + tail if tail else "")
        exp_sign = "-" if exp < 0 else "+"
        return f"{sign}{body}e{exp_sign}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def csv_field(text: str) -> str:
    """Quote a CSV field exactly when Go's ``encoding/csv`` would (RFC 4180 style)."""
    if text == "":
        return text
    if _NEEDS_QUOTES.search(text) or text[0] in " \t" or text == r"\.":
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_cell(value: Any, null: str, as_float: bool = False) -> str:
    """Render one row value as CSV text (before quoting).

    ``as_float`` marks a double/real column: an integral value stored as a JSON
    integer still prints the way Go prints a float64 (``4.474223e+06``).
    """
    if value is None:
        return null
    if as_float and type(value) is int:
        return go_float(float(value))
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def csv_line(values: Sequence[Any], null: str, float_columns: Sequence[bool]) -> str:
    """One CSV record with an LF line end."""
    return (
        ",".join(
            csv_field(csv_cell(v, null, f)) for v, f in zip(values, float_columns, strict=True)
        )
        + "\n"
    )


def csv_header(columns: Sequence[str]) -> str:
    """The header record that starts every CSV page."""
    return ",".join(csv_field(c) for c in columns) + "\n"
