"""A webhook's partial build (`build_review(only=...)`) makes, for its service, exactly what the
whole build makes, and reads only that service's rows of the mirror (its service record, its
components, the people they name, its and its components' agreements and their SLA records,
its CSAT answers, materials and skipped records, and those of no service): rows are counted as
the store yields them, never time. A ServiceNow stand-in fills the mirror (a dry-run pull),
with a few rows added that only the whole-estate reads would otherwise show."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from review import SkippedRecord
from sandbox import Sandbox
from sync.build import ReviewBuild, build_review, relevant_agreements
from sync.demo import demo_settings
from sync.engine import Engine
from sync.pull import SKIPPED
from sync.state import MirrorRecord, StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@dataclass
class Mirror:
    store: StateStore
    settings: Settings
    services: list[str]
    orphan_component: str = "ci-of-no-service"
    reads: list[tuple[str, MirrorRecord]] = field(default_factory=list)
    tallied: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    tmp = tmp_path_factory.mktemp("partial")
    with Sandbox(seed=7, services=8, sla_records=1200, index_lag_ms=0) as site:
        settings = demo_settings(site, tmp / "data")
        settings.servicenow.clock_skew_seconds = 0
        store = open_store(settings.sync.resolved_state_url())
        Engine.from_settings(settings, store).run_once(dry_run=True)  # the pull fills the mirror
    services = sorted(r.key for r in store.mirrored("service"))
    assert len(services) >= 6
    mirror = Mirror(store, settings, services)
    _add_rows_only_whole_reads_would_show(mirror)
    _count_reads(mirror)
    yield mirror
    store.close()


def _add_rows_only_whole_reads_would_show(mirror: Mirror) -> None:
    """Skipped records of a service, of another one and of none; a component of no service
    whose owner is not in the person stream (every review's gap); an agreement of another
    service whose body quotes one of the first service's components (a body match that the
    field check must drop)."""
    store, first, second = mirror.store, mirror.services[0], mirror.services[1]
    skipped = [
        SkippedRecord(
            stream="sla_record", record_id="x1", reason="no agreement", service_key=first
        ),
        SkippedRecord(
            stream="sla_record", record_id="x2", reason="no agreement", service_key=second
        ),
        SkippedRecord(stream="material", record_id="x3", reason="no service"),
    ]
    rows = [
        MirrorRecord(SKIPPED, f"{s.stream}:{s.record_id}", s.model_dump(mode="json"),
                     service_key=s.service_key)
        for s in skipped
    ]  # fmt: skip
    store.store_page("servicenow", SKIPPED, rows, None)
    orphan: dict[str, Any] = {
        "key": mirror.orphan_component,
        "name": "Orphan CI",
        "owner": {"id": "nobody"},
        "service_keys": [],
    }
    store.store_page(
        "servicenow",
        "component",
        [MirrorRecord("component", mirror.orphan_component, orphan)],
        None,
    )
    component = next(
        r.key for r in store.mirrored("component") if first in r.body.get("service_keys", ())
    )
    decoy = next(r for r in store.mirrored("agreement") if r.body.get("service_key") == second)
    body = {**decoy.body, "key": "decoy-agreement", "name": component}
    store.store_page(
        "servicenow",
        "agreement",
        [MirrorRecord("agreement", "decoy-agreement", body, service_key=second)],
        None,
    )
    assert json.dumps(component) in json.dumps(body)


def _count_reads(mirror: Mirror) -> None:
    """Record every row the store's mirror reads yield, and the agreements tallied."""
    store = mirror.store

    def counted(method: Callable[..., Any]) -> Callable[..., Any]:
        def read(stream: str, *args: Any, **kwargs: Any) -> Iterator[MirrorRecord]:
            for row in method(stream, *args, **kwargs):
                mirror.reads.append((stream, row))
                yield row

        return read

    for name in ("mirrored", "mirrored_keys", "mirrored_of", "mirrored_mentioning"):
        setattr(store, name, counted(getattr(store, name)))
    breached, tallies = store.breached_sla, store.sla_tallies

    def breached_sla(*args: Any, **kwargs: Any) -> Iterator[MirrorRecord]:
        for row in breached(*args, **kwargs):
            mirror.reads.append(("sla_record", row))
            yield row

    def sla_tallies(*args: Any, **kwargs: Any) -> Any:
        found = tallies(*args, **kwargs)
        mirror.tallied += [t.agreement_key for t in found]
        return found

    texts, breached_texts = store.mirrored_texts, store.breached_sla_texts

    def mirrored_texts(stream: str) -> Iterator[tuple[str, str]]:
        for key, text in texts(stream):
            mirror.reads.append((stream, MirrorRecord(stream, key, {})))
            yield key, text

    def breached_sla_texts(*args: Any) -> Iterator[tuple[str, str, str]]:
        for key, agreement, text in breached_texts(*args):
            mirror.reads.append(("sla_record", MirrorRecord("sla_record", key, {})))
            yield key, agreement, text

    store.mirrored_texts = mirrored_texts  # type: ignore[method-assign]
    store.breached_sla_texts = breached_sla_texts  # type: ignore[method-assign,assignment]
    store.breached_sla = breached_sla  # type: ignore[method-assign]
    store.sla_tallies = sla_tallies  # type: ignore[method-assign]


def _build(mirror: Mirror, only: list[str] | None) -> ReviewBuild:
    mirror.reads.clear()
    mirror.tallied.clear()
    return build_review(
        mirror.store,
        mirror.settings,
        today=datetime.now(UTC).date(),
        selection=mirror.services,
        only=only,
    )


def test_a_partial_build_makes_the_whole_builds_review_of_each_service(mirror: Mirror) -> None:
    """Service, agreements (its own and its components'), their attainment, findings, gaps
    (skipped records of the service and of none, the orphan component's owner), CSAT, pack,
    chart and fingerprint: equal, for every service of the estate."""
    whole = _build(mirror, None)
    relevant = relevant_agreements(whole.services, whole.agreements)
    by_key = {s.key: s for s in whole.services}
    first = mirror.services[0]
    assert any(g.kind == "skipped_records" for g in whole.gaps[first]), "the added rows show"
    for service in mirror.services:
        partial = _build(mirror, [service])
        assert partial.services == (by_key[service],)
        assert list(partial.agreements) == relevant[service]
        assert any(a.component_key for a in partial.agreements) or service != first
        assert partial.attainments == {a.key: whole.attainments[a.key] for a in relevant[service]}
        assert partial.findings == {service: whole.findings[service]}
        assert partial.gaps == {service: whole.gaps[service]}
        assert partial.csat.get(service) == whole.csat.get(service)
        assert partial.packs == {service: whole.packs[service]}
        assert partial.charts == {service: whole.charts[service]}
        assert partial.fingerprints == {service: whole.fingerprints[service]}


def test_a_partial_build_reads_only_its_services_rows(mirror: Mirror) -> None:
    """Every row the partial build reads from the mirror is the service's (or of no service),
    and its agreements alone are tallied; the whole build reads many times more."""
    service = mirror.services[0]
    whole = _build(mirror, None)
    whole_reads = len(mirror.reads)
    partial = _build(mirror, [service])
    drafts = [r for s, r in mirror.reads if s == "service"]
    components = {r.key: r.body for s, r in mirror.reads if s == "component"}
    agreements = {a.key for a in partial.agreements}
    own = {c.key for c in partial.services[0].components}
    assert [r.key for r in drafts] == [service]
    assert set(components) == own | {mirror.orphan_component}
    named = {
        (ref or {}).get("id")
        for body in [drafts[0].body, *components.values()]
        for ref in (body.get("owner"), body.get("business_owner"), body.get("lt_sponsor"))
    }
    for stream, row in mirror.reads:
        if stream == "person":
            assert row.key in named, row.key
        elif stream == "agreement":  # the decoy quotes a component: read, then dropped
            mine = row.body.get("service_key") == service or row.body.get("component_key") in own
            assert mine or row.key == "decoy-agreement", row.body
        elif stream == "sla_record":
            assert row.agreement_key in agreements
        elif stream == SKIPPED:
            assert row.service_key in (service, None)
        elif stream in ("csat_response", "material"):
            assert row.service_key == service
        else:
            assert stream in ("service", "component"), stream
    assert set(mirror.tallied) <= agreements and mirror.tallied
    assert {s for s, _ in mirror.reads} >= {"service", "component", "agreement", "person"}
    assert len(mirror.reads) * 5 < whole_reads, (len(mirror.reads), whole_reads)
    assert len(whole.services) == len(mirror.services)


def test_the_burst_of_many_services_reads_the_same_reviews(mirror: Mirror) -> None:
    """Many announced services at once (more body texts than the store matches one by one):
    the same packs as the whole build."""
    whole = _build(mirror, None)
    partial = _build(mirror, mirror.services)
    assert partial.packs == whole.packs
    assert partial.fingerprints == whole.fingerprints


def test_no_chart_is_drawn_without_charts(mirror: Mirror, tmp_path: Path) -> None:
    """A prompted cycle's build (`charts=False`) builds the pack alone."""
    service = mirror.services[0]
    built = build_review(
        mirror.store,
        mirror.settings,
        today=datetime.now(UTC).date(),
        selection=mirror.services,
        only=[service],
        charts=False,
    )
    assert list(built.packs) == [service] and built.charts == {}
    assert built.rebuilt == [service]


def test_a_whole_build_decodes_again_only_the_rows_that_changed(mirror: Mirror) -> None:
    """A whole build with the last one as `previous` reuses its services, agreements and
    attainment when their stored rows are the same (an idle cycle), and makes them anew from a
    changed SLA record, agreement or person: always what a build without `previous` makes."""
    store, today = mirror.store, datetime.now(UTC).date()

    def build(previous: ReviewBuild | None) -> ReviewBuild:
        return build_review(
            store, mirror.settings, today=today, selection=mirror.services, previous=previous
        )

    first = build(None)
    idle = build(first)
    assert first.decoded is not None and idle.decoded is not None
    assert idle.decoded.agreements is first.decoded.agreements, "not decoded again"
    assert idle.decoded.attainments is first.decoded.attainments, "not computed again"
    assert idle.decoded.services is first.decoded.services, "not assembled again"
    assert idle.gaps == first.gaps, "the references assembling found unresolved, kept"
    assert idle.attainments == first.attainments and idle.packs == first.packs
    met = next(r for r in store.mirrored("sla_record") if not r.breached and r.agreement_key)
    flipped = {**met.body, "breached": True}
    changed = MirrorRecord("sla_record", met.key, flipped, service_key=met.service_key,
                           agreement_key=met.agreement_key, breached=True)  # fmt: skip
    original = MirrorRecord("sla_record", met.key, met.body, service_key=met.service_key,
                            agreement_key=met.agreement_key, breached=False)  # fmt: skip
    agreement = next(r for r in store.mirrored("agreement") if r.key == met.agreement_key)
    try:
        store.store_page("servicenow", "sla_record", [changed], None)
        after = build(idle)
        assert after.decoded is not None
        assert after.decoded.agreements is idle.decoded.agreements
        assert after.decoded.services is idle.decoded.services
        assert after.attainments == build(None).attainments
        assert after.attainments[agreement.key] != idle.attainments[agreement.key]
        target = {**agreement.body, "target_percent": 12.5}
        store.store_page(
            "servicenow", "agreement", [MirrorRecord("agreement", agreement.key, target)], None
        )
        retargeted = build(after)
        assert retargeted.decoded is not None
        assert retargeted.decoded.agreements is not after.decoded.agreements
        assert retargeted.attainments[agreement.key].target_percent == 12.5
        assert retargeted.attainments == build(None).attainments
        person = next(iter(store.mirrored("person")))
        renamed = MirrorRecord("person", person.key, {**person.body, "name": "Someone Else"})
        store.store_page("servicenow", "person", [renamed], None)
        try:
            named = build(retargeted)
            assert named.decoded is not None
            assert named.decoded.services is not retargeted.decoded.services
            assert named.services == build(None).services != retargeted.services
        finally:
            store.store_page("servicenow", "person", [person], None)
    finally:
        store.store_page("servicenow", "sla_record", [original], None)
        store.store_page("servicenow", "agreement", [agreement], None)
    assert build(None).attainments == first.attainments
