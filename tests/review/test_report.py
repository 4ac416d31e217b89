"""The review pack and its local report: every section, escaped text, a reproducible chart."""

from __future__ import annotations

import html
from datetime import date
from typing import Any

import pytest

from review import (
    SECTION_TITLES,
    AttainmentAccumulator,
    CsatAccumulator,
    Material,
    MaterialKind,
    ReviewPack,
    agreement_label,
    attainment_chart,
    build_pack,
    check_feasibility,
    cycle_for,
    document,
    find_gaps,
    render_html,
    render_markdown,
)

PERIOD = cycle_for(date(2025, 6, 1)).period


def _pack(estate: Any, key: str, chart_name: str | None = "attainment.png") -> ReviewPack:
    service = estate.service(key)
    attainments = AttainmentAccumulator(estate.agreements, PERIOD).add_all(estate.records).results()
    csat = CsatAccumulator(PERIOD).add_all(estate.csat).summary(key)
    carried = Material(
        key="SLM-12", kind=MaterialKind.IMPROVEMENT, title="Shorten P1 hand-offs", service_key=key
    )
    previous = Material(
        key="SLM-3", kind=MaterialKind.PREVIOUS_REVIEW, title="Review 2024", service_key=key,
        url="https://jira.example/browse/SLM-3", open=False,
    )  # fmt: skip
    return build_pack(
        service,
        PERIOD,
        estate.agreements,
        attainments,
        findings=check_feasibility(service, estate.agreements),
        gaps=find_gaps(service, estate.agreements, csat_responses=csat.responses),
        materials=[*estate.materials, carried, previous],
        csat=csat,
        chart_name=chart_name,
    )


@pytest.fixture(scope="module")
def special_pack(estate: Any) -> ReviewPack:
    """The pack of the service named with quotes, a caret, '=' and non-ASCII letters."""
    return _pack(estate, estate.raw.deliberate["service_special_name"])


@pytest.fixture(scope="module")
def troubled_pack(estate: Any) -> ReviewPack:
    """The pack of the tier-1 service with the looser OLA: findings, breaches, missed targets."""
    sla = next(
        a for a in estate.agreements if a.key == estate.raw.deliberate["ola_looser_service_sla"]
    )
    return _pack(estate, sla.service_key)


def test_markdown_report_shows_every_section_and_the_chart(troubled_pack: ReviewPack) -> None:
    """A service owner reading the Markdown sees every section, the targets and the chart."""
    text = render_markdown(troubled_pack.body, title="Review", chart="attainment.png")
    for title in SECTION_TITLES:
        assert f"### {title}\n" in text, title
    assert "| Agreement | Target | Measured | Status |" in text
    assert "**\\[MISSED\\]**" in text
    assert "![Monthly attainment per agreement](<attainment.png>)" in text
    assert text.index("attainment.png") > text.index("### Monthly attainment")
    assert "Shorten P1 hand\\-offs" not in text and "Shorten P1 hand-offs" in text
    assert "Open improvement actions carried over" in text and "Review 2024" in text
    assert "breach(es) in the period" not in text  # parentheses are escaped in Markdown
    assert "INC" in text and "https://sn.example/incident.do" in text


def test_html_report_shows_every_section_escaped(special_pack: ReviewPack, estate: Any) -> None:
    """The HTML page has each section; the special service name appears escaped, never as markup."""
    name = estate.service(estate.raw.deliberate["service_special_name"]).name
    page = render_html(special_pack.body, title=f"Service review: {name}", chart="attainment.png")
    for title in SECTION_TITLES:
        assert f"<h3>{title}</h3>" in page, title
    assert html.escape(name, quote=True) in page and f"<h1>Service review: {name}" not in page
    assert '<img src="attainment.png"' in page
    assert '<span class="status status-green">MET</span>' in page
    assert "<link" not in page and "<script" not in page


def test_hostile_text_and_links_cannot_inject_markup() -> None:
    """Text with tags and a javascript: link render as inert text in both formats."""
    body = document.Document(
        blocks=(
            document.paragraph("<script>alert(1)</script> | a *b* [c](d)"),
            document.paragraph(document.Link(text="click", url="javascript:alert(1)")),
            document.Table(header=("A|B",), rows=(((document.text("x|y\nz"),),),)),
        )
    )
    page = render_html(body, title='"<b>')
    assert "<script>" not in page and "javascript:" not in page and "&lt;script&gt;" in page
    text = render_markdown(body)
    assert "\\<script\\>" in text and "javascript:" not in text
    assert "| A\\|B |" in text and "| x\\|y z |" in text


def test_pack_lists_gaps_and_feasibility_findings(troubled_pack: ReviewPack) -> None:
    """The looser OLA appears as a finding, with the components allowed value, in the pack body."""
    assert troubled_pack.findings
    text = render_markdown(troubled_pack.body)
    assert troubled_pack.findings[0].components[0].replace("-", "\\-") in text or (
        troubled_pack.findings[0].components[0] in text
    )
    assert troubled_pack.breaches and len(troubled_pack.breaches) <= 10


def test_chart_bytes_are_identical_across_renders(estate: Any, troubled_pack: ReviewPack) -> None:
    """Two renders of the same data give the same PNG bytes, with no Software/date metadata."""
    by_key = {a.key: a for a in estate.agreements}
    series = [(agreement_label(by_key[a.agreement_key]), a) for a in troubled_pack.attainments]
    first = attainment_chart('Zahlungsverkehr "Überweisung" ^ $EU', series)
    second = attainment_chart('Zahlungsverkehr "Überweisung" ^ $EU', series)
    assert first == second
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in first and b"matplotlib" not in first
    assert attainment_chart("empty", []) == attainment_chart("empty", [])


def test_chart_title_of_a_huge_hostile_name_is_short_and_printable() -> None:
    """A 1 MB service name with control characters renders quickly as a cut, clean title."""
    from review.chart import TITLE_LIMIT, _plain

    title = _plain("Payroll\x00\x1b[31m $HOME " + "x" * 1_000_000)
    assert len(title) <= TITLE_LIMIT + 1
    assert title.isprintable()
    assert "\\$HOME" in title  # `$` escaped: no mathtext
