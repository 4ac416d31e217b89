"""Links people click to open a ServiceNow record: `<base>/<table>.do?sys_id=<sys_id>`.

The base is `servicenow.public_url` when people reach the instance through a proxy, else the
API's base URL (`ServiceNowSettings.record_base_url`). The form opens the record in its own
table (a problem in `problem`, an SLA record in `task_sla`).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from review import SourceRef

# Names quote() leaves as they are: table names and sys_ids nearly always are (a cycle links
# some 100,000 records, and quote() costs ten times the rest of a link).
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+")


def record_url(base: str | None, table: str, sys_id: str) -> str | None:
    """The record's form URL; None without a base URL, table or sys_id."""
    if not base or not table or not sys_id:
        return None
    if not _PLAIN.fullmatch(table):
        table = quote(table, safe="_")
    if not _PLAIN.fullmatch(sys_id):
        sys_id = quote(sys_id, safe="")
    return f"{base.rstrip('/')}/{table}.do?sys_id={sys_id}"


def source_url(base: str | None, ref: SourceRef) -> str | None:
    """The URL of a record read from ServiceNow (None for another system's records)."""
    if ref.system != "servicenow":
        return None
    return record_url(base, ref.table, ref.id)
