"""Alembic environment: the URL comes from the caller's config (set by Store.migrate / the CLI)."""

from alembic import context
from sqlalchemy import create_engine

from gateway.adapters.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: migrations run through Store.migrate or the db-upgrade command")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
