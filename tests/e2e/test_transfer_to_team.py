"""Transfers to a team, end to end (simulator + LiveKit double): a free member is offered the caller
with the summary; with nobody free, A hears the expected wait and keeps the caller in the team's
queue (the next member to free up takes them, summary waiting) or cancels (the caller stays with A)."""

from __future__ import annotations

from sqlalchemy import select

from gateway.adapters.store.models import QueueEntry
from tests.e2e.test_transfer import connect_call, transfer_state


def billing(world, *members: str, status: str = "available"):
    world.services.teams.add("billing", "Billing")
    agents = []
    for name in members:
        agent = world.add_agent(name, status="offline")
        world.services.teams.set_agent_teams(name, ["billing"])
        if status == "available":
            world.services.agents.set_status(name, "available")
        agents.append(agent)
    return agents


def entries(world) -> list[QueueEntry]:
    return world.store.read(lambda s: s.execute(select(QueueEntry)).scalars().all())


def test_a_transfer_to_a_team_offers_its_free_member_with_the_summary(world):
    alice = world.add_agent("alice")
    (bea,) = billing(world, "bea")
    call, call_id = connect_call(world, alice)
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_team": "billing", "mode": "warm"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    assert (transfer["target_team"], transfer["target_agent_id"], transfer["notice"]) == ("billing", "bea", None)
    offer = bea.wait_offer("transfer")
    assert offer["transfer"]["id"] == transfer["id"] and offer["from_agent"] == "Alice"
    initiated = next(e for e in world.services.views.timeline(call_id) if e["kind"] == "transfer_initiated")
    assert initiated["detail"]["team"] == "billing" and initiated["detail"]["target"] == "bea"
    call.wait_current("play", timeout=8)  # on hold, as any warm transfer


def test_nobody_free_in_the_team_a_keeps_the_caller_in_its_queue_and_the_next_member_takes_them(world):
    alice = world.add_agent("alice")
    (bea,) = billing(world, "bea")
    call, call_id = connect_call(world, alice)
    world.services.agents.set_status("bea", "busy")  # signed in, on something else
    call.speak("I was charged twice for my subscription this month.")

    reply = alice.post(
        "/api/transfer/initiate",
        {"call_id": call_id, "target_team": "billing", "mode": "warm", "notes": "Double charge in May."},
    )
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    assert transfer["state"] == "team_busy"
    assert transfer["notice"].startswith("No one free in Billing — ")
    assert transfer["allowed_actions"] == ["queue", "cancel"]
    assert call.current.startswith("bridged")  # still talking with A while A decides

    kept = alice.post(f"/api/transfers/{transfer['id']}/queue")
    assert kept.status_code == 200, kept.text
    assert kept.json()["transfer"]["state"] == "queued"
    call.wait_for(lambda c: any(e[0] == "say" and "Thank you for calling Billing" in e[1] for e in c.events), 10)
    world.wait(lambda: world.services.agents.get("alice")["status"] == "available", what="A free")
    (entry,) = [e for e in entries(world) if e.call_id == call_id]
    assert (entry.kind, entry.priority, entry.transfer_id, entry.state) == ("transfer", 10, transfer["id"], "waiting")
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary for the taker")

    assert bea.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    offer = bea.wait_offer(timeout=10)
    assert offer["call_id"] == call_id
    assert offer["from_agent"] == "Alice" and offer["transfer"]["notes"] == "Double charge in May."
    assert offer["transfer"]["summary"]
    bea.accept_and_join(call_id)
    call.wait_current("bridged", timeout=10)
    world.wait(lambda: world.services.views.call(call_id)["state"] == "connected", what="bea has the caller")
    kinds = world.timeline(call_id)
    for kind in ("transfer_team_busy", "transfer_team_wait", "transfer_queued", "queued", "queue_answered"):
        assert kind in kinds, kinds
    assert world.db_call(call.sid)["agent_id"] == "bea"


def test_nobody_free_in_the_team_a_cancels_and_keeps_the_caller(world):
    alice = world.add_agent("alice")
    billing(world, "bea")
    call, call_id = connect_call(world, alice)
    world.services.agents.set_status("bea", "busy")
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_team": "billing", "mode": "cold"})
    transfer = reply.json()["transfer"]
    assert transfer["state"] == "team_busy"
    cancelled = alice.post(f"/api/transfers/{transfer['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert transfer_state(world, transfer["id"]) == "cancelled"
    assert world.services.views.call(call_id)["state"] == "connected"
    assert call.current.startswith("bridged") and not any(e[0] == "play" for e in call.events)
    assert [e for e in entries(world) if e.call_id == call_id] == []
    kinds = world.timeline(call_id)
    assert kinds.index("transfer_team_busy") < kinds.index("transfer_cancelled")
    # Nobody in the team signed in at all: refused at once, nothing to wait for.
    world.services.agents.set_status("bea", "offline")
    refused = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_team": "billing"})
    assert refused.status_code == 409 and "no one in Billing is signed in" in refused.text
