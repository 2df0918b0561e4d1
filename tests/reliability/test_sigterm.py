"""SIGTERM (what Kubernetes sends) ends a run cleanly and quickly, mid-load."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort

from downstream.emulator import DuneEmulator, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
KEY = "sigterm-key"
PAGES, PAGE_DELAY = 60, 0.25  # a load that would take 15 s or more


def test_sigterm_mid_load_rolls_back_and_ends_the_run_failed(
    prefect_api_url: str, tmp_path: Path
) -> None:
    emulator = DuneEmulator()
    emulator.config.max_page_rows = 100
    emulator.add_synthetic(9100001, PAGES * 100)
    emulator.add_fault({"method": "GET", "path": "/execution/.*/results$", "action": "slow",
                        "delay": PAGE_DELAY, "times": 1_000_000})  # fmt: skip
    spec = tmp_path / "big.yaml"
    spec.write_text("queries:\n  - {name: big, query_id: 9100001}\n")
    db = tmp_path / "bronze.db"
    with serve(emulator) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUNE_")}
        env.update(PREFECT_API_URL=prefect_api_url, DUNE_API_KEY=KEY, DUNE_API_BASE_URL=url,
                   DUNE_API_PLAN="none")  # fmt: skip
        run = subprocess.Popen(
            [sys.executable, "flows/onchain.py", "--spec", str(spec), "--db", str(db)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while emulator.stats()["rows_served"] < 300:  # a few pages into the load
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0]
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        output = run.communicate(timeout=60)[0]
        took = time.monotonic() - sent
        served = emulator.stats()["rows_served"]

    # Prefect's own handler (which ours chains to) marks the run Crashed and re-raises the
    # signal, so the process ends the conventional way for SIGTERM.
    assert run.returncode == -signal.SIGTERM, output
    assert "SIGTERM received: stopping" in output
    assert "Interrupted: stopped by SIGTERM (page:" in output  # the load rolled back
    # It stopped within a page or two, long before the rest of the load would have taken.
    assert served < PAGES * 100 / 2, served
    assert took < PAGES * PAGE_DELAY / 2, took
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "big" not in tables  # the first load rolled back entirely
        statuses = [r[0] for r in conn.execute("SELECT status FROM dune_execution")]
        assert statuses == ["failed"]
    with get_client(sync_client=True) as client:
        newest = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
    assert newest.state is not None and newest.state.is_crashed()  # recorded, not Running
    assert "termination signal" in (newest.state.message or "")
