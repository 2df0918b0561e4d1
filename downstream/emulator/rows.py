"""Row storage behind a result, with encoded pages cached.

Executions hold a ``RowSource`` snapshot taken when they were created. Sources
are immutable, so replacing a dataset's rows later never changes what an
existing execution serves, and encoded pages can be cached safely.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from . import wire

Row = dict[str, Any]

FLOAT_TYPES = ("double", "real", "float")


def is_float_type(column_type: str) -> bool:
    return column_type.strip().lower() in FLOAT_TYPES


def value_size(value: Any) -> int:
    """Bytes a value takes "raw", for ``result_set_bytes`` (an estimate, as Dune's is opaque)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool):
        return 1
    if isinstance(value, float):
        return 8
    if isinstance(value, int):
        return 8 if -(2**63) <= value < 2**63 else len(str(value))
    return len(wire.dumps(value))


class RowSource(ABC):
    """An immutable, indexable sequence of rows with a bounded cache of encoded pages."""

    def __init__(self, column_names: Sequence[str], cache_bytes: int = 64 << 20) -> None:
        self.column_names = tuple(column_names)
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cache_used = 0
        self._lock = threading.Lock()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def slice(self, start: int, stop: int) -> list[Row]:
        """Rows ``start:stop``, each with every column as a key (NULL is ``None``)."""

    @abstractmethod
    def value_bytes(self, start: int, stop: int) -> int:
        """``result_set_bytes`` for rows ``start:stop``."""

    @abstractmethod
    def head(self, count: int) -> RowSource:
        """The first ``count`` rows (a truncated, "partial" result)."""

    def take(self, indices: Sequence[int]) -> list[Row]:
        """Rows at arbitrary positions (for ``sample_count``)."""
        return [self.slice(i, i + 1)[0] for i in indices]

    def json_rows(self, start: int, stop: int, columns: tuple[str, ...] | None) -> bytes:
        """The JSON array of rows ``start:stop``, keys sorted, optionally projected."""

        def encode() -> bytes:
            return wire.dumps_rows(project(self.slice(start, stop), columns))

        return self._cached(("json", start, stop, columns), encode)

    def csv_rows(
        self,
        start: int,
        stop: int,
        columns: Sequence[str],
        float_columns: Sequence[bool],
        null: str,
    ) -> bytes:
        """CSV records (no header) for rows ``start:stop`` in ``columns`` order."""

        def encode() -> bytes:
            lines = [
                wire.csv_line([row.get(c) for c in columns], null, float_columns)
                for row in self.slice(start, stop)
            ]
            return "".join(lines).encode()

        key = ("csv", start, stop, tuple(columns), tuple(float_columns), null)
        return self._cached(key, encode)

    def _cached(self, key: Hashable, encode: Callable[[], bytes]) -> bytes:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        data = encode()
        if len(data) > self._cache_bytes:
            return data
        with self._lock:
            if key not in self._cache:
                self._cache[key] = data
                self._cache_used += len(data)
            while self._cache_used > self._cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cache_used -= len(dropped)
        return data


def project(rows: list[Row], columns: tuple[str, ...] | None) -> list[Row]:
    if columns is None:
        return rows
    return [{c: row.get(c) for c in columns} for row in rows]


def normalize_row(row: Mapping[str, Any], columns: Sequence[str], floats: Sequence[bool]) -> Row:
    """A row with exactly the dataset's columns, keys in byte order.

    Integral doubles become ints so they encode as ``2600`` rather than
    ``2600.0``: Go's ``encoding/json`` writes float64 that way, so Dune does.
    """
    out: Row = {}
    for name, is_float in sorted(zip(columns, floats, strict=True)):
        value = row.get(name)
        if is_float and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        out[name] = value
    return out


class ListRows(RowSource):
    """Rows held in memory (datasets loaded from disk or set through the control API)."""

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]],
        column_names: Sequence[str],
        column_types: Sequence[str],
        *,
        normalized: bool = False,
    ) -> None:
        super().__init__(column_names)
        self.column_types = tuple(column_types)
        floats = [is_float_type(t) for t in column_types]
        if normalized:
            self._rows = [dict(r) for r in rows]
        else:
            self._rows = [normalize_row(r, column_names, floats) for r in rows]
        self._prefix: list[int] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def slice(self, start: int, stop: int) -> list[Row]:
        return self._rows[start:stop]

    def take(self, indices: Sequence[int]) -> list[Row]:
        return [self._rows[i] for i in indices]

    def value_bytes(self, start: int, stop: int) -> int:
        if self._prefix is None:
            sizes = (sum(value_size(v) for v in row.values()) for row in self._rows)
            self._prefix = [0, *accumulate(sizes)]
        stop = min(stop, len(self._rows))
        start = min(start, stop)
        return self._prefix[stop] - self._prefix[start]

    def head(self, count: int) -> ListRows:
        return ListRows(self._rows[:count], self.column_names, self.column_types, normalized=True)

    def where(self, keep: Callable[[Row], bool]) -> ListRows:
        return ListRows(
            [r for r in self._rows if keep(r)],
            self.column_names,
            self.column_types,
            normalized=True,
        )

    def all_rows(self) -> list[Row]:
        return list(self._rows)
