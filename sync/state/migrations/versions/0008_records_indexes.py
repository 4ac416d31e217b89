"""The mirror's indexes as the queries use them, and no index that serves none.

0005 meant to drop `ix_records_agreement_key` and `ix_records_service_key` (0001's one-column
indexes) but only created their replacements, so every record written maintained two indexes
too many. They go now. A webhook's partial build asks for a few agreements' tallies and
breaches in the period (`agreement_key IN (...)` and a `decided` range): `ix_records_stream_
agreement` (stream, agreement_key, decided, month, breached) answers it from the index alone,
where `ix_records_stream_decided` would walk every record decided in the period.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_records_agreement_key", table_name="records", if_exists=True)
    op.drop_index("ix_records_service_key", table_name="records", if_exists=True)
    op.create_index(
        "ix_records_stream_agreement",
        "records",
        ["stream", "agreement_key", "decided", "month", "breached"],
    )


def downgrade() -> None:
    op.drop_index("ix_records_stream_agreement", table_name="records", if_exists=True)
    op.create_index("ix_records_agreement_key", "records", ["agreement_key"])
    op.create_index("ix_records_service_key", "records", ["service_key"])
