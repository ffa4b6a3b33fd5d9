"""After a failed transfer the caller goes back to A; when A's console never comes back to take
them (closed, crashed), the caller is routed again — to a free agent, or to the front of the line —
instead of ringing into an empty room until the bridge times out and voicemail answers."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import NoResultFound

from tests.conftest import World
from tests.e2e.test_transfer import CALLER, connect_call, transfer_state


def _initiate_without_a_following(world: World, agent, call_id: str, target: dict) -> dict:
    """A starts a warm transfer and then their browser is gone: it never joins the consult room.
    The gateway takes A out of the caller's room once the caller is on hold; until then A is still
    with the caller, and a transfer ending before that would return the caller to a present A."""
    reply = agent.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", **target})
    assert reply.status_code == 202, reply.text
    world.wait(
        lambda: "consult_room_ready" in world.timeline(call_id),
        what="A moved out of the caller's room",
        explain=lambda: str(world.timeline(call_id)),
    )
    return reply.json()["transfer"]


@pytest.fixture
def world(make_world) -> World:
    # A ring long enough for the caller's hold (and so A's move) to happen before B rings out,
    # however loaded the machine running the test is.
    return make_world(ring_timeout_s=6.0)


def _queued_call_id(world: World, sid: str) -> str | None:
    try:
        row = world.db_call(sid)
    except NoResultFound:  # the call's row is not there yet
        return None
    return row["id"] if row["state"] == "queued" else None


def _heard(call) -> list[str]:
    return [state.split(":")[0] for _, state in call.timeline]


def _kinds_after(world: World, call_id: str, kind: str) -> list[str]:
    kinds = world.timeline(call_id)
    return kinds[kinds.index(kind) :]


def test_a_gone_after_a_declined_transfer_the_caller_is_rung_to_the_next_agent(world: World):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    carol = world.add_agent("carol", status="offline")
    call, call_id = connect_call(world, alice)
    assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    assert carol.post("/api/agents/me/status", {"status": "available"}).status_code == 200

    transfer = _initiate_without_a_following(world, alice, call_id, {"target_agent_id": "carol"})
    offer = carol.wait_offer("transfer")
    assert offer["transfer"]["id"] == transfer["id"]
    assert carol.post(f"/api/transfers/{transfer['id']}/decline").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "declined", what="declined")

    # The caller is sent back to A's room, A is not there: within a ring's time, Bob is offered the call.
    offer = bob.wait_offer("call", timeout=10)
    assert offer["call_id"] == call_id
    bob.accept_and_join(call_id)
    world.wait(
        lambda: (lambda c: c["state"] == "connected" and c["agent_id"] == "bob")(world.db_call(call.sid)),
        what="caller connected with Bob",
        explain=lambda: world.story(call),
    )
    room = world.db_call(call.sid)["room"]
    world.wait(
        lambda: world.participants(room) == sorted(["bob", f"sip_{CALLER}"]),
        what="Bob and the caller (only) in the room",
        explain=lambda: str(world.participants(room)),
    )

    # What the caller heard: hold music during the transfer, ringback back to A's empty room, hold
    # music again while Bob was rung, then Bob — never the apology or a voicemail prompt.
    heard = _heard(call)
    assert heard[-1] == "bridged", heard
    said = [event[1] for event in call.events if event[0] == "say"]
    assert not any("leave a message" in text.lower() or "sorry" in text.lower() for text in said), said
    assert not any(event[0] == "record" for event in call.events), call.events

    # The timeline says what happened, in order; A is told why they were set offline.
    after = _kinds_after(world, call_id, "transfer_declined")
    expected = ["caller_returning", "agent_not_back", "agent_not_responding", "agent_ringing", "caller_rerouted"]
    assert [k for k in after if k in expected] == expected, after
    assert "no_agent" not in after and "voicemail_left" not in after, after
    assert after[-1] == "caller_connected" or "caller_connected" in after, after
    a = world.services.agents.get("alice")
    assert a["status"] == "offline" and a["not_responding"]["reason"] == "returned", a
    assert a["not_responding"]["call_id"] == call_id


def test_a_gone_with_nobody_free_the_caller_waits_at_the_front_of_the_line(world: World):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    call1, call1_id = connect_call(world, alice)
    assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    call2 = world.call("+15557650002")
    bob.accept_and_join(bob.wait_offer()["call_id"])
    call2.wait_current("bridged", timeout=8)
    call3 = world.call("+15557650003")
    call3_id = world.wait(lambda: _queued_call_id(world, call3.sid), what="caller 3 waiting in line")

    # A transfers to a number that never answers, and A's console is gone.
    transfer = _initiate_without_a_following(world, alice, call1_id, {"target_number": "+15550009999"})
    world.wait(lambda: transfer_state(world, transfer["id"]) == "no_answer", timeout=10, what="no answer")
    world.wait(
        lambda: world.db_call(call1.sid)["state"] == "queued",
        what="caller 1 back in line",
        explain=lambda: world.story(call1),
    )
    queued = [e for e in world.services.views.timeline(call1_id) if e["kind"] == "queued"]
    assert queued[-1]["detail"]["position"] == 1, queued  # ahead of caller 3, who called later but never got through
    call1.wait_current("play", timeout=5)  # the line's hold music, not ringback or voicemail

    # Bob frees up: the returned caller is offered first.
    bob_call_id = world.db_call(call2.sid)["id"]
    assert bob.post(f"/api/calls/{bob_call_id}/hangup").status_code == 200
    offer = bob.wait_offer("call", timeout=10)
    assert offer["call_id"] == call1_id and offer["call_id"] != call3_id
    bob.accept_and_join(call1_id)
    world.wait(lambda: world.db_call(call1.sid)["state"] == "connected", what="caller 1 with Bob")
    assert world.db_call(call3.sid)["state"] == "queued"
    after = _kinds_after(world, call1_id, "transfer_no_answer")
    assert "no_agent" not in after and "bridge_failed" not in after, after
