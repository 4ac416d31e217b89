"""Build the review from the mirror: services, attainment, feasibility, gaps, candidates, packs.

Everything here reads the state store's mirror (never the source) and calls the pure review
engine. Attainment comes from the store's GROUP BY per agreement and month, with only breached
records' bodies read (`stored_attainment`), so neither time nor memory goes into validating
every record; a selected review whose inputs did not change keeps its last pack and chart
(`review_fingerprint`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from config import Settings
from connectors import RecordLinks
from mapping import ComponentDraft, ServiceDraft, assemble
from review import (
    Agreement,
    Attainment,
    AttainmentAccumulator,
    Breach,
    Candidate,
    CsatAccumulator,
    CsatResponse,
    CsatSummary,
    Cycle,
    FeasibilityFinding,
    Gap,
    Material,
    Person,
    ReviewPack,
    ReviewPeriod,
    RoleHolders,
    Service,
    SkippedRecord,
    SlaRecord,
    SourceRef,
    agreement_label,
    attainment_chart,
    build_pack,
    by_service,
    check_feasibility,
    cycle_for,
    find_gaps,
    live_period,
    rank_candidates,
    skipped_gaps,
)
from review.model import Meeting
from sync.pull import SKIPPED
from sync.state import MirrorRecord, SlaTally, StateStore

Resolver = Callable[[Sequence[Person]], tuple[Person, ...]]
# The selected services' review meetings, as their tickets show them (sync.meeting).
MeetingSource = Callable[[Sequence[Service]], Mapping[str, Meeting]]
log = structlog.get_logger("slm_sync.build")


class Charts(MutableMapping[str, bytes]):
    """A build's charts (PNG bytes) by service key, some of them still being drawn.

    `draw` hands a chart to one background thread of this build, in the order given, and
    returns at once: the cycle goes on to its ticket writes while the charts are drawn (a
    cold sync's Jira writes wait on the rate limit most of the time, and 20 charts are
    seconds of CPU). Reading a chart waits for it; `in` waits only for a chart whose drawing
    is over (to tell a failed one), `len`, iteration and `discard` never wait. A chart that
    failed to draw is logged (`chart.draw_failed`) and is absent: its review goes without a
    chart this cycle, and the next build, finding none to reuse, draws it again.

    `settle` ends the drawing with the cycle (none outlives it: the thread would hold the
    process at exit, and it changes process-wide state such as warning filters while it
    draws): charts still queued are dropped when the cycle failed, else waited for."""

    def __init__(self, charts: Mapping[str, bytes] | None = None) -> None:
        self._drawn: dict[str, bytes] = dict(charts or {})
        self._drawing: dict[str, Future[bytes]] = {}
        self._painter: ThreadPoolExecutor | None = None

    def draw(self, key: str, make: Callable[[], bytes]) -> None:
        if self._painter is None:
            self._painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")
        self._drawn.pop(key, None)
        self._drawing[key] = self._painter.submit(make)

    def close(self) -> None:
        """No more charts to draw: the thread ends once those handed to it are drawn."""
        if self._painter is not None:
            self._painter.shutdown(wait=False)
            self._painter = None

    def settle(self, *, drop_queued: bool = False) -> None:
        """Wait for the drawing to end (the queued charts dropped first, if asked)."""
        if drop_queued:
            for key, drawing in list(self._drawing.items()):
                if drawing.cancel():
                    del self._drawing[key]
        for key in list(self._drawing):
            self._finish(key)
        self.close()

    def discard(self, key: str) -> None:
        """Forget `key`'s chart (drawn or not) without waiting for it."""
        self._drawing.pop(key, None)
        self._drawn.pop(key, None)

    def _finish(self, key: str) -> None:
        drawing = self._drawing.pop(key)
        try:
            self._drawn[key] = drawing.result()
        except Exception as error:  # the review goes without its chart, never the cycle
            log.warning("chart.draw_failed", service=key, error=f"{type(error).__name__}: {error}")

    def __getitem__(self, key: str) -> bytes:
        if key in self._drawing:
            self._finish(key)
        return self._drawn[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self._drawing.pop(key, None)
        self._drawn[key] = value

    def __delitem__(self, key: str) -> None:
        if self._drawing.pop(key, None) is None:
            del self._drawn[key]

    def __contains__(self, key: object) -> bool:
        drawing = self._drawing.get(key) if isinstance(key, str) else None
        if drawing is not None and drawing.done():
            self._finish(str(key))
        return key in self._drawn or key in self._drawing

    def __iter__(self) -> Iterator[str]:
        return iter([*self._drawn, *self._drawing])

    def __len__(self) -> int:
        return len(self._drawn) + len(self._drawing)

    def __repr__(self) -> str:
        return f"Charts(drawn={sorted(self._drawn)}, drawing={sorted(self._drawing)})"


@dataclass
class ReviewBuild:
    """What one cycle of the review looks like right now, from the mirrored data."""

    cycle: Cycle
    services: tuple[Service, ...]
    agreements: tuple[Agreement, ...]
    candidates: tuple[Candidate, ...]
    findings: dict[str, tuple[FeasibilityFinding, ...]]
    gaps: dict[str, tuple[Gap, ...]]
    csat: dict[str, CsatSummary]
    packs: dict[str, ReviewPack] = field(default_factory=dict)
    charts: Charts = field(default_factory=Charts)  # drawn in the background (see Charts)
    # skipped records and read problems no known service can be named for (cycle-wide list)
    unplaced: tuple[Gap, ...] = ()
    # every agreement's attainment and each service's last review (the portfolio page shows all)
    attainments: dict[str, Attainment] = field(default_factory=dict)
    last_reviewed: dict[str, date] = field(default_factory=dict)
    # each pack's inputs, fingerprinted (`review_fingerprint`): an equal one next cycle reuses it
    fingerprints: dict[str, str] = field(default_factory=dict)
    # the services whose pack and chart were built (rendered) this cycle, not reused
    rebuilt: list[str] = field(default_factory=list)
    # a whole build's decoded inputs by the digest of their stored rows (`Decoded`)
    decoded: Decoded | None = None


@dataclass
class Decoded:
    """What a whole build decoded from the mirror (every service assembled with its people
    and components, and the references it could not resolve; every agreement; every
    agreement's attainment), each with the digest of the stored rows it came from: the next
    whole build reads the rows as text, and reuses a part whose digest is the same instead of
    decoding, validating and computing it again (an idle cycle at estate size)."""

    services_digest: str = ""
    services: tuple[Service, ...] = ()
    unresolved: tuple[SkippedRecord, ...] = ()  # what assembling the services reported

    agreements_digest: str = ""
    agreements: tuple[Agreement, ...] = ()
    attainment_digest: str = ""
    attainments: dict[str, Attainment] = field(default_factory=dict)
    csat_digest: str = ""
    csat: dict[str, CsatSummary] = field(default_factory=dict)  # by service key
    # The services and attainments with the source's record links (`_whole_linked`), and what
    # they were linked from: reused while those are the very objects decoded (or reused) above.
    linked_from: tuple[object, ...] | None = None
    linked_services: tuple[Service, ...] = ()
    linked_attainments: dict[str, Attainment] = field(default_factory=dict)


def chart_name(service_key: str) -> str:
    """The attachment / file name of a service's chart."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in service_key)
    return f"attainment-{safe}.png"


def role_holders(settings: Settings) -> RoleHolders:
    """The configured process-level role holders as review values."""
    roles = settings.review.roles

    def person(entry: object) -> Person | None:
        email = getattr(entry, "email", None)
        if not email:
            return None
        return Person(email=email, name=getattr(entry, "name", None) or email)

    return RoleHolders(
        slm_process_owner=person(roles.slm_process_owner),
        service_catalog_owner=person(roles.service_catalog_owner),
        lt_members=tuple(p for p in (person(m) for m in roles.lt_members) if p is not None),
        default_lt_sponsor=person(roles.default_lt_sponsor),
    )


def current_cycle(settings: Settings, today: date) -> Cycle:
    """The review cycle `today` falls in, from the configured calendar."""
    review = settings.review
    return cycle_for(today, review.cycle.frequency, review.cycle.start, review.period)


def build_review(
    store: StateStore,
    settings: Settings,
    *,
    today: date,
    selection: Sequence[str],
    resolve: Resolver | None = None,
    carried: Sequence[Material] = (),
    last_reviewed: Mapping[str, date] | None = None,
    meetings: MeetingSource | None = None,
    links: RecordLinks | None = None,
    only: Collection[str] | None = None,
    previous: ReviewBuild | None = None,
    charts: bool = True,
) -> ReviewBuild:
    """The cycle, every service as a candidate, and the packs of the selected services.

    `resolve` returns the people the target cannot find; it is asked only about the people of
    the selected services and the configured role holders. `carried`: materials from earlier
    cycles (the previous review, open improvement actions); `last_reviewed`: each service's last
    review date (earlier cycles' review tickets), ranked as "months since the last review".
    `meetings`: asked once, with the selected services, for their review meetings; a service
    it names gets the meeting sections in its pack (a local report asks for none).
    `links`: the source's record URLs, for the packs' breaches and materials (none without).
    `only`: build the packs and charts of these selected services alone (a webhook's cycle):
    only these services, their components, their (and their components') agreements with
    their SLA records, and their CSAT answers and materials are read; the build's services,
    attainments, findings, gaps and candidates are theirs alone (a partial build: the
    candidates ranking, the selection and the portfolio page need a whole one).
    `previous`: the last cycle's build; a selected service whose pack inputs have the same
    fingerprint keeps that build's pack and chart (not built, rendered or hashed again).
    `charts`: draw the charts of the packs built (not reused); without, a built pack has no
    chart in `charts` (a prompted cycle does not upload them: the next poll's build, finding
    no chart to reuse, builds the pack again and draws it).
    """
    review = settings.review
    cycle = current_cycle(settings, today)
    # Packs not frozen yet show data up to the last whole month (frozen ones are not rebuilt).
    cycle = cycle.model_copy(update={"period": live_period(cycle, today, review.period)})
    # A partial build reads the `only` services' rows alone, each by an index (`_skipped`,
    # `_services`, `_agreements`, the SLA tallies of their agreements).
    skipped = _skipped(store, only)
    margin = review.at_risk_margin_percent
    decoded: Decoded | None = None
    if only is None:  # every service, agreement and attainment, decoded again if rows changed
        last = (previous.decoded if previous is not None else None) or Decoded()
        decoded = _whole_inputs(store, cycle.period, margin, last)
        decoded.services_digest, decoded.services, decoded.unresolved = _whole_services(store, last)
        skipped += decoded.unresolved
        services, attainments = _whole_linked(decoded, last, links)
        agreements = decoded.agreements
    else:
        services = tuple(_linked_service(s, links) for s in _services(store, skipped, only))
        agreements = _agreements(store, services)
        of = [a.key for a in agreements]
        unlinked = stored_attainment(store, agreements, cycle.period, margin, agreement_keys=of)
        attainments = _linked_breaches(unlinked, links)
    if decoded is not None:
        summaries = _whole_csat(store, cycle.period, decoded, last)
    else:
        csat = CsatAccumulator(cycle.period)
        for record in _mirrored(store, "csat_response", only):
            csat.add(CsatResponse.model_validate(record.body))
        summaries = csat.summaries()
    # Each service looks only at its own and its components' agreements (not the whole list:
    # that was services x agreements work), in their original order.
    relevant = relevant_agreements(services, agreements)
    findings = {s.key: check_feasibility(s, relevant[s.key]) for s in services}
    skipped_of: dict[str | None, list[SkippedRecord]] = {}
    for entry in skipped:
        skipped_of.setdefault(entry.service_key, []).append(entry)
    chosen = [s for s in services if s.key in selection and (only is None or s.key in only)]
    involved = _people_involved(chosen, settings)
    unresolved = resolve(involved) if resolve is not None and involved else ()
    gaps = {
        s.key: find_gaps(
            s,
            relevant[s.key],
            csat_responses=summaries[s.key].responses if s.key in summaries else 0,
            skipped=_skipped_for(skipped, skipped_of, s.key),
            unresolved=[p for p in unresolved if _involved(p, s)],
        )
        for s in services
    }
    grouped = by_service(attainments, agreements)
    candidates = rank_candidates(
        services,
        grouped,
        today=today,
        findings=[f for fs in findings.values() for f in fs],
        csat=summaries,
        last_reviewed=last_reviewed,
    )
    build = ReviewBuild(cycle, services, agreements, candidates, findings, gaps, summaries)
    build.decoded = decoded
    if only is None:  # a partial build cannot tell another service's records from orphans
        build.unplaced = unplaced_gaps(skipped, {s.key for s in services})
    build.attainments, build.last_reviewed = dict(attainments), dict(last_reviewed or {})
    # Only the packs show materials: those of other services are not validated nor linked.
    wanted = {s.key for s in chosen}
    materials = [
        _linked(Material.model_validate(r.body), links)
        for r in _mirrored(store, "material", only)
        if r.body.get("service_key") in wanted
    ]
    materials += carried  # previous review and its open improvement tickets
    held = meetings(chosen) if meetings is not None and chosen else {}
    materials_of: dict[str | None, list[Material]] = {}
    for material in materials:
        materials_of.setdefault(material.service_key, []).append(material)
    try:  # a failure here drops the charts still queued
        for service in chosen:
            own = materials_of.get(service.key, [])
            meeting = held.get(service.key)
            print_ = review_fingerprint(
                build, service, attainments, own, meeting, margin=margin,
                agreements=relevant[service.key],
            )  # fmt: skip
            build.fingerprints[service.key] = print_
            if previous is not None and _reusable(previous, service.key, print_):
                build.packs[service.key] = previous.packs[service.key]
                build.charts[service.key] = previous.charts[service.key]
                continue
            _add_pack(build, service, attainments, own, meeting, margin=margin, chart=charts)
            build.rebuilt.append(service.key)
    except BaseException:
        build.charts.settle(drop_queued=True)
        raise
    build.charts.close()
    return build


def _whole_inputs(store: StateStore, period: ReviewPeriod, margin: float, last: Decoded) -> Decoded:
    """Every agreement and its attainment over `period`, as `_agreements` and
    `stored_attainment` make them, reusing `last`'s where the stored rows they come from (the
    agreements; the SLA tallies and breached records of the period) digest the same."""
    digest = _digest(store.mirrored_texts("agreement"))  # as they stream; decoded if changed
    found = Decoded(agreements_digest=digest)
    if digest == last.agreements_digest:
        found.agreements = last.agreements
    else:
        found.agreements = tuple(  # from the text: no dict in between
            Agreement.model_validate_json(t) for _, t in store.mirrored_texts("agreement")
        )
    tallies = store.sla_tallies(period.start, period.end)
    inputs = (digest, period.model_dump_json(), repr(margin))
    rows = ((t.agreement_key, t.month, t.measured, t.breached) for t in tallies)  # astuple's
    # The breached records are digested as they stream, and read again (decoded) only when the
    # digest changed: a million SLA records hold some 100,000 breached bodies, and kept in a
    # list for both uses they were the cold sync's peak memory.
    breached = store.breached_sla_texts(period.start, period.end)
    found.attainment_digest = _digest(itertools.chain([inputs], rows, breached))
    if found.attainment_digest == last.attainment_digest:
        found.attainments = last.attainments
        return found
    bodies = (
        (agreement_key, body)  # decoded from the text by `_attainment`, if of an agreement
        for _, agreement_key, body in store.breached_sla_texts(period.start, period.end)
    )
    found.attainments = _attainment(found.agreements, period, margin, tallies, bodies)
    return found


def _whole_linked(
    found: Decoded, last: Decoded, links: RecordLinks | None
) -> tuple[tuple[Service, ...], dict[str, Attainment]]:
    """Every service and attainment with its records' links; `last`'s when they were linked
    from the same services and attainments (reused, not decoded again) with the same links:
    the same objects again, so that what is planned from them is seen to be the same."""
    sources = (found.services, found.attainments, links)
    kept = last.linked_from
    if kept is not None and kept[0] is sources[0] and kept[1] is sources[1] and kept[2] == links:
        found.linked_services, found.linked_attainments = (
            last.linked_services,
            last.linked_attainments,
        )
    else:
        found.linked_services = tuple(_linked_service(s, links) for s in found.services)
        found.linked_attainments = _linked_breaches(found.attainments, links)
    found.linked_from = sources
    return found.linked_services, found.linked_attainments


def _whole_csat(
    store: StateStore, period: ReviewPeriod, found: Decoded, last: Decoded
) -> dict[str, CsatSummary]:
    """Every service's CSAT summary over `period`; `last`'s if the answers' stored rows (and the
    period) digest the same."""
    # Digested as they stream, read again only when changed: the answers grow with the tasks
    # (about 130,000 beside a million SLA records), too many to hold as texts.
    texts = store.mirrored_texts("csat_response")
    found.csat_digest = _digest(itertools.chain([(period.model_dump_json(),)], texts))
    if found.csat_digest == last.csat_digest:
        found.csat = last.csat
        return found.csat
    csat = CsatAccumulator(period)
    for _, text in store.mirrored_texts("csat_response"):
        csat.add(CsatResponse.model_validate_json(text))
    found.csat = csat.summaries()
    return found.csat


def _whole_services(
    store: StateStore, last: Decoded
) -> tuple[str, tuple[Service, ...], tuple[SkippedRecord, ...]]:
    """Every service with its people and components (`_services`), and the references that
    assembling them could not resolve; `last`'s if the stored rows digest the same."""
    streams = ("person", "service", "component")
    texts = {stream: list(store.mirrored_texts(stream)) for stream in streams}
    digest = _digest([(stream, *row) for stream in streams for row in texts[stream]])
    if digest == last.services_digest:
        return digest, last.services, last.unresolved

    people = {key: Person.model_validate_json(text) for key, text in texts["person"]}
    drafts = [ServiceDraft.model_validate_json(text) for _, text in texts["service"]]
    components = [ComponentDraft.model_validate_json(text) for _, text in texts["component"]]
    unresolved: list[SkippedRecord] = []
    services = assemble(drafts, components, people, skipped=unresolved)
    return digest, services, tuple(unresolved)


def _digest(rows: Iterable[Sequence[object]]) -> str:
    """A digest of rows of plain values (their text and order)."""
    digest = hashlib.sha256()
    update = digest.update
    # Each value followed by a unit separator, each row by a record separator: one update per
    # row, not two per value (an idle cycle digests every agreement, tally and answer)
    for row in rows:
        update(f"{_UNIT.join(map(str, row))}{_UNIT}{_RECORD}".encode() if row else _EMPTY)
    return digest.hexdigest()


_UNIT, _RECORD, _EMPTY = "\x1f", "\x1e", b"\x1e"


def _skipped(store: StateStore, only: Collection[str] | None) -> list[SkippedRecord]:
    """The skipped records (and read problems) of every service, or those of the `only`
    services and of no service (all their gaps show), in key order."""
    if only is None:
        rows: Iterable[MirrorRecord] = store.mirrored(SKIPPED)
    else:
        rows = store.mirrored_of(SKIPPED, only, unplaced=True)
    return [SkippedRecord.model_validate(r.body) for r in rows]


def _agreements(store: StateStore, services: Sequence[Service]) -> tuple[Agreement, ...]:
    """The agreements of these services and their components (their packs and feasibility
    checks read both), in key order; the others are not even read: the store returns the rows
    whose body names one of these keys (`mirrored_mentioning`), checked here field by field."""
    keys = {s.key for s in services}
    components = {c.key for s in services for c in s.components}
    rows = _mentioning(store, "agreement", [t for k in keys | components for t in _quoted(k)])
    return tuple(
        Agreement.model_validate(r.body)
        for r in rows
        if r.body.get("service_key") in keys or r.body.get("component_key") in components
    )


def _mirrored(
    store: StateStore, stream: str, only: Collection[str] | None
) -> Iterator[MirrorRecord]:
    """The stream's mirrored records, or only those of the `only` services."""
    if only is None:
        yield from store.mirrored(stream)
        return
    for service_key in sorted(set(only)):
        yield from store.mirrored(stream, service_key=service_key)


def relevant_agreements(
    services: Sequence[Service], agreements: Sequence[Agreement]
) -> dict[str, list[Agreement]]:
    """Per service: its own agreements (no component) and its components' ones, in the order
    of `agreements` (all a service's feasibility, gaps and pack look at)."""
    own: dict[str, list[int]] = {}
    underlying: dict[str, list[int]] = {}
    for index, agreement in enumerate(agreements):
        if agreement.component_key:
            underlying.setdefault(agreement.component_key, []).append(index)
        elif agreement.service_key:
            own.setdefault(agreement.service_key, []).append(index)
    found: dict[str, list[Agreement]] = {}
    for service in services:
        indexes = set(own.get(service.key, ()))
        for component in service.components:
            indexes.update(underlying.get(component.key, ()))
        found[service.key] = [agreements[i] for i in sorted(indexes)]
    return found


def _skipped_for(
    skipped: Sequence[SkippedRecord],
    by_service: Mapping[str | None, Sequence[SkippedRecord]],
    service_key: str,
) -> list[SkippedRecord]:
    """The service's skipped records and those of no service, in their original order."""
    if not by_service.get(service_key):
        return list(by_service.get(None, ()))
    return [k for k in skipped if k.service_key in (service_key, None)]


def _reusable(previous: ReviewBuild, service_key: str, fingerprint: str) -> bool:
    return (
        previous.fingerprints.get(service_key) == fingerprint
        and service_key in previous.packs
        and service_key in previous.charts
    )


def review_fingerprint(
    build: ReviewBuild,
    service: Service,
    attainments: Mapping[str, Attainment],
    materials: Sequence[Material],
    meeting: Meeting | None,
    *,
    margin: float,
    agreements: Sequence[Agreement] | None = None,
) -> str:
    """A digest of everything one service's pack and chart are made from: the cycle and its
    period, the service (components, people), its and its components' agreements and their
    attainment, findings, gaps (skipped records, unresolved people), CSAT, materials (carried
    ones included), the meeting as its ticket shows it, and the at-risk margin.
    `agreements`: the service's relevant ones if known (`relevant_agreements`)."""
    if agreements is None:
        agreements = relevant_agreements([service], build.agreements)[service.key]
    digest = hashlib.sha256()
    digest.update(f"{build.cycle.id}|{margin}|".encode())
    parts: list[BaseModel | None] = [build.cycle.period, service, *agreements]
    parts += [attainments.get(a.key) for a in agreements]
    parts += [*build.findings.get(service.key, ()), *build.gaps.get(service.key, ())]
    parts += [build.csat.get(service.key), *materials, meeting]
    for part in parts:
        digest.update(b"\x00" if part is None else part.__pydantic_serializer__.to_json(part))
        digest.update(b"\x1f")
    return digest.hexdigest()


def stored_attainment(
    store: StateStore,
    agreements: Sequence[Agreement],
    period: ReviewPeriod,
    margin: float,
    *,
    agreement_keys: Collection[str] | None = None,
) -> dict[str, Attainment]:
    """Attainment of every agreement over `period`, from the mirror without reading every SLA
    record: counts per agreement and month from one GROUP BY on the `decided` column, and only
    breached records' bodies (priorities, the worst breaches). Same result as feeding every
    record to `AttainmentAccumulator.add` (tests/sync/test_stored_attainment.py).
    `agreement_keys`: read only these agreements' records (those of `agreements`: a partial
    build); None reads every agreement's (records of unknown agreements count as ignored)."""
    start, end = period.start, period.end
    tallies = store.sla_tallies(start, end, agreement_keys=agreement_keys)
    breached = store.breached_sla(start, end, agreement_keys=agreement_keys)
    bodies = ((record.agreement_key, record.body) for record in breached)
    return _attainment(agreements, period, margin, tallies, bodies)


def _attainment(
    agreements: Sequence[Agreement],
    period: ReviewPeriod,
    margin: float,
    tallies: Iterable[SlaTally],
    breached: Iterable[tuple[str | None, dict[str, Any] | str]],
) -> dict[str, Attainment]:
    """Attainment from the store's tallies and the breached records' (agreement key, body as
    a dict or as its stored JSON text)."""
    accumulator = AttainmentAccumulator(agreements, period, at_risk_margin_percent=margin)
    for tally in tallies:
        accumulator.add_counts(tally.agreement_key, tally.month, tally.measured, tally.breached)
    for agreement_key, body in breached:
        if agreement_key in accumulator.agreements:
            record = (
                SlaRecord.model_validate_json(body)
                if isinstance(body, str)
                else SlaRecord.model_validate(body)
            )
            accumulator.add_breach(record)
    return accumulator.results()


def _add_pack(
    build: ReviewBuild,
    service: Service,
    attainments: Mapping[str, Attainment],
    materials: Sequence[Material],
    meeting: Meeting | None,
    *,
    margin: float,
    chart: bool = True,
) -> None:
    name = chart_name(service.key)
    build.packs[service.key] = build_pack(
        service,
        build.cycle.period,
        build.agreements,
        attainments,
        findings=build.findings[service.key],
        gaps=build.gaps[service.key],
        materials=materials,
        csat=build.csat.get(service.key),
        chart_name=name,
        meeting=meeting,
    )
    if not chart:
        return
    series = [
        (agreement_label(a), attainments[a.key])
        for a in build.agreements
        if a.service_key == service.key and not a.component_key and a.key in attainments
    ]
    title, period = f"{service.name}: monthly attainment", build.cycle.period
    build.charts.draw(
        service.key,
        lambda: attainment_chart(title, series, at_risk_margin_percent=margin, period=period),
    )


def _linked_breaches(
    attainments: dict[str, Attainment], links: RecordLinks | None
) -> dict[str, Attainment]:
    """Attainments whose kept breaches link to their record in the source."""
    if links is None:
        return attainments
    return {
        key: result.model_copy(
            update={"top_breaches": tuple(_linked(b, links) for b in result.top_breaches)}
        )
        if result.top_breaches
        else result  # nothing to link (most agreements): not copied
        for key, result in attainments.items()
    }


def _linked_service(service: Service, links: RecordLinks | None) -> Service:
    """`service` and its components with the URLs of their records (CMDB CIs), and the people
    holding their roles with the URLs of theirs (ServiceNow `sys_user`)."""
    if links is None:
        return service
    components = tuple(
        c.model_copy(
            update={"source": _linked_ref(c.source, links), "owner": _linked_person(c.owner, links)}
        )
        for c in service.components
    )
    source = _linked_ref(service.source, links)
    people = {
        role: _linked_person(getattr(service, role), links)
        for role in ("owner", "business_owner", "lt_sponsor")
    }
    return service.model_copy(update={"source": source, "components": components, **people})


def _linked_person(person: Person | None, links: RecordLinks) -> Person | None:
    if person is None or person.source is None:
        return person
    return person.model_copy(update={"source": _linked_ref(person.source, links)})


def _linked_ref(ref: SourceRef | None, links: RecordLinks) -> SourceRef | None:
    if ref is None or ref.url:
        return ref
    url = links(ref)
    return ref.model_copy(update={"url": url}) if url else ref


Linkable = TypeVar("Linkable", Material, Breach)


def _linked(item: Linkable, links: RecordLinks | None) -> Linkable:
    """`item` with the URL of its source record, unless it has one or the source gives none."""
    if links is None or item.url or item.source is None:
        return item
    url = links(item.source)
    return item.model_copy(update={"url": url}) if url else item


def unplaced_gaps(skipped: Sequence[SkippedRecord], service_keys: set[str]) -> tuple[Gap, ...]:
    """Skipped records and read problems of no known service, as cycle-wide gaps by stream."""
    orphans = [
        s.model_copy(update={"service_key": None})
        for s in skipped
        if s.service_key is None or s.service_key not in service_keys
    ]
    return tuple(skipped_gaps(None, orphans))


def _services(
    store: StateStore, skipped: list[SkippedRecord], only: Collection[str]
) -> tuple[Service, ...]:
    """The `only` services (a whole build's: `_whole_services`): their drafts, their
    components (and those of no service, whose unresolved owners are every service's gaps)
    and the people these name are read alone, by key or by the component bodies naming them
    (`mirrored_mentioning`)."""
    wanted = set(only)
    drafts = [ServiceDraft.model_validate(r.body) for r in _service_rows(store, wanted)]
    texts = [t for k in wanted for t in _quoted(k)] + ['"service_keys":[]', '"service_keys": []']
    components = [
        ComponentDraft.model_validate(r.body)
        for r in _mentioning(store, "component", texts)
        if not r.body.get("service_keys") or set(r.body["service_keys"]) & wanted
    ]
    refs = [ref for d in drafts for ref in (d.owner, d.business_owner, d.lt_sponsor)]
    named = {ref.id for ref in [*refs, *(c.owner for c in components)] if ref and ref.id}
    people = {r.key: Person.model_validate(r.body) for r in store.mirrored_keys("person", named)}
    return assemble(drafts, components, people, skipped=skipped)


def _service_rows(store: StateStore, only: set[str]) -> list[MirrorRecord]:
    """The mirrored service records of the `only` services, in key order: by their record
    keys (a service's key is its record's sys_id); if that does not find them all (a mapping
    that keys services otherwise, a service not mirrored), the whole stream, filtered."""
    rows = [r for r in store.mirrored_keys("service", only) if r.body.get("key", r.key) in only]
    if {r.body.get("key", r.key) for r in rows} == only:
        return rows
    return [r for r in store.mirrored("service") if r.body.get("key", r.key) in only]


# Up to this many texts the store matches a stream's bodies against them (a few ms each, over
# 16,000 agreements); beyond (a burst of announced services), one read of the whole stream.
MENTIONS_MATCHED = 12


def _mentioning(store: StateStore, stream: str, texts: Sequence[str]) -> Iterable[MirrorRecord]:
    """The stream's records whose body may name one of `texts` (a superset: the caller checks
    the decoded body)."""
    if len(set(texts)) <= MENTIONS_MATCHED:
        return store.mirrored_mentioning(stream, texts)
    return store.mirrored(stream)


def _quoted(key: str) -> set[str]:
    """How a key appears in a record's JSON body as a string value (written by pydantic, or
    by `json.dumps` with its ASCII escapes)."""
    return {json.dumps(key), json.dumps(key, ensure_ascii=False)}


def _people_involved(services: Sequence[Service], settings: Settings) -> list[Person]:
    """Everyone the selected services' tickets go to or mention, once each (by email)."""
    holders = role_holders(settings)
    people = [holders.slm_process_owner, holders.service_catalog_owner, holders.default_lt_sponsor]
    people += holders.lt_members
    for service in services:
        people += [service.owner, service.business_owner, service.lt_sponsor]
        people += [c.owner for c in service.components]
    unique = {p.email.lower(): p for p in people if p is not None and p.email}
    return list(unique.values())


def _involved(person: Person, service: Service) -> bool:
    """Whether an unresolved person holds a role on this service."""
    holders = [service.owner, service.business_owner, service.lt_sponsor]
    holders += [c.owner for c in service.components]
    email = (person.email or "").lower()
    return any(h is not None and (h.email or "").lower() == email for h in holders)
