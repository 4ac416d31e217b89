"""Rendering the review document (ADF, wiki markup), JQL quoting, and JSM as a source."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from config import Settings
from connectors import Cursor, Stream
from connectors.jira import JiraSource, jql_quote, to_adf, to_wiki
from connectors.jira.adf import plain_text
from review.document import (
    BulletList,
    Document,
    Image,
    Link,
    Mention,
    Status,
    StatusColor,
    Table,
    heading,
    paragraph,
    text,
)
from sandbox import Sandbox
from sandbox.jira.adf import adf_error

SPECIAL = 'Pay|roll *"Core"* {x} [y]'
DOC = Document(
    blocks=(
        heading(2, SPECIAL),
        paragraph(
            "Owner: ", Mention(name="Ann Lee", email="ann@example.com"), text("!", strong=True)
        ),
        BulletList(items=((Link(text=SPECIAL, url="https://x.example/a|b]c"),),)),
        Table(
            header=("Service", "Status"),
            rows=(
                (
                    (text(SPECIAL + "\nsecond line"),),
                    (Status(text="missed", color=StatusColor.RED),),
                ),
            ),
        ),
    )
)


def test_adf_is_valid_and_mentions_by_account_id() -> None:
    """The ADF body passes Jira's document check; known people become mention nodes."""
    doc = to_adf(DOC, lambda m: "acc-1" if m.email == "ann@example.com" else None)
    assert adf_error(doc) is None
    flat = str(doc)
    assert "'type': 'mention', 'attrs': {'id': 'acc-1'" in flat
    assert "'type': 'status'" in flat and "'color': 'red'" in flat
    assert to_adf(DOC, lambda m: None) == to_adf(DOC, lambda m: None)  # stable: no spurious updates


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content") or []:
            yield from _nodes(child)


def test_adf_line_breaks_are_hard_breaks_and_text_holds_no_control_characters() -> None:
    """A line break in text becomes a hardBreak node (CRLF too); tabs become spaces; no text
    node, mention or lozenge holds a raw newline, tab or other control character; link text
    stays on one line; the result still passes Jira's document check."""
    document = Document(
        blocks=(
            paragraph("first\tline\r\nsecond line\n\nthird\x07", text("bold\nend", strong=True)),
            BulletList(items=((Link(text="PRB0040001\nMail", url="https://x.example/p"),),)),
            paragraph(Mention(name="Ann\nLee"), Status(text="at\trisk")),
        )
    )
    adf = to_adf(document, lambda m: None)
    assert adf_error(adf) is None
    nodes = list(_nodes(adf))
    texts = [n["text"] for n in nodes if n["type"] == "text"]
    texts += [n["attrs"]["text"] for n in nodes if n["type"] in ("mention", "status")]
    assert not [t for t in texts if any(c in t for c in "\n\r\t\x07")], texts
    first = adf["content"][0]["content"]
    assert [n["type"] for n in first] == [
        "text", "hardBreak", "text", "hardBreak", "hardBreak", "text", "text", "hardBreak", "text"
    ]  # fmt: skip
    assert first[0]["text"] == "first line" and first[-1]["marks"] == [{"type": "strong"}]
    assert "PRB0040001 Mail" in texts
    assert plain_text(adf).splitlines()[:4] == ["first line", "second line", "", "thirdbold"]


def test_wiki_escapes_data_so_tables_and_links_hold() -> None:
    """A service name with |, *, { and [ stays literal text: the table keeps two columns and
    the link keeps its target; a line break does not split the table row."""
    wiki = to_wiki(DOC, lambda m: "ann.lee")
    row = [line for line in wiki.splitlines() if line.startswith("|") and not line.startswith("||")]
    assert len(row) == 1
    cells = [c for c in row[0].replace("\\|", "").split("|") if c]
    assert len(cells) == 2
    assert "[~ann.lee]" in wiki
    assert "|https://x.example/a%7Cb%5Dc]" in wiki
    assert "\\{x\\}" in wiki and "\\[y\\]" in wiki


def test_jql_values_are_quoted_and_escaped() -> None:
    """A quote or backslash in data stays inside its string literal."""
    assert jql_quote('He said "x" \\ y') == '"He said \\"x\\" \\\\ y"'


def test_jsm_source_reads_sla_cycles_agreements_csat_and_services(
    site: Sandbox, jira_settings: Callable[..., Settings]
) -> None:
    """SLA fields discovered from /field turn each request's cycles into raw SLA records,
    agreements once per (field, goal), CSAT from the satisfaction field, services listed."""
    settings = jira_settings(site, jsm_project="ITSD", cloud_id="site-1")
    source = JiraSource.from_settings(settings)
    sla = [r for page in source.read(Stream.SLA_RECORDS) for r in page.records]
    agreements = [r for page in source.read(Stream.AGREEMENTS) for r in page.records]
    csat = [r for page in source.read(Stream.CSAT) for r in page.records]
    services = [r for page in source.read(Stream.SERVICES) for r in page.records]
    assert sla and {r["cycle"] for r in sla} <= {"completed", "ongoing"}
    assert all(r["goal_ms"] and r["service_id"] for r in sla)
    assert len({a["key"] for a in agreements}) == len(agreements)
    assert {a["metric"] for a in agreements} <= {"response", "resolution"}
    assert csat and all(1 <= r["rating"] <= 5 for r in csat)
    assert len(services) == 12
    assert {r["service_id"] for r in sla} <= {s["id"] for s in services}


def test_incremental_read_overlaps_and_never_loses_an_update(
    site: Sandbox, jira_settings: Callable[..., Settings]
) -> None:
    """From a cursor, requests updated at or after it come back (overlap included), each once;
    the cursor of the last page is the latest (updated, key) read."""
    source = JiraSource.from_settings(jira_settings(site, jsm_project="ITSD"))
    pages = list(source.read(Stream.CSAT))
    full = pages[-1].cursor
    assert full is not None
    again = list(source.read(Stream.CSAT, since=full))
    keys = [r["key"] for page in again for r in page.records]
    assert len(keys) == len(set(keys))
    assert again[-1].cursor == full if again else True
    from connectors.jira.source import parse_jira_time

    cutoff = parse_jira_time(full.updated) - timedelta(days=30)
    partial = list(source.read(Stream.CSAT, since=Cursor(cutoff.isoformat(), "")))
    recent = {r["key"] for page in partial for r in page.records}
    every = {r["key"]: r for page in pages for r in page.records}
    expected = {k for k, r in every.items() if parse_jira_time(r["updated"]) >= cutoff}
    assert expected <= recent


def test_wiki_links_show_the_number_as_text() -> None:
    """Data Center: a material reads `[PRB0040001|url]: title`; a link's text on one line."""
    url = "https://sn.example/problem.do?sys_id=d7296d02c0a801670085e737da016e70"
    document = Document(
        blocks=(
            BulletList(
                items=((Link(text="PRB0040001", url=url), text(": Mail queue stalls (open)")),)
            ),
            paragraph(Link(text="SLM-5\nreview", url="https://jira.example/browse/SLM-5")),
        )
    )
    lines = to_wiki(document, lambda m: None).splitlines()
    assert lines[0] == f"* [PRB0040001|{url}]: Mail queue stalls (open)"
    assert lines[-1] == "[SLM\\-5 review|https://jira.example/browse/SLM-5]"


def test_an_attached_image_is_inline_in_wiki_and_named_in_adf() -> None:
    """Data Center wiki shows the attachment inline by its name (`!file!`), a name that wiki
    markup could misread stays text; Cloud ADF says the image is attached until the ticket
    carries it (valid ADF), then shows it from its content URL."""
    chart = Image(file="attainment-4591b2.png", alt="Chart of attainment per month")
    odd = Image(file="a|b!.png", alt="Chart")
    assert to_wiki(Document(blocks=(chart,)), lambda m: None) == "!attainment-4591b2.png!"
    assert "!a" not in to_wiki(Document(blocks=(odd,)), lambda m: None)
    adf = to_adf(Document(blocks=(chart,)), lambda m: None)
    assert adf_error(adf) is None
    assert plain_text(adf) == "Chart of attainment per month: the image attached to this ticket."

    url = "https://site.example/rest/api/3/attachment/content/10001"
    shown = to_adf(Document(blocks=(chart,)), lambda m: None, lambda image: url)
    assert adf_error(shown) is None and plain_text(shown) == ""
    assert shown["content"][0]["content"][0]["attrs"]["url"] == url


def test_a_person_not_in_jira_links_to_their_source_record_and_one_in_jira_is_mentioned() -> None:
    """A mention Jira can resolve stays a mention (it notifies; no link); one it cannot reads
    "@Name" linking to the person's record in the source, in ADF and in wiki markup."""
    record = "https://sn.example/sys_user.do?sys_id=" + "c" * 32
    known = Mention(name="Ann Lee", email="ann@example.com", url=record)
    unknown = Mention(name="Bo [Ops]", email="bo@example.com", url=record)
    document = Document(blocks=(paragraph(known, " ", unknown),))
    resolve: Callable[[Mention], str | None] = lambda m: "acc-1" if m is known else None  # noqa: E731
    nodes = to_adf(document, resolve)["content"][0]["content"]
    assert nodes[0] == {"type": "mention", "attrs": {"id": "acc-1", "text": "@Ann Lee"}}
    assert nodes[2] == {"type": "text", "text": "@Bo [Ops]",
                        "marks": [{"type": "link", "attrs": {"href": record}}]}  # fmt: skip
    wiki = to_wiki(document, lambda m: "ann" if m is known else None)
    assert wiki == f"[~ann] [@Bo \\[Ops\\]|{record}]"
