"""Every way a call ends, as the timeline records it and as the caller lived it: the console's
activity and history are written from these entries, so each must say what really happened."""

from __future__ import annotations

from tests.e2e.test_transfer import connect_call

NOT_AFTER_AN_AGENT_HANGUP = {"bridge_lost", "no_agent", "voicemail_left", "bridge_failed"}


def _ending(world, call_id: str) -> dict:
    return next(e for e in world.services.views.timeline(call_id) if e["kind"] == "call_ended")


def _ended_by_the_agent(world, call, call_id: str) -> None:
    """The caller's line is closed, and the call's timeline and ending say the agent ended it."""
    call.wait_status("completed", timeout=10)
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")
    world.settle()
    kinds = world.timeline(call_id)
    assert "agent_ended_call" in kinds and not NOT_AFTER_AN_AGENT_HANGUP & set(kinds), kinds
    assert _ending(world, call_id)["detail"] == {"reason": "agent ended the call"}


def test_the_agent_hangs_up_in_the_console_and_the_timeline_says_so(world):
    """The agent's Hang up: the caller hears goodbye, and nothing reads as a lost bridge, a search
    for another agent or voicemail (the console also leaves the room, which ends the caller's <Dial>
    before or after our redirect lands)."""
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)

    assert alice.post(f"/api/calls/{call_id}/hangup").status_code == 200
    alice.leave()  # what the console does right after: its media leaves the room
    _ended_by_the_agent(world, call, call_id)
    assert world.db_call(call.sid)["end_reason"] == "agent ended the call"
    said = " ".join(e[1] for e in call.events if e[0] == "say").lower()
    assert "goodbye" in said and "voicemail" not in said and "sorry" not in said, said
    legs = [e for e in world.services.views.timeline(call_id) if e["kind"].startswith("leg_") and e["agent_id"]]
    assert all("voicemail" not in str(e["detail"].get("reason")) for e in legs), legs


def test_the_agent_leaves_the_room_and_the_call_ends_as_the_agent_s(world):
    """Closing the console's audio (leaving the room) as the only agent ends the call the same way."""
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)

    alice.leave()
    _ended_by_the_agent(world, call, call_id)


def test_the_caller_hangs_up(world):
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)

    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")

    kinds = world.timeline(call_id)
    assert "agent_ended_call" not in kinds and not NOT_AFTER_AN_AGENT_HANGUP & set(kinds), kinds
    assert _ending(world, call_id)["detail"] == {"reason": "caller completed"}
