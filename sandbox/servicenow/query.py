"""ServiceNow encoded queries (`sysparm_query`): parse once, evaluate per record.

Grammar (the subset our connectors and tests use):

    query      := part ( "^" part )*
    part       := "NQ" condition      new query: OR with everything before it
                | "OR" condition      OR with the condition just before
                | "ORDERBY" field | "ORDERBYDESC" field | "EQ"
                | condition           AND with the previous terms
    condition  := field operator value
    field      := name ( "." name )*  dot-walk through reference fields

Operators: `=`, `!=`, `>`, `>=`, `<`, `<=`, `IN`, `NOT IN`, `STARTSWITH`, `ENDSWITH`, `LIKE`,
`CONTAINS`, `NOTLIKE`, `DOES NOT CONTAIN`, `ISEMPTY`, `ISNOTEMPTY`, `BETWEEN` (`a@b`), and
`sys_class_nameINSTANCEOF<table>` ("class is a"): rows of that table or a table extending it
(on another field it is no operator: the condition is dropped, as an unknown one).
String comparisons ignore case (the instance's database collation does); when the value is a
number, `<`/`>` compare numerically; dates compare as "YYYY-MM-DD HH:MM:SS" strings.
A value may be `javascript:gs.dateGenerate('2024-01-01','10:00:00')`.

A literal caret inside a value is written `^^` (a single `^` always separates parts), so
`name=A^^B` matches the name "A^B". Clients must double every caret of a value they embed.

A condition on a field the table does not have is dropped silently, as the real Table API does
by default: the query then matches more rows. With the instance property
`glide.invalid_query.returns_no_rows` (knob `invalid_query_returns_no_rows`) such a query
matches no row at all (`names_unknown_field` tells).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.servicenow.tables import lineage

__all__ = [
    "Condition", "EncodedQuery", "compile_filter", "names_unknown_field", "parse_query",
]  # fmt: skip

Record = dict[str, str]
Getter = Callable[[Record, str], str]

_FIELD = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")
# Longest first, so "!=" wins over "=" and "NOT IN" over "IN".
_OPERATORS = (
    "ISNOTEMPTY", "ISEMPTY", "STARTSWITH", "ENDSWITH", "DOES NOT CONTAIN", "NOTLIKE", "NOT IN",
    "CONTAINS", "LIKE", "BETWEEN", "INSTANCEOF", "IN", "!=", ">=", "<=", "=", ">", "<",
)  # fmt: skip
_DATE_GENERATE = re.compile(r"^javascript:gs\.dateGenerate\('([^']*)',\s*'([^']*)'\)$")


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str


@dataclass
class EncodedQuery:
    """NQ groups (OR) of AND terms, each term a list of OR alternatives; plus the ordering."""

    groups: list[list[list[Condition]]] = field(default_factory=lambda: [[]])
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)


def split_parts(text: str) -> list[str]:
    """Split at single carets; `^^` is a literal caret inside a value."""
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == "^" and text.startswith("^^", index):
            current.append("^")
            index += 2
            continue
        if char == "^":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return [part for part in parts if part]


def parse_query(text: str) -> EncodedQuery:
    query = EncodedQuery()
    for part in split_parts(text):
        if part.startswith("ORDERBYDESC"):
            query.order_by.append((part.removeprefix("ORDERBYDESC"), True))
        elif part.startswith("ORDERBY"):
            query.order_by.append((part.removeprefix("ORDERBY"), False))
        elif part == "EQ":
            continue
        elif part.startswith("NQ"):
            query.groups.append([])
            _add(query.groups[-1], _condition(part[2:]), alternative=False)
        elif part.startswith("OR"):
            _add(query.groups[-1], _condition(part[2:]), alternative=True)
        else:
            _add(query.groups[-1], _condition(part), alternative=False)
    return query


def _add(terms: list[list[Condition]], condition: Condition | None, alternative: bool) -> None:
    if condition is None:
        return
    if alternative and terms:
        terms[-1].append(condition)
    else:
        terms.append([condition])


def _condition(text: str) -> Condition | None:
    match = _FIELD.match(text)
    if match is None:
        return None
    rest = text[match.end() :]
    for operator in _OPERATORS:
        if rest.startswith(operator):
            if operator == "INSTANCEOF" and match.group() != "sys_class_name":
                return None
            return Condition(match.group(), operator, _value(rest[len(operator) :]))
    return None  # an operator we do not know: ignored like an invalid field


def _value(text: str) -> str:
    generated = _DATE_GENERATE.match(text)
    if generated is None:
        return text
    day, time = generated.groups()
    time = {"start": "00:00:00", "end": "23:59:59"}.get(time, time)
    return f"{day} {time}"


def compile_filter(
    query: EncodedQuery, is_field: Callable[[str], bool], get: Getter
) -> Callable[[Record], bool] | None:
    """A predicate over records, or None if nothing filters (all conditions invalid or none)."""
    groups: list[list[list[Callable[[Record], bool]]]] = []
    for group in query.groups:
        terms = [[_predicate(c, get) for c in term if is_field(c.field)] for term in group]
        groups.append([alternatives for alternatives in terms if alternatives])
    if not groups or any(not terms for terms in groups):
        return None  # one group without valid conditions matches every record

    def matches(record: Record) -> bool:
        return any(all(any(test(record) for test in term) for term in terms) for terms in groups)

    return matches


def names_unknown_field(query: EncodedQuery, is_field: Callable[[str], bool]) -> bool:
    """Whether a condition names a field the table lacks (an invalid query)."""
    return any(not is_field(c.field) for group in query.groups for term in group for c in term)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _predicate(condition: Condition, get: Getter) -> Callable[[Record], bool]:
    name, operator, value = condition.field, condition.operator, condition.value
    test = _value_test(operator, value)
    if name == "sys_id" and operator in (">", ">=", "<", "<="):
        test = _guid_test(operator, value)  # a GUID, even when all digits: compared as text
    if "." not in name:
        return lambda record: test(record.get(name, ""))
    return lambda record: test(get(record, name))


def _guid_test(operator: str, value: str) -> Callable[[str], bool]:
    """sys_id ranges (keyset paging): text order, as the instance compares GUIDs."""
    return {
        ">": lambda v: v != "" and v > value,
        ">=": lambda v: v != "" and v >= value,
        "<": lambda v: v != "" and v < value,
        "<=": lambda v: v != "" and v <= value,
    }[operator]


def _value_test(operator: str, value: str) -> Callable[[str], bool]:
    folded = value.casefold()
    if operator == "INSTANCEOF":  # the row's class is the table or extends it
        return lambda v: folded in (name.casefold() for name in lineage(v)) if v else False
    if operator in ("=", "!="):
        equal = operator == "="
        return lambda v: (v.casefold() == folded) is equal
    if operator in (">", ">=", "<", "<=", "BETWEEN"):
        return _range_test(operator, value)
    if operator in ("IN", "NOT IN"):
        members = {member.casefold() for member in value.split(",")}
        inside = operator == "IN"
        return lambda v: (v.casefold() in members) is inside
    if operator == "STARTSWITH":
        return lambda v: v.casefold().startswith(folded)
    if operator == "ENDSWITH":
        return lambda v: v.casefold().endswith(folded)
    if operator in ("LIKE", "CONTAINS"):
        return lambda v: folded in v.casefold()
    if operator in ("NOTLIKE", "DOES NOT CONTAIN"):
        return lambda v: folded not in v.casefold()
    if operator == "ISEMPTY":
        return lambda v: v == ""
    return lambda v: v != ""  # ISNOTEMPTY


def _range_test(operator: str, value: str) -> Callable[[str], bool]:
    if operator == "BETWEEN":
        low, _, high = value.partition("@")
        above, below = _range_test(">=", low), _range_test("<=", high)
        return lambda v: above(v) and below(v)
    number = _number(value)
    compare: Callable[[object, object], bool] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[operator]
    if number is None:
        return lambda v: v != "" and compare(v, value)

    def numeric(v: str) -> bool:
        parsed = _number(v) if v else None
        return parsed is not None and compare(parsed, number)

    return numeric
