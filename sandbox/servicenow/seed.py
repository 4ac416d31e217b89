"""Turn the seeded estate into ServiceNow rows, with stock field names and string values."""

from __future__ import annotations

from datetime import datetime, timedelta

from sandbox.estate import REL_TYPE_DEPENDS_ON, Estate
from sandbox.servicenow.store import Row, TableStore, stamp

EPOCH = datetime(1970, 1, 1)


def duration_text(value: timedelta | None) -> str:
    """ServiceNow's duration format: the epoch plus the duration ("1970-01-03 04:00:00")."""
    return "" if value is None else (EPOCH + value).strftime("%Y-%m-%d %H:%M:%S")


def _when(value: datetime | None) -> str:
    return "" if value is None else stamp(value)


def _system(sys_id: str, table: str, created: datetime, updated: datetime) -> Row:
    return {
        "sys_id": sys_id,
        "sys_class_name": table,
        "sys_created_on": stamp(created),
        "sys_created_by": "admin",
        "sys_updated_on": stamp(updated),
        "sys_updated_by": "system",
        "sys_mod_count": "3",
    }


def seed_store(store: TableStore, estate: Estate) -> None:
    _seed_directory(store, estate)
    _seed_cmdb(store, estate)
    _seed_agreements(store, estate)
    _seed_tasks(store, estate)
    _seed_feedback(store, estate)


def _seed_directory(store: TableStore, estate: Estate) -> None:
    for p in estate.people:
        row = _system(
            p.sys_id, "sys_user", p.sys_updated_on - timedelta(days=400), p.sys_updated_on
        )
        row.update(
            user_name=p.user_name,
            first_name=p.first_name,
            last_name=p.last_name,
            name=p.name,
            email=p.email,
            title=p.title,
            active=str(p.active).lower(),
        )
        store.load("sys_user", row)
    for g in estate.groups:
        row = _system(g.sys_id, "sys_user_group", g.sys_updated_on, g.sys_updated_on)
        row.update(name=g.name, manager=g.manager or "", active="true", description="")
        store.load("sys_user_group", row)
        for member in g.members:
            sys_id = f"{g.sys_id[:16]}{member[:16]}"
            link = _system(sys_id, "sys_user_grmember", g.sys_updated_on, g.sys_updated_on)
            link.update(user=member, group=g.sys_id)
            store.load("sys_user_grmember", link)


def _seed_cmdb(store: TableStore, estate: Estate) -> None:
    for s in estate.services:
        row = _system(
            s.sys_id, s.sys_class_name, s.sys_updated_on - timedelta(days=700), s.sys_updated_on
        )
        row.update(
            name=s.name,
            number=s.number,
            owned_by=s.owner or "",
            managed_by="",
            u_business_owner=s.business_owner or "",
            u_lt_sponsor=s.lt_sponsor or "",
            busines_criticality=s.busines_criticality,
            support_group=s.support_group or "",
            service_classification="Business Service",
            operational_status="1",
            used_for="Production",
            short_description=f"{s.name} (tier {s.tier})",
        )
        store.load(s.sys_class_name, row)
    for o in estate.offerings:
        row = _system(o.sys_id, "service_offering", o.sys_updated_on, o.sys_updated_on)
        row.update(name=o.name, parent=o.parent, operational_status="1", owned_by="")
        store.load("service_offering", row)
    for c in estate.components:
        row = _system(
            c.sys_id, c.sys_class_name, c.sys_updated_on - timedelta(days=300), c.sys_updated_on
        )
        row.update(
            name=c.name,
            owned_by=c.owner or "",
            managed_by="",
            operational_status="1",
            support_group=c.support_group or "",
            short_description="",
        )
        store.load(c.sys_class_name, row)
    rel_type = _system(
        REL_TYPE_DEPENDS_ON,
        "cmdb_rel_type",
        estate.now - timedelta(days=2000),
        estate.now - timedelta(days=2000),
    )
    rel_type.update(
        name="Depends on::Used by", parent_descriptor="Depends on", child_descriptor="Used by"
    )
    store.load("cmdb_rel_type", rel_type)
    for r in estate.relations:
        row = _system(r.sys_id, "cmdb_rel_ci", r.sys_updated_on, r.sys_updated_on)
        row.update(parent=r.parent, child=r.child, type=r.type)
        store.load("cmdb_rel_ci", row)


def _seed_agreements(store: TableStore, estate: Estate) -> None:
    # `u_` fields: what a customised instance adds (served only with servicenow_custom_fields).
    for a in estate.agreements:
        row = _system(a.sys_id, "contract_sla", a.sys_updated_on, a.sys_updated_on)
        row.update(
            name=a.name,
            type=a.type,
            collection=a.collection,
            duration=duration_text(a.duration),
            duration_type="",
            schedule="",
            target=a.metric if a.metric != "availability" else "",
            u_metric=a.metric,
            u_target_percentage=a.target_percentage,
            u_applies_to=a.applies_to,
            start_condition=a.condition + "^active=true",
            stop_condition="stateIN6,7",
            condition=a.condition,
            active="true",
        )
        store.load("contract_sla", row)
    _seed_commitments(store, estate)


def _seed_commitments(store: TableStore, estate: Estate) -> None:
    """Service Portfolio Management: per agreement a commitment naming it (`sla`) with its
    percentage (`availability`), linked to the service's offering where it has one, else to
    the service or component itself (`cmdb_ci`)."""
    offering_of = {o.parent: o.sys_id for o in reversed(estate.offerings)}
    for a in estate.agreements:
        commitment = _system(
            _derived_id("c", a.sys_id), "service_commitment", a.sys_updated_on, a.sys_updated_on
        )
        commitment.update(
            name=a.name,
            type="Availability" if a.metric == "availability" else "SLA",
            sla=a.sys_id,
            availability=a.target_percentage,
            schedule="",
            timezone="",
            description="",
        )
        store.load("service_commitment", commitment)
        offering = offering_of.get(a.applies_to, "")
        link = _system(
            _derived_id("d", a.sys_id),
            "service_offering_commitment",
            a.sys_updated_on,
            a.sys_updated_on,
        )
        link.update(
            service_offering=offering,
            service_commitment=commitment["sys_id"],
            cmdb_ci="" if offering else a.applies_to,
        )
        store.load("service_offering_commitment", link)


def _derived_id(prefix: str, sys_id: str) -> str:
    """A sys_id for a record derived from another (stable, distinct, 32 hex digits)."""
    return prefix + sys_id[1:]


def _seed_tasks(store: TableStore, estate: Estate) -> None:
    for i in estate.incidents:
        row = _system(i.sys_id, "incident", i.sys_created_on, i.sys_updated_on)
        row.update(
            number=i.number,
            priority=i.priority,
            impact=i.priority[:1],
            urgency="2",
            business_service=i.business_service,
            cmdb_ci=i.cmdb_ci or "",
            caller_id=i.caller,
            opened_by=i.caller,
            assigned_to=i.assigned_to or "",
            assignment_group=i.assignment_group or "",
            short_description=i.short_description,
            state=i.state,
            incident_state=i.state,
            active=str(i.closed_at is None).lower(),
            opened_at=_when(i.opened_at),
            resolved_at=_when(i.resolved_at),
            closed_at=_when(i.closed_at),
            made_sla=str(i.made_sla).lower(),
            correlation_id="",
            work_notes="",
            comments="",
        )
        store.load("incident", row)
    for r in estate.sla_records:
        row = _system(r.sys_id, "task_sla", r.sys_created_on, r.sys_updated_on)
        row.update(
            task=r.task,
            sla=r.sla,
            stage=r.stage,
            has_breached=str(r.has_breached).lower(),
            start_time=_when(r.start_time),
            end_time=_when(r.end_time),
            planned_end_time=_when(r.planned_end_time),
            business_percentage=f"{r.business_percentage:.2f}",
            percentage=f"{r.business_percentage:.2f}",
            duration=duration_text(r.duration),
            business_duration=duration_text(r.duration),
            active=str(r.active).lower(),
        )
        store.load("task_sla", row)
    for p in estate.problems:
        row = _system(p.sys_id, "problem", p.opened_at, p.sys_updated_on)
        row.update(
            number=p.number,
            business_service=p.business_service,
            cmdb_ci=p.cmdb_ci or "",
            state=p.state,
            short_description=p.short_description,
            opened_at=_when(p.opened_at),
            active=str(p.state not in ("106", "107")).lower(),
            priority="3",
            work_notes="",
            comments="",
        )
        store.load("problem", row)


def _seed_feedback(store: TableStore, estate: Estate) -> None:
    for k in estate.knowledge:
        row = _system(k.sys_id, "kb_knowledge", k.sys_updated_on, k.sys_updated_on)
        row.update(
            number=k.number,
            short_description=k.short_description,
            cmdb_ci=k.cmdb_ci or "",
            u_business_service=k.business_service or "",
            workflow_state=k.workflow_state,
            active="true",
        )
        store.load("kb_knowledge", row)
    metric = _system(
        estate.csat_metric,
        "asmt_metric",
        estate.now - timedelta(days=900),
        estate.now - timedelta(days=900),
    )
    metric.update(name="Overall satisfaction", datatype="scale", scale_min="1", scale_max="5")
    store.load("asmt_metric", metric)
    for c in estate.csat:
        row = _system(c.sys_id, "asmt_metric_result", c.sys_created_on, c.sys_updated_on)
        row.update(
            metric=c.metric,
            actual_value=c.actual_value,
            string_value="",
            source_table=c.source_table,
            source_id=c.source_id,
            user=c.user,
        )
        store.load("asmt_metric_result", row)
