"""The portfolio page and a review pack from a real cycle on the stand-ins, read in headless
Chromium; the daemon's HTTP server serves the same page at `/`, read-only.

Skipped locally without Chromium, failed in CI (tests/chromium.py).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from config import Settings
from review import TicketKind, render_html
from sandbox import Sandbox
from sandbox.estate.names import SPECIAL_SERVICE_NAME
from sync.build import chart_name
from sync.demo import JIRA_DONE_TRANSITION, JiraActor, demo_settings
from sync.engine import Engine, RunResult
from sync.health import Health, HealthServer
from sync.metrics import Metrics
from sync.portfolio import PortfolioPage, portfolio_html
from sync.state import open_store
from tests.chromium import chromium, dump_dom, screenshot

SN_AUTH = ("slm-demo", "demo-password")
JIRA_AUTH = ("slm-demo@example.com", "demo-api-token")


@dataclass
class Walked:
    """A cycle in review on the stand-ins, its portfolio page and one pack, as files."""

    sandbox: Sandbox
    settings: Settings
    engine: Engine
    result: RunResult
    page: Path
    pack: Path
    done_ticket: str


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walked]:
    chromium()  # skip (or fail in CI) before starting the stand-ins
    out = tmp_path_factory.mktemp("portfolio")
    with Sandbox(seed=7, jira_flavor="cloud") as sandbox:
        settings = demo_settings(sandbox, out / "data")
        special = next(s for s in sandbox.estate.services if s.name == SPECIAL_SERVICE_NAME)
        other = next(s for s in sandbox.estate.services if s.tier == 1)
        chosen = settings.review.model_copy(update={"selection": [special.sys_id, other.sys_id]})
        settings = settings.model_copy(update={"review": chosen})
        store = open_store(settings.sync.resolved_state_url())
        try:
            engine = Engine.from_settings(settings, store)
            engine.run_once()
            result = engine.run_once()
            assert result.phase.state.value == "reviewing"
            sub_task = next(
                o.ticket
                for o in result.summary.outcomes
                if o.kind == TicketKind.ACTIVITY.value
                and o.ticket
                and any(t.key == o.key and t.service_key == special.sys_id for t in result.tickets)
            )
            assert sub_task is not None
            JiraActor(sandbox.jira_url, JIRA_AUTH).transition(sub_task, JIRA_DONE_TRANSITION)
            page = out / "portfolio.html"
            page.write_text(portfolio_html(result, store, engine.target, settings), "utf-8")
            pack = out / "pack.html"
            (out / chart_name(special.sys_id)).write_bytes(result.build.charts[special.sys_id])
            body = result.build.packs[special.sys_id].body
            title = f"Service review {result.build.cycle.id}: {SPECIAL_SERVICE_NAME}"
            pack.write_text(render_html(body, title=title, chart=chart_name(special.sys_id)))
            yield Walked(sandbox, settings, engine, result, page, pack, sub_task)
        finally:
            store.close()


def _text(dom: str) -> str:
    body = re.sub(r"<(style|head)>.*?</\1>", "", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _hrefs(dom: str, css: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'<a class="{css}" href="([^"]+)"', dom)]


def test_every_service_row_and_no_sys_id_as_text(walked: Walked) -> None:
    """Chromium's DOM holds one row per service, the special name literally, and no sys_id in
    any text (keys only inside links)."""
    dom = dump_dom(walked.page)
    services = walked.result.build.services
    assert dom.count('<tr class="service ') == len(services)
    text = _text(dom)
    for service in services:
        assert service.name in text
    assert SPECIAL_SERVICE_NAME in text
    estate = walked.sandbox.estate
    ids = [s.sys_id for s in estate.services] + [p.sys_id for p in estate.people]
    assert not [i for i in ids if i in text]


def test_service_links_resolve_to_the_stand_in_records(walked: Walked) -> None:
    """Each service name links to its ServiceNow form URL; the stand-in has that record."""
    links = _hrefs(dump_dom(walked.page), "service-name")
    assert len(links) == len(walked.result.build.services)
    base = walked.sandbox.servicenow_url.rstrip("/")
    names = {s.key: s.name for s in walked.result.build.services}
    for link in links:
        parts = urlsplit(link)
        assert link.startswith(base + "/") and parts.path.endswith(".do")
        table = parts.path.rsplit("/", 1)[-1].removesuffix(".do")
        sys_id = parse_qs(parts.query)["sys_id"][0]
        record = requests.get(f"{base}/api/now/table/{table}/{sys_id}", auth=SN_AUTH, timeout=10)
        assert record.status_code == 200, link
        assert record.json()["result"]["name"] == names[sys_id]


def test_review_progress_links_tickets_with_status_words(walked: Walked) -> None:
    """The selected services' activities link to their Jira issues; the one closed in Jira
    reads "done", the others "open"."""
    dom = dump_dom(walked.page)
    tickets = _hrefs(dom, "ticket")
    of_services = {t.key for t in walked.result.tickets if t.service_key}
    reviews = [o for o in walked.result.summary.outcomes if o.key in of_services and o.ticket]
    assert len(tickets) == len(reviews) > 2
    base = walked.sandbox.jira_url.rstrip("/")
    for link in tickets:
        key = link.removeprefix(f"{base}/browse/")
        assert re.fullmatch(r"SLM-\d+", key), link
        issue = requests.get(f"{base}/rest/api/3/issue/{key}", auth=JIRA_AUTH, timeout=10)
        assert issue.status_code == 200, link
    row = re.search(rf">{walked.done_ticket}</a>", dom)
    assert row is not None
    done_row = dom[dom.rfind("<tr>", 0, row.start()) : row.end()]
    assert 'class="progress-word done">done<' in done_row
    text = _text(dom)
    assert "in review" in text and " open " in text and "never reviewed" in text
    assert "missed" in text and "met" in text


def test_screenshots_of_the_page_and_the_pack(walked: Walked, tmp_path: Path) -> None:
    """Both render to PNGs of the window's size with content (not a blank page)."""
    for page in (walked.page, walked.pack):
        shot = tmp_path / f"{page.stem}.png"
        assert screenshot(page, shot, width=1280, height=2000) == (1280, 2000)
        assert shot.stat().st_size > 50_000


def test_the_pack_in_chromium(walked: Walked) -> None:
    """The pack's title shows the special name literally; the chart is a local image."""
    dom = dump_dom(walked.pack)
    assert html.escape(SPECIAL_SERVICE_NAME, quote=False) in dom.split("</h1>")[0]
    assert re.search(r'<img src="attainment-[0-9a-f]+\.png"', dom)
    assert "<table>" in dom and "<script" not in dom


def test_the_daemon_serves_the_page_read_only(walked: Walked) -> None:
    """`/` and `/portfolio` answer the last cycle's page (503 before one), GET only, with a
    policy that forbids scripts; the page carries no configured secret."""
    page = PortfolioPage(walked.settings)
    server = HealthServer(
        Health(interval_seconds=60), Metrics(), host="127.0.0.1", port=0, portfolio=page
    ).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{url}/", timeout=10).status_code == 503
        page.refresh(walked.engine, walked.result)
        for path in ("/", "/portfolio"):
            answer = requests.get(url + path, timeout=10)
            assert answer.status_code == 200
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "script-src" not in answer.headers["Content-Security-Policy"]
            assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
            assert answer.text.count('<tr class="service ') == len(walked.result.build.services)
        refused = requests.post(f"{url}/", data="x", timeout=10)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        secrets = walked.settings.secret_values()
        assert secrets and not [s for s in secrets if s in answer.text]
    finally:
        server.stop()
