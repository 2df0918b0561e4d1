"""Type-driven normalisation: exact numbers, UTC timestamps, hex, JSON, and real NULLs."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downstream.normalize import (
    _BULK,
    Column,
    Kind,
    _convert_each,
    classify,
    columns_from_metadata,
    convert_column,
    frame_records,
    normalize_rows,
)


@pytest.mark.parametrize(
    ("dune_type", "kind"),
    [
        ("bigint", Kind.INTEGER),
        ("BIGINT", Kind.INTEGER),
        ("integer", Kind.INTEGER),
        ("uint256", Kind.EXACT),
        ("int256", Kind.EXACT),
        ("decimal(38,0)", Kind.EXACT),
        ("decimal", Kind.EXACT),
        ("hugeint", Kind.EXACT),
        ("double", Kind.REAL),
        ("real", Kind.REAL),
        ("boolean", Kind.BOOLEAN),
        ("timestamp(3) with time zone", Kind.TIMESTAMP),
        ("timestamp with time zone", Kind.TIMESTAMP),
        ("timestamp(6)", Kind.TIMESTAMP),
        ("date", Kind.DATE),
        ("time(3)", Kind.TIME),
        ("varbinary", Kind.HEX),
        ("array(varchar)", Kind.JSON),
        ("map(varchar, double)", Kind.JSON),
        ("row(a bigint, b varchar)", Kind.JSON),
        ("json", Kind.JSON),
        ("varchar", Kind.TEXT),
        ("varchar(42)", Kind.TEXT),
        ("geometry", Kind.UNKNOWN),
        ("", Kind.UNKNOWN),
        (None, Kind.UNKNOWN),
    ],
)
def test_types_are_classified_by_their_first_word(dune_type: str | None, kind: Kind) -> None:
    assert classify(dune_type) is kind


def one(dune_type: str, *values: object) -> list[object]:
    column = Column("c", dune_type, classify(dune_type))
    page = normalize_rows([{"c": v} for v in values], [column])
    return page.values[0]


def test_big_integers_stay_exact() -> None:
    assert one("bigint", 9007199254740993, -(2**63), 2**63 - 1, None) == [
        9007199254740993,
        -(2**63),
        2**63 - 1,
        None,
    ]


def test_uint256_and_decimals_are_exact_text_never_floats() -> None:
    max_uint = str(2**256 - 1)
    min_int = str(-(2**255))
    assert one("uint256", max_uint, 2**256 - 1, "0") == [max_uint, max_uint, "0"]
    assert one("int256", min_int) == [min_int]
    assert one("decimal(38,18)", "3.141592653589793238", Decimal("0.1")) == [
        "3.141592653589793238",
        "0.1",
    ]


def test_doubles_booleans_hex_json_text() -> None:
    assert one("double", 1286407.4659000002, 0.00001404037053195, 5, None) == [
        1286407.4659000002,
        0.00001404037053195,
        5.0,
        None,
    ]
    assert one("boolean", True, False, None) == [1, 0, None]
    assert one("varbinary", "0xABCdef", "0x", None) == ["0xabcdef", "0x", None]
    assert one("array(varchar)", ["a", "ü"], []) == ['["a","ü"]', "[]"]
    assert one("map(varchar, bigint)", {"b": 1, "a": 2**70}) == ['{"b":1,"a":' + str(2**70) + "}"]
    assert one("varchar", "😀 ‮x", 'q"uo,te\r\n') == ["😀 ‮x", 'q"uo,te\r\n']


def test_timestamps_become_iso_8601_utc_in_every_form_dune_sends() -> None:
    assert one(
        "timestamp(3) with time zone",
        "2024-03-05 20:50:59.000 UTC",
        "2021-06-01T00:00:00Z",
        "2024-03-05 20:50:59",
        "2024-03-05 22:50:59.5+02:00",
        None,
    ) == [
        "2024-03-05T20:50:59.000Z",
        "2021-06-01T00:00:00.000Z",
        "2024-03-05T20:50:59.000Z",
        "2024-03-05T20:50:59.500Z",
        None,
    ]
    assert one("date", "2021-06-01", "2021-06-07 00:00:00.000 UTC") == [
        "2021-06-01T00:00:00.000Z",
        "2021-06-07T00:00:00.000Z",
    ]
    assert one("timestamp(6)", "2024-03-05 20:50:59.123456 UTC") == ["2024-03-05T20:50:59.123456Z"]


def test_values_that_contradict_the_type_are_kept_as_text_and_counted() -> None:
    column = Column("n", "bigint", Kind.INTEGER)
    page = normalize_rows([{"n": "12"}, {"n": "twelve"}, {"n": 1.5}, {"n": None}], [column])
    assert page.values[0] == [12, "twelve", "1.5", None]
    assert page.mismatches == {"n": 2}
    ts = normalize_rows([{"t": "yesterday"}], [Column("t", "timestamp", Kind.TIMESTAMP)])
    assert ts.values[0] == ["yesterday"] and ts.mismatches == {"t": 1}
    # pandas reads "-7" as the year -7, which Python cannot format: text, not a failed load
    year = normalize_rows([{"t": "-7"}], [Column("t", "timestamp", Kind.TIMESTAMP)])
    assert year.values[0] == ["-7"] and year.mismatches == {"t": 1}


def test_numbers_too_large_for_their_sqlite_storage_are_flagged_not_kept_as_text() -> None:
    """SQLite would store ``str(2**70)`` in an INTEGER column as an approximate REAL, so
    these are counted apart (the loader refuses the result) instead of kept as text."""
    columns = columns_from_metadata(["n", "b", "d"], ["bigint", "boolean", "double"])
    page = normalize_rows(
        [
            {"n": 2**63, "b": 2**70, "d": 10**400},
            {"n": "-9223372036854775809", "b": "2", "d": "1e400"},
            {"n": 1e19, "b": True, "d": "-Infinity"},
        ],
        columns,
    )
    assert page.out_of_range == {"n": (3, 2**63), "b": (1, 2**70), "d": (2, 10**400)}
    assert page.values == [[None, None, None], [None, "2", 1], [None, None, float("-inf")]]
    assert page.mismatches == {"b": 1}


def test_null_is_null_in_every_type() -> None:
    types = [
        "bigint",
        "uint256",
        "double",
        "boolean",
        "timestamp(3) with time zone",
        "date",
        "varbinary",
        "array(bigint)",
        "json",
        "varchar",
        "geometry",
        "time",
    ]
    columns = columns_from_metadata([f"c{i}" for i in range(len(types))], types)
    page = normalize_rows([{}], columns)
    assert [v[0] for v in page.values] == [None] * len(types)
    assert page.mismatches == {}


def test_rows_are_read_by_name_in_query_order_not_key_order() -> None:
    columns = columns_from_metadata(["ct", "TableName"], ["bigint", "varchar"])
    page = normalize_rows([{"TableName": "t", "ct": 1}], columns)
    assert page.rows() == [(1, "t")]


def test_pandas_missing_values_never_become_strings() -> None:
    """The trap: NaN, NaT and pd.NA in a frame must reach SQLite as NULL."""
    frame = pd.DataFrame(
        {
            "f": pd.Series([1.5, np.nan], dtype="float64"),
            "t": pd.Series([pd.Timestamp("2024-01-01"), pd.NaT]),
            "i": pd.Series([1, pd.NA], dtype="Int64"),
            "s": pd.Series(["x", None], dtype=object),
        }
    )
    records = frame_records(frame)
    assert records[1] == (None, None, None, None)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (f REAL, t TEXT, i INTEGER, s TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", records)
    stored = conn.execute("SELECT typeof(f), t, typeof(i), typeof(s) FROM t").fetchall()
    # numpy scalars would be stored as BLOBs and timestamps as driver-specific text
    assert stored == [
        ("real", "2024-01-01T00:00:00.000Z", "integer", "text"),
        ("null", None, "null", "null"),
    ]


def test_to_frame_keeps_exact_values_and_nulls() -> None:
    columns = columns_from_metadata(["n", "x"], ["bigint", "double"])
    frame = normalize_rows([{"n": 2**62 + 1, "x": None}], columns).to_frame()
    assert list(frame.columns) == ["n", "x"]
    assert frame["n"].iloc[0] == 2**62 + 1 and frame["x"].iloc[0] is None
    assert frame_records(frame) == [(2**62 + 1, None)]


def test_column_names_and_types_must_match_in_length() -> None:
    with pytest.raises(ValueError, match="2 column names but 1 column types"):
        columns_from_metadata(["a", "b"], ["bigint"])


# -- whole-column conversion (issue 6): the fast path must change no value ------------------

_WELL_FORMED = {
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "uint256": st.integers(0, 2**256 - 1).map(str),
    "decimal(38,18)": st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    "double": st.floats(allow_nan=False) | st.integers(-(2**60), 2**60),
    "boolean": st.booleans(),
    "varchar": st.text(max_size=8),
    "varbinary": st.binary(max_size=12).map(lambda b: "0x" + b.hex()),
    "timestamp(3) with time zone": st.datetimes().map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond // 1000:03d} UTC"
    ),
}
_ODD = st.sampled_from(
    [
        "",
        " 12 ",
        "-7",
        "1e5",
        "١٢٣",
        "12\n34",
        "0xABcd",
        "0X12",
        "0xzz",
        "abcd-ef-gh ij:kl:mn.opq UTC",
        "2024-03-05 20:50:59.000 UTC\n",
        "2024-03-05T20:50:59Z",
        "true",
        "NaN",
        2**64,
        -(2**63) - 1,
        1.5,
        float("inf"),
        True,
        0,
        [1, 2],
        {"a": 1},
    ]
)


@pytest.mark.parametrize("dune_type", sorted(_WELL_FORMED))
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_converting_a_whole_column_gives_what_value_by_value_gives(
    dune_type: str, data: st.DataObject
) -> None:
    (column,) = columns_from_metadata(["c"], [dune_type])
    value = _WELL_FORMED[dune_type]
    raw = data.draw(
        st.lists(st.none() | value | (value if data.draw(st.booleans()) else _ODD), max_size=30)
    )
    assert convert_column(list(raw), column) == _convert_each(list(raw), column)


def test_uniform_columns_take_the_fast_path_and_keep_nulls_in_place() -> None:
    column = Column("t", "timestamp(3) with time zone", Kind.TIMESTAMP)
    raw = ["2024-03-05 20:50:59.000 UTC", None, "2024-12-31 23:59:59.999 UTC"]
    assert _BULK[Kind.TIMESTAMP](raw, column) == [
        "2024-03-05T20:50:59.000Z",
        None,
        "2024-12-31T23:59:59.999Z",
    ]
    hex_column = Column("h", "varbinary", Kind.HEX)
    assert _BULK[Kind.HEX](["0xAB", None, "0xcd"], hex_column) == ["0xab", None, "0xcd"]
    assert _BULK[Kind.HEX](["0xAB", "0xc\nd"], hex_column) is None  # a newline inside a value


def test_a_timestamp_shaped_value_that_is_not_one_is_kept_as_text_and_counted() -> None:
    # The fast path once accepted any 27 characters with "." and " UTC" in place.
    column = Column("t", "timestamp(3) with time zone", Kind.TIMESTAMP)
    page = normalize_rows([{"t": "abcd-ef-gh ij:kl:mn.opq UTC"}], [column])
    assert page.values[0] == ["abcd-ef-gh ij:kl:mn.opq UTC"]
    assert page.mismatches == {"t": 1}
