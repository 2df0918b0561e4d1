"""SIGKILL a pipeline process at every safe point and at random moments.

After each kill: ``PRAGMA integrity_check`` is ok, every table is in its before or its
after state (never in between), and the next normal run completes with exactly the
expected rows and ledger. Figures go to ``reports/reliability-crash.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from downstream import pipeline
from downstream.dune import DuneClient, make_http_client
from downstream.emulator import DuneEmulator, serve
from downstream.spec import Spec

from .storm import COLUMNS, TYPES, integrity, loaded_ledger, snapshot, wire_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
KEY = "crash-key"
QUERIES: list[dict[str, Any]] = [
    {"name": "keyed", "query_id": 61, "primary_key": ["id"],
     "metrics": [{"asset": "ETH", "metric": "price", "date_column": "ts",
                  "value_column": "price"}]},
    {"name": "replaced", "query_id": 62, "primary_key": ["id"], "mode": "replace"},
    {"name": "hashed", "query_id": 63},
]  # fmt: skip
TABLES = ("keyed", "replaced", "hashed", "digital_asset_metric", "recorded_raw_metric")
RANDOM_KILLS = int(os.environ.get("CRASH_RANDOM_KILLS", "12"))


def copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def state(db: Path) -> dict[str, Any]:
    return {t: snapshot(db, t) for t in TABLES} | {"ledger": loaded_ledger(db)}


def run_child(scenario: Path, kill_at: int, progress: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_child", str(scenario), str(kill_at),
         str(progress)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def where_it_died(progress: Path) -> str:
    lines = progress.read_text().splitlines() if progress.exists() else []
    if not lines:
        return "starting up"
    last = lines[-1].split(" ", 1)[1]
    query, _, step = last.partition(":")
    if last == "done" or (step == "committed" and query == QUERIES[-1]["name"]):
        return "after the last commit"
    if step == "committed":
        return "between tables"
    if step.startswith("page") or step == "before-commit":
        return "inside a load transaction"
    return f"before loading ({step})"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three tables at v1 (``base.db``), the same after a clean load of v2 (``after.db``)."""
    work = tmp_path_factory.mktemp("crash")
    rng = random.Random(7)
    emulator = DuneEmulator()
    emulator.config.max_page_rows = 40
    with serve(emulator) as url:
        for q in QUERIES:
            emulator.add_dataset(
                q["query_id"], wire_rows(1, rng), column_names=COLUMNS, column_types=TYPES,
                seed_execution={"age_hours": 3, "parameters": {}},
            )  # fmt: skip
        spec = Spec.model_validate({"queries": QUERIES})
        client = DuneClient(make_http_client(url), KEY)
        base, after = work / "base.db", work / "after.db"
        assert all(r.outcome == "loaded" for r in pipeline.run_spec(client, base, spec))
        for q in QUERIES:
            emulator.replace_rows(q["query_id"], wire_rows(2, rng))
            emulator.seed_execution(q["query_id"], {}, 0.5)
        copy_db(base, after)
        assert all(r.outcome == "loaded" for r in pipeline.run_spec(client, after, spec))
        # Slow every page a little, so random kills land inside load transactions too.
        emulator.add_fault(
            {"method": "GET", "path": "/execution/.*/results$", "action": "slow",
             "delay": 0.02, "times": 1_000_000}
        )  # fmt: skip
        yield {"work": work, "url": url, "client": client, "spec": spec, "emulator": emulator,
               "before": state(base), "after": state(after), "base": base}  # fmt: skip


def wait_for_first_checkpoint(progress: Path) -> float:
    """Wait (past the interpreter's start-up) until the run reaches its first safe point."""
    deadline = time.monotonic() + 60
    while not (progress.exists() and progress.stat().st_size):
        assert time.monotonic() < deadline, "the child never started its run"
        time.sleep(0.005)
    return time.monotonic()


def crash_and_recover(world: dict[str, Any], name: str, kill: Any) -> str:
    """Kill one child run as ``kill`` says, check the invariant, recover, check again."""
    work: Path = world["work"]
    db, progress, scenario = work / f"{name}.db", work / f"{name}.progress", work / f"{name}.json"
    copy_db(world["base"], db)
    scenario.write_text(json.dumps({"url": world["url"], "key": KEY, "db": str(db),
                                    "queries": QUERIES}))  # fmt: skip
    child = kill(scenario, progress)
    stderr = child.stderr.read().decode() if child.stderr else ""
    code = child.wait(timeout=120)
    died = where_it_died(progress) if code == -signal.SIGKILL else "finished first"
    assert code in (0, -signal.SIGKILL), f"{name}: child exited {code}: {stderr[-2000:]}"

    assert integrity(db) == "ok", f"{name}: integrity_check failed ({died})"
    now = state(db)
    for table in TABLES:
        assert now[table] in (world["before"][table], world["after"][table]), (
            f"{name}: {table} is neither before nor after ({died})"
        )
    assert set(world["before"]["ledger"]) <= set(now["ledger"]) <= set(world["after"]["ledger"])

    results = pipeline.run_spec(world["client"], db, world["spec"], concurrency=1)
    assert all(r.outcome in ("loaded", "skipped") for r in results), [r.error for r in results]
    assert state(db) == world["after"], f"{name}: recovery did not reach the expected state"
    return died


def test_sigkill_at_every_safe_point_then_recover(world: dict[str, Any]) -> None:
    work: Path = world["work"]
    counted = work / "count.progress"
    dry = work / "count.json"
    copy_db(world["base"], work / "count.db")
    dry.write_text(json.dumps({"url": world["url"], "key": KEY, "db": str(work / "count.db"),
                               "queries": QUERIES}))  # fmt: skip
    assert run_child(dry, -1, counted).wait(timeout=120) == 0
    points = len(counted.read_text().splitlines())
    assert points > 20  # decide/submit/wait + pages + commit for three queries

    died: Counter[str] = Counter()
    for k in range(points):
        died[crash_and_recover(world, f"point{k}", lambda s, p, k=k: run_child(s, k, p))] += 1

    rng = random.Random(int(os.environ.get("CRASH_SEED", "1")))
    timed = work / "time.json"
    copy_db(world["base"], work / "time.db")
    timed.write_text(json.dumps({"url": world["url"], "key": KEY, "db": str(work / "time.db"),
                                 "queries": QUERIES}))  # fmt: skip
    child = run_child(timed, -1, work / "time.progress")
    started = wait_for_first_checkpoint(work / "time.progress")
    assert child.wait(timeout=120) == 0
    duration = time.monotonic() - started  # from the first checkpoint to the end

    def at_random(scenario: Path, progress: Path) -> subprocess.Popen[bytes]:
        child = run_child(scenario, -1, progress)
        wait_for_first_checkpoint(progress)
        time.sleep(rng.uniform(0, duration))
        child.send_signal(signal.SIGKILL)
        return child

    for i in range(RANDOM_KILLS):
        died[crash_and_recover(world, f"random{i}", at_random)] += 1

    REPORTS.mkdir(exist_ok=True)
    figures = {"crash_points_tried": points + RANDOM_KILLS, "safe_points": points,
               "random_kills": RANDOM_KILLS, "where_the_kills_landed": dict(died),
               "recoveries_exact": points + RANDOM_KILLS}  # fmt: skip
    (REPORTS / "reliability-crash.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    assert died["inside a load transaction"] > 0 and died["between tables"] > 0
