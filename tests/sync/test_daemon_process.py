"""`slm-sync run` as a process: health endpoints, SIGTERM mid-run, and a consistent restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

SLM_SYNC = [sys.executable, "-m", "sync.cli"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_mid_run_exits_0_and_a_restart_completes_without_duplicates(
    sandbox_process: Callable[..., dict[str, str]],
    cli_config: Callable[..., tuple[Path, dict[str, str]]],
    jira_tickets: Callable[[dict[str, str]], list[dict[str, Any]]],
) -> None:
    """SIGTERM while tickets are being written: exit 0 within 10 s; the next run fills the rest."""
    sandbox_urls = sandbox_process(
        "--services", "6", "--sla-records", "1500", "--latency-ms", "30", "--seed", "5"
    )
    config, env = cli_config(sandbox_urls, interval_seconds=3600)
    port = _free_port()
    daemon = subprocess.Popen(
        [*SLM_SYNC, "run", "--config", str(config), "--http-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not jira_tickets(sandbox_urls):
        time.sleep(0.02)
    assert jira_tickets(sandbox_urls), "the daemon never started writing"
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
        label
        for t in jira_tickets(sandbox_urls)
        for label in t["labels"]
        if label.startswith("slm:")
    )
    assert keys and max(keys.values()) == 1, "a ticket key exists twice"
    planned = {t["key"] for t in summary["tickets"]}
    assert set(keys) == planned
