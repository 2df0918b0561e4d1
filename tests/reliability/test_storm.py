"""Seeded fault storms through the pipeline: a correct table or a clean typed failure.

``STORM_SEEDS`` sets how many seeds run (CI: 150 seeds = 300 query runs); a failing seed
replays exactly with ``STORM_FIRST_SEED=<seed> STORM_SEEDS=1``. The figures of the last
run are written to ``reports/reliability-storm.json`` for the README.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from downstream.emulator import DuneEmulator, serve

from .storm import PAGE_ROWS, Totals, check_errors_are_typed, run_seed

pytestmark = pytest.mark.slow
REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DuneEmulator, str]]:
    emulator = DuneEmulator()
    emulator.config.max_page_rows = PAGE_ROWS
    with serve(emulator) as url:
        yield emulator, url


def test_every_seed_ends_in_a_correct_table_or_a_clean_typed_failure(
    served: tuple[DuneEmulator, str], tmp_path: Path
) -> None:
    check_errors_are_typed()
    emulator, url = served
    first = int(os.environ.get("STORM_FIRST_SEED", "0"))
    seeds = int(os.environ.get("STORM_SEEDS", "150"))
    totals, broken = Totals(), []
    for seed in range(first, first + seeds):
        try:
            run_seed(seed, emulator, url, tmp_path, totals)
        except AssertionError as exc:
            broken.append(str(exc))
    REPORTS.mkdir(exist_ok=True)
    figures = totals.as_dict() | {"first_seed": first, "broken_seeds": len(broken)}
    (REPORTS / "reliability-storm.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    assert not broken, f"{len(broken)} seed(s) broke the invariant:\n" + "\n".join(broken)
    assert totals.rows_lost == 0 and totals.executions_paid_twice == 0
    # The storm must exercise both ends of the invariant, or it proves little.
    assert totals.completed > seeds // 4 and totals.failed_cleanly > seeds // 10
