"""Encodings copied from Go: ULIDs, RFC 3339 precision, %v floats, CSV quoting."""

from __future__ import annotations

import pytest

from downstream.emulator import wire
from downstream.emulator.paging import BadRequest, parse_columns
from downstream.emulator.values import matches, same_parameter

from .helpers import START_NS


def test_ulid_is_26_crockford_chars_starting_01() -> None:
    ids = {wire.new_ulid(START_NS) for _ in range(100)}
    assert len(ids) == 100
    for ulid in ids:
        assert len(ulid) == 26 and ulid.startswith("01")
        assert wire.is_valid_ulid(ulid)
        assert not set(ulid) & set("ILOU")
    assert not wire.is_valid_ulid("Wonky Job ID")
    assert not wire.is_valid_ulid("01HKZJ2683PHF9Q9PHHQ8FW4Q")  # 25 chars


def test_ulid_time_prefix_sorts_by_time() -> None:
    early = wire.new_ulid(START_NS, bytes(10))
    late = wire.new_ulid(START_NS + 1_000_000, bytes(10))
    assert early < late


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        (0, "2026-03-02T14:05:11Z"),
        (3, "2026-03-02T14:05:11.402Z"),
        (5, "2026-03-02T14:05:11.40291Z"),
        (6, "2026-03-02T14:05:11.402913Z"),
        (9, "2026-03-02T14:05:11.402913517Z"),
    ],
)
def test_rfc3339_truncates_to_precision(digits: int, expected: str) -> None:
    assert wire.rfc3339(START_NS, digits) == expected


def test_rfc3339_trims_trailing_zeros_like_go() -> None:
    whole = START_NS - 402_913_517 + 500_000_000
    assert wire.rfc3339(whole, 9) == "2026-03-02T14:05:11.5Z"
    assert wire.rfc3339(whole - 500_000_000, 9) == "2026-03-02T14:05:11Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4474223.0, "4.474223e+06"),
        (1532.0712, "1532.0712"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.30000000000000004, "0.30000000000000004"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (-0.5, "-0.5"),
        (0.0, "0"),
        (-2.5e-7, "-2.5e-07"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
    ],
)
def test_go_float_matches_go_fmt_v(value: float, expected: str) -> None:
    assert wire.go_float(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("crlf\r\nline", '"crlf\r\nline"'),
        (" leading", '" leading"'),
        ("trailing ", "trailing "),
        ("🚀 中文", "🚀 中文"),
    ],
)
def test_csv_field_quotes_like_go_encoding_csv(text: str, expected: str) -> None:
    assert wire.csv_field(text) == expected


def test_csv_cells() -> None:
    assert wire.csv_cell(None, "<nil>") == "<nil>"
    assert wire.csv_cell(True, "") == "true"
    assert wire.csv_cell(4474223, "", as_float=True) == "4.474223e+06"
    assert wire.csv_cell(4474223, "") == "4474223"
    assert wire.csv_cell(["a", "b"], "") == '["a","b"]'
    assert wire.csv_cell({"b": 1, "a": 2}, "") == '{"a":2,"b":1}'


def test_parse_columns_handles_quotes() -> None:
    assert parse_columns("a,b") == ["a", "b"]
    assert parse_columns('"Token Symbol",value.usd,"a,b","say \\"hi\\""') == [
        "Token Symbol",
        "value.usd",
        "a,b",
        'say "hi"',
    ]
    for bad in ["", "a,,b", '"open']:
        with pytest.raises(BadRequest):
            parse_columns(bad)


def test_value_matching_ignores_spelling() -> None:
    day = "2022-09-15 00:00:00.000 UTC"
    assert matches(day, ">=", "2022-09-15 00:00:00")
    assert matches(day, ">=", "2022-09-15T00:00:00Z")
    assert not matches(day, ">", "2022-09-15")
    assert matches("2022-09-16 00:00:00.000 UTC", ">", "2022-09-15 23:59:59")
    assert matches(10, ">=", "9")  # numbers compare as numbers, not text
    assert matches(str(2**256 - 1), ">", str(2**255))
    assert not matches(None, "=", "x")
    assert matches("WETH", "in", ["WETH", "USDC"])
    assert same_parameter(3, ["3.0"])
    assert same_parameter(["a", "b"], ["b", "a"])
    assert same_parameter(["a", "b"], ["a,b"])
    assert not same_parameter(["a", "b"], ["a"])
