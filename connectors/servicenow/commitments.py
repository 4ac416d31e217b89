"""Agreement targets and subjects from Service Portfolio Management, with configured fallbacks.

A stock `contract_sla` (an SLA definition) has no target percentage and no reference to the
service it is agreed for. Where Service Portfolio Management (SPM) is active, a service
commitment names its SLA definition (`service_commitment.sla`), may carry a percentage
(`service_commitment.availability`, "Percentage available"), and reaches a service through
`service_offering_commitment` (offering → its `parent` service, or the commitment's `cmdb_ci`).

Each agreement row gets derived fields the mapping reads:

- `slm_target_percentage`: the commitment's percentage, else `servicenow.default_targets[type]`,
  else "" (the mapping then skips the agreement and says why);
- `slm_target_source`: `service_commitment <sys_id>` or `servicenow.default_targets.<type>`;
- `slm_applies_to`: the service (or CI) of the commitment's offering, else "" (the mapping
  falls back to the sys_id an SLA's `condition` names, e.g. `business_service=<sys_id>`);
- `slm_commitment_type`: the commitment's type ("SLA", "Availability", ...), else "".

An instance without SPM answers "Invalid table": that is logged once (`servicenow.spm_absent`)
and every agreement uses the configured defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from config import ServiceNowSettings
from connectors import cancel
from connectors.errors import RequestRejected
from connectors.servicenow import query
from connectors.servicenow.client import Record, TableClient
from connectors.servicenow.guard import Guard
from connectors.servicenow.lookup import BatchLookup, read_by_id
from connectors.servicenow.streams import (
    COMMITMENT_FIELDS,
    COMMITMENT_TABLE,
    OFFERING_COMMITMENT_FIELDS,
    OFFERING_COMMITMENT_TABLE,
    OFFERING_FIELDS,
    OFFERING_TABLE,
)

log = structlog.get_logger("slm_sync.connectors.servicenow")


@dataclass
class Commitment:
    """What SPM says about one SLA definition."""

    sys_id: str
    type: str
    percentage: str
    applies_to: str


@dataclass
class CommitmentReader:
    """Adds the `slm_` target and subject fields to agreement rows, one SPM read per page."""

    client: TableClient
    guard: Guard
    settings: ServiceNowSettings
    absent: bool = False
    _offerings: BatchLookup | None = field(default=None, repr=False)

    def enrich(
        self, rows: Sequence[Record], *, whole: dict[str, Commitment] | None = None
    ) -> list[Record]:
        """`rows` with the derived fields (see the module docstring): from `whole` (SPM as
        `read_whole` read it for the read these rows are part of), else looked up."""
        if whole is not None:
            found = whole
        else:
            found = self._commitments([r["sys_id"] for r in rows if r.get("sys_id")])
        return [self._enriched(row, found.get(row.get("sys_id") or "")) for row in rows]

    def _enriched(self, row: Record, commitment: Commitment | None) -> Record:
        kind = str(row.get("type") or "")
        default = self.settings.default_targets.get(kind)
        if commitment is not None and commitment.percentage:
            target, source = commitment.percentage, f"{COMMITMENT_TABLE} {commitment.sys_id}"
        elif default is not None:
            target, source = f"{default:g}", f"servicenow.default_targets.{kind}"
        else:
            target, source = "", ""
        return {
            **row,
            "slm_target_percentage": target,
            "slm_target_source": source,
            "slm_applies_to": commitment.applies_to if commitment else "",
            "slm_commitment_type": commitment.type if commitment else "",
        }

    def _commitments(self, sla_ids: list[str]) -> dict[str, Commitment]:
        """SLA definition sys_id -> its first commitment (by sys_id), where SPM has one:
        looked up by the SLA definitions' sys_ids, `lookup_batch_size` to a call (an id that
        is no sys_id, e.g. of an imported row, is not asked for)."""
        sla_ids = [i for i in sla_ids if query.SYS_ID.match(i)]
        if self.absent or not sla_ids:
            return {}
        try:
            commitments = self._list(COMMITMENT_TABLE, COMMITMENT_FIELDS, "sla", sla_ids)
            links = self._list(
                OFFERING_COMMITMENT_TABLE,
                OFFERING_COMMITMENT_FIELDS,
                "service_commitment",
                [str(c["sys_id"]) for c in commitments if query.SYS_ID.match(str(c["sys_id"]))],
            )
        except RequestRejected as error:
            self._absent(error)
            return {}
        return self._by_sla(commitments, links)

    def read_whole(self) -> dict[str, Commitment] | None:
        """Every SLA definition's commitment, SPM's tables read whole (`page_size` rows to a
        call), for one read of many agreements: a cold read of 16,000 agreements looked them
        up in 644 calls (two per 100), where their commitments and offering links fill 32
        pages. None without SPM, or when a table's paging stopped early (a row whose sys_id is
        no sys_id ends a page: the next cannot be asked for): the rows are then looked up."""
        if self.absent:
            return None
        size = self.settings.page_size
        try:
            commitments = read_by_id(
                self.client, self.guard, COMMITMENT_TABLE, "slaISNOTEMPTY", COMMITMENT_FIELDS, size
            )
            links = read_by_id(
                self.client, self.guard, OFFERING_COMMITMENT_TABLE,
                "service_commitmentISNOTEMPTY", OFFERING_COMMITMENT_FIELDS, size,
            )  # fmt: skip
        except RequestRejected as error:
            self._absent(error)
            return None
        for table, rows in ((COMMITMENT_TABLE, commitments), (OFFERING_COMMITMENT_TABLE, links)):
            if rows and not query.SYS_ID.match(str(rows[-1]["sys_id"])):
                log.warning("servicenow.spm_read_cut", table=table, after=str(rows[-1]["sys_id"]),
                            using="look-ups by sys_id")  # fmt: skip
                return None
        return self._by_sla(commitments, links)

    def _absent(self, error: RequestRejected) -> None:
        self.absent = True
        log.info("servicenow.spm_absent", reason=str(error.args[0]), using="default_targets")

    def _by_sla(self, commitments: list[Record], links: list[Record]) -> dict[str, Commitment]:
        subjects = self._subjects(links)
        by_sla: dict[str, Commitment] = {}
        for row in sorted(commitments, key=lambda c: str(c.get("sys_id"))):
            sla = str(row.get("sla") or "")
            if sla and sla not in by_sla:
                by_sla[sla] = Commitment(
                    str(row["sys_id"]),
                    str(row.get("type") or ""),
                    str(row.get("availability") or ""),
                    subjects.get(str(row["sys_id"]), ""),
                )
        return by_sla

    def _subjects(self, links: list[Record]) -> dict[str, str]:
        """Commitment sys_id -> the service of its offering (or the link's CI)."""
        if self._offerings is None:
            self._offerings = BatchLookup(
                self.client, self.guard, OFFERING_TABLE, OFFERING_FIELDS,
                self.settings.lookup_batch_size,
            )  # fmt: skip
        offerings = self._offerings.fetch(str(link.get("service_offering") or "") for link in links)
        subjects: dict[str, str] = {}
        for link in sorted(links, key=lambda r: str(r.get("sys_id"))):
            offering = offerings.get(str(link.get("service_offering") or ""), {})
            subject = str(offering.get("parent") or link.get("cmdb_ci") or "")
            commitment = str(link.get("service_commitment") or "")
            if subject and commitment and commitment not in subjects:
                subjects[commitment] = subject
        return subjects

    def _list(self, table: str, fields: tuple[str, ...], key: str, ids: list[str]) -> list[Record]:
        """The rows of `table` whose `key` is one of `ids`, one `sys_idIN` batch per
        `lookup_batch_size`; the batches are read in parallel up to the guard's concurrency
        (a page of 1,000 agreements is 10 batches of 2 calls each: one after another they
        cost 20 round trips of latency), and come back in batch order."""
        size = self.settings.lookup_batch_size
        conditions = [
            query.sys_ids_in(key, ids[start : start + size]) for start in range(0, len(ids), size)
        ]

        def read(condition: str) -> list[Record]:
            return read_by_id(self.client, self.guard, table, condition, fields, 10000)

        if len(conditions) > 1 and self.guard.concurrency > 1:
            with ThreadPoolExecutor(max_workers=self.guard.concurrency) as pool:
                found = list(pool.map(cancel.carried(read), conditions))
        else:
            found = [read(condition) for condition in conditions]
        return [row for rows in found for row in rows]

    def forget(self) -> None:
        """A full resync looks SPM up again (the plugin may have been activated)."""
        self.absent = False
        if self._offerings is not None:
            self._offerings.forget()
