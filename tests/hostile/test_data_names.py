"""Hostile column names and shapes over a real run: Unicode, collisions, width, emptiness.

SQLite compares names case-insensitively for ASCII letters only, keeps every other
difference, and allows 2000 columns per table (Downstream's lineage columns included).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator
from downstream.errors import LoadError
from downstream.spec import QuerySpec
from downstream.store import ExecutionInfo, load_execution, open_database

from .helpers import (
    QID,
    TABLE,
    assert_refused,
    ledger,
    run,
    serve,
    stored,
    table_columns,
    tables,
)


@dataclass
class Meta:
    column_names: list[str]
    column_types: list[str]


@dataclass
class Page:
    """A result page as the loader sees it, for what needs no HTTP."""

    rows: list[dict[str, Any]]
    metadata: Meta


# -- strange Unicode ---------------------------------------------------------------------------

UNICODE_NAMES = ["🦄 emoji", "مرحبا", "\u00e9", "e\u0301", "É", "ß", "ss", "a\u202eb", "中文"]
UNICODE_VALUES = [
    "nul\x00inside",
    "\x00",
    "rtl \u202eoverride\u202c",
    "e\u0301 combining",
    "🦄🚀 emoji",
    "zero\u200bwidth",
    "\ufeffbom",
    "line\u2028sep",
    "中文字符",
]


def test_strange_unicode_in_names_and_values_loads_exactly(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    """NFC and NFD spellings, and letters that only Unicode folds (É/é, ß/ss), are
    different names to SQLite, so they stay different columns; nothing is normalised."""
    serve(
        emulator,
        UNICODE_NAMES,
        ["varchar"] * len(UNICODE_NAMES),
        [dict(zip(UNICODE_NAMES, UNICODE_VALUES, strict=True))],
    )

    result = run(client, db_path)

    assert result.outcome == "loaded", result.error
    assert table_columns(db_path)[: len(UNICODE_NAMES)] == UNICODE_NAMES
    assert stored(db_path, UNICODE_NAMES) == [
        {n: (v, "text") for n, v in zip(UNICODE_NAMES, UNICODE_VALUES, strict=True)}
    ]


# -- column names -------------------------------------------------------------------------------


def test_names_that_differ_only_in_quoting_or_spacing_stay_distinct(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    names = ['a"b', 'a""b', "a b", "a  b", "[a]", "`a`", "", "rowid", "select", "a;--"]
    serve(emulator, names, ["varchar"] * len(names), [{n: f"v{i}" for i, n in enumerate(names)}])

    result = run(client, db_path)

    assert result.outcome == "loaded", result.error
    assert table_columns(db_path)[: len(names)] == names
    assert stored(db_path, names) == [{n: (f"v{i}", "text") for i, n in enumerate(names)}]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["id", "ID"], "columns 'id' and 'ID' are the same name to SQLite"),
        (["id", "_EXECUTION_ID"], "column '_EXECUTION_ID' clashes with Downstream's lineage"),
        (["id", "_row_hash"], "column '_row_hash' clashes with Downstream's lineage"),
        (["id", "a\x00b"], "column 'a\\x00b' holds a NUL character"),
    ],
)
def test_names_sqlite_cannot_keep_apart_are_refused_and_nothing_changes(
    emulator: DuneEmulator, client: DuneClient, db_path: str, names: list[str], message: str
) -> None:
    serve(emulator, ["id"], ["bigint"], [{"id": 1}])
    assert run(client, db_path).outcome == "loaded"
    before = tables(db_path)
    serve(emulator, names, ["bigint", "varchar"], [{names[0]: 2, names[1]: "x"}])

    result = run(client, db_path)

    assert_refused(result, "LoadError", message)
    assert tables(db_path) == before


def test_a_name_that_only_unicode_folds_is_a_new_column_on_the_next_load(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    """Once crashed with ``sqlite3.OperationalError: table has no column named É``: the
    loader matched É to the existing é by ``casefold``, which SQLite does not do."""
    serve(emulator, ["k", "é"], ["bigint", "varchar"], [{"k": 1, "é": "small"}])
    assert run(client, db_path, primary_key=["k"]).outcome == "loaded"
    serve(emulator, ["k", "É"], ["bigint", "varchar"], [{"k": 2, "É": "capital"}])

    result = run(client, db_path, primary_key=["k"])

    assert result.outcome == "loaded", result.error
    assert stored(db_path, ["k", "é", "É"]) == [
        {"k": (1, "integer"), "é": ("small", "text"), "É": (None, "null")},
        {"k": (2, "integer"), "é": (None, "null"), "É": ("capital", "text")},
    ]


# -- width and emptiness ------------------------------------------------------------------------


def test_more_than_2000_columns_is_refused_before_anything_is_written(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    names = [f"c{i}" for i in range(2001)]
    serve(emulator, names, ["bigint"] * len(names), [dict.fromkeys(names, 1)])

    result = run(client, db_path)

    assert_refused(result, "LoadError", "the result has 2001 columns; SQLite allows 2000")
    assert tables(db_path) == {"digital_asset_metric": [], "recorded_raw_metric": []}
    assert [r[0] for r in ledger(db_path)] == ["failed"]


@pytest.mark.parametrize("rows", [[], [{}, {}]], ids=["no rows", "two empty rows"])
def test_a_result_without_columns_is_refused(
    emulator: DuneEmulator, client: DuneClient, db_path: str, rows: list[dict[str, Any]]
) -> None:
    serve(emulator, [], [], rows)

    result = run(client, db_path)

    assert_refused(result, "LoadError", "the result has no columns")
    assert tables(db_path) == {"digital_asset_metric": [], "recorded_raw_metric": []}


@pytest.mark.parametrize(
    ("mode", "rows_after"),
    [("upsert", [(1, "kept")]), ("replace", [])],
)
def test_an_empty_result_keeps_an_upserted_table_and_empties_a_replaced_one(
    emulator: DuneEmulator,
    client: DuneClient,
    db_path: str,
    mode: str,
    rows_after: list[tuple[Any, ...]],
) -> None:
    """``replace`` means "the table is the result": an empty result empties it."""
    serve(emulator, ["k", "v"], ["bigint", "varchar"], [{"k": 1, "v": "kept"}])
    assert run(client, db_path, mode=mode, primary_key=["k"]).outcome == "loaded"
    emulator.replace_rows(QID, [])

    result = run(client, db_path, mode=mode, primary_key=["k"])

    assert (result.outcome, result.rows) == ("loaded", 0)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute(f"SELECT k, v FROM {TABLE}").fetchall() == rows_after
    assert [r[:2] for r in ledger(db_path)] == [("loaded", 1), ("loaded", 0)]


def test_loader_width_limits_count_the_lineage_columns_the_table_really_has(
    tmp_path: Path,
) -> None:
    """Without a primary key a table has 3 lineage columns, with one 2; SQLite's 2000
    includes them. Columns a result dropped stay, so drift can also hit the limit."""

    def load(db: Any, names: list[str], eid: str, key: list[str] | None = None) -> str:
        s = QuerySpec(name="wide", query_id=1, primary_key=key)
        try:
            page = Page([dict.fromkeys(names, 1)], Meta(names, ["bigint"] * len(names)))
            load_execution(db, s, ExecutionInfo(eid, 1, {}, "executed"), [page])
        except LoadError as exc:
            return str(exc)
        return "loaded"

    cols = [f"c{i}" for i in range(1998)]
    assert load(open_database(tmp_path / "a.db"), cols[:1997], "E1") == "loaded"  # 1997 + 3
    assert load(open_database(tmp_path / "b.db"), cols, "E2", key=["c0"]) == "loaded"  # + 2
    assert "the result has 1998 columns" in load(open_database(tmp_path / "c.db"), cols, "E3")
    drift = open_database(tmp_path / "d.db")
    assert load(drift, cols[:1990], "E4", key=["c0"]) == "loaded"
    assert "the table has 1992 columns and this result adds 20" in load(
        drift, ["c0", *(f"new{i}" for i in range(20))], "E5", key=["c0"]
    )


def test_a_name_no_utf8_can_hold_is_refused_with_a_printable_message(tmp_path: Path) -> None:
    """The client turns lone surrogates into U+FFFD; a page from anywhere else that still
    holds one is refused (it once escaped as UnicodeEncodeError), and the message that
    quotes the name stays printable."""
    page = Page([{"ok": 1}], Meta(["ok", "bad\ud800\n"], ["bigint", "bigint"]))
    db = open_database(tmp_path / "bronze.db")
    s = QuerySpec(name="q", query_id=1)
    with pytest.raises(LoadError) as info:
        load_execution(db, s, ExecutionInfo("E1", 1, {}, "executed"), [page])
    message = str(info.value)
    assert message.startswith("q: column 'bad\\ud800\\n' is not valid Unicode")
    assert message.isprintable()
    assert not db["q"].exists()
