"""Source expressions beyond plain fields run as Python closures (`mapping.expressions._closure`)
and give what JMESPath gives, on every value JMESPath treats specially (0 and 1 against true and
false, empty strings, lists and objects, null, nested objects, missing keys)."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.expressions import _closure, compile_source

EXPRESSIONS = [
    "type == 'SLA' && (slm_applies_to || condition) || `null`",
    "type != 'SLA' && (slm_applies_to || condition) || `null`",
    "name || user_name",
    '"task.number" || task',
    "short_description || '(no title)'",
    "!a",
    "!(a && b)",
    "a == b",
    "a != `0`",
    "a == `true` || b == `1`",
    "a.b || a.c",
    "a.b.c",
    "@",
    "a && `false` || b",
    "`0` || a",
    "a == `{}` && b == `[]`",
]
VALUES = st.recursive(
    st.sampled_from([None, True, False, 0, 1, 0.0, 1.0, 2, "", "SLA", "x", [], {}]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=4,
)
KEYS = ["a", "b", "c", "type", "slm_applies_to", "condition", "name", "user_name", "task"]
RECORDS = st.dictionaries(st.sampled_from([*KEYS, "task.number", "short_description"]), VALUES)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_each_expression_compiles_to_a_closure(expression: str) -> None:
    ast: dict[str, Any] = dict(jmespath.compile(expression).parsed)
    assert _closure(ast) is not None or ast["type"] == "field"


@settings(max_examples=300, deadline=None)
@given(record=RECORDS, expression=st.sampled_from(EXPRESSIONS))
def test_a_closure_gives_what_jmespath_gives(record: dict[str, Any], expression: str) -> None:
    getter, _ = compile_source(expression)
    expected = jmespath.search(expression, record)
    got = getter(record)
    assert got == expected and type(got) is type(expected)


def test_what_it_cannot_compile_is_left_to_jmespath() -> None:
    for expression in ("join(', ', [b, b])", "a[0]", "a[?b == 'x'].c", "a < b"):
        ast: dict[str, Any] = dict(jmespath.compile(expression).parsed)
        assert _closure(ast) is None
        getter, _ = compile_source(expression)
        assert getter({"a": [{"b": "x", "c": 1}], "b": "y"}) == jmespath.search(
            expression, {"a": [{"b": "x", "c": 1}], "b": "y"}
        )


def test_zero_is_true_in_an_or_as_in_jmespath() -> None:
    getter, _ = compile_source("a || b")
    assert getter({"a": 0, "b": "fallback"}) == 0 == jmespath.search("a || b", {"a": 0, "b": 1})
