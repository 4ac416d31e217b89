"""Creates in doubt and the follow-up steps of a ticket (attachments, comments, watchers).

`ledger.sent_at`: when a create request for the key last left (state `sending` / `doubt`), so a
create whose outcome is unknown is quarantined across restarts and replicas. `ticket_steps`: one
row per step of a ticket after its create (the chart attachment, a change note, a watcher),
`pending` before the call and `done` after it, with the digest of what it sent.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "ticket_steps",
        sa.Column("target", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("step", sa.String(255), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticket_steps")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("sent_at")
