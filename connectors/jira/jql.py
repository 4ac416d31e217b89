"""JQL built from data: every value quoted and escaped, so a quote cannot change a query."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """`value` as one JQL string literal: "...", with backslash, quote and line breaks escaped."""
    return '"' + "".join(_ESCAPES.get(character, character) for character in value) + '"'


def quote_list(values: Iterable[str]) -> str:
    """`("a", "b")`: a JQL list of quoted values, for `in` clauses."""
    return "(" + ", ".join(quote(value) for value in values) + ")"


def jql_time(moment: datetime, zone: tzinfo = UTC) -> str:
    """A quoted JQL date-time ("yyyy-MM-dd HH:mm") as wall time in `zone`.

    Jira reads JQL date literals in the searching user's time zone (their profile's
    `timeZone`, see `JiraClient.time_zone`), not UTC: pass that zone, or a search west of
    UTC starts hours late. JQL has minute resolution; a naive `moment` is taken as UTC.
    """
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return quote(aware.astimezone(zone).strftime("%Y-%m-%d %H:%M"))


def labels_in(project: str, labels: Iterable[str]) -> str:
    """Issues of `project` carrying any of `labels`."""
    return f"project = {quote(project)} AND labels in {quote_list(labels)}"


def keys_in(keys: Iterable[str]) -> str:
    """Issues with these keys."""
    return f"key in {quote_list(keys)}"
