"""What the Jira Cloud connector writes validates against Atlassian's own ADF JSON schema
(`tests/data/adf/`, see its README): the review pack, the cycle ticket, sub-tasks and our
comments, as the stand-in stores them after a sync (the review pack with its chart inline as a
`mediaSingle` / external `media` node), and every node kind the renderer emits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft4Validator

from connectors import set_testing
from connectors.jira import to_adf
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
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

SCHEMA = Path(__file__).parents[2] / "data" / "adf" / "adf-schema.json"
AUTH = ("slm-demo", "demo-api-token")


@cache
def _validator() -> Draft4Validator:
    return Draft4Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def schema_errors(document: Any) -> list[str]:
    """The official schema's complaints about `document`, deepest first ([] when valid)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: -len(e.absolute_path))
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


def test_the_schema_refuses_what_jira_refuses() -> None:
    """The check can fail: an empty text node and an unknown status colour are refused."""

    def document(*inline: dict[str, Any]) -> dict[str, Any]:
        return {"type": "doc", "version": 1,
                "content": [{"type": "paragraph", "content": list(inline)}]}  # fmt: skip

    empty = document({"type": "text", "text": ""})
    colour = document({"type": "status", "attrs": {"text": "MISSED", "color": "pink"}})
    assert schema_errors(empty)
    assert schema_errors(colour)


def test_every_node_kind_the_renderer_emits_is_valid() -> None:
    """Headings, paragraphs with marks, line breaks, mentions (known and unknown people),
    status lozenges of every colour, links, lists and tables with a header row."""
    document = Document(
        blocks=(
            heading(2, 'Zahlungsverkehr "Überweisung" ^ SEPA=EU \u2013 Straße 📧'),
            paragraph(
                "Owner: ",
                Mention(name="Ann Lee", email="ann@example.com"),
                " and ",
                Mention(name="Nobody Known"),
                text(" bold\nnext line", strong=True),
            ),
            paragraph(*(Status(text=c.value.upper(), color=c) for c in StatusColor)),
            BulletList(
                items=((Link(text="PRB0040001", url="https://x.example/p?a=1"),), (text("a\tb"),))
            ),
            Table(
                header=("Target", "Measured", "Status"),
                rows=(
                    (
                        (text("Availability"),),
                        (text("99.1 %"),),
                        (Status(text="MISSED", color=StatusColor.RED),),
                    ),
                ),
            ),
        )
    )
    adf = to_adf(document, lambda m: "acc-1" if m.email else None)
    assert schema_errors(adf) == []


def test_the_inline_chart_is_valid_and_a_wrong_media_node_is_not() -> None:
    """The chart as the renderer shows it once attached (mediaSingle > external media with the
    attachment's content URL) validates; a file media node without its Media Services id and
    collection, as one would write from a REST attachment id, does not."""
    chart = Image(file="attainment-x.png", alt='Chart of "Zahlungsverkehr" ^ 📧')
    url = "https://site.example/rest/api/3/attachment/content/10001"
    adf = to_adf(Document(blocks=(chart,)), lambda m: None, lambda image: url)
    assert adf["content"][0]["type"] == "mediaSingle"
    assert adf["content"][0]["content"][0]["attrs"] == {
        "type": "external", "url": url, "alt": chart.alt,
    }  # fmt: skip
    assert schema_errors(adf) == []
    wrong = {"type": "media", "attrs": {"type": "file", "id": "10001"}}
    refused = {**adf, "content": [{**adf["content"][0], "content": [wrong]}]}
    assert schema_errors(refused)


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[tuple[Sandbox, list[str]]]:
    """A Jira Cloud site after the cycle opened and two reviews were created and refreshed."""
    set_testing(True)
    site = Sandbox(seed=11, services=4, sla_records=400, index_lag_ms=0, jira_flavor="cloud")
    site.start()
    try:
        (tmp_path / "data").mkdir()
        settings = demo_settings(site, tmp_path / "data")
        settings.servicenow.clock_skew_seconds = 0
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            opened = Engine.from_settings(settings, store).run_once()
            settings.review.selection = [c.service_key for c in opened.build.candidates[:2]]
            reviews = Engine.from_settings(settings, store).run_once()
        finally:
            store.close()
        yield site, [o.ticket for o in reviews.summary.outcomes if o.ticket]
    finally:
        site.stop()
        set_testing(False)


def _documents(site: Sandbox, key: str) -> list[tuple[str, Any]]:
    fields = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{key}",
        params={"fields": "description,comment"}, auth=AUTH, timeout=10,
    ).json()["fields"]  # fmt: skip
    found = [(f"{key} description", fields["description"])]
    found += [(f"{key} comment {c['id']}", c["body"]) for c in fields["comment"]["comments"]]
    return [(where, body) for where, body in found if body is not None]


def test_what_a_sync_writes_validates_against_the_official_schema(
    synced: tuple[Sandbox, list[str]],
) -> None:
    site, keys = synced
    documents = [found for key in keys for found in _documents(site, key)]
    kinds = {node["type"] for _where, body in documents for node in _walk(body)}
    assert {"table", "status", "bulletList", "heading"} <= kinds, "a real pack was checked"
    assert {"mediaSingle", "media"} <= kinds, "with its chart inline"
    invalid = {where: errors[:3] for where, body in documents if (errors := schema_errors(body))}
    assert invalid == {}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content") or []:
            yield from _walk(child)
