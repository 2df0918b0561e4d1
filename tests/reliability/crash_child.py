"""A pipeline run in its own process that can SIGKILL itself at its Nth safe point.

    python -m tests.reliability.crash_child SCENARIO.json KILL_AT PROGRESS_FILE

``SCENARIO.json`` holds the emulator URL, the key, the database path and the query specs.
Every checkpoint (deciding, submitting, waiting, each page, before and after each commit)
is appended to ``PROGRESS_FILE`` as it is reached; at checkpoint number ``KILL_AT`` the
process kills itself with SIGKILL, which no code can catch or clean up after. A negative
``KILL_AT`` runs to the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from downstream import pipeline
from downstream.dune import DuneClient, make_http_client
from downstream.spec import QuerySpec


def main(scenario_path: str, kill_at: int, progress_path: str) -> int:
    scenario = json.loads(Path(scenario_path).read_text())
    progress = open(progress_path, "a", buffering=1)  # noqa: SIM115 - kept open until death
    count = 0

    def checkpoint(where: str) -> None:
        nonlocal count
        progress.write(f"{count} {where}\n")
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        count += 1

    client = DuneClient(make_http_client(scenario["url"]), scenario["key"])
    db = scenario["db"]
    for raw in scenario["queries"]:
        spec = QuerySpec.model_validate(raw)
        checkpoint(f"{spec.name}:decide")
        plan = pipeline.decide(client, db, spec)
        checkpoint(f"{spec.name}:submit")
        plan = pipeline.submit(client, db, plan)
        checkpoint(f"{spec.name}:wait")
        plan = pipeline.wait(client, plan)
        pipeline.load(
            client, db, plan, checkpoint=lambda where, n=spec.name: checkpoint(f"{n}:{where}")
        )
    checkpoint("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
