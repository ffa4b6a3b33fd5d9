"""supervisors and the board: agents.role; indexes for the day's figures

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="agent"))
    # The board reads today's rows only: calls and transfers by creation time, queue entries by
    # arrival, and the timeline entries of a kind (B connected, voicemail) by time.
    op.create_index("ix_calls_created", "calls", ["created_at"])
    op.create_index("ix_transfers_created", "transfers", ["created_at"])
    op.create_index("ix_queue_enqueued", "queue_entries", ["enqueued_at"])
    op.create_index("ix_timeline_kind_at", "timeline", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_timeline_kind_at", table_name="timeline")
    op.drop_index("ix_queue_enqueued", table_name="queue_entries")
    op.drop_index("ix_transfers_created", table_name="transfers")
    op.drop_index("ix_calls_created", table_name="calls")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("role")
