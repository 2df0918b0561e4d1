"""Hostile values over a real run: wrong JSON types and numbers too large for SQLite.

Emulator over loopback -> client -> normaliser -> loader. Each case has one defined
outcome (``README-hostile.md``): it loads with exactly the value and ``typeof`` asserted
here, or the query fails with a ``LoadError`` naming it while every table stays exactly
as it was (the ledger gains one ``failed`` row). ``tests/store/test_normalize.py`` covers
the pure conversions; these check what SQLite actually stores.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator

from .helpers import (
    assert_refused,
    ledger,
    load_then_refuse,
    run,
    serve,
    stored,
    tables,
)

# -- wrong JSON types for the declared column type ------------------------------------------

# column: (Dune type, wire value, stored value, SQLite typeof, counted as a mismatch)
WRONG_TYPES: dict[str, tuple[str, Any, Any, str, bool]] = {
    "bigint_digits": ("bigint", "12", 12, "integer", False),
    "bigint_word": ("bigint", "twelve", "twelve", "text", True),
    "bigint_fraction": ("bigint", 1.5, 1.5, "real", True),  # SQLite affinity: REAL
    "bigint_bool": ("bigint", True, "true", "text", True),
    "bigint_object": ("bigint", {"a": 1}, '{"a":1}', "text", True),
    "bigint_list": ("bigint", [1, 2], "[1,2]", "text", True),
    "varchar_int": ("varchar", 5, "5", "text", False),
    "varchar_float": ("varchar", 1.5, "1.5", "text", False),
    "varchar_bool": ("varchar", False, "false", "text", False),
    "varchar_object": ("varchar", {"b": [1, None]}, '{"b":[1,null]}', "text", False),
    "double_text": ("double", "2.5", 2.5, "real", False),
    "double_int": ("double", 7, 7.0, "real", False),
    "double_word": ("double", "abc", "abc", "text", True),
    "double_object": ("double", {"a": 1}, '{"a":1}', "text", True),
    "double_bool": ("double", True, "true", "text", True),
    "uint256_bool": ("uint256", True, "true", "text", True),
    "uint256_number": ("uint256", 12, "12", "text", False),
    "uint256_hex": ("uint256", "0x10", "0x10", "text", True),
    "uint256_object": ("uint256", {"a": 1}, '{"a":1}', "text", True),
    "boolean_text": ("boolean", "true", 1, "integer", False),
    "boolean_two": ("boolean", 2, 2, "integer", True),
    "boolean_word": ("boolean", "yes", "yes", "text", True),
    "varbinary_number": ("varbinary", 5, "5", "text", True),
    "varbinary_not_hex": ("varbinary", "0xZZ", "0xZZ", "text", True),
    "timestamp_number": ("timestamp(3) with time zone", 5, "5", "text", True),
    "timestamp_word": ("timestamp(3) with time zone", "yesterday", "yesterday", "text", True),
    "json_number": ("json", 5, "5", "text", False),
}


def test_wrong_json_types_are_stored_as_received_and_counted(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    names = list(WRONG_TYPES)
    serve(
        emulator,
        names,
        [t for t, *_ in WRONG_TYPES.values()],
        [{n: case[1] for n, case in WRONG_TYPES.items()}],
    )

    result = run(client, db_path)

    assert result.outcome == "loaded", result.error
    assert stored(db_path, names) == [{n: (c[2], c[3]) for n, c in WRONG_TYPES.items()}]
    ((status, rows, mismatches, error),) = ledger(db_path)
    assert (status, rows, error) == ("loaded", 1, None)
    assert json.loads(mismatches) == {n: 1 for n, c in WRONG_TYPES.items() if c[4]}


# -- values too large ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dune_type", "value", "shown"),
    [
        ("bigint", 2**63, "9223372036854775808"),
        ("bigint", -(2**63) - 1, "-9223372036854775809"),
        ("bigint", "99999999999999999999", "99999999999999999999"),
        ("bigint", 1e20, "1E+20"),
        ("boolean", 2**70, "1180591620717411303424"),
        ("double", 10**400, "10000000000000000000...(401 characters)"),
        ("double", "1e400", "1e400"),
    ],
)
def test_a_number_too_large_for_its_column_is_refused_and_nothing_changes(
    emulator: DuneEmulator,
    client: DuneClient,
    db_path: str,
    dune_type: str,
    value: Any,
    shown: str,
) -> None:
    serve(emulator, ["k", "v"], ["bigint", dune_type], [{"k": 1, "v": 0}])

    result, before = load_then_refuse(emulator, client, db_path, [{"k": 2, "v": value}])

    assert_refused(
        result, "LoadError", f"column 'v' ({dune_type}): 1 value(s) too large", f"e.g. {shown}"
    )
    assert tables(db_path) == before
    assert [r[0] for r in ledger(db_path)] == ["loaded", "failed"]


def test_huge_strings_load_exactly(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    big = "Ω" * 2_000_000 + "end"
    serve(emulator, ["big"], ["varchar"], [{"big": big}])

    result = run(client, db_path)

    assert result.outcome == "loaded", result.error
    assert stored(db_path, ["big"]) == [{"big": (big, "text")}]
