"""The ServiceNow connector: raw records out of a ServiceNow instance, review tasks into it.
Imports `connectors` (base, errors, retry, pacing), `review` and `config`.

    ServiceNowSource   SourceConnector: services, components, people, agreements, SLA records,
                       CSAT, materials, by keyset pages with commit-able cursors
    ServiceNowTarget   TargetConnector: review tasks in `servicenow.tables.review_tasks`
    TableClient        the Table / Attachment API seam (PysnowTableClient by default)
    render_text        the neutral document as aligned plain text

Raw record shapes (all values strings, "" for null, references as plain sys_ids; derived
fields prefixed `slm_`): component rows carry `slm_service_ids` and `slm_depends_on`,
csat_response rows `slm_service_id`, material rows `slm_kind` and `slm_service_id`, sla_record
rows the dot-walked keys `task.business_service`, `task.cmdb_ci`, `task.priority`,
`task.number`, `sla.name` literally.
"""

from __future__ import annotations

from connectors.registry import ConnectorPlugin
from connectors.servicenow.client import PysnowTableClient, TableClient, TableResult
from connectors.servicenow.guard import Guard
from connectors.servicenow.people import PeopleDirectory
from connectors.servicenow.query import UnsafeQueryValue
from connectors.servicenow.render import render_text
from connectors.servicenow.source import ServiceNowSource
from connectors.servicenow.streams import DEFAULT_FIELDS, SPM_READS, connector_reads
from connectors.servicenow.target import ServiceNowTarget
from connectors.servicenow.wiring import build_client, build_guard

__all__ = [
    "DEFAULT_FIELDS",
    "SPM_READS",
    "Guard",
    "PeopleDirectory",
    "PysnowTableClient",
    "ServiceNowSource",
    "ServiceNowTarget",
    "TableClient",
    "TableResult",
    "UnsafeQueryValue",
    "build_client",
    "build_guard",
    "connector_reads",
    "plugin",
    "render_text",
]

# The entry point `slm_sync.connectors: servicenow` names this object (see pyproject.toml).
plugin = ConnectorPlugin(
    name="servicenow",
    source=ServiceNowSource.from_settings,
    target=ServiceNowTarget.from_settings,
    mapping="servicenow",
)
