"""``python -m downstream.emulator`` starts a server a benchmark can drive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from downstream.emulator import BUNDLED_DATA

ROOT = Path(__file__).resolve().parents[2]


def test_cli_serves_datasets_and_synthetic_rows_and_stops_on_terminate(tmp_path: Path) -> None:
    extra = tmp_path / "555"
    extra.mkdir()
    (extra / "query.json").write_text(
        '{"query_id": 555, "column_names": ["x"], "column_types": ["bigint"],'
        ' "seed_execution": {"age_hours": 1}}'
    )
    (extra / "rows.json").write_text('[{"x": 1}, {"x": 2}]')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "downstream.emulator",
            "--port",
            "0",
            "--data",
            str(BUNDLED_DATA),
            "--data",
            str(tmp_path),
            "--synthetic-rows",
            "100000",
            "--synthetic-query-id",
            "4242",
            "--max-page-rows",
            "20000",
            "--api-key",
            "bench",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Dune emulator listening on http://127.0.0.1:"), line
        base_url = line.split()[-1]
        with httpx.Client(base_url=base_url, headers={"X-Dune-Api-Key": "bench"}) as http:
            health = http.get("/_emulator/health").json()
            assert {4242, 1463956, 555} <= set(health["datasets"])
            assert http.get("/api/v1/query/555/results").json()["result"]["rows"] == [
                {"x": 1},
                {"x": 2},
            ]
            assert httpx.get(f"{base_url}/api/v1/query/4242/results").status_code == 401
            page = http.get("/api/v1/query/4242/results/csv?limit=30000").text
            assert page.count("\n") == 20001
            assert page.startswith(
                "block_time,block_number,amount_raw,amount_usd,symbol,tx_hash,success,block_date\n"
            )
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cli_help_lists_the_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "downstream.emulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--port",
        "--host",
        "--data",
        "--max-page-rows",
        "--max-datapoints",
        "--plan",
        "--api-key",
        "--csv-null",
        "--retry-after",
        "--synthetic-rows",
        "--synthetic-query-id",
    ):
        assert flag in result.stdout
