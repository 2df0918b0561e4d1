"""Load one Dune execution into the bronze database: atomic, idempotent, streaming.

Pages are written as they arrive inside one ``BEGIN IMMEDIATE`` transaction that also
covers the metric tables and the ledger row, so every table becomes visible in one commit:
a crash or an error at any moment leaves them exactly as they were (SQLite rolls back),
and memory stays bounded by one page. (The alternative, a staging table swapped in at the
end, writes every row twice: 1.7-2.1x the time and twice the disk at 1M rows, measured by
``bench/load_strategy.py``, README "Performance".)

Upserts update rows by key and insert new ones; ``replace`` removes, in the same commit,
every row the new result did not deliver. Lineage: ``_execution_id`` is the last execution
that delivered a row, ``_loaded_at`` when its values last changed.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import orjson
import sqlite_utils

from downstream.errors import LoadError
from downstream.normalize import (
    Column,
    NormalizedPage,
    columns_from_metadata,
    normalize_rows,
    row_hashes,
)
from downstream.spec import QuerySpec
from downstream.store.database import (
    EXECUTION_ID,
    LEDGER,
    LINEAGE_COLUMNS,
    LOADED_AT,
    METRICS,
    ROW_HASH,
    SERIES,
    fold,
    max_columns,
    quote,
    table_columns,
)

log = logging.getLogger("downstream.store")

# uuid5 namespace for digital_asset_metric.uuid: the same asset/metric gets the same uuid
# in every database, so series can be joined across installations.
METRIC_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://downstream.dev/digital-asset-metric")


class PageMetadata(Protocol):
    @property
    def column_names(self) -> list[str]: ...
    @property
    def column_types(self) -> list[str] | None: ...


class Page(Protocol):
    """What the loader needs from a result page (``downstream.dune.ResultPage`` fits)."""

    @property
    def rows(self) -> list[dict[str, Any]]: ...
    @property
    def metadata(self) -> PageMetadata | None: ...


@dataclass(frozen=True)
class ExecutionInfo:
    """The Dune execution being loaded, as the ledger records it."""

    execution_id: str
    query_id: int
    parameters: dict[str, Any]
    source: Literal["latest", "executed"]
    state: str = "QUERY_STATE_COMPLETED"
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    credits: float | None = None
    flow_run_id: str | None = None


@dataclass
class LoadReport:
    """What one load did, in numbers a person can check."""

    query_name: str
    execution_id: str
    status: str = "loaded"
    rows: int = 0
    pages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    metric_rows: int = 0
    metric_rows_skipped: int = 0
    mismatches: dict[str, int] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)


def metric_uuid(asset: str, metric: str) -> str:
    return str(uuid.uuid5(METRIC_NAMESPACE, f"{asset}\x1f{metric}"))


def utc_iso(moment: datetime | None) -> str | None:
    """``2024-03-05T20:50:59.123456Z``: the one text form of instants in our own tables."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def load_execution(
    db: sqlite_utils.Database,
    spec: QuerySpec,
    execution: ExecutionInfo,
    pages: Iterable[Page],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    checkpoint: Callable[[str], None] = lambda where: None,
) -> LoadReport:
    """Write every page of one execution in one transaction; raise and change nothing on
    any error. ``checkpoint`` is called at each step (for crash tests)."""
    load = _Load(db, spec, execution, utc_iso(now()) or "", checkpoint)
    return load.run(pages)


class _Load:
    def __init__(
        self,
        db: sqlite_utils.Database,
        spec: QuerySpec,
        execution: ExecutionInfo,
        loaded_at: str,
        checkpoint: Callable[[str], None],
    ) -> None:
        self.db, self.spec, self.execution = db, spec, execution
        self.loaded_at = loaded_at
        self.checkpoint = checkpoint
        self.report = LoadReport(spec.name, execution.execution_id)
        self.columns: list[Column] = []
        self.null_keys = 0
        self.rows_before = 0

    def run(self, pages: Iterable[Page]) -> LoadReport:
        conn = self.db.conn
        if conn.in_transaction:
            raise RuntimeError("load_execution needs a connection with no open transaction")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for page in pages:
                if not self.columns:
                    self._prepare(page)
                self._write(page)
                self.checkpoint(f"page:{self.report.pages}")
            if not self.columns:
                raise LoadError("the result had no pages", query_name=self.spec.name)
            if self.null_keys:
                raise LoadError(
                    f"{self.null_keys} row(s) have NULL in primary key column(s) "
                    f"{', '.join(self.spec.primary_key or [])}; nothing was loaded",
                    query_name=self.spec.name,
                )
            self._finish()
            self.checkpoint("before-commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.checkpoint("committed")
        return self.report

    # -- first page: validate and shape the table -----------------------------------------

    def _prepare(self, page: Page) -> None:
        if page.metadata is None:
            raise LoadError("a result page has no column metadata", query_name=self.spec.name)
        names = list(page.metadata.column_names)
        self._validate_columns(names)
        try:
            self.columns = columns_from_metadata(names, page.metadata.column_types)
        except ValueError as exc:  # column_types not parallel to column_names
            raise LoadError(
                f"the result's metadata is inconsistent: {exc}", query_name=self.spec.name
            ) from None
        self._ensure_table()
        self._ensure_metric_masters()
        self.sql = self._upsert_sql()
        self.rows_before = self._count()

    def _validate_columns(self, names: list[str]) -> None:
        spec, problems = self.spec, []
        if not names:
            raise LoadError(
                "the result has no columns; refusing to treat it as data",
                query_name=spec.name,
            )
        folded: dict[str, str] = {}
        for n in names:
            if fold(n) in folded:
                problems.append(
                    f"columns {folded[fold(n)]!r} and {n!r} are the same name to SQLite "
                    "(names are case-insensitive); alias one of them in the query"
                )
            folded.setdefault(fold(n), n)
            if fold(n) in LINEAGE_COLUMNS:
                problems.append(f"column {n!r} clashes with Downstream's lineage column")
            if "\x00" in n:
                problems.append(f"column {n!r} holds a NUL character, which SQLite names cannot")
            elif not _is_unicode(n):
                problems.append(f"column {n!r} is not valid Unicode (a lone surrogate)")
        lineage = 2 if spec.primary_key else 3  # _row_hash only without a primary key
        if len(names) + lineage > max_columns(self.db):
            problems.append(
                f"the result has {len(names)} columns; SQLite allows {max_columns(self.db)} per "
                f"table including Downstream's {lineage} lineage columns"
            )
        present = set(names)
        for key in spec.primary_key or []:
            if key not in present:
                problems.append(f"primary_key: column {key!r} is not in the result")
        for i, m in enumerate(spec.metrics):
            for attr in ("date_column", "value_column"):
                if getattr(m, attr) not in present:
                    problems.append(
                        f"metrics[{i}].{attr}: column {getattr(m, attr)!r} is not in the result"
                    )
        if spec.incremental and spec.incremental.column not in present:
            problems.append(
                f"incremental.column: column {spec.incremental.column!r} is not in the result"
            )
        if problems:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise LoadError(
                "; ".join(problems) + f" (result columns: {shown})", query_name=spec.name
            )

    def _ensure_table(self) -> None:
        name = self.spec.name
        existing = table_columns(self.db, name)
        if not existing:
            cols: dict[str, Any] = {c.name: _PY_TYPES[c.sqlite_type] for c in self.columns}
            cols[EXECUTION_ID] = str
            cols[LOADED_AT] = str
            if not self.spec.primary_key:
                cols[ROW_HASH] = str
            self.db.table(name).create(
                cols,
                pk=tuple(self.spec.primary_key or [ROW_HASH]),
                not_null={EXECUTION_ID, LOADED_AT},
            )
            return
        by_fold = {fold(k): (k, t) for k, t in existing.items()}
        added = [c.name for c in self.columns if fold(c.name) not in by_fold]
        if len(existing) + len(added) > max_columns(self.db):
            # Columns the result dropped stay in the table (schema drift keeps them).
            raise LoadError(
                f"the table has {len(existing)} columns and this result adds {len(added)}; "
                f"SQLite allows {max_columns(self.db)} per table",
                query_name=name,
            )
        changes: dict[str, Any] = {}
        for c in self.columns:
            found = by_fold.get(fold(c.name))
            if found is None:
                self.db.table(name).add_column(c.name, _PY_TYPES[c.sqlite_type])
                self.report.schema_changes.append(f"added column {c.name!r} ({c.dune_type})")
                continue
            current_name, declared = found
            current_type = affinity(declared)
            if current_type != c.sqlite_type:
                widened = _widen(current_type, c.sqlite_type)
                if widened != current_type:
                    changes[current_name] = _PY_TYPES[widened]
                self.report.schema_changes.append(
                    f"column {c.name!r} is now {c.dune_type} ({c.sqlite_type}); stored as {widened}"
                )
        if changes:
            self.db.table(name).transform(types=changes)
        self._note_type_changes()
        for change in self.report.schema_changes:
            log.warning("%s: schema change: %s", name, change)

    def _note_type_changes(self) -> None:
        """Record Dune type changes since the last load, even when storage is unaffected."""
        row = self.db.execute(
            f"SELECT column_names, column_types FROM {LEDGER} WHERE query_name = ? "
            "AND status IN ('loaded', 'partial') ORDER BY loaded_at DESC LIMIT 1",
            [self.spec.name],
        ).fetchone()
        if not row or not row[0] or not row[1]:
            return
        before = dict(zip(orjson.loads(row[0]), orjson.loads(row[1]), strict=False))
        for c in self.columns:
            old = before.get(c.name)
            if old is not None and c.dune_type is not None and old != c.dune_type:
                note = f"column {c.name!r} type changed from {old} to {c.dune_type}"
                if not any(note in s for s in self.report.schema_changes):
                    self.report.schema_changes.append(note)

    def _ensure_metric_masters(self) -> None:
        stamp = self.loaded_at
        for m in self.spec.metrics:
            self.db.execute(
                f"INSERT INTO {METRICS} (uuid, asset, metric, unit, query_name, query_id, "
                "value_column, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (uuid) DO UPDATE SET unit = excluded.unit, "
                "query_name = excluded.query_name, query_id = excluded.query_id, "
                "value_column = excluded.value_column, updated_at = excluded.updated_at",
                [
                    metric_uuid(m.asset, m.metric),
                    m.asset,
                    m.metric,
                    m.unit,
                    self.spec.name,
                    self.spec.query_id,
                    m.value_column,
                    stamp,
                    stamp,
                ],
            )

    def _upsert_sql(self) -> str:
        table = quote(self.spec.name)
        names = [c.name for c in self.columns] + [EXECUTION_ID, LOADED_AT]
        key = list(self.spec.primary_key or [ROW_HASH])
        if not self.spec.primary_key:
            names.append(ROW_HASH)
        data = [c.name for c in self.columns if c.name not in key]
        sets = [f"{quote(n)} = excluded.{quote(n)}" for n in data]
        sets.append(f"{quote(EXECUTION_ID)} = excluded.{quote(EXECUTION_ID)}")
        if data:
            mine = ", ".join(f"{table}.{quote(n)}" for n in data)
            theirs = ", ".join(f"excluded.{quote(n)}" for n in data)
            # _loaded_at moves only when the values change, so it means "changed at".
            sets.append(
                f"{quote(LOADED_AT)} = CASE WHEN ({mine}) IS NOT ({theirs}) "
                f"THEN excluded.{quote(LOADED_AT)} ELSE {table}.{quote(LOADED_AT)} END"
            )
        return (
            f"INSERT INTO {table} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET {', '.join(sets)}"
        )

    def _count(self, where: str = "", params: Sequence[Any] = ()) -> int:
        sql = f"SELECT count(*) FROM {quote(self.spec.name)} {where}"
        return int(self.db.execute(sql, list(params)).fetchone()[0])

    # -- every page -------------------------------------------------------------------------

    def _write(self, page: Page) -> None:
        rows = page.rows
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LoadError(
                "the result's rows are not all JSON objects keyed by column name",
                query_name=self.spec.name,
            )
        norm = normalize_rows(rows, self.columns)
        for name, (count, first) in norm.out_of_range.items():
            column = next(c for c in self.columns if c.name == name)
            text = format(Decimal(first), "f") if isinstance(first, int) else str(first)
            shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
            raise LoadError(
                f"column {name!r} ({column.dune_type}): {count} value(s) too large for "
                f"SQLite's {column.sqlite_type} storage, e.g. {shown}; SQLite would keep an "
                "approximation, so nothing was loaded",
                query_name=self.spec.name,
            )
        try:
            self._store(norm)
        except UnicodeEncodeError:
            # Text with lone surrogates cannot be UTF-8 (the client replaces those it
            # decodes; this guards pages from anywhere else).
            raise LoadError(
                "the result holds text that is not valid Unicode (a lone surrogate)",
                query_name=self.spec.name,
            ) from None

    def _store(self, norm: NormalizedPage) -> None:
        n = norm.row_count
        self.report.pages += 1
        self.report.rows += n
        for name, count in norm.mismatches.items():
            self.report.mismatches[name] = self.report.mismatches.get(name, 0) + count
        if n == 0:
            return
        if self.spec.primary_key:
            self._count_null_keys(norm)
        if self.null_keys:
            return  # keep reading to report the full count, but write nothing more
        extra: list[list[Any]] = [[self.execution.execution_id] * n, [self.loaded_at] * n]
        if not self.spec.primary_key:
            extra.append(row_hashes(norm))
        self.db.conn.executemany(self.sql, zip(*norm.values, *extra, strict=True))
        if self.spec.metrics:
            self._write_metrics(norm)

    def _count_null_keys(self, norm: NormalizedPage) -> None:
        positions = [
            i for i, c in enumerate(self.columns) if c.name in (self.spec.primary_key or [])
        ]
        key_values = [norm.values[i] for i in positions]
        self.null_keys += sum(1 for row in zip(*key_values, strict=True) if None in row)

    def _write_metrics(self, norm: NormalizedPage) -> None:
        index = {c.name: i for i, c in enumerate(self.columns)}
        sql = (
            f"INSERT INTO {SERIES} (metric_uuid, record_date, value, execution_id, loaded_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (metric_uuid, record_date) DO UPDATE SET "
            "value = excluded.value, execution_id = excluded.execution_id, "
            "loaded_at = excluded.loaded_at"
        )
        eid, stamp = self.execution.execution_id, self.loaded_at
        for m in self.spec.metrics:
            mid = metric_uuid(m.asset, m.metric)
            dates = norm.values[index[m.date_column]]
            values = norm.values[index[m.value_column]]
            rows = []
            for d, v in zip(dates, values, strict=True):
                if d is None:
                    self.report.metric_rows_skipped += 1
                    continue
                rows.append((mid, str(d), _metric_value(v), eid, stamp))
            self.db.conn.executemany(sql, rows)
            self.report.metric_rows += len(rows)

    # -- last: counts, replace, ledger --------------------------------------------------------

    def _finish(self) -> None:
        table, eid = quote(self.spec.name), self.execution.execution_id
        if self.rows_before == 0:
            # The table was empty (and we hold the write lock): every row in it now came
            # from this load and is new, so there is nothing to scan for or to remove.
            delivered = changed = self._count()
        else:
            delivered, changed = self.db.execute(
                f"SELECT count(*), coalesce(sum({quote(LOADED_AT)} = ?), 0) FROM {table} "
                f"WHERE {quote(EXECUTION_ID)} = ?",
                [self.loaded_at, eid],
            ).fetchone()
        if self.spec.mode == "replace":
            if self.rows_before:
                cur = self.db.execute(
                    f"DELETE FROM {table} WHERE {quote(EXECUTION_ID)} != ?", [eid]
                )
                self.report.removed = cur.rowcount
            for m in self.spec.metrics:
                self.db.execute(
                    f"DELETE FROM {SERIES} WHERE metric_uuid = ? AND execution_id != ?",
                    [metric_uuid(m.asset, m.metric), eid],
                )
        after = delivered if self.rows_before == 0 else self._count()
        r = self.report
        r.new = after - self.rows_before + r.removed
        r.updated = int(changed) - r.new
        r.unchanged = int(delivered) - int(changed)
        r.duplicates = r.rows - int(delivered)
        if r.duplicates:
            log.warning(
                "%s: %d row(s) repeat a primary key within execution %s; the last one won",
                self.spec.name,
                r.duplicates,
                eid,
            )
        if r.mismatches:
            log.warning(
                "%s: values that contradict their column type were kept as text: %s",
                self.spec.name,
                r.mismatches,
            )
        partial = self.execution.state == "QUERY_STATE_COMPLETED_PARTIAL"
        r.status = "partial" if partial else "loaded"
        record_execution(
            self.db,
            self.spec,
            self.execution,
            status=r.status,
            loaded_at=self.loaded_at,
            columns=self.columns,
            report=r,
        )


def record_execution(
    db: sqlite_utils.Database,
    spec: QuerySpec,
    execution: ExecutionInfo,
    *,
    status: str,
    loaded_at: str,
    columns: Sequence[Column] = (),
    report: LoadReport | None = None,
    error: str | None = None,
) -> None:
    """Upsert the ledger row of an execution (inside the caller's transaction, if any)."""
    row = {
        "execution_id": execution.execution_id,
        "query_name": spec.name,
        "query_id": execution.query_id,
        "parameters": orjson.dumps(execution.parameters, option=orjson.OPT_SORT_KEYS).decode(),
        "source": execution.source,
        "state": execution.state,
        "submitted_at": utc_iso(execution.submitted_at),
        "execution_ended_at": utc_iso(execution.ended_at),
        "row_count": report.rows if report else None,
        "column_names": orjson.dumps([c.name for c in columns]).decode() if columns else None,
        "column_types": orjson.dumps([c.dune_type for c in columns]).decode() if columns else None,
        "status": status,
        "error": error,
        "loaded_at": loaded_at,
        "flow_run_id": execution.flow_run_id,
        "rows_new": report.new if report else None,
        "rows_updated": report.updated if report else None,
        "rows_removed": report.removed if report else None,
        "duplicate_keys": report.duplicates if report else None,
        "type_mismatches": orjson.dumps(report.mismatches).decode()
        if report and report.mismatches
        else None,
        "schema_changes": orjson.dumps(report.schema_changes).decode()
        if report and report.schema_changes
        else None,
        "execution_cost_credits": execution.credits,
    }
    names = list(row)
    db.execute(
        f"INSERT INTO {LEDGER} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT (execution_id) DO UPDATE SET "
        + ", ".join(f"{n} = excluded.{n}" for n in names if n != "execution_id"),
        list(row.values()),
    )


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _metric_value(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
    else:
        try:
            f = float(str(v))
        except ValueError:
            return None
    return f if math.isfinite(f) else None


_PY_TYPES: dict[str, type] = {"INTEGER": int, "REAL": float, "TEXT": str}


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (sqlite-utils says FLOAT for REAL)."""
    d = declared.upper()
    if "INT" in d:
        return "INTEGER"
    if any(t in d for t in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if any(t in d for t in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "TEXT" if not d else "NUMERIC"


def _widen(current: str, new: str) -> str:
    """The storage type that holds both: numbers widen to REAL, anything else to TEXT."""
    if {current, new} <= {"INTEGER", "REAL"}:
        return "REAL"
    return "TEXT"
