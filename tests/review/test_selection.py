"""Selection candidates: ranked with an explained score; readable tokens the LT selects by."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from review import (
    AttainmentAccumulator,
    CsatAccumulator,
    by_service,
    check_feasibility,
    cycle_for,
    rank_candidates,
    render_markdown,
    selection_document,
    selection_from_labels,
)
from review.document import document_text
from review.selection import Selectable, SelectionStatus, Unmatched, assign_tokens, slug

TODAY = date(2025, 6, 1)


def _ranked(estate: Any, last_reviewed: dict[str, date] | None = None) -> Any:
    period = cycle_for(TODAY).period
    attainments = AttainmentAccumulator(estate.agreements, period).add_all(estate.records).results()
    findings = [f for s in estate.services for f in check_feasibility(s, estate.agreements)]
    return rank_candidates(
        estate.services,
        by_service(attainments, estate.agreements),
        today=TODAY,
        findings=findings,
        csat=CsatAccumulator(period).add_all(estate.csat).summaries(),
        last_reviewed=last_reviewed,
    )


def test_every_service_is_ranked_and_each_score_is_the_sum_of_its_reasons(estate: Any) -> None:
    """Scores are explained: the reasons' points add up; the top candidate missed targets."""
    ranked = _ranked(estate)
    assert {c.service_key for c in ranked} == {s.key for s in estate.services}
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    for candidate in ranked:
        assert abs(candidate.score - sum(r.points for r in candidate.reasons)) < 0.11
    assert ranked[0].reasons[0].factor == "missed targets"


def test_a_recent_review_lowers_a_service_in_the_ranking(estate: Any) -> None:
    """Reviewed last month: fewer points for time since the last review than never reviewed."""
    top = _ranked(estate)[0]
    again = {c.service_key: c for c in _ranked(estate, {top.service_key: date(2025, 5, 1)})}
    assert again[top.service_key].score < top.score
    reason = next(r for r in again[top.service_key].reasons if r.factor == "time since last review")
    assert reason.detail == "1 months since 2025-05-01"


def test_selection_ticket_lists_every_candidate_with_its_readable_token(estate: Any) -> None:
    """The cycle ticket body ranks candidates and names the token that selects each: readable
    words of the service's name, never the 32-hex sys_id."""
    ranked = _ranked(estate)
    names = {s.key: s.name for s in estate.services}
    tokens = assign_tokens(names)
    text = render_markdown(selection_document(ranked, [ranked[1].service_key], names))
    for candidate in ranked:
        token = tokens[candidate.service_key]
        assert token in text and candidate.service_key not in token
        assert re.fullmatch(r"slm-select-[a-z0-9]+(-[a-z0-9]+)*", token)
    assert "Ranked candidates" in text and "No service selected yet" not in text
    assert "first sync after the" in text, "says when the review tickets open"


def test_key_form_labels_are_still_read() -> None:
    """Only slm-select-<key> labels select, in order, once each (the form of earlier versions)."""
    labels = [
        "slm-sync",
        "slm-select-b",
        "slm:2026:cycle",
        "slm-select-a",
        "slm-select-b",
        "slm-select-",
    ]
    assert selection_from_labels(labels) == ("b", "a")


# ---- tokens ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Email and Calendar", "email-and-calendar"),
        ("  E-Mail / Calendar (EU)  ", "e-mail-calendar-eu"),
        ("Zahlungsverkehr Größe Ærø", "zahlungsverkehr-grosse-aero"),
        ("Café Crème — Kaffee", "cafe-creme-kaffee"),
        ("HR: Payroll & Benefits v2", "hr-payroll-benefits-v2"),
        ("給与計算", ""),
        ("📧📅", ""),
    ],
)
def test_slug_is_lower_case_ascii_words_joined_by_dashes(name: str, expected: str) -> None:
    """NFKD, accents dropped, common letters spelled out, anything else separates words."""
    assert slug(name) == expected


def test_slug_is_cut_at_a_word_to_fifty_characters() -> None:
    """A long name keeps whole words up to 50 characters; one endless word is cut."""
    long = slug("Enterprise Resource Planning Finance Ledger Consolidation Reporting Suite")
    assert long == "enterprise-resource-planning-finance-ledger"
    assert len(slug("x" * 80)) == 50


def test_a_name_without_ascii_letters_gets_a_short_stable_token() -> None:
    """CJK or emoji names fall back to service-<8 hex of the key>, the same every time."""
    tokens = assign_tokens({"k1": "給与計算", "k2": "📧"})
    assert re.fullmatch(r"slm-select-service-[0-9a-f]{8}", tokens["k1"])
    assert tokens["k1"] != tokens["k2"]
    assert assign_tokens({"k1": "給与計算"})["k1"] == tokens["k1"]


def test_colliding_names_get_a_suffix_whatever_order_services_arrive_in() -> None:
    """Two "Email" services each get -<4 hex of their key>; the order they come in changes
    nothing; a unique name keeps its plain token."""
    names = {"a1": "Email", "b2": "E-mail", "c3": "Payroll", "d4": "EMAIL"}
    tokens = assign_tokens(names)
    again = assign_tokens(dict(reversed(list(names.items()))))
    assert tokens == again
    assert tokens["c3"] == "slm-select-payroll"
    for key in ("a1", "d4"):
        assert re.fullmatch(r"slm-select-email-[0-9a-f]{4}", tokens[key])
    assert len(set(tokens.values())) == 4
    assert all(len(t) <= 255 and " " not in t for t in tokens.values())


def test_a_renamed_service_keeps_its_token_and_its_new_name_selects_it_too() -> None:
    """The first token is remembered; after a rename the old token is still shown and both the
    old and the new name's token select the service, as does the key form."""
    first = assign_tokens({"k1": "Email", "k2": "Payroll"})
    renamed = Selectable({"k1": "Mail and Calendar", "k2": "Payroll"}, remembered=first)
    assert renamed.tokens["k1"] == "slm-select-email"
    for written in ("slm-select-email", "slm-select-mail-and-calendar", "slm-select-k1"):
        assert renamed.resolve(written) == ("k1",), written
    assert renamed.resolve("Mail and Calendar") == ("k1",)


def test_a_remembered_token_is_never_given_to_a_newcomer() -> None:
    """A new service named like an earlier one gets a suffix; the earlier keeps its token, even
    when the earlier service is no longer in the source."""
    first = assign_tokens({"old": "Email"})
    tokens = assign_tokens({"new": "Email"}, remembered=first)
    assert tokens["new"].startswith("slm-select-email-") and tokens["new"] != first["old"]


def test_names_and_tokens_resolve_case_insensitively_and_shared_names_are_ambiguous() -> None:
    """Exact names (any case, extra spaces) and bare tokens resolve; a shared name names both."""
    selectable = Selectable({"k1": "Email and Calendar", "k2": "Payroll", "k3": "Payroll"})
    assert selectable.resolve("  EMAIL   and calendar ") == ("k1",)
    assert selectable.resolve("email-and-calendar") == ("k1",)
    assert selectable.resolve("SLM-SELECT-EMAIL-AND-CALENDAR") == ("k1",)
    assert selectable.resolve("payroll") == ("k2", "k3")
    assert selectable.resolve("slm-select-emial") == ()


def test_the_nearest_matches_of_a_typo_come_best_first() -> None:
    """A typo's nearest services are named as `token (Name)`; nothing close, nothing named."""
    selectable = Selectable({"k1": "Email and Calendar", "k2": "Payroll", "k3": "Email Archive"})
    assert selectable.nearest("slm-select-emial-and-calendar")[0] == "k1"
    assert selectable.nearest("Payrol") == ("k2",)
    assert selectable.nearest("slm-select-zzzz") == ()
    assert selectable.describe("k1") == "slm-select-email-and-calendar (Email and Calendar)"


def test_the_cycle_ticket_lists_unmatched_entries_and_kept_reviews() -> None:
    """What names no service is a gap with the nearest match; a service kept because its review
    exists says so; the text says when reviews open (before and after the sub-task is done)."""
    names = {"k1": "Email and Calendar", "k2": "Payroll"}
    tokens = assign_tokens(names)
    typo = Unmatched(
        written="slm-select-emial-and-calendar",
        where="label on SLM-1",
        nearest=("slm-select-email-and-calendar (Email and Calendar)",),
    )
    status = SelectionStatus(tokens=tokens, chosen=("k1",), kept=("k2",), unmatched=(typo,))
    text = document_text(selection_document((), ["k2"], names, status, task="Select services"))
    assert "Not matched" in text
    assert "\u201cslm-select-emial-and-calendar\u201d (label on SLM-1) matches no service" in text
    assert "did you mean slm-select-email-and-calendar (Email and Calendar)?" in text
    assert "Payroll (slm-select-payroll) \u2014 its review ticket exists" in text
    assert "Email and Calendar (slm-select-email-and-calendar)" in text
    assert "Review tickets open at the first sync after the \u201cSelect services\u201d" in text
    closed = status.model_copy(update={"closed": True, "unmatched": ()})
    text = document_text(selection_document((), ["k2"], names, closed, task="Select services"))
    assert "gets its review ticket at the next sync" in text and "Not matched" not in text


def test_a_configured_selection_says_the_settings_decide() -> None:
    """With review.selection the text points to the settings instead of labels and notes."""
    status = SelectionStatus(tokens={"k1": "slm-select-x"}, configured=True, closed=True)
    text = document_text(selection_document((), ["k1"], {"k1": "X"}, status))
    assert "review.selection" in text and "add its token as a label" not in text
