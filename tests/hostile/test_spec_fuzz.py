"""Hostile spec files: whatever the input, a valid ``Spec`` or a ``SpecError`` whose every
problem is one line that starts with where it is (issue 7, "Hostile and bad input").

Where a problem may start (``downstream/spec.py`` documents these):

* a field path: ``queries[2].primary_key``, ``queries[0].parameters.start``,
  ``queries[0].parameters['start date']`` (keys that are not plain words are quoted);
* ``(top level)``: the document as a whole (empty, not a mapping, nested too deeply);
* ``line L, column C``: YAML that does not parse;
* ``(file)``: the file itself (unreadable, not UTF-8).

A spec that validates must also be usable by everything after validation: parameters
encode for Dune, durations fit a ``timedelta``, ids fit the ledger, text encodes as UTF-8.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from downstream.dune.params import encode_parameters, latest_result_params
from downstream.errors import SpecError
from downstream.spec import IncrementalSpec, MetricSpec, QuerySpec, Spec, load_spec, parse_spec

# CI budget per property; HOSTILE_EXAMPLES=5000 for a longer hunt.
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what a valid problem line looks like -----------------------------------------------

_PLAIN = r"[^\s.\[\]:'\"\\]+"
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_SEGMENT = re.compile(rf"\[(\d+)\]|\[({_QUOTED})\]|\.({_PLAIN})")
_FIRST = re.compile(rf"({_PLAIN})|\[({_QUOTED})\]")
MARKERS = re.compile(r"^(\(top level\)|\(file\)|line \d+, column \d+): \S")
UNKNOWN = "unknown field (check the spelling)"

_FIELDS: dict[str, set[str]] = {
    "top": {"queries"},
    "query": set(QuerySpec.model_fields),
    "metric": set(MetricSpec.model_fields),
    "incremental": set(IncrementalSpec.model_fields),
}
# Where a known field leads.
_INTO = {
    "queries": "queries",
    "parameters": "parameters",
    "primary_key": "list",
    "metrics": "metrics",
    "incremental": "incremental",
}
_ITEM = {"queries": "query", "metrics": "metric", "list": "leaf", "parameter": "leaf"}


def _segments(path: str) -> list[tuple[str, str]]:
    """``queries[1].parameters['a b']`` -> [("key", "queries"), ("index", "1"), ...]."""
    first = _FIRST.match(path)
    assert first, f"path {path!r} does not start with a field name"
    out = [("key", first.group(1) or eval(first.group(2)))]
    pos = first.end()
    while pos < len(path):
        seg = _SEGMENT.match(path, pos)
        assert seg, f"path {path!r}: cannot read {path[pos:]!r}"
        if seg.group(1) is not None:
            out.append(("index", seg.group(1)))
        else:
            out.append(("key", seg.group(3) or eval(seg.group(2))))
        pos = seg.end()
    return out


def check_path(path: str, message: str) -> None:
    """The path names a place that exists in the spec schema (or an unknown key there)."""
    state = "top"
    segments = _segments(path)
    for i, (kind, value) in enumerate(segments):
        last = i == len(segments) - 1
        if state in ("queries", "metrics", "list", "parameter"):
            assert kind == "index", f"{path!r}: {value!r} where a list index belongs"
            state = _ITEM[state]
        elif state == "parameters":
            assert kind == "key", f"{path!r}: index where a parameter name belongs"
            state = "parameter"
        elif state in _FIELDS:
            assert kind == "key", f"{path!r}: index {value} where a field belongs"
            if value not in _FIELDS[state]:
                assert last and message == UNKNOWN, f"{path!r}: {value!r} is not a field"
                return
            state = _INTO.get(value, "leaf")
        else:
            raise AssertionError(f"{path!r}: nothing can be inside {segments[i - 1][1]!r}")


def check_problem(problem: str) -> None:
    assert problem.splitlines() == [problem], f"problem spans lines: {problem!r}"
    assert problem.isprintable(), f"problem has unprintable characters: {problem!r}"
    problem.encode("utf-8")  # a lone surrogate would break printing it
    if MARKERS.match(problem):
        return
    path, sep, message = problem.partition(": ")
    # A quoted key may itself hold ": "; take the split that reads as a path.
    while sep and not _is_path(path):
        more, sep, message = message.partition(": ")
        path = f"{path}: {more}"
    assert sep and message.strip(), f"no 'path: message' in {problem!r}"
    check_path(path, message)


def _is_path(text: str) -> bool:
    try:
        _segments(text)
    except AssertionError:
        return False
    return True


def check_outcome(run: Any) -> Spec | None:
    """Run ``run()``; it returns a usable Spec or raises a well-formed SpecError."""
    try:
        spec = run()
    except SpecError as exc:
        assert exc.problems, "a SpecError must list at least one problem"
        for problem in exc.problems:
            check_problem(problem)
        assert len(str(exc).splitlines()) == len(exc.problems) + 1
        return None
    assert isinstance(spec, Spec)
    check_usable(spec)
    return spec


def check_usable(spec: Spec) -> None:
    """What code after validation relies on, for every query of a valid spec."""
    for q in spec.queries:
        assert 0 < q.query_id < 2**31
        # What the client sends (execute body, latest-result query) and the ledger keeps.
        wire = encode_parameters(q.parameters)
        httpx.Request("POST", "http://dune.test/api/v1/x", json={"query_parameters": wire})
        httpx.Request("GET", "http://dune.test/api/v1/x", params=latest_result_params(wire))
        orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)
        timedelta(hours=q.max_age_hours)
        timedelta(minutes=q.timeout_minutes)
        if q.incremental is not None:
            datetime(2026, 1, 1) - timedelta(days=q.incremental.lookback_days)
        q.model_dump_json().encode("utf-8")  # every string is real Unicode


# -- hostile values -----------------------------------------------------------------------

NASTY_TEXT = [
    "",
    " ",
    "a\nb",
    "a\r\nb",
    "line\u2028sep",
    "\x00",
    "nul\x00inside",
    "\ud800",
    "lone \udfff low",
    "\u202eevil",
    "e\u0301",
    "🦄",
    "שלום",
    "x" * 5000,
    "queries",
    "name",
    "a: b",
    "[0]",
    "it's",
    'say "hi"',
    "back\\slash",
    "Bad-Name",
    "dune_execution",
    "sqlite_master",
    "_private",
    "a" * 64,
]
text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=12))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, 0.5]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    text,
    st.dates(),
    st.datetimes(),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(text, st.integers(), st.none(), st.booleans()), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
names = st.one_of(st.sampled_from(["a", "b", "eth_net_emission"]), text)


def sometimes(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a good value, sometimes anything at all."""
    return st.one_of(good, good, anything)


parameter_values = st.one_of(
    text,
    numbers,
    st.dates(),
    st.datetimes(),
    st.lists(text, max_size=3),
    anything,
)
metrics = st.fixed_dictionaries(
    {},
    optional={
        "asset": sometimes(st.sampled_from(["ETH", "BTC", "E\nTH"])),
        "metric": sometimes(st.sampled_from(["m", "n"])),
        "date_column": sometimes(st.just("day")),
        "value_column": sometimes(st.just("v")),
        "unit": sometimes(st.none()),
        "colour": anything,
    },
)
incremental = st.fixed_dictionaries(
    {},
    optional={
        "parameter": sometimes(st.just("start")),
        "column": sometimes(st.just("day")),
        "lookback_days": sometimes(numbers),
        "extra": anything,
    },
)
query = st.fixed_dictionaries(
    {},
    optional={
        "name": sometimes(names),
        "query_id": sometimes(st.one_of(numbers, st.just("1463956"))),
        "parameters": sometimes(
            st.dictionaries(
                st.one_of(text, st.integers(), st.dates()), parameter_values, max_size=3
            )
        ),
        "primary_key": sometimes(st.lists(st.one_of(text, st.just("day")), max_size=3)),
        "mode": sometimes(st.sampled_from(["upsert", "replace", "merge"])),
        "max_age_hours": sometimes(numbers),
        "performance": sometimes(st.sampled_from(["medium", "large", "xl"])),
        "allow_partial": sometimes(st.booleans()),
        "timeout_minutes": sometimes(numbers),
        "incremental": sometimes(incremental),
        "metrics": sometimes(st.lists(metrics, max_size=2)),
        "colour": anything,
    },
)
# One field of an otherwise valid query at a time: most of these validate, so the
# "a valid spec is usable" half of the property gets exercised at the edges too.
ONE_FIELD: dict[str, st.SearchStrategy[Any]] = {
    "name": names,
    "query_id": numbers,
    "parameters": st.dictionaries(text, parameter_values, max_size=3),
    "primary_key": st.lists(text, min_size=1, max_size=3),
    "max_age_hours": numbers,
    "timeout_minutes": numbers,
    "incremental": st.fixed_dictionaries(
        {"parameter": text, "column": st.just("day"), "lookback_days": numbers}
    ),
    "metrics": st.lists(
        st.fixed_dictionaries(
            {"asset": text, "metric": text, "date_column": text, "value_column": text}
        ),
        max_size=2,
    ),
}


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    queries = []
    for i in range(draw(st.integers(1, 3))):
        q: dict[str, Any] = {"name": f"q{i}", "query_id": i + 1, "primary_key": ["day"]}
        field = draw(st.sampled_from(sorted(ONE_FIELD)))
        q[field] = draw(ONE_FIELD[field])
        queries.append(q)
    return {"queries": queries}


specs = st.one_of(
    anything,
    st.fixed_dictionaries(
        {"queries": st.one_of(st.lists(query, max_size=4), anything)},
        optional={"extra": anything, 7: anything},
    ),
    near_valid(),
)


@FUZZ
@given(specs)
@example({"queries": [{"name": "a", "query_id": True}]})
@example({"queries": [{"name": "a", "query_id": 10**30}]})
@example({"queries": [{"name": "a", "query_id": 1, "max_age_hours": math.inf}]})
@example({"queries": [{"name": "a", "query_id": 1, "parameters": {"x": math.nan}}]})
@example({"queries": [{"name": "a", "query_id": 1, "parameters": {"x": "\ud800"}}]})
@example({"queries": [{"name": "a", "query_id": 1, "parameters": {"a\nb": {}}}]})
@example({"queries": [{"name": "a", "query_id": 1, "parameters": {date(2024, 1, 1): 1}}]})
@example({1: 2})
@example(
    {
        "queries": [
            {
                "name": n,
                "query_id": i,
                "metrics": [
                    {"asset": "E\nTH", "metric": "m", "date_column": "d", "value_column": "v"}
                ],
            }
            for i, n in ((1, "a"), (2, "b"))
        ]
    }
)
@example(
    {
        "queries": [
            {
                "name": "a",
                "query_id": 1,
                "primary_key": ["day"],
                "incremental": {"parameter": "p", "column": "day", "lookback_days": 1e12},
            }
        ]
    }
)
def test_parse_spec_returns_a_usable_spec_or_a_spec_error_with_paths(data: object) -> None:
    check_outcome(lambda: parse_spec(data))


# -- hostile YAML text ----------------------------------------------------------------------

VALID = """\
queries:
  - name: eth_net_emission
    query_id: 1463956
    parameters: {start: 2024-01-01}
    primary_key: [day]
    incremental: {parameter: start, column: day, lookback_days: 3}
    metrics:
      - {asset: ETH, metric: net_emission, date_column: day, value_column: v}
  - name: other
    query_id: 42
"""
YAML_SNIPPETS = [
    "\t",
    "  ",
    "\n",
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "#",
    "&a ",
    "*a ",
    "*nope ",
    "<<: *a\n",
    "!!python/object:os.system ",
    "!!python/name:os.system ",
    "!custom ",
    "!!binary ",
    "!!set ",
    "!!float ",
    "!!int ",
    "!!timestamp ",
    "!!str ",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\x00",
    "\x07",
    "\ufeff",
    "\u2028",
    "\ud800",
    '"\\ud800"',
    '"\\x00"',
    ".inf",
    ".nan",
    "yes",
    "~",
    "1:30",
    "0x1F",
    "99999999999999999999999",
    "query_id: 2\n",
    "name: eth_net_emission\n",
]


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["dump", "mutate", "nest"]))
    if kind == "dump":
        data = draw(specs)
        try:
            return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
        except yaml.YAMLError:
            return repr(data)
    if kind == "nest":
        depth = draw(st.sampled_from([10, 100, 400, 1200]))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]))
        if opener == "- ":
            return "queries:\n" + "".join("  " * i + "- \n" for i in range(min(depth, 2000)))
        return "queries: " + opener * depth + "1" + closer * depth
    body = VALID
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "indent", "dedent"]))
        if action == "insert":
            snippet = draw(st.one_of(st.sampled_from(YAML_SNIPPETS), st.text(max_size=4)))
            body = body[:pos] + snippet + body[pos:]
        elif action == "delete":
            body = body[:pos] + body[pos + draw(st.integers(1, 8)) :]
        else:
            lines = body.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = ("  " + lines[i]) if action == "indent" else lines[i][1:]
            body = "\n".join(lines)
    return body


_TMP = Path(tempfile.mkdtemp(prefix="hostile-spec-"))


def write(content: str | bytes) -> Path:
    path = _TMP / "spec.yaml"
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(content)
    return path


@FUZZ
@given(yaml_texts())
@example("queries: " + "{a: " * 5000 + "1" + "}" * 5000)
@example("queries:\n  - {name: a, query_id: 1}\n\x00")
@example("queries:\n  - {name: a, query_id: yes}\n")
@example("queries:\n  - {name: a, query_id: 1, parameters: {x: .nan}}\n")
@example("queries:\n  - {name: a, query_id: 1, max_age_hours: .inf}\n")
@example('queries:\n  - {name: a, query_id: 1, parameters: {"\\ud800": {x: 1}}}\n')
def test_load_spec_on_hostile_yaml_text(content: str) -> None:
    check_outcome(lambda: load_spec(write(content)))


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xff\xfe" + "queries: []".encode("utf-16-le"))
@example(b"queries:\n  - {name: \xe9, query_id: 1}\n")
def test_load_spec_on_arbitrary_bytes(content: bytes) -> None:
    check_outcome(lambda: load_spec(write(content)))


# -- the regressions the properties found, pinned with their exact outcome ----------------


def problems_of(text_or_data: str | object) -> list[str]:
    with pytest.raises(SpecError) as info:
        if isinstance(text_or_data, str):
            load_spec(write(text_or_data))
        else:
            parse_spec(text_or_data)
    return info.value.problems


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "queries: " + "[" * 600 + "]" * 600,
            "(top level): the YAML is nested too deeply",
        ),
        (
            "queries:\n  - {name: a, query_id: 1}\n\x00",
            "line 3, column 1: unacceptable character '\\x00'",
        ),
        ("queries:\n  - {name: a, query_id: yes}\n", "queries[0].query_id: true/false is not"),
        (
            "queries:\n  - {name: a, query_id: 99999999999}\n",
            "queries[0].query_id: Input should be less than or equal to 2147483647",
        ),
        (
            "queries:\n  - {name: a, query_id: 1, max_age_hours: .inf}\n",
            "queries[0].max_age_hours: Input should be a finite number",
        ),
        (
            "queries:\n  - {name: a, query_id: 1, parameters: {x: .nan}}\n",
            "queries[0].parameters.x: nan is not a finite number",
        ),
        (
            'queries:\n  - {name: a, query_id: 1, parameters: {x: "\\ud800"}}\n',
            "queries[0].parameters.x: text is not valid Unicode (lone surrogate '\\ud800')",
        ),
        (
            'queries:\n  - {name: a, query_id: 1, parameters: {"a\\nb": {}}}\n',
            "queries[0].parameters['a\\nb']: expected text",
        ),
        (
            "queries:\n  - {name: a, query_id: 1, parameters: {2024-01-01: x}}\n",
            "queries[0].parameters: key 2024-01-01 is not text; quote it",
        ),
        (
            "queries:\n  - {name: a, query_id: 1}\n1: 2\n",
            "(top level): key 1 is not text; quote it",
        ),
        (
            "queries:\n  - {name: a, query_id: " + "9" * 5000 + "}\n",
            "line 2, column 25: cannot read this int value (Exceeds the limit (4300 digits)",
        ),
        ("!!float queries: []\n", "line 1, column 1: cannot read this float value"),
        ("!!set {a: 1}: []\n", "line 1, column 1: found unhashable key"),
        ("queries: !!timestamp soon\n", "line 1, column 10: cannot read this timestamp value"),
        (
            "queries:\n  - name: a\n    query_id: 1\n    incremental: {parameter: p, column: d, "
            "lookback_days: 1e12}\n    primary_key: [d]\n",
            "queries[0].incremental.lookback_days: Input should be less than or equal to 36500",
        ),
    ],
)
def test_hostile_yaml_gets_one_clear_problem(content: str, expected: str) -> None:
    found = problems_of(content)
    assert any(p.startswith(expected) for p in found), found
    for p in found:
        check_problem(p)


def test_a_newline_in_a_metric_name_stays_on_one_problem_line() -> None:
    metric = {"asset": "E\nTH", "metric": "m", "date_column": "d", "value_column": "v"}
    found = problems_of(
        {
            "queries": [
                {"name": "a", "query_id": 1, "metrics": [metric]},
                {"name": "b", "query_id": 2, "metrics": [metric]},
            ]
        }
    )
    assert found == ["queries[1].metrics[0]: E\\nTH/m is already recorded by a"]


def test_file_problems_carry_the_file_marker(tmp_path: Path) -> None:
    assert problems_of_path(tmp_path / "missing.yaml")[0].startswith("(file): cannot read")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"queries:\n  - {name: caf\xe9, query_id: 1}\n")
    assert problems_of_path(latin1) == ["(file): the file is not UTF-8 text"]
    assert problems_of_path(tmp_path)[0].startswith("(file): cannot read")


def problems_of_path(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


def test_yaml_merge_keys_share_defaults_between_queries() -> None:
    spec = load_spec(
        write(
            "queries:\n"
            "  - &first {name: a, query_id: 1, max_age_hours: 6, mode: replace}\n"
            "  - {<<: *first, name: b, query_id: 2}\n"
        )
    )
    assert [(q.name, q.query_id, q.max_age_hours, q.mode) for q in spec.queries] == [
        ("a", 1, 6, "replace"),
        ("b", 2, 6, "replace"),
    ]


def test_explicit_duplicate_keys_are_still_refused_next_to_a_merge() -> None:
    found = problems_of(
        "queries:\n  - &first {name: a, query_id: 1}\n"
        "  - {<<: *first, name: b, name: c, query_id: 2}\n"
    )
    assert found == ["line 3, column 27: duplicate key 'name'"]


@pytest.mark.parametrize("key", ["flag", "date", "str", "int"])
def test_a_parameter_keeps_its_name_in_the_path_even_when_it_names_a_type(key: str) -> None:
    found = problems_of({"queries": [{"name": "a", "query_id": 1, "parameters": {key: True}}]})
    assert found == [
        f"queries[0].parameters.{key}: true/false is not a Dune parameter type; quote it to "
        "send text"
    ]
