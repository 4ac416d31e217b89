"""Reading people's comments back: ADF to text, and the requests state() sends, checked
against Atlassian's official Cloud spec with a real recorded comment payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from config import Settings
from connectors import TicketRef
from connectors.jira import JiraClient, JiraTarget
from connectors.jira.adf import plain_text

from .conftest import REFERENCE, SPEC_HOST


def test_plain_text_keeps_lines_and_reads_inline_nodes() -> None:
    """Paragraphs, hard breaks, list items and table rows become lines; mentions, emoji and
    status lozenges read as their text; wiki strings keep their lines."""
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Decision:", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " raise it"},
                    {"type": "hardBreak"},
                    {"type": "mention", "attrs": {"id": "x", "text": "@Ann Lee"}},
                    {"type": "emoji", "attrs": {"shortName": ":+1:", "text": "👍"}},
                ],
            },
            {"type": "rule"},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}
                        ],
                    }
                ],
            },
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [
                            {"type": "tableCell", "content": [_para("a")]},
                            {"type": "tableCell", "content": [_para("b")]},
                        ],
                    }
                ],
            },
            {"type": "paragraph", "content": [{"type": "status", "attrs": {"text": "DONE"}}]},
        ],
    }
    assert plain_text(doc) == "Decision: raise it\n@Ann Lee👍\none\na | b\nDONE"
    assert plain_text("Decision: keep\r\nsecond line") == "Decision: keep\nsecond line"
    assert plain_text(None) == ""


def _para(text: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": text}]}


def test_state_pages_the_comments_search_left_out(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """Search embeds 1 of 2 recorded comments (Jira times with a -0700 offset): the other is
    read from the comment resource after it; times are aware, authors named by e-mail, and
    the integration account's comment is ours. Every request fits the official spec."""
    recorded = json.loads((REFERENCE / "jira-recorded" / "issue_comments.json").read_text())
    older, newer = sorted(recorded["comments"], key=lambda c: c["created"])
    me = {**example("GET", "/rest/api/3/myself", "200"), "accountId": newer["author"]["accountId"]}
    issue = {
        "id": "10625",
        "key": "SLM-7",
        "fields": {
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
            "labels": ["slm-sync"],
            "duedate": "2026-03-01",
            "resolutiondate": "2026-03-02T09:15:00.000+0100",
            "assignee": {"accountId": "abc", "displayName": "Ann Lee"},
            "comment": {"comments": [older], "maxResults": 1, "total": 2, "startAt": 0},
        },
    }
    mocked.post(f"{SPEC_HOST}/rest/api/3/search/jql", json={"issues": [issue], "isLast": True})
    page = {"comments": [newer], "maxResults": 100, "total": 2, "startAt": 1}
    mocked.get(f"{SPEC_HOST}/rest/api/3/issue/SLM-7/comment", json=page)
    mocked.get(f"{SPEC_HOST}/rest/api/3/myself", json=me)
    settings = unit_settings()
    target = JiraTarget(JiraClient.connect(settings.jira, settings.http), settings)

    state = target.state([TicketRef("SLM-7", "10625")], comments=True)["SLM-7"]

    assert state.due == date(2026, 3, 1) and state.assignee == "Ann Lee"
    assert state.resolved == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    first, second = state.comments
    assert first.created == datetime(2021, 4, 14, 14, 32, 43, 99000, timezone(-timedelta(hours=7)))
    assert (first.author, second.ours) == ("integration-test@airbyte.io", True)
    sent = [call.request for call in mocked.calls]
    search = json.loads(sent[0].body)
    assert search["fields"] == ["status", "labels", "duedate", "resolutiondate", "assignee",
                                "comment", "issuelinks"]  # fmt: skip
    query = parse_qs(urlsplit(sent[1].url).query)
    assert query == {"startAt": ["1"], "maxResults": ["100"], "orderBy": ["created"]}
