"""When each SLA record was decided, and the indexes the build's attainment queries use.

`records.decided`: for `sla_record` rows, the moment the record counts in attainment (its stop,
or its start for a running clock that has already breached; NULL while undecided), in UTC as a
fixed-width text (`YYYY-MM-DDTHH:MM:SS.ffffff`) so range comparisons are text comparisons on
both databases. The build tallies attainment with one GROUP BY over
`ix_records_stream_decided` (stream, decided, agreement_key, month, breached: the query needs
no table row) and reads only breached rows' bodies (the same index filters on `breached`, so
only breached rows are fetched from the table);
a service's records of a stream in key order (`StateStore.mirrored(stream, service_key=...)`)
come from `ix_records_stream_service_key`, which replaces `ix_records_service_key`;
`ix_records_agreement_key` served no query and is dropped (fewer indexes to write per record).
Existing SLA rows are filled in from their bodies.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from sync.state.decided import decided_text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("decided", sa.String(32), nullable=True))
    connection = op.get_bind()
    records = sa.table(
        "records", sa.column("stream"), sa.column("key"), sa.column("body"), sa.column("decided")
    )
    rows = connection.execute(
        sa.select(records.c.key, records.c.body).where(records.c.stream == "sla_record")
    ).all()
    values = [{"k": key, "d": decided_text(json.loads(body))} for key, body in rows]
    if values:
        connection.execute(
            sa.update(records)
            .where(records.c.stream == "sla_record", records.c.key == sa.bindparam("k"))
            .values(decided=sa.bindparam("d")),
            values,
        )
    op.create_index(
        "ix_records_stream_decided",
        "records",
        ["stream", "decided", "agreement_key", "month", "breached"],
    )
    op.create_index("ix_records_stream_service_key", "records", ["stream", "service_key", "key"])


def downgrade() -> None:
    op.create_index("ix_records_agreement_key", "records", ["agreement_key"])
    op.create_index("ix_records_service_key", "records", ["service_key"])
    op.drop_index("ix_records_stream_service_key", table_name="records")
    op.drop_index("ix_records_stream_decided", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("decided")
