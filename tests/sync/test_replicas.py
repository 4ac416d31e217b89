"""Several replicas on one PostgreSQL: leases, takeover, migrations, and no ticket twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from sync.state import open_store

SLM_SYNC = [sys.executable, "-m", "sync.cli"]


def test_a_lease_is_exclusive_until_released_or_expired(postgres_url: str) -> None:
    """B cannot take A's unit; after A releases, or A's lease expires, B can."""
    store = open_store(postgres_url)
    assert store.acquire_lease("ticket:x", "replica-a", 60)
    assert not store.acquire_lease("ticket:x", "replica-b", 60)
    store.release_lease("ticket:x", "replica-a")
    assert store.acquire_lease("ticket:x", "replica-b", 0.3)
    assert not store.acquire_lease("ticket:x", "replica-a", 60)
    time.sleep(0.4)
    assert store.acquire_lease("ticket:x", "replica-a", 60), "an expired lease is taken over"
    assert not store.renew_lease("ticket:x", "replica-b", 60), "the old holder lost it"
    store.close()


def test_migrations_from_empty_and_from_the_previous_version(postgres_url: str) -> None:
    """A database at schema 0001 with data is upgraded to head; its rows survive."""
    store = open_store(postgres_url, migrate_to="0001")
    assert store.schema_version() == "0001"
    store.record_intent("jira", "slm:2026:cycle", parent_key=None, kind="cycle", spec_hash="h")
    store.migrate()
    assert store.schema_version() == "0002"
    assert "slm:2026:cycle" in store.ledger_rows("jira")
    assert store.acquire_lease("pull:servicenow", "replica-a", 60)
    store.close()


@pytest.fixture
def sandbox_urls() -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--services", "8", "--sla-records", "1500",
         "--latency-ms", "20", "--seed", "9"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    yield json.loads(process.stdout.readline())
    process.terminate()
    process.wait(timeout=10)


def _config(tmp_path: Path, urls: dict[str, str], state_url: str) -> tuple[Path, dict[str, str]]:
    services = requests.get(
        f"{urls['servicenow']}/api/now/table/cmdb_ci_service",
        params={"sysparm_fields": "sys_id", "sysparm_query": "sys_class_name=cmdb_ci_service"},
        auth=("u", "p"),
        timeout=10,
    ).json()["result"]
    config = tmp_path / "slm-sync.yaml"
    config.write_text(
        f"""
servicenow: {{url: "{urls["servicenow"]}", username: demo, requests_per_second: 100}}
jira: {{url: "{urls["jira"]}", email: demo@example.com, requests_per_second: 100,
        index_lag_seconds: 0.5}}
sync: {{state_url: "{state_url}", lease_seconds: 3}}
review:
  selection: {json.dumps([s["sys_id"] for s in services[:5]])}
  roles:
    slm_process_owner: {{email: process.owner@example.com, name: Process Owner}}
logging: {{level: INFO, format: json}}
"""
    )
    env = dict(os.environ)
    env.update(SLM_SYNC_SERVICENOW__PASSWORD="demo-pass", SLM_SYNC_JIRA__API_TOKEN="demo-token")
    return config, env


def _tickets(urls: dict[str, str]) -> list[dict[str, Any]]:
    found = requests.get(f"{urls['jira']}/__sandbox/created", timeout=5).json()["tickets"]
    assert isinstance(found, list)
    return found


def test_three_replicas_one_killed_every_ticket_exactly_once(
    tmp_path: Path, sandbox_urls: dict[str, str], postgres_url: str
) -> None:
    """Three `sync --once` replicas share one database; one is SIGKILLed mid-run; after the
    lease expires a restart finishes: every planned ticket exists exactly once."""
    config, env = _config(tmp_path, sandbox_urls, postgres_url)
    command = [*SLM_SYNC, "sync", "--once", "--json", "--config", str(config)]
    replicas = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _tickets(sandbox_urls):
        time.sleep(0.01)
    replicas[0].send_signal(signal.SIGKILL)
    for replica in replicas:
        replica.communicate(timeout=120)
    assert replicas[0].returncode == -signal.SIGKILL
    time.sleep(3.5)  # the killed replica's leases expire
    finish = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finish.returncode == 0, finish.stderr[-2000:]
    planned = {t["key"] for t in json.loads(finish.stdout)["tickets"]}
    keys = Counter(
        label for t in _tickets(sandbox_urls) for label in t["labels"] if label.startswith("slm:")
    )
    assert set(keys) == planned
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        states = Counter(connection.execute(sa.text("SELECT state FROM ledger")).scalars())
    engine.dispose()
    assert states == {"created": len(planned)}
