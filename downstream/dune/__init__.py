"""The Dune HTTP API client: models, parameters, pacing and the client itself."""

from downstream.dune.client import (
    DEFAULT_BASE_URL,
    DuneClient,
    ExecuteOutcome,
    is_fresh,
    make_http_client,
)
from downstream.dune.models import (
    CsvPage,
    ExecutionState,
    ExecutionStatus,
    ResultMetadata,
    ResultPage,
)
from downstream.dune.pacing import Limiter, PollPolicy, RateLimiter, RetryPolicy, shared_limiter

__all__ = [
    "DEFAULT_BASE_URL",
    "CsvPage",
    "DuneClient",
    "ExecuteOutcome",
    "ExecutionState",
    "ExecutionStatus",
    "Limiter",
    "PollPolicy",
    "RateLimiter",
    "ResultMetadata",
    "ResultPage",
    "RetryPolicy",
    "is_fresh",
    "make_http_client",
    "shared_limiter",
]
