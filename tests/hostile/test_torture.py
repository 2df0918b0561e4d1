"""The bundled typing torture set (``downstream/emulator/data/9000001``) round-trips exactly.

Client over loopback -> normaliser -> loader, and every one of the 8 x 17 stored values is
written out below, by hand from ``rows.json`` and the rules in ``downstream/normalize.py``:
exact integers and decimal text, doubles to the last bit, lowercase hex, timestamps as
ISO-8601 UTC, booleans as 1/0, arrays and maps as compact JSON (map keys in the byte order
Dune sends them), text with every quote, comma, tab and line ending kept.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from downstream.dune import DuneClient
from downstream.pipeline import sync_query
from downstream.spec import QuerySpec

COLUMNS = {
    # name: SQLite storage class the column is declared with
    "row_id": "integer",
    "label": "text",
    "u256": "text",
    "i256": "text",
    "big": "integer",
    "amount_dec": "text",
    "price": "real",
    "raw": "text",
    "block_time": "text",
    "block_date": "text",
    "flag": "integer",
    "tags": "text",
    "meta": "text",
    "note": "text",
    "Token Symbol": "text",
    "TableName": "text",
    "value.usd": "real",
}
U256_MAX = "115792089237316195423570985008687907853269984665640564039457584007913129639935"
I256_MAX = "57896044618658097711785492504343953926634992332820282019728792003956564819967"
I256_MIN = "-57896044618658097711785492504343953926634992332820282019728792003956564819968"
EXPECTED: list[tuple[Any, ...]] = [
    (
        1, "basics", "0", "0", 0, "3.1415926535", 1532.0712, "0x",
        "2024-03-05T20:50:59.000Z", "2021-06-01T00:00:00.000Z", 1, '["WETH","USDC"]',
        '{"Zone":"eu","chain":"ethereum"}', "plain text", "WETH", "dex.trades", 1532.0712,
    ),
    (
        2, "maximums", U256_MAX, I256_MAX, 9223372036854775807,
        "12345678901234567890.123456789012345678", 0.30000000000000004, "0x00",
        "1970-01-01T00:00:00.000Z", "2021-06-07T00:00:00.000Z", 0, "[]", "{}",
        "emoji 🚀🦄, CJK 中文字符, RTL مرحبا بالعالم", "🦄 UNI", "Uniswap", 4474223.0,
    ),
    (
        3, "minimums", "1", I256_MIN, -9223372036854775808, "-0.000000000000000001",
        1.7976931348623157e308, "0x88bf5a2e82510847e5dcbf33f44a9f611f1c1df5",
        "2038-01-19T03:14:08.123Z", "2021-06-01T00:00:00.000Z", 1, '["a,b","say \\"hi\\""]',
        '{"B":"3","a":"1","b":"2"}', "quotes \"double\" and 'single', commas a,b,c", "USD,C",
        'say "hi"', 5e-324,
    ),
    (
        4, "beyond 2^53", "9007199254740993", "-1", 9007199254740993, "0", 1e-300,
        "0x5f2c0e8b1d3a47a9c2e6f0b9d8a7c6e5f4b3a2918273645546372819a0b1c2d3",
        "2024-02-29T23:59:59.999Z", "2024-02-29T00:00:00.000Z", 0, '["x"]', '{"k":""}',
        "line one\nline two", "DAI", "", 0.1,
    ),
    (
        5, "long digits", "1" + "0" * 77, "-1" + "0" * 76, -9007199254740993, "-42.5",
        123456789.12345679, "0x" + "ab" * 100, "2022-09-15T06:42:42.000Z",
        "2022-09-15T00:00:00.000Z", 1, '["中文","🚀"]', '{"emoji":"🚀","rtl":"שלום"}',
        "windows\r\nline end", "", "TableName", -0.5,
    ),
    (
        6, "whitespace", U256_MAX[:-1] + "4", I256_MAX[:-1] + "6", 9223372036854775806,
        "1.000000000000000000", 2.5e-7, "0x0a1b2c3d", "2026-11-30T23:59:59.000Z",
        "2026-11-30T00:00:00.000Z", 0, '[" padded ",""]', '{"space key":" v "}',
        " leading space and trailing tab\t", "  ", "tab\there", 1e21,
    ),
    (None,) * 17,
    (
        8, "some nulls", None, "-5", None, None, None, None, "2024-03-05T20:50:59.000Z",
        None, None, None, None, None, "WBTC", None, 2600.0,
    ),
]  # fmt: skip


def test_the_torture_set_round_trips_exactly(client: DuneClient, db_path: str) -> None:
    spec = QuerySpec(name="typing_torture", query_id=9000001)

    result = sync_query(client, db_path, spec)

    assert (result.outcome, result.rows) == ("loaded", 8), result.error
    names = list(COLUMNS)
    quoted = [f'"{n}"' for n in names]
    with sqlite3.connect(db_path) as conn:
        declared = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(typing_torture)")}
        values = conn.execute(
            f"SELECT {', '.join(quoted)} FROM typing_torture ORDER BY rowid"
        ).fetchall()
        typeofs = ", ".join(f"typeof({q})" for q in quoted)
        types = conn.execute(f"SELECT {typeofs} FROM typing_torture ORDER BY rowid").fetchall()
        ledger = conn.execute(
            "SELECT status, row_count, type_mismatches, column_names FROM dune_execution"
        ).fetchall()

    assert {n: declared[n] for n in names} == {n: t.upper() for n, t in COLUMNS.items()}
    assert values == EXPECTED
    assert types == [
        tuple("null" if v is None else COLUMNS[n] for n, v in zip(names, row, strict=True))
        for row in EXPECTED
    ]
    ((status, rows, mismatches, column_names),) = ledger
    assert (status, rows, mismatches) == ("loaded", 8, None)
    assert json.loads(column_names) == names
