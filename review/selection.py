"""Selection: services ranked for the LT's yearly pick, each score explained, and the tokens
the LT selects them by.

The seed has the leadership team select services with the SLM process owner. slm-sync ranks
every service by evidence (missed and at-risk targets, breach volume and trend, months since the
last review, tier, a drop in satisfaction, infeasible targets) and shows each factor's points, so
the LT sees why a service is on top.

Each service has a selection token people can read and type: `slm-select-<slug of its name>`
(`slm-select-email-and-calendar`): lower-case ASCII words joined by `-`, the slug at most 50
characters, valid as a Jira label. A name with no ASCII letters (CJK, emoji) gets
`slm-select-service-<8 hex of sha256 of its key>`. Services whose tokens would collide each get
`-` and 4 hex of sha256 of their key, the same whatever order the services come in. A service
keeps the first token it got (the caller remembers it), so renaming it changes nothing for the
LT; the token of its new name and the key form `slm-select-<service key>` of earlier versions
select it too. The LT selects by a label or a note (see `sync.selection`); what names no
service is `Unmatched`, listed in the cycle ticket (`selection_document`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from review import document as doc
from review.csat import CsatSummary
from review.cycle import months_between
from review.model import Attainment, AttainmentStatus, FeasibilityFinding, Service
from review.raci import Activity, RaciMatrix, Scope

SELECT_LABEL_PREFIX = "slm-select-"
MAX_SLUG_LENGTH = 50
FALLBACK_WORD = "service"  # the token of a name with no ASCII letters: service-<8 hex>
NEAREST_COUNT = 3
NEAREST_CUTOFF = 0.6  # difflib ratio for "did you mean"
# Letters NFKD leaves as they are, spelled as people write them without accents.
_SPELLED = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o", "đ": "d",
     "Đ": "d", "ð": "d", "Ð": "d", "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "\u0131": "i"}
)  # fmt: skip
_WORDS = re.compile(r"[a-z0-9]+")
_SPACES = re.compile(r"\s+")


def slug(name: str) -> str:
    """`name` as lower-case ASCII words joined by `-`, at most 50 characters (whole words
    where the first word allows); "" when nothing of it is ASCII (CJK, emoji)."""
    folded = unicodedata.normalize("NFKD", name.translate(_SPELLED))
    words = _WORDS.findall(folded.encode("ascii", "ignore").decode().lower())
    text = ""
    for word in words:
        longer = f"{text}-{word}" if text else word
        if len(longer) > MAX_SLUG_LENGTH:
            return text or word[:MAX_SLUG_LENGTH]
        text = longer
    return text


def select_label(service_key: str) -> str:
    """The key form `slm-select-<service key>` of earlier versions; it still selects."""
    return f"{SELECT_LABEL_PREFIX}{service_key}"


def selection_from_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Service keys of key-form labels `slm-select-<key>`, in label order, without repeats
    (tokens are resolved by `Selectable`, which also knows this form)."""
    prefix = len(SELECT_LABEL_PREFIX)
    keys = (label[prefix:] for label in labels if label.startswith(SELECT_LABEL_PREFIX))
    return tuple(dict.fromkeys(key for key in keys if key))


def base_token(service_key: str, name: str) -> str:
    """A service's token unless it collides: its name's slug, else `service-<8 hex of key>`."""
    return SELECT_LABEL_PREFIX + (slug(name) or f"{FALLBACK_WORD}-{_hex(service_key, 8)}")


def assign_tokens(
    names: Mapping[str, str], remembered: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Service key -> token. A remembered token stays its service's (renames change nothing)
    and is never given to another; new services get their base token, or, where base tokens
    collide with each other or a taken token, the base and `-<4 hex of their key>`."""
    remembered = remembered or {}
    tokens = {key: token for key, token in remembered.items() if key in names}
    taken = set(remembered.values())
    fresh: dict[str, list[str]] = {}
    for key in sorted(k for k in names if k not in tokens):
        fresh.setdefault(base_token(key, names[key]), []).append(key)
    clashing: list[tuple[str, str]] = []
    for base, keys in sorted(fresh.items()):
        if len(keys) == 1 and base not in taken:
            tokens[keys[0]] = base
            taken.add(base)
        else:
            clashing += [(base, key) for key in keys]
    for base, key in clashing:
        tokens[key] = _suffixed(base, key, taken)
        taken.add(tokens[key])
    return tokens


def service_slugs(names: Mapping[str, str]) -> dict[str, str]:
    """Service key -> a slug naming it among `names`, for folders and files people open
    (`email-and-calendar`): the token without `slm-select-`, so the same fallback
    (`service-<8 hex>`) and the same `-<4 hex>` where two names slug alike."""
    return {
        key: token.removeprefix(SELECT_LABEL_PREFIX) for key, token in assign_tokens(names).items()
    }


def _suffixed(base: str, key: str, taken: set[str]) -> str:
    """`base-<4 hex>`, longer hex in the unlikely case that is taken too."""
    for length in range(4, 65, 4):
        token = f"{base}-{_hex(key, length)}"
        if token not in taken:
            return token
    return f"{base}-{_hex(key, 64)}"


def _hex(key: str, length: int) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:length]


def normalized(written: str) -> str:
    """What people wrote, compared: case-folded, spaces collapsed, trimmed."""
    return _SPACES.sub(" ", written).strip().casefold()


class Selectable:
    """The services the LT can select and every way to name one.

    By token (the one shown; the token of a renamed service's new name; the key form), by its
    exact name (case-insensitive), by a token without `slm-select-`, or by its key.
    """

    def __init__(self, names: Mapping[str, str], remembered: Mapping[str, str] | None = None):
        self.names = dict(names)
        self.tokens = assign_tokens(self.names, remembered)
        self._by_token: dict[str, str] = {}
        for key, token in sorted(self.tokens.items()):  # shown tokens first: they win
            self._by_token.setdefault(token.casefold(), key)
        for key, name in sorted(self.names.items()):
            self._by_token.setdefault(base_token(key, name).casefold(), key)
            self._by_token.setdefault(select_label(key).casefold(), key)
        self._by_name: dict[str, list[str]] = {}
        for key, name in sorted(self.names.items()):
            self._by_name.setdefault(normalized(name), []).append(key)
        # what "did you mean" compares with: each shown token without its prefix, each name
        self._pool = {
            t.removeprefix(SELECT_LABEL_PREFIX): k for k, t in sorted(self.tokens.items())
        }
        self._pool.update((name, keys[0]) for name, keys in self._by_name.items())

    def resolve(self, written: str) -> tuple[str, ...]:
        """The services `written` names: one, none, or several (a name they share)."""
        text = normalized(written)
        if text.startswith(SELECT_LABEL_PREFIX):
            found = self._by_token.get(text)
            return (found,) if found else ()
        if text in self._by_name:
            return tuple(self._by_name[text])
        found = self._by_token.get(SELECT_LABEL_PREFIX + text)
        if found is None:
            found = next((key for key in self.names if key.casefold() == text), None)
        return (found,) if found else ()

    def nearest(self, written: str, *, cutoff: float = NEAREST_CUTOFF) -> tuple[str, ...]:
        """Up to three services whose token or name is closest to `written` (best first)."""
        text = normalized(written).removeprefix(SELECT_LABEL_PREFIX)
        close = difflib.get_close_matches(
            text, list(self._pool), n=3 * NEAREST_COUNT, cutoff=cutoff
        )
        return tuple(dict.fromkeys(self._pool[match] for match in close))[:NEAREST_COUNT]

    def describe(self, key: str) -> str:
        """`token (Name)`, as the LT sees a service in texts."""
        return f"{self.tokens.get(key, select_label(key))} ({self.names.get(key, key)})"


class Unmatched(BaseModel):
    """Something the LT wrote to select (or take back) a service that names none, or several:
    ignored for the selection, listed in the cycle ticket, told once in a comment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    written: str
    where: str  # "label on SLM-1", "note by ann@example.com on SLM-2", "review.selection"
    nearest: tuple[str, ...] = ()  # `token (Name)` of the closest services, best first
    problem: str = "matches no service"

    def line(self) -> str:
        """One line for the cycle ticket and the comment: what, where, and the nearest."""
        hint = f"did you mean {' or '.join(self.nearest)}?" if self.nearest else (
            "no service is close; see the candidates' tokens in the cycle ticket"
        )  # fmt: skip
        return f"\u201c{self.written}\u201d ({self.where}) {self.problem}: {hint}"


class SelectionStatus(BaseModel):
    """What the cycle ticket says about the selection, read back from the tickets.

    `chosen`: what the labels and notes select now; `kept`: services whose review ticket exists
    although nothing selects them any more (they stay); `closed`: the selection sub-task is
    done; `configured`: `review.selection` in the settings decides instead of the tickets.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: dict[str, str]
    chosen: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()
    closed: bool = False
    configured: bool = False


def selection_activities(matrix: RaciMatrix) -> tuple[Activity, ...]:
    """The cycle activities before the first service-scoped one: where the LT selects."""
    found: list[Activity] = []
    for activity in matrix.activities:
        if activity.scope is Scope.SERVICE:
            break
        found.append(activity)
    return tuple(found)


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
    candidates: Sequence[Candidate],
    selected: Sequence[str],
    names: Mapping[str, str],
    status: SelectionStatus | None = None,
    *,
    task: str = "Select services for review",
) -> doc.Document:
    """The cycle ticket's body: how to select and when the reviews open, the ranked candidates
    with their tokens, what is selected, and what the LT wrote that names no service (a gap).

    `selected`: the services that have (or get) review tickets; `task`: the selection
    sub-task's activity name."""
    status = status or SelectionStatus(tokens=assign_tokens(names))
    tokens = status.tokens

    def token(key: str) -> str:
        return tokens.get(key) or select_label(key)

    rows = tuple(
        (
            (doc.text(str(rank)),),
            (doc.text(c.service_name),),
            (doc.text(f"{c.score:g}", strong=True),),
            (doc.text("; ".join(f"{r.detail} ({r.points:g})" for r in c.reasons) or "-"),),
            (doc.text(token(c.service_key)),),
        )
        for rank, c in enumerate(candidates, start=1)
    )
    listed = sorted({*selected, *status.chosen}, key=lambda k: (names.get(k, k).casefold(), k))
    kept = set(status.kept)
    chosen = tuple(
        (doc.text(f"{names.get(key, key)} ({token(key)})" + (_KEPT if key in kept else "")),)
        for key in listed
    )
    shown = (token(candidates[0].service_key), candidates[0]) if candidates else None
    return doc.Document(
        blocks=(
            doc.heading(2, "Select services for review"),
            *_how_to_select(status, task, shown),
            doc.heading(3, "Ranked candidates"),
            doc.Table(header=("#", "Service", "Score", "Why", "Token"), rows=rows)
            if rows
            else doc.paragraph("No services were found in the source."),
            doc.heading(3, "Selected"),
            doc.BulletList(items=chosen) if chosen else doc.paragraph("No service selected yet."),
            *_unmatched_blocks(status.unmatched),
        )
    )


_KEPT = (
    " \u2014 its review ticket exists, so it stays selected although nothing selects it any "
    "more (tickets are never deleted)"
)


def _how_to_select(
    status: SelectionStatus, task: str, example: tuple[str, Candidate] | None
) -> tuple[doc.Paragraph, ...]:
    if status.configured:
        return (
            doc.paragraph(
                "The selection is set by the administrator in the settings (review.selection): "
                "it wins over labels and notes on this ticket. Remove review.selection to let "
                "the leadership team select here. The configured services' review tickets are "
                "opened at the next sync."
            ),
        )
    how = doc.paragraph(
        "The leadership team selects the services to review with the SLM process owner. "
        "Every service has a selection token (last column of the table). To select a service, "
        "add its token as a label to this ticket (Jira), or write a comment / work note on "
        f"this ticket or on its \u201c{task}\u201d sub-task with one service per line: its token "
        "or its exact name, optionally after \u201cselect:\u201d. To take one back, remove the "
        "label, or write a line \u201cremove: <token or name>\u201d. Labels count first, then "
        "the notes in the order they were written: a later note wins."
    )
    blocks = [how]
    if example is not None:
        blocks.append(
            doc.paragraph(f"For example, {example[0]} selects {example[1].service_name}.")
        )
    if status.closed:
        blocks.append(
            doc.paragraph(
                f"The \u201c{task}\u201d sub-task is done: review tickets were opened for the "
                "selected services at the first sync after it was done. A service selected "
                "later gets its review ticket at the next sync; a service whose review ticket "
                "exists stays selected."
            )
        )
    else:
        blocks.append(
            doc.paragraph(
                f"Until the \u201c{task}\u201d sub-task is done, add and take back freely: "
                "slm-sync only reads the selection, it never adds or removes a label. Review "
                f"tickets open at the first sync after the \u201c{task}\u201d sub-task is done."
            )
        )
    return tuple(blocks)


def _unmatched_blocks(unmatched: Sequence[Unmatched]) -> tuple[doc.Heading | doc.Block, ...]:
    if not unmatched:
        return ()
    return (
        doc.heading(3, "Not matched (ignored)"),
        doc.BulletList(items=tuple((doc.text(u.line()),) for u in unmatched)),
        doc.paragraph(
            "These entries select nothing and the cycle goes on without them: correct or "
            "remove the label, write a corrected note, or fix the setting."
        ),
    )
