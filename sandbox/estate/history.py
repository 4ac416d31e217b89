"""Thirteen months of operational history for a seeded estate.

Incidents with their SLA records (task_sla), CSAT answers, problems and knowledge articles. The
priority mix and the per-priority SLA attainment follow a real ServiceNow audit log (see
PRIORITY_WEIGHTS); each service scales its breach rate by its own factor so some services miss
their targets and others beat them, while the estate overall stays near the real 93 %.
Records are touched in batches (20-50 rows with one `sys_updated_on` second), as bulk updates and
SLA timers do on real instances: incremental readers must not lose rows sharing a second.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import accumulate

from sandbox.estate.ids import IdSource
from sandbox.estate.model import (
    Agreement,
    CsatResult,
    Estate,
    Incident,
    KnowledgeArticle,
    Problem,
    Service,
    SlaRecord,
)
from sandbox.estate.names import INCIDENT_SUMMARIES

# Priority mix and per-priority SLA attainment of the UCI "Incident management process enriched
# event log" (reference/datasets/incident_event_log.first5998rows.reformatted.csv, all 5,998 rows):
# priority 1: 144 rows, made_sla 90.3 %; 2: 235, 86.0 %; 3: 5,046, 94.0 %; 4: 573, 91.4 %;
# overall made_sla 5,599 / 5,998 = 93.3 %.
PRIORITY_WEIGHTS: dict[str, float] = {"1": 0.024, "2": 0.039, "3": 0.841, "4": 0.096}
PRIORITY_MADE_SLA: dict[str, float] = {"1": 0.903, "2": 0.860, "3": 0.940, "4": 0.914}
BREACH_FACTORS = (0.3, 0.6, 0.8, 1.0, 1.0, 1.3, 1.8, 2.4)
CSAT_VALUES = ("5", "4", "3", "2", "1")
CSAT_WEIGHTS = (0.45, 0.30, 0.12, 0.07, 0.06)
CANCELLED_SHARE = 0.015
HISTORY = timedelta(days=396)  # 13 months before `now`
PROBLEM_STATES = ("101", "102", "103", "104", "106", "107")  # New ... Closed (stock choices)


def add_history(estate: Estate, rng: random.Random, ids: IdSource, sla_records: int) -> None:
    """Add incidents, SLA records, CSAT, problems and knowledge to `estate`."""
    estate.csat_metric = IdSource.fixed("asmt_metric:overall-satisfaction")
    history = _History(estate, rng, ids)
    while len(estate.sla_records) < sla_records:
        history.add_incident()
    del estate.sla_records[sla_records:]
    estate.incidents.sort(key=lambda incident: incident.opened_at)
    for number, incident in enumerate(estate.incidents, start=10001):
        incident.number = f"INC{number:07d}"
    _batch_updates(rng, estate.incidents, estate.sla_records, now=estate.now)
    _add_csat(estate, rng, ids)
    _add_problems_and_knowledge(estate, rng, ids)


class _History:
    def __init__(self, estate: Estate, rng: random.Random, ids: IdSource) -> None:
        self.estate, self.rng, self.ids = estate, rng, ids
        self.weights = [
            4.0 if s.tier == 1 else 2.0 if s.tier == 2 else 1.0 for s in estate.services
        ]
        factors = [rng.choice(BREACH_FACTORS) for _ in estate.services]
        mean = sum(f * w for f, w in zip(factors, self.weights, strict=True)) / sum(self.weights)
        self.factor = {s.sys_id: f / mean for s, f in zip(estate.services, factors, strict=True)}
        self.slas: dict[tuple[str, str, str | None], Agreement] = {
            (a.applies_to, a.metric, a.priority): a for a in estate.agreements
        }
        # Looked up once, not per incident (a scan of every relation per incident made a
        # 10,000-service estate take hours to build); the same lists in the same order, so the
        # seeded draws, and the estate, are unchanged.
        self.cum_weights = list(accumulate(self.weights))
        self.components: dict[str, list[str]] = {}
        for relation in estate.relations:
            self.components.setdefault(relation.parent, []).append(relation.child)
        self.groups = {group.sys_id: group for group in reversed(estate.groups)}  # first wins
        self.priorities = list(PRIORITY_WEIGHTS)
        self.priority_weights = list(PRIORITY_WEIGHTS.values())

    def add_incident(self) -> None:
        rng, estate = self.rng, self.estate
        service = rng.choices(estate.services, cum_weights=self.cum_weights)[0]
        priority = rng.choices(self.priorities, self.priority_weights)[0]
        opened = estate.now - timedelta(seconds=rng.randint(600, int(HISTORY.total_seconds())))
        components = self.components.get(service.sys_id, [])
        group = self.groups[service.support_group or ""]
        incident = Incident(
            sys_id=self.ids.sys_id(),
            number="",
            priority=priority,
            business_service=service.sys_id,
            cmdb_ci=rng.choice(components) if rng.random() < 0.9 else None,
            caller=rng.choice(estate.people).sys_id,
            assigned_to=rng.choice(group.members),
            assignment_group=group.sys_id,
            short_description=rng.choice(INCIDENT_SUMMARIES),
            state="2",
            opened_at=opened,
            resolved_at=None,
            closed_at=None,
            made_sla=True,
            sys_created_on=opened,
            sys_updated_on=opened,
        )
        estate.incidents.append(incident)
        self._add_records(incident, service)

    def _add_records(self, incident: Incident, service: Service) -> None:
        made_rate = 1 - (1 - PRIORITY_MADE_SLA[incident.priority]) * self.factor[service.sys_id]
        resolution = self.slas[(service.sys_id, "resolution", incident.priority)]
        record = self._record(incident, resolution, made_rate)
        if record.end_time is not None and record.stage != "cancelled":
            incident.resolved_at = record.end_time
            closed = record.end_time + timedelta(days=3)
            incident.state = "7" if closed <= self.estate.now else "6"
            incident.closed_at = closed if incident.state == "7" else None
        response = self.slas.get((service.sys_id, "response", incident.priority))
        if response is not None:
            self._record(incident, response, made_rate)
        ola = self.slas.get((incident.cmdb_ci or "", "resolution", incident.priority))
        if ola is not None:
            self._record(incident, ola, made_rate)

    def _record(self, incident: Incident, agreement: Agreement, made_rate: float) -> SlaRecord:
        rng, now = self.rng, self.estate.now
        target = agreement.duration or timedelta(hours=8)
        made = rng.random() < made_rate
        percentage = rng.uniform(5, 99) if made else rng.uniform(101, 260)
        start = incident.opened_at
        end = start + timedelta(seconds=int(target.total_seconds() * percentage / 100))
        stage, active = "completed", False
        if rng.random() < CANCELLED_SHARE:
            stage, made = "cancelled", True
        elif end > now:  # still running: the clock shows the elapsed share so far
            end = now
            percentage = (now - start) / target * 100
            made = percentage <= 100
            stage = "in_progress" if made else "breached"
            stage = "paused" if made and rng.random() < 0.2 else stage
            active = True
        record = SlaRecord(
            sys_id=self.ids.sys_id(),
            task=incident.sys_id,
            sla=agreement.sys_id,
            stage=stage,
            has_breached=not made,
            start_time=start,
            end_time=None if active else end,
            planned_end_time=start + target,
            business_percentage=round(percentage, 2),
            duration=end - start,
            active=active,
            sys_created_on=start,
            sys_updated_on=end,
        )
        incident.made_sla = incident.made_sla and made
        self.estate.sla_records.append(record)
        return record


def _batch_updates(
    rng: random.Random, incidents: list[Incident], records: list[SlaRecord], now: datetime
) -> None:
    """Give rows touched close together one shared `sys_updated_on` (the batch's last touch)."""
    for rows in (incidents, records):
        touched = sorted(rows, key=_touched)
        start = 0
        while start < len(touched):
            batch = touched[start : start + rng.randint(20, 50)]
            stamp = min(max(_touched(row) for row in batch), now - timedelta(seconds=1))
            for row in batch:
                row.sys_updated_on = stamp
            start += len(batch)


def _touched(row: Incident | SlaRecord) -> datetime:
    if isinstance(row, Incident):
        return row.closed_at or row.resolved_at or row.opened_at
    return row.sys_updated_on


def _add_csat(estate: Estate, rng: random.Random, ids: IdSource) -> None:
    silent = estate.services[-2].sys_id
    estate.deliberate["service_without_csat"] = silent
    for incident in estate.incidents:
        if incident.closed_at is None or incident.business_service == silent:
            continue
        if rng.random() >= 0.15:
            continue
        answered = min(incident.closed_at + timedelta(hours=rng.randint(1, 48)), estate.now)
        estate.csat.append(
            CsatResult(
                sys_id=ids.sys_id(),
                metric=estate.csat_metric,
                actual_value=rng.choices(CSAT_VALUES, CSAT_WEIGHTS)[0],
                source_table="incident",
                source_id=incident.sys_id,
                user=incident.caller,
                sys_created_on=answered,
                sys_updated_on=answered,
            )
        )


def _add_problems_and_knowledge(estate: Estate, rng: random.Random, ids: IdSource) -> None:
    for service in estate.services:
        components = [r.child for r in estate.relations if r.parent == service.sys_id]
        for _ in range(rng.randint(1, 3)):
            opened = estate.now - timedelta(seconds=rng.randint(86400, 300 * 86400))
            estate.problems.append(
                Problem(
                    sys_id=ids.sys_id(),
                    number=f"PRB{40001 + len(estate.problems):07d}",
                    business_service=service.sys_id,
                    cmdb_ci=rng.choice(components),
                    state=rng.choice(PROBLEM_STATES),
                    short_description=f"Recurring: {rng.choice(INCIDENT_SUMMARIES).lower()}",
                    opened_at=opened,
                    sys_updated_on=opened + timedelta(days=rng.randint(0, 20)),
                )
            )
        for topic in rng.sample(("How to request access", "Known error", "Runbook"), 2):
            estate.knowledge.append(
                KnowledgeArticle(
                    sys_id=ids.sys_id(),
                    number=f"KB{10001 + len(estate.knowledge):07d}",
                    short_description=f"{topic}: {service.name}",
                    cmdb_ci=service.sys_id,
                    business_service=service.sys_id,
                    workflow_state="published",
                    sys_updated_on=estate.now - timedelta(days=rng.randint(5, 700)),
                )
            )
