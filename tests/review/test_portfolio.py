"""The portfolio page: every service, the cycle's progress, escaped, filtered without JavaScript.

The browser tests render the page in headless Chromium (tests/chromium.py): skipped locally
without it, failed in CI.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from pathlib import Path

from review import (
    Agreement,
    AgreementKind,
    Attainment,
    AttainmentStatus,
    FeasibilityFinding,
    Gap,
    GapKind,
    Metric,
    MonthlyAttainment,
    ReviewPeriod,
    Service,
    SourceRef,
)
from review.portfolio import (
    ActivityProgress,
    Portfolio,
    Progress,
    ServiceReview,
    link_url,
    period_months,
    portfolio_rows,
    progress_of,
    render_portfolio,
)
from review.selection import Candidate, Reason
from tests.chromium import dump_dom, screenshot

PERIOD = ReviewPeriod(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, tzinfo=UTC))
TODAY = date(2026, 1, 15)
SCRIPT_NAME = "<script>alert('pwned')</script> & \"Co\" ^ 🚀"
ATTR_NAME = '"><img src=x onerror=alert(1)> Ünïcödé ^ Straße 💳'
SYS_IDS = ("a1b2c3d4e5f60718293a4b5c6d7e8f90", "0f9e8d7c6b5a49382716f5e4d3c2b1a0", "c0ffee")


def _service(key: str, name: str, tier: int | None) -> Service:
    return Service(
        key=key, name=name, tier=tier,
        source=SourceRef(system="servicenow", table="cmdb_ci_service", id=key),
    )  # fmt: skip


def _attainment(key: str, status: AttainmentStatus, *months: float | None) -> Attainment:
    monthly = tuple(
        MonthlyAttainment(month=f"2025-{i + 1:02d}", measured=10, breached=0, attainment=value)
        for i, value in enumerate(months)
    )
    return Attainment(
        agreement_key=key, period=PERIOD, measured=10 * len(months), breached=1,
        attainment=0.9 if months else None, target_percent=95.0, status=status, monthly=monthly,
    )  # fmt: skip


def _portfolio() -> Portfolio:
    services = [
        _service(SYS_IDS[0], SCRIPT_NAME, 1),
        _service(SYS_IDS[1], ATTR_NAME, 2),
        _service(SYS_IDS[2], "Quiet Service", None),
    ]
    agreements = [
        Agreement(key="sla-1", name="Resolve P1", kind=AgreementKind.SLA,
                  metric=Metric.RESOLUTION, target_percent=95, priority="1",
                  service_key=SYS_IDS[0]),
        Agreement(key="sla-2", name="Availability", kind=AgreementKind.SLA,
                  metric=Metric.AVAILABILITY, target_percent=99.9, service_key=SYS_IDS[1]),
    ]  # fmt: skip
    attainments = {
        "sla-1": _attainment("sla-1", AttainmentStatus.MISSED, 0.99, 0.80, None, 0.96),
        "sla-2": _attainment("sla-2", AttainmentStatus.MET, 1.0, 1.0),
    }
    candidates = (
        Candidate(service_key=SYS_IDS[0], service_name=SCRIPT_NAME, score=42.5,
                  reasons=(Reason(factor="missed targets", points=10, detail="1 <missed>"),)),
        Candidate(service_key=SYS_IDS[1], service_name=ATTR_NAME, score=3.0, reasons=()),
    )  # fmt: skip
    finding = FeasibilityFinding(
        service_key=SYS_IDS[0], agreement_key="sla-1", metric=Metric.RESOLUTION,
        service_target="4h", achievable="6h", components=(), explanation="too slow",
    )  # fmt: skip
    gap = Gap(kind=GapKind.NO_AGREEMENT, service_key=SYS_IDS[1], subject="x", detail="y")
    review = ServiceReview(
        ticket=ActivityProgress("Review", Progress.OPEN, ticket="SLM-1",
                                url="https://jira.example/browse/SLM-1"),
        activities=(
            ActivityProgress("Schedule <meeting>", Progress.DONE, "Ana \"A\" <ana>",
                             date(2026, 1, 10), "SLM-2", "https://jira.example/browse/SLM-2"),
            ActivityProgress("Prepare", Progress.LATE, "Bo", date(2026, 1, 12), "SLM-3",
                             "javascript:alert(1)"),
            ActivityProgress("Participate", Progress.PENDING),
        ),
    )  # fmt: skip
    rows = portfolio_rows(
        services, candidates, agreements, attainments,
        findings={SYS_IDS[0]: (finding,)}, gaps={SYS_IDS[1]: (gap, gap)},
        last_reviewed={SYS_IDS[1]: date(2024, 10, 1)}, today=TODAY,
        reviews={SYS_IDS[0]: review},
        record_url=lambda s: f"https://user:secret@sn.example/cmdb_ci_service.do?sys_id={s.key}",
    )  # fmt: skip
    generated = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    return Portfolio("2026", "reviewing", PERIOD, generated, rows)


def _text(page: str) -> str:
    """What the page shows as text (tags dropped, entities decoded)."""
    without_style = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", without_style))


def test_every_service_is_a_row_best_candidate_first_others_after() -> None:
    """Rows follow the candidates' ranking; a service no candidate names comes last."""
    rows = _portfolio().rows
    assert [r.service.key for r in rows] == list(SYS_IDS)
    first, second, third = rows
    assert first.missed == ("Resolution P1",) and first.infeasible == ("Resolution P1",)
    assert first.status is AttainmentStatus.MISSED and first.tier == "1"
    assert second.gaps == 2 and second.months_since_review == 15
    assert third.tier == "none" and third.status is AttainmentStatus.NO_DATA
    assert third.months_since_review is None and third.score == 0


def test_hostile_names_are_escaped_and_shown_literally() -> None:
    """Names with `<script>`, quotes, `^` and emoji appear as text, never as markup."""
    page = render_portfolio(_portfolio())
    assert "<script" not in page and "<img" not in page
    assert html.escape(SCRIPT_NAME, quote=True) in page
    assert html.escape(ATTR_NAME, quote=True) in page
    text = _text(page)
    assert SCRIPT_NAME in text and ATTR_NAME in text
    assert 'Ana "A" <ana>' in text and "1 <missed>" in text


def test_no_sys_id_as_text_and_links_lose_credentials_and_scripts() -> None:
    """Keys only appear inside record links; user:password and javascript: links are dropped."""
    page = render_portfolio(_portfolio())
    text = _text(page)
    assert not any(key in text for key in SYS_IDS)
    assert "secret" not in page and "user:" not in page
    assert f'href="https://sn.example/cmdb_ci_service.do?sys_id={SYS_IDS[0]}"' in page
    assert "javascript:" not in page
    assert 'href="https://jira.example/browse/SLM-2"' in page


def test_page_is_self_contained_without_scripts() -> None:
    """Inline CSS only: no script, no external stylesheet, image or font; only <a> links out."""
    page = render_portfolio(_portfolio())
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"<[^>]*\ssrc=", page)
    assert "@import" not in page and "url(" not in page
    assert set(re.findall(r'<a class="([\w-]+)" href=', page)) == {"service-name", "ticket"}


def test_status_words_and_progress() -> None:
    """Status words per agreement and per activity, with done / late counts per review."""
    text = _text(render_portfolio(_portfolio()))
    for word in ("missed 90.0 %", "met 90.0 %", "done", "late", "not created yet", "in review"):
        assert word in text
    assert "1 of 3 activities done, 1 late" in text
    assert "never reviewed" in text


def test_rows_carry_filter_classes_and_every_filter_has_a_rule() -> None:
    """Each row is classed by tier and status; each radio button's CSS rule hides the others."""
    page = render_portfolio(_portfolio())
    assert '<tr class="service tier-1 status-missed status-in-review">' in page
    assert '<tr class="service tier-2 status-met">' in page
    assert '<tr class="service tier-none status-no_data">' in page
    for radio in re.findall(r'<input class="filter" type="radio" name="\w+" id="([\w-]+)"', page):
        assert f'label for="{radio}"' in page
        if not radio.endswith("-all"):
            assert f"#{radio}:checked ~ * .service:not(.{radio})" in page


def test_progress_of_ticket_states() -> None:
    """Done, open, late after the due date, pending without a ticket, unknown when unread."""
    assert progress_of(done=True, due=date(2020, 1, 1), today=TODAY) is Progress.DONE
    assert progress_of(done=False, due=TODAY, today=TODAY) is Progress.OPEN
    assert progress_of(done=False, due=date(2026, 1, 14), today=TODAY) is Progress.LATE
    assert progress_of(done=None, due=None, today=TODAY) is Progress.UNKNOWN
    assert progress_of(done=None, due=None, today=TODAY, created=False) is Progress.PENDING


def test_period_months_and_links() -> None:
    """A yearly period is twelve months; a period from mid-month shows both partial months."""
    assert period_months(PERIOD) == [f"2025-{m:02d}" for m in range(1, 13)]
    mid = ReviewPeriod(
        start=datetime(2025, 11, 26, tzinfo=UTC), end=datetime(2026, 1, 26, tzinfo=UTC)
    )
    assert period_months(mid) == ["2025-11", "2025-12", "2026-01"]
    assert link_url("https://u:p@h.example:8443/x?y=1") == "https://h.example:8443/x?y=1"
    assert link_url("data:text/html,hi") is None and link_url("//h.example") is None


def test_browser_shows_names_literally_and_runs_no_script(tmp_path: Path) -> None:
    """In Chromium the hostile names are text nodes: no script or img element is created."""
    page = tmp_path / "portfolio.html"
    page.write_text(render_portfolio(_portfolio()), encoding="utf-8")
    dom = dump_dom(page)
    assert "<script" not in dom and "<img" not in dom
    assert html.escape(SCRIPT_NAME, quote=False) in dom
    assert dom.count('<tr class="service ') == 3


def test_browser_filters_without_javascript(tmp_path: Path) -> None:
    """Choosing a radio button (here: checked in the markup) hides the other rows by CSS alone;
    a test-only script counts the rows left visible."""
    counter = (
        "<script>document.body.dataset.visible = [...document.querySelectorAll('tr.service')]"
        ".filter(r => r.getClientRects().length > 0).length;</script></body>"
    )
    visible = {}
    for radio in ("tier-all", "tier-1", "tier-none", "status-missed", "status-met", "tier-4"):
        page = render_portfolio(_portfolio())
        page = page.replace('id="tier-all" checked>', 'id="tier-all">')
        page = page.replace(f'id="{radio}">', f'id="{radio}" checked>')
        path = tmp_path / f"{radio}.html"
        path.write_text(page.replace("</body>", counter), encoding="utf-8")
        found = re.search(r'data-visible="(\d+)"', dump_dom(path, script_ms=1000))
        assert found, f"the counting script did not run for {radio}"
        visible[radio] = int(found.group(1))
    assert visible == {
        "tier-all": 3, "tier-1": 1, "tier-none": 1, "status-missed": 1, "status-met": 1,
        "tier-4": 0,
    }  # fmt: skip


def test_browser_screenshot_has_the_window_size(tmp_path: Path) -> None:
    """The page renders to a PNG of the window's size, bigger than a blank page's."""
    page = tmp_path / "portfolio.html"
    page.write_text(render_portfolio(_portfolio()), encoding="utf-8")
    shot = tmp_path / "portfolio.png"
    assert screenshot(page, shot, width=1280, height=900) == (1280, 900)
    assert shot.stat().st_size > 20_000
