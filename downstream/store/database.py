"""Opening the bronze database and keeping its own tables in shape.

One SQLite file (default ``data/bronze.db``, env ``BRONZE_DB_PATH``) in WAL mode, with a
busy timeout and foreign keys on. ``ensure_schema`` is idempotent and runs on every open.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

DEFAULT_DB_PATH = "data/bronze.db"
BUSY_TIMEOUT_MS = 60_000

LEDGER = "dune_execution"
METRICS = "digital_asset_metric"
SERIES = "recorded_raw_metric"
# Lineage columns on every query table; a Dune column may not use these names.
EXECUTION_ID, LOADED_AT, ROW_HASH = "_execution_id", "_loaded_at", "_row_hash"
LINEAGE_COLUMNS = (EXECUTION_ID, LOADED_AT, ROW_HASH)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    execution_id        TEXT PRIMARY KEY,
    query_name          TEXT NOT NULL,
    query_id            INTEGER NOT NULL,
    parameters          TEXT NOT NULL,      -- JSON object, as sent to Dune
    source              TEXT NOT NULL CHECK (source IN ('latest', 'executed')),
    state               TEXT,               -- Dune's final state
    submitted_at        TEXT,
    execution_ended_at  TEXT,
    row_count           INTEGER,
    column_names        TEXT,               -- JSON array
    column_types        TEXT,               -- JSON array
    status              TEXT NOT NULL CHECK (status IN ('loaded', 'skipped', 'failed', 'partial')),
    error               TEXT,
    loaded_at           TEXT NOT NULL,
    flow_run_id         TEXT,
    rows_new            INTEGER,
    rows_updated        INTEGER,
    rows_removed        INTEGER,
    duplicate_keys      INTEGER,
    type_mismatches     TEXT,               -- JSON {{column: count}} of values kept as text
    schema_changes      TEXT,               -- JSON list of added columns and type changes
    execution_cost_credits REAL
);
CREATE INDEX IF NOT EXISTS {LEDGER}_by_query ON {LEDGER} (query_name, loaded_at);

CREATE TABLE IF NOT EXISTS {METRICS} (
    uuid          TEXT PRIMARY KEY,         -- uuid5 of asset + metric: stable everywhere
    asset         TEXT NOT NULL,
    metric        TEXT NOT NULL,
    unit          TEXT,
    query_name    TEXT NOT NULL,
    query_id      INTEGER NOT NULL,
    value_column  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (asset, metric)
);

CREATE TABLE IF NOT EXISTS {SERIES} (
    metric_uuid   TEXT NOT NULL REFERENCES {METRICS} (uuid),
    record_date   TEXT NOT NULL,            -- ISO-8601 UTC
    value         REAL,
    execution_id  TEXT NOT NULL,
    loaded_at     TEXT NOT NULL,
    PRIMARY KEY (metric_uuid, record_date)
);
"""


def db_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$BRONZE_DB_PATH``, else ``data/bronze.db``."""
    return Path(explicit or os.environ.get("BRONZE_DB_PATH") or DEFAULT_DB_PATH)


def open_database(path: str | os.PathLike[str]) -> sqlite_utils.Database:
    """Open (creating the file and its folder) with WAL, busy timeout and foreign keys."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is safe against application crashes (the WAL is replayed).
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    ensure_schema(db)
    return db


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create Downstream's own tables if missing; safe to run every time."""
    with db.atomic():
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(identifier: str) -> str:
    """An identifier as SQLite compares it: case-insensitive for ASCII letters only.

    ``A`` and ``a`` are one column to SQLite; ``É`` and ``é``, or ``ß`` and ``ss``, are two
    (``str.casefold`` would merge them and refuse a result SQLite can store).
    """
    return identifier.translate(_ASCII_LOWER)


def quote(identifier: str) -> str:
    """An SQL identifier, quoted so any name is just a name (``x"; drop table y`` too)."""
    return '"' + identifier.replace('"', '""') + '"'


def table_columns(db: sqlite_utils.Database, table: str) -> dict[str, str]:
    """Existing columns of ``table`` and their declared types (empty if no table)."""
    if not db[table].exists():
        return {}
    return {c.name: (c.type or "").upper() for c in db[table].columns}


def max_columns(db: sqlite_utils.Database) -> int:
    """SQLite's compile-time limit on columns per table (2000 unless built otherwise)."""
    getlimit = getattr(db.conn, "getlimit", None)
    return int(getlimit(sqlite3.SQLITE_LIMIT_COLUMN)) if getlimit else 2000
