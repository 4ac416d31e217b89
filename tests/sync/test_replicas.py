"""Several replicas on one PostgreSQL: leases, takeover, migrations, and no ticket twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync.state import open_store
from sync.state.schema import records

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
    assert store.schema_version() == "0008"
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("records")}
    assert indexes == {i.name for i in records.indexes}, "0001's one-column indexes are gone"
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


# -- replicas on different hosts ----------------------------------------------------------------
# Each replica runs in its own UTS namespace with its own host name, so the same-host pid check
# cannot see that the other is dead: only its lease running out frees its units.

LEASE_SECONDS = 8
# How long after a dead replica's lease ran out the survivor may take (it wakes at the expiry,
# then runs a cycle: pull, build, lease). The interval is 3600 s: without the lease watch the
# takeover would come an hour later.
TAKEOVER_MARGIN = 5.0


def _separate_hosts() -> None:
    """Skip unless this machine lets a process have its own host name (`unshare -u`, root)."""
    try:
        probe = subprocess.run(
            ["unshare", "-u", "sh", "-c", "hostname replica-probe && hostname"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"replicas on separate hosts need `unshare -u`: {error}")
    if probe.returncode != 0 or probe.stdout.strip() != "replica-probe":
        pytest.skip(
            "replicas on separate hosts need `unshare -u` (root or CAP_SYS_ADMIN): "
            + (probe.stderr.strip() or probe.stdout.strip())
        )


@dataclass
class _Replica:
    """An `slm-sync` process on its own host name, with its JSON log events collected."""

    host: str
    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)  # not JSON: a traceback, say
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, host: str, args: list[str], env: dict[str, str]) -> _Replica:
        command = ["unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', host, *SLM_SYNC]
        process = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        replica = cls(host, process)
        replica.reader = threading.Thread(target=replica._read, daemon=True)
        replica.reader.start()
        return replica

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("{"):
                self.events.append(json.loads(line))
            else:
                self.other_lines.append(line)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 90) -> list[dict[str, Any]]:
        """The first `count` events named `event`, waiting for them (not a timing assert)."""
        deadline = time.monotonic() + timeout
        while len(self.named(event)) < count and time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.host} exited: {self.events[-5:]}"
            time.sleep(0.02)
        found = self.named(event)
        assert len(found) >= count, f"{self.host}: no {count} x {event} in {timeout}s"
        return found[:count]

    def finish(self) -> tuple[int, str]:
        stdout, _ = self.process.communicate(timeout=120)
        if self.reader is not None:
            self.reader.join(timeout=10)
        return self.process.returncode, stdout


def _config_variant(config: Path, name: str, **changes: dict[str, Any]) -> Path:
    """A copy of a cli_config settings file with some sections' keys changed."""
    settings = json.loads(config.read_text())
    for section, keys in changes.items():
        settings[section].update(keys)
    variant = config.with_name(name)
    variant.write_text(json.dumps(settings))
    return variant


def _leases_of(url: str, host: str, kind: str = "ticket:") -> dict[str, float]:
    """unit -> expires_at (database clock) of the `kind` leases held by replicas of `host`."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT unit, expires_at FROM leases WHERE holder LIKE :host"),
            {"host": f"{host}:%"},
        ).all()
    engine.dispose()
    return {unit: float(expires) for unit, expires in rows if unit.startswith(kind)}


def _database_now(url: str) -> float:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        now = connection.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())"))
        value = float(now.scalar_one())
    engine.dispose()
    return value


def _ticket_keys(tickets: list[dict[str, Any]]) -> Counter[str]:
    return Counter(label for t in tickets for label in t["labels"] if label.startswith("slm:"))


def test_a_replica_killed_on_another_host_is_taken_over_within_its_lease_not_its_interval(
    sandbox_process: Callable[..., dict[str, str]],
    cli_config: Callable[..., tuple[Path, dict[str, str]]],
    jira_tickets: Callable[[dict[str, str]], list[dict[str, Any]]],
    postgres_url: str,
) -> None:
    """Replica A (host-a) is SIGKILLed while it holds the review units. Replica B (host-b)
    starts, finds them leased, finishes its cycle and goes idle for its hour-long interval; when
    A's leases run out B wakes, takes every unit over within the lease (+ a cycle's margin) and
    completes the work: every planned ticket exists exactly once."""
    _separate_hosts()
    sandbox_urls = sandbox_process("--services", "8", "--sla-records", "300", "--seed", "11")
    config, env = cli_config(
        sandbox_urls, reviews=5, state_url=postgres_url, lease_seconds=LEASE_SECONDS,
        interval_seconds=3600,
    )  # fmt: skip
    # A asks Jira slowly, so it is caught holding its units; B's speed is the default.
    slow = _config_variant(config, "slow.yaml", jira={"requests_per_second": 5})
    open_store(postgres_url).close()  # the schema, so the test can watch the leases table
    a = _Replica.start("host-a", ["run", "--config", str(slow)], env)
    deadline = time.monotonic() + 90
    while not _leases_of(postgres_url, "host-a") and time.monotonic() < deadline:
        assert a.process.poll() is None, a.events[-5:]
        time.sleep(0.01)
    a.process.send_signal(signal.SIGKILL)
    killed_at = _database_now(postgres_url)
    assert a.finish()[0] == -signal.SIGKILL
    held = _leases_of(postgres_url, "host-a")
    assert held, "A never held a review unit"

    b = _Replica.start("host-b", ["run", "--config", str(config)], env)
    b.wait_for("cycle.done")
    busy = {e["unit"] for e in b.named("lease.busy")}
    assert busy == set(held), "B's first cycle must find A's units still leased"
    woke = b.wait_for("daemon.lease_expired")[0]
    taken = b.wait_for("lease.taken_over", count=len(held))
    b.wait_for("cycle.done", count=2)
    b.process.send_signal(signal.SIGTERM)
    code, _ = b.finish()
    assert code == 0

    assert len(b.named("cycle.done")) == 2, "one cycle, then the takeover cycle; no interval"
    assert woke["holders"] == [next(e["previous"] for e in taken)]
    assert {e["unit"] for e in taken} == set(held)
    for event in taken:
        assert event["previous"].startswith("host-a:") and event["reason"] == "expired"
        assert event["expired_at"] == pytest.approx(held[event["unit"]])
        assert event["at"] >= event["expired_at"], "never before the lease ran out"
        assert event["at"] - event["expired_at"] <= TAKEOVER_MARGIN
        assert event["at"] - killed_at <= LEASE_SECONDS + TAKEOVER_MARGIN

    finish = subprocess.run(
        [*SLM_SYNC, "sync", "--once", "--json", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finish.returncode == 0, finish.stderr[-2000:]
    summary = json.loads(finish.stdout)
    assert (summary["created"], summary["failed"]) == (0, 0), "B left work undone"
    keys = _ticket_keys(jira_tickets(sandbox_urls))
    assert set(keys) == {t["key"] for t in summary["tickets"]}
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]


def test_replicas_starting_together_wait_for_the_first_pull_and_both_succeed(
    sandbox_process: Callable[..., dict[str, str]],
    cli_config: Callable[..., tuple[Path, dict[str, str]]],
    jira_tickets: Callable[[dict[str, str]], list[dict[str, Any]]],
    postgres_url: str,
) -> None:
    """Two `sync --once` replicas on two hosts on an empty store: B starts while A holds the
    first pull, which lasts several lease lengths (renewing); B waits for it instead of failing,
    then both finish ok and every planned ticket exists once. (B starts once A's pull lease is
    seen: started together, a slow interpreter start could let A finish its pull first.)"""
    _separate_hosts()
    sandbox_urls = sandbox_process(
        "--services", "8", "--sla-records", "6000", "--latency-ms", "100", "--seed", "12"
    )
    config, env = cli_config(sandbox_urls, reviews=5, state_url=postgres_url, lease_seconds=2)
    config = _config_variant(config, "paged.yaml", servicenow={"page_size": 50})
    args = ["sync", "--once", "--json", "--config", str(config)]
    open_store(postgres_url).close()  # the schema, so the test can watch the leases table
    a = _Replica.start("host-a", args, env)
    deadline = time.monotonic() + 60
    while not _leases_of(postgres_url, "host-a", "pull:") and time.monotonic() < deadline:
        assert a.process.poll() is None, a.events[-5:]
        time.sleep(0.01)
    assert _leases_of(postgres_url, "host-a", "pull:"), "A never held the pull"
    replicas = [a, _Replica.start("host-b", args, env)]
    results = [replica.finish() for replica in replicas]
    for replica, (code, stdout) in zip(replicas, results, strict=True):
        assert code == 0, (replica.host, replica.events[-3:], replica.other_lines[-5:])
        assert json.loads(stdout)["failed"] == 0
        assert not replica.named("cycle.failed")
    waited = [e for r in replicas for e in r.named("lease.waited") if e["unit"].startswith("pull:")]
    assert len(waited) == 1, "exactly one replica waited for the other's pull"
    assert waited[0]["holder"].startswith("host-a:"), "B waited for A"
    # A renewal comes at least a third of a lease after the one before: six seen renewals mean
    # the wait outlasted 1.5 leases, where a waiting replica used to fail.
    assert waited[0]["renewals"] >= 6
    assert not [e for r in replicas for e in r.named("lease.taken_over")]
    planned = {t["key"] for _, stdout in results for t in json.loads(stdout)["tickets"]}
    keys = _ticket_keys(jira_tickets(sandbox_urls))
    assert set(keys) == planned
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
