"""Source expressions: JMESPath compiled once, with a plain key lookup for plain field names.

Most mapped fields name one key of the raw record (`name`, `"task.business_service"`); those skip
the JMESPath interpreter and read the dict directly, which is what makes mapping 100,000 task_sla
rows a second's work. Expressions of fields, literals, `||`, `&&`, `!`, `==` and `!=` run as
Python closures (`_closure`); the rest (`join(': ', [number, title])`) runs the compiled
expression. `top_level_fields` tells a connector which columns to ask for.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

Getter = Callable[[dict[str, Any]], Any]


class ExpressionError(Exception):
    """A source expression does not compile."""


def compile_source(expression: str) -> tuple[Getter, tuple[str, ...]]:
    """A getter for `expression` and the top-level record fields it reads."""
    try:
        parsed = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(_explain(expression, exc)) from None
    ast: dict[str, Any] = dict(parsed.parsed)
    fields = tuple(dict.fromkeys(_root_fields(ast)))
    if ast["type"] == "field":
        return _key_getter(ast["value"]), fields
    alternatives = _field_alternatives(ast)
    if alternatives is not None:
        return _first_present(alternatives), fields
    return _closure(ast) or parsed.search, fields


def _closure(node: dict[str, Any]) -> Getter | None:
    """`node` as nested Python closures, for the expressions shipped mappings use beyond plain
    fields (`type == 'SLA' && (slm_applies_to || condition) || null`: fields, dotted
    sub-fields, literals, `@`, `||`, `&&`, `!`, `==`, `!=`), with JMESPath's truth and equality;
    None for anything else, which the interpreter runs (it walked the tree for every record:
    a tenth of mapping the agreements)."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        key = node["value"]
        return lambda value: value.get(key) if isinstance(value, dict) else None
    if kind == "literal":
        literal = node["value"]
        return lambda value: literal
    if kind == "current":
        return lambda value: value
    parts = [_closure(child) for child in children]
    if not parts or any(part is None for part in parts):
        return None
    if kind == "subexpression" and all(c["type"] == "field" for c in children):
        keys = tuple(child["value"] for child in children)
        return lambda value: _walk(value, keys)
    if kind == "not_expression":
        (inner,) = parts
        assert inner is not None
        return lambda value: _not(inner(value))
    if len(parts) != 2:
        return None
    left, right = parts
    assert left is not None and right is not None
    if kind == "or_expression":
        return lambda value: _or(left(value), right, value)
    if kind == "and_expression":
        return lambda value: right(value) if _truthy(matched := left(value)) else matched
    if kind == "comparator" and node["value"] == "eq":
        return lambda value: _equals(left(value), right(value))
    if kind == "comparator" and node["value"] == "ne":
        return lambda value: not _equals(left(value), right(value))
    return None


def _or(matched: Any, right: Getter, value: Any) -> Any:
    return matched if _truthy(matched) else right(value)


def _walk(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _not(value: Any) -> bool:
    if _is_number(value) and value == 0:
        return False  # JMESPath: !0 is false
    return not value


def _equals(left: Any, right: Any) -> bool:
    """JMESPath's `==`: as Python's, except that 0 and 1 never equal false and true."""
    if _is_number(left) and left in (0, 1):
        if isinstance(right, bool):
            return False
    elif _is_number(right) and right in (0, 1) and isinstance(left, bool):
        return False
    return bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def plain_key(getter: Getter) -> str | None:
    """The record key a getter of `compile_source` reads when its expression is a plain field
    name (`sys_id`, `"task.number"`), else None (any other getter, e.g. a benchmark's own)."""
    try:
        return _PLAIN_KEYS.get(getter)
    except TypeError:  # a callable that takes no weak reference (operator.itemgetter): not ours
        return None


def _key_getter(key: str) -> Getter:
    def get(record: dict[str, Any]) -> Any:
        return record.get(key)

    _PLAIN_KEYS[get] = key
    return get


_PLAIN_KEYS: weakref.WeakKeyDictionary[Getter, str] = weakref.WeakKeyDictionary()


def _field_alternatives(ast: dict[str, Any]) -> tuple[str, ...] | None:
    """`a || b || c` over plain fields, as the field names; None for anything else."""
    if ast["type"] == "field":
        return (ast["value"],)
    if ast["type"] != "or_expression":
        return None
    left, right = (_field_alternatives(child) for child in ast["children"])
    return None if left is None or right is None else left + right


def _first_present(keys: tuple[str, ...]) -> Getter:
    def first(record: dict[str, Any]) -> Any:
        value = None
        for key in keys:
            value = record.get(key)
            if _truthy(value):
                return value
        return value

    return first


def compile_filter(expression: str) -> tuple[Callable[[dict[str, Any]], bool], tuple[str, ...]]:
    """A predicate for `expression`: a record is kept when the expression is truthy.

    `field == 'literal'` and `field != 'literal'` compile to a direct comparison.
    """
    getter, fields = compile_source(expression)
    ast: dict[str, Any] = dict(jmespath.compile(expression).parsed)
    simple = _simple_comparison(ast)
    if simple is not None:
        key, literal, equal = simple
        if equal:
            return (lambda record: record.get(key) == literal), fields
        return (lambda record: record.get(key) != literal), fields
    return (lambda record: _truthy(getter(record))), fields


def _simple_comparison(ast: dict[str, Any]) -> tuple[str, Any, bool] | None:
    if ast["type"] != "comparator" or ast["value"] not in ("eq", "ne"):
        return None
    left, right = ast["children"]
    if left["type"] == "field" and right["type"] == "literal":
        return left["value"], right["value"], ast["value"] == "eq"
    return None


def _truthy(value: Any) -> bool:
    # JMESPath truth: false, null, "", [] and {} are false (0 is true: `in (False, ...)` was not).
    return not (value is None or value is False or value == "" or value == [] or value == {})


def _explain(expression: str, exc: JMESPathError) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = ""
    if "." in expression and not expression.startswith('"'):
        hint = ' (a dot-walked key such as task.priority must be quoted: "task.priority")'
    return f"invalid JMESPath expression {expression!r}: {detail}{hint}"


# Node types whose children are all evaluated against the same current node as the parent.
_SAME_CONTEXT = frozenset(
    {
        "and_expression",
        "or_expression",
        "not_expression",
        "comparator",
        "function_expression",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
    }
)
# Node types where only the first child sees the parent's current node.
_LEFT_ONLY = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "pipe",
    }
)


def _root_fields(node: dict[str, Any]) -> Iterator[str]:
    """Field names read from the record itself (not from values nested inside it)."""
    kind = node["type"]
    if kind == "field":
        yield node["value"]
    elif kind in _SAME_CONTEXT:
        for child in node["children"]:
            yield from _root_fields(child)
    elif kind in _LEFT_ONLY and node["children"]:
        yield from _root_fields(node["children"][0])
