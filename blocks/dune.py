"""The Prefect block that holds the Dune API key, and how a run finds its credentials."""

from __future__ import annotations

import hashlib
import os
from typing import Literal, cast, get_args

from prefect.blocks.core import Block
from prefect.concurrency.sync import rate_limit
from pydantic import Field, SecretStr

from downstream.dune import (
    DEFAULT_BASE_URL,
    DuneClient,
    Limiter,
    make_http_client,
    shared_limiter,
)
from downstream.errors import ConfigurationError

DEFAULT_BLOCK_NAME = "dune"
Plan = Literal["free", "plus", "enterprise", "none"]


class DuneCredentials(Block):
    """A Dune API key and where to send it.

    Save one once (``DuneCredentials(api_key="...").save("dune")``) and every run can
    load it by name; the key is stored encrypted by Prefect and shown as ``**********``.

    Example:
        ```python
        from blocks.dune import DuneCredentials

        credentials = DuneCredentials.load("BLOCK_NAME")
        with credentials.get_client() as dune:
            dune.get_latest_result(1463956)
        ```
    """

    _block_type_name = "Dune Credentials"
    _block_type_slug = "dune-credentials"
    _logo_url = "https://dune.com/assets/DuneLogoCircle.svg"  # type: ignore[assignment]
    _documentation_url = "https://docs.dune.com/api-reference/overview/authentication"  # type: ignore[assignment]
    _description = "A Dune Analytics API key, sent only as the X-Dune-Api-Key header."

    api_key: SecretStr = Field(..., description="Dune API key (sent as X-Dune-Api-Key).")
    base_url: str = Field(
        DEFAULT_BASE_URL, description="Dune API host; point it at an emulator for tests."
    )
    plan: Plan = Field(
        "free",
        description="Your Dune plan, to pace requests under its per-minute limits "
        "(none = no client-side pacing).",
    )

    global_rate_limit: str | None = Field(
        None,
        description="Prefix of two Prefect global concurrency limits with slot decay, "
        "<prefix>-low (executes) and <prefix>-high (reads), that pace every pod sharing "
        "this key (see README, 'Rate limits'); empty = pace per process only.",
    )

    def get_client(self) -> DuneClient:
        """A ready Dune client. The only place the key is unwrapped."""
        key = self.api_key.get_secret_value()
        scope = self.base_url + "#" + hashlib.sha256(key.encode()).hexdigest()[:12]
        limiter: Limiter = shared_limiter(self.plan, scope)
        if self.global_rate_limit:
            limiter = GlobalRateLimiter(limiter, self.global_rate_limit)
        return DuneClient(make_http_client(self.base_url), key, limiter=limiter)


class GlobalRateLimiter:
    """The process's token bucket, then a Prefect global rate limit shared by all pods.

    ``strict=True``: a missing limit is an error, not a silent no-op (Prefect's default).
    """

    def __init__(self, local: Limiter, prefix: str) -> None:
        self.local, self.prefix = local, prefix

    def acquire(self, kind: str) -> float:
        waited = self.local.acquire(kind)
        rate_limit(f"{self.prefix}-{kind}", strict=True)
        return waited


def resolve_credentials(block_name: str | None = None) -> DuneCredentials:
    """Find the credentials for a run, in this order:

    1. the block named ``block_name``, when given (flow parameter or ``--block``);
    2. the ``DUNE_API_KEY`` environment variable (with ``DUNE_API_BASE_URL``,
       ``DUNE_API_PLAN`` and ``DUNE_API_GLOBAL_RATE_LIMIT``);
    3. a saved ``DuneCredentials`` block named ``dune``.

    Missing everywhere is one clear error, raised before any work, naming all three.
    """
    if block_name:
        try:
            return cast(DuneCredentials, DuneCredentials.load(block_name))
        except ValueError as exc:
            raise ConfigurationError(
                f"no DuneCredentials block named {block_name!r} ({exc})"
            ) from None
    key = os.environ.get("DUNE_API_KEY", "").strip()
    if key:
        return DuneCredentials(
            api_key=SecretStr(key),
            base_url=os.environ.get("DUNE_API_BASE_URL") or DEFAULT_BASE_URL,
            plan=_plan_from_env(),
            global_rate_limit=os.environ.get("DUNE_API_GLOBAL_RATE_LIMIT") or None,
        )
    try:
        return cast(DuneCredentials, DuneCredentials.load(DEFAULT_BLOCK_NAME))
    except Exception:
        raise ConfigurationError(
            "no Dune API key found. Give one of: (1) a DuneCredentials block name "
            "(--block NAME, or the flow's credentials_block parameter); (2) the DUNE_API_KEY "
            "environment variable; (3) a DuneCredentials block saved as 'dune' "
            "(see README, 'Secrets')."
        ) from None


def _plan_from_env() -> Plan:
    plan = os.environ.get("DUNE_API_PLAN", "free").strip().lower()
    if plan not in get_args(Plan):
        raise ConfigurationError(
            f"DUNE_API_PLAN={plan!r} is not a Dune plan; use one of {', '.join(get_args(Plan))}"
        )
    return cast(Plan, plan)
