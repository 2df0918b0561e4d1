"""One transaction across pages vs a staging table swapped in at the end (issue 3).

Both are atomic; the question is what each costs. The loader's own statement shape (an
upsert that moves ``_loaded_at`` only when values change) is used for both, on the same
pre-normalised 8-column rows, so only the strategy differs:

* ``one-transaction``: ``BEGIN IMMEDIATE``, each page upserted into the table, ``COMMIT``.
* ``staging``: each page inserted into a plain staging table (committed per page, so the
  writer lock is held only briefly), then one short transaction upserts the staging table
  into the target and drops it.

Each strategy runs on a fresh table (every row new) and on a table that already holds
every row (every row an unchanged update), in its own fresh process, ``--repeat`` times.

    python bench/load_strategy.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = 31_250
COLUMNS = ["id", "block_time", "amount_raw", "amount_usd", "symbol", "tx_hash", "success",
           "block_date"]  # fmt: skip
TYPES = ["INTEGER", "TEXT", "TEXT", "REAL", "TEXT", "TEXT", "INTEGER", "TEXT"]
LINEAGE = ["_execution_id", "_loaded_at"]


def rows(start: int, count: int) -> list[tuple[object, ...]]:
    return [
        (i, f"2024-01-01T00:00:{i % 60:02d}.000Z", str(10**30 + i), i * 0.5, "WETH",
         f"0x{i:064x}", i % 2, "2024-01-01T00:00:00.000Z", "01EXECUTION", "2026-12-03T00:00:00Z")
        for i in range(start, start + count)
    ]  # fmt: skip


def upsert_sql(target: str, source: str | None = None) -> str:
    names = COLUMNS + LINEAGE
    data = [c for c in COLUMNS if c != "id"]
    sets = [f'"{n}" = excluded."{n}"' for n in data] + [
        '"_execution_id" = excluded."_execution_id"'
    ]
    mine = ", ".join(f'{target}."{n}"' for n in data)
    theirs = ", ".join(f'excluded."{n}"' for n in data)
    sets.append(
        f'"_loaded_at" = CASE WHEN ({mine}) IS NOT ({theirs}) THEN excluded."_loaded_at" '
        f'ELSE {target}."_loaded_at" END'
    )
    cols = ", ".join(f'"{n}"' for n in names)
    values = f"SELECT {cols} FROM {source} WHERE true" if source else (
        f"VALUES ({', '.join('?' for _ in names)})"
    )  # fmt: skip
    return (
        f"INSERT INTO {target} ({cols}) {values} ON CONFLICT (id) DO UPDATE SET {', '.join(sets)}"
    )


def create(conn: sqlite3.Connection, name: str, key: bool) -> None:
    cols = [f'"{c}" {t}' for c, t in zip(COLUMNS, TYPES, strict=True)]
    cols += ['"_execution_id" TEXT NOT NULL', '"_loaded_at" TEXT NOT NULL']
    if key:
        cols[0] += " PRIMARY KEY"
    conn.execute(f"CREATE TABLE {name} ({', '.join(cols)})")


def one_transaction(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    sql = upsert_sql("target")
    for start in range(0, n, PAGE):
        conn.executemany(sql, rows(start, min(PAGE, n - start)))
    conn.execute("COMMIT")


def staging(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    create(conn, "staging", key=False)
    conn.execute("COMMIT")
    insert = f"INSERT INTO staging VALUES ({', '.join('?' for _ in COLUMNS + LINEAGE)})"
    for start in range(0, n, PAGE):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows(start, min(PAGE, n - start)))
        conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(upsert_sql("target", "staging"))
    conn.execute("DROP TABLE staging")
    conn.execute("COMMIT")


def child(strategy: str, scenario: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "bronze.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        create(conn, "target", key=True)
        if scenario == "update":
            one_transaction(conn, n)
        started, cpu = time.perf_counter(), time.process_time()
        (one_transaction if strategy == "one-transaction" else staging)(conn, n)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        count = conn.execute("SELECT count(*) FROM target").fetchone()[0]
        assert count == n, count
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        return {"seconds": wall, "cpu": cpu, "disk_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.rows)))
        return
    print(f"| scenario | strategy | seconds (median of {args.repeat}) | CPU s | disk MB after |\n"
          "|---|---|---|---|---|")  # fmt: skip
    for scenario in ("insert", "update"):
        for strategy in ("one-transaction", "staging"):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--rows", str(args.rows), "--child", strategy,
                     scenario], capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                runs.append(json.loads(out))
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"| {scenario} | {strategy} | {med['seconds']:.2f} | {med['cpu']:.2f} | "
                  f"{med['disk_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
