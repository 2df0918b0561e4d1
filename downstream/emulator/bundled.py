"""Generator for the datasets shipped in ``data/`` (run ``python -m downstream.emulator.bundled``).

The files are committed so the emulator starts without generating anything; a
test regenerates them in memory and checks the shipped copies still match.

* 1463956 "ETH net emission": one row per day, 2022-09-15 .. 2026-11-30, with a
  ``start_date`` parameter filtering ``day >= start_date``.
* 9000001 "typing torture": every awkward value the spec lists.
* 9000002 "empty result": zero rows, columns still present.
"""

from __future__ import annotations

import random
import sys
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

DATA_DIR = Path(__file__).parent / "data"

ETH_QUERY_ID = 1463956
TORTURE_QUERY_ID = 9000001
EMPTY_QUERY_ID = 9000002

# (date, typical ETH burned per day): eyeballed from the fee market's history
# (FTX in Nov 2022, memecoins in May 2023, Dencun blobs from 13 March 2024).
_BURN_ANCHORS: tuple[tuple[date, float], ...] = (
    (date(2022, 9, 15), 1500.0),
    (date(2022, 10, 15), 2800.0),
    (date(2022, 11, 10), 3800.0),
    (date(2022, 12, 15), 2200.0),
    (date(2023, 1, 15), 2900.0),
    (date(2023, 2, 15), 3300.0),
    (date(2023, 3, 15), 3000.0),
    (date(2023, 4, 15), 3400.0),
    (date(2023, 5, 8), 6200.0),
    (date(2023, 6, 15), 2800.0),
    (date(2023, 7, 15), 2900.0),
    (date(2023, 8, 15), 2400.0),
    (date(2023, 9, 15), 2000.0),
    (date(2023, 10, 15), 1900.0),
    (date(2023, 11, 15), 3600.0),
    (date(2023, 12, 15), 3500.0),
    (date(2024, 1, 15), 2700.0),
    (date(2024, 2, 15), 3100.0),
    (date(2024, 3, 12), 3800.0),
    (date(2024, 3, 14), 1500.0),
    (date(2024, 5, 15), 900.0),
    (date(2024, 8, 15), 350.0),
    (date(2024, 9, 15), 200.0),
    (date(2024, 12, 15), 900.0),
    (date(2025, 3, 15), 120.0),
    (date(2025, 8, 15), 300.0),
    (date(2026, 1, 15), 180.0),
    (date(2026, 6, 15), 250.0),
    (date(2026, 11, 30), 150.0),
)


def _burn_level(day: date) -> float:
    for (d0, v0), (d1, v1) in pairwise(_BURN_ANCHORS):
        if d0 <= day <= d1:
            return v0 + (v1 - v0) * (day - d0).days / max(1, (d1 - d0).days)
    return _BURN_ANCHORS[-1][1]


def eth_net_emission_rows() -> list[dict[str, Any]]:
    """Daily net issuance (issued minus burned) and its running total, deterministic."""
    rng = random.Random(ETH_QUERY_ID)
    first, last = date(2022, 9, 15), date(2026, 11, 30)
    span = (last - first).days
    rows: list[dict[str, Any]] = []
    total = 0.0
    for n in range(span + 1):
        day = first + timedelta(days=n)
        issued = 2600.0 + 100.0 * n / span + rng.gauss(0.0, 12.0)
        burned = _burn_level(day) * rng.lognormvariate(0.0, 0.25)
        if rng.random() < 0.02:
            burned *= 2.5
        net = issued - burned
        total += net
        rows.append(
            {
                "day": f"{day.isoformat()} 00:00:00.000 UTC",
                "net_emission_eth": net,
                "total_net_emission_eth": total,
            }
        )
    return rows


def eth_net_emission_query() -> dict[str, Any]:
    return {
        "query_id": ETH_QUERY_ID,
        "name": "ETH net emission",
        "parameters": [{"key": "start_date", "type": "datetime", "value": "2022-09-15 00:00:00"}],
        "column_names": ["day", "net_emission_eth", "total_net_emission_eth"],
        "column_types": ["timestamp(3) with time zone", "double", "double"],
        "filters": [{"parameter": "start_date", "column": "day", "op": ">="}],
        "seed_execution": {"age_hours": 2, "parameters": {}},
    }


TORTURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row_id", "bigint"),
    ("label", "varchar"),
    ("u256", "uint256"),
    ("i256", "int256"),
    ("big", "bigint"),
    ("amount_dec", "decimal(38,18)"),
    ("price", "double"),
    ("raw", "varbinary"),
    ("block_time", "timestamp(3) with time zone"),
    ("block_date", "date"),
    ("flag", "boolean"),
    ("tags", "array(varchar)"),
    ("meta", "map(varchar, varchar)"),
    ("note", "varchar"),
    ("Token Symbol", "varchar"),
    ("TableName", "varchar"),
    ("value.usd", "double"),
)

U256_MAX = str(2**256 - 1)
I256_MIN = str(-(2**255))
I256_MAX = str(2**255 - 1)


def torture_rows() -> list[dict[str, Any]]:
    """Awkward values, one concern per row; row 7 is entirely NULL."""
    names = [name for name, _ in TORTURE_COLUMNS]
    # fmt: off
    rows: list[dict[str, Any]] = [
        {
            "row_id": 1, "label": "basics", "u256": "0", "i256": "0", "big": 0,
            "amount_dec": "3.1415926535", "price": 1532.0712, "raw": "0x",
            "block_time": "2024-03-05 20:50:59.000 UTC", "block_date": "2021-06-01T00:00:00Z",
            "flag": True, "tags": ["WETH", "USDC"], "meta": {"chain": "ethereum", "Zone": "eu"},
            "note": "plain text", "Token Symbol": "WETH", "TableName": "dex.trades",
            "value.usd": 1532.0712,
        },
        {
            "row_id": 2, "label": "maximums", "u256": U256_MAX, "i256": I256_MAX,
            "big": 2**63 - 1, "amount_dec": "12345678901234567890.123456789012345678",
            "price": 0.30000000000000004, "raw": "0x00",
            "block_time": "1970-01-01 00:00:00.000 UTC",
            "block_date": "2021-06-07 00:00:00.000 UTC", "flag": False, "tags": [],
            "meta": {}, "note": "emoji 🚀🦄, CJK 中文字符, RTL مرحبا بالعالم",
            "Token Symbol": "🦄 UNI", "TableName": "Uniswap", "value.usd": 4474223.0,
        },
        {
            "row_id": 3, "label": "minimums", "u256": "1", "i256": I256_MIN,
            "big": -(2**63), "amount_dec": "-0.000000000000000001",
            "price": 1.7976931348623157e308, "raw": "0x88bf5a2e82510847e5dcbf33f44a9f611f1c1df5",
            "block_time": "2038-01-19 03:14:08.123 UTC", "block_date": "2021-06-01T00:00:00Z",
            "flag": True, "tags": ["a,b", 'say "hi"'], "meta": {"b": "2", "a": "1", "B": "3"},
            "note": "quotes \"double\" and 'single', commas a,b,c", "Token Symbol": "USD,C",
            "TableName": 'say "hi"', "value.usd": 5e-324,
        },
        {
            "row_id": 4, "label": "beyond 2^53", "u256": "9007199254740993", "i256": "-1",
            "big": 9007199254740993, "amount_dec": "0", "price": 1e-300,
            "raw": "0x5f2c0e8b1d3a47a9c2e6f0b9d8a7c6e5f4b3a2918273645546372819a0b1c2d3",
            "block_time": "2024-02-29 23:59:59.999 UTC",
            "block_date": "2024-02-29 00:00:00.000 UTC", "flag": False, "tags": ["x"],
            "meta": {"k": ""}, "note": "line one\nline two", "Token Symbol": "DAI",
            "TableName": "", "value.usd": 0.1,
        },
        {
            "row_id": 5, "label": "long digits", "u256": "1" + "0" * 77,
            "i256": "-1" + "0" * 76, "big": -9007199254740993, "amount_dec": "-42.5",
            "price": 123456789.12345679, "raw": "0x" + "ab" * 100,
            "block_time": "2022-09-15 06:42:42.000 UTC", "block_date": "2022-09-15T00:00:00Z",
            "flag": True, "tags": ["中文", "🚀"], "meta": {"emoji": "🚀", "rtl": "שלום"},
            "note": "windows\r\nline end", "Token Symbol": "", "TableName": "TableName",
            "value.usd": -0.5,
        },
        {
            "row_id": 6, "label": "whitespace", "u256": str(2**256 - 2),
            "i256": str(2**255 - 2),
            "big": 2**63 - 2, "amount_dec": "1.000000000000000000", "price": 2.5e-7,
            "raw": "0x0a1b2c3d", "block_time": "2026-11-30 23:59:59.000 UTC",
            "block_date": "2026-11-30 00:00:00.000 UTC", "flag": False,
            "tags": [" padded ", ""], "meta": {"space key": " v "},
            "note": " leading space and trailing tab\t", "Token Symbol": "  ",
            "TableName": "tab\there", "value.usd": 1e21,
        },
        dict.fromkeys(names),
        {
            "row_id": 8, "label": "some nulls", "u256": None, "i256": "-5", "big": None,
            "amount_dec": None, "price": None, "raw": None,
            "block_time": "2024-03-05 20:50:59.000 UTC", "block_date": None, "flag": None,
            "tags": None, "meta": None, "note": None, "Token Symbol": "WBTC",
            "TableName": None, "value.usd": 2600.0,
        },
    ]
    # fmt: on
    return [{name: row.get(name) for name in names} for row in rows]


def torture_query() -> dict[str, Any]:
    return {
        "query_id": TORTURE_QUERY_ID,
        "name": "typing torture",
        "parameters": [],
        "column_names": [name for name, _ in TORTURE_COLUMNS],
        "column_types": [kind for _, kind in TORTURE_COLUMNS],
        "seed_execution": {"age_hours": 2, "parameters": {}},
    }


def empty_query() -> dict[str, Any]:
    return {
        "query_id": EMPTY_QUERY_ID,
        "name": "empty result",
        "parameters": [],
        "column_names": ["block_time", "tx_hash", "amount_raw"],
        "column_types": ["timestamp(3) with time zone", "varbinary", "uint256"],
        "seed_execution": {"age_hours": 2, "parameters": {}},
    }


def bundled_files() -> dict[str, bytes]:
    """Relative path -> file content for everything under ``data/``."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    datasets = [
        (eth_net_emission_query(), eth_net_emission_rows()),
        (torture_query(), torture_rows()),
        (empty_query(), []),
    ]
    files: dict[str, bytes] = {}
    for query, rows in datasets:
        folder = str(query["query_id"])
        files[f"{folder}/query.json"] = orjson.dumps(query, option=option)
        lines = b",\n".join(orjson.dumps(row) for row in rows)
        files[f"{folder}/rows.json"] = b"[\n" + lines + b"\n]\n" if rows else b"[]\n"
    return files


def write(root: Path = DATA_DIR) -> None:
    for relative, content in bundled_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR)
