"""Token buckets per key and class (dune-api.md 5.2, 8.10), driven by the injected clock."""

from __future__ import annotations

from .helpers import ETH, NUMBERS, make_client, make_emulator


def test_free_plan_low_class_allows_15_executes_per_minute() -> None:
    emulator = make_emulator(plan="free")
    client = make_client(emulator)
    codes = [
        client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).status_code for _ in range(16)
    ]
    assert codes == [200] * 15 + [429]
    refused = client.post(f"/api/v1/query/{NUMBERS}/execute", json={})
    assert set(refused.json()) == {"error"}
    assert refused.headers["retry-after"] == "4"  # one token per 60/15 seconds
    # The high class has its own bucket.
    assert client.get(f"/api/v1/query/{ETH}/results?limit=1").status_code == 200
    emulator.advance_clock(4)
    assert client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).status_code == 200
    assert client.post(f"/api/v1/query/{NUMBERS}/execute", json={}).status_code == 429
    stats = emulator.stats()
    assert stats["rate_limited"] == 3 and stats["requests_by_status"]["429"] == 3


def test_high_class_is_per_key() -> None:
    emulator = make_emulator(plan="free")
    first = make_client(emulator, headers={"X-Dune-Api-Key": "one"})
    second = make_client(emulator, headers={"X-Dune-Api-Key": "two"})
    url = f"/api/v1/query/{ETH}/results?limit=1"
    assert [first.get(url).status_code for _ in range(41)][-2:] == [200, 429]
    assert second.get(url).status_code == 200


def test_retry_after_modes_and_plan_overrides() -> None:
    emulator = make_emulator(plan="free", retry_after_seconds=0, key_plans={"big": "plus"})
    client = make_client(emulator)
    url = f"/api/v1/query/{NUMBERS}/execute"
    for _ in range(15):
        client.post(url, json={})
    assert client.post(url, json={}).headers["retry-after"] == "0"
    emulator.config.emit_retry_after = False
    assert "retry-after" not in client.post(url, json={}).headers

    plus = make_client(emulator, headers={"X-Dune-Api-Key": "big"})
    assert [plus.post(url, json={}).status_code for _ in range(71)][-2:] == [200, 429]


def test_plan_none_never_limits() -> None:
    emulator = make_emulator()
    client = make_client(emulator)
    assert {client.get(f"/api/v1/query/{ETH}/results?limit=1").status_code for _ in range(60)} == {
        200
    }
