"""Pages no emulator would write: lone surrogates, NaN, 10,000-digit numbers, broken shapes.

``ResultRewriter`` replaces the ``result`` of real emulator pages with raw JSON text, so
these go through the client's decoding as Dune's bytes would.
"""

from __future__ import annotations

import pytest

from downstream.dune import DuneClient
from downstream.emulator import DuneEmulator

from .conftest import ResultRewriter, raw_result
from .helpers import (
    assert_refused,
    run,
    serve,
    stored,
    tables,
)


def test_a_10k_digit_uint256_loads_exactly_as_text_or_number(
    emulator: DuneEmulator, raw_client: DuneClient, rewriter: ResultRewriter, db_path: str
) -> None:
    digits = "9" * 10_000
    serve(emulator, ["as_text", "as_number"], ["uint256", "uint256"], [{}])
    # JSON can carry the number form; the emulator will not write it, so the page is raw.
    rewriter.result = raw_result(
        ["as_text", "as_number"],
        ["uint256", "uint256"],
        f'[{{"as_text": "{digits}", "as_number": {digits}}}]',
        1,
    )

    result = run(raw_client, db_path)

    assert result.outcome == "loaded", result.error
    assert stored(db_path, ["as_text", "as_number"]) == [
        {"as_text": (digits, "text"), "as_number": (digits, "text")}
    ]


def test_a_10k_digit_number_in_a_bigint_column_is_refused(
    emulator: DuneEmulator, raw_client: DuneClient, rewriter: ResultRewriter, db_path: str
) -> None:
    serve(emulator, ["v"], ["bigint"], [{"v": 1}])
    rewriter.result = raw_result(["v"], ["bigint"], f'[{{"v": {"9" * 10_000}}}]', 1)

    result = run(raw_client, db_path)

    assert_refused(result, "LoadError", "column 'v' (bigint): 1 value(s) too large")
    assert tables(db_path) == {"digital_asset_metric": [], "recorded_raw_metric": []}


def test_lone_surrogates_in_names_and_values_become_u_fffd(
    emulator: DuneEmulator, raw_client: DuneClient, rewriter: ResultRewriter, db_path: str
) -> None:
    """JSON can escape a lone surrogate (``\\ud800``) that no UTF-8 text, so no SQLite
    TEXT, can hold; the client keeps the text with U+FFFD in its place."""
    serve(emulator, ["v", "\ufffd"], ["varchar", "varchar"], [{}])
    rewriter.result = raw_result(
        ["v", "\ud800"],
        ["varchar", "varchar"],
        '[{"v": "a\\ud800b\\udfff", "\\ud800": "x"},'
        ' {"v": "pair \\ud83d\\ude80", "\\ud800": null}]',
        2,
    )

    result = run(raw_client, db_path)

    assert result.outcome == "loaded", result.error
    assert stored(db_path, ["v", "\ufffd"]) == [
        {"v": ("a\ufffdb\ufffd", "text"), "\ufffd": ("x", "text")},
        {"v": ("pair 🚀", "text"), "\ufffd": (None, "null")},
    ]


def test_nan_and_infinity_literals_in_a_double_column(
    emulator: DuneEmulator, raw_client: DuneClient, rewriter: ResultRewriter, db_path: str
) -> None:
    """Not JSON, but Python's decoder reads them: NaN is NULL, Infinity a REAL infinity."""
    serve(emulator, ["d"], ["double"], [{}])
    rewriter.result = raw_result(
        ["d"], ["double"], '[{"d": NaN}, {"d": Infinity}, {"d": -Infinity}]', 3
    )

    result = run(raw_client, db_path)

    assert result.outcome == "loaded", result.error
    assert stored(db_path, ["d"]) == [
        {"d": (None, "null")},
        {"d": (float("inf"), "real")},
        {"d": (float("-inf"), "real")},
    ]


# -- pages that break the shape of a result ----------------------------------------------------


@pytest.mark.parametrize(
    ("result_json", "error_type", "message"),
    [
        (
            raw_result(["v"], ["varchar"], "[1, 2]", 2),
            "LoadError",
            "rows are not all JSON objects",
        ),
        (
            raw_result(["v"], ["varchar"], '[{"v": "x"}, null]', 2),
            "LoadError",
            "rows are not all JSON objects",
        ),
        (
            raw_result(["v", "w"], ["varchar"], '[{"v": "x", "w": "y"}]', 1),
            "LoadError",
            "metadata is inconsistent: 2 column names but 1 column types",
        ),
        (
            raw_result(["v"], ["json"], '[{"v": ' + "[" * 5000 + "]" * 5000 + "}]", 1),
            "DuneProtocolError",
            "response is not valid JSON",
        ),
    ],
    ids=["rows are numbers", "a row is null", "types shorter than names", "nested 5000 deep"],
)
def test_a_page_with_a_broken_shape_fails_the_query_typed(
    emulator: DuneEmulator,
    raw_client: DuneClient,
    rewriter: ResultRewriter,
    db_path: str,
    result_json: bytes,
    error_type: str,
    message: str,
) -> None:
    serve(emulator, ["v", "w"], ["varchar", "varchar"], [{"v": "good", "w": "good"}])
    assert run(raw_client, db_path).outcome == "loaded"
    before = tables(db_path)
    rewriter.result = result_json

    result = run(raw_client, db_path)

    assert_refused(result, error_type, message)
    assert tables(db_path) == before
