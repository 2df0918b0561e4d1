"""Two pipeline runs started at once on one database file and the same queries."""

from __future__ import annotations

import json
import random
import subprocess
import sys
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
KEY = "concurrency-key"
QUERIES: list[dict[str, Any]] = [
    {"name": "first", "query_id": 71, "primary_key": ["id"]},
    {"name": "second", "query_id": 72, "mode": "replace", "primary_key": ["id"]},
    {"name": "third", "query_id": 73},
]


def test_two_runs_at_once_execute_each_query_once_and_never_lock_or_duplicate(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    emulator = DuneEmulator()
    emulator.config.max_page_rows = 40
    for q in QUERIES:  # no earlier execution: both runs decide to execute
        emulator.add_dataset(q["query_id"], wire_rows(1, rng), column_names=COLUMNS,
                             column_types=TYPES)  # fmt: skip
        emulator.set_script(q["query_id"], [{"state": "QUERY_STATE_EXECUTING", "seconds": 0.5}])
    db = tmp_path / "shared.db"
    with serve(emulator) as url:
        scenario = tmp_path / "run.json"
        scenario.write_text(json.dumps({"url": url, "key": KEY, "db": str(db),
                                        "queries": QUERIES}))  # fmt: skip
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.reliability.crash_child",
                    str(scenario),
                    "-1",
                    str(tmp_path / f"run{i}.progress"),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
        outputs = [r.communicate(timeout=180)[0] for r in runs]
        assert [r.returncode for r in runs] == [0, 0], outputs
        assert not any("database is locked" in o for o in outputs), outputs
        assert emulator.stats()["executions_created_total"] == len(QUERIES)

        # What one run alone makes of the same executions, for comparison.
        reference = tmp_path / "alone.db"
        client = DuneClient(make_http_client(url), KEY)
        results = pipeline.run_spec(client, reference, Spec.model_validate({"queries": QUERIES}))
        assert {r.source for r in results} == {"latest"}
        assert emulator.stats()["executions_created_total"] == len(QUERIES)

    assert integrity(db) == "ok"
    for q in QUERIES:
        assert snapshot(db, q["name"]) == snapshot(reference, q["name"])
        ids = [row[0] for row in snapshot(db, q["name"])]
        assert len(ids) == len(set(ids)) == len(wire_rows(1, random.Random(0)))  # no duplicates
    assert loaded_ledger(db) == loaded_ledger(reference)
