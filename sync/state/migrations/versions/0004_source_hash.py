"""The raw source row's hash on mirrored records, so re-read rows stored unchanged are dropped.

`records.source_hash`: a hash of the raw record as the source sent it (with the stream name).
Incremental reads re-read an overlap window behind the cursor (late rows); a row whose hash is
already mirrored is neither mapped nor stored again. Rows mirrored before this revision have
none and are stored once more the next time they are read.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("source_hash", sa.String(64), nullable=True))
    op.create_index("ix_records_stream_source_hash", "records", ["stream", "source_hash"])


def downgrade() -> None:
    op.drop_index("ix_records_stream_source_hash", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("source_hash")
