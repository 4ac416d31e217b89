"""Two review years walked in the tickets, as the people would, on Jira Cloud, Jira Data Center
and ServiceNow as targets; and the same walk with the state store deleted before every sync.

Year one: the cycle opens; the LT selects two services with one typo token, is told the nearest
match, corrects it and closes the selection sub-task; the reviews open; the meeting is scheduled
(a due date on "Schedule service review"), people attend (their Participate sub-tasks), record a
decision and link an improvement; the pack freezes; every sub-task is done and the review
tickets close; lessons learned carries the cycle's summary; the cycle closes. Year two: the
candidates say twelve months since the first service's review; its new pack shows that review
and its open improvement.

The tests act through the stand-ins' REST APIs only (tests/sync/people.py) and read what people
would see: the tickets' text and status.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import requests

from config import Settings
from connectors import TargetConnector, TicketRef, TicketState
from review import TicketKind
from review.document import document_text
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import open_store
from tests.sync.people import People

pytestmark = pytest.mark.usefixtures("no_retry_waits")

TOKEN = re.compile(r"slm-select-[a-z0-9][a-z0-9-]*")
JIRA_AUTH = ("slm-demo", "demo-api-token")
SN_AUTH = ("slm-demo", "demo-password")
TARGETS: dict[str, tuple[Literal["jira", "servicenow"], str]] = {  # (sync.target, flavour)
    "jira-cloud": ("jira", "cloud"),
    "jira-dc": ("jira", "datacenter"),
    "servicenow": ("servicenow", "cloud"),
}


@dataclass
class Walk:
    """One walk: the sandbox, the settings, the clock, and whether the state is lost each time."""

    site: Sandbox
    settings: Settings
    target: Literal["jira", "servicenow"]
    data: Path
    lose_state: bool
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    syncs: int = 0

    def sync(self) -> RunResult:
        """One `sync --once`; with lose_state a brand-new state store every time."""
        self.syncs += 1
        # What the people just did reaches Jira's search after its index lag; the daemon's next
        # cycle comes minutes later, this walk's at once (the ticket read goes through search)
        time.sleep(self.settings.jira.index_lag_seconds)
        name = f"state-{self.syncs}.db" if self.lose_state else "state.db"
        self.settings.sync.state_url = None
        store = open_store(f"sqlite:///{self.data / name}")
        try:
            engine = Engine.from_settings(self.settings, store)
            engine.clock = lambda: self.now
            result = engine.run_once()
        finally:
            store.close()
        assert result.summary.as_counts()["failed"] == 0, [
            (o.key, o.error) for o in result.summary.failed
        ]
        return result

    # -- reading the target as a person would ----------------------------------------------------

    def ref(self, result: RunResult, key: str) -> TicketRef:
        outcome = next(o for o in result.summary.outcomes if o.key == key)
        assert outcome.ticket, f"{key} has no ticket"
        found = self._target().find([key])
        assert key in found, f"{key} is not in the target"
        return found[key]

    def state(self, ref: TicketRef) -> TicketState:
        return self._target().state([ref], comments=True)[ref.key]

    def text(self, ref: TicketRef) -> str:
        """The ticket's description and comments as plain text."""
        comments = "\n".join(c.text for c in self.state(ref).comments)
        return f"{self.description(ref)}\n{comments}"

    def description(self, ref: TicketRef) -> str:
        """The ticket's description (a review's pack) as plain text."""
        if self.target == "servicenow":
            response = requests.get(
                f"{self.site.servicenow_url}/api/now/table/vtb_task/{ref.id}",
                params={"sysparm_fields": "description"}, auth=SN_AUTH, timeout=10,
            )  # fmt: skip
            description = str(response.json()["result"]["description"])
        else:
            version = "3" if self.site.jira_flavor == "cloud" else "2"
            response = requests.get(
                f"{self.site.jira_url}/rest/api/{version}/issue/{ref.key}",
                params={"fields": "description"}, auth=JIRA_AUTH, timeout=10,
            )  # fmt: skip
            description = _plain(response.json()["fields"]["description"])
        return description

    def _target(self) -> TargetConnector:
        store = open_store("sqlite://")
        try:
            return Engine.from_settings(self.settings, store).target
        finally:
            store.close()


def _plain(node: Any) -> str:
    if isinstance(node, str):  # Data Center wiki markup: backslash escapes read as the character
        return re.sub(r"\\([\\*_+^~?{}\[\]|!#-])", r"\1", node.replace("\r\n", "\n"))
    if isinstance(node, dict):
        own = str(node.get("text", "")) if node.get("type") == "text" else ""
        inner = " ".join(_plain(child) for child in node.get("content") or [])
        return " ".join(part for part in (own, inner) if part)
    return ""


@pytest.fixture(params=[(t, lose) for t in TARGETS for lose in (False, True)],
                ids=lambda p: f"{p[0]}{'-state-lost' if p[1] else ''}")  # fmt: skip
def walk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Walk]:
    name, lose_state = request.param
    target, flavor = TARGETS[name]
    site = Sandbox(seed=31, services=5, sla_records=500, index_lag_ms=50, jira_flavor=flavor)
    site.start()
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.1
    settings.sync.target = target
    (tmp_path / "data").mkdir(exist_ok=True)
    yield Walk(site, settings, target, tmp_path / "data", lose_state)
    site.stop()


def _key(result: RunResult, kind: TicketKind, activity: str | None = None) -> str:
    return next(
        t.key
        for t in result.tickets
        if t.kind is kind and (activity is None or t.activity_id == activity)
    )


def _sub_tasks(result: RunResult, parent: str, activity: str | None = None) -> list[str]:
    return [
        t.key
        for t in result.tickets
        if t.parent_key == parent and (activity is None or t.activity_id == activity)
    ]


def _services_by_token(result: RunResult) -> dict[str, str]:
    """token -> service key, from the rows of the cycle ticket's candidates table."""
    cycle = next(t for t in result.tickets if t.kind is TicketKind.CYCLE)
    names = {s.name: s.key for s in result.build.services}
    found: dict[str, str] = {}
    for line in document_text(cycle.body).splitlines():
        tokens = TOKEN.findall(line)
        named = [key for name, key in names.items() if name in line]
        if len(tokens) == 1 and len(named) == 1:
            found[tokens[0]] = named[0]
    return found


def _select(walk: Walk, people: People, cycle: TicketRef, selection: TicketRef,
            token: str) -> None:  # fmt: skip
    """The LT selects by a label on the cycle ticket (Jira) or a work note (ServiceNow)."""
    if walk.target == "jira":
        people.add_label(cycle, token)
    else:
        people.comment(selection, token)


def _unselect(walk: Walk, people: People, cycle: TicketRef, selection: TicketRef,
              token: str) -> None:  # fmt: skip
    if walk.target == "jira":
        people.remove_label(cycle, token)
    else:
        people.comment(selection, f"remove: {token}")


def test_two_review_years_walked_in_the_tickets(walk: Walk) -> None:
    people = People(walk.site, walk.target)
    # -- year one: the cycle opens ---------------------------------------------------------------
    opened = walk.sync()
    assert opened.phase.state.value == "selecting"
    cycle_key = _key(opened, TicketKind.CYCLE)
    select_key = _key(opened, TicketKind.ACTIVITY, "select_services")
    cycle, selection = walk.ref(opened, cycle_key), walk.ref(opened, select_key)
    tokens = list(dict.fromkeys(TOKEN.findall(walk.text(cycle))))
    assert len(tokens) >= 2, "the candidates table lists a token per service"
    assert all(len(t) <= 60 and not re.search(r"[0-9a-f]{32}", t) for t in tokens), tokens
    by_token = _services_by_token(opened)
    first, second = tokens[0], tokens[1]
    service = by_token[first]
    typo = second[:-1] + ("x" if second[-1] != "x" else "y")

    # -- the LT selects, with a typo; told once, the cycle does not stall ------------------------
    _select(walk, people, cycle, selection, first)
    _select(walk, people, cycle, selection, typo)
    walk.sync()
    told = walk.sync()  # a second sync must not repeat the comment
    texts = [c.text for c in walk.state(cycle).comments if typo in c.text]
    assert len(texts) == 1, texts
    assert second in texts[0], "the comment names the nearest match"
    assert told.phase.state.value == "selecting"

    # -- corrected; the selection sub-task closed: the reviews open at the next sync ------------
    _unselect(walk, people, cycle, selection, typo)
    _select(walk, people, cycle, selection, second)
    people.close(selection)
    reviewing = walk.sync()
    assert reviewing.phase.state.value == "reviewing"
    assert len(reviewing.phase.selection) == 2
    if walk.target == "jira":
        assert typo not in people.labels(cycle), "a removed token is never put back"
    reviews = [t.key for t in reviewing.tickets if t.kind is TicketKind.REVIEW]
    assert len(reviews) == 2
    review_key = next(
        t.key for t in reviewing.tickets if t.kind is TicketKind.REVIEW and t.service_key == service
    )
    review = walk.ref(reviewing, review_key)

    # -- the meeting: scheduled, attended, a decision and an improvement recorded ---------------
    meeting_day = (walk.now + timedelta(days=40)).date()
    schedule = walk.ref(reviewing, _sub_tasks(reviewing, review_key, "schedule_review")[0])
    people.set_due(schedule, meeting_day)
    people.close(schedule)
    scheduled = walk.sync()
    pack = walk.text(review)
    assert meeting_day.isoformat() in pack, "the pack shows the meeting date"
    assert "Decision" in pack, "the pack tells people how to record a decision"
    people.comment(review, "Decision: raise the e-mail availability target to 99.9 % next year")
    improvement = people.link(review, "Add a second MX relay")
    participants = _sub_tasks(scheduled, review_key, "participate_review")
    assert len(participants) >= 2, "each R person has their own Participate sub-task"
    for key in participants:
        people.close(walk.ref(scheduled, key))
    held = walk.sync()
    pack = walk.text(review)
    assert "raise the e-mail availability target" in pack, "the decision is in the pack"
    assert improvement in pack, "the linked improvement is in the pack"
    assert "Attended:  nobody" not in pack.replace("\n", " ")
    notes = [c.text for c in walk.state(review).comments if c.ours and "pack is frozen" in c.text]
    assert len(notes) == 1, "the review ticket says once that its pack is frozen"
    frozen_pack = walk.description(review)
    assert "this pack is frozen" in frozen_pack
    people.comment(review, "Decision: move the review to the second quarter")  # after the meeting

    # -- every sub-task done: the reviews close; the closing activities carry the summary -------
    for key in reviews:
        for sub_task in _sub_tasks(held, key):
            state = walk.state(walk.ref(held, sub_task))
            if not state.done:
                people.close(state.ref)
    closing = walk.sync()
    assert closing.phase.state.value == "closing"
    assert people.is_done(review)
    assert walk.description(review) == frozen_pack, "a later decision leaves the frozen pack"
    lessons = walk.ref(closing, _key(closing, TicketKind.ACTIVITY, "lessons_learned"))
    summary = walk.text(lessons)
    assert "raise the e-mail availability target" in summary, "decisions raised in the cycle"
    assert "move the review to the second quarter" in summary, "including after the meeting"
    assert "2" in summary and "review" in summary.lower()
    policies = walk.ref(closing, _key(closing, TicketKind.ACTIVITY, "update_policies"))
    people.close(lessons)
    people.close(policies)
    closed = walk.sync()
    assert closed.phase.state.value == "closed"
    assert people.is_done(cycle)
    again = walk.sync()
    assert again.phase.state.value == "closed", "a closed cycle is never reopened"
    assert people.is_done(cycle)
    assert walk.description(review) == frozen_pack, "a frozen pack is never overwritten"
    notes = [c.text for c in walk.state(review).comments if c.ours and "pack is frozen" in c.text]
    assert len(notes) == 1, "and never said frozen twice"

    # -- year two: twelve months since, the previous review and its open improvement -------------
    walk.now += timedelta(days=366)
    walk.settings.review.cycle.start = walk.now.strftime("%m-%d")
    next_year = walk.sync()
    assert next_year.build.cycle.id != opened.build.cycle.id
    candidate = next(c for c in next_year.build.candidates if c.service_key == service)
    since = next(r for r in candidate.reasons if r.factor == "time since last review")
    assert since.detail.startswith("12 months"), since.detail
    new_cycle = walk.ref(next_year, _key(next_year, TicketKind.CYCLE))
    new_selection = walk.ref(next_year, _key(next_year, TicketKind.ACTIVITY, "select_services"))
    _select(walk, people, new_cycle, new_selection, first)
    people.close(new_selection)
    second_year = walk.sync()
    new_review_key = next(t.key for t in second_year.tickets if t.kind is TicketKind.REVIEW)
    pack = walk.text(walk.ref(second_year, new_review_key))
    assert review.key in pack, "the pack links the previous review"
    assert "12 months" in pack, "and says how long ago it was"
    assert improvement in pack, "and its open improvement"
    assert "raise the e-mail availability target" in pack, "and its decisions"
    assert "move the review to the second quarter" in pack
