"""web calls: a call's channel (phone | web), its verified facts, and web callers' join tokens

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=8), nullable=False, server_default="phone"))
        batch_op.add_column(sa.Column("facts", sa.JSON(), nullable=True))
        batch_op.create_index("ix_calls_channel_state", ["channel", "state"], unique=False)
    op.create_table(
        "web_joins",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("call_id", sa.String(length=40), nullable=False),
        sa.Column("room", sa.String(length=128), nullable=False),
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=True),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "gen", name="uq_web_joins_call_gen"),
    )


def downgrade() -> None:
    op.drop_table("web_joins")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_channel_state")
        batch_op.drop_column("facts")
        batch_op.drop_column("channel")
