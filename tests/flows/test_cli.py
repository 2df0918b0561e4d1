"""``python flows/onchain.py`` as a user runs it: exit codes, the summary, bad input, the key.

The README's demo command (``./run demo``) is run exactly as written, so it cannot rot.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from downstream.emulator import DuneEmulator

from .conftest import KEY

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, api_url: str, env: dict[str, str] | None = None, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DUNE_")}
    base.update(PREFECT_API_URL=api_url, **(env or {}))
    return subprocess.run(
        [*(command or [sys.executable, "flows/onchain.py"]), *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tables(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def test_the_readme_demo_command_loads_the_bundled_datasets(
    prefect_api_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "demo.db"
    done = cli("--db", str(db), api_url=prefect_api_url, command=["./run", "demo"])

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed: 3 queries loaded or up to date" in done.stdout
    for name in ("eth_net_emission", "typing_torture", "empty_result"):
        assert name in done.stdout
    counts = tables(db)
    assert counts["eth_net_emission"] == 1538
    assert counts["typing_torture"] == 8
    assert counts["dune_execution"] == 3


def test_an_invalid_spec_exits_2_naming_every_problem_before_any_request(
    prefect_api_url: str, tmp_path: Path, emulator: DuneEmulator, dune_url: str
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "queries:\n  - {name: Bad-Name, query_id: 1}\n  - {name: ok, query_id: -5, mode: merge}\n"
    )
    done = cli(
        "--spec",
        str(spec),
        api_url=prefect_api_url,
        env={"DUNE_API_KEY": KEY, "DUNE_API_BASE_URL": dune_url},
    )

    assert done.returncode == 2
    assert "queries[0].name" in done.stderr
    assert "queries[1].query_id" in done.stderr and "queries[1].mode" in done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.stats()["requests_total"] == 0


def test_a_missing_key_exits_2_naming_the_three_ways_to_give_one(
    prefect_api_url: str, tmp_path: Path
) -> None:
    done = cli("--db", str(tmp_path / "x.db"), api_url=prefect_api_url)

    assert done.returncode == 2
    assert "no Dune API key found" in done.stderr
    for way in ("DuneCredentials block", "DUNE_API_KEY", "'dune'"):
        assert way in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_failed_query_exits_1_and_the_key_never_shows(
    prefect_api_url: str, tmp_path: Path, emulator: DuneEmulator, dune_url: str
) -> None:
    emulator.set_script(9000001, [], "failed")
    db = tmp_path / "bronze.db"
    done = cli(
        "--spec",
        "deployments/demo.yaml",
        "--db",
        str(db),
        "--refresh",
        api_url=prefect_api_url,
        env={"DUNE_API_KEY": KEY, "DUNE_API_BASE_URL": dune_url, "DUNE_API_PLAN": "none"},
    )

    assert done.returncode == 1
    assert "typing_torture failed: " in done.stdout
    assert "Failed: 1 of 3 queries failed" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert KEY.encode() not in db.read_bytes()


def test_only_and_check(prefect_api_url: str, tmp_path: Path) -> None:
    checked = cli("--check", "--spec", "deployments/demo.yaml", api_url=prefect_api_url)
    assert checked.returncode == 0 and "3 queries, all valid" in checked.stdout

    unknown = cli("--demo", "--only", "nope", api_url=prefect_api_url)
    assert unknown.returncode == 2 and "no query named 'nope'" in unknown.stderr

    db = tmp_path / "only.db"
    one = cli("--demo", "--only", "typing_torture", "--db", str(db), api_url=prefect_api_url)
    assert one.returncode == 0, one.stdout + one.stderr
    assert set(tables(db)) >= {"typing_torture"} and "eth_net_emission" not in tables(db)
