"""A seeded fault storm: one query run through the pipeline under random faults.

Each seed builds its own scenario (table mode, decision path, execution outcome, a
schedule of HTTP faults) from ``random.Random(seed)``, so a failing seed replays exactly.
The invariant checked for every seed: the run either completes and the table equals what
a clean load of the same execution gives, or it fails with a typed error naming the
query and every table is exactly as before. Never more than one execution is paid for.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from downstream import pipeline
from downstream.dune import DuneClient, RetryPolicy, make_http_client
from downstream.emulator import DuneEmulator
from downstream.errors import DownstreamError
from downstream.spec import QuerySpec

KEY = "storm-key"
COLUMNS = ["id", "ts", "amount", "price", "tag", "raw", "ok"]
TYPES = ["bigint", "timestamp(3) with time zone", "uint256", "double", "varchar", "varbinary",
         "boolean"]  # fmt: skip
ROWS = 240
PAGE_ROWS = 40  # the emulator's page cap: 6 pages per result
TIMEOUT = 0.4  # the client's read timeout; "slow" faults wait longer
GETS = ["/status$", "/execution/.*/results$", "/query/.*/results$"]
ERRORS = [  # (kind, status, body, content-type)
    ("500-json", 500, '{"error":"An internal error occured"}', "application/json"),
    ("502-html", 502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    ("503-empty", 503, "", "text/plain"),
    ("504-json", 504, '{"error":"Gateway Timeout"}', "application/json"),
]
ERROR_TYPES = {
    "DuneRateLimited", "DuneServerError", "DuneTransportError", "DuneProtocolError",
    "ExecutionFailed", "ExecutionCancelled", "ExecutionExpired", "ExecutionPartial",
    "ExecutionTimedOut", "DuneBadRequest", "DuneNotFound",
}  # fmt: skip


def wire_rows(version: int, rng: random.Random) -> list[dict[str, Any]]:
    """Rows in Dune's wire encoding; each version changes, drops and adds some."""
    rows = []
    for i in range(ROWS):
        if version > 1 and i % 7 == 3:
            continue  # dropped in later versions
        key = i if version == 1 or i % 11 else i + 10_000  # some new keys
        bump = version if i % 5 == 0 else 1
        rows.append(
            {
                "id": key,
                "ts": f"2026-01-{1 + i % 28:02d} {i % 24:02d}:00:00.000 UTC",
                "amount": str((2**200 + i) * bump),
                "price": None if i % 13 == 0 else round(i * 1.25 * bump, 4),
                "tag": rng.choice(["ethereum", "Ünïcode ✓", "a,b", 'q"uote', None]),
                "raw": f"0x{i * bump:040x}",
                "ok": i % 3 == 0,
            }
        )
    return rows


@dataclass
class Totals:
    """What the storm did, for the README's Reliability section."""

    seeds: int = 0
    query_runs: int = 0
    completed: int = 0
    failed_cleanly: int = 0
    rows_lost: int = 0
    executions_paid_twice: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    failures_by_type: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "query_runs": self.query_runs,
            "completed": self.completed,
            "failed_cleanly": self.failed_cleanly,
            "rows_lost": self.rows_lost,
            "executions_paid_twice": self.executions_paid_twice,
            "faults_injected_by_kind": dict(sorted(self.faults_injected.items())),
            "faults_fired_by_action": dict(sorted(self.faults_fired.items())),
            "failures_by_type": dict(sorted(self.failures_by_type.items())),
            "scripted_outcomes": dict(sorted(self.outcomes.items())),
        }


class ChangeLatestMidway(httpx.BaseTransport):
    """After the first results page, a newer execution with other rows finishes on Dune."""

    def __init__(self, inner: httpx.BaseTransport, act: Any) -> None:
        self.inner, self.act, self.done = inner, act, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not self.done and "/execution/" in request.url.path and "/results" in request.url.path:
            self.done = True
            self.act()
        return response


def snapshot(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table (lineage timestamps left out), sorted; [] if no table."""
    with sqlite3.connect(db) as conn:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
        ).fetchone()
        if not exists:
            return []
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        times = ("_loaded_at", "loaded_at", "updated_at")
        keep = ", ".join(f'"{c}"' for c in cols if c not in times)
        return sorted(conn.execute(f'SELECT {keep} FROM "{table}"').fetchall(), key=repr)


def loaded_ledger(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(
            conn.execute(
                "SELECT execution_id, query_name, status FROM dune_execution "
                "WHERE status IN ('loaded', 'partial')"
            ).fetchall()
        )


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


TABLES = ("storm", "digital_asset_metric", "recorded_raw_metric")


def run_seed(seed: int, emulator: DuneEmulator, base_url: str, work: Path, totals: Totals) -> None:
    """One scenario; raises AssertionError naming the seed if the invariant breaks."""
    rng = random.Random(seed)
    query_id = 50_000 + seed
    db, reference = work / f"s{seed}.db", work / f"s{seed}-ref.db"
    emulator.add_dataset(
        query_id, wire_rows(1, rng), column_names=COLUMNS, column_types=TYPES,
        name=f"storm {seed}", seed_execution={"age_hours": 3, "parameters": {}},
    )  # fmt: skip
    mode = rng.choice(["upsert", "upsert", "replace", "nokey"])
    allow_partial = rng.random() < 0.3
    spec = QuerySpec(
        name="storm",
        query_id=query_id,
        primary_key=None if mode == "nokey" else ["id"],
        mode="replace" if mode == "replace" else "upsert",
        allow_partial=allow_partial,
        timeout_minutes=1,
        metrics=[{"asset": "ETH", "metric": "price", "date_column": "ts",
                  "value_column": "price"}] if mode != "nokey" else [],
    )  # fmt: skip
    quiet = make_client(base_url, rng)
    baseline = pipeline.sync_query(quiet, db, spec)  # loads the 3 h old latest (v1)
    assert baseline.outcome == "loaded", f"seed {seed}: baseline {baseline.error}"
    before = {t: snapshot(db, t) for t in TABLES}
    ledger_before = loaded_ledger(db)
    shutil.copy(db, reference)

    emulator.replace_rows(query_id, wire_rows(2, rng))
    path = rng.choice(["latest", "execute", "execute"])
    outcome = rng.choices(
        ["completed", "failed", "cancelled", "partial", "expired"], [60, 10, 8, 12, 10]
    )[0]
    totals.outcomes[outcome] += 1
    script: dict[str, Any] = {"outcome": "completed" if outcome == "expired" else outcome}
    if outcome == "expired":
        script["expire_after_pages"] = rng.randint(1, 5)
    if outcome == "partial":
        script["partial_rows"] = rng.randint(1, ROWS - 50)
    steps = [{"state": "QUERY_STATE_PENDING", "polls": rng.randint(0, 2)},
             {"state": "QUERY_STATE_EXECUTING", "polls": rng.randint(0, 2)}]  # fmt: skip
    emulator.set_script(query_id, [s for s in steps if s["polls"]], **script)
    if path == "latest":
        emulator.seed_execution(query_id, {}, 0.5, script["outcome"])
        if outcome == "expired":
            path = "execute"  # a seeded result cannot expire mid-read; execute instead

    faults = fault_schedule(rng, query_id, totals)
    emulator.reset_stats()
    emulator.add_faults(faults)
    transport: httpx.BaseTransport = httpx.HTTPTransport()
    if rng.random() < 0.15:
        totals.faults_injected["latest-changes-between-pages"] += 1

        def newer() -> None:
            emulator.replace_rows(query_id, wire_rows(3, rng))
            emulator.seed_execution(query_id, {}, 0.0, "completed")

        transport = ChangeLatestMidway(transport, newer)
    client = make_client(base_url, rng, transport=transport)
    result = pipeline.sync_query(client, db, spec, refresh=path == "execute")
    fired = emulator.stats()["faults_fired"]
    totals.faults_fired.update(fired)
    emulator.clear_faults()
    totals.seeds += 1
    totals.query_runs += 2  # the baseline load and the stormy one
    created = emulator.stats()["executions_created_total"]
    where = f"seed {seed} ({mode}, {path}, {outcome}, faults {faults}): "
    assert integrity(db) == "ok", where + "integrity_check failed"
    if created > 1:
        totals.executions_paid_twice += 1
        raise AssertionError(where + f"{created} executions created for one run")

    assert result.outcome != "skipped", where + "skipped an execution it never loaded"
    if result.outcome in ("loaded", "partial"):
        totals.completed += 1
        assert result.execution_id, where + "no execution id"
        # The same execution, loaded cleanly into the same starting point.
        emulator.set_script(query_id, [], "completed")
        ref = pipeline.load(quiet, reference, plan_for(quiet, spec, result.execution_id))
        assert ref.outcome == result.outcome, where + f"reference load ended {ref.outcome}"
        after = {t: snapshot(db, t) for t in TABLES}
        expected = {t: snapshot(reference, t) for t in TABLES}
        lost = {r[0] for r in expected["storm"]} - {r[0] for r in after["storm"]}
        totals.rows_lost += len(lost)
        assert after == expected, where + f"table differs from a clean load ({len(lost)} lost)"
        assert (result.execution_id, "storm") in {(e, q) for e, q, _ in loaded_ledger(db)}
    else:
        totals.failed_cleanly += 1
        totals.failures_by_type[result.error_type or "?"] += 1
        assert result.error_type in ERROR_TYPES, where + f"untyped failure {result.error_type}"
        named = str(query_id) in (result.error or "") or (
            result.execution_id is not None and result.execution_id in (result.error or "")
        )
        assert named and result.name == "storm", where + f"error names no query: {result.error}"
        after = {t: snapshot(db, t) for t in TABLES}
        lost = {r[0] for r in before["storm"]} - {r[0] for r in after["storm"]}
        totals.rows_lost += len(lost)
        assert after == before, where + "a failed run changed the tables"
        assert loaded_ledger(db) == ledger_before, where + "a failed run marked something loaded"
    quiet.close()
    client.close()


def plan_for(client: DuneClient, spec: QuerySpec, execution_id: str) -> pipeline.Plan:
    status = client.get_status(execution_id, query_id=spec.query_id)
    return pipeline.Plan(spec, {}, "load", "reference", execution_id=execution_id, status=status)


def make_client(
    base_url: str, rng: random.Random, *, transport: httpx.BaseTransport | None = None
) -> DuneClient:
    http = make_http_client(
        base_url, timeout=httpx.Timeout(TIMEOUT, connect=2.0), transport=transport
    )
    return DuneClient(
        http,
        KEY,
        sleep=lambda seconds: None,  # backoff and Retry-After are honoured, instantly
        retry=RetryPolicy(max_attempts=5, base_delay=0.001, max_elapsed=60),
        max_page_rows=PAGE_ROWS,
    )


def fault_schedule(rng: random.Random, query_id: int, totals: Totals) -> list[dict[str, Any]]:
    """0-5 random fault rules on this query's requests."""
    rules = []
    for _ in range(rng.randint(0, 5)):
        kind = rng.choice(
            ["429", "429-retry-after", "5xx", "reset", "truncate", "slow", "execute-5xx",
             "execute-after", "execute-slow", "execute-500"]
        )  # fmt: skip
        nth, times = rng.randint(1, 4), rng.choice([1, 1, 2, 3])
        get = rng.choice(GETS).replace("/query/.*", f"/query/{query_id}")
        rule: dict[str, Any] = {"method": "GET", "path": get, "nth": nth, "times": times}
        if kind == "429":
            rule.update(status=429, json={"error": "Too many requests"})
        elif kind == "429-retry-after":
            rule.update(status=429, json={"error": "Too many requests"},
                        headers={"Retry-After": str(rng.choice([0, 0, 1, 3]))})  # fmt: skip
        elif kind == "5xx":
            name, status, body, ctype = rng.choice(ERRORS)
            kind = name
            rule.update(status=status, body=body, headers={"Content-Type": ctype})
        elif kind in ("reset", "truncate"):
            rule.update(action=kind, path="/execution/.*/results$" if rng.random() < 0.7 else get)
        elif kind == "slow":
            rule.update(action="slow", delay=TIMEOUT * 1.6, times=1)
        else:
            rule.update(method="POST", path=f"/query/{query_id}/execute$", times=1, nth=1)
            if kind == "execute-5xx":
                rule.update(status=rng.choice([502, 503, 504]), body="<html>bad gateway</html>")
            elif kind == "execute-after":
                rule.update(status=502, body="", when="after")  # created, then 502
            elif kind == "execute-slow":
                rule.update(action="slow", delay=TIMEOUT * 1.6)  # created, answer too late
            else:
                rule.update(status=500, json={"error": "An internal error occured"})
        totals.faults_injected[kind] += 1
        rules.append(rule)
    return rules


def check_errors_are_typed() -> None:
    """Every name in ERROR_TYPES is a real error class of ours (guards typos)."""
    import downstream.errors as errors

    for name in ERROR_TYPES:
        assert issubclass(getattr(errors, name), DownstreamError), name
