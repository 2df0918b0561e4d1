"""A local, scriptable emulator of Dune's HTTP API (``/api/v1``), for tests and benchmarks.

Built only from ``docs/dune-api.md``; it shares no code with the Dune client.

    emulator = DuneEmulator.bundled()
    emulator.set_script(1463956, [{"state": "QUERY_STATE_PENDING", "polls": 3}], "completed")
    emulator.add_fault({"method": "GET", "path": "/results$", "status": 502, "body": "<html>"})
    with serve(emulator) as base_url:
        ...  # point the client at base_url

See ``__main__.py`` for the command line and ``control.py`` for the HTTP control API.
"""

from __future__ import annotations

from .clock import Clock
from .config import PLANS, EmulatorConfig
from .datasets import Dataset, Parameter, ParamFilter, SeedSpec
from .emulator import BUNDLED_DATA, DuneEmulator
from .executions import Script, Step
from .faults import FaultRule
from .server import serve

__all__ = [
    "BUNDLED_DATA",
    "PLANS",
    "Clock",
    "Dataset",
    "DuneEmulator",
    "EmulatorConfig",
    "FaultRule",
    "ParamFilter",
    "Parameter",
    "Script",
    "SeedSpec",
    "Step",
    "serve",
]
