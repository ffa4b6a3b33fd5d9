"""a number may go to several teams: the caller picks one from a menu (in the mapping's order)

Revision ID: 0005
Revises: 0004

Existing mappings (one team a number) keep working unchanged, as the first and only choice.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _rebuild(primary_key: list[str], with_position: bool) -> None:
    """The table with its new key. SQLite cannot alter a key in place: a copy is made, as alembic's
    batch mode would, but by hand so the key is exactly the one declared here."""
    columns = [
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
    ]
    if with_position:
        columns.append(sa.Column("position", sa.Integer(), nullable=False, server_default="1"))
    op.create_table("team_numbers_next", *columns, sa.PrimaryKeyConstraint(*primary_key))
    copied = "number, team_id, position" if with_position else "number, team_id"
    source = "number, team_id, 1" if with_position else "number, team_id"
    op.execute(f"INSERT INTO team_numbers_next ({copied}) SELECT {source} FROM team_numbers")
    op.drop_table("team_numbers")
    op.rename_table("team_numbers_next", "team_numbers")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(["number", "team_id"], with_position=True)
        return
    op.add_column("team_numbers", sa.Column("position", sa.Integer(), nullable=False, server_default="1"))
    op.drop_constraint("team_numbers_pkey", "team_numbers", type_="primary")
    op.create_primary_key("team_numbers_pkey", "team_numbers", ["number", "team_id"])


def downgrade() -> None:
    op.execute("DELETE FROM team_numbers WHERE position > 1")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(["number"], with_position=False)
        return
    op.drop_constraint("team_numbers_pkey", "team_numbers", type_="primary")
    op.create_primary_key("team_numbers_pkey", "team_numbers", ["number"])
    op.drop_column("team_numbers", "position")
