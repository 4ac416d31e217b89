"""`python -m sandbox serve` prints its URLs as one JSON line and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]


def test_serve_prints_urls_and_exits_0_on_sigterm() -> None:
    """The first stdout line names both base URLs on 127.0.0.1; SIGTERM ends with code 0."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--jira-port",
            "0",
            "--servicenow-port",
            "0",
            "--services",
            "3",
            "--sla-records",
            "100",
            "--seed",
            "5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["servicenow"].startswith("http://127.0.0.1:")
        assert line["jira"].startswith("http://127.0.0.1:")
        assert line["seed"] == 5 and line["jira_flavor"] == "cloud"
        response = requests.get(
            line["servicenow"] + "/api/now/table/cmdb_ci_service", auth=("a", "b"), timeout=10
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_knob_spec_exits_2() -> None:
    """A fault spec the sandbox does not understand is a usage error (exit 2)."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "serve", "--faults", "explode=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "explode" in result.stderr


def test_sandbox_can_serve_a_localized_subtask_type() -> None:
    """--jira-subtask-name / jira_subtask_name: createmeta lists the localized sub-task type."""
    import requests

    from sandbox import Sandbox

    with Sandbox(services=3, sla_records=100, jira_subtask_name="Unteraufgabe") as site:
        meta = requests.get(
            f"{site.jira_url}/rest/api/3/issue/createmeta/SLM/issuetypes",
            auth=("a", "b"),
            timeout=5,
        ).json()
    names = [t["name"] for t in meta.get("issueTypes", meta.get("values", []))]
    assert "Unteraufgabe" in names and "Sub-task" not in names
