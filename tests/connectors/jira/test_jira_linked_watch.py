"""The ticket book's read of linked issues when Jira refuses a query: a refusal that names no
key (a proxy's or an older version's wording) is narrowed down by halves, and an issue that
search refuses but a read by key finds (archived) is read once, then no longer searched. Jira
API played by a small fake (the stand-in names the refused key, as Jira does; see
tests/sync/test_ticket_book_e2e.py for that path end to end)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pydantic import SecretStr

from config import JiraSettings, Settings
from connectors import KnownStates, LinkedTicket, TicketRef, TicketState
from connectors.errors import RequestRejected
from connectors.jira import JiraTarget


class FakeJira:
    """Issues by key. `unsearchable`: keys every JQL naming them is refused for (with a
    message naming none); a GET reads them unless they are missing from `issues`."""

    def __init__(self, issues: dict[str, dict[str, Any]], unsearchable: set[str]) -> None:
        self.issues, self.unsearchable = issues, unsearchable
        self.calls: list[tuple[str, str]] = []
        self.deployment = SimpleNamespace(value="cloud")
        self.base_url = "https://jira.example.com"

    def call(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        if path == "search/jql":
            jql = body["jql"]
            self.calls.append(("search", jql))
            keys = re.findall(r'"([A-Z]+-\d+)"', jql)
            if self.unsearchable & set(keys):
                raise RequestRejected("jira: changed tickets: Error in the query", status=400)
            found = [k for k in keys if k in self.issues and self.issues[k]["recent"]]
            return {"issues": [self._issue(k) for k in found]}
        key = path.split("/")[1]
        self.calls.append(("get", key))
        if key not in self.issues:
            raise RequestRejected(f"jira: issue {key}: not found", status=404)
        return self._issue(key)

    def _issue(self, key: str) -> dict[str, Any]:
        done = self.issues[key]["done"]
        status = {"name": "Done" if done else "Open",
                  "statusCategory": {"key": "done" if done else "new"}}  # fmt: skip
        fields = {"summary": key, "labels": [], "status": status, "issuelinks": []}
        return {"key": key, "id": str(self.issues[key]["id"]), "fields": fields}


def _target(api: FakeJira, watched: list[str]) -> JiraTarget:
    settings = Settings(
        jira=JiraSettings(url=api.base_url, deployment="cloud", email="a@example.com",
                          api_token=SecretStr("x"), project="SLM", index_lag_seconds=0.0)
    )  # fmt: skip
    target = JiraTarget(api, settings, people=SimpleNamespace())  # type: ignore[arg-type]
    links = tuple(LinkedTicket(key, key, False) for key in watched)
    review = TicketState(TicketRef("SLM-1", "1"), "Open", False, ("slm-sync",), links=links)
    target.known_states = KnownStates({"SLM-1": review})
    return target


def _mark() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


def test_a_refusal_naming_no_key_is_narrowed_down_by_halves() -> None:
    """200 watched improvements, one deleted, and Jira's refusal names none: the deleted one is
    found in a few searches (not one read per key) and reported gone; the one done meanwhile
    is read."""
    watched = [f"IMP-{n}" for n in range(1, 201)]
    issues = {k: {"id": 1000 + n, "done": k == "IMP-150", "recent": k == "IMP-150"}
              for n, k in enumerate(watched) if k != "IMP-7"}  # fmt: skip
    api = FakeJira(issues, unsearchable={"IMP-7"})
    read = _target(api, watched).read_states(_mark(), 60)
    assert read.unlinked == {"IMP-7"}
    assert read.linked["IMP-150"].done and read.linked["IMP-150"].id == "1149"
    assert [c for c in api.calls if c[0] == "get"] == [("get", "IMP-7")]
    assert len([c for c in api.calls if c[0] == "search"]) <= 2 + 2 * 8  # about log2(200) levels


def test_an_issue_search_refuses_but_a_read_finds_is_read_once_then_left_out() -> None:
    """An archived improvement: search refuses it, GET reads it. The first read takes it by
    key; later reads leave it out of the query, so no cycle pays for it again."""
    issues = {"IMP-1": {"id": 11, "done": False, "recent": False},
              "IMP-2": {"id": 12, "done": False, "recent": False}}  # fmt: skip
    api = FakeJira(issues, unsearchable={"IMP-1"})
    target = _target(api, ["IMP-1", "IMP-2"])
    first = target.read_states(_mark(), 60)
    assert first.unlinked == frozenset() and "IMP-1" in first.linked
    assert [c for c in api.calls if c[0] == "get"] == [("get", "IMP-1")]
    api.calls.clear()
    second = target.read_states(_mark(), 60)
    assert second.unlinked == frozenset()
    assert [c[0] for c in api.calls] == ["search"] and '"IMP-1"' not in api.calls[0][1]
    assert '"IMP-2"' in api.calls[0][1]
