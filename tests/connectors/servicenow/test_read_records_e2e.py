"""Records read by sys_id (a webhook's read) are the rows the stream read gives, in one call.

`ServiceNowSource.read_records` serves the prompted cycle: the records a webhook names, read
with the stream's own table, fields (dot-walks included) and filter, so the mapping makes the
same entity of them; one `sys_idIN` call per `lookup_batch_size`; no cursor on the pages.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors import Stream
from connectors.errors import ConnectorError
from connectors.servicenow import ServiceNowSource
from sandbox import Sandbox


def _stream_rows(source: ServiceNowSource, stream: Stream) -> dict[str, dict[str, object]]:
    return {str(r["sys_id"]): dict(r) for p in source.read(stream) for r in p.records}


def test_sla_records_by_sys_id_are_the_stream_rows_with_their_dot_walks(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Three task_sla records by sys_id: one call, the same rows (dot-walked task fields and
    all) the stream read gives, and no cursor."""
    rows = _stream_rows(make_source(sn_sandbox), Stream.SLA_RECORDS)
    wanted = sorted(rows)[:3]
    source = make_source(sn_sandbox)
    pages = list(source.read_records(Stream.SLA_RECORDS, wanted))
    assert source.guard.requests_made == 1
    assert [p.cursor for p in pages] == [None]
    got = {str(r["sys_id"]): dict(r) for r in pages[0].records}
    assert got == {key: rows[key] for key in wanted}
    assert all("task.business_service" in row for row in got.values())


def test_a_burst_is_read_in_one_call_per_batch(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """250 records with lookup_batch_size 100: three calls, every record once."""
    rows = _stream_rows(make_source(sn_sandbox), Stream.SLA_RECORDS)
    wanted = sorted(rows)[:250]
    source = make_source(sn_sandbox, lookup_batch_size=100)
    pages = list(source.read_records(Stream.SLA_RECORDS, wanted))
    assert source.guard.requests_made == 3
    assert sorted(str(r["sys_id"]) for p in pages for r in p.records) == wanted


def test_a_service_comes_with_the_people_it_names_and_offerings_stay_out(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A service by sys_id: its row as the stream reads it, then a person page of its owner
    and manager; an offering's sys_id (the service filter leaves it out) reads nothing."""
    source = make_source(sn_sandbox)
    services = _stream_rows(source, Stream.SERVICES)
    service = sorted(services)[0]
    pages = list(source.read_records(Stream.SERVICES, [service]))
    assert [p.stream for p in pages] == [Stream.SERVICES, Stream.PEOPLE]
    assert [dict(r) for r in pages[0].records] == [services[service]]
    owner = services[service]["owned_by"]
    assert owner in {r["sys_id"] for r in pages[1].records}
    offering = next(
        row["sys_id"]
        for row in sn_sandbox.servicenow.store.rows("cmdb_ci_service")
        if row["sys_id"] not in services
    )
    assert [p.records for p in source.read_records(Stream.SERVICES, [offering])] == [[]]


def test_unknown_or_hidden_records_are_left_out(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A sys_id no record has reads an empty page (an ACL-hidden row looks the same)."""
    source = make_source(sandbox_small)
    pages = list(source.read_records(Stream.SLA_RECORDS, ["0" * 32]))
    assert [list(p.records) for p in pages] == [[]]


def test_only_sys_ids_and_plain_streams_are_read(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A value that is not a sys_id never reaches a query; whole-read streams are refused."""
    source = make_source(sandbox_small)
    with pytest.raises(ConnectorError, match="not a sys_id"):
        list(source.read_records(Stream.SLA_RECORDS, ["x^ORsys_idISNOTEMPTY"]))
    with pytest.raises(ValueError, match="component"):
        list(source.read_records(Stream.COMPONENTS, ["0" * 32]))
    assert source.guard.requests_made == 0
