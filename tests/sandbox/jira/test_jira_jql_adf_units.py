"""The JQL subset and the ADF helpers on their own (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.jira.adf import adf_error, adf_to_wiki, text_to_adf
from sandbox.jira.jql import JqlCatalog, JqlError, SearchDoc, parse_jql

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
CATALOG = JqlCatalog(
    projects=frozenset({"SLM", "ITSD"}),
    issuetype_ids_by_name={"Task": "10001", "Sub-task": "10002"},
    key_exists=lambda key: key in {"SLM-1", "SLM-2"},
    now=lambda: NOW,
)


def _doc(number: int, labels: tuple[str, ...] = (), minutes_ago: int = 0) -> SearchDoc:
    stamp = NOW - timedelta(minutes=minutes_ago)
    return SearchDoc(number, f"SLM-{number}", "SLM", "10001", labels, None, stamp, stamp)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_any_label_round_trips_through_a_quoted_jql_string(label: str) -> None:
    """Whatever a label holds, escaping \\ and " inside "..." makes JQL match exactly it."""
    escaped = label.replace("\\", "\\\\").replace('"', '\\"')
    query = parse_jql(f'labels = "{escaped}"', CATALOG)
    assert query.matches(_doc(1, (label,)))
    assert not query.matches(_doc(2, (label + "x",)))


def test_relative_dates_count_back_from_now() -> None:
    """`updated >= -5m` keeps what changed in the last five minutes."""
    query = parse_jql("updated >= -5m", CATALOG)
    assert query.matches(_doc(1, minutes_ago=4))
    assert not query.matches(_doc(2, minutes_ago=6))


def test_order_by_updated_then_key() -> None:
    """ORDER BY updated DESC, key sorts by time, then by key number (not text)."""
    docs = [_doc(10, minutes_ago=1), _doc(9, minutes_ago=1), _doc(2, minutes_ago=0)]
    ordered = parse_jql("project = SLM ORDER BY updated DESC, key", CATALOG).sort(docs)
    assert [d.key for d in ordered] == ["SLM-2", "SLM-9", "SLM-10"]


def test_errors_point_at_the_character() -> None:
    """Syntax errors say where, as Jira does: (line 1, character N)."""
    with pytest.raises(JqlError, match=r"character 15"):
        parse_jql("project = SLM garbage", CATALOG)


def test_text_becomes_adf_paragraphs_and_back() -> None:
    """Blank lines split paragraphs; single newlines become hard breaks; v2 reads it back."""
    doc = text_to_adf("one\ntwo\n\nthree")
    assert adf_error(doc) is None
    assert [p["type"] for p in doc["content"]] == ["paragraph", "paragraph"]
    assert adf_to_wiki(doc) == "one\ntwo\n\nthree"


def _para(*inline: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(inline)}


def _text(text: str, **attrs: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, **attrs}


def test_adf_tables_headings_and_marks_flatten_to_wiki() -> None:
    """Headings, tables, links and mentions render in wiki markup for REST v2 readers."""
    link = {"type": "link", "attrs": {"href": "https://kb"}}
    mention = {"type": "mention", "attrs": {"id": "712020:abc"}}
    header = {"type": "tableHeader", "content": [_para(_text("SLA"))]}
    cell = {"type": "tableCell", "content": [_para(_text("KB", marks=[link]), mention)]}
    heading = {"type": "heading", "attrs": {"level": 2}, "content": [_text("Targets")]}
    table = {
        "type": "table",
        "content": [
            {"type": "tableRow", "content": [header]},
            {"type": "tableRow", "content": [cell]},
        ],
    }
    doc = {"type": "doc", "version": 1, "content": [heading, table]}
    assert adf_error(doc) is None
    assert adf_to_wiki(doc) == "h2. Targets\n\n||SLA||\n|[KB|https://kb][~accountid:712020:abc]|"


_NOT_ADF = [
    "plain",
    {"type": "doc"},
    {"type": "doc", "version": 1, "content": [{"type": "bogus"}]},
    {"type": "doc", "version": 1, "content": [_para({"type": "text"})]},
]


@pytest.mark.parametrize("value", _NOT_ADF)
def test_invalid_adf_is_refused(value: object) -> None:
    """Strings, docs without version and unknown nodes are not ADF."""
    assert adf_error(value) is not None


def test_or_with_parentheses_and_mixing_refused() -> None:
    """OR and parentheses work; AND and OR mixed at one level are refused (Atlassian's spec
    parses "A OR B AND C" as "(A OR B) AND C", so our queries must spell the grouping)."""
    query = parse_jql("(updated >= -5m AND project = SLM) OR (key in (SLM-2))", CATALOG)
    assert query.matches(_doc(1, minutes_ago=4))
    assert query.matches(_doc(2, minutes_ago=60))
    assert not query.matches(_doc(3, minutes_ago=60))
    with pytest.raises(JqlError, match="parentheses"):
        parse_jql("updated >= -5m AND project = SLM OR key = SLM-2", CATALOG)
