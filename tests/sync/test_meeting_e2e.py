"""The review meeting, decisions and the closing activities' content, end to end over HTTP:
ServiceNow as the source, Jira Cloud or ServiceNow as the target, the tests acting as the
people in the tickets (tests/sync/people.py). What the review ticket and the closing sub-tasks
say is read from the target itself, as a person would read it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
import requests

from config import Settings
from connectors import Stream, TicketRef
from connectors.jira.adf import plain_text
from connectors.servicenow.streams import DEFAULT_FIELDS
from review import Service, TicketSpec
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store

from .people import SN_TABLE, People

Target = Literal["jira", "servicenow"]
JIRA_AUTH = ("slm-demo", "demo-api-token")
SN_AUTH = ("slm-demo", "demo-password")
MEETING_DAY = date(2026, 4, 2)
POLICY_URL = "https://intranet.example/slm/policy"
# The cycle opened this long ago: "Prepare service review artifacts" (due 75 days after the
# opening) is done 25 days late when the test closes it today.
OPENED_DAYS_AGO = timedelta(days=100)
PREPARE_LATE_DAYS = 25

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=23, services=4, sla_records=400, index_lag_ms=100).start()
    running.knobs.update({"servicenow_custom_fields": True})  # serves u_business_owner
    yield running
    running.stop()


def _with_business_owners(settings: Settings, tmp_path: Path) -> Settings:
    """The stock mapping plus the custom business owner field (mapping/README.md), as an admin
    whose instance has `u_business_owner` would configure it."""
    stock = (Path(__file__).parents[2] / "config" / "mappings" / "servicenow.yaml").read_text()
    line = "      owner: owned_by                      # the Service Level Manager\n"
    assert line in stock
    mapping = tmp_path / "servicenow-mapping.yaml"
    mapping.write_text(stock.replace(line, line + "      business_owner: u_business_owner\n"))
    settings.sync.mapping_file = mapping
    settings.servicenow.fields = {"service": [*DEFAULT_FIELDS[Stream.SERVICES], "u_business_owner"]}
    return settings


def _chosen(site: Sandbox, tmp_path: Path) -> Service:
    """A service with an owner, a business owner and two CI owners of its own: three R people
    on Participate, and a business owner to invite."""
    settings = _with_business_owners(demo_settings(site, tmp_path / "probe"), tmp_path)
    probe = open_store(settings.sync.resolved_state_url())
    services = Engine.from_settings(settings, probe).run_once(dry_run=True).build.services
    probe.close()
    return next(
        s
        for s in services
        if s.owner
        and s.business_owner
        and len({c.owner for c in s.components if c.owner and c.owner != s.owner}) > 1
    )


def _settings(site: Sandbox, tmp_path: Path, target: Target, service: str) -> Settings:
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.2
    settings.sync.target = target
    settings.review.selection = [service]
    settings.review.policy_url = POLICY_URL
    settings.review.cycle.start = _month_day(datetime.now(UTC).date() - OPENED_DAYS_AGO)
    return _with_business_owners(settings, tmp_path)


def _month_day(day: date) -> str:
    """MM-DD of `day` (a 29 February becomes the 28th: every year has that)."""
    return "02-28" if (day.month, day.day) == (2, 29) else day.strftime("%m-%d")


def _late_by(text: str, spec: TicketSpec) -> int | None:
    """The days the lessons-learned table says `spec`'s sub-task was done late, if listed."""
    found = re.search(re.escape(f"{spec.title} {spec.due}") + r" \S+ (\d+) day\(s\)", text)
    return int(found.group(1)) if found else None


def _run(settings: Settings, store: StateStore) -> RunResult:
    # What the people just did reaches Jira's search after its index lag; the daemon's next
    # cycle comes minutes later, this test's at once (the ticket read goes through search)
    time.sleep(settings.jira.index_lag_seconds)
    return Engine.from_settings(settings, store).run_once()


def _ref(store: StateStore, target: str, key: str) -> TicketRef:
    row = store.ledger_rows(target)[key]
    return TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)


def _text(site: Sandbox, target: Target, ref: TicketRef) -> str:
    """The ticket's description as the target shows it, in plain words (`_words`)."""
    if target == "jira":
        response = requests.get(
            f"{site.jira_url}/rest/api/3/issue/{ref.key}",
            params={"fields": "description"},
            auth=JIRA_AUTH,
            timeout=5,
        )
        return _words(plain_text(response.json()["fields"]["description"]))
    response = requests.get(
        f"{site.servicenow_url}/api/now/table/{SN_TABLE}/{ref.id}",
        params={"sysparm_fields": "description"},
        auth=SN_AUTH,
        timeout=5,
    )
    return _words(str(response.json()["result"]["description"]))


def _words(text: str) -> str:
    """The words in order, table rules and cell bars left out, as a reader sees them."""
    return " ".join(w for w in text.split() if w.strip("|+-=") or not w)


def _jira_due(site: Sandbox, ref: TicketRef) -> str | None:
    response = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{ref.key}",
        params={"fields": "duedate"},
        auth=JIRA_AUTH,
        timeout=5,
    )
    due = response.json()["fields"]["duedate"]
    return str(due) if due else None


def _parts(result: RunResult, service: str) -> list[TicketSpec]:
    return [
        t
        for t in result.tickets
        if t.activity_id == "participate_review" and t.service_key == service
    ]


def _spec(result: RunResult, service: str, activity: str) -> TicketSpec:
    return next(t for t in result.tickets if t.activity_id == activity and t.service_key == service)


@pytest.mark.parametrize("target", ["jira", "servicenow"])
def test_meeting_attendance_decisions_and_the_cycle_summary(
    site: Sandbox, tmp_path: Path, target: Target
) -> None:
    """Schedule done with a due date → the pack shows the date and the invitees; two
    participants close their sub-tasks → attended; a `Decision:` comment, a policy decision
    and a linked improvement → "Decisions and actions"; the review done → lessons learned
    sums the cycle up and update policies lists the policy change under the policy link."""
    service = _chosen(site, tmp_path)
    settings = _settings(site, tmp_path, target, service.key)
    people = People(site, target)
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review_key = next(t.key for t in first.tickets if t.kind.value == "review")
    review = _ref(store, target, review_key)
    text = _text(site, target, review)
    assert "Not scheduled yet: the date appears here when the" in text
    assert "To record a decision, comment on this ticket" in text

    schedule = _ref(store, target, _spec(first, service.key, "schedule_review").key)
    people.set_due(schedule, MEETING_DAY)
    people.close(schedule)
    _run(settings, store)
    text = _text(site, target, review)
    assert f"Date: {MEETING_DAY.isoformat()}" in text and "Not scheduled yet" not in text
    assert service.owner is not None and service.business_owner is not None
    for invited in (service.owner.name, service.business_owner.name, settings_po(settings)):
        assert invited in text, invited

    parts = _parts(first, service.key)
    assert len(parts) >= 3
    attending = parts[1:3]  # not the first: its key may be the one that freezes the pack
    for part in attending:
        people.close(_ref(store, target, part.key))
    owner = service.owner.email
    assert owner is not None
    people.comment(review, "Decision: keep the P1 resolution target at 95 %", as_person=owner)
    people.comment(review, "Thanks, see you next year")
    proposal = _ref(store, target, _spec(first, service.key, "propose_improvements").key)
    people.comment(proposal, "Decision (policy): review tier 1 services twice a year")
    improvement = people.link(review, "Add an OLA for the payroll database")
    third = _run(settings, store)
    text = _text(site, target, review)
    names = [p.assignee.name for p in attending if p.assignee]
    assert f"Attended: {', '.join(names)}" in text
    assert parts[0].assignee is not None and f"Not yet: {parts[0].assignee.name}" in text
    decided = rf"\d{{4}}-\d\d-\d\d {re.escape(service.owner.name)} keep the P1 resolution"
    assert re.search(decided, text), "date, author (by name) and the decision"
    assert re.search(r"\[?POLICY\]? review tier 1 services twice a year", text)
    assert "Thanks, see you next year" not in text
    # The ticket's number is the link (Jira); ServiceNow's plain text adds the URL after it.
    assert re.search(
        rf"{improvement}( \(\S+\))?: Add an OLA for the payroll database \(open\)", text
    )
    meeting = third.build.packs[service.key].meeting
    assert meeting is not None and [d.policy for d in meeting.decisions] == [False, True]

    for child in [t for t in first.tickets if t.parent_key == review_key]:
        if not people.is_done(ref := _ref(store, target, child.key)):
            people.close(ref)
    closing = _run(settings, store)
    assert closing.phase.state.value == "closing"
    cycle = f"slm:{closing.build.cycle.id}:cycle"
    lessons = _text(site, target, _ref(store, target, f"{cycle}:lessons_learned"))
    assert "1 service(s) reviewed" in lessons
    assert "keep the P1 resolution target at 95 %" in lessons
    assert "1 improvement ticket(s), 1 still open" in lessons
    late = _late_by(lessons, _spec(first, service.key, "prepare_artifacts"))
    assert late is not None and abs(late - PREPARE_LATE_DAYS) <= 1, "UTC vs local midnight"
    policies = _text(site, target, _ref(store, target, f"{cycle}:update_policies"))
    assert POLICY_URL in policies
    assert "Decisions marked as policy changes in the reviews: 1." in policies
    assert "review tier 1 services twice a year" in policies
    assert "keep the P1 resolution target" not in policies

    people.close(_ref(store, target, f"{cycle}:lessons_learned"))
    people.comment(review, "Decision: recorded once the cycle was over")
    _run(settings, store)  # still closing: update policies is open, the summary follows
    people.close(_ref(store, target, f"{cycle}:update_policies"))
    assert _run(settings, store).phase.state.value == "closed"
    summed_up = _text(site, target, _ref(store, target, f"{cycle}:lessons_learned"))
    assert "recorded once the cycle was over" in summed_up
    people.comment(review, "Decision: too late for this cycle")
    _run(settings, store)
    final = _text(site, target, _ref(store, target, f"{cycle}:lessons_learned"))
    store.close()
    assert final == summed_up, "a closed cycle's summary stays as it was"


def settings_po(settings: Settings) -> str:
    """The configured SLM process owner's name (invited: A/R of Participate)."""
    owner = settings.review.roles.slm_process_owner
    assert owner is not None
    return owner.name or owner.email


@pytest.mark.parametrize("target", ["jira", "servicenow"])
def test_the_meeting_is_read_from_the_tickets_also_after_the_state_file_is_lost(
    site: Sandbox, tmp_path: Path, target: Target
) -> None:
    """The state file is deleted mid-review: the next sync shows the same meeting date,
    attendance and decisions (they are read from the tickets, not the state store)."""
    service = _chosen(site, tmp_path)
    settings = _settings(site, tmp_path, target, service.key)
    people = People(site, target)
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review_key = next(t.key for t in first.tickets if t.kind.value == "review")
    review = _ref(store, target, review_key)
    schedule = _ref(store, target, _spec(first, service.key, "schedule_review").key)
    people.set_due(schedule, MEETING_DAY)
    people.close(schedule)
    people.close(_ref(store, target, _parts(first, service.key)[1].key))
    people.comment(review, "Decision: keep the P1 resolution target at 95 %")
    _run(settings, store)
    before = _text(site, target, review)
    assert f"Date: {MEETING_DAY.isoformat()}" in before and "keep the P1 resolution" in before
    store.close()
    for path in (tmp_path / "data").glob("state.db*"):
        path.unlink()
    store = open_store(settings.sync.resolved_state_url())
    again = _run(settings, store)
    assert again.summary.as_counts()["created"] == 0
    assert _text(site, target, review) == before
    _run(settings, store)  # the sync after: the adopted tickets were brought to their spec
    store.close()
    assert _text(site, target, review) == before, "the meeting date people set stays"


def test_decisions_freeze_with_the_pack(site: Sandbox, tmp_path: Path) -> None:
    """Once "Participate in service review" is done the pack is frozen: a decision recorded
    afterwards no longer changes the review ticket (its comments are not even read)."""
    service = _chosen(site, tmp_path)
    settings = _settings(site, tmp_path, "jira", service.key)
    people = People(site, "jira")
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review_key = next(t.key for t in first.tickets if t.kind.value == "review")
    review = _ref(store, "jira", review_key)
    schedule = _ref(store, "jira", _spec(first, service.key, "schedule_review").key)
    people.set_due(schedule, MEETING_DAY)
    people.close(schedule)
    people.comment(review, "Decision: move backups to the second site")
    _run(settings, store)
    for part in _parts(first, service.key):
        people.close(_ref(store, "jira", part.key))
    frozen = _run(settings, store)
    assert review_key in frozen.phase.frozen_reviews
    before = _text(site, "jira", review)
    assert "move backups to the second site" in before
    people.comment(review, "Decision: buy a third datacentre")
    after = _run(settings, store)
    store.close()
    assert next(o for o in after.summary.outcomes if o.key == review_key).action.value == (
        "unchanged"
    )
    assert _text(site, "jira", review) == before
    assert "buy a third datacentre" not in before

    for path in (tmp_path / "data").glob("state.db*"):
        path.unlink()  # the tickets adopted again are brought to their spec: people's dates stay
    store = open_store(settings.sync.resolved_state_url())
    _run(settings, store)
    _run(settings, store)
    store.close()
    assert _text(site, "jira", review) == before
    assert _jira_due(site, schedule) == MEETING_DAY.isoformat()
