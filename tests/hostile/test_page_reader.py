"""A refused result stops the page reader at once (found by the hostile-data tests).

Pages are read one ahead in a background thread (``pipeline.prefetch``). When the loader
refused a page, that thread lived on until the failed load's traceback was garbage
collected, and if it had already read the last page it then blocked for good handing
over its end marker: the 0-column result test took 5 s (the join timeout) to tear down.
"""

from __future__ import annotations

import threading
import time

from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator
from downstream.pipeline import prefetch, sync_query
from downstream.spec import QuerySpec

from .helpers import QID, TABLE, assert_refused, serve


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch" and t.is_alive()]


def test_a_refused_result_leaves_no_page_reader_behind(
    emulator: DuneEmulator, client: DuneClient, db_path: str
) -> None:
    serve(emulator, ["id", "ID"], ["bigint", "bigint"], [{"id": 1, "ID": 1}] * 2)
    client.max_page_rows = 1  # two pages

    result = sync_query(client, db_path, QuerySpec(name=TABLE, query_id=QID, max_age_hours=0))

    assert_refused(result, "LoadError", "the same name to SQLite")
    assert readers() == []


def test_closing_early_after_the_reader_has_read_everything_is_immediate() -> None:
    items = prefetch(iter(["page 1", "page 2"]), depth=1)
    assert next(items) == "page 1"
    time.sleep(0.3)  # the reader queues page 2, then waits to hand over the end marker

    started = time.monotonic()
    items.close()

    assert time.monotonic() - started < 1
    assert readers() == []
