"""What a process keeps between cycles (the CMDB mirror, the built packs): a restart starts warm.

`source_state`: one row per item of a source's kept state, by system, kind and key (kinds are
the connector's: for ServiceNow `service`, `ci`, `edge`, `unusable`, `expanded`, `person` and
`meta`; plus the pull's own `pull` row with the stream cursors the state was saved with); the
body is JSON. Only items that changed since the last save are written.
`source_saves`: per system, the version of the kept state (one more with every save) and when
it was saved; a replica whose in-memory state is of another version reloads it.
`built_packs`: per selected service, the pack and chart the last build rendered, with the
fingerprint of its inputs and a digest of the code that built it (`sync.kept_packs`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_state",
        sa.Column("system", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "source_saves",
        sa.Column("system", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "built_packs",
        sa.Column("service_key", sa.String(255), primary_key=True),
        sa.Column("cycle", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("pack", sa.Text, nullable=False),
        sa.Column("chart", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("built_packs")
    op.drop_table("source_saves")
    op.drop_table("source_state")
