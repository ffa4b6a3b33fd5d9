"""Schema bootstrapping: workers skip Alembic when the release phase already migrated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from gateway.adapters.store.db import SCHEMA_HEAD, Store, alembic_config

PROBE = (
    "import sys; from gateway.adapters.store.db import Store; s = Store(sys.argv[1]); s.ensure_schema(); "
    "print(s.schema_is_current(), 'alembic' in sys.modules)"
)


def ensure_schema_in_a_fresh_process(url: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()


def test_schema_head_constant_is_alembics_head(database_url):
    assert ScriptDirectory.from_config(alembic_config(database_url)).get_current_head() == SCHEMA_HEAD


def test_a_fresh_database_is_migrated_and_a_current_one_skips_alembic(database_url):
    store = Store(database_url)
    try:
        assert not store.schema_is_current()
    finally:
        store.engine.dispose()
    assert ensure_schema_in_a_fresh_process(database_url) == "True True"  # migrated: Alembic was loaded
    assert ensure_schema_in_a_fresh_process(database_url) == "True False"  # current: Alembic never imported
