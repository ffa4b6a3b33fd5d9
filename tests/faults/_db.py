"""Where the fault suite's database lives (see conftest.py)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.config import normalise_database_url

_siblings: dict[tuple[str, str], str] = {}


def sibling_database(url: str, suffix: str = "faults") -> str:
    """``<db>_<suffix>`` on the same Postgres server, created if missing; the URL itself if that fails."""
    if (url, suffix) in _siblings:
        return _siblings[(url, suffix)]
    parsed = make_url(url)
    name = f"{parsed.database}_{suffix}"
    target = parsed.set(database=name).render_as_string(hide_password=False)
    try:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    except Exception:  # no CREATEDB right: share the given database
        target = url
    _siblings[(url, suffix)] = target
    return target


def postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    url = normalise_database_url(url)
    return sibling_database(url) if url.startswith("postgresql") else url


def terminate_backends(database_url: str) -> int:
    """Every other connection to this database is killed, as in a failover or a restart."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        engine.dispose()
