"""The query spec: validated up front, every problem reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from downstream.errors import SpecError
from downstream.spec import Spec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def problems(data: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value.problems


def test_the_shipped_example_is_valid() -> None:
    spec = load_spec(ROOT / "deployments" / "queries.yaml")
    (q,) = spec.queries
    assert (q.name, q.query_id, q.primary_key, q.mode) == (
        "eth_net_emission",
        1463956,
        ["day"],
        "upsert",
    )
    assert q.incremental is not None and q.incremental.lookback_days == 3
    assert q.metrics[0].asset == "ETH" and q.metrics[0].value_column == "net_emission_eth"


def test_defaults_are_what_the_readme_says() -> None:
    q = parse_spec({"queries": [{"name": "a", "query_id": 1}]}).queries[0]
    assert (q.mode, q.max_age_hours, q.performance, q.allow_partial, q.timeout_minutes) == (
        "upsert",
        24,
        "medium",
        False,
        30,
    )
    assert q.primary_key is None and q.parameters == {} and q.metrics == []


def test_every_problem_is_reported_with_its_path_at_once() -> None:
    found = problems(
        {
            "queries": [
                {"name": "ok", "query_id": 1},
                {
                    "name": "Bad-Name",
                    "query_id": 0,
                    "primary_key": ["a", "a"],
                    "mode": "merge",
                    "parameters": {"flag": True, "nested": {"x": 1}},
                    "colour": "red",
                },
                {"name": "ok", "query_id": 2},
                {
                    "name": "inc",
                    "query_id": 3,
                    "mode": "replace",
                    "primary_key": ["d"],
                    "incremental": {"parameter": "start", "column": "d"},
                },
            ]
        }
    )
    assert found == [
        "queries[1].name: use lower case letters, digits and _, starting with a letter, "
        "at most 63 characters",
        "queries[1].query_id: Input should be greater than 0",
        "queries[1].parameters.flag: true/false is not a Dune parameter type; quote it to send "
        "text",
        "queries[1].parameters.nested: expected text, a number, a date/datetime or a list of "
        "text, got dict",
        "queries[1].primary_key: column 'a' is listed twice",
        "queries[1].mode: Input should be 'upsert' or 'replace'",
        "queries[1].colour: unknown field (check the spelling)",
        "queries[3].incremental: a watermark reads only recent rows, so mode must be upsert "
        "(replace would drop everything older)",
        "queries[2].name: 'ok' is already used by queries[0]",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "(top level): the spec is empty"),
        ([1, 2], "(top level): expected a mapping of fields, got list"),
        ({"queries": []}, "queries: List should have at least 1 item"),
        ({"queries": [{"query_id": 1}]}, "queries[0].name: required field is missing"),
        (
            {"queries": [{"name": "dune_execution", "query_id": 1}]},
            "queries[0].name: 'dune_execution' is reserved",
        ),
        (
            {"queries": [{"name": "a", "query_id": 1, "max_age_hours": -1}]},
            "queries[0].max_age_hours: Input should be greater than or equal to 0",
        ),
        (
            {
                "queries": [
                    {"name": "a", "query_id": 1, "incremental": {"parameter": "s", "column": "d"}}
                ]
            },
            "queries[0].incremental: needs a primary_key",
        ),
        (
            {"queries": [{"name": "a", "query_id": 1, "metrics": [{"asset": "ETH"}]}]},
            "queries[0].metrics[0].metric: required field is missing",
        ),
    ],
)
def test_one_problem_each(data: object, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(data)), problems(data)


def test_one_execution_feeds_one_table() -> None:
    found = problems(
        {
            "queries": [
                {"name": "a", "query_id": 1, "parameters": {"x": "1"}},
                {"name": "b", "query_id": 1, "parameters": {"x": "2"}},
                {"name": "c", "query_id": 1, "parameters": {"x": "1"}},
            ]
        }
    )
    assert found == [
        "queries[2].query_id: query 1 with the same parameters is already loaded "
        "by queries[0]; one Dune execution can feed one table"
    ]


def test_a_metric_can_be_recorded_by_one_query_only() -> None:
    metric = {"asset": "ETH", "metric": "m", "date_column": "d", "value_column": "v"}
    found = problems(
        {
            "queries": [
                {"name": "a", "query_id": 1, "metrics": [metric]},
                {"name": "b", "query_id": 2, "metrics": [metric]},
            ]
        }
    )
    assert found == ["queries[1].metrics[0]: ETH/m is already recorded by a"]


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("queries:\n  - name: a\n    query_id: [1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and "line 4" in info.value.problems[0]


def test_duplicate_yaml_keys_are_refused_not_silently_merged(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("queries:\n  - name: a\n    query_id: 1\n    query_id: 2\n")
    with pytest.raises(SpecError, match="duplicate key 'query_id'"):
        load_spec(path)


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "nope.yaml")


def test_yaml_dates_and_lists_are_valid_parameter_values(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "queries:\n  - name: a\n    query_id: 1\n    parameters:\n"
        "      start: 2024-01-01\n      at: 2024-01-01 10:00:00\n      tokens: [WETH, USDC]\n"
        "      n: 3\n"
    )
    params = load_spec(path).queries[0].parameters
    assert str(params["start"]) == "2024-01-01" and params["tokens"] == ["WETH", "USDC"]


def test_only_selects_queries_and_names_unknown_ones() -> None:
    spec = Spec.model_validate(
        {"queries": [{"name": "a", "query_id": 1}, {"name": "b", "query_id": 2}]}
    )
    assert [q.name for q in spec.select(["b"]).queries] == ["b"]
    with pytest.raises(SpecError, match="no query named 'c'"):
        spec.select(["c"])


def test_the_model_has_a_json_schema_for_the_prefect_form() -> None:
    schema = Spec.model_json_schema()
    query = schema["$defs"]["QuerySpec"]["properties"]
    assert query["mode"]["enum"] == ["upsert", "replace"]
    assert "description" in query["max_age_hours"]
