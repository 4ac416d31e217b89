"""SPM commitments on a whole read of many agreements: read whole, a page at a time, not looked
up a batch of agreements at a time (a cold read of 16,000 agreements made 644 lookup calls);
the same targets and subjects either way, and an incremental read still looks up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors import Stream
from connectors.base import Cursor
from connectors.servicenow import ServiceNowSource
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
SPM = ("service_commitment", "service_offering_commitment")
DERIVED = ("slm_target_percentage", "slm_target_source", "slm_applies_to", "slm_commitment_type")


@pytest.fixture
def estate() -> Iterator[Sandbox]:
    with Sandbox(seed=5, services=6, sla_records=50, now=FIXED_NOW) as running:
        yield running


def _counted(source: ServiceNowSource) -> Counter[str]:
    """Calls per table (and the queries asked of SPM's) through the source's client."""
    calls: Counter[str] = Counter()
    listing = source.client.list

    def counting(table: str, **kwargs: Any) -> Any:
        calls[table] += 1
        if table in SPM:
            calls[f"{table} IN"] += "IN" in kwargs["query"]
        return listing(table, **kwargs)

    source.client.list = counting  # type: ignore[method-assign]
    return calls


def _derived(source: ServiceNowSource, since: Cursor | None = None) -> dict[str, tuple[Any, ...]]:
    rows = [r for page in source.read(Stream.AGREEMENTS, since=since) for r in page.records]
    return {str(r["sys_id"]): tuple(r[k] for k in DERIVED) for r in rows}


def test_a_whole_read_of_many_agreements_reads_spm_whole(
    estate: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Agreements over several pages: SPM's two tables are read a page at a time (no lookup
    by sys_id), and every agreement gets the target and subject the lookups give."""
    store = estate.servicenow.store.tables
    commitments = [r for r in store["service_commitment"].values() if r.get("sla")]
    links = list(store["service_offering_commitment"].values())
    looked_up = make_source(estate, page_size=10000, lookup_batch_size=5)
    looked_calls = _counted(looked_up)
    expected = _derived(looked_up)
    assert len(expected) > 10 and looked_calls["service_commitment IN"] > 2
    paged = make_source(estate, page_size=10, lookup_batch_size=5)
    calls = _counted(paged)
    assert _derived(paged) == expected
    assert calls["service_commitment IN"] == calls["service_offering_commitment IN"] == 0
    # a call per page until an empty one (an instance's ACLs may shorten any page)
    assert calls["service_commitment"] == -(-len(commitments) // 10) + 1
    assert calls["service_offering_commitment"] == -(-len(links) // 10) + 1
    assert calls["service_commitment"] < looked_calls["service_commitment"]
    # a second whole read reads SPM again (a commitment may have changed since)
    again = Counter(calls)
    _derived(paged)
    assert calls["service_commitment"] == 2 * again["service_commitment"]


def test_an_incremental_read_looks_its_agreements_up(
    estate: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A read from a cursor (a few changed agreements) asks SPM for those alone."""
    source = make_source(estate, page_size=10, lookup_batch_size=5)
    whole = _derived(source)
    calls = _counted(source)
    since = _derived(source, since=Cursor(updated="2000-01-01 00:00:00"))
    assert since == whole
    assert calls["service_commitment IN"] == calls["service_commitment"] > 0


def test_without_spm_a_whole_read_uses_the_defaults(
    estate: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """SPM's tables missing ("Invalid table"): said once, every page gets the default target
    of its type, and nothing more is asked of SPM."""
    for table in SPM:
        del estate.servicenow.store.tables[table]
    source = make_source(estate, page_size=10, default_targets={"SLA": 95, "OLA": 97})
    calls = _counted(source)
    with capture_logs() as logs:
        rows = _derived(source)
    assert [e["event"] for e in logs].count("servicenow.spm_absent") == 1
    assert calls["service_commitment"] == 1
    assert {r[1] for r in rows.values()} <= {
        "servicenow.default_targets.SLA", "servicenow.default_targets.OLA", "",
    }  # fmt: skip


def test_a_whole_read_cut_short_by_an_odd_sys_id_looks_up_instead(
    estate: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A commitment whose sys_id is no sys_id (an imported row) ends the paging (the next page
    cannot be asked for after it): said once, and the pages are looked up, with the targets
    and subjects the look-ups give."""
    expected = _derived(make_source(estate, page_size=10000, lookup_batch_size=5))
    store = estate.servicenow.store
    odd = dict(next(r for r in store.rows("service_commitment") if r.get("sla")))
    store.load("service_commitment", {**odd, "sys_id": "zz-imported-commitment"})
    source = make_source(estate, page_size=10, lookup_batch_size=5)
    calls = _counted(source)
    with capture_logs() as logs:
        assert _derived(source) == expected
    assert [e["event"] for e in logs].count("servicenow.spm_read_cut") == 1
    assert calls["service_commitment IN"] > 0
