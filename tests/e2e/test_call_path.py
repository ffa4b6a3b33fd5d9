"""Inbound call path end to end: simulator (Twilio) → gateway → LiveKit double, and back."""

from __future__ import annotations


def test_browser_agent_answers_and_caller_hangs_up(world):
    alice = world.add_agent("alice")
    call = world.call()
    offer = alice.wait_offer()
    assert offer["caller"] == "+15557654321"
    call.wait_current("ringback")  # the caller hears ringback, not silence, until an agent joins

    token_reply = alice.accept_and_join(offer["call_id"])
    room = token_reply["room"]
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    assert world.participants(room) == sorted(["alice", "sip_+15557654321"])

    # The token the page used was checked by LiveKit: one room, join only, no admin.
    join = [j for j in world.livekit.join_log() if j["identity"] == "alice"][-1]
    assert join["ok"] and join["room"] == room
    assert not join["grants"].get("roomAdmin") and not join["grants"].get("roomCreate")

    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")
    world.wait(lambda: room not in world.livekit.rooms(), what="room closed")
    kinds = world.timeline(offer["call_id"])
    assert kinds.index("caller_connected") < kinds.index("call_ended")
    world.wait(lambda: world.services.agents.get("alice")["status"] == "available", what="alice available again")


def test_the_dispatch_rule_makes_the_callers_room_with_its_settings(world):
    """No CreateRoom on the inbound path: LiveKit makes the room when the caller's SIP leg arrives,
    with the timeouts the provisioned dispatch rule carries."""
    alice = world.add_agent("alice")
    before = len(world.livekit.twirp_log())
    call = world.call()
    offer = alice.wait_offer()
    room = alice.accept_and_join(offer["call_id"])["room"]
    call.wait_current("bridged", timeout=8)

    info = world.livekit.rooms()[room]
    assert (info["empty_timeout"], info["departure_timeout"]) == (120, 30)
    assert [e["method"] for e in world.livekit.twirp_log()[before:] if e["method"] == "CreateRoom"] == []
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")


def test_phone_agent_presses_one_and_is_bridged(world):
    world.twilio.script_phone("+15550001111", answer=True, answer_after=0.5, digits="1")
    world.add_agent("bob", phone="+15550001111", browser=False)
    call = world.call()
    call.wait_current("bridged", timeout=10)
    db = world.db_call(call.sid)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="connected")
    assert world.participants(db["room"]) == sorted(["sip_+15550001111", "sip_+15557654321"])
    agent_call = next(c for c in world.twilio.calls() if c.to == "+15550001111")
    assert ("gather", "1") in agent_call.events

    call.hangup()
    agent_call.wait_status("completed", timeout=8)
    world.wait(lambda: db["room"] not in world.livekit.rooms(), what="room closed")


def test_voicemail_cannot_accept_and_next_agent_is_rung(world):
    world.twilio.script_phone("+15550002222", answer=True, answer_after=0.2, digits="")  # answers, presses nothing
    world.add_agent("carol", phone="+15550002222", browser=False)
    world.services.agents.set_status("carol", "available")
    call = world.call()
    carol_call = world.wait(lambda: next((c for c in world.twilio.calls() if c.to == "+15550002222"), None))
    carol_call.wait_status("completed", timeout=10)
    # Nobody else: the caller hears the apology and may leave a message, never silence.
    call.wait_for(lambda c: any(e[0] == "say" and "sorry" in e[1].lower() for e in c.events), timeout=10)
    db = world.db_call(call.sid)
    assert db["state"] in ("voicemail", "ended")
    assert "leg_no_answer" in world.timeline(db["id"])


def test_no_agent_gets_apology_and_voicemail(world):
    call = world.call()
    call.wait_for(lambda c: any(e[0] == "record" for e in c.events), timeout=8)
    says = [e[1] for e in call.events if e[0] == "say"]
    assert any("no one is available" in s for s in says)
    assert world.db_call(call.sid)["state"] in ("voicemail", "ended")


def test_unanswered_browser_agent_times_out_then_next_agent(world):
    world.add_agent("dave")
    erin = world.add_agent("erin")
    # dave is the longest idle (never used): rung first, never answers.
    call = world.call()
    offer = erin.wait_offer(timeout=10)
    erin.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=8)
    assert world.services.agents.get("dave")["status"] == "offline"  # missed a call: not rung again
    kinds = world.timeline(offer["call_id"])
    assert kinds.count("agent_ringing") == 2 and "leg_no_answer" in kinds


def test_first_accept_wins_between_console_and_phone(make_world):
    world = make_world(time_scale=1.0)  # real time: the phone is still ringing when the console accepts
    world.twilio.script_phone("+15550003333", answer=True, answer_after=10.0, digits="1")
    frank = world.add_agent("frank", phone="+15550003333", browser=True)
    call = world.call()
    offer = frank.wait_offer()
    frank.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: "leg_cancelled" in world.timeline(offer["call_id"]), what="phone leg cancelled")
    world.settle()
    # The phone stops ringing (or, when the console won before the dial job ran, it never rang).
    for phone in [c for c in world.twilio.calls() if c.to == "+15550003333"]:
        phone.wait_status("completed", "no-answer", "canceled", timeout=10)


def test_livekit_unreachable_caller_hears_apology(world):
    world.add_agent("alice")
    world.livekit.stop()
    call = world.call()
    call.wait_for(lambda c: any(e[0] == "say" and "trouble" in e[1] for e in c.events), timeout=10)
    assert not any(e[0] == "app_error" for e in call.events)
    assert "bridge_failed" in world.timeline(world.db_call(call.sid)["id"])


def test_agent_rejoining_with_a_fresh_token_keeps_the_call(world):
    """A page reload or full reconnect: LiveKit replaces the old session (DUPLICATE_IDENTITY)."""
    alice = world.add_agent("alice")
    call = world.call()
    offer = alice.wait_offer()
    room = alice.accept_and_join(offer["call_id"])["room"]
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected")
    again = alice.post("/api/rooms/join", {"room": room})
    assert again.status_code == 200
    alice.join(again.json()["token"])
    world.settle()
    assert world.db_call(call.sid)["state"] == "connected"
    assert world.participants(room) == sorted(["alice", "sip_+15557654321"])
    assert call.current.startswith("bridged")
