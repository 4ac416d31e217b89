"""Fixtures of the stress suites: a sandbox in its own process, and retry / call recorders.

The crash suite kills `slm-sync` with SIGKILL, so it runs the CLI and the sandbox as separate
processes; the fault suite drives the engine in-process against an in-process sandbox and
listens to the retry and call observers the daemon's metrics use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from connectors import RetryEvent, observe_retries, set_testing
from connectors.http import observe_calls
from sync.metrics import Metrics

# Index lag below the client's `jira.index_lag_seconds`, as the crash suite configures it.
SANDBOX_ARGS = ("--services", "8", "--sla-records", "1000", "--seed", "5", "--index-lag-ms", "100")


@dataclass
class ServedSandbox:
    """`python -m sandbox serve` running in a child process, with its URLs."""

    process: subprocess.Popen[str]
    urls: dict[str, str]

    @property
    def jira(self) -> str:
        return self.urls["jira"]

    @property
    def servicenow(self) -> str:
        return self.urls["servicenow"]

    def reset(self) -> None:
        """Back to the seeded estate on both stand-ins: every ticket written so far is gone."""
        for url in (self.jira, self.servicenow):
            response = requests.post(f"{url}/__sandbox/reset?state=true", timeout=10)
            response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def served_sandbox() -> Iterator[ServedSandbox]:
    """One sandbox process per test module (8 services, 1,000 SLA records, Jira Cloud)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", *SANDBOX_ARGS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        pytest.fail(f"the sandbox process ended before printing its URLs ({process.returncode})")
    served = ServedSandbox(process, json.loads(line))
    yield served
    served.stop()


@dataclass
class Recorder:
    """What the observers heard since the last `clear()`: retries and calls (system, status),
    also fed to a fresh `Metrics` as the daemon's would be."""

    retries: list[RetryEvent] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    listening: bool = False

    def on_retry(self, event: RetryEvent) -> None:
        if self.listening:
            self.retries.append(event)
            self.metrics.on_retry(event)

    def on_call(self, system: str, status: int) -> None:
        if self.listening:
            self.calls.append((system, status))
            self.metrics.on_call(system, status)

    def clear(self) -> None:
        self.retries.clear()
        self.calls.clear()
        self.metrics = Metrics()


_RECORDER = Recorder()


@pytest.fixture(scope="session")
def _observers_registered() -> None:
    """The observer lists have no unregister: one recorder per process, registered once."""
    observe_retries(_RECORDER.on_retry)
    observe_calls(_RECORDER.on_call)


@pytest.fixture
def recorder(_observers_registered: None) -> Iterator[Recorder]:
    """Retry events and HTTP calls of this test only; retry waits are planned but not slept."""
    _RECORDER.clear()
    _RECORDER.listening = True
    set_testing(True)
    yield _RECORDER
    set_testing(False)
    _RECORDER.listening = False
    _RECORDER.clear()
