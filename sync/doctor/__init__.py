"""`slm-sync doctor`: read-only checks that the configured systems can be used, with the fix for
each failure. `run` runs them and renders the table / JSON; `check` is one finding; `jira`,
`jira_site` and `servicenow` ask each system through the connectors' own clients.

Imports `config`, `connectors` and `sync.state`; the CLI imports it.
"""

from __future__ import annotations

from sync.doctor.check import Check
from sync.doctor.run import checks_as_json, render_checks, run_doctor

__all__ = ["Check", "checks_as_json", "render_checks", "run_doctor"]
