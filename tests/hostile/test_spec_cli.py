"""Hostile spec files through the command line: exit 2, no traceback, no request to Dune.

Each file here once got through (a traceback, or "all valid" and then a failure at run
time); ``test_spec_fuzz.py`` explores the space, these pin the user-visible contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from downstream.emulator import DuneEmulator

from .conftest import KEY

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

CASES: dict[str, bytes] = {
    "nested too deeply": b"queries: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "NUL character": b"queries:\n  - {name: a, query_id: 1463956}\n\x00\n",
    "yes as a query id": b"queries:\n  - {name: a, query_id: yes}\n",
    "NaN parameter": b"queries:\n  - {name: a, query_id: 1463956, parameters: {x: .nan}}\n",
    "id beyond Dune's": b"queries:\n  - {name: a, query_id: 99999999999}\n",
    "lone surrogate": b'queries:\n  - {name: a, query_id: 1463956, parameters: {x: "\\ud800"}}\n',
}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DUNE_")}
    return subprocess.run(
        [sys.executable, "flows/onchain.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_spec_exits_2_without_a_traceback_or_a_request(
    case: str,
    tmp_path: Path,
    prefect_api_url: str,
    emulator: DuneEmulator,
    base_url: str,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(CASES[case])
    db = tmp_path / "bronze.db"
    env = {
        "PREFECT_API_URL": prefect_api_url,
        "DUNE_API_KEY": KEY,
        "DUNE_API_BASE_URL": base_url,
        "DUNE_API_PLAN": "none",
    }
    with ThreadPoolExecutor(2) as pool:
        check, run = pool.map(
            lambda extra: cli("--spec", str(spec), "--db", str(db), *extra, env=env),
            [["--check"], []],
        )

    for done in (check, run):
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert f"error: {spec} is invalid (1 problem(s)):\n  - " in done.stderr
        assert len(done.stderr.strip().splitlines()) == 2, done.stderr
    assert emulator.stats()["requests_total"] == 0
    assert not db.exists()
