"""Stateful stand-ins for Jira and ServiceNow on 127.0.0.1, seeded with a realistic estate.

One package per part: `jira/` and `servicenow/` (the stand-ins), `estate/` (the seeded data both
serve) and `http/` (the harness: server, knobs, counting). `Sandbox` is the one public entry. Used
by `slm-sync demo`, the end-to-end tests and the benchmarks; it imports nothing else of ours.

    with Sandbox(seed=7) as sandbox:
        requests.get(f"{sandbox.servicenow_url}/api/now/table/task_sla", auth=("a", "b"))
        sandbox.servicenow.update("cmdb_ci_service", sys_id, name="Renamed")

`python -m sandbox serve` runs the same from the command line (see `sandbox.__main__`).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from types import TracebackType
from typing import Any

from sandbox.estate import Estate, build_estate
from sandbox.http import (
    Harness,
    Knobs,
    ServerThread,
    parse_faults,
    parse_latency,
    parse_rate_limits,
)
from sandbox.servicenow import ServiceNowApp

__all__ = ["Estate", "Harness", "Knobs", "Sandbox", "ServiceNowApp", "build_estate"]


class Sandbox:
    """Both stand-ins, sharing one estate and one set of knobs; start / stop in-process."""

    def __init__(
        self,
        seed: int = 7,
        services: int = 12,
        sla_records: int = 5000,
        jira_flavor: str = "cloud",
        jira_port: int = 0,
        servicenow_port: int = 0,
        latency_ms: float | str = 0,
        rate_limit: str | None = None,
        faults: str | None = None,
        now: datetime | None = None,
        index_lag_ms: float = 300.0,
        jira_subtask_name: str = "Sub-task",
    ) -> None:
        self.seed = seed
        self.jira_flavor = jira_flavor
        self.estate = build_estate(seed, services, sla_records, now)
        latency, jitter = parse_latency(str(latency_ms))
        self.knobs = Knobs(
            latency_ms=latency,
            jitter_ms=jitter,
            rate_limits=parse_rate_limits(rate_limit),
            faults=parse_faults(faults),
            index_lag_ms=index_lag_ms,
        )
        self.servicenow = ServiceNowApp(self.estate, self.knobs)
        self.jira: Any = _jira_app(self.estate, jira_flavor, self.knobs, jira_subtask_name)
        self.servicenow_harness = Harness(self.servicenow, self.knobs)
        self.jira_harness = Harness(self.jira, self.knobs) if self.jira is not None else None
        self._ports = (jira_port, servicenow_port)
        self._servers: dict[str, ServerThread] = {}

    def start(self) -> Sandbox:
        """Bind both ports (port 0 = any free port), then serve; returns self."""
        jira_port, servicenow_port = self._ports
        self._servers["servicenow"] = ServerThread(self.servicenow_harness, servicenow_port)
        if self.jira_harness is not None:
            self._servers["jira"] = ServerThread(self.jira_harness, jira_port)
        for server in self._servers.values():
            server.start()
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def servicenow_url(self) -> str:
        return self._server("servicenow").url

    @property
    def jira_url(self) -> str:
        return self._server("jira").url

    def _server(self, name: str) -> ServerThread:
        if name not in self._servers:
            raise RuntimeError(f"the {name} stand-in is not running: call Sandbox.start() first")
        return self._servers[name]


def _jira_app(estate: Estate, flavor: str, knobs: Knobs, subtask_name: str) -> Any:
    """The Jira stand-in, or None while `sandbox.jira` is not there (ServiceNow still works)."""
    try:
        module = importlib.import_module("sandbox.jira")
    except ModuleNotFoundError as error:
        if error.name != "sandbox.jira":
            raise
        return None
    return module.JiraApp(estate, flavor, knobs, subtask_type_name=subtask_name)
