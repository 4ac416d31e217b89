"""The ServiceNow source on a stock instance: CSDM services, SPM targets, knowledge by CI, with
`glide.invalid_query.returns_no_rows` on (a query naming a missing field would return nothing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import requests
from structlog.testing import capture_logs

from connectors import Stream
from connectors.servicenow import ServiceNowSource
from mapping import load_mappings
from review import Agreement, Material
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def stock() -> Iterator[Sandbox]:
    """A small stock instance with glide.invalid_query.returns_no_rows=true."""
    with Sandbox(seed=5, services=6, sla_records=200, now=FIXED_NOW) as running:
        running.knobs.update({"invalid_query_returns_no_rows": True})
        yield running


def _rows(source: ServiceNowSource, stream: Stream) -> list[dict[str, object]]:
    return [r for page in source.read(stream) for r in page.records]


def test_agreements_are_read_with_their_commitment_targets(
    stock: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Every contract_sla maps (none skipped) with the percentage and subject of its SPM
    commitment, through the shipped mapping."""
    rows = _rows(make_source(stock), Stream.AGREEMENTS)
    result = load_mappings("servicenow").map("agreement", rows)
    seeded = {a.sys_id: a for a in stock.estate.agreements}
    assert result.skipped == []
    agreements = result.of(Agreement)
    assert {a.key for a in agreements} == set(seeded)
    for agreement in agreements:
        seed = seeded[agreement.key]
        assert agreement.target_percent == float(seed.target_percentage)
        assert agreement.metric == seed.metric
        subject = agreement.service_key if seed.type == "SLA" else agreement.component_key
        assert subject == seed.applies_to


def test_without_spm_the_configured_default_per_type_applies(
    stock: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """On an instance without Service Portfolio Management (its tables answer "Invalid
    table"), targets come from servicenow.default_targets by agreement type, logged once;
    subjects from the SLA definition's condition."""
    for table in ("service_commitment", "service_offering_commitment"):
        del stock.servicenow.store.tables[table]
    source = make_source(stock, default_targets={"SLA": 95, "OLA": 97, "Underpinning contract": 99})
    with capture_logs() as logs:
        rows = _rows(source, Stream.AGREEMENTS)
    assert [e["event"] for e in logs].count("servicenow.spm_absent") == 1
    assert {r["slm_target_source"] for r in rows} == {
        f"servicenow.default_targets.{t}" for t in ("SLA", "OLA", "Underpinning contract")
    }
    result = load_mappings("servicenow").map("agreement", rows)
    targets = {"SLA": 95.0, "OLA": 97.0, "Underpinning contract": 99.0}
    seeded = {a.sys_id: a for a in stock.estate.agreements}
    for agreement in result.of(Agreement):
        seed = seeded[agreement.key]
        assert agreement.target_percent == targets[seed.type]
        subject = agreement.service_key if seed.type == "SLA" else agreement.component_key
        assert subject == seed.applies_to
    # Availability agreements have no stock `target` and, without SPM, no commitment type.
    assert {s.field for s in result.skipped} <= {"metric"}


def test_csdm_business_and_technical_services_are_read_offerings_are_not(
    stock: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """The default service filter lists cmdb_ci_service and the CSDM business and technical
    services extending it, and no service_offering."""
    rows = _rows(make_source(stock), Stream.SERVICES)
    classes = {str(r["sys_class_name"]) for r in rows}
    assert {"cmdb_ci_service_business", "cmdb_ci_service_technical"} <= classes
    assert "service_offering" not in classes
    assert sorted(str(r["sys_id"]) for r in rows) == sorted(s.sys_id for s in stock.estate.services)


def test_knowledge_and_problems_arrive_through_stock_fields(
    stock: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Knowledge articles (by kb_knowledge.cmdb_ci) and problems arrive with their service,
    although the instance returns no rows for queries naming missing fields."""
    rows = _rows(make_source(stock), Stream.MATERIALS)
    estate = stock.estate
    knowledge = {str(r["sys_id"]): r for r in rows if r["slm_kind"] == "knowledge"}
    assert set(knowledge) == {k.sys_id for k in estate.knowledge}
    assert all(
        knowledge[k.sys_id]["slm_service_id"] == k.business_service for k in estate.knowledge
    )
    assert {str(r["sys_id"]) for r in rows if r["slm_kind"] == "problem"} == {
        p.sys_id for p in estate.problems
    }
    materials = load_mappings("servicenow").map("material", rows)
    assert materials.skipped == [] and len(materials.of(Material)) == len(rows)


def test_the_old_custom_query_returns_nothing_on_such_an_instance(stock: Sandbox) -> None:
    """Why stock fields matter: a knowledge query naming u_business_service matches no row."""

    def articles() -> int:
        response = requests.get(
            f"{stock.servicenow_url}/api/now/table/kb_knowledge",
            params={"sysparm_query": "u_business_serviceISNOTEMPTY", "sysparm_fields": "sys_id"},
            auth=("integration.user", "secret"),
            timeout=10,
        )
        return len(response.json()["result"])

    assert articles() == 0
    stock.knobs.update({"invalid_query_returns_no_rows": False})
    assert articles() == len(stock.estate.knowledge)  # the condition dropped: every row
