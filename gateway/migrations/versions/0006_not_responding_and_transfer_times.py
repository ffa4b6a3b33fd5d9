"""why an agent is not responding; when a transfer was offered and when its target joined

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_responding", sa.JSON(), nullable=True))
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offered_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("target_joined_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("target_joined_at")
        batch_op.drop_column("offered_at")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("not_responding")
