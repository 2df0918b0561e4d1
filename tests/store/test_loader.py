"""Loading executions into real SQLite files: exact, atomic, idempotent."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from downstream.errors import ExecutionExpired, LoadError
from downstream.spec import QuerySpec
from downstream.store import (
    ExecutionInfo,
    is_loaded,
    load_execution,
    metric_uuid,
    open_database,
    read_watermark,
    watermark_parameter,
)


@dataclass
class Meta:
    column_names: list[str]
    column_types: list[str] | None


@dataclass
class Page:
    rows: list[dict[str, Any]]
    metadata: Meta | None


@dataclass
class Clock:
    t: datetime = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    step: timedelta = field(default=timedelta(minutes=1))

    def __call__(self) -> datetime:
        self.t += self.step
        return self.t


NAMES = ["day", "net_emission_eth", "total_net_emission_eth"]
TYPES = ["timestamp(3) with time zone", "double", "double"]


def pages(
    rows: list[dict[str, Any]],
    size: int = 2,
    names: list[str] = NAMES,
    types: list[str] | None = TYPES,
) -> list[Page]:
    meta = Meta(names, types)
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)] or [[]]
    return [Page(c, meta) for c in chunks]


def emission(n: int, start: int = 1, bump: float = 0.0) -> list[dict[str, Any]]:
    return [
        {
            "day": f"2026-01-{d:02d} 00:00:00.000 UTC",
            "net_emission_eth": 100.0 * d + bump,
            "total_net_emission_eth": 1000.0 + d,
        }
        for d in range(start, start + n)
    ]


def spec(**kw: Any) -> QuerySpec:
    base: dict[str, Any] = {
        "name": "eth_net_emission",
        "query_id": 1463956,
        "primary_key": ["day"],
        "metrics": [
            {
                "asset": "ETH",
                "metric": "net_emission",
                "date_column": "day",
                "value_column": "net_emission_eth",
                "unit": "ETH",
            }
        ],
    }
    base.update(kw)
    return QuerySpec.model_validate(base)


def execution(eid: str = "01JEXEC0000000000000000001", **kw: Any) -> ExecutionInfo:
    return ExecutionInfo(eid, 1463956, {"start_date": "2026-01-01 00:00:00"}, "executed", **kw)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    database = open_database(tmp_path / "bronze.db")
    yield database
    database.close()


def dump(db: sqlite_utils.Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for before/after comparisons."""
    out = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"):
        out[name] = sorted(db.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
    return out


def rows_of(db: sqlite_utils.Database, sql: str) -> list[tuple[Any, ...]]:
    return db.execute(sql).fetchall()


def test_first_load_writes_table_metrics_and_ledger(db: sqlite_utils.Database) -> None:
    report = load_execution(db, spec(), execution(), pages(emission(5)), now=Clock())
    assert (report.rows, report.pages, report.new, report.updated) == (5, 3, 5, 0)
    assert rows_of(
        db, "SELECT day, net_emission_eth, _execution_id FROM eth_net_emission ORDER BY day LIMIT 2"
    ) == [
        ("2026-01-01T00:00:00.000Z", 100.0, "01JEXEC0000000000000000001"),
        ("2026-01-02T00:00:00.000Z", 200.0, "01JEXEC0000000000000000001"),
    ]
    uuid = metric_uuid("ETH", "net_emission")
    assert rows_of(
        db,
        "SELECT uuid, asset, metric, unit, query_name, query_id, value_column "
        "FROM digital_asset_metric",
    ) == [(uuid, "ETH", "net_emission", "ETH", "eth_net_emission", 1463956, "net_emission_eth")]
    assert rows_of(
        db,
        "SELECT count(*), min(record_date), max(value) FROM recorded_raw_metric "
        "WHERE metric_uuid = ?".replace("?", f"'{uuid}'"),
    ) == [(5, "2026-01-01T00:00:00.000Z", 500.0)]
    ledger = db.execute("SELECT * FROM dune_execution").fetchall()
    cols = [d[0] for d in db.execute("SELECT * FROM dune_execution").description]
    row = dict(zip(cols, ledger[0], strict=True))
    assert row["status"] == "loaded" and row["row_count"] == 5 and row["source"] == "executed"
    assert row["parameters"] == '{"start_date":"2026-01-01 00:00:00"}'
    assert row["column_names"] == '["day","net_emission_eth","total_net_emission_eth"]'
    assert row["query_name"] == "eth_net_emission" and row["rows_new"] == 5
    assert is_loaded(db, "01JEXEC0000000000000000001", "eth_net_emission")
    assert not is_loaded(db, "01JEXEC0000000000000000001", "another_table")


def test_the_metric_uuid_is_stable_uuid5() -> None:
    import uuid

    assert metric_uuid("ETH", "net_emission") == metric_uuid("ETH", "net_emission")
    assert uuid.UUID(metric_uuid("ETH", "net_emission")).version == 5
    assert metric_uuid("ETH", "net_emission") != metric_uuid("ETH", "net_emissionx")


def test_loading_the_same_execution_twice_changes_nothing(db: sqlite_utils.Database) -> None:
    clock = Clock()
    load_execution(db, spec(), execution(), pages(emission(5)), now=clock)
    before = dump(db)
    before.pop("dune_execution")
    report = load_execution(db, spec(), execution(), pages(emission(5)), now=clock)
    after = dump(db)
    after.pop("dune_execution")
    assert (report.new, report.updated, report.unchanged) == (0, 0, 5)
    assert after["eth_net_emission"] == before["eth_net_emission"]
    assert len(after["recorded_raw_metric"]) == 5


def test_a_new_execution_updates_changed_rows_only(db: sqlite_utils.Database) -> None:
    clock = Clock()
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000001"), pages(emission(5)), now=clock
    )
    rows = emission(6)
    rows[2]["net_emission_eth"] = -1.5
    report = load_execution(
        db, spec(), execution("01JEXEC0000000000000000002"), pages(rows), now=clock
    )
    assert (report.new, report.updated, report.unchanged) == (1, 1, 4)
    changed = rows_of(
        db,
        "SELECT day FROM eth_net_emission WHERE _loaded_at = "
        "(SELECT max(_loaded_at) FROM eth_net_emission) ORDER BY day",
    )
    assert changed == [("2026-01-03T00:00:00.000Z",), ("2026-01-06T00:00:00.000Z",)]
    assert rows_of(db, "SELECT DISTINCT _execution_id FROM eth_net_emission") == [
        ("01JEXEC0000000000000000002",)
    ]
    assert rows_of(
        db, "SELECT value FROM recorded_raw_metric WHERE record_date LIKE '2026-01-03%'"
    ) == [(-1.5,)]


@pytest.mark.parametrize("crash_at", ["page:1", "page:2", "page:3", "before-commit"])
def test_a_crash_at_any_step_leaves_every_table_as_it_was(
    db: sqlite_utils.Database, crash_at: str
) -> None:
    clock = Clock()
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000001"), pages(emission(3)), now=clock
    )
    before = dump(db)

    def crash(where: str) -> None:
        if where == crash_at:
            raise KeyboardInterrupt(where)  # not an Exception: like a signal arriving

    rows = emission(6, bump=1.0)
    with pytest.raises(KeyboardInterrupt):
        load_execution(
            db,
            spec(mode="upsert"),
            execution("01JEXEC0000000000000000002"),
            pages(rows),
            now=clock,
            checkpoint=crash,
        )
    assert dump(db) == before
    assert not db.conn.in_transaction


def test_a_dune_error_between_pages_leaves_every_table_as_it_was(
    db: sqlite_utils.Database,
) -> None:
    clock = Clock()
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000001"), pages(emission(3)), now=clock
    )
    before = dump(db)

    def failing() -> Iterator[Page]:
        yield from pages(emission(4, bump=9))[:1]
        raise ExecutionExpired("expired", state="QUERY_STATE_EXPIRED", execution_id="e2")

    with pytest.raises(ExecutionExpired):
        load_execution(db, spec(), execution("01JEXEC0000000000000000002"), failing(), now=clock)
    assert dump(db) == before


def test_a_crash_on_the_first_load_leaves_no_table(db: sqlite_utils.Database) -> None:
    def crash(where: str) -> None:
        if where == "page:2":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        load_execution(db, spec(), execution(), pages(emission(5)), now=Clock(), checkpoint=crash)
    assert not db["eth_net_emission"].exists()
    assert db["dune_execution"].count == 0 and db["digital_asset_metric"].count == 0


def test_replace_swaps_the_whole_contents_atomically(db: sqlite_utils.Database) -> None:
    clock = Clock()
    s = spec(mode="replace")
    load_execution(db, s, execution("01JEXEC0000000000000000001"), pages(emission(5)), now=clock)
    report = load_execution(
        db, s, execution("01JEXEC0000000000000000002"), pages(emission(2, start=4)), now=clock
    )
    assert report.removed == 3 and report.new == 0 and report.unchanged == 2
    assert rows_of(db, "SELECT count(*) FROM eth_net_emission") == [(2,)]
    assert rows_of(db, "SELECT count(*) FROM recorded_raw_metric") == [(2,)]


def test_first_load_into_an_empty_table_counts_the_same_without_scanning(
    db: sqlite_utils.Database,
) -> None:
    # An empty table before the load lets _finish skip its full scan (issue 6); the
    # report must still be what the scan would say, duplicates and replace included.
    rows = emission(3)
    rows.append({**rows[0], "net_emission_eth": 42.0})
    report = load_execution(db, spec(mode="replace"), execution(), pages(rows), now=Clock())
    assert (report.rows, report.new, report.updated, report.unchanged) == (4, 3, 0, 0)
    assert (report.duplicates, report.removed) == (1, 0)
    ledger = rows_of(db, "SELECT rows_new, rows_updated, rows_removed FROM dune_execution")
    assert ledger == [(3, 0, 0)]


def test_upsert_keeps_rows_the_new_result_does_not_deliver(db: sqlite_utils.Database) -> None:
    clock = Clock()
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000001"), pages(emission(5)), now=clock
    )
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000002"), pages(emission(2, start=4)), now=clock
    )
    assert rows_of(db, "SELECT count(*) FROM eth_net_emission") == [(5,)]


def test_duplicate_keys_in_one_result_last_one_wins_and_is_counted(
    db: sqlite_utils.Database, caplog: pytest.LogCaptureFixture
) -> None:
    rows = emission(3)
    rows.append({**rows[0], "net_emission_eth": 42.0})
    report = load_execution(db, spec(), execution(), pages(rows, size=3), now=Clock())
    assert report.duplicates == 1 and report.new == 3
    assert rows_of(
        db, "SELECT net_emission_eth FROM eth_net_emission WHERE day LIKE '2026-01-01%'"
    ) == [(42.0,)]
    assert "repeat a primary key" in caplog.text


def test_null_primary_keys_reject_the_load_with_a_count(db: sqlite_utils.Database) -> None:
    rows = emission(5)
    rows[1]["day"] = None
    rows[4]["day"] = None
    with pytest.raises(LoadError, match=r"eth_net_emission: 2 row\(s\) have NULL in primary key"):
        load_execution(db, spec(), execution(), pages(rows), now=Clock())
    assert not db["eth_net_emission"].exists() and db["dune_execution"].count == 0


def test_without_a_primary_key_identical_rows_never_duplicate(db: sqlite_utils.Database) -> None:
    s = spec(primary_key=None, metrics=[])
    rows = emission(3) + emission(1)  # the first row twice
    clock = Clock()
    report = load_execution(db, s, execution("01JEXEC0000000000000000001"), pages(rows), now=clock)
    assert report.duplicates == 1
    load_execution(db, s, execution("01JEXEC0000000000000000002"), pages(emission(3)), now=clock)
    assert rows_of(db, "SELECT count(*), count(DISTINCT _row_hash) FROM eth_net_emission") == [
        (3, 3)
    ]


def test_schema_drift_adds_keeps_and_widens_columns(db: sqlite_utils.Database) -> None:
    clock = Clock()
    s = spec(metrics=[])
    load_execution(
        db,
        s,
        execution("01JEXEC0000000000000000001"),
        pages(
            [{"day": "2026-01-01 00:00:00.000 UTC", "a": 1, "gone": "x"}],
            names=["day", "a", "gone"],
            types=["timestamp(3) with time zone", "bigint", "varchar"],
        ),
        now=clock,
    )
    report = load_execution(
        db,
        s,
        execution("01JEXEC0000000000000000002"),
        pages(
            [{"day": "2026-01-02 00:00:00.000 UTC", "a": "n/a", "added": 2.5}],
            names=["day", "a", "added"],
            types=["timestamp(3) with time zone", "varchar", "double"],
        ),
        now=clock,
    )
    assert any("added column 'added'" in c for c in report.schema_changes)
    assert any("'a' type changed from bigint to varchar" in c for c in report.schema_changes)
    cols = {c.name: c.type for c in db["eth_net_emission"].columns}
    assert cols["a"] == "TEXT" and "gone" in cols and "added" in cols
    assert rows_of(db, "SELECT day, a, gone, added FROM eth_net_emission ORDER BY day") == [
        ("2026-01-01T00:00:00.000Z", "1", "x", None),
        ("2026-01-02T00:00:00.000Z", "n/a", None, 2.5),
    ]
    ledger = rows_of(
        db,
        "SELECT schema_changes FROM dune_execution WHERE execution_id = "
        "'01JEXEC0000000000000000002'",
    )[0][0]
    assert "type changed from bigint to varchar" in ledger


def test_hostile_names_are_just_names(db: sqlite_utils.Database) -> None:
    names = ['x"; drop table dune_execution; --', "Amount USD", "a.b", "🦄", "select"]
    row = dict.fromkeys(names, "v")
    row["Amount USD"] = 1
    s = QuerySpec(name="q_1", query_id=1, primary_key=['x"; drop table dune_execution; --'])
    load_execution(
        db,
        s,
        execution(),
        pages([row], names=names, types=["varchar", "bigint", "varchar", "varchar", "varchar"]),
        now=Clock(),
    )
    assert [c.name for c in db["q_1"].columns][:5] == names
    assert db["dune_execution"].exists()
    assert rows_of(db, 'SELECT "Amount USD", "🦄" FROM q_1') == [(1, "v")]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["day", "Day"], "the same name to SQLite"),
        (["day", "_loaded_at"], "clashes with Downstream's lineage column"),
        (["dayz"], "primary_key: column 'day' is not in the result"),
        ([f"c{i}" for i in range(2000)], "SQLite allows 2000 per table"),
        ([], "no columns"),
    ],
)
def test_results_that_cannot_be_stored_are_refused_before_writing(
    db: sqlite_utils.Database, names: list[str], message: str
) -> None:
    page = Page([dict.fromkeys(names, "x")], Meta(names, ["varchar"] * len(names)))
    with pytest.raises(LoadError, match=message):
        load_execution(db, spec(metrics=[]), execution(), [page], now=Clock())
    assert dump(db)["dune_execution"] == []


def test_an_empty_result_creates_the_table_and_records_zero_rows(
    db: sqlite_utils.Database,
) -> None:
    report = load_execution(db, spec(), execution(), pages([]), now=Clock())
    assert report.rows == 0 and db["eth_net_emission"].exists()
    assert rows_of(db, "SELECT row_count, status FROM dune_execution") == [(0, "loaded")]


def test_partial_results_are_marked_partial(db: sqlite_utils.Database) -> None:
    report = load_execution(
        db,
        spec(),
        execution(state="QUERY_STATE_COMPLETED_PARTIAL"),
        pages(emission(2)),
        now=Clock(),
    )
    assert report.status == "partial"
    assert rows_of(db, "SELECT status FROM dune_execution") == [("partial",)]


def test_the_master_keeps_created_at_and_moves_updated_at(db: sqlite_utils.Database) -> None:
    clock = Clock()
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000001"), pages(emission(1)), now=clock
    )
    first = rows_of(db, "SELECT created_at, updated_at FROM digital_asset_metric")[0]
    load_execution(
        db, spec(), execution("01JEXEC0000000000000000002"), pages(emission(1)), now=clock
    )
    second = rows_of(db, "SELECT created_at, updated_at FROM digital_asset_metric")[0]
    assert second[0] == first[0] and second[1] > first[1]


def test_foreign_keys_protect_the_series(db: sqlite_utils.Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO recorded_raw_metric VALUES ('nope', '2026', 1, 'e', 'now')")


def test_database_is_wal_with_a_busy_timeout(db: sqlite_utils.Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_watermark_minus_lookback_in_dunes_format(db: sqlite_utils.Database) -> None:
    s = spec(incremental={"parameter": "start_date", "column": "day", "lookback_days": 3})
    assert read_watermark(db, s) is None
    load_execution(db, s, execution(), pages(emission(10)), now=Clock())
    mark = read_watermark(db, s)
    assert mark == "2026-01-10T00:00:00.000Z"
    assert watermark_parameter(s, mark) == "2026-01-07 00:00:00"
    assert watermark_parameter(s, 19_000_000) == 19_000_000
