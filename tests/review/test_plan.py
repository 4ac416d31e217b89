"""The review plan: the right people on every activity, stable unique keys, one ticket each."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from review import (
    Component,
    Person,
    RaciMatrix,
    RoleHolders,
    Service,
    TicketKind,
    TicketSpec,
    build_plan,
    cycle_for,
    ticket_key,
)

CYCLE = cycle_for(date(2026, 3, 1), "yearly", "01-15")


def _p(name: str) -> Person:
    return Person(email=f"{name.lower().replace(' ', '.')}@example.com", name=name)


PO, CATALOG, LT1, LT2 = _p("Bob Black"), _p("Kim Catalog"), _p("Troy Travis"), _p("Lena Lead")
OWNER, SPONSOR, CI_A, CI_B = _p("Sam Owner"), _p("Liam Sponsor"), _p("Cora Ci"), _p("Cyril Ci")
HOLDERS = RoleHolders(
    slm_process_owner=PO,
    service_catalog_owner=CATALOG,
    lt_members=(LT1, LT2),
    default_lt_sponsor=LT1,
)
SERVICE = Service(
    key="svc-payroll",
    name="Payroll",
    tier=1,
    owner=OWNER,
    lt_sponsor=SPONSOR,
    components=(
        Component(key="c2", name="payroll-db", owner=CI_B),
        Component(key="c1", name="payroll-app", owner=CI_A, depends_on=("c2",)),
        Component(key="c3", name="payroll-host", owner=CI_A),
    ),
)
# The seed table, read as people: (assignee, accountable, consulted, informed) per activity; for
# an activity with several R people, of the first R person's sub-task (the others: see below).
EXPECTED = {
    "select_services": (LT1, PO, (LT2,), (CATALOG, OWNER, CI_A, CI_B)),
    "schedule_review": (PO, SPONSOR, (OWNER, CI_A, CI_B), ()),
    "prepare_artifacts": (PO, PO, (OWNER, CI_A, CI_B), ()),
    "participate_review": (PO, PO, (CATALOG,), (SPONSOR,)),
    "propose_improvements": (OWNER, PO, (CI_A, CI_B), (SPONSOR,)),
    "lessons_learned": (PO, PO, (CATALOG, LT1, LT2, OWNER, CI_A, CI_B), ()),
    "update_policies": (PO, PO, (), (CATALOG, LT1, LT2, OWNER, CI_A, CI_B)),
}


@pytest.mark.parametrize("activity_id", list(EXPECTED))
def test_each_seed_activity_gets_exactly_the_people_the_table_implies(
    activity_id: str, matrix: RaciMatrix
) -> None:
    """R = assignee, A = accountable, C consulted, I informed, once each (cycle scope: other R's
    consulted; service scope: other R people have their own sub-task, never consulted)."""
    plan = build_plan(CYCLE, matrix, HOLDERS, [SERVICE], [SERVICE.key])
    (ticket,) = [t for t in plan.tickets if t.key.endswith(f":{activity_id}")]
    assignee, accountable, consulted, informed = EXPECTED[activity_id]
    assert ticket.assignee == assignee
    assert ticket.accountable == accountable
    assert ticket.consulted == consulted
    assert ticket.informed == informed
    offset = matrix.activity(activity_id).due_offset_days or 0
    assert ticket.due == CYCLE.opens + timedelta(days=offset)


def test_one_person_in_several_roles_gets_one_assignment(matrix: RaciMatrix) -> None:
    """The owner who also owns a CI and sponsors is listed once, never as their own consultee."""
    service = SERVICE.model_copy(
        update={"lt_sponsor": PO, "components": (Component(key="c", name="db", owner=OWNER),)}
    )
    plan = build_plan(CYCLE, matrix, HOLDERS, [service], [service.key])
    by_activity = {t.key.rsplit(":", 1)[1]: t for t in plan.tickets}
    schedule = by_activity["schedule_review"]
    assert (schedule.assignee, schedule.accountable, schedule.consulted) == (PO, PO, (OWNER,))
    participate = by_activity["participate_review"]
    assert participate.consulted == (CATALOG,) and participate.informed == ()
    owners_part = by_activity["service_level_manager"]
    assert owners_part.assignee == OWNER
    assert owners_part.responsible_roles == ("service_level_manager", "ci_owner")
    propose = by_activity["propose_improvements"]
    assert (propose.assignee, propose.consulted, propose.informed) == (OWNER, (), ())


def test_plan_shape_cycle_then_reviews_with_parents_and_labels(matrix: RaciMatrix) -> None:
    """One cycle ticket with 3 sub-tasks, then per selected service a review with 4 activities
    as 7 sub-tasks (Participate: process owner, service owner, two CI owners)."""
    other = SERVICE.model_copy(update={"key": "svc-crm", "name": "CRM"})
    plan = build_plan(CYCLE, matrix, HOLDERS, [SERVICE, other], [other.key, SERVICE.key])
    kinds = [(t.kind, t.parent_key) for t in plan.tickets]
    assert kinds[0] == (TicketKind.CYCLE, None)
    assert [t.key for t in plan.tickets[:4]] == [
        "slm:2026:cycle",
        "slm:2026:cycle:select_services",
        "slm:2026:cycle:lessons_learned",
        "slm:2026:cycle:update_policies",
    ]
    reviews = [t for t in plan.tickets if t.kind is TicketKind.REVIEW]
    assert [t.key for t in reviews] == ["slm:2026:svc-crm:review", "slm:2026:svc-payroll:review"]
    assert all(t.parent_key == "slm:2026:svc-crm:review" for t in plan.tickets[5:12])
    assert plan.tickets[12].key == "slm:2026:svc-payroll:review"
    assert all("slm-sync" in t.labels and t.key in t.labels for t in plan.tickets)
    assert plan.tickets[0].labels == ("slm-sync", "slm:2026:cycle"), "no select labels of ours"


# "cycle" is the one service key the fixed key scheme reserves (slm:<cycle>:cycle:<activity>).
SERVICE_KEYS = st.text(min_size=1, max_size=300).filter(lambda key: key != "cycle")


@given(st.lists(SERVICE_KEYS, min_size=1, max_size=6, unique=True))
def test_plan_keys_are_stable_unique_and_label_safe(keys: list[str]) -> None:
    """Any service keys (spaces, carets, 300 chars): stable across runs, distinct, label-safe."""
    from config import load_raci

    matrix = load_raci()
    services = [SERVICE.model_copy(update={"key": key, "name": key}) for key in keys]
    first = build_plan(CYCLE, matrix, HOLDERS, services, keys)
    second = build_plan(CYCLE, matrix, HOLDERS, list(reversed(services)), keys)
    assert [t.key for t in first.tickets] == [t.key for t in second.tickets]
    # per service: review + 4 activities, Participate split over 4 R people (3 more sub-tasks)
    assert len({t.key for t in first.tickets}) == len(first.tickets) == 4 + 8 * len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9:_.-]{1,200}", t.key) for t in first.tickets)


def test_unsafe_or_long_keys_are_hashed() -> None:
    """A key with a space or over 200 characters becomes slm:h:<24 hex> (same input, same hash)."""
    assert ticket_key("2026", "svc 1", "review") == ticket_key("2026", "svc 1", "review")
    assert re.fullmatch(r"slm:h:[0-9a-f]{24}", ticket_key("2026", "svc 1", "review"))
    assert ticket_key("2026", "x" * 200, "review").startswith("slm:h:")
    assert ticket_key("2026-Q3", "svc.1_a-b", "review") == "slm:2026-Q3:svc.1_a-b:review"


def test_missing_role_holders_are_gaps_and_leave_subtasks_unassigned(matrix: RaciMatrix) -> None:
    """Without configured LT members, selection is unassigned and the gap names the LT role."""
    plan = build_plan(CYCLE, matrix, RoleHolders(slm_process_owner=PO), [SERVICE], [])
    select = next(t for t in plan.tickets if t.key.endswith(":select_services"))
    assert select.assignee is None and select.accountable == PO
    subjects = {g.subject for g in plan.gaps}
    assert {"LT", "Service Catalog Owner"} <= subjects
    assert len([g for g in plan.gaps if g.subject == "LT"]) == 1


def _participate(tickets: tuple[TicketSpec, ...]) -> list[TicketSpec]:
    """The Participate sub-tasks of a one-service plan, in plan order."""
    return [t for t in tickets if t.activity_id == "participate_review"]


def test_every_r_person_of_participate_gets_their_own_subtask(matrix: RaciMatrix) -> None:
    """Process owner, service owner and each CI owner: one assigned sub-task each, the first
    on today's key; the A, C and I are the same on every part; titles say whose part it is."""
    plan = build_plan(CYCLE, matrix, HOLDERS, [SERVICE], [SERVICE.key])
    parts = _participate(plan.tickets)
    assert [t.assignee for t in parts] == [PO, OWNER, CI_A, CI_B]  # CI owners by name
    base = "slm:2026:svc-payroll:participate_review"
    assert [t.key for t in parts[:2]] == [base, f"{base}:service_level_manager"]
    assert all(re.fullmatch(rf"{base}:ci_owner-[0-9a-f]{{10}}", t.key) for t in parts[2:])
    assert len({t.key for t in parts}) == 4
    assert {(t.accountable, t.consulted, t.informed) for t in parts} == {
        (PO, (CATALOG,), (SPONSOR,))
    }
    assert [t.responsible_roles for t in parts] == [
        ("slm_process_owner",),
        ("service_level_manager",),
        ("ci_owner",),
        ("ci_owner",),
    ]
    assert parts[1].title == (
        "Participate in service review — Service Level Manager (Sam Owner): Payroll"
    )
    assert all(t.parent_key == "slm:2026:svc-payroll:review" for t in parts)
    assert all(t.key in t.labels for t in parts)


def test_part_keys_stay_when_other_people_come_or_go(matrix: RaciMatrix) -> None:
    """A CI owner leaving changes no other person's key, so nobody's sub-task is re-created."""

    def keys_of(service: Service) -> dict[Person | None, str]:
        plan = build_plan(CYCLE, matrix, HOLDERS, [service], [service.key])
        return {t.assignee: t.key for t in _participate(plan.tickets)}

    before = keys_of(SERVICE)
    after = keys_of(SERVICE.model_copy(update={"components": SERVICE.components[1:]}))
    assert CI_B not in after and CI_B in before
    assert after == {person: key for person, key in before.items() if person != CI_B}


def test_one_person_holding_every_r_role_gets_one_unchanged_subtask(matrix: RaciMatrix) -> None:
    """The process owner owns the service and its CIs: one Participate sub-task, planned as
    before (old title, no part), the roles they cover recorded."""
    service = SERVICE.model_copy(
        update={"owner": PO, "components": (Component(key="c", name="db", owner=PO),)}
    )
    plan = build_plan(CYCLE, matrix, HOLDERS, [service], [service.key])
    (only,) = _participate(plan.tickets)
    assert only.key == "slm:2026:svc-payroll:participate_review"
    assert only.title == "Participate in service review: Payroll"
    assert only.responsible_roles == ("slm_process_owner", "service_level_manager", "ci_owner")


def test_no_ci_owner_known_means_no_extra_subtask_and_the_gap_stays(matrix: RaciMatrix) -> None:
    """CIs without owners: Participate goes to the process owner and the service owner only,
    and the Configuration Item Owner role is a gap of the service."""
    service = SERVICE.model_copy(
        update={"components": (Component(key="c", name="db", owner=None),)}
    )
    plan = build_plan(CYCLE, matrix, HOLDERS, [service], [service.key])
    assert [t.assignee for t in _participate(plan.tickets)] == [PO, OWNER]
    gaps = {(g.subject, g.service_key) for g in plan.gaps}
    assert ("Configuration Item Owner", service.key) in gaps


def test_who_a_subtask_is_for_does_not_enter_the_spec_hash(matrix: RaciMatrix) -> None:
    """activity_id / responsible_roles are read back, not shown: existing tickets' hashes hold."""
    from sync.reconcile import spec_hash

    plan = build_plan(CYCLE, matrix, HOLDERS, [SERVICE], [SERVICE.key])
    for ticket in plan.tickets:
        bare = ticket.model_copy(update={"activity_id": None, "responsible_roles": ()})
        assert spec_hash(ticket) == spec_hash(bare)
    assert all(t.activity_id for t in plan.tickets if t.kind is TicketKind.ACTIVITY)
