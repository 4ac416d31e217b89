"""The JQL subset the connectors use: parse, validate against the instance, match, sort.

Supported, as real Jira spells it::

    project = SLM                      project in (SLM, ITSD)
    issuetype = "Sub-task"             issuetype in (Task, 10001)       (``type`` is an alias)
    labels = "slm:2025:svc:review"     labels in ("a", 'b')
    parent = SLM-1                     key = SLM-2      key in (SLM-1, SLM-2)  (``issuekey`` alias)
    updated >= "2024-01-01 10:00"      updated <= -5m   (also created; >, < too)
                                       (date literals: wall time in the user's time zone)
    clause AND clause ...              ORDER BY updated [ASC|DESC], key [ASC|DESC]
    (a AND b) OR (c AND d)             (parentheses group; where AND and OR mix they are required:
                                        Atlassian's spec parses "A OR B AND C" as "(A OR B) AND C",
                                        not as SQL would, so the sandbox refuses to guess)

Strings are quoted with "..." or '...' and use backslash escapes (``\\"``, ``\\\\``) as in
real JQL. Anything else (NOT, functions, ~, unknown fields) is rejected with
:class:`JqlError`, which the app answers as a 400 with Jira's ``errorMessages`` shape; values
that do not exist (an unknown project, issue type or issue key) are rejected the same way,
as Jira does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "JqlCatalog",
    "JqlError",
    "JqlQuery",
    "SearchDoc",
    "parse_jql",
]


class JqlError(ValueError):
    """A query Jira would refuse; the message is what Jira puts in ``errorMessages``."""


@dataclass(frozen=True)
class SearchDoc:
    """What the search index knows about one issue (labels may lag behind the issue)."""

    id: int
    key: str
    project: str
    issuetype_id: str
    labels: tuple[str, ...]
    parent_key: str | None
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class JqlCatalog:
    """What the query is checked against: the instance's projects, issue types and keys."""

    projects: frozenset[str]
    issuetype_ids_by_name: dict[str, str]
    key_exists: Callable[[str], bool]
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    zone: tzinfo = UTC  # the searching user's time zone: date literals are its wall time
    resolve: Callable[[str], str] = field(default=lambda key: key)  # a moved issue's old key


Predicate = Callable[[SearchDoc], bool]


@dataclass(frozen=True)
class JqlQuery:
    """A validated query: a conjunction of predicates (an OR is one predicate) and a sort
    order."""

    predicates: tuple[Predicate, ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    def matches(self, doc: SearchDoc) -> bool:
        return all(predicate(doc) for predicate in self.predicates)

    def sort(self, docs: Iterable[SearchDoc]) -> list[SearchDoc]:
        ordered = sorted(docs, key=lambda d: d.id)  # a stable, total tie-break
        for name, descending in reversed(self.order):
            ordered.sort(key=_SORT_KEYS[name], reverse=descending)
        return ordered


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|=|>|<|~|\(|\)|,)
      | (?P<word>[^\s"'=!<>~(),]+)
    )""",
    re.VERBOSE,
)
_UNESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "op", "word"
    text: str
    position: int

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _tokenize(jql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(jql):
        if not jql[position:].strip():
            break
        match = _TOKEN.match(jql, position)
        if match is None or match.end() == position:
            raise JqlError(_at(jql, position, f"The character '{jql[position]}' is reserved"))
        kind = match.lastgroup or "word"
        text = match.group(kind)
        if kind == "string":
            text = _UNESCAPE.sub(r"\1", text[1:-1])
        tokens.append(_Token(kind, text, match.start(kind)))
        position = match.end()
    return tokens


def _at(jql: str, position: int, message: str) -> str:
    return f"Error in the JQL Query: {message}. (line 1, character {position + 1})"


_FIELD_ALIASES = {
    "project": "project",
    "issuetype": "issuetype",
    "type": "issuetype",
    "labels": "labels",
    "parent": "parent",
    "key": "key",
    "issuekey": "key",
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
}
_OPERATORS = {
    "project": {"=", "IN"},
    "issuetype": {"=", "IN"},
    "labels": {"=", "IN"},
    "parent": {"=", "IN"},
    "key": {"=", "IN"},
    "updated": {">=", "<=", ">", "<"},
    "created": {">=", "<=", ">", "<"},
}
_SORT_KEYS: dict[str, Callable[[SearchDoc], Any]] = {
    "updated": lambda d: d.updated,
    "created": lambda d: d.created,
    "key": lambda d: (d.project, int(d.key.rsplit("-", 1)[1])),
}


class _Parser:
    def __init__(self, jql: str, catalog: JqlCatalog) -> None:
        self.jql = jql
        self.catalog = catalog
        self.tokens = _tokenize(jql)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise JqlError(f"Error in the JQL Query: Expecting {expected} but got the end.")
        self.index += 1
        return token

    def fail(self, token: _Token, message: str) -> JqlError:
        return JqlError(_at(self.jql, token.position, message))

    def query(self) -> JqlQuery:
        predicates: list[Predicate] = []
        token = self.peek()
        if token is not None and token.keyword != "ORDER":
            predicates.append(self.either())
        order = self.order_by()
        token = self.peek()
        if token is not None:
            if token.keyword == "NOT":
                raise self.fail(token, "The sandbox does not support NOT")
            raise self.fail(token, f"Expecting either 'OR' or 'AND' but got '{token.text}'")
        return JqlQuery(tuple(predicates), order)

    def either(self) -> Predicate:
        """Terms joined by one of AND / OR. Mixing both at one level is refused: Atlassian's
        spec parses "A OR B AND C" as "(A OR B) AND C", so a query must say what it means."""
        parts = [self.term()]
        joiner = ""
        while (token := self.peek()) is not None and token.keyword in {"AND", "OR"}:
            if joiner and token.keyword != joiner:
                raise self.fail(token, "The sandbox needs parentheses where AND and OR mix")
            joiner = token.keyword
            self.index += 1
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        if joiner == "OR":
            return lambda d: any(part(d) for part in parts)
        return lambda d: all(part(d) for part in parts)

    def term(self) -> Predicate:
        token = self.peek()
        if token is None or token.text != "(":
            return self.clause()
        self.index += 1
        inner = self.either()
        closing = self.take("')'")
        if closing.text != ")":
            raise self.fail(closing, f"Expecting ')' but got '{closing.text}'")
        return inner

    def clause(self) -> Predicate:
        token = self.take("a field name")
        if token.kind != "word" or token.keyword in {"AND", "OR", "NOT", "ORDER"}:
            raise self.fail(token, f"Expecting a field name but got '{token.text}'")
        name = _FIELD_ALIASES.get(token.text.lower())
        if name is None:
            raise JqlError(
                f"Field '{token.text}' does not exist or you do not have permission to view it."
            )
        operator = self.operator()
        if operator not in _OPERATORS[name]:
            raise JqlError(
                f"The operator '{operator.lower() if operator == 'IN' else operator}' "
                f"is not supported by the '{token.text}' field."
            )
        values = self.value_list() if operator == "IN" else [self.value()]
        return _compile(name, operator, values, self.catalog)

    def operator(self) -> str:
        token = self.take("an operator")
        if token.kind == "op" and token.text not in "(),":
            return token.text
        if token.keyword == "IN":
            return "IN"
        if token.keyword in {"NOT", "IS", "WAS", "CHANGED"}:
            raise self.fail(token, f"The sandbox does not support the operator '{token.text}'")
        raise self.fail(token, f"Expecting operator but got '{token.text}'")

    def value(self) -> str:
        token = self.take("a value")
        if token.kind == "op":
            raise self.fail(
                token, f"Expecting either a value, list or function but got '{token.text}'"
            )
        if (
            token.kind == "word"
            and self.index < len(self.tokens)
            and self.tokens[self.index].text == "("
        ):
            raise self.fail(token, f"The sandbox does not support the function '{token.text}'")
        return token.text

    def value_list(self) -> list[str]:
        opening = self.take("'('")
        if opening.text != "(":
            raise self.fail(opening, f"Expecting '(' but got '{opening.text}'")
        values = [self.value()]
        while (token := self.take("')'")).text == ",":
            values.append(self.value())
        if token.text != ")":
            raise self.fail(token, f"Expecting ',' or ')' but got '{token.text}'")
        return values

    def order_by(self) -> tuple[tuple[str, bool], ...]:
        token = self.peek()
        if token is None or token.keyword != "ORDER":
            return ()
        self.index += 1
        by = self.take("'by'")
        if by.keyword != "BY":
            raise self.fail(by, f"Expecting 'by' but got '{by.text}'")
        order = [self.sort_key()]
        while (token := self.peek()) is not None and token.text == ",":
            self.index += 1
            order.append(self.sort_key())
        return tuple(order)

    def sort_key(self) -> tuple[str, bool]:
        token = self.take("a field name")
        name = _FIELD_ALIASES.get(token.text.lower())
        if name not in _SORT_KEYS:
            raise JqlError(
                f"The sandbox cannot sort by '{token.text}'; use updated, created or key."
            )
        direction = self.peek()
        if direction is not None and direction.keyword in {"ASC", "DESC"}:
            self.index += 1
            return name, direction.keyword == "DESC"
        return name, False


def parse_jql(jql: str, catalog: JqlCatalog) -> JqlQuery:
    """Parse and validate ``jql``; raise :class:`JqlError` with Jira's message if refused."""
    return _Parser(jql, catalog).query()


def _compile(name: str, operator: str, values: Sequence[str], catalog: JqlCatalog) -> Predicate:
    if name == "project":
        projects = {_project(v, catalog) for v in values}
        return lambda d: d.project in projects
    if name == "issuetype":
        type_ids = {_issuetype(v, catalog) for v in values}
        return lambda d: d.issuetype_id in type_ids
    if name == "labels":
        labels = set(values)
        return lambda d: not labels.isdisjoint(d.labels)
    if name in {"key", "parent"}:
        keys = {catalog.resolve(_issue_key(v, name, catalog)) for v in values}
        if name == "key":
            return lambda d: d.key in keys
        return lambda d: d.parent_key in keys
    return _compile_date(name, operator, _date(values[0], name, catalog))


def _project(value: str, catalog: JqlCatalog) -> str:
    key = value.upper()
    if key not in catalog.projects:
        raise JqlError(f"The value '{value}' does not exist for the field 'project'.")
    return key


def _issuetype(value: str, catalog: JqlCatalog) -> str:
    if value in catalog.issuetype_ids_by_name.values():
        return value
    for name, type_id in catalog.issuetype_ids_by_name.items():
        if name.lower() == value.lower():
            return type_id
    raise JqlError(f"The value '{value}' does not exist for the field 'issuetype'.")


def _issue_key(value: str, field_name: str, catalog: JqlCatalog) -> str:
    key = value.upper()
    if not catalog.key_exists(key):
        raise JqlError(f"An issue with key '{value}' does not exist for field '{field_name}'.")
    return key


_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_PERIOD = re.compile(r"^([-+]?)((?:\d+[wdhm]\s*)+)$")
_PERIOD_PART = re.compile(r"(\d+)([wdhm])")
_UNIT = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}


def _date(value: str, field_name: str, catalog: JqlCatalog) -> datetime:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=catalog.zone)
        except ValueError:
            continue
    period = _PERIOD.match(value.strip())
    if period:
        span = sum(
            (int(n) * _UNIT[u] for n, u in _PERIOD_PART.findall(period.group(2))), timedelta()
        )
        return catalog.now() + (-span if period.group(1) == "-" else span)
    raise JqlError(
        f"Date value '{value}' for field '{field_name}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
        "or a period format e.g. '-5d', '4w 2d'."
    )


def _compile_date(name: str, operator: str, bound: datetime) -> Predicate:
    def value(doc: SearchDoc) -> datetime:
        return doc.updated if name == "updated" else doc.created

    comparisons: dict[str, Predicate] = {
        ">=": lambda d: value(d) >= bound,
        "<=": lambda d: value(d) <= bound,
        ">": lambda d: value(d) > bound,
        "<": lambda d: value(d) < bound,
    }
    return comparisons[operator]
