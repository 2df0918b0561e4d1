"""Reading the ledger and the tables to decide what a run needs to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlite_utils

from downstream.dune.params import format_datetime
from downstream.spec import QuerySpec
from downstream.store.database import LEDGER, fold, quote, table_columns


def is_loaded(db: sqlite_utils.Database, execution_id: str, query_name: str) -> bool:
    """Whether this execution is already in this query's table (so skip downloading it)."""
    row = db.execute(
        f"SELECT status FROM {LEDGER} WHERE execution_id = ? AND query_name = ?",
        [execution_id, query_name],
    ).fetchone()
    return bool(row) and row[0] in ("loaded", "partial") and db[query_name].exists()


def read_watermark(db: sqlite_utils.Database, spec: QuerySpec) -> object | None:
    """``max(column)`` of the incremental column, or None when there is no data yet."""
    if spec.incremental is None:
        return None
    columns = {fold(c) for c in table_columns(db, spec.name)}
    if fold(spec.incremental.column) not in columns:
        return None
    row = db.execute(
        f"SELECT max({quote(spec.incremental.column)}) FROM {quote(spec.name)}"
    ).fetchone()
    return row[0] if row else None


def watermark_parameter(spec: QuerySpec, watermark: object | None) -> str | int | float | None:
    """The incremental parameter value: the watermark minus the lookback, in Dune's format.

    Temporal watermarks become ``YYYY-MM-DD HH:MM:SS`` (UTC); numeric ones (block numbers)
    are passed as they are, without a lookback.
    """
    if spec.incremental is None or watermark is None:
        return None
    if isinstance(watermark, int | float) and not isinstance(watermark, bool):
        return watermark
    text = str(watermark).strip()
    try:
        moment = datetime.fromisoformat(text.replace(" UTC", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment - timedelta(days=spec.incremental.lookback_days))
