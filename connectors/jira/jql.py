"""JQL built from data: every value quoted and escaped, so a quote cannot change a query."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """`value` as one JQL string literal: "...", with backslash, quote and line breaks escaped."""
    return '"' + "".join(_ESCAPES.get(character, character) for character in value) + '"'


def quote_list(values: Iterable[str]) -> str:
    """`("a", "b")`: a JQL list of quoted values, for `in` clauses."""
    return "(" + ", ".join(quote(value) for value in values) + ")"


def jql_time(moment: datetime) -> str:
    """A quoted JQL date-time ("yyyy-MM-dd HH:mm", UTC); JQL has minute resolution."""
    return quote(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M"))


def labels_in(project: str, labels: Iterable[str]) -> str:
    """Issues of `project` carrying any of `labels`."""
    return f"project = {quote(project)} AND labels in {quote_list(labels)}"


def keys_in(keys: Iterable[str]) -> str:
    """Issues with these keys."""
    return f"key in {quote_list(keys)}"
