"""The state store keeps cursors, the mirror and the ledger consistent on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sync.state import MirrorRecord, StateStore, open_store


def _record(key: str, breached: bool) -> MirrorRecord:
    return MirrorRecord(
        stream="sla_record",
        key=key,
        body={"key": key, "breached": breached},
        service_key="svc-1",
        agreement_key="agr-1",
        month="2025-03",
        breached=breached,
    )


def test_migrations_bring_an_empty_database_to_head(store: StateStore) -> None:
    """A new database is migrated on open; opening it again is a no-op."""
    assert store.schema_version() == "0008"
    store.migrate()
    assert store.schema_version() == "0008"


def test_page_and_cursor_commit_together(store: StateStore) -> None:
    """A stored page advances the cursor; an updated record replaces its earlier version."""
    store.store_page(
        "servicenow", "sla_record", [_record("a", False)], ("2025-03-01 10:00:00", "a")
    )
    store.store_page("servicenow", "sla_record", [_record("a", True)], ("2025-03-02 10:00:00", "a"))
    assert store.cursor("servicenow", "sla_record") == ("2025-03-02 10:00:00", "a")
    mirrored = list(store.mirrored("sla_record"))
    assert [(r.key, r.breached) for r in mirrored] == [("a", True)]
    assert store.count("sla_record") == 1


def test_full_resync_forgets_cursors_but_keeps_the_mirror(store: StateStore) -> None:
    """reset_cursors makes the next read start from scratch without losing stored records."""
    store.store_page("servicenow", "service", [], ("2025-03-01 10:00:00", "x"))
    store.reset_cursors("servicenow")
    assert store.cursor("servicenow", "service") is None


def test_ledger_intent_then_created(store: StateStore) -> None:
    """An intent is durable before the create; a created row keeps its ticket and hash."""
    store.record_intent("jira", "slm:2026:cycle", parent_key=None, kind="cycle", spec_hash="h1")
    assert store.ledger_rows("jira")["slm:2026:cycle"].state == "intent"
    store.record_created(
        "jira",
        "slm:2026:cycle",
        ticket_key="SLM-1",
        ticket_id="1",
        ticket_url=None,
        applied_hash="h1",
    )
    row = store.ledger_rows("jira")["slm:2026:cycle"]
    assert (row.state, row.ticket_key, row.applied_hash) == ("created", "SLM-1", "h1")
    store.record_intent("jira", "slm:2026:cycle", parent_key=None, kind="cycle", spec_hash="h2")
    assert store.ledger_rows("jira")["slm:2026:cycle"].state == "created"


def test_people_cache_remembers_unresolved_people(store: StateStore) -> None:
    """Someone the target does not know is cached as unresolved, case-insensitively."""
    store.remember_people("jira", {"Ann@Example.com": None, "BOB@example.com": "712020:abc"})
    assert store.people_cache("jira") == {"ann@example.com": None, "bob@example.com": "712020:abc"}
    assert store.people_cache("jira", retry_unresolved_after=0) == {
        "bob@example.com": "712020:abc"
    }, "a miss is looked up again once it is old enough"


def test_sqlite_store_creates_its_data_directory(tmp_path: Path) -> None:
    """The default SQLite URL points into a data dir that need not exist yet."""
    opened = open_store(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'state.db'}")
    assert (tmp_path / "new" / "deeper" / "state.db").exists()
    opened.close()


def test_two_processes_opening_a_new_sqlite_store_together_both_succeed(tmp_path: Path) -> None:
    """Replicas or a restart racing on a fresh state file: one migrates, the other waits."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race' / 'state.db'}"
    code = f"from sync.state import open_store; print(open_store({url!r}).schema_version())"
    runs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=60)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert outputs == ["0008"] * 3


def test_a_few_services_rows_are_read_by_key_service_and_body_text(store: StateStore) -> None:
    """A partial build's reads: records by key (more than one chunk of 500), a stream's rows of
    some services and of none in key order, rows whose body names a text (`%` and `_` are
    characters, not wildcards), and SLA tallies and breaches of some agreements only."""
    people = [MirrorRecord("person", f"p{n:04d}", {"n": n}) for n in range(1200)]
    store.store_page("servicenow", "person", people, None)
    found = store.mirrored_keys("person", [f"p{n:04d}" for n in range(0, 1200, 2)] + ["nobody"])
    assert [r.key for r in found] == [f"p{n:04d}" for n in range(0, 1200, 2)]
    skipped = [
        MirrorRecord("skipped", key, {"key": key}, service_key=service)
        for key, service in [("d", "s1"), ("c", None), ("b", "s2"), ("a", "s1"), ("e", "s3")]
    ]
    store.store_page("servicenow", "skipped", skipped, None)
    assert [r.key for r in store.mirrored_of("skipped", ["s1", "s2"])] == ["a", "b", "d"]
    assert [r.key for r in store.mirrored_of("skipped", ["s1"], unplaced=True)] == ["a", "c", "d"]
    bodies = {"x": {"name": "5%_off"}, "y": {"name": "5%Xoff"},
              "z": {"component_key": "c-1"}, "w": {"component_key": "c-10"}}  # fmt: skip
    agreements = [MirrorRecord("agreement", k, b) for k, b in bodies.items()]
    store.store_page("servicenow", "agreement", agreements, None)
    assert [r.key for r in store.mirrored_mentioning("agreement", ['"5%_off"'])] == ["x"]
    assert [r.key for r in store.mirrored_mentioning("agreement", ['"c-1"', '"5%_off"'])] == [
        "x",
        "z",
    ]
    many = [f'"none-{n}"' for n in range(120)] + ['"c-10"']  # more texts than one query takes
    assert [r.key for r in store.mirrored_mentioning("agreement", many)] == ["w"]
    records = [
        MirrorRecord("sla_record", f"r{n:03d}", {"key": f"r{n:03d}"}, agreement_key=f"agr-{n % 3}",
                     month="2025-03", breached=n % 2 == 0, decided="2025-03-10T00:00:00.000000")
        for n in range(30)
    ]  # fmt: skip
    store.store_page("servicenow", "sla_record", records, None)
    start, end = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    tallies = store.sla_tallies(start, end, agreement_keys=["agr-0", "agr-2", "agr-9"])
    assert sorted((t.agreement_key, t.measured, t.breached) for t in tallies) == [
        ("agr-0", 10, 5),
        ("agr-2", 10, 5),
    ]
    assert len(store.sla_tallies(start, end)) == 3
    assert store.sla_tallies(start, end, agreement_keys=[]) == []
    breached = list(store.breached_sla(start, end, agreement_keys=["agr-1", "agr-2"]))
    assert [r.key for r in breached] == sorted(
        r.key for r in records if r.breached and r.agreement_key in ("agr-1", "agr-2")
    )


def test_a_held_ledger_is_read_once_per_cycle_and_again_after_a_write(store: StateStore) -> None:
    """Within `held_ledger` (one cycle) the ledger is read once, and again after a write of
    this store; another replica's write (another store object) shows in a `fresh` read (the
    reconciler's, under its leases) and in the next cycle, not in the held one."""
    url = store.engine.url.render_as_string(hide_password=False)
    other = open_store(url)  # another replica on the same database
    store.record_intent("jira", "k1", parent_key=None, kind="review", spec_hash="h1")
    with store.held_ledger():
        reads = store.ledger_reads
        assert set(store.ledger_rows("jira")) == {"k1"}
        rows = store.ledger_rows("jira")
        rows.clear()  # the caller's copy: the held read is not changed
        assert set(store.ledger_rows("jira")) == {"k1"}
        assert store.ledger_reads == reads + 1

        store.record_created(
            "jira", "k1", ticket_key="T-1", ticket_id="1", ticket_url=None, applied_hash="h1"
        )
        assert store.ledger_rows("jira")["k1"].state == "created"
        assert store.ledger_reads == reads + 2

        other.record_intent("jira", "k2", parent_key=None, kind="review", spec_hash="h2")
        assert set(store.ledger_rows("jira")) == {"k1"}
        assert set(store.ledger_rows("jira", fresh=True)) == {"k1", "k2"}
    with store.held_ledger():
        assert set(store.ledger_rows("jira")) == {"k1", "k2"}
    reads = store.ledger_reads
    store.ledger_rows("jira")
    store.ledger_rows("jira")
    assert store.ledger_reads == reads + 2, "outside a cycle every call reads"
    other.close()
