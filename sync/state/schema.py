"""The state store's tables (SQLAlchemy Core). Alembic migrations create and evolve them.

- `cursors`: per source stream, where the last incremental read stopped (and the run's bound).
- `records`: the local mirror of review-relevant source records, mapped (entity JSON), by
  stream and key, with the raw row's hash (`source_hash`); SLA outcomes carry their agreement,
  service and month for attainment queries.
- `ledger`: one row per ticket key in a target: intent, ticket id, spec hash (idempotency);
  `sent_at` starts the quarantine of a create whose outcome is unknown.
- `ticket_steps`: what follows a create (chart attachment, change note, watcher): pending / done.
- `cycles`: review cycles and their state machine; `runs`: one row per sync run.
- `people`: email -> account id / user name per target system (the user cache).
- `leases`: which replica works on which unit (a service's review, the cycle, the pull) until when.
- `source_state` / `source_saves`: what a source connector keeps between cycles (the CMDB
  mirror: relation edges, reached CIs, cursors, the last full walk), by item, and its version.
- `built_packs`: the pack and chart each selected review was last built with, and the
  fingerprint of its inputs (a restarted process renders only what changed).
- `ticket_states`: the last known state of each ticket of ours (JSON), or `gone`; `ticket_reads`:
  per target, where the next incremental ticket read starts and when the last full read was.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

cursors = Table(
    "cursors",
    metadata,
    Column("system", String(32), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("updated", String(64), nullable=False),
    Column("record_id", String(255), nullable=False, default=""),
    Column("committed_at", DateTime(timezone=True), nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("stream", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("service_key", String(255)),
    Column("agreement_key", String(255)),
    Column("month", String(7)),
    Column("breached", Boolean),
    Column("body", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("source_hash", String(64)),  # the raw row's hash: re-read rows stored unchanged
    # sla_record: when it counts (UTC, fixed width; NULL while undecided): sync.state.decided
    Column("decided", String(32)),
    Index("ix_records_stream_source_hash", "stream", "source_hash"),
    Index("ix_records_stream_decided", "stream", "decided", "agreement_key", "month", "breached"),
    Index("ix_records_stream_service_key", "stream", "service_key", "key"),
    Index("ix_records_stream_agreement", "stream", "agreement_key", "decided", "month", "breached"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("parent_key", String(255)),
    Column("kind", String(16), nullable=False),
    # intent (not sent yet) | sending (request left, outcome unknown) | doubt (sent, failed in
    # transit) | failed (refused or never sent) | created
    Column("state", String(16), nullable=False),
    Column("ticket_key", String(64)),
    Column("ticket_id", String(64)),
    Column("ticket_url", Text),
    Column("spec_hash", String(64), nullable=False),
    Column("applied_hash", String(64)),
    Column("frozen", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
)

ticket_steps = Table(
    "ticket_steps",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("step", String(255), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | done
    Column("digest", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

cycles = Table(
    "cycles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(24), nullable=False),
    Column("selection", Text),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("summary", Text),
)

leases = Table(
    "leases",
    metadata,
    Column("unit", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", Float, nullable=False),
)

people = Table(
    "people",
    metadata,
    Column("system", String(32), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("account", String(255)),
    Column("name", String(255)),
    Column("resolved", Boolean, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

source_state = Table(
    "source_state",
    metadata,
    Column("system", String(32), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body", Text, nullable=False),
)

source_saves = Table(
    "source_saves",
    metadata,
    Column("system", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)

built_packs = Table(
    "built_packs",
    metadata,
    Column("service_key", String(255), primary_key=True),
    Column("cycle", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("pack", Text, nullable=False),
    Column("chart", LargeBinary, nullable=False),
)

ticket_states = Table(
    "ticket_states",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("ticket_key", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("gone", Boolean, nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=False),
)

ticket_reads = Table(
    "ticket_reads",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("mark", String(64), nullable=False),
    Column("full_at", DateTime(timezone=True), nullable=False),
)
