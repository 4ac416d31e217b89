"""`slm-sync run` as a process: health endpoints, SIGTERM mid-run, and a consistent restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

SLM_SYNC = [sys.executable, "-m", "sync.cli"]


@pytest.fixture
def sandbox_urls() -> Iterator[dict[str, str]]:
    """A sandbox in its own process, slow enough (30 ms a request) to stop a run midway."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--services", "6", "--sla-records", "1500",
         "--latency-ms", "30", "--seed", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    urls = json.loads(process.stdout.readline())
    yield urls
    process.terminate()
    process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(tmp_path: Path, urls: dict[str, str]) -> tuple[Path, dict[str, str]]:
    services = requests.get(
        f"{urls['servicenow']}/api/now/table/cmdb_ci_service",
        params={"sysparm_fields": "sys_id", "sysparm_query": "sys_class_name=cmdb_ci_service"},
        auth=("u", "p"),
        timeout=10,
    ).json()["result"]
    selection = [s["sys_id"] for s in services[:2]]
    config = tmp_path / "slm-sync.yaml"
    config.write_text(
        f"""
servicenow: {{url: "{urls["servicenow"]}", username: demo, requests_per_second: 100,
              clock_skew_seconds: 0}}
jira: {{url: "{urls["jira"]}", email: demo@example.com, requests_per_second: 100,
        index_lag_seconds: 0.5}}
sync: {{data_dir: "{tmp_path / "data"}", interval_seconds: 3600}}
review:
  selection: {json.dumps(selection)}
  roles:
    slm_process_owner: {{email: process.owner@example.com, name: Process Owner}}
logging: {{level: INFO, format: json}}
"""
    )
    env = dict(os.environ)
    env.update(
        SLM_SYNC_SERVICENOW__PASSWORD="demo-password", SLM_SYNC_JIRA__API_TOKEN="demo-token-1"
    )
    return config, env


def _tickets(urls: dict[str, str]) -> list[dict[str, Any]]:
    found = requests.get(f"{urls['jira']}/__sandbox/created", timeout=5).json()["tickets"]
    assert isinstance(found, list)
    return found


def test_sigterm_mid_run_exits_0_and_a_restart_completes_without_duplicates(
    tmp_path: Path, sandbox_urls: dict[str, str]
) -> None:
    """SIGTERM while tickets are being written: exit 0 within 10 s; the next run fills the rest."""
    config, env = _config(tmp_path, sandbox_urls)
    port = _free_port()
    daemon = subprocess.Popen(
        [*SLM_SYNC, "run", "--config", str(config), "--http-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _tickets(sandbox_urls):
        time.sleep(0.02)
    assert _tickets(sandbox_urls), "the daemon never started writing"
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    daemon.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    _, stderr = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, stderr[-2000:]
    assert time.monotonic() - stopped_at < 10
    assert "Traceback" not in stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "cycle.interrupted" in events, "SIGTERM arrived after the cycle: not a mid-run stop"
    finish = subprocess.run(
        [*SLM_SYNC, "sync", "--once", "--json", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr[-2000:]
    summary = json.loads(finish.stdout)
    assert summary["failed"] == 0
    keys = Counter(
        label for t in _tickets(sandbox_urls) for label in t["labels"] if label.startswith("slm:")
    )
    assert keys and max(keys.values()) == 1, "a ticket key exists twice"
    planned = {t["key"] for t in summary["tickets"]}
    assert set(keys) == planned
