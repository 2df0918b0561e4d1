"""Turn Dune's wire values into exact SQLite values, driven by ``column_types``.

The declared type decides, never the shape of a value:

==========================================  ==========  ===================================
Dune type                                   SQLite      stored as
==========================================  ==========  ===================================
tinyint, smallint, integer, bigint          INTEGER     exact integer (also above 2^53)
uint256, int256, decimal(p,s), hugeint      TEXT        exact decimal text, never a float
double, real                                REAL        float
boolean                                     INTEGER     1 / 0
timestamp(p) [with time zone], date         TEXT        ``2024-03-05T20:50:59.000Z`` (UTC)
time                                        TEXT        as sent (``20:50:59.000``)
varbinary                                   TEXT        lowercase ``0x`` hex
array(..), map(..), row(..), json           TEXT        compact JSON
varchar, char                               TEXT        as sent
anything else                               TEXT        as sent (JSON for nested), warning
==========================================  ==========  ===================================

NULL stays NULL: never the strings ``'NaT'``, ``'nan'``, ``'None'`` or ``'<nil>'``.
A value that contradicts its declared type (a word in a bigint column) is not dropped and
does not fail the load: it is stored as text as received and counted in the warnings.
(SQLite's column affinity still applies to such text: a non-integral number such as
``"1.5"`` in an INTEGER column is stored as the REAL 1.5.)

A number too large for its column's storage is different: an integer beyond 64 bits in
an integer (or boolean) column, a finite number beyond double range in a double column.
SQLite would silently keep an approximation (``2**70`` becomes ``1.1805916207174113e+21``),
so such values are counted in ``NormalizedPage.out_of_range`` and the loader refuses the
whole result (``LoadError``) rather than store a number Dune did not send.

The conversion is columnar over plain Python lists: building and unpacking a pandas
DataFrame per page cost about 1 s per million rows (measured), more than the conversion.
pandas parses the irregular temporal values (mixed formats, offsets) and
``NormalizedPage.to_frame()`` gives a DataFrame for anyone who wants one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import orjson
import pandas as pd

log = logging.getLogger("downstream.normalize")


class Kind(StrEnum):
    INTEGER = "integer"
    EXACT = "exact"
    REAL = "real"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"
    TIME = "time"
    HEX = "hex"
    JSON = "json"
    TEXT = "text"
    UNKNOWN = "unknown"


SQLITE_TYPES = {
    Kind.INTEGER: "INTEGER",
    Kind.BOOLEAN: "INTEGER",
    Kind.REAL: "REAL",
}

_KIND_BY_BASE: dict[str, Kind] = {
    **dict.fromkeys(["tinyint", "smallint", "integer", "int", "bigint"], Kind.INTEGER),
    **dict.fromkeys(
        ["uint256", "int256", "uint128", "int128", "hugeint", "decimal", "numeric"], Kind.EXACT
    ),
    **dict.fromkeys(["double", "real", "float"], Kind.REAL),
    **dict.fromkeys(["boolean", "bool"], Kind.BOOLEAN),
    "timestamp": Kind.TIMESTAMP,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "varbinary": Kind.HEX,
    **dict.fromkeys(["array", "map", "row", "json"], Kind.JSON),
    **dict.fromkeys(["varchar", "char", "string", "uuid", "ipaddress"], Kind.TEXT),
}


def classify(dune_type: str | None) -> Kind:
    """The conversion for a Dune type string: by its first word, whatever its parameters
    (``timestamp(3) with time zone``, ``decimal(38,0)``, ``array(varchar)``)."""
    if not dune_type:
        return Kind.UNKNOWN
    base = re.match(r"[a-z0-9_]*", dune_type.strip().lower())
    return _KIND_BY_BASE.get(base.group() if base else "", Kind.UNKNOWN)


@dataclass(frozen=True)
class Column:
    """One result column: its Dune name and type, and how it is stored."""

    name: str
    dune_type: str | None
    kind: Kind

    @property
    def sqlite_type(self) -> str:
        return SQLITE_TYPES.get(self.kind, "TEXT")

    @property
    def fraction_digits(self) -> int:
        """Timestamps keep milliseconds, or microseconds when the type is finer."""
        match = re.search(r"\((\d+)\)", self.dune_type or "")
        return 6 if match and int(match.group(1)) > 3 else 3


def columns_from_metadata(names: Sequence[str], types: Sequence[str] | None) -> list[Column]:
    """Columns in query order; a missing or unknown type is stored as text, with a warning."""
    types = list(types) if types is not None else [None] * len(names)  # type: ignore[list-item]
    if len(types) != len(names):
        raise ValueError(f"{len(names)} column names but {len(types)} column types")
    columns = []
    for name, dune_type in zip(names, types, strict=True):
        kind = classify(dune_type)
        if kind is Kind.UNKNOWN:
            log.warning(
                "column %r has type %r that Downstream does not know; storing text", name, dune_type
            )
        columns.append(Column(name, dune_type, kind))
    return columns


@dataclass
class NormalizedPage:
    """A page ready to store: one list per column, in query order."""

    columns: list[Column]
    values: list[list[Any]]
    mismatches: dict[str, int] = field(default_factory=dict)
    # column -> (count, first value) of numbers the column's storage cannot hold exactly
    out_of_range: dict[str, tuple[int, Any]] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return len(self.values[0]) if self.values else 0

    def rows(self) -> list[tuple[Any, ...]]:
        return list(zip(*self.values, strict=True))

    def to_frame(self) -> pd.DataFrame:
        """The page as a DataFrame (object columns, so exact ints and NULLs survive)."""
        return pd.DataFrame(
            {
                c.name: pd.Series(v, dtype=object)
                for c, v in zip(self.columns, self.values, strict=True)
            },
            columns=pd.Index([c.name for c in self.columns], dtype=object),
        )


def normalize_rows(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> NormalizedPage:
    """Convert one page of Dune row objects, column by column."""
    values: list[list[Any]] = []
    mismatches: dict[str, int] = {}
    out_of_range: dict[str, tuple[int, Any]] = {}
    for column in columns:
        name = column.name
        raw = [row.get(name) for row in rows]
        converted, bad, too_large = convert_column(raw, column)
        values.append(converted)
        if bad:
            mismatches[name] = bad
        if too_large:
            out_of_range[name] = too_large
    return NormalizedPage(list(columns), values, mismatches, out_of_range)


def convert_column(raw: list[Any], column: Column) -> tuple[list[Any], int, tuple[int, Any] | None]:
    """Convert one column's values; returns them, how many contradicted the type, and
    (count, first value) of numbers too large for the column's storage, if any."""
    bulk = _BULK.get(column.kind)
    if bulk is not None:
        converted = bulk(raw, column)
        if converted is not None:
            return converted, 0, None
    return _convert_each(raw, column)


def _convert_each(raw: list[Any], column: Column) -> tuple[list[Any], int, tuple[int, Any] | None]:
    if column.kind is Kind.TIMESTAMP or column.kind is Kind.DATE:
        return (*_timestamps(raw, column.fraction_digits), None)
    convert = _CONVERTERS[column.kind]
    out: list[Any] = []
    bad = 0
    too_large: list[Any] = []
    append = out.append
    for v in raw:
        if v is None:
            append(None)
            continue
        try:
            append(convert(v))
        except OutOfRange:
            too_large.append(v)
            append(None)
        except (ValueError, TypeError, OverflowError, ArithmeticError):
            bad += 1
            append(_as_text(v))
    return out, bad, (len(too_large), too_large[0]) if too_large else None


class OutOfRange(ArithmeticError):
    """A number the column's SQLite storage cannot hold exactly (see the module docstring)."""


# -- one converter per kind; each raises ValueError/TypeError for a mismatching value ------

_INT64 = (-(2**63), 2**63 - 1)
_INT_TEXT = re.compile(r"[-+]?\d+")


def _integer(v: Any) -> int:
    if type(v) is int:
        if _INT64[0] <= v <= _INT64[1]:
            return v
        raise OutOfRange(v)
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, str):
        text = v.strip()
        if _INT_TEXT.fullmatch(text) and len(text) > 20:
            raise OutOfRange(v)  # also spares int() its 4300-digit limit
        return _integer(int(text))
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return _integer(int(v))
    if isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value():
        return _integer(int(v))
    raise TypeError(v)


_DECIMAL = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _exact(v: Any) -> str:
    if type(v) is str:
        s = v.strip()
        if _DECIMAL.fullmatch(s):
            return s
        raise ValueError(v)
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return _int_text(v)
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(v)
        return format(v, "f")
    if isinstance(v, float):
        # Only reachable if Dune sent a fraction as a JSON number; repr is the exact value
        # the float holds (shortest round trip), which is all that is left of it.
        if not math.isfinite(v):
            raise ValueError(v)
        return repr(v)
    raise TypeError(v)


def _real(v: Any) -> float | None:
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, float):
        return None if v != v else v
    if isinstance(v, int | Decimal | str):
        try:
            f = float(v.strip() if isinstance(v, str) else v)
        except OverflowError:  # an int beyond double range
            raise OutOfRange(v) from None
        if math.isinf(f) and not _names_infinity(v):
            raise OutOfRange(v)  # "1e400": finite as sent, infinite as a double
        return None if f != f else f
    raise TypeError(v)


def _names_infinity(v: Any) -> bool:
    if isinstance(v, Decimal):
        return v.is_infinite()
    return isinstance(v, str) and v.strip().lstrip("+-").lower() in ("inf", "infinity")


_TRUE = {"true", "t", "1"}
_FALSE = {"false", "f", "0"}


def _boolean(v: Any) -> int:
    if v is True or v is False:
        return int(v)
    if isinstance(v, int) and v in (0, 1):
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return 1
        if s in _FALSE:
            return 0
    # Kept as text, which an INTEGER column turns back into a number: it must fit.
    if isinstance(v, int | str) and not isinstance(v, bool):
        _integer(v)
    raise ValueError(v)


_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _hex(v: Any) -> str:
    if isinstance(v, str) and _HEX.fullmatch(v):
        return v.lower()
    raise ValueError(v)


def _json_text(v: Any) -> str:
    if isinstance(v, str):
        return v  # already JSON text (Dune's json type) or a scalar rendered as text
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        # Decimals or integers beyond 64 bits from the exact decoder: stdlib keeps them.
        return json.dumps(v, default=str, ensure_ascii=False, separators=(",", ":"))


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict | list):
        return _json_text(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return _int_text(v)
    return str(v)


def _int_text(v: int) -> str:
    # str() refuses integers beyond 4300 digits (CVE-2020-10735); Decimal has no limit.
    return str(v) if v.bit_length() < 14_000 else str(Decimal(v))


_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.INTEGER: _integer,
    Kind.EXACT: _exact,
    Kind.REAL: _real,
    Kind.BOOLEAN: _boolean,
    Kind.TIME: _text,
    Kind.HEX: _hex,
    Kind.JSON: _json_text,
    Kind.TEXT: _text,
    Kind.UNKNOWN: _text,
}


def _as_text(v: Any) -> str:
    """How a value that contradicts its declared type is kept: as received."""
    return _text(v)


# -- whole columns at once ------------------------------------------------------------------
#
# Per-value conversion costs about a microsecond a value, more than decoding the JSON. Almost
# every page is uniform: each value already in the one form Dune sends for its type. These
# check that for a whole column with one C-level pass (a regex over the joined column, a type
# set, numpy over the bytes) and convert it in bulk. They return None unless every non-NULL
# value is in that form, and the per-value path then decides value by value, so the result
# is always what the per-value converters give.

_NONE = type(None)
_INT_TYPES: frozenset[type] = frozenset({int, _NONE})
_NUMBER_TYPES: frozenset[type] = frozenset({int, float, _NONE})
_BOOL_TYPES: frozenset[type] = frozenset({bool, _NONE})
_STR_TYPES: frozenset[type] = frozenset({str, _NONE})
_BOOL_INT = {True: 1, False: 0, None: None}
# Joined with "\n", which none of these forms contains, so one match checks every value.
# (sre scans [0-9a-fA-F] more than twice as fast as [0-9a-f], so case is checked apart.)
_EXACT_COLUMN = re.compile(r"(?:-?[0-9]+(?:\.[0-9]+)?\n)*")
_HEX_COLUMN = re.compile(r"(?:0x[0-9a-fA-F]*\n)*")
_TS_TEMPLATE = np.frombuffer(b"0000-00-00 00:00:00.000 UTC\n", dtype=np.uint8)
_TS_DIGIT = np.equal(_TS_TEMPLATE, ord("0"))


def _only(raw: list[Any], types: frozenset[type]) -> bool:
    return set(map(type, raw)) <= types


def _present(raw: list[Any]) -> list[Any]:
    return [v for v in raw if v is not None] if None in raw else raw


def _refill(raw: list[Any], present: list[Any], converted: list[Any]) -> list[Any]:
    """Put the NULLs back between the converted non-NULL values."""
    if present is raw:
        return converted
    it = iter(converted)
    return [None if v is None else next(it) for v in raw]


def _joined_lines(values: list[str]) -> str | None:
    """The values as ``v1\nv2\n...\n``, or None if a value itself holds a newline."""
    text = "\n".join(values) + "\n"
    return text if text.count("\n") == len(values) else None


def _bulk_integer(raw: list[Any], column: Column) -> list[Any] | None:
    if not _only(raw, _INT_TYPES):
        return None
    present = _present(raw)
    if present and (min(present) < _INT64[0] or max(present) > _INT64[1]):
        return None
    return list(raw)


def _bulk_real(raw: list[Any], column: Column) -> list[Any] | None:
    types = set(map(type, raw))
    if not types <= _NUMBER_TYPES:
        return None
    out = list(raw)
    if int in types:
        try:
            out = [v if v is None else float(v) for v in raw]
        except OverflowError:
            return None
    total = sum(_present(out))
    return out if total == total else None  # NaN somewhere (or inf - inf): per value


def _bulk_boolean(raw: list[Any], column: Column) -> list[Any] | None:
    return list(map(_BOOL_INT.__getitem__, raw)) if _only(raw, _BOOL_TYPES) else None


def _bulk_text(raw: list[Any], column: Column) -> list[Any] | None:
    return list(raw) if _only(raw, _STR_TYPES) else None


def _bulk_exact(raw: list[Any], column: Column) -> list[Any] | None:
    if not _only(raw, _STR_TYPES):
        return None
    text = _joined_lines(_present(raw))
    return list(raw) if text is not None and _EXACT_COLUMN.fullmatch(text) else None


def _bulk_hex(raw: list[Any], column: Column) -> list[Any] | None:
    if not _only(raw, _STR_TYPES):
        return None
    present = _present(raw)
    text = _joined_lines(present)
    if text is None:
        return None
    if not _HEX_COLUMN.fullmatch(text):
        return None
    if not any(letter in text for letter in "ABCDEF"):
        return list(raw)
    return _refill(raw, present, text.lower().split("\n")[:-1])


def _bulk_timestamp(raw: list[Any], column: Column) -> list[Any] | None:
    """``2024-03-05 20:50:59.000 UTC`` -> ``2024-03-05T20:50:59.000Z``, as rows of bytes."""
    if column.fraction_digits != 3 or not _only(raw, _STR_TYPES):
        return None
    present = _present(raw)
    n = len(present)
    text = "\n".join(present) + "\n"
    if len(text) != 28 * n or not text.isascii():
        return None
    grid = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(n, 28)
    fixed = ~_TS_DIGIT
    if not (grid[:, fixed] == _TS_TEMPLATE[fixed]).all():
        return None
    if not ((grid[:, _TS_DIGIT] - ord("0")) <= 9).all():  # uint8: below "0" wraps around
        return None
    out = np.empty((n, 25), dtype=np.uint8)
    out[:, :10] = grid[:, :10]
    out[:, 10] = ord("T")
    out[:, 11:23] = grid[:, 11:23]
    out[:, 23] = ord("Z")
    out[:, 24] = ord("\n")
    return _refill(raw, present, out.tobytes().decode("ascii").split("\n")[:-1])


_BULK: dict[Kind, Callable[[list[Any], Column], list[Any] | None]] = {
    Kind.INTEGER: _bulk_integer,
    Kind.EXACT: _bulk_exact,
    Kind.REAL: _bulk_real,
    Kind.BOOLEAN: _bulk_boolean,
    Kind.TIMESTAMP: _bulk_timestamp,
    Kind.DATE: _bulk_timestamp,
    Kind.TIME: _bulk_text,
    Kind.HEX: _bulk_hex,
    Kind.JSON: _bulk_text,
    Kind.TEXT: _bulk_text,
    Kind.UNKNOWN: _bulk_text,
}


# -- timestamps -----------------------------------------------------------------------------

# Dune's usual form: "2024-03-05 20:50:59.000 UTC" (27 chars with milliseconds).
_DUNE_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} UTC")


def _timestamps(raw: list[Any], digits: int) -> tuple[list[Any], int]:
    """ISO-8601 UTC text; the common Dune form by slicing, the rest through pandas."""
    out: list[Any] = [None] * len(raw)
    irregular: list[int] = []
    fast = digits == 3
    for i, v in enumerate(raw):
        if v is None:
            continue
        if fast and type(v) is str and _DUNE_TS.fullmatch(v):
            out[i] = v[:10] + "T" + v[11:23] + "Z"
        else:
            irregular.append(i)
    bad = 0
    if irregular:
        parsed = _parse_times([raw[i] for i in irregular], digits)
        for i, value in zip(irregular, parsed, strict=True):
            if value is None:
                bad += 1
                out[i] = _as_text(raw[i])
            else:
                out[i] = value
    return out, bad


_UTC_SUFFIX = re.compile(r"\s*(UTC|Z|\+00:?00)$", re.IGNORECASE)


def _parse_times(values: list[Any], digits: int) -> list[str | None]:
    """Parse anything pandas understands as a time; None where it cannot."""
    cleaned: list[Any] = []
    for v in values:
        if isinstance(v, str):
            s = v.strip()
            # "... UTC" is not ISO 8601; pandas reads "+00:00".
            s = _UTC_SUFFIX.sub("+00:00", s) if _UTC_SUFFIX.search(s) else s
            cleaned.append(s)
        else:
            cleaned.append(None)  # numbers are not timestamps Dune sends
    parsed = pd.to_datetime(
        pd.Series(cleaned, dtype=object), utc=True, format="mixed", errors="coerce"
    )
    result: list[str | None] = []
    for ts in parsed:
        if pd.isna(ts):
            result.append(None)
            continue
        try:
            text = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
        except (ValueError, NotImplementedError):  # e.g. "-7" parses as the year -7
            result.append(None)
            continue
        result.append(text[: len(text) - (6 - digits)] + "Z")
    return result


# -- identity -----------------------------------------------------------------------------


def row_hashes(page: NormalizedPage) -> list[str]:
    """A stable hash of each row's stored values: identity when no primary key is given.

    orjson writes infinities as ``null``, so a row holding one is hashed through the
    stdlib (``Infinity``): otherwise ``inf``, ``-inf`` and NULL would be one row.
    """
    infinite = [
        i
        for i, (c, values) in enumerate(zip(page.columns, page.values, strict=True))
        if c.kind is Kind.REAL and any(v == _INF or v == -_INF for v in values)
    ]
    out = []
    for row in zip(*page.values, strict=True):
        try:
            if infinite and any(row[i] == _INF or row[i] == -_INF for i in infinite):
                raise TypeError("infinity")
            blob = orjson.dumps(row)
        except TypeError:
            blob = json.dumps(row, default=str).encode()
        out.append(hashlib.blake2b(blob, digest_size=16).hexdigest())
    return out


_INF = float("inf")


def is_missing(value: Any) -> bool:
    """NaN, NaT and pd.NA (and None) all mean NULL."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def sqlite_value(value: Any) -> Any:
    """A value sqlite3 stores as intended: NULL for every missing marker, plain Python for
    numpy scalars (sqlite3 would store an ``np.int64`` as a BLOB), ISO text for instants."""
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        ts = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value


def frame_records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows of a DataFrame ready for sqlite3 (see ``sqlite_value``)."""
    return [tuple(map(sqlite_value, row)) for row in frame.itertuples(index=False, name=None)]
