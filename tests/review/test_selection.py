"""Selection candidates: ranked with an explained score; the LT selects by label."""

from __future__ import annotations

from datetime import date
from typing import Any

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


def test_selection_ticket_lists_candidates_with_the_exact_labels(estate: Any) -> None:
    """The cycle ticket body ranks candidates and names the label that selects each."""
    ranked = _ranked(estate)
    names = {s.key: s.name for s in estate.services}
    text = render_markdown(selection_document(ranked, [ranked[1].service_key], names))
    for candidate in ranked:
        assert f"slm-select-{candidate.service_key}" in text
    assert "Ranked candidates" in text and "No service selected yet" not in text


def test_selection_is_read_back_from_labels() -> None:
    """Only slm-select-<key> labels select, in order, once each."""
    labels = [
        "slm-sync",
        "slm-select-b",
        "slm:2026:cycle",
        "slm-select-a",
        "slm-select-b",
        "slm-select-",
    ]
    assert selection_from_labels(labels) == ("b", "a")
