"""Attainment from the mirror's GROUP BY equals the record-by-record accumulator, and the state
store's queries use their indexes (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from review import Agreement, ReviewPeriod, SlaRecord, SourceRef, compute_attainment
from sync.build import stored_attainment
from sync.pull import _mirror
from sync.state import MirrorRecord, StateStore, open_store

PERIOD = ReviewPeriod(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))


def _agreements() -> list[Agreement]:
    return [
        Agreement.model_validate(
            {
                "key": f"agr-{n}",
                "name": f"Agreement {n}",
                "kind": "SLA",
                "metric": "resolution",
                "service_key": "svc-1",
                "target_percent": 90.0 + n,
                "window": 3600.0 * (n + 1),
            }
        )
        for n in range(4)
    ]


def _records(rng: random.Random, count: int) -> list[SlaRecord]:
    """Records around the period's edges, in several offsets, running or stopped, some of an
    agreement nobody knows."""
    records = []
    edges = [PERIOD.start, PERIOD.end, datetime(2026, 2, 1, tzinfo=UTC)]
    for n in range(count):
        edge = rng.choice(edges)
        start = (edge + timedelta(minutes=rng.randint(-3000, 3000))).astimezone(rng.choice(ZONES))
        stop = None if rng.random() < 0.3 else start + timedelta(minutes=rng.randint(0, 2000))
        records.append(
            SlaRecord(
                key=f"r{n:05d}",
                agreement_key=f"agr-{rng.randint(0, 4)}",  # agr-4 is unknown
                task_ref=f"INC{n:07d}",
                service_key="svc-1",
                priority=rng.choice([None, "1 - Critical", "2 - High", "3 - Moderate"]),
                start=start,
                stop=stop,
                breached=rng.random() < 0.35,
                elapsed=timedelta(minutes=rng.randint(1, 900)) if rng.random() < 0.9 else None,
                source=SourceRef(system="servicenow", table="task_sla", id=f"r{n:05d}"),
            )
        )
    return records


def test_stored_attainment_equals_the_accumulator_on_random_data(store: StateStore) -> None:
    """Counts, months, statuses, priorities and the worst breaches are the same, whatever the
    offsets, running clocks and period edges of the records."""
    rng = random.Random(18)
    agreements = _agreements()
    for round_ in range(3):
        records = _records(rng, 700)
        mirrored = [_mirror("sla_record", r.key, r, f"h{round_}-{r.key}") for r in records]
        store.store_page("servicenow", "sla_record", mirrored, None)
        expected = compute_attainment(agreements, records, PERIOD, at_risk_margin_percent=2.0)
        assert stored_attainment(store, agreements, PERIOD, 2.0) == expected
        assert any(a.measured for a in expected.values())
        assert any(a.top_breaches for a in expected.values())


def test_sla_records_mirrored_without_the_column_count_from_their_body(store: StateStore) -> None:
    """A record written by another path (no `decided`/`month` given) still counts correctly."""
    agreements = _agreements()
    records = _records(random.Random(7), 200)
    bare = [
        MirrorRecord(
            stream="sla_record",
            key=r.key,
            body=r.model_dump(mode="json"),
            agreement_key=r.agreement_key,
            breached=r.breached,
        )
        for r in records
    ]
    store.store_page("servicenow", "sla_record", bare, None)
    expected = compute_attainment(agreements, records, PERIOD, at_risk_margin_percent=2.0)
    assert stored_attainment(store, agreements, PERIOD, 2.0) == expected


def test_the_store_queries_use_their_indexes(store: StateStore) -> None:
    """Attainment tallies, breached bodies, hash look-ups, a service's records, and the reads
    of a webhook's partial build (a few agreements', keys, no service's, body matches within
    a stream): index scans."""
    sqlite = store.engine.dialect.name == "sqlite"
    rng = random.Random(3)
    for service in range(20):
        records = [
            r.model_copy(update={"service_key": f"svc-{service}"}) for r in _records(rng, 100)
        ]
        mirrored = [
            _mirror("sla_record", f"{service}-{r.key}", r, f"h{service}{r.key}") for r in records
        ]
        store.store_page("servicenow", "sla_record", mirrored, None)
    for stream in ("agreement", "person", "skipped", "material"):  # a partial build's streams
        rows = [
            MirrorRecord(stream, f"{stream}-{n}", {"key": f"{stream}-{n}"},
                         service_key=None if n % 7 == 0 else f"svc-{n % 20}")
            for n in range(200)
        ]  # fmt: skip
        store.store_page("servicenow", stream, rows, None)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    primary = "sqlite_autoindex_records_1" if sqlite else "records_pkey"
    by_stream = ("ix_records_stream_service_key", "ix_records_stream_decided",
                 "ix_records_stream_source_hash", "ix_records_stream_agreement",
                 primary)  # fmt: skip
    expected = {
        "sla_tallies": ("ix_records_stream_decided",),
        "breached_sla": ("ix_records_stream_decided",),
        "known": ("ix_records_stream_source_hash",),
        "mirrored_service": ("ix_records_stream_service_key",),
        # a webhook's partial build: its agreements' tallies and breaches, people by key, the
        # skipped rows of no service, the stream's rows whose body names a key (by the stream)
        "sla_tallies_of": ("ix_records_stream_agreement",),
        "breached_sla_of": ("ix_records_stream_agreement",),
        "mirrored_keys": (primary, "ix_records_stream_service_key"),
        "mirrored_unplaced": ("ix_records_stream_service_key",),
        "mirrored_mentioning": by_stream,
    }
    for query, indexes in expected.items():
        plan = store.explain(query, period=(PERIOD.start, PERIOD.end))
        index = next((i for i in indexes if i in plan), None)
        assert index is not None, f"{query}: {plan}"
        if sqlite:
            assert "SCAN records" not in plan.replace(f"USING COVERING INDEX {index}", ""), plan
        else:
            assert "Seq Scan" not in plan, plan


def test_migration_fills_in_when_existing_records_were_decided(tmp_path: Path) -> None:
    """SLA records mirrored before revision 0005 count after the upgrade, with no new read."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    old = open_store(url, migrate_to="0004")
    agreements = _agreements()
    records = _records(random.Random(5), 300)
    with old.engine.begin() as connection:
        for record in records:
            connection.execute(
                sa.text(
                    "INSERT INTO records (stream, key, agreement_key, month, breached, body,"
                    " seen_at) VALUES ('sla_record', :k, :a, :m, :b, :body, :now)"
                ),
                {
                    "k": record.key,
                    "a": record.agreement_key,
                    "m": (record.stop or record.start).strftime("%Y-%m"),
                    "b": record.breached,
                    "body": record.model_dump_json(),
                    "now": datetime.now(UTC),
                },
            )
    old.close()
    store = open_store(url)
    expected = compute_attainment(agreements, records, PERIOD, at_risk_margin_percent=2.0)
    assert stored_attainment(store, agreements, PERIOD, 2.0) == expected
    store.close()
