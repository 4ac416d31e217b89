"""The attainment chart in the review ticket, end to end on the stand-ins with the real clients:
inline on Jira Data Center (wiki `!file!` names the attachment), inline on Jira Cloud (an ADF
external media node showing the attachment's content URL), linked on ServiceNow
(`sys_attachment.do?sys_id=`). A refreshed chart is uploaded, the description pointed at it,
then the old file removed; a run killed between those steps resumes without a second upload, and
the stand-in (knob `media_attachments`) refuses a description showing a file that is not there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

import sync.build
import sync.kept_packs
import sync.steps
from config import Settings
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")
AUTH = ("slm-demo", "demo-api-token")
PNG = b"\x89PNG\r\n\x1a\n"
ALT = "Chart of attainment per month"


class Killed(BaseException):
    """Stands for SIGKILL at a crash point: nothing after it runs, nothing is recorded."""


class Rig:
    """A sandbox, settings with two services selected, and one state store across runs."""

    def __init__(self, site: Sandbox, tmp_path: Path, target: str) -> None:
        self.site = site
        (tmp_path / "data").mkdir()
        self.settings: Settings = demo_settings(site, tmp_path / "data")
        self.settings.servicenow.clock_skew_seconds = 0
        self.settings.sync.target = target  # type: ignore[assignment]
        self.store: StateStore = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        opened = self.run()
        self.settings.review.selection = [c.service_key for c in opened.build.candidates[:2]]

    def run(self) -> RunResult:
        return Engine.from_settings(self.settings, self.store).run_once()

    def reviews(self, result: RunResult) -> list[str]:
        return [o.ticket for o in result.summary.outcomes if o.kind == "review" and o.ticket]

    def requests(self, base: str) -> dict[str, int]:
        counts = requests.get(f"{base}/__sandbox/requests", timeout=5).json()["by_route"]
        requests.post(f"{base}/__sandbox/reset", timeout=5).raise_for_status()
        return {route: n for route, n in counts.items() if not route.endswith("/search/jql")}


BATCH = "POST /api/now/<version>/batch"  # slm-sync's batches carry reads (the cycle's polls)


def _writes(counts: dict[str, int]) -> dict[str, int]:
    return {
        r: n for r, n in counts.items()
        if r.split()[0] in ("POST", "PUT", "PATCH", "DELETE") and r != BATCH
    }  # fmt: skip


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    target, flavor = request.param
    with Sandbox(seed=3, services=3, sla_records=300, index_lag_ms=0, jira_flavor=flavor) as site:
        made = Rig(site, tmp_path, target)
        try:
            yield made
        finally:
            made.store.close()


def _kill_at(monkeypatch: pytest.MonkeyPatch, boundary: str) -> None:
    def crash_point(name: str) -> None:
        if name == boundary:
            raise Killed(name)

    monkeypatch.setattr(sync.steps, "crash_point", crash_point)


def _refresh_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next build draws other charts (as new SLA records would)."""
    drawn: Callable[..., bytes] = sync.build.attainment_chart

    def redrawn(*args: Any, **kwargs: Any) -> bytes:
        return drawn(*args, **kwargs) + b"\0refreshed"

    monkeypatch.setattr(sync.build, "attainment_chart", redrawn)
    # As a new version that draws charts differently: the packs kept by the earlier code are
    # not reused (each run is a new engine, which would otherwise start from them).
    monkeypatch.setattr(sync.kept_packs, "code_digest", lambda: "charts drawn anew")


# ---- Jira ----------------------------------------------------------------------------------
def _issue(site: Sandbox, key: str, version: str = "3") -> dict[str, Any]:
    fields: dict[str, Any] = requests.get(
        f"{site.jira_url}/rest/api/{version}/issue/{key}",
        params={"fields": "description,attachment"}, auth=AUTH, timeout=10,
    ).json()["fields"]  # fmt: skip
    return fields


def _media_urls(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    own = [node["attrs"]["url"]] if node.get("type") == "media" else []
    return own + [url for child in node.get("content") or [] for url in _media_urls(child)]


def _assert_cloud_shows_its_only_chart(site: Sandbox, key: str) -> bytes:
    """The issue carries one chart and its description shows exactly that file; the content
    URL serves the PNG. Returns its bytes."""
    fields = _issue(site, key)
    charts = fields["attachment"]
    assert len(charts) == 1, f"{key} carries {len(charts)} charts"
    url = f"{site.jira_url}/rest/api/3/attachment/content/{charts[0]['id']}"
    assert _media_urls(fields["description"]) == [url]
    assert "the image attached to this ticket" not in str(fields["description"])
    served = requests.get(url, auth=AUTH, timeout=10)
    assert served.status_code == 200 and served.content.startswith(PNG)
    return served.content


@pytest.mark.parametrize("rig", [("jira", "datacenter")], indirect=True)
def test_data_center_shows_the_chart_by_file_name(rig: Rig) -> None:
    reviews = rig.reviews(rig.run())
    assert len(reviews) == 2
    for key in reviews:
        fields = _issue(rig.site, key, "2")
        names = [a["filename"] for a in fields["attachment"]]
        assert len(names) == 1 and f"!{names[0]}!" in str(fields["description"])


@pytest.mark.parametrize("rig", [("jira", "cloud")], indirect=True)
def test_cloud_shows_the_chart_inline_and_an_idle_sync_writes_nothing(rig: Rig) -> None:
    """Created, attached, then the description points at the attachment in the same cycle;
    the next cycle makes no write at all. The reviews just created are read for their
    description's update by one search (through the index lag), not each by key."""
    rig.site.knobs.update({"index_lag_ms": 60_000})  # created issues not searchable for now
    rig.requests(rig.site.jira_url)
    reviews = rig.reviews(rig.run())
    assert len(reviews) == 2
    assert "GET /rest/api/3/issue/<key>" not in rig.requests(rig.site.jira_url)
    for key in reviews:
        _assert_cloud_shows_its_only_chart(rig.site, key)
    rig.requests(rig.site.jira_url)
    idle = rig.run()
    assert idle.summary.failed == []
    assert _writes(rig.requests(rig.site.jira_url)) == {}


@pytest.mark.parametrize("rig", [("jira", "cloud")], indirect=True)
@pytest.mark.parametrize("boundary", [None, "after_upload", "after_show", "after_step"])
def test_a_refreshed_chart_replaces_the_shown_one_even_through_a_kill(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, boundary: str | None
) -> None:
    """A new chart is uploaded once per review, shown, and the old file removed after the
    description left it; killed after the upload, after the description update or before the
    step is recorded, the next run finishes without uploading again (a description pointing at
    a missing file would be refused by the stand-in and fail the run)."""
    reviews = rig.reviews(rig.run())
    before = {key: _assert_cloud_shows_its_only_chart(rig.site, key) for key in reviews}
    _refresh_charts(monkeypatch)
    rig.requests(rig.site.jira_url)
    if boundary is not None:
        _kill_at(monkeypatch, boundary)
        with pytest.raises(Killed):
            rig.run()
        monkeypatch.setattr(sync.steps, "crash_point", lambda name: None)
    finished = rig.run()
    assert finished.summary.failed == []
    writes = _writes(rig.requests(rig.site.jira_url))
    assert writes.get("POST /rest/api/3/issue/<key>/attachments") == len(reviews), writes
    assert writes.get("DELETE /rest/api/3/attachment/<int:attachment_id>") == len(reviews)
    for key in reviews:
        shown = _assert_cloud_shows_its_only_chart(rig.site, key)
        assert shown != before[key] and shown.endswith(b"\0refreshed")
    rig.requests(rig.site.jira_url)
    rig.run()
    assert _writes(rig.requests(rig.site.jira_url)) == {}


@pytest.mark.parametrize("rig", [("jira", "cloud")], indirect=True)
def test_while_the_description_cannot_be_updated_the_old_chart_stays_shown(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jira refuses the description update (503 on every PUT of the issue): the new chart is
    uploaded but the old one is not removed, so the description still shows a file that is
    there; once Jira accepts edits again the next run shows the new chart, without uploading it
    a second time."""
    reviews = rig.reviews(rig.run())
    _refresh_charts(monkeypatch)
    knobs = f"{rig.site.jira_url}/__sandbox/knobs"
    only = "|".join(f"PUT /rest/api/3/issue/{key}" for key in reviews)
    requests.post(knobs, json={"faults": f"5xx=1,only={only}"}, timeout=5).raise_for_status()
    rig.run()
    for key in reviews:
        fields = _issue(rig.site, key)
        assert len(fields["attachment"]) == 2, "the new chart is there, the old one kept"
        (url,) = _media_urls(fields["description"])
        assert requests.get(url, auth=AUTH, timeout=10).status_code == 200, "not a broken image"
    requests.post(knobs, json={"faults": None}, timeout=5).raise_for_status()
    rig.requests(rig.site.jira_url)
    rig.run()
    writes = _writes(rig.requests(rig.site.jira_url))
    assert "POST /rest/api/3/issue/<key>/attachments" not in writes, writes
    for key in reviews:
        assert _assert_cloud_shows_its_only_chart(rig.site, key).endswith(b"\0refreshed")


@pytest.mark.parametrize("rig", [("jira", "cloud")], indirect=True)
def test_the_stand_in_refuses_a_description_showing_a_file_not_on_the_issue(rig: Rig) -> None:
    """Knob `media_attachments`: media showing another issue's attachment (or none) is refused
    with 400; with the knob off the same edit goes through."""
    first, second = rig.reviews(rig.run())
    theirs = _issue(rig.site, second)["attachment"][0]["id"]
    url = f"{rig.site.jira_url}/rest/api/3/attachment/content/{theirs}"
    media = {"type": "media", "attrs": {"type": "external", "url": url}}
    single = {"type": "mediaSingle", "attrs": {"layout": "center"}, "content": [media]}
    body = {"type": "doc", "version": 1, "content": [single]}

    def edit() -> requests.Response:
        return requests.put(
            f"{rig.site.jira_url}/rest/api/3/issue/{first}",
            json={"fields": {"description": body}}, auth=AUTH, timeout=10,
        )  # fmt: skip

    refused = edit()
    assert refused.status_code == 400
    assert f"attachment {theirs}" in refused.json()["errors"]["description"]
    knobs = {"jira": {"media_attachments": False}}
    requests.post(f"{rig.site.jira_url}/__sandbox/knobs", json=knobs, timeout=5).raise_for_status()
    assert edit().status_code == 204


# ---- ServiceNow ----------------------------------------------------------------------------
def _records_with_charts(site: Sandbox) -> dict[str, list[str]]:
    """Attachment sys_ids per record sys_id."""
    created = requests.get(f"{site.servicenow_url}/__sandbox/created", timeout=10).json()
    found: dict[str, list[str]] = {}
    for attachment in created["attachments"]:
        found.setdefault(attachment["table_sys_id"], []).append(attachment["sys_id"])
    return found


def _assert_servicenow_links_its_only_chart(site: Sandbox, record: str, charts: list[str]) -> bytes:
    assert len(charts) == 1, f"{record} carries {len(charts)} charts"
    row = requests.get(
        f"{site.servicenow_url}/api/now/table/vtb_task/{record}",
        params={"sysparm_fields": "description"}, auth=AUTH, timeout=10,
    ).json()["result"]  # fmt: skip
    link = f"{site.servicenow_url}/sys_attachment.do?sys_id={charts[0]}"
    assert f"{ALT}: {link}" in row["description"]
    assert row["description"].count("sys_attachment.do") == 1
    served = requests.get(link, auth=AUTH, timeout=10)
    assert served.status_code == 200 and served.content.startswith(PNG)
    return served.content


@pytest.mark.parametrize("rig", [("servicenow", "cloud")], indirect=True)
def test_servicenow_links_the_chart_and_replaces_it_through_a_kill(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's description links its attachment; an idle cycle writes nothing; a refreshed
    chart killed after the description update is finished by the next run, one upload each."""
    rig.run()
    records = _records_with_charts(rig.site)
    assert len(records) == 2
    before = {
        record: _assert_servicenow_links_its_only_chart(rig.site, record, charts)
        for record, charts in records.items()
    }
    rig.requests(rig.site.servicenow_url)
    rig.run()
    assert _writes(rig.requests(rig.site.servicenow_url)) == {}
    _refresh_charts(monkeypatch)
    _kill_at(monkeypatch, "after_show")
    with pytest.raises(Killed):
        rig.run()
    monkeypatch.setattr(sync.steps, "crash_point", lambda name: None)
    assert rig.run().summary.failed == []
    writes = _writes(rig.requests(rig.site.servicenow_url))
    assert writes.get("POST /api/now/attachment/file") == 2, writes
    for record, charts in _records_with_charts(rig.site).items():
        shown = _assert_servicenow_links_its_only_chart(rig.site, record, charts)
        assert shown != before[record]


# ---- one description write per changed review ----------------------------------------------
def _breach_one(site: Sandbox, result: RunResult, service: str) -> None:
    """New data for `service`: one of its met SLA records becomes a breach, stamped now (its
    pack and its chart change)."""
    agreements = {a.key for a in result.build.agreements if a.service_key == service}
    record = next(
        r
        for r in sorted(site.estate.sla_records, key=lambda r: r.start_time, reverse=True)
        if r.sla in agreements and not r.has_breached and r.stage == "completed"
    )
    record.has_breached = True
    site.servicenow.clock = datetime.now(UTC)
    site.servicenow.update("task_sla", record.sys_id, has_breached="true", stage="breached")


def _record_description_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every PUT / PATCH the clients send from now on that writes a description
    (Jira's `fields.description`, a ServiceNow record's `description`; not a work note)."""
    sent: list[str] = []
    send = requests.Session.send

    def recording(self: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        if request.method in ("PUT", "PATCH") and request.body:
            body = json.loads(request.body)
            if "description" in body.get("fields", body):
                sent.append(urlsplit(request.url or "").path)
        return send(self, request, **kw)

    monkeypatch.setattr(requests.Session, "send", recording)
    return sent


@pytest.mark.parametrize(
    ("rig", "upload"),
    [
        (("jira", "cloud"), "POST /rest/api/3/issue/<key>/attachments"),
        (("servicenow", "cloud"), "POST /api/now/attachment/file"),
    ],
    indirect=["rig"],
)
def test_a_pack_and_its_chart_changed_together_take_one_description_write(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, upload: str
) -> None:
    """New data changes one review's pack and chart: its ticket is written once (the update
    already shows the new chart, uploaded before it), the old file is removed after it, and the
    other review's ticket is not written; the next cycle writes nothing."""
    opened = rig.run()
    services = list(opened.build.packs)
    assert len(services) == 2
    jira = rig.settings.sync.target == "jira"
    url = rig.site.jira_url if jira else rig.site.servicenow_url
    if jira:
        tickets = {o.key: f"/rest/api/3/issue/{o.ticket}" for o in opened.summary.outcomes}
    else:
        rows = rig.store.ledger_rows("servicenow")
        tickets = {key: f"/{row.ticket_id}" for key, row in rows.items()}
    reviews = [o.key for o in opened.summary.outcomes if o.kind == "review"]
    before = dict(opened.build.charts)
    rig.requests(url)
    sent = _record_description_writes(monkeypatch)
    _breach_one(rig.site, opened, services[0])
    refreshed = rig.run()
    assert refreshed.summary.failed == []
    assert refreshed.build.charts[services[0]] != before[services[0]], "the chart changed"
    assert refreshed.build.charts[services[1]] == before[services[1]]
    updated = [o.key for o in refreshed.summary.outcomes if o.action.value == "update"]
    changed = [key for key in reviews if key in updated]
    assert len(changed) == 1
    written = {key: sum(path.endswith(tickets[key]) for path in sent) for key in reviews}
    assert written == {key: int(key in changed) for key in reviews}, sent
    writes = _writes(rig.requests(url))
    assert writes.get(upload) == 1, writes
    assert sum(n for route, n in writes.items() if route.startswith("DELETE")) == 1, writes
    if jira:
        for key in rig.reviews(refreshed):
            _assert_cloud_shows_its_only_chart(rig.site, key)
    else:
        for record, charts in _records_with_charts(rig.site).items():
            _assert_servicenow_links_its_only_chart(rig.site, record, charts)
    rig.run()
    assert _writes(rig.requests(url)) == {}


@pytest.mark.parametrize("rig", [("jira", "cloud")], indirect=True)
@pytest.mark.parametrize("boundary", ["after_upload", "after_show", "after_step"])
def test_a_chart_staged_for_the_update_survives_a_kill(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, boundary: str
) -> None:
    """Pack and chart changed together, the run killed after the new chart's upload (before
    the update), after the update showed it, or before the step was recorded: the next run
    finishes with no second upload, the description shows the one file left (the stand-in
    refuses media showing a missing file), and the cycle after writes nothing."""
    opened = rig.run()
    service = next(iter(opened.build.packs))
    rig.requests(rig.site.jira_url)
    _breach_one(rig.site, opened, service)
    _kill_at(monkeypatch, boundary)
    with pytest.raises(Killed):
        rig.run()
    monkeypatch.setattr(sync.steps, "crash_point", lambda name: None)
    finished = rig.run()
    assert finished.summary.failed == []
    writes = _writes(rig.requests(rig.site.jira_url))
    assert writes.get("POST /rest/api/3/issue/<key>/attachments") == 1, writes
    assert writes.get("DELETE /rest/api/3/attachment/<int:attachment_id>") == 1, writes
    for key in rig.reviews(finished):
        _assert_cloud_shows_its_only_chart(rig.site, key)
    rig.run()
    assert _writes(rig.requests(rig.site.jira_url)) == {}
