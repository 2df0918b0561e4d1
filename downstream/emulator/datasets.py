"""Saved queries the emulator can "run": columns, parameters, rows, and how they load from disk.

On-disk layout, one directory per query::

    DIR/<query_id>/query.json   {"query_id", "name", "parameters": [{"key","type","value"}],
                                 "column_names", "column_types", "filters"?, "seed_execution"?,
                                 "archived"?, "synthetic"?: {"rows": N, "seed": 0}}
    DIR/<query_id>/rows.json    a JSON array of row objects in Dune's wire encoding
                                (or rows.jsonl, one object per line)

``filters`` tie parameters to rows: ``{"parameter": "start_date", "column": "day",
"op": ">="}`` keeps rows whose ``day >= start_date``, so an incremental watermark
changes what an execution returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import values
from .rows import ListRows, RowSource
from .synthetic import COLUMN_NAMES, COLUMN_TYPES, SyntheticRows

ParamValue = str | int | float | list[str]


class UnknownParameters(ValueError):
    """An execute body named parameters the query does not have."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"unknown parameters ({', '.join(names)})")
        self.names = list(names)


@dataclass(frozen=True)
class Parameter:
    """A query parameter and its default value."""

    key: str
    type: str
    value: ParamValue

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Parameter:
        return cls(str(raw["key"]), str(raw.get("type", "text")), raw.get("value", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": self.type, "value": self.value}


@dataclass(frozen=True)
class ParamFilter:
    """Keep rows where ``row[column] <op> parameters[parameter]``."""

    parameter: str
    column: str
    op: str = "="

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ParamFilter:
        op = str(raw.get("op", "=")).lower()
        op = {"==": "=", "<>": "!="}.get(op, op)
        if op not in values.OPERATORS:
            raise ValueError(f"unsupported filter operator {op!r}")
        return cls(str(raw["parameter"]), str(raw["column"]), op)

    def to_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "column": self.column, "op": self.op}


@dataclass(frozen=True)
class SeedSpec:
    """A completed execution that exists as soon as the emulator starts."""

    age_hours: float = 2.0
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    outcome: str = "completed"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeedSpec:
        return cls(
            float(raw.get("age_hours", 2.0)),
            dict(raw.get("parameters") or {}),
            str(raw.get("outcome", "completed")),
        )


@dataclass
class Dataset:
    """One saved query. ``source`` is replaced (never mutated) when rows change."""

    query_id: int
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    source: RowSource
    name: str = ""
    parameters: tuple[Parameter, ...] = ()
    filters: tuple[ParamFilter, ...] = ()
    archived: bool = False
    seed_execution: SeedSpec | None = None

    def __post_init__(self) -> None:
        if len(self.column_names) != len(self.column_types):
            raise ValueError("column_names and column_types differ in length")
        known = {p.key for p in self.parameters}
        for flt in self.filters:
            if flt.parameter not in known:
                raise ValueError(f"filter uses unknown parameter {flt.parameter!r}")
            if flt.column not in self.column_names:
                raise ValueError(f"filter uses unknown column {flt.column!r}")
        if self.filters and not isinstance(self.source, ListRows):
            raise ValueError("parameter filters need in-memory rows")

    @classmethod
    def from_rows(
        cls,
        query_id: int,
        rows: Iterable[Mapping[str, Any]],
        *,
        column_names: Sequence[str],
        column_types: Sequence[str],
        name: str = "",
        parameters: Iterable[Parameter | Mapping[str, Any]] = (),
        filters: Iterable[ParamFilter | Mapping[str, Any]] = (),
        archived: bool = False,
        seed_execution: SeedSpec | Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Build a dataset from rows already in Dune's wire encoding."""
        seed = (
            SeedSpec.from_dict(seed_execution)
            if isinstance(seed_execution, Mapping)
            else seed_execution
        )
        return cls(
            query_id=query_id,
            column_names=tuple(column_names),
            column_types=tuple(column_types),
            source=ListRows(rows, column_names, column_types),
            name=name,
            parameters=tuple(
                p if isinstance(p, Parameter) else Parameter.from_dict(p) for p in parameters
            ),
            filters=tuple(
                f if isinstance(f, ParamFilter) else ParamFilter.from_dict(f) for f in filters
            ),
            archived=archived,
            seed_execution=seed,
        )

    @classmethod
    def synthetic(
        cls, query_id: int, count: int, *, seed: int = 0, cache_bytes: int = 256 << 20
    ) -> Dataset:
        """The benchmark dataset: ``count`` generated rows, with a seeded execution."""
        return cls(
            query_id=query_id,
            column_names=COLUMN_NAMES,
            column_types=COLUMN_TYPES,
            source=SyntheticRows(count, seed=seed, cache_bytes=cache_bytes),
            name=f"synthetic {count} rows",
            seed_execution=SeedSpec(age_hours=1.0),
        )

    def replace_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """New rows for future executions; existing executions keep their snapshot."""
        self.source = ListRows(rows, self.column_names, self.column_types)

    def resolve_parameters(self, given: Mapping[str, ParamValue] | None) -> dict[str, ParamValue]:
        """Defaults overlaid with ``given``; unknown keys raise :class:`UnknownParameters`."""
        given = dict(given or {})
        known = {p.key for p in self.parameters}
        unknown = [k for k in given if k not in known]
        if unknown:
            raise UnknownParameters(unknown)
        resolved: dict[str, ParamValue] = {p.key: p.value for p in self.parameters}
        resolved.update(given)
        return resolved

    def snapshot(self, parameters: Mapping[str, ParamValue]) -> RowSource:
        """The rows an execution with these parameters returns, frozen now."""
        if not self.filters:
            return self.source
        assert isinstance(self.source, ListRows)
        rules = [(f.column, f.op, parameters.get(f.parameter)) for f in self.filters]
        return self.source.where(
            lambda row: all(values.matches(row.get(c), op, v) for c, op, v in rules)
        )

    def describe(self) -> dict[str, Any]:
        """The query object, shaped like ``GET /v1/query/{id}``."""
        return {
            "query_id": self.query_id,
            "name": self.name,
            "description": "",
            "tags": [],
            "version": 1,
            "parameters": [p.to_dict() for p in self.parameters],
            "query_engine": "v2 Dune SQL",
            "query_sql": f"-- emulated query {self.query_id}",
            "is_private": False,
            "is_archived": self.archived,
            "is_unsaved": False,
            "owner": "emulator",
        }


def dataset_from_dict(spec: Mapping[str, Any], rows: Iterable[Mapping[str, Any]] = ()) -> Dataset:
    """A dataset from a ``query.json``-shaped dict (also used by the HTTP control API)."""
    query_id = int(spec["query_id"])
    synthetic = spec.get("synthetic")
    if synthetic:
        dataset = Dataset.synthetic(
            query_id, int(synthetic["rows"]), seed=int(synthetic.get("seed", 0))
        )
        dataset.name = str(spec.get("name", dataset.name))
        dataset.archived = bool(spec.get("archived", False))
        if "seed_execution" in spec:
            raw_seed = spec["seed_execution"]
            dataset.seed_execution = SeedSpec.from_dict(raw_seed) if raw_seed else None
        return dataset
    return Dataset.from_rows(
        query_id,
        rows,
        column_names=spec["column_names"],
        column_types=spec["column_types"],
        name=str(spec.get("name", "")),
        parameters=spec.get("parameters") or (),
        filters=spec.get("filters") or (),
        archived=bool(spec.get("archived", False)),
        seed_execution=spec.get("seed_execution"),
    )


def load_dataset(directory: Path) -> Dataset:
    """Load ``DIR/<query_id>/`` (query.json plus rows.json or rows.jsonl)."""
    spec = orjson.loads((directory / "query.json").read_bytes())
    spec.setdefault("query_id", int(directory.name))
    rows: list[Mapping[str, Any]] = []
    if (directory / "rows.json").exists():
        rows = _load_json(directory / "rows.json")
    elif (directory / "rows.jsonl").exists():
        with (directory / "rows.jsonl").open("rb") as handle:
            rows = [_load_json_line(line) for line in handle if line.strip()]
    return dataset_from_dict(spec, rows)


def load_datasets(root: Path) -> list[Dataset]:
    """Every dataset directory directly under ``root``, in query-id order."""
    found = [load_dataset(d) for d in sorted(root.iterdir()) if (d / "query.json").exists()]
    return sorted(found, key=lambda d: d.query_id)


def _load_json(path: Path) -> list[Mapping[str, Any]]:
    data = path.read_bytes()
    try:
        loaded = orjson.loads(data)
    except orjson.JSONDecodeError:
        loaded = json.loads(data)  # integers beyond 64 bits, which orjson rejects
    if not isinstance(loaded, list):
        raise ValueError(f"{path}: expected a JSON array of row objects")
    return loaded


def _load_json_line(line: bytes) -> Mapping[str, Any]:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("expected one JSON object per line")
    return row
