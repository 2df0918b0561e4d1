"""Query parameters in Dune's wire format."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from downstream.dune.params import encode_parameters, latest_result_params


def test_each_parameter_type_has_its_wire_form() -> None:
    cet = timezone(timedelta(hours=1))
    assert encode_parameters(
        {
            "text": "abc",
            "number": 3,
            "float": 3.14,
            "decimal": Decimal("1e-30"),
            "naive datetime": datetime(2024, 3, 5, 20, 50, 59),
            "aware datetime": datetime(2024, 3, 5, 21, 50, 59, tzinfo=cet),
            "date": date(2024, 3, 5),
            "enum": "Option 1",
            "multi": ["a", "b"],
        }
    ) == {
        "text": "abc",
        "number": "3",
        "float": "3.14",
        "decimal": "1E-30",
        "naive datetime": "2024-03-05 20:50:59",
        "aware datetime": "2024-03-05 20:50:59",
        "date": "2024-03-05 00:00:00",
        "enum": "Option 1",
        "multi": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "booleans"),
        (float("nan"), "finite"),
        ([1, 2], "strings only"),
        ({"a": 1}, "unsupported"),
    ],
)
def test_bad_parameter_values_name_the_parameter(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"'p'.*{message}"):
        encode_parameters({"p": value})  # type: ignore[dict-item]


def test_latest_result_params_repeat_or_join_multi_values() -> None:
    params = {"chain": "ethereum", "day": datetime(2024, 1, 1, tzinfo=UTC), "t": ["x", "y"]}
    assert latest_result_params(params) == [
        ("params.chain", "ethereum"),
        ("params.day", "2024-01-01 00:00:00"),
        ("params.t", "x"),
        ("params.t", "y"),
    ]
    assert latest_result_params(params, multi_value="comma")[-1] == ("params.t", "x,y")
