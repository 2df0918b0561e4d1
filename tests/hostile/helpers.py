"""Shared steps of the hostile-data tests: serve rows, run one query, read what SQLite kept."""

from __future__ import annotations

import sqlite3
from typing import Any

from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator
from downstream.pipeline import QueryResult, sync_query
from downstream.spec import QuerySpec

QID = 700001
TABLE = "hostile"


def serve(emulator: DuneEmulator, names: list[str], types: list[str], rows: list[Any]) -> None:
    """Query ``QID`` returns these rows (in Dune's wire encoding), executing at once."""
    emulator.add_dataset(QID, rows, column_names=names, column_types=types)
    emulator.set_script(QID, [], "completed")


def spec(**kw: Any) -> QuerySpec:
    return QuerySpec.model_validate({"name": TABLE, "query_id": QID, "max_age_hours": 0, **kw})


def run(client: DuneClient, db_path: str, **kw: Any) -> QueryResult:
    return sync_query(client, db_path, spec(**kw))


def stored(db_path: str, columns: list[str]) -> list[dict[str, tuple[Any, str]]]:
    """Every row of the table as {column: (value, typeof)}, in rowid order."""
    with sqlite3.connect(db_path) as conn:
        select = ", ".join(f'"{c.replace(chr(34), chr(34) * 2)}"' for c in columns)
        types = ", ".join(f'typeof("{c.replace(chr(34), chr(34) * 2)}")' for c in columns)
        out = []
        for row in conn.execute(f"SELECT {select}, {types} FROM {TABLE} ORDER BY rowid"):
            n = len(columns)
            out.append({c: (row[i], row[n + i]) for i, c in enumerate(columns)})
        return out


def table_columns(db_path: str) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")]


def tables(db_path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the ledger, with every row: the state a refused load must keep."""
    with sqlite3.connect(db_path) as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] != "dune_execution"
        ]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def ledger(db_path: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT status, row_count, type_mismatches, error FROM dune_execution "
            "ORDER BY loaded_at"
        ).fetchall()


def assert_refused(result: QueryResult, error_type: str, *needles: str) -> None:
    assert result.outcome == "failed", result
    assert result.error_type == error_type, result.error
    assert result.error is not None
    for needle in (f"{TABLE}:" if error_type == "LoadError" else f"query {QID}", *needles):
        assert needle in result.error, result.error


def load_then_refuse(
    emulator: DuneEmulator, client: DuneClient, db_path: str, hostile: list[dict[str, Any]]
) -> tuple[QueryResult, dict[str, list[tuple[Any, ...]]]]:
    """Load one good row, then run again on ``hostile`` rows; returns the second result
    and the tables as the first load left them."""
    assert run(client, db_path).outcome == "loaded"
    before = tables(db_path)
    emulator.replace_rows(QID, hostile)
    return run(client, db_path), before
