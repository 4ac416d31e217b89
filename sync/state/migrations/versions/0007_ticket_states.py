"""The last known state of every ticket of ours, so a cycle reads only the tickets that changed.

`ticket_states`: per target and ticket key, the state as last read (JSON: status, labels, due
date, assignee, comments, ...), or `gone` when a full read no longer found the ticket (deleted,
moved to another project, its label removed). `ticket_reads`: per target, where the next
incremental read starts (`mark`: the target's own notion, a time or a `sys_updated_on`) and when
the last full read was made.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_states",
        sa.Column("target", sa.String(32), primary_key=True),
        sa.Column("ticket_key", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ticket_reads",
        sa.Column("target", sa.String(32), primary_key=True),
        sa.Column("mark", sa.String(64), nullable=False),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticket_reads")
    op.drop_table("ticket_states")
