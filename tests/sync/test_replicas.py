"""Several replicas on one PostgreSQL: leases, takeover, migrations, and no ticket twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    assert store.schema_version() == "0003"
    assert "slm:2026:cycle" in store.ledger_rows("jira")
    assert store.acquire_lease("pull:servicenow", "replica-a", 60)
    store.close()


def test_three_replicas_one_killed_every_ticket_exactly_once(
    sandbox_process: Callable[..., dict[str, str]],
    cli_config: Callable[..., tuple[Path, dict[str, str]]],
    jira_tickets: Callable[[dict[str, str]], list[dict[str, Any]]],
    postgres_url: str,
) -> None:
    """Three `sync --once` replicas share one database; one is SIGKILLed mid-run; after the
    lease expires a restart finishes: every planned ticket exists exactly once."""
    sandbox_urls = sandbox_process(
        "--services", "8", "--sla-records", "1500", "--latency-ms", "20", "--seed", "9"
    )
    config, env = cli_config(sandbox_urls, reviews=5, state_url=postgres_url, lease_seconds=3)
    command = [*SLM_SYNC, "sync", "--once", "--json", "--config", str(config)]
    replicas = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not jira_tickets(sandbox_urls):
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
        label
        for t in jira_tickets(sandbox_urls)
        for label in t["labels"]
        if label.startswith("slm:")
    )
    assert set(keys) == planned
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        states = Counter(connection.execute(sa.text("SELECT state FROM ledger")).scalars())
    engine.dispose()
    assert states == {"created": len(planned)}
