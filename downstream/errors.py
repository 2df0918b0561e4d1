"""Every error Downstream raises, in one tree.

Callers catch at the level they care about::

    DownstreamError
    ├── DuneError                       anything that went wrong talking to Dune
    │   ├── DuneAPIError                Dune answered with an HTTP error (status_code, message)
    │   │   ├── DuneBadRequest          400: bad parameters, malformed id, limit=0 ...
    │   │   ├── DuneAuthError           401/403: invalid key, archived or foreign query
    │   │   ├── DunePaymentRequired     402: credit limit per billing cycle or per request
    │   │   ├── DuneNotFound            404: query, execution or parameter combination unknown
    │   │   ├── DuneRateLimited         429 after our retries ran out (retry_after)
    │   │   └── DuneServerError         5xx after our retries ran out (or 500 on execute)
    │   ├── DuneTransportError          connection errors and timeouts after our retries
    │   ├── DuneProtocolError           a reply that breaks the API contract (bad JSON,
    │   │   │                           unknown state, pages from two executions, rows lost)
    │   │   └── UnknownExecutionState
    │   └── ExecutionError              the execution itself did not give a usable result
    │       ├── ExecutionFailed         FAILED, with Dune's error type and message
    │       ├── ExecutionCancelled      CANCELLED (by us, the UI or someone else)
    │       ├── ExecutionExpired        EXPIRED: the stored result is gone
    │       ├── ExecutionPartial        COMPLETED_PARTIAL and the caller did not allow it
    │       └── ExecutionTimedOut       our deadline passed; the execution was cancelled
    ├── SpecError                       the query spec is invalid (every problem, with its path)
    ├── LoadError                       a result cannot be loaded as asked (NULL keys, ...)
    └── ConfigurationError              something needed to start is missing (e.g. the key)

Every Dune error names the query id and/or execution id it concerns. None of them ever
contains the API key: messages are built from Dune's own text and redacted by the client.
``transient`` says whether trying the same thing again later may succeed; orchestration
retries only those.
"""

from __future__ import annotations


class DownstreamError(Exception):
    """Base of every error this package raises on purpose."""

    transient: bool = False


class DuneError(DownstreamError):
    """Something went wrong talking to Dune about a query or an execution."""

    def __init__(
        self,
        message: str,
        *,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.message = message
        self.query_id = query_id
        self.execution_id = execution_id
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.query_id is not None:
            where.append(f"query {self.query_id}")
        if self.execution_id is not None:
            where.append(f"execution {self.execution_id}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class DuneAPIError(DuneError):
    """Dune answered with an HTTP error status; ``message`` is Dune's own text."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str = "",
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.url = url
        super().__init__(
            f"HTTP {status_code}: {message}", query_id=query_id, execution_id=execution_id
        )


class DuneBadRequest(DuneAPIError):
    """400: Dune rejected the request itself (parameters, ids, options)."""


class DuneAuthError(DuneAPIError):
    """401/403: the key is wrong, lacks permission, or the query is archived/unsaved."""


class DunePaymentRequired(DuneAPIError):
    """402: the request would exceed a credit limit (per billing cycle or per request)."""


class DuneNotFound(DuneAPIError):
    """404: the query, execution, or the parameter combination has no result."""


class DuneRateLimited(DuneAPIError):
    """429 that outlasted our retry budget; ``retry_after`` is Dune's hint in seconds."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        url: str = "",
        retry_after: float | None = None,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message, status_code=status_code, url=url, query_id=query_id, execution_id=execution_id
        )


class DuneServerError(DuneAPIError):
    """5xx that outlasted our retry budget (or an ambiguous failure we refused to retry)."""

    transient = True


class DuneTransportError(DuneError):
    """The connection failed or timed out, and retrying did not help."""

    transient = True


class DuneProtocolError(DuneError):
    """Dune's reply broke the API contract we rely on, so the data cannot be trusted."""

    transient = True


class UnknownExecutionState(DuneProtocolError):
    """Dune reported a state this client does not know; we refuse to guess what it means."""

    transient = False

    def __init__(
        self, state: str, *, query_id: int | None = None, execution_id: str | None = None
    ) -> None:
        self.state = state
        super().__init__(
            f"unknown execution state {state!r}", query_id=query_id, execution_id=execution_id
        )


class ExecutionError(DuneError):
    """The execution ended without a usable result; ``state`` is Dune's final state."""

    def __init__(
        self,
        message: str,
        *,
        state: str,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.state = state
        super().__init__(message, query_id=query_id, execution_id=execution_id)


class ExecutionFailed(ExecutionError):
    """Dune ran the query and it failed (SQL error, engine timeout, ...)."""

    def __init__(
        self,
        error_type: str,
        error_message: str,
        *,
        query_id: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(
            f"execution failed: {error_type}: {error_message}",
            state="QUERY_STATE_FAILED",
            query_id=query_id,
            execution_id=execution_id,
        )


class ExecutionCancelled(ExecutionError):
    """The execution was cancelled before it produced a result."""


class ExecutionExpired(ExecutionError):
    """The stored result expired (possibly between two pages); the next run executes anew."""


class ExecutionPartial(ExecutionError):
    """Dune truncated the result (COMPLETED_PARTIAL) and the caller did not accept that."""


class ExecutionTimedOut(ExecutionError):
    """Our overall deadline passed while waiting; we cancelled the execution."""


class SpecError(DownstreamError, ValueError):
    """The query spec is invalid; ``problems`` lists each one as ``path: what is wrong``.

    Each problem is one printable line (see ``one_line``), whatever text the spec held.
    """

    def __init__(self, problems: list[str], *, source: str = "spec") -> None:
        self.problems = [one_line(p) for p in problems]
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


class LoadError(DownstreamError):
    """A result cannot be loaded as the spec asks; nothing was written.

    The message is one printable line: it may quote Dune's column names, which can hold
    anything (newlines, NUL, lone surrogates).
    """

    def __init__(self, message: str, *, query_name: str | None = None) -> None:
        self.query_name = query_name
        super().__init__(one_line(f"{query_name}: {message}" if query_name else message))


class ConfigurationError(DownstreamError):
    """Something needed before any work is missing or wrong (credentials, paths)."""


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x00``, ``\\u202e``,
    ``\\ud800``): one line, safe to print and to encode, whatever the user's file held."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same operation later may succeed (used by orchestration)."""
    if isinstance(exc, DownstreamError):
        return exc.transient
    return False
