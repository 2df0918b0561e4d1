"""The bootstrap refuses to run without a server to bootstrap (issue 5).

Everything it creates is checked against a real server in test_end_to_end.py.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from .helpers import DEPLOYMENTS


def load_bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bootstrap", DEPLOYMENTS / "bootstrap.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_an_api_url_it_stops_before_touching_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = load_bootstrap()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert bootstrap.main([]) == 2
    assert "set PREFECT_API_URL" in capsys.readouterr().err


def test_the_rate_limits_follow_the_plan_table() -> None:
    bootstrap = load_bootstrap()
    assert bootstrap.parse_args([]).plan == "free"
    assert bootstrap.parse_args(["--plan", "plus"]).plan == "plus"
    with pytest.raises(SystemExit):
        bootstrap.parse_args(["--plan", "none"])  # "none" has no limits to size them from
