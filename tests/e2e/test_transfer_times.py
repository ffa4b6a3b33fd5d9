"""When a transfer's target was rung and when they joined the consult room, as GET /api/transfers/<id>
says; and presence changes in the agent's own activity."""

from __future__ import annotations

import requests

from tests.conftest import World
from tests.e2e.test_transfer import connect_call, start_warm, transfer_state, wait_joined


def test_offered_at_and_target_joined_at_are_recorded_in_order(world: World):
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    call, call_id = connect_call(world, alice)
    assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200

    # Declined: offered, never joined.
    first = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    assert bob.post(f"/api/transfers/{first['id']}/decline").status_code == 200
    world.wait(lambda: transfer_state(world, first["id"]) == "declined", what="declined")
    declined = alice.get(f"/api/transfers/{first['id']}").json()["transfer"]
    assert declined["offered_at"] and declined["created_at"] <= declined["offered_at"] <= declined["ended_at"]
    assert declined["target_joined_at"] is None
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="caller back with A")

    # Accepted and joined: offered, then joined, in that order.
    second = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    assert alice.get(f"/api/transfers/{second['id']}").json()["transfer"]["target_joined_at"] is None
    bob.wait_offer("transfer")
    bob.join(bob.post(f"/api/transfers/{second['id']}/accept").json()["token"])
    wait_joined(world, call_id, "bob", second["consult_room"])
    shown = alice.get(f"/api/transfers/{second['id']}").json()["transfer"]
    assert shown["created_at"] <= shown["offered_at"] <= shown["target_joined_at"], shown


def test_presence_changes_are_in_the_agents_own_activity(world: World):
    alice = world.add_agent("alice")
    world.add_agent("bob")
    assert alice.post("/api/agents/me/status", {"status": "offline"}).status_code == 200
    assert alice.post("/api/agents/me/status", {"status": "offline"}).status_code == 200  # no change, no entry
    assert alice.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    admin = {"Authorization": "Bearer admin-test-token"}
    reply = requests.post(
        world.url + "/api/admin/agents/alice/status", json={"status": "busy"}, headers=admin, timeout=5
    )
    assert reply.status_code == 200
    mine = [e for e in world.services.views.events_for_agent("alice", 0) if e["kind"] == "agent_status"]
    assert [(e["detail"]["status"], e["detail"]["was"], e["detail"]["by"]) for e in mine] == [
        ("offline", "available", "agent"),
        ("available", "offline", "agent"),
        ("busy", "available", "admin"),
    ]
    # Nobody else's activity carries them.
    assert not [e for e in world.services.views.events_for_agent("bob", 0) if e["kind"] == "agent_status"]
