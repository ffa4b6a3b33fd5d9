"""Calls by team and end: the queue's wait estimate reads a team's last handle times on every pass of
every waiting caller's hold loop, which without it scans the whole calls table

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_calls_team_ended", "calls", ["team_id", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_team_ended", table_name="calls")
