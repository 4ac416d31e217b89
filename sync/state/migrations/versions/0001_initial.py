"""Initial state schema: cursors, records mirror, ledger, cycles, runs, people cache.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cursors",
        sa.Column("system", sa.String(32), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("updated", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("committed_at", _TS, nullable=False),
    )
    op.create_table(
        "records",
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("service_key", sa.String(255)),
        sa.Column("agreement_key", sa.String(255)),
        sa.Column("month", sa.String(7)),
        sa.Column("breached", sa.Boolean()),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("seen_at", _TS, nullable=False),
    )
    op.create_index("ix_records_service_key", "records", ["service_key"])
    op.create_index("ix_records_agreement_key", "records", ["agreement_key"])
    op.create_table(
        "ledger",
        sa.Column("target", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("parent_key", sa.String(255)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ticket_key", sa.String(64)),
        sa.Column("ticket_id", sa.String(64)),
        sa.Column("ticket_url", sa.Text()),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("applied_hash", sa.String(64)),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "cycles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("selection", sa.Text()),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("closed_at", _TS),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text()),
    )
    op.create_table(
        "people",
        sa.Column("system", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("account", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("checked_at", _TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("people", "runs", "cycles", "ledger", "records", "cursors"):
        op.drop_table(table)
