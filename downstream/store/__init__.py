"""The bronze database: schema, locks, the loader and the ledger."""

from downstream.store.database import (
    DEFAULT_DB_PATH,
    LEDGER,
    METRICS,
    SERIES,
    db_path_from_env,
    ensure_schema,
    open_database,
    quote,
)
from downstream.store.ledger import is_loaded, read_watermark, watermark_parameter
from downstream.store.loader import (
    ExecutionInfo,
    LoadReport,
    load_execution,
    metric_uuid,
    record_execution,
    utc_iso,
)
from downstream.store.locks import LockTimeout, query_lock, writer_lock

__all__ = [
    "DEFAULT_DB_PATH",
    "LEDGER",
    "METRICS",
    "SERIES",
    "ExecutionInfo",
    "LoadReport",
    "LockTimeout",
    "db_path_from_env",
    "ensure_schema",
    "is_loaded",
    "load_execution",
    "metric_uuid",
    "open_database",
    "query_lock",
    "quote",
    "read_watermark",
    "record_execution",
    "utc_iso",
    "watermark_parameter",
    "writer_lock",
]
