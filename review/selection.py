"""Selection candidates: services ranked for the LT's yearly pick, each score explained.

The seed has the leadership team select services with the SLM process owner. slm-sync ranks
every service by evidence (missed and at-risk targets, breach volume and trend, months since the
last review, tier, a drop in satisfaction, infeasible targets) and shows each factor's points, so
the LT sees why a service is on top. The LT picks by adding the label `slm-select-<service key>` to
the cycle ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from review import document as doc
from review.csat import CsatSummary
from review.cycle import months_between
from review.model import Attainment, AttainmentStatus, FeasibilityFinding, Service

SELECT_LABEL_PREFIX = "slm-select-"


def select_label(service_key: str) -> str:
    """The label the LT adds to the cycle ticket to select a service."""
    return f"{SELECT_LABEL_PREFIX}{service_key}"


def selection_from_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Service keys selected by `slm-select-<key>` labels, in label order, without repeats."""
    prefix = len(SELECT_LABEL_PREFIX)
    keys = (label[prefix:] for label in labels if label.startswith(SELECT_LABEL_PREFIX))
    return tuple(dict.fromkeys(key for key in keys if key))


class SelectionWeights(BaseModel):
    """Points per unit of evidence and caps; defaults favour missed targets and tier 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_missed_target: float = 10.0
    per_at_risk_target: float = 4.0
    breaches_per_point: float = 10.0
    breach_cap: float = 10.0
    per_point_of_decline: float = 2.0  # per percentage point per month of falling attainment
    trend_cap: float = 10.0
    per_month_since_review: float = 0.5
    never_reviewed_months: int = 24
    review_cap: float = 12.0
    tier_points: tuple[float, float, float] = (6.0, 3.0, 1.0)
    per_csat_drop: float = 10.0  # per point of the 1-5 scale lost lately
    csat_cap: float = 10.0
    per_infeasible_target: float = 3.0
    infeasible_cap: float = 12.0


DEFAULT_WEIGHTS = SelectionWeights()


class Reason(BaseModel):
    """One factor of a candidate's score: its points and the evidence behind them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    factor: str
    points: float
    detail: str


class Candidate(BaseModel):
    """A service proposed for review, with its score and the reasons that make it up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_key: str
    service_name: str
    score: float
    reasons: tuple[Reason, ...]

    @property
    def label(self) -> str:
        """The label that selects this service."""
        return select_label(self.service_key)


def rank_candidates(
    services: Iterable[Service],
    attainments: Mapping[str, Sequence[Attainment]],
    *,
    today: date,
    findings: Iterable[FeasibilityFinding] = (),
    csat: Mapping[str, CsatSummary] | None = None,
    last_reviewed: Mapping[str, date] | None = None,
    weights: SelectionWeights = DEFAULT_WEIGHTS,
) -> tuple[Candidate, ...]:
    """Every service as a candidate, highest score first (ties by name, then key)."""
    infeasible: dict[str, int] = {}
    for finding in findings:
        infeasible[finding.service_key] = infeasible.get(finding.service_key, 0) + 1
    csat, last_reviewed = csat or {}, last_reviewed or {}
    candidates = []
    for service in services:
        reasons = (
            *_target_reasons(attainments.get(service.key, ()), weights),
            _review_reason(last_reviewed.get(service.key), today, weights),
            _tier_reason(service.tier, weights),
            _csat_reason(csat.get(service.key), weights),
            _infeasible_reason(infeasible.get(service.key, 0), weights),
        )
        kept = tuple(r for r in reasons if r is not None and r.points > 0)
        candidates.append(
            Candidate(
                service_key=service.key,
                service_name=service.name,
                score=round(sum(r.points for r in kept), 1),
                reasons=kept,
            )
        )
    return tuple(sorted(candidates, key=lambda c: (-c.score, c.service_name, c.service_key)))


def _target_reasons(
    attainments: Sequence[Attainment], weights: SelectionWeights
) -> tuple[Reason | None, ...]:
    missed = sum(a.status is AttainmentStatus.MISSED for a in attainments)
    at_risk = sum(a.status is AttainmentStatus.AT_RISK for a in attainments)
    breaches = sum(a.breached for a in attainments)
    trends = [a.trend for a in attainments if a.trend is not None]
    mean_trend = sum(trends) / len(trends) if trends else 0.0
    return (
        _reason("missed targets", missed * weights.per_missed_target, f"{missed} missed"),
        _reason("targets at risk", at_risk * weights.per_at_risk_target, f"{at_risk} at risk"),
        _reason(
            "breach volume",
            min(weights.breach_cap, breaches / weights.breaches_per_point),
            f"{breaches} breaches",
        ),
        _reason(
            "falling attainment",
            min(weights.trend_cap, max(0.0, -mean_trend) * weights.per_point_of_decline),
            f"{mean_trend:+.2f} points per month",
        ),
    )


def _review_reason(last: date | None, today: date, weights: SelectionWeights) -> Reason | None:
    months = weights.never_reviewed_months if last is None else months_between(last, today)
    detail = "never reviewed" if last is None else f"{months} months since {last.isoformat()}"
    points = min(weights.review_cap, months * weights.per_month_since_review)
    return _reason("time since last review", points, detail)


def _tier_reason(tier: int | None, weights: SelectionWeights) -> Reason | None:
    if tier is None or not 1 <= tier <= len(weights.tier_points):
        return None
    return _reason("tier", weights.tier_points[tier - 1], f"tier {tier}")


def _csat_reason(summary: CsatSummary | None, weights: SelectionWeights) -> Reason | None:
    if summary is None or summary.drop is None or summary.drop <= 0:
        return None
    points = min(weights.csat_cap, summary.drop * weights.per_csat_drop)
    return _reason("satisfaction drop", points, f"-{summary.drop:.2f} of 5 in the last 3 months")


def _infeasible_reason(count: int, weights: SelectionWeights) -> Reason | None:
    points = min(weights.infeasible_cap, count * weights.per_infeasible_target)
    return _reason("infeasible targets", points, f"{count} target(s) beyond the components")


def _reason(factor: str, points: float, detail: str) -> Reason | None:
    return Reason(factor=factor, points=round(points, 1), detail=detail) if points > 0 else None


def selection_document(
    candidates: Sequence[Candidate], selected: Sequence[str], names: Mapping[str, str]
) -> doc.Document:
    """The cycle ticket's body: how to select, the ranked candidates with labels, the selection."""
    rows = tuple(
        (
            (doc.text(str(rank)),),
            (doc.text(c.service_name),),
            (doc.text(f"{c.score:g}", strong=True),),
            (doc.text("; ".join(f"{r.detail} ({r.points:g})" for r in c.reasons) or "-"),),
            (doc.text(c.label),),
        )
        for rank, c in enumerate(candidates, start=1)
    )
    chosen = tuple((doc.text(f"{names.get(key, key)} ({select_label(key)})"),) for key in selected)
    return doc.Document(
        blocks=(
            doc.heading(2, "Select services for review"),
            doc.paragraph(
                "The leadership team selects services with the SLM process owner. To select a "
                "service, add its label to this ticket; to deselect it, remove the label. "
                "Review tickets are opened for selected services at the next sync."
            ),
            doc.heading(3, "Ranked candidates"),
            doc.Table(header=("#", "Service", "Score", "Why", "Label"), rows=rows)
            if rows
            else doc.paragraph("No services were found in the source."),
            doc.heading(3, "Selected"),
            doc.BulletList(items=chosen) if chosen else doc.paragraph("No service selected yet."),
        )
    )
