"""Prepare a Prefect server for the ``onchain`` deployments; safe to run again at any time.

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/bootstrap.py [--plan free]

Creates or updates, in order:

1. the Kubernetes work pool (``downstream-k8s``) with our base job template
   (``deployments/k8s-base-job-template.json``: PVC, Secret, resources), overwriting the
   template so the file stays the source of truth;
2. the process work pool (``downstream-local``) for runs from a checkout, if missing;
3. the global concurrency limits ``dune-low`` (executes) and ``dune-high`` (reads), with
   slot decay sized from the Dune plan, for ``DuneCredentials.global_rate_limit = "dune"``;
4. the ``DuneCredentials`` block type, and, only when ``DUNE_API_KEY`` is set, a block
   named ``dune`` holding that key (with ``DUNE_API_BASE_URL`` / ``DUNE_API_PLAN``) and
   ``global_rate_limit = "dune"``. On Kubernetes the key comes from a Secret instead.

``prefect deploy`` refuses deployments whose pool does not exist, so run this first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a plain checkout: make blocks/ and downstream/ importable
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect.client.orchestration import SyncPrefectClient, get_client  # noqa: E402
from prefect.client.schemas.actions import (  # noqa: E402
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectNotFound  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.workers.process import ProcessWorker  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from blocks.dune import DEFAULT_BLOCK_NAME, DuneCredentials  # noqa: E402
from downstream.dune import DEFAULT_BASE_URL  # noqa: E402
from downstream.dune.pacing import PLANS  # noqa: E402

K8S_POOL = "downstream-k8s"
LOCAL_POOL = "downstream-local"
TEMPLATE = ROOT / "deployments" / "k8s-base-job-template.json"
RATE_LIMIT_PREFIX = "dune"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python deployments/bootstrap.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--k8s-pool", default=K8S_POOL, help="Kubernetes work pool name")
    parser.add_argument("--local-pool", default=LOCAL_POOL, help="process work pool name")
    parser.add_argument("--no-local-pool", action="store_true", help="skip the process pool")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="base job template")
    parser.add_argument(
        "--plan",
        choices=[p for p, limits in PLANS.items() if limits],
        default="free",
        help="Dune plan whose per-minute limits size dune-low/dune-high (default free)",
    )
    return parser.parse_args(argv)


def ensure_k8s_pool(client: SyncPrefectClient, name: str, template: dict[str, Any]) -> str:
    existed = _pool_exists(client, name)
    client.create_work_pool(
        WorkPoolCreate(name=name, type="kubernetes", base_job_template=template), overwrite=True
    )
    return "template updated" if existed else "created"


def ensure_process_pool(client: SyncPrefectClient, name: str) -> str:
    if _pool_exists(client, name):
        return "exists"
    template = ProcessWorker.get_default_base_job_template()
    client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
    return "created"


def _pool_exists(client: SyncPrefectClient, name: str) -> bool:
    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        return False
    return True


def ensure_rate_limit(client: SyncPrefectClient, name: str, per_minute: float) -> str:
    """A limit of ``per_minute`` slots that each free up after 60/per_minute seconds."""
    limit, decay = int(per_minute), per_minute / 60
    try:
        client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
        )
        return f"created (limit {limit}, decay {decay:.3f}/s)"
    client.update_global_concurrency_limit(
        name,
        GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay, active=True),
    )
    return f"updated (limit {limit}, decay {decay:.3f}/s)"


def ensure_blocks() -> str:
    DuneCredentials.register_type_and_schema()
    key = os.environ.get("DUNE_API_KEY", "").strip()
    if not key:
        return "block type registered; no DUNE_API_KEY, so no 'dune' block saved"
    block = DuneCredentials.model_validate(
        {
            "api_key": SecretStr(key),
            "base_url": os.environ.get("DUNE_API_BASE_URL") or DEFAULT_BASE_URL,
            "plan": os.environ.get("DUNE_API_PLAN", "").strip().lower() or "free",
            "global_rate_limit": RATE_LIMIT_PREFIX,
        }
    )
    block.save(DEFAULT_BLOCK_NAME, overwrite=True)
    return f"block type registered; block {DEFAULT_BLOCK_NAME!r} saved from DUNE_API_KEY"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not PREFECT_API_URL.value():
        print("error: set PREFECT_API_URL to the server to bootstrap", file=sys.stderr)
        return 2
    template = json.loads(args.template.read_text())
    low, high = PLANS[args.plan] or (0, 0)
    with get_client(sync_client=True) as client:
        outcome = ensure_k8s_pool(client, args.k8s_pool, template)
        print(f"work pool {args.k8s_pool} (kubernetes): {outcome}")
        if not args.no_local_pool:
            outcome = ensure_process_pool(client, args.local_pool)
            print(f"work pool {args.local_pool} (process): {outcome}")
        for kind, per_minute in (("low", low), ("high", high)):
            name = f"{RATE_LIMIT_PREFIX}-{kind}"
            print(f"global concurrency limit {name}: {ensure_rate_limit(client, name, per_minute)}")
    print(f"DuneCredentials: {ensure_blocks()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
