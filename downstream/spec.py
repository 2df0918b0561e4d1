"""The query spec: which Dune queries to keep, how, and where.

One pydantic model serves the YAML file and the Prefect flow parameters (so the UI renders
a form). Everything structural is validated before any API call, and every problem is
reported with its path (``queries[2].primary_key: ...``), not just the first one.

Every problem is one printable line that starts with where it is:

* a field path: ``queries[2].primary_key``, ``queries[0].parameters.start``; a key that is
  not a plain word is quoted (``queries[0].parameters['start date']``);
* ``(top level)``: the document as a whole (empty, not a mapping, nested too deeply);
* ``line L, column C``: YAML that does not parse (syntax, tags, duplicate keys);
* ``(file)``: the file itself (unreadable, not UTF-8);
* ``--only``: a name given on the command line.

A spec that validates is usable as it is: values that would only fail later (a NaN
parameter, an infinite ``max_age_hours``, an id beyond Dune's, text with lone surrogates)
are refused here, before any request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterator, Mapping
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

from downstream.errors import SpecError, one_line

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# Dune answers an absurdly large id with a 500 (docs/dune-api.md, 2.1); its ids are int32.
MAX_QUERY_ID = 2**31 - 1
# Bounds that keep every duration a valid ``timedelta`` (and mean "practically forever").
MAX_AGE_HOURS = 100 * 365 * 24
MAX_LOOKBACK_DAYS = 100 * 365
# Tables Downstream owns in the bronze database; a query cannot be loaded over them.
RESERVED_TABLES = frozenset({"digital_asset_metric", "recorded_raw_metric", "dune_execution"})


def _check_parameter_value(value: object) -> object:
    # Checked before the union so the user sees one message per bad value, not one per
    # type it failed to be (and so YAML's yes/no never turn into numbers).
    if isinstance(value, bool):
        raise ValueError("true/false is not a Dune parameter type; quote it to send text")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("a multi-select list holds text values only")
    elif not isinstance(value, str | int | float | datetime | date):
        raise ValueError(
            f"expected text, a number, a date/datetime or a list of text, "
            f"got {type(value).__name__}"
        )
    return value


def _not_bool(value: object) -> object:
    # pydantic reads true as 1 for numbers; YAML's yes/on make that an easy accident.
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    return value


Number = BeforeValidator(_not_bool)

ParameterValue = Annotated[
    str | int | float | datetime | date | list[str], BeforeValidator(_check_parameter_value)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncrementalSpec(_Strict):
    """Read only recent rows: set a query parameter from the table's own watermark."""

    parameter: str = Field(min_length=1, description="Dune query parameter set from the watermark.")
    column: str = Field(min_length=1, description="Column whose maximum is the watermark.")
    lookback_days: Annotated[float, Number] = Field(
        0,
        ge=0,
        le=MAX_LOOKBACK_DAYS,
        allow_inf_nan=False,
        description="Re-read this many days before the watermark (late data).",
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
    query_id: Annotated[int, Number] = Field(gt=0, le=MAX_QUERY_ID, description="Dune query id.")
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Dune query parameters: key -> value."
    )
    primary_key: list[str] | None = Field(
        None, description="Row identity for upserts; without it, a hash of the whole row."
    )
    mode: Literal["upsert", "replace"] = Field(
        "upsert", description="upsert: update by key and insert new rows; replace: swap all rows."
    )
    max_age_hours: Annotated[float, Number] = Field(
        24,
        ge=0,
        le=MAX_AGE_HOURS,
        allow_inf_nan=False,
        description="Reuse the latest result if it ended within this; 0 = execute.",
    )
    performance: Literal["medium", "large"] = Field("medium", description="Dune engine tier.")
    allow_partial: bool = Field(
        False, description="Accept a truncated (COMPLETED_PARTIAL) result, marked as partial."
    )
    timeout_minutes: Annotated[float, Number] = Field(
        30, gt=0, le=24 * 60, allow_inf_nan=False, description="Overall deadline for one execution."
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
            # One problem per line: text from the spec (a metric name) may hold a newline.
            raise ValueError(_PROBLEMS + "\n".join(map(one_line, problems)))
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
    # Lone surrogates (YAML's "\ud800") pass some pydantic fields but break every encoder
    # later (HTTP, SQLite, logs): find them everywhere first, with their paths.
    problems = list(_invalid_text(data))
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems += [p for e in exc.errors() for p in _describe(e) if not _covered(p, problems)]
        # Names are checked for uniqueness only once every query is valid; when some are
        # not, check what can be checked so the user still sees every problem at once.
        problems += [p for p in _duplicate_names(data) if p not in problems]
        raise SpecError(problems, source=source) from None
    if problems:
        raise SpecError(problems, source=source)
    return spec


def _covered(problem: str, problems: list[str]) -> bool:
    """Whether an earlier problem already names this one's field."""
    path = problem.partition(": ")[0]
    return any(p.partition(": ")[0] == path for p in problems)


def _invalid_text(data: object) -> Iterator[str]:
    """``path: text is not valid Unicode`` for every string of the spec's own fields (keys
    and values) that holds a lone surrogate. Misplaced values are pydantic's to report."""
    queries = data.get("queries") if isinstance(data, Mapping) else None
    for i, query in enumerate(queries if isinstance(queries, list) else []):
        if not isinstance(query, Mapping):
            continue
        for name, value in query.items():
            if name not in QuerySpec.model_fields:
                continue
            path = f"queries[{i}].{name}"
            if name == "parameters" and isinstance(value, Mapping):
                for key, item in value.items():
                    bad = _surrogate(key) if isinstance(key, str) else None
                    if bad is not None:
                        yield f"{path}: key {_shown(str(key))} is not valid Unicode ({bad!r})"
                    else:
                        yield from _text_problems(_join(path, str(key)), item, listed=True)
            elif name == "metrics" and isinstance(value, list):
                for j, metric in enumerate(value):
                    if isinstance(metric, Mapping):
                        yield from _field_problems(f"{path}[{j}]", metric, MetricSpec)
            elif name == "incremental" and isinstance(value, Mapping):
                yield from _field_problems(path, value, IncrementalSpec)
            else:
                yield from _text_problems(path, value, listed=name == "primary_key")


def _field_problems(path: str, value: Mapping[Any, Any], model: type[BaseModel]) -> Iterator[str]:
    for field, item in value.items():
        if field in model.model_fields:
            yield from _text_problems(f"{path}.{field}", item)


def _text_problems(path: str, value: object, *, listed: bool = False) -> Iterator[str]:
    """The problem for a string value (or, where lists belong, for each string in it)."""
    listed = listed and isinstance(value, list)
    for j, item in enumerate(value) if listed else [(None, value)]:  # type: ignore[arg-type]
        bad = _surrogate(item) if isinstance(item, str) else None
        if bad is not None:
            where = path if j is None else f"{path}[{j}]"
            yield f"{where}: text is not valid Unicode (lone surrogate {bad!r})"


def _surrogate(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start]
    return None


def _duplicate_names(data: object) -> list[str]:
    queries = data.get("queries") if isinstance(data, Mapping) else None
    if not isinstance(queries, list):
        return []
    seen: dict[object, int] = {}
    problems = []
    for i, q in enumerate(queries):
        name = q.get("name") if isinstance(q, Mapping) else None
        if isinstance(name, str) and name in seen:
            problems.append(
                f"queries[{i}].name: {_shown(name)} is already used by queries[{seen[name]}]"
            )
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
            [f"(file): cannot read the file: {exc.strerror or exc}"], source=str(path)
        ) from None
    except UnicodeDecodeError:
        raise SpecError(["(file): the file is not UTF-8 text"], source=str(path)) from None
    return parse_spec(_load_yaml(text, str(path)), source=str(path))


def _load_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else "(top level): "
        raise SpecError([f"{where}{exc.problem or exc}"], source=source) from None
    except yaml.reader.ReaderError as exc:
        # Control characters and the like; PyYAML gives an offset, not a line.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise SpecError(
            [f"line {line}, column {column}: unacceptable character {char!r} ({exc.reason})"],
            source=source,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"(top level): not valid YAML: {exc}"], source=source) from None
    except RecursionError:
        raise SpecError(
            ["(top level): the YAML is nested too deeply to be a spec"], source=source
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one.

    Merge keys (``<<: *defaults``) work as in YAML: merged keys may be overridden, only
    keys written twice in the same mapping are refused.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's own constructors raise plain ValueError/TypeError/AttributeError for
        # values their tag cannot hold (``!!float abc``, ``!!timestamp x``, an int of
        # 5000 digits); give those a line and column like every other YAML problem.
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this {tag} value ({exc})", node.start_mark
            ) from None


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable) or isinstance(key, Mapping | list | set):
            continue  # construct_mapping refuses unhashable keys with a line and column
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
_PLAIN_KEY = re.compile(r"[^\s.\[\]:'\"\\]+")


def _join(path: str, part: object) -> str:
    """``path`` and one more step: ``[2]`` for an index, ``.name`` for a plain key, and
    ``['start date']`` for a key that is not a plain word (so the path stays readable)."""
    if isinstance(part, int) and not isinstance(part, bool):
        return f"{path}[{part}]"
    text = str(part)
    if text.isprintable() and _PLAIN_KEY.fullmatch(text) and len(text) <= 80:
        return f"{path}.{text}" if path else text
    return f"{path}[{_shown(text)}]"


def _shown(value: str) -> str:
    """A quoted value for a message, shortened when it is long."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _describe(error: Any) -> list[str]:
    """``queries[2].primary_key: <message>`` lines from one pydantic error."""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if message.startswith(_PROBLEMS):
        return message.removeprefix(_PROBLEMS).split("\n")
    loc = list(error.get("loc", ()))
    kind = error.get("type")
    if kind == "invalid_key" or (loc and loc[-1] == "[key]"):
        # A mapping key that is not text (YAML reads 1, 2024-01-01 or true as such).
        loc = loc[:-1] if kind == "invalid_key" else loc[:-2]
        key = error.get("input")
        shown = key.isoformat() if isinstance(key, date) else str(key)
        kind, message = "invalid_key", f"key {shown} is not text; quote it"
    path = ""
    in_parameters = loc[:1] == ["queries"] and loc[2:3] == ["parameters"]
    for i, part in enumerate(loc):
        if in_parameters and i == 4 and _TYPE_TAGS.match(str(part)):
            continue  # union member names after a parameter add noise, not location
        # queries[i].parameters.<key>: a key, even when YAML read it as a number
        path = _join(path, str(part) if in_parameters and i == 3 else part)
    field = re.match(r"^([a-z_]+): (.*)$", message, re.S)
    if field and kind == "value_error" and field.group(1) in QuerySpec.model_fields:
        path, message = f"{path}.{field.group(1)}", field.group(2)
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
