"""The pool does not ping before each checkout (a round trip per unit of work): a connection that
died under it (a database restart or failover) costs one failed statement, then the store
reconnects and runs the unit of work again, and the caller never sees the error."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from gateway.adapters.store.models import Agent
from tests.faults._db import terminate_backends

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postg"), reason="needs Postgres (TEST_DATABASE_URL)"
)


def test_units_of_work_and_jobs_survive_connections_killed_under_the_pool(store, database_url):
    def add(session):
        session.add(Agent(id="agent_r", name="R", status="available", browser=True, secret_hash="x" * 64))

    store.run(add)
    # Several pooled connections, all idle in the pool.
    connections = [store.engine.connect() for _ in range(3)]
    for conn in connections:
        conn.execute(text("SELECT 1"))
    for conn in connections:
        conn.close()
    assert terminate_backends(database_url) >= 1

    assert store.read(lambda s: s.get(Agent, "agent_r").name) == "R"
    store.run(lambda s: store.enqueue_payload(s, "delete_room", {"room": "r"}))
    terminate_backends(database_url)
    due = store.due_jobs(10)
    assert [kind for _, kind in due] == ["delete_room"]
    terminate_backends(database_url)
    job = store.claim(due[0][0], 30)
    terminate_backends(database_url)
    store.finish_job(job.id)
    assert store.due_jobs(10) == []
