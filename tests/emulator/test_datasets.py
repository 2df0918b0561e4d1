"""Datasets: the bundled ones, loading from disk, and the synthetic benchmark rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from downstream.emulator import BUNDLED_DATA, Dataset, DuneEmulator
from downstream.emulator.bundled import bundled_files
from downstream.emulator.rows import RowSource
from downstream.emulator.synthetic import COLUMN_NAMES, COLUMN_TYPES, SyntheticRows

from .helpers import ETH, TORTURE, Client, make_client, run


def test_shipped_files_match_the_generator() -> None:
    for relative, content in bundled_files().items():
        assert (BUNDLED_DATA / relative).read_bytes() == content, relative


def test_eth_net_emission_shape() -> None:
    dataset = DuneEmulator.bundled().datasets[ETH]
    assert dataset.name == "ETH net emission"
    assert dataset.column_types == ("timestamp(3) with time zone", "double", "double")
    rows = dataset.source.slice(0, len(dataset.source))
    assert rows[0]["day"] == "2022-09-15 00:00:00.000 UTC"
    assert rows[-1]["day"] == "2026-11-30 00:00:00.000 UTC"
    assert len(rows) == 1538
    net_2023 = [r["net_emission_eth"] for r in rows if r["day"].startswith("2023")]
    net_2025 = [r["net_emission_eth"] for r in rows if r["day"].startswith("2025")]
    assert sum(v < 0 for v in net_2023) > len(net_2023) / 2
    assert all(v > 0 for v in net_2025)
    running = 0.0
    for row in rows:
        running += row["net_emission_eth"]
        assert row["total_net_emission_eth"] == pytest.approx(running)


def test_torture_values_survive_the_wire(client: Client) -> None:
    eid = run(client, TORTURE)
    body = client.get(f"/api/v1/execution/{eid}/results").json()
    rows = {r["row_id"]: r for r in body["result"]["rows"]}
    assert rows[2]["u256"] == str(2**256 - 1) and isinstance(rows[2]["u256"], str)
    assert rows[3]["i256"] == str(-(2**255))
    assert rows[4]["big"] == 9007199254740993  # exact, above 2^53
    assert rows[2]["big"] == 2**63 - 1 and rows[3]["big"] == -(2**63)
    assert rows[2]["price"] == 0.30000000000000004
    assert rows[3]["price"] == 1.7976931348623157e308 and rows[3]["value.usd"] == 5e-324
    assert rows[1]["raw"] == "0x" and len(rows[5]["raw"]) == 202
    assert {rows[1]["block_date"], rows[2]["block_date"]} == {
        "2021-06-01T00:00:00Z",
        "2021-06-07 00:00:00.000 UTC",
    }
    assert rows[2]["value.usd"] == 4474223  # integral double, written the way Go does
    assert rows[None] == dict.fromkeys(rows[1])  # the all-NULL row
    assert rows[5]["note"] == "windows\r\nline end"
    assert rows[3]["meta"] == {"B": "3", "a": "1", "b": "2"}
    assert '{"B":"3","a":"1","b":"2"}' in client.get(f"/api/v1/execution/{eid}/results").text


def test_from_dir_reads_jsonl_and_filters(tmp_path: Path) -> None:
    folder = tmp_path / "77"
    folder.mkdir()
    (folder / "query.json").write_bytes(
        orjson.dumps(
            {
                "name": "blocks",
                "parameters": [{"key": "from", "type": "number", "value": "2"}],
                "column_names": ["block"],
                "column_types": ["bigint"],
                "filters": [{"parameter": "from", "column": "block", "op": ">="}],
                "seed_execution": {"age_hours": 5},
            }
        )
    )
    (folder / "rows.jsonl").write_text('{"block": 1}\n{"block": 2}\n\n{"block": 3}\n')
    emulator = DuneEmulator.from_dir(tmp_path)
    client = make_client(emulator)
    body = client.get("/api/v1/query/77/results").json()
    assert body["result"]["rows"] == [{"block": 2}, {"block": 3}]


def test_dataset_validation() -> None:
    with pytest.raises(ValueError, match="unknown parameter"):
        Dataset.from_rows(
            1,
            [],
            column_names=["a"],
            column_types=["bigint"],
            filters=[{"parameter": "p", "column": "a", "op": "="}],
        )
    with pytest.raises(ValueError, match="operator"):
        Dataset.from_rows(
            1,
            [],
            column_names=["a"],
            column_types=["bigint"],
            parameters=[{"key": "p", "value": "1"}],
            filters=[{"parameter": "p", "column": "a", "op": "~"}],
        )


def test_synthetic_rows_are_deterministic_and_typed() -> None:
    source = SyntheticRows(1_000_000)
    again = SyntheticRows(1_000_000)
    page = orjson.loads(source.json_rows(500_000, 502_000, None))
    assert page == orjson.loads(again.json_rows(500_000, 502_000, None))
    assert page == source.slice(500_000, 502_000)
    first = page[0]
    assert list(first) == sorted(COLUMN_NAMES)
    assert first["block_number"] == 18_908_895 + 500_000
    assert first["block_time"].endswith(".000 UTC") and first["tx_hash"].startswith("0x")
    assert len(first["tx_hash"]) == 66
    nulls = sum(r["symbol"] is None for r in page) / len(page)
    assert 0.02 < nulls < 0.09
    assert {type(r["amount_raw"]) for r in page} == {str, type(None)}
    assert len(COLUMN_TYPES) == 8


def test_synthetic_pages_are_encoded_once_and_cached() -> None:
    # Speed itself is measured in bench/, never asserted here (machines are noisy).
    source = SyntheticRows(1_000_000)
    body = source.json_rows(0, 32_000, None)
    assert source.json_rows(0, 32_000, None) is body


def test_synthetic_fast_paths_match_the_generic_encoders() -> None:
    source = SyntheticRows(5000)
    floats = [t == "double" for t in COLUMN_TYPES]
    generic_csv = RowSource.csv_rows(source, 100, 4100, COLUMN_NAMES, floats, "<nil>")
    assert source.csv_rows(100, 4100, COLUMN_NAMES, floats, "<nil>") == generic_csv
    generic_json = RowSource.json_rows(source, 100, 4100, None)
    assert source.json_rows(100, 4100, None) == generic_json
