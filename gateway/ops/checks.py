"""Database checks shared by ``doctor`` and ``/readyz``."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.adapters.store import Store
from gateway.adapters.store.db import alembic_config


@functools.lru_cache(maxsize=1)
def code_heads() -> tuple[str, ...]:
    """The newest migration revisions shipped with the code (read once: they cannot change at runtime)."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


@dataclass(frozen=True)
class Schema:
    database: tuple[str, ...]
    code: tuple[str, ...]

    @property
    def current(self) -> bool:
        return self.database == self.code

    def describe(self) -> str:
        at = f"database at {', '.join(self.database)}" if self.database else "database has no migrations applied"
        return f"{at}; code at {', '.join(self.code)}"


def schema(store: Store) -> Schema:
    """Connects, so it also proves the database is reachable (raises when it is not)."""
    with store.engine.connect() as conn:
        database = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    return Schema(database, code_heads())
