"""Finding 1: an agent dropped from a call cannot come back with a token it kept. Whoever joins a
room without a live leg there is removed on participant_joined (the LiveKit double models
RemoveParticipant as LiveKit does: the participant is disconnected and participant_left follows)."""

from __future__ import annotations

from tests.security.helpers import CALLER, warm_transfer


def test_agent_a_cannot_rejoin_after_a_completed_transfer_with_either_old_token(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    call = world.call(CALLER)
    offer = alice.wait_offer()
    first = alice.accept_and_join(offer["call_id"])  # the token for the caller's first room
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    world.services.agents.set_status("bob", "available")
    transfer, consult_token = warm_transfer(world, alice, bob, offer["call_id"])
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    room = transfer["consult_room"]
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    call.wait_current("bridged", timeout=8)
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: "alice" not in world.participants(room), what="A dropped")
    world.settle()

    alice.join(consult_token)  # A's console kept the consult-room token
    world.wait(
        lambda: world.participants(room) == sorted(["bob", f"sip_{CALLER}"]),
        what="A removed from the consult room again",
        explain=lambda: f"participants {world.participants(room)}; {world.story(call)}",
    )
    alice.join(first["token"])  # and the first room's
    world.settle()

    assert "alice" not in world.participants(first["room"])
    kinds = world.timeline(offer["call_id"])
    assert kinds.count("participant_removed") == 2, kinds
