"""Warm and cold transfers end to end, one test per path, asserting on what the caller lived through."""

from __future__ import annotations

from tests.conftest import World

CALLER = "+15557654321"


def connect_call(world: World, agent, *, phone_agent: bool = False):
    """A call answered by ``agent`` (browser) — returns (sim call, call id)."""
    call = world.call(CALLER)
    if phone_agent:
        call.wait_current("bridged", timeout=10)
        call_id = world.db_call(call.sid)["id"]
    else:
        offer = agent.wait_offer()
        agent.accept_and_join(offer["call_id"])
        call.wait_current("bridged", timeout=8)
        call_id = offer["call_id"]
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    if world.settings.transcription_enabled:  # started by REST once connected: what is said next is heard
        world.wait(lambda: call.transcriptions, what="transcription started")
    return call, call_id


def joined(world: World, call_id: str, agent_id: str, room: str) -> bool:
    return any(
        e["kind"] == "agent_joined" and e["agent_id"] == agent_id and e["detail"].get("room") == room
        for e in world.services.views.timeline(call_id)
    )


def wait_joined(world: World, call_id: str, agent_id: str, room: str) -> None:
    world.wait(lambda: joined(world, call_id, agent_id, room), what=f"{agent_id} in {room}")


def transfer_state(world: World, transfer_id: str) -> str:
    return world.services.views.transfer(transfer_id)["state"]


def caller_never_in_empty_room_or_silence(call) -> None:
    assert all(gap[1] < 1.0 for gap in call.silence_gaps()), call.silence_gaps()


def test_browser_a_to_browser_b_warm(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    call.speak("Hi, my internet keeps dropping every evening. My account number is 4532 1234 5678 9012.")
    world.wait(lambda: world.services.views.transcript(call_id) or True)

    reply = alice.post(
        "/api/transfer/initiate",
        {"call_id": call_id, "target_agent_id": "bob", "mode": "warm", "notes": "Rebooted the router already."},
    )
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    # What A's console offers: cancel, not yet connect (B is still being reached).
    assert "cancel" in transfer["allowed_actions"] and "complete" not in transfer["allowed_actions"]
    assert transfer["active"]
    # Hold: the caller hears music while A and B consult.
    call.wait_current("play", timeout=8)

    # A gets a token for the consult room (the console does this on consult_room_ready).
    room = transfer["consult_room"]
    consult_room_for(world, alice, transfer)

    offer = bob.wait_offer("transfer")
    assert offer["from_agent"] == "Alice"
    assert offer["transfer"]["allowed_actions"] == ["cancel", "accept", "decline"]
    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    world.wait(lambda: transfer_state(world, transfer["id"]) == "target_accepted", what="B accepted")
    assert not call.current.startswith("bridged")  # still on hold during the consult (gaps are checked below)

    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    wait_joined(world, call_id, "bob", room)
    # B is in the consult room: only now may A connect the caller.
    assert alice.get(f"/api/transfers/{transfer['id']}").json()["transfer"]["allowed_actions"] == [
        "complete",
        "cancel",
    ]
    done = alice.post(f"/api/transfers/{transfer['id']}/complete")
    assert done.status_code == 200, done.text
    assert done.json()["transfer"]["allowed_actions"] == ["leave"]
    call.wait_current("bridged", timeout=8)
    world.wait(
        lambda: world.participants(room) == sorted(["alice", "bob", f"sip_{CALLER}"]),
        what="three-way",
        explain=lambda: f"participants {world.participants(room)}; {world.story(call)}",
    )

    left = alice.post(f"/api/transfers/{transfer['id']}/leave")
    assert left.status_code == 200, left.text
    world.wait(
        lambda: world.participants(room) == sorted(["bob", f"sip_{CALLER}"]),
        what="A dropped",
        explain=lambda: f"participants {world.participants(room)}; {world.story(call)}",
    )
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed")
    finished = world.services.views.transfer(transfer["id"])
    assert finished["allowed_actions"] == [] and not finished["active"]
    assert world.db_call(call.sid)["agent_id"] == "bob"
    caller_never_in_empty_room_or_silence(call)
    # Every timer this call and transfer set became moot on the way and was withdrawn, not left to
    # fire for nothing: the queue wait, both offers' ring timeouts, the introduction's time limit.
    timers = world.timers()
    assert [kind for kind, state in timers if state != "cancelled"] in ([], ["summary_deadline"]), timers
    assert sorted(kind for kind, _ in timers) == [
        "intro_timeout",
        "queue_timeout",
        "ring_timeout",
        "ring_timeout",
        "summary_deadline",
    ], timers

    summary = world.services.views.transfer(transfer["id"])["summary"]
    assert "4532" not in str(summary)
    sent = [r for r in world.openai.requests()]
    assert sent and all("4532 1234" not in str(r) for r in sent)
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended")


def start_warm(world: World, agent, call_id: str, target: dict, **extra) -> dict:
    reply = agent.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", **target, **extra})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    if agent is not None and not getattr(agent, "phone", None):
        consult_room_for(world, agent, transfer)
    return transfer


def consult_room_for(world: World, agent, transfer: dict) -> None:
    """What the console does: A follows its leg into the consult room once the caller is held (even if
    the transfer ends a moment later: the caller then comes back to A there). If the transfer ended
    before A's leg moved, A simply stays with the caller."""

    def ready():
        ended = world.services.views.transfer(transfer["id"])["state"] in (
            "declined",
            "no_answer",
            "cancelled",
            "failed",
            "abandoned",
        )
        reply = agent.post("/api/rooms/join", {"room": transfer["consult_room"]})
        if reply.status_code == 200:
            return reply
        return "ended" if ended else None

    join = world.wait(ready, what="consult room ready for A")
    if join != "ended":
        agent.join(join.json()["token"])


def sms_to(world: World, number: str) -> list:
    return [m for m in world.twilio.messages() if m["to"] == number]


def test_browser_a_to_phone_b_whisper_sms_and_press_one(world):
    world.twilio.script_phone("+15550009999", answer=True, answer_after=0.5, digits="1")
    alice = world.add_agent("alice")
    world.add_agent("bella", phone="+15550009999", browser=False)
    call, call_id = connect_call(world, alice)
    call.speak("My parcel 7781 never arrived and I am upset.")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bella"}, notes="Checked tracking: lost.")
    room = transfer["consult_room"]
    wait_joined(world, call_id, "bella", room)
    b_call = next(c for c in world.twilio.calls() if c.to == "+15550009999")
    whisper = " ".join(e[1] for e in b_call.events if e[0] == "say")
    assert "Transfer from Alice" in whisper and "parcel" in whisper.lower()
    assert b_call.answered_by == "human"  # machine detection was asked for
    messages = sms_to(world, "+15550009999")
    assert (
        len(messages) == 1
        and "Transfer from Alice" in messages[0]["body"]
        and f"/t/{transfer['id']}" in messages[0]["body"]
    )
    # The timeline (what A's console and the call history show) says the text went out.
    world.wait(lambda: "sms_sent" in world.timeline(call_id), what="sms_sent on the timeline")
    assert "sms_failed" not in world.timeline(call_id)

    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    call.wait_current("bridged", timeout=8)
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: world.participants(room) == sorted(["sip_+15550009999", f"sip_{CALLER}"]), what="caller with B")
    assert world.db_call(call.sid)["agent_id"] == "bella"
    caller_never_in_empty_room_or_silence(call)
    world.settle()
    assert len(sms_to(world, "+15550009999")) == 1


def test_phone_a_to_browser_b(world):
    world.twilio.script_phone("+15550001000", answer=True, answer_after=0.3, digits="1")
    world.add_agent("amy", phone="+15550001000", browser=False)
    bob = world.add_agent("bob")
    world.services.agents.set_status("bob", "offline")
    call, call_id = connect_call(world, None, phone_agent=True)
    world.services.agents.set_status("bob", "available")
    amy = world.services.agents.reset_secret("amy")
    from tests.conftest import AgentClient

    amy_client = AgentClient(world, "amy", amy)
    amy_client.phone = True
    transfer = start_warm(world, amy_client, call_id, {"target_agent_id": "bob"})
    room = transfer["consult_room"]
    wait_joined(world, call_id, "amy", room)  # A's phone leg was redirected into the consult room
    offer = bob.wait_offer("transfer")
    bob.join(bob.post(f"/api/transfers/{offer['transfer']['id']}/accept").json()["token"])
    wait_joined(world, call_id, "bob", room)
    assert amy_client.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    call.wait_current("bridged", timeout=8)
    assert amy_client.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: world.participants(room) == sorted(["bob", f"sip_{CALLER}"]), what="caller with B")
    a_call = next(c for c in world.twilio.calls() if c.to == "+15550001000" and c.direction == "outbound-api")
    a_call.wait_status("completed", timeout=8)


def test_b_does_not_answer_caller_returns_to_a(world):
    alice = world.add_agent("alice")
    world.add_agent("zed", phone="+15550004444", browser=False)  # unscripted: rings, never answers
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "zed"})
    world.wait(lambda: transfer_state(world, transfer["id"]) == "no_answer", timeout=10, what="no answer")
    assert world.services.views.transfer(transfer["id"])["end_reason"] == "B did not answer"
    caller_back_with_a(world, call)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected")
    caller_never_in_empty_room_or_silence(call)


def test_b_declines_at_the_whisper(world):
    world.twilio.script_phone("+15550005555", answer=True, answer_after=0.3, digits="2")
    alice = world.add_agent("alice")
    world.add_agent("dina", phone="+15550005555", browser=False)
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "dina"})
    world.wait(lambda: transfer_state(world, transfer["id"]) == "declined", timeout=10)
    assert world.services.views.transfer(transfer["id"])["end_reason"] == "B declined"
    caller_back_with_a(world, call)


def caller_back_with_a(world: World, call) -> None:
    """Wherever A is (consult room, or still the caller's room if the transfer ended before the hold)."""
    world.wait(
        lambda: world.db_call(call.sid)["state"] == "connected",
        what="caller connected again",
        explain=lambda: world.story(call),
    )
    room = world.db_call(call.sid)["room"]
    world.wait(
        lambda: world.participants(room) == sorted(["alice", f"sip_{CALLER}"]),
        what="caller with A only",
        explain=lambda: world.story(call),
    )


def test_voicemail_answers_b_phone(world):
    world.twilio.script_phone("+15550006666", answer=True, answer_after=0.3, machine=True)
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_number": "+15550006666"})
    world.wait(lambda: transfer_state(world, transfer["id"]) == "no_answer", timeout=10)
    assert "voicemail" in world.services.views.transfer(transfer["id"])["end_reason"]
    caller_back_with_a(world, call)


def test_caller_hangs_up_on_hold(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    call.wait_current("play", timeout=8)
    bob.wait_offer("transfer")
    call.hangup()
    world.wait(lambda: transfer_state(world, transfer["id"]) == "abandoned")
    assert bob.offers() == []  # B is told: the offer is gone
    world.wait(lambda: transfer["consult_room"] not in world.livekit.rooms(), what="consult room closed")
    world.wait(lambda: world.services.agents.get("alice")["status"] == "available")


def test_a_hangs_up_after_b_accepted_caller_goes_to_b(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    bob.join(bob.post(f"/api/transfers/{transfer['id']}/accept").json()["token"])
    wait_joined(world, call_id, "bob", transfer["consult_room"])
    alice.leave()  # A's browser disconnects
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="completed without A")
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.participants(transfer["consult_room"]) == sorted(["bob", f"sip_{CALLER}"]))


def test_a_hangs_up_before_b_accepted_caller_goes_back_to_routing(world):
    alice, bob, carl = world.add_agent("alice"), world.add_agent("bob"), world.add_agent("carl")
    world.services.agents.set_status("carl", "offline")
    call, call_id = connect_call(world, alice)
    world.services.agents.set_status("carl", "available")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    alice.leave()
    world.wait(lambda: transfer_state(world, transfer["id"]) == "cancelled")
    assert bob.offers() == []  # B's offer withdrawn
    offer = carl.wait_offer("call")
    carl.accept_and_join(offer["call_id"])

    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected")


def test_a_cancels(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    reply = alice.post(f"/api/transfers/{transfer['id']}/cancel")
    assert reply.status_code == 200 and reply.json()["transfer"]["state"] == "cancelled"
    assert bob.offers() == []
    assert bob.post(f"/api/transfers/{transfer['id']}/accept").status_code == 409
    caller_back_with_a(world, call)


def test_cold_transfer_to_a_phone_number(world):
    world.twilio.script_phone("+15550007777", answer=True, answer_after=0.3, digits="1")
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)
    reply = alice.post("/api/twilio/transfer", {"call_id": call_id, "to": "+15550007777"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", timeout=10)
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.participants(transfer["consult_room"]) == sorted(["sip_+15550007777", f"sip_{CALLER}"]))
    assert len(sms_to(world, "+15550007777")) == 1


def test_double_initiate_is_refused(world):
    alice = world.add_agent("alice")
    world.add_agent("zed", phone="+15550004444", browser=False)
    call, call_id = connect_call(world, alice)
    body = {"call_id": call_id, "target_agent_id": "zed", "mode": "warm"}
    first = alice.post("/api/transfer/initiate", body)
    second = alice.post("/api/transfer/initiate", body)
    assert first.status_code == 202 and second.status_code == 409, (
        second.text,
        world.services.views.transfers_of_call(call_id),
        world.timeline(call_id),
    )
    assert len(world.services.views.transfers_of_call(call_id)) == 1


def test_other_agent_cannot_transfer_my_call(world):
    alice, mallory = world.add_agent("alice"), world.add_agent("mallory")
    call, call_id = connect_call(world, alice)
    reply = mallory.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "alice"})
    assert reply.status_code == 403
    assert world.services.views.transfers_of_call(call_id) == []


def test_openai_down_uses_fallback_summary(world):
    world.openai.fail_next(status=500, count=5)
    alice, _bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    call.speak("The heating is broken since Monday.")
    world.wait(lambda: world.services.views.transcript(call_id), what="transcript")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    got = world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    assert world.services.views.transfer(transfer["id"])["summary_source"] == "fallback"
    assert got["reason"] == "The heating is broken since Monday."


def test_openai_hanging_fallback_within_deadline(world):
    world.openai.hang(True)
    try:
        alice, _bob = world.add_agent("alice"), world.add_agent("bob")
        call, call_id = connect_call(world, alice)
        transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
        world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], timeout=3, what="summary")
        entry = next(e for e in world.services.views.timeline(call_id) if e["kind"] == "summary_ready")
        assert entry["detail"]["source"] == "fallback"
        assert entry["detail"]["elapsed_ms"] <= world.settings.summary_deadline_s * 1000 + 400
    finally:
        world.openai.hang(False)


def test_sms_failure_does_not_stop_the_transfer(world):
    world.twilio.inject_fault(path_contains="Messages", status=500, code=20500, count=10)
    world.twilio.script_phone("+15550009999", answer=True, answer_after=0.5, digits="1")
    alice = world.add_agent("alice")
    world.add_agent("bella", phone="+15550009999", browser=False)
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bella"})
    wait_joined(world, call_id, "bella", transfer["consult_room"])
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed")
    world.wait(lambda: "sms_failed" in world.timeline(call_id), what="SMS failure on the timeline")


def test_summary_on_demand_and_sms_resend(make_world):
    world = make_world(ring_timeout_s=10.0)  # B's offer stays open while the summary is sent
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", phone="+15550008888")
    call, call_id = connect_call(world, alice)
    call.speak("I was double charged on my last bill. Card 4111 1111 1111 1111.")
    world.wait(lambda: world.services.views.transcript(call_id), what="transcript")
    reply = alice.post("/api/summary/generate", {"call_id": call_id})
    assert reply.status_code == 200 and reply.json()["summary"]["reason"].startswith("I was double charged")
    assert "4111" not in reply.text
    assert bob.post("/api/summary/generate", {"call_id": call_id}).status_code == 403  # not bob's call

    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    world.wait(lambda: len(sms_to(world, "+15550008888")) == 1, what="first SMS")
    world.add_agent("carol", phone="+15550001212", status="offline")  # a colleague in the directory
    resend = alice.post("/api/twilio/sms-summary", {"transfer_id": transfer["id"], "agent_id": "carol"})
    assert resend.status_code == 202, resend.text
    world.wait(lambda: len(sms_to(world, "+15550001212")) == 1, what="resent SMS")
    body = sms_to(world, "+15550001212")[0]["body"]
    assert "double charged" in body and "4111" not in body and len(body) <= 306
    # Never to a typed number (tests/security covers who may resend and how often).
    assert (
        alice.post("/api/twilio/sms-summary", {"transfer_id": transfer["id"], "to": "+15550003434"}).status_code == 400
    )


def test_transcript_and_summary_are_purged_after_retention(make_world):
    world = make_world(retention_hours=1 / 3600)  # one second
    alice, _bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    call.speak("Please cancel my subscription.")
    world.wait(lambda: world.services.views.transcript(call_id), what="transcript")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    call.hangup()
    world.wait(lambda: "call_data_purged" in world.timeline(call_id), timeout=10, what="purge")
    assert world.services.views.transcript(call_id) == []
    assert world.services.views.transfer(transfer["id"])["summary"] is None


def test_move_participant_setting_on_livekit_cloud(make_world):
    world = make_world(use_move_participant=True)
    world.livekit.cloud = True
    alice, _bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "bob"})
    transfer = reply.json()["transfer"]
    # No new token: LiveKit moved A's session into the consult room.
    wait_joined(world, call_id, "alice", transfer["consult_room"])
    assert "MoveParticipant" in [c["method"] for c in world.livekit.twirp_log()]


def test_move_participant_unavailable_falls_back_to_rejoining(make_world):
    world = make_world(use_move_participant=True)  # self-hosted LiveKit answers "unimplemented"
    alice, _bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    wait_joined(world, call_id, "alice", transfer["consult_room"])
    old_room = world.db_call(call.sid)["room"]
    world.wait(lambda: "provider_error" in world.timeline(call_id), what="move refused")
    world.wait(lambda: "alice" not in world.participants(old_room), what="A removed from the caller's room")


def test_superseded_bridge_is_not_read_as_a_failure(world):
    """Each REST redirect ends the previous <Dial>, whose action still arrives: it must not read as a failure."""
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    assert alice.post(f"/api/transfers/{transfer['id']}/cancel").status_code == 200
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="caller back with A")
    world.settle()
    kinds = world.timeline(call_id)
    assert "bridge_failed" not in kinds and "no_agent" not in kinds and "bridge_lost" not in kinds
    assert call.current.startswith("bridged")
