"""Assembling services: owners resolved by id or inline, unresolved ones reported as gaps."""

from __future__ import annotations

from structlog.testing import capture_logs

from mapping import ComponentDraft, ServiceDraft, assemble
from review import Person, SkippedRecord


def test_owner_by_id_inline_or_unresolved() -> None:
    """An owner id in the person stream resolves; inline details make a person; else a gap."""
    people = {"u1": Person(email="ann@example.com", name="Ann Lee")}
    drafts = [
        ServiceDraft(key="s1", name="Payroll", owner="u1"),
        ServiceDraft(key="s2", name="Mail", owner={"id": "acc-9", "name": "Bo Chan"}),
        ServiceDraft(key="s3", name="VPN", owner="gone", business_owner=""),
    ]
    skipped: list[SkippedRecord] = []
    with capture_logs() as logs:
        services = assemble(drafts, [], people, skipped=skipped)
    assert [s.owner for s in services] == [people["u1"], Person(name="Bo Chan"), None]
    assert services[2].business_owner is None
    assert [(r.stream, r.record_id, r.field, r.service_key) for r in skipped] == [
        ("service", "s3", "owner", "s3")
    ]
    assert [e["event"] for e in logs] == ["mapping.reference_unresolved"]


def test_components_join_every_service_that_reaches_them() -> None:
    """A component shared by two services appears in both, with its owner resolved."""
    people = {"u2": Person(email="cy@example.com", name="Cy")}
    component = ComponentDraft(key="db", name="db-01", owner="u2", service_keys=("s1", "s2", "s9"))
    services = assemble(
        [ServiceDraft(key="s1", name="A"), ServiceDraft(key="s2", name="B")], [component], people
    )
    assert [[c.key for c in s.components] for s in services] == [["db"], ["db"]]
    assert services[0].components[0].owner == people["u2"]
