"""Query parameters shared by the four result endpoints, and the ``next_uri`` they produce.

``filters`` and ``sort_by`` are accepted, validated only for being strings, and
otherwise ignored (rows keep their stored order, nothing is filtered); they are
carried into ``next_uri`` like every other read parameter, as the spec advises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode


class BadRequest(Exception):
    """A 400 with Dune's ``{"error": message}`` body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_CARRIED = (
    "columns",
    "filters",
    "sort_by",
    "allow_partial_results",
    "ignore_max_datapoints_per_request",
)


@dataclass(frozen=True)
class ReadParams:
    """Parsed read parameters; ``carried`` holds the raw ones that go into ``next_uri``."""

    limit: int | None = None
    offset: int = 0
    offset_given: bool = False
    columns: tuple[str, ...] | None = None
    filters: str | None = None
    sample_count: int | None = None
    allow_partial: bool = False
    ignore_datapoint_cap: bool = False
    carried: dict[str, str] = field(default_factory=dict)
    params: dict[str, list[str]] = field(default_factory=dict)


def parse_read_params(items: Iterable[tuple[str, str]]) -> ReadParams:
    """Validate ``limit``/``offset``/``columns``/``sample_count`` and friends."""
    single: dict[str, str] = {}
    params: dict[str, list[str]] = {}
    for key, value in items:
        if key.startswith("params."):
            params.setdefault(key[len("params.") :], []).append(value)
        else:
            single.setdefault(key, value)
    limit = _int(single, "limit")
    offset = _int(single, "offset")
    sample_count = _int(single, "sample_count")
    if limit is not None and limit <= 0:
        raise BadRequest(f"limit must be a positive integer, got {limit}")
    if offset is not None and offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}")
    if sample_count is not None:
        if sample_count <= 0:
            raise BadRequest(f"sample_count must be a positive integer, got {sample_count}")
        if limit is not None or offset is not None or "filters" in single:
            raise BadRequest("sample_count cannot be combined with limit, offset or filters")
    columns = None
    if "columns" in single:
        columns = tuple(parse_columns(single["columns"]))
    return ReadParams(
        limit=limit,
        offset=offset or 0,
        offset_given=offset is not None,
        columns=columns,
        filters=single.get("filters"),
        sample_count=sample_count,
        allow_partial=_flag(single.get("allow_partial_results")),
        ignore_datapoint_cap=_flag(single.get("ignore_max_datapoints_per_request")),
        carried={k: single[k] for k in _CARRIED if k in single},
        params=params,
    )


def parse_columns(text: str) -> list[str]:
    """Split ``a,"b c","say \\"hi\\""`` into names; quotes allow commas and spaces."""
    names: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise BadRequest(f"unterminated quoted column name in {text!r}")
                char = text[i]
                if char == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif char == '"' and i + 1 < n and text[i + 1] == '"':
                    chars.append('"')
                    i += 2
                elif char == '"':
                    i += 1
                    break
                else:
                    chars.append(char)
                    i += 1
            names.append("".join(chars))
            if i < n and text[i] != ",":
                raise BadRequest(f"unexpected text after quoted column name in {text!r}")
            i += 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            names.append(text[i:end].strip())
            i = end + 1
    if not names or any(name == "" for name in names):
        raise BadRequest(f"invalid columns parameter {text!r}")
    return names


def next_uri(
    base_url: str, execution_id: str, csv: bool, params: ReadParams, limit: int, offset: int
) -> str:
    """Absolute URL of the next page, on the host the client used.

    Keys are sorted like Go's ``url.Values.Encode``; ``api_key`` and ``params.*``
    are not carried (the client must keep sending its key header).
    """
    query = dict(params.carried)
    query["limit"] = str(limit)
    query["offset"] = str(offset)
    path = f"/api/v1/execution/{execution_id}/results" + ("/csv" if csv else "")
    return f"{base_url}{path}?{urlencode(sorted(query.items()))}"


def _int(values: dict[str, str], key: str) -> int | None:
    if key not in values:
        return None
    try:
        return int(values[key])
    except ValueError:
        raise BadRequest(f"invalid {key} value {values[key]!r}: expected an integer") from None


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"
