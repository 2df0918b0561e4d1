"""The query spec: which Dune queries to keep, how, and where.

One pydantic model serves the YAML file and the Prefect flow parameters (so the UI renders
a form). Everything structural is validated before any API call, and every problem is
reported with its path (``queries[2].primary_key: ...``), not just the first one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from downstream.errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# Tables Downstream owns in the bronze database; a query cannot be loaded over them.
RESERVED_TABLES = frozenset({"digital_asset_metric", "recorded_raw_metric", "dune_execution"})


def _check_parameter_value(value: object) -> object:
    # Checked before the union so the user sees one message per bad value, not one per
    # type it failed to be (and so YAML's yes/no never turn into numbers).
    if isinstance(value, bool):
        raise ValueError("true/false is not a Dune parameter type; quote it to send text")
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("a multi-select list holds text values only")
    elif not isinstance(value, str | int | float | datetime | date):
        raise ValueError(
            f"expected text, a number, a date/datetime or a list of text, "
            f"got {type(value).__name__}"
        )
    return value


ParameterValue = Annotated[
    str | int | float | datetime | date | list[str], BeforeValidator(_check_parameter_value)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncrementalSpec(_Strict):
    """Read only recent rows: set a query parameter from the table's own watermark."""

    parameter: str = Field(min_length=1, description="Dune query parameter set from the watermark.")
    column: str = Field(min_length=1, description="Column whose maximum is the watermark.")
    lookback_days: float = Field(
        0, ge=0, description="Re-read this many days before the watermark (late data)."
    )


class MetricSpec(_Strict):
    """A result column that is a digital-asset metric, kept in ``recorded_raw_metric``."""

    asset: str = Field(min_length=1, description="Asset symbol, e.g. ETH.")
    metric: str = Field(min_length=1, description="Metric name, e.g. net_emission.")
    date_column: str = Field(min_length=1, description="Column with the observation date.")
    value_column: str = Field(min_length=1, description="Column with the value.")
    unit: str | None = Field(None, description="Unit of the value, e.g. ETH.")


class QuerySpec(_Strict):
    """One Dune query kept in one table."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="Target table name: lower case, digits and _, up to 63 characters."
    )
    query_id: int = Field(gt=0, description="Dune query id.")
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Dune query parameters: key -> value."
    )
    primary_key: list[str] | None = Field(
        None, description="Row identity for upserts; without it, a hash of the whole row."
    )
    mode: Literal["upsert", "replace"] = Field(
        "upsert", description="upsert: update by key and insert new rows; replace: swap all rows."
    )
    max_age_hours: float = Field(
        24, ge=0, description="Reuse the latest result if it ended within this; 0 = execute."
    )
    performance: Literal["medium", "large"] = Field("medium", description="Dune engine tier.")
    allow_partial: bool = Field(
        False, description="Accept a truncated (COMPLETED_PARTIAL) result, marked as partial."
    )
    timeout_minutes: float = Field(
        30, gt=0, le=24 * 60, description="Overall deadline for one execution."
    )
    incremental: IncrementalSpec | None = None
    metrics: list[MetricSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_TABLES or name.startswith(("sqlite_", "_")):
            raise ValueError(f"{name!r} is reserved for Downstream's own tables")
        return name

    @field_validator("primary_key")
    @classmethod
    def _key_columns(cls, key: list[str] | None) -> list[str] | None:
        if key is None:
            return None
        if not key:
            raise ValueError("give at least one column, or leave primary_key out")
        if any(not c for c in key):
            raise ValueError("column names cannot be empty")
        duplicates = sorted({c for c in key if key.count(c) > 1})
        if duplicates:
            raise ValueError(f"column {duplicates[0]!r} is listed twice")
        return key

    @model_validator(mode="after")
    def _consistent(self) -> QuerySpec:
        if self.incremental is not None:
            if self.mode == "replace":
                raise ValueError(
                    "incremental: a watermark reads only recent rows, so mode must be upsert "
                    "(replace would drop everything older)"
                )
            if not self.primary_key:
                raise ValueError(
                    "incremental: needs a primary_key, so re-read rows update instead of "
                    "duplicating"
                )
        return self

    def max_age_seconds(self) -> float:
        return self.max_age_hours * 3600.0


class Spec(_Strict):
    """The whole file: a list of queries with unique names."""

    queries: list[QuerySpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Spec:
        problems = []
        seen: dict[str, int] = {}
        metrics: dict[tuple[str, str], str] = {}
        sources: dict[str, int] = {}
        for i, q in enumerate(self.queries):
            # The ledger keys loads by execution: one execution can feed one table only.
            source = f"{q.query_id}:{sorted((k, str(v)) for k, v in q.parameters.items())}"
            if source in sources:
                problems.append(
                    f"queries[{i}].query_id: query {q.query_id} with the same parameters is "
                    f"already loaded by queries[{sources[source]}]; one Dune execution can "
                    "feed one table"
                )
            sources.setdefault(source, i)
            if q.name in seen:
                problems.append(
                    f"queries[{i}].name: {q.name!r} is already used by queries[{seen[q.name]}]"
                )
            seen.setdefault(q.name, i)
            for j, m in enumerate(q.metrics):
                key = (m.asset, m.metric)
                if key in metrics:
                    problems.append(
                        f"queries[{i}].metrics[{j}]: {m.asset}/{m.metric} is already recorded "
                        f"by {metrics[key]}"
                    )
                metrics.setdefault(key, q.name)
        if problems:
            raise ValueError(_PROBLEMS + "\n".join(problems))
        return self

    def select(self, names: list[str] | None) -> Spec:
        """Only the named queries (``--only``); unknown names are an error listing them all."""
        if not names:
            return self
        known = {q.name for q in self.queries}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SpecError(
                [
                    f"--only: no query named {n!r} (known: {', '.join(sorted(known))})"
                    for n in unknown
                ]
            )
        return Spec(queries=[q for q in self.queries if q.name in names])


_PROBLEMS = "problems:\n"


def parse_spec(data: object, *, source: str = "spec") -> Spec:
    """Validate already-loaded data; raises ``SpecError`` listing every problem."""
    if data is None:
        raise SpecError(
            ["(top level): the spec is empty; expected a 'queries:' list"], source=source
        )
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        problems = [p for e in exc.errors() for p in _describe(e)]
        # Names are checked for uniqueness only once every query is valid; when some are
        # not, check what can be checked so the user still sees every problem at once.
        problems += [p for p in _duplicate_names(data) if p not in problems]
        raise SpecError(problems, source=source) from None


def _duplicate_names(data: object) -> list[str]:
    queries = data.get("queries") if isinstance(data, Mapping) else None
    if not isinstance(queries, list):
        return []
    seen: dict[object, int] = {}
    problems = []
    for i, q in enumerate(queries):
        name = q.get("name") if isinstance(q, Mapping) else None
        if isinstance(name, str) and name in seen:
            problems.append(f"queries[{i}].name: {name!r} is already used by queries[{seen[name]}]")
        if isinstance(name, str):
            seen.setdefault(name, i)
    return problems


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file; raises ``SpecError`` (never a traceback)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            [f"cannot read the file: {exc.strerror or exc}"], source=str(path)
        ) from None
    except UnicodeDecodeError:
        raise SpecError(["the file is not UTF-8 text"], source=str(path)) from None
    return parse_spec(_load_yaml(text, str(path)), source=str(path))


def _load_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError([f"{where}{exc.problem or exc}"], source=source) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"not valid YAML: {exc}"], source=source) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Mapping | list):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


_TYPE_TAGS = re.compile(r"^(str|int|float|datetime|date|list\[str\]|[a-z-]+\[.*\])$")


def _describe(error: Any) -> list[str]:
    """``queries[2].primary_key: <message>`` lines from one pydantic error."""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if message.startswith(_PROBLEMS):
        return message.removeprefix(_PROBLEMS).splitlines()
    path = ""
    for part in error.get("loc", ()):
        if isinstance(part, str) and _TYPE_TAGS.match(part):
            continue  # union member names add noise, not location
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    field = re.match(r"^([a-z_]+): (.*)$", message, re.S)
    if field and error.get("type") == "value_error" and field.group(1) in QuerySpec.model_fields:
        path, message = f"{path}.{field.group(1)}", field.group(2)
    kind = error.get("type")
    if kind == "extra_forbidden":
        message = "unknown field (check the spelling)"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "string_pattern_mismatch" and path.endswith(".name"):
        message = (
            "use lower case letters, digits and _, starting with a letter, at most 63 characters"
        )
    elif kind == "model_type":
        message = f"expected a mapping of fields, got {type(error.get('input')).__name__}"
    return [f"{path or '(top level)'}: {message}"]
