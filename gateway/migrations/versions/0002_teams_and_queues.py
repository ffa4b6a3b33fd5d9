"""teams, agent-team membership, number-to-team mapping, durable queue entries

Revision ID: 0002
Revises: 0001

Every existing agent joins the default team, so a setup with one team behaves as before.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    teams = op.create_table(
        "teams",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("hold_music_url", sa.String(length=500), nullable=True),
        sa.Column("max_wait_s", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "agent_teams",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "team_id"),
    )
    with op.batch_alter_table("agent_teams", schema=None) as batch_op:
        batch_op.create_index("ix_agent_teams_team", ["team_id"], unique=False)
    op.create_table(
        "team_numbers",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "queue_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("call_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("active_call_id", sa.String(length=40), nullable=True),
        sa.Column("offered_agent_id", sa.String(length=40), nullable=True),
        sa.Column("offered_at", sa.DateTime(), nullable=True),
        sa.Column("offers", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("callback_number", sa.String(length=20), nullable=True),
        sa.Column("callback_attempts", sa.Integer(), nullable=False),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.Column("wait_s", sa.Float(), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_call_id"),
    )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.create_index("ix_queue_line", ["team_id", "state", "priority", "enqueued_at"], unique=False)
        batch_op.create_index("ix_queue_call", ["call_id"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.String(length=40), nullable=True))

    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(teams, [{"id": "default", "name": "Default", "version": 1, "created_at": now}])
    op.execute("INSERT INTO agent_teams (agent_id, team_id) SELECT id, 'default' FROM agents")


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("team_id")
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_call")
        batch_op.drop_index("ix_queue_line")
    op.drop_table("queue_entries")
    op.drop_table("team_numbers")
    with op.batch_alter_table("agent_teams", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_teams_team")
    op.drop_table("agent_teams")
    op.drop_table("teams")
