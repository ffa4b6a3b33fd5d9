"""The unit of work's own rules, the same on the in-memory twin and on the database: a row
changes only if nobody changed it since it was read, and ``run`` runs a unit that lost such a
race again on fresh data."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store import StaleState
from gateway.adapters.store.models import QueueEntry
from gateway.domain import agents as agent_rules
from gateway.domain import queues as Q


def test_a_row_changed_by_another_unit_since_it_was_read_is_not_overwritten(desk):
    desk.agent("alice", idle_min=5)
    seen = desk.units.read(lambda uow: uow.agents.get("alice"))
    desk.set_status("alice", agent_rules.OFFLINE)  # another unit, committed meanwhile

    with pytest.raises(StaleState):
        desk.run(lambda uow: uow.compare_and_set(seen, status=agent_rules.BUSY))

    assert desk.status("alice") == agent_rules.OFFLINE


def test_a_unit_that_lost_a_compare_and_set_runs_again_on_fresh_data(desk):
    desk.agent("alice", idle_min=5)
    stale = desk.units.read(lambda uow: uow.agents.get("alice"))
    desk.set_status("alice", agent_rules.BUSY)
    attempts = []

    def reserve(uow):
        agent = stale if not attempts else uow.agents.get("alice")
        attempts.append(agent.version)
        uow.compare_and_set(agent, status=agent_rules.OFFLINE)

    desk.run(reserve)

    assert attempts == [1, 2]  # read at version 1, changed to 2 meanwhile: lost once, then won
    assert desk.status("alice") == agent_rules.OFFLINE
    assert desk.units.read(lambda uow: uow.agents.get("alice").version) == 3


def test_a_unique_key_taken_twice_fails_the_whole_commit(desk):
    call = desk.call()

    def enter_twice(uow):
        for n in (1, 2):  # one live entry per call: the second one is refused at commit
            uow.queue.add(
                QueueEntry(id=f"q_{n}", call_id=call, team_id=Q.DEFAULT_TEAM, state=Q.WAITING, active_call_id=call)
            )
        uow.timeline.record(call, "queued")

    with pytest.raises(IntegrityError):
        desk.run(enter_twice)

    assert desk.line(Q.DEFAULT_TEAM, call) == {} and desk.timeline(call) == []
