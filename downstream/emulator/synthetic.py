"""A large generated result for benchmarks: N rows x 8 typed columns, made on demand.

Each row is a deterministic function of its index, so a 1M-row result is never
held in memory; only encoded pages are (in the bounded page cache). Values come
from small precomputed pools indexed with different strides, and full-width
pages are written straight to JSON/CSV text, which keeps a 32,000-row page in
the tens of milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import wire
from .rows import Row, RowSource

COLUMNS: tuple[tuple[str, str], ...] = (
    ("block_time", "timestamp(3) with time zone"),
    ("block_number", "bigint"),
    ("amount_raw", "uint256"),
    ("amount_usd", "double"),
    ("symbol", "varchar"),
    ("tx_hash", "varbinary"),
    ("success", "boolean"),
    ("block_date", "date"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
COLUMN_TYPES = tuple(kind for _, kind in COLUMNS)

_POOL = 4099  # prime, so the strides below visit every pool slot
_ROWS_PER_DAY = 7200  # one row every 12 seconds, like Ethereum blocks
_FIRST_BLOCK = 18_908_895
_START = datetime(2024, 1, 1, tzinfo=UTC)
_SYMBOLS = ("WETH", "USDC", "USDT", "DAI", "WBTC", "LINK", "UNI", "PEPE")
_NULL_SHARE = 0.05
_ROW_BYTES = 180  # rough raw size of one row, for result_set_bytes


class SyntheticRows(RowSource):
    """``count`` generated rows; the same ``seed`` always gives the same rows."""

    def __init__(self, count: int, *, seed: int = 0, cache_bytes: int = 256 << 20) -> None:
        super().__init__(COLUMN_NAMES, cache_bytes)
        self.count = count
        self.seed = seed
        rng = random.Random(seed)

        def nullable(make: Any) -> list[Any]:
            return [None if rng.random() < _NULL_SHARE else make() for _ in range(_POOL)]

        self._raw: list[str | None] = nullable(lambda: str(rng.getrandbits(rng.randint(8, 90))))
        self._usd: list[float | int | None] = nullable(
            lambda: _integral(round(rng.lognormvariate(6, 2.5), 2))
        )
        self._symbol: list[str | None] = nullable(lambda: rng.choice(_SYMBOLS))
        self._success: list[bool | None] = nullable(lambda: rng.random() > 0.08)
        self._hash_head = [f"{rng.getrandbits(192):048x}" for _ in range(_POOL)]
        self._tod = [
            f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
            for s in range(0, 86_400, 86_400 // _ROWS_PER_DAY)
        ]
        self._dates: dict[int, str] = {}
        self._json_pools = (
            [_json(v) for v in self._raw],
            [_json(v) for v in self._usd],
            [_json(v) for v in self._symbol],
            [_json(v) for v in self._success],
        )
        self._csv_pools: dict[str, tuple[list[str], ...]] = {}

    def __len__(self) -> int:
        return self.count

    def head(self, count: int) -> SyntheticRows:
        return SyntheticRows(min(count, self.count), seed=self.seed, cache_bytes=self._cache_bytes)

    def value_bytes(self, start: int, stop: int) -> int:
        stop = min(stop, self.count)
        return max(0, stop - start) * _ROW_BYTES

    def _date(self, day: int) -> str:
        text = self._dates.get(day)
        if text is None:
            text = (_START + timedelta(days=day)).strftime("%Y-%m-%d")
            self._dates[day] = text
        return text

    def slice(self, start: int, stop: int) -> list[Row]:
        return [self._row(i) for i in range(start, min(stop, self.count))]

    def _row(self, i: int) -> Row:
        day, tick = divmod(i, _ROWS_PER_DAY)
        date = self._date(day)
        return {
            "amount_raw": self._raw[i % _POOL],
            "amount_usd": self._usd[(i * 7 + 1) % _POOL],
            "block_date": f"{date} 00:00:00.000 UTC",
            "block_number": _FIRST_BLOCK + i,
            "block_time": f"{date} {self._tod[tick]}.000 UTC",
            "success": self._success[(i * 13 + 3) % _POOL],
            "symbol": self._symbol[(i * 11 + 2) % _POOL],
            "tx_hash": f"0x{self._hash_head[(i * 5 + 4) % _POOL]}{i:016x}",
        }

    def json_rows(self, start: int, stop: int, columns: tuple[str, ...] | None) -> bytes:
        if columns is not None and sorted(columns) != sorted(COLUMN_NAMES):
            return super().json_rows(start, stop, columns)
        return self._cached(("fast-json", start, stop), lambda: self._fast_json(start, stop))

    def _fast_json(self, start: int, stop: int) -> bytes:
        raw, usd, symbol, success = self._json_pools
        tod, heads, parts = self._tod, self._hash_head, []
        for i in range(start, min(stop, self.count)):
            day, tick = divmod(i, _ROWS_PER_DAY)
            date = self._date(day)
            parts.append(
                f'{{"amount_raw":{raw[i % _POOL]},"amount_usd":{usd[(i * 7 + 1) % _POOL]},'
                f'"block_date":"{date} 00:00:00.000 UTC","block_number":{_FIRST_BLOCK + i},'
                f'"block_time":"{date} {tod[tick]}.000 UTC",'
                f'"success":{success[(i * 13 + 3) % _POOL]},'
                f'"symbol":{symbol[(i * 11 + 2) % _POOL]},'
                f'"tx_hash":"0x{heads[(i * 5 + 4) % _POOL]}{i:016x}"}}'
            )
        return ("[" + ",".join(parts) + "]").encode()

    def csv_rows(
        self,
        start: int,
        stop: int,
        columns: Sequence[str],
        float_columns: Sequence[bool],
        null: str,
    ) -> bytes:
        if tuple(columns) != COLUMN_NAMES or wire.csv_field(null) != null:
            return super().csv_rows(start, stop, columns, float_columns, null)
        key = ("fast-csv", start, stop, null)
        return self._cached(key, lambda: self._fast_csv(start, stop, null))

    def _fast_csv(self, start: int, stop: int, null: str) -> bytes:
        pools = self._csv_pools.get(null)
        if pools is None:
            pools = (
                [wire.csv_cell(v, null, False) for v in self._raw],
                [wire.csv_cell(v, null, True) for v in self._usd],
                [wire.csv_cell(v, null, False) for v in self._symbol],
                [wire.csv_cell(v, null, False) for v in self._success],
            )
            self._csv_pools[null] = pools
        raw, usd, symbol, success = pools
        tod, heads, parts = self._tod, self._hash_head, []
        for i in range(start, min(stop, self.count)):
            day, tick = divmod(i, _ROWS_PER_DAY)
            date = self._date(day)
            parts.append(
                f"{date} {tod[tick]}.000 UTC,{_FIRST_BLOCK + i},{raw[i % _POOL]},"
                f"{usd[(i * 7 + 1) % _POOL]},{symbol[(i * 11 + 2) % _POOL]},"
                f"0x{heads[(i * 5 + 4) % _POOL]}{i:016x},{success[(i * 13 + 3) % _POOL]},"
                f"{date} 00:00:00.000 UTC\n"
            )
        return "".join(parts).encode()


def _integral(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _json(value: Any) -> str:
    return wire.dumps(value).decode()
