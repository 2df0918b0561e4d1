"""The benchmark harness (issue 6): its arithmetic, and a small real run so it cannot rot.

The peers (dune-client, dlt) live in the ``bench`` extra, so the run here uses only the
contenders the dev environment has; CI runs the whole thing with ``./run bench --smoke``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.harness import parse_rows

ROOT = Path(__file__).resolve().parents[1]


def test_row_counts_accept_k_and_m_suffixes() -> None:
    assert parse_rows("10k, 100K,1M,2_500,1.5m") == [10_000, 100_000, 1_000_000, 2_500, 1_500_000]


def _run(contender: str, rows: int, work_s: float, rss: float, **kw: Any) -> dict[str, Any]:
    base = {
        "contender": contender,
        "rows": rows,
        "repetition": 0,
        "rerun": False,
        "ok": True,
        "work_s": work_s,
        "work_cpu_s": work_s * 1.5,
        "wall_s": work_s + 1,
        "peak_rss_mb": rss,
        "requests": 33,
        "bytes_down": 272_000_000,
        "bytes_by_kind": {"latest": 1_000, "results": 271_999_000},
        "wrong_values": {},
    }
    return base | kw


def _data(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "environment": {
            "date": "2026-12-03 12:00 UTC",
            "commit": "abc1234",
            "cores": 2,
            "ram_gib": 23.5,
            "cpu": "test",
            "python": "3.11.7",
            "sqlite": "3.40.1",
            "versions": {"downstream": "0.1.0"},
        },
        "command": "./run bench --rows 100k,1M",
        "rows": [100_000, 1_000_000],
        "repeat": 1,
        "contenders": ["core", "dlt", "fetch-only", "load-only"],
        "page_rows": 31_250,
        "notes": [],
        "runs": runs,
    }


def test_the_table_shows_ratios_and_the_targets_are_judged_from_the_figures() -> None:
    data = _data(
        [
            _run("core", 100_000, 1.0, 100),
            _run("core", 1_000_000, 5.0, 110),
            _run("core", 1_000_000, 4.0, 120, repetition=1),
            _run("core", 1_000_000, 6.0, 100, repetition=2),
            _run(
                "core",
                1_000_000,
                0.1,
                90,
                rerun=True,
                requests=1,
                bytes_down=1_000,
                bytes_by_kind={"latest": 1_000},
            ),
            _run("dlt", 1_000_000, 20.0, 600, wrong_values={"amount_raw": 500, "symbol": 20}),
            _run("fetch-only", 1_000_000, 4.0, 90),
            _run("load-only", 1_000_000, 2.5, 500),
        ]
    )
    text = report.render(data)
    core_row = next(line for line in text.splitlines() if line.startswith("| 1M | core |"))
    # median of 5, 4, 6 seconds -> 200,000 rows/s; ceiling = fetch-only (250,000 rows/s)
    assert "| 200,000 | 1.00x | 80% | 5.00 (4.00–6.00) | 7.50 |" in core_row
    assert core_row.endswith("| 1 | 0.001 | none |")
    dlt_row = next(line for line in text.splitlines() if line.startswith("| 1M | dlt |"))
    assert "| 50,000 | 4.00x |" in dlt_row
    assert dlt_row.endswith("| amount_raw 500, symbol 20 |")
    targets = "\n".join(report.targets(data))
    assert "met: throughput ≥ 2x the faster peer at 1M rows" in targets
    assert "= 4.00x" in targets
    assert "met: ≥ 60% of min(fetch-only, load-only) at 1M rows: 80% of fetch-only" in targets
    assert "met: RSS flat within 25% from 100k to 1M: 100 -> 110 MB (+10%)" in targets
    assert "met: RSS ≤ 1/4 of the peers' at 1M rows: core 110 MB = 18%" in targets
    assert "flow within 10% of core: **not measured**" in targets
    assert "met: zero result-page bytes on a rerun" in targets


def test_a_failed_contender_is_shown_not_hidden() -> None:
    data = _data([_run("core", 1_000_000, 5.0, 100), _run("dlt", 1_000_000, 0, 0, ok=False)])
    assert "| 1M | dlt | failed (1) |" in report.table(data)


@pytest.mark.slow
def test_smoke_run_of_the_harness_writes_the_table_and_the_raw_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--rows",
            "5k",
            "--repeat",
            "1",
            "--contenders",
            "core,fetch-only,load-only",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 5k | core |" in result.stdout
    assert "Targets (issue 6):" in result.stdout
    data = json.loads(out.read_text())
    runs = {(r["contender"], r["rerun"]): r for r in data["runs"]}
    assert runs[("core", False)]["rows_in_db"] == 5_000
    assert runs[("load-only", False)]["rows_in_db"] == 5_000
    assert runs[("fetch-only", False)]["rows_reported"] == 5_000
    assert runs[("core", False)]["wrong_values"] == {}
    rerun = runs[("core", True)]
    assert rerun["bytes_by_kind"].get("results", 0) == 0  # skipped by the ledger
