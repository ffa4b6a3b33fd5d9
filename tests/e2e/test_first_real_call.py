"""What real Twilio and LiveKit do on a first deployment that the doubles used to hide: self-hosted
LiveKit's MoveParticipant error, webhooks signed with another key or not sent at all."""

from __future__ import annotations

import logging
import time

from tests.e2e.test_transfer import connect_call, start_warm, transfer_state, wait_joined


def test_self_hosted_move_participant_falls_back_at_once_not_after_five_retries(make_world):
    """Self-hosted LiveKit answers MoveParticipant with a plain "not implemented" (Twirp internal,
    HTTP 500), which reads as retryable unless the message is looked at."""
    world = make_world(use_move_participant=True)  # the double is self-hosted (cloud=False)
    alice, _bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    started = time.monotonic()
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    old_room = world.db_call(call.sid)["room"]
    world.wait(lambda: "alice" not in world.participants(old_room), what="A removed from the caller's room")
    moved_out_after = time.monotonic() - started
    world.settle()

    attempts = [c for c in world.livekit.twirp_log() if c["method"] == "MoveParticipant"]
    assert len(attempts) == 1, attempts
    assert moved_out_after < 1.5, f"A left the caller's room {moved_out_after:.2f} s after initiate"
    wait_joined(world, call_id, "alice", transfer["consult_room"])


def test_a_webhook_signed_with_another_key_is_logged_once_naming_the_key(make_world, caplog):
    world = make_world()
    world.livekit.webhook_signing_key = ("APIotherproject", "another-secret-at-least-32-characters-x")
    alice = world.add_agent("alice")
    caplog.set_level(logging.ERROR, logger="gateway.web.livekit_hooks")

    call = world.call()
    offer = alice.wait_offer()
    alice.accept_and_join(offer["call_id"])
    world.livekit.wait_webhooks_idle(10)

    refused = world.wait(
        lambda: [w for w in world.livekit.webhook_log() if w["status"] == 401][1:],  # room_started, joins, ...
        what="LiveKit's webhooks refused",
    )
    assert all(w["attempt"] == 1 for w in refused)  # a 401 is final: LiveKit does not retry it
    world.wait(lambda: any("APIotherproject" in r.getMessage() for r in caplog.records), what="the key named")
    named = [r for r in caplog.records if "APIotherproject" in r.getMessage()]
    assert len(named) == 1, [r.getMessage() for r in caplog.records]
    assert world.settings.livekit_api_key in named[0].getMessage()
    call.hangup()


def test_no_key_after_the_whisper_repeats_the_prompt_once_then_moves_on(make_world):
    world = make_world()
    bob_phone = "+15551230042"
    world.twilio.script_phone(bob_phone, answer_after=1.0, digits=None)  # answers, never presses a key
    world.add_agent("bob", phone=bob_phone, browser=False)

    call = world.call()
    call.wait_current("say", timeout=15)  # nobody took it: the caller hears the apology
    world.settle()

    bob = next(c for c in world.twilio.calls() if c.to == bob_phone)
    said = [text for kind, *rest in bob.events if kind == "say" for text in rest]
    assert sum("Press 1 to accept" in text for text in said) == 2, said
    assert any("I did not hear a key" in text for text in said)
    assert [e for e in bob.events if e[0] == "gather"] == [("gather", ""), ("gather", "")]
    call_id = world.db_call(call.sid)["id"]
    ended = [e for e in world.services.views.timeline(call_id) if e["kind"] == "leg_no_answer"]
    assert [e["detail"]["reason"] for e in ended] == ["no key pressed"]
    assert "no_agent" in world.timeline(call_id)


def test_with_no_livekit_webhooks_the_call_still_connects_from_the_participant_list(make_world):
    """LiveKit sends no webhooks (not configured): the joins the gateway expects are read from
    ListParticipants a few seconds later, so the caller is connected, not pulled to the apology."""
    world = make_world()
    world.livekit.webhooks_configured = False
    alice = world.add_agent("alice")

    call = world.call()
    offer = alice.wait_offer()
    alice.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected", timeout=15)

    kinds = world.timeline(offer["call_id"])
    assert "livekit_reconciled" in kinds and "caller_connected" in kinds
    assert world.livekit.webhook_log() == []  # nothing came by webhook
    assert "ListParticipants" in [c["method"] for c in world.livekit.twirp_log()]
    call.hangup()


def test_with_no_livekit_webhooks_a_warm_transfer_still_completes(make_world):
    """Every join and leave of a warm transfer (A to the consult room, B in, the caller in, A out)
    read from the participant list instead of webhooks."""
    world = make_world()
    world.livekit.webhooks_configured = False
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call = world.call()
    call_id = alice.wait_offer()["call_id"]
    alice.accept_and_join(call_id)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected", timeout=15)

    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer", timeout=10)
    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    world.wait(
        lambda: "complete" in alice.get(f"/api/transfers/{transfer['id']}").json()["transfer"]["allowed_actions"],
        what="B seen in the consult room",
        timeout=20,
    )
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    call.wait_current("bridged", timeout=20)
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="transfer completed", timeout=20)
    assert world.db_call(call.sid)["agent_id"] == "bob"
    assert world.livekit.webhook_log() == []
    call.hangup()


def test_transcription_starts_once_per_call_after_ringback_and_is_stopped_by_name(world):
    """No <Start> before <Dial answerOnBridge> (it would answer the caller early: silence instead
    of ringback), no second session on a re-bridge (duplicate lines): one named session, by REST
    once the call is connected, stopped by name when the agent ends the call."""
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    events = call.events
    answered = events.index(("status", "in-progress"))
    assert answered > events.index(("ringback",)), events  # the caller heard ringback until the bridge
    started = [e for e in events if e[0] == "transcription_started"]
    assert len(started) == 1 and events.index(started[0]) > answered

    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})  # two re-bridges of the caller
    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    bob.join(accepted.json()["token"])
    wait_joined(world, call_id, "bob", transfer["consult_room"])
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    call.wait_current("bridged", timeout=8)
    assert [t["name"] for t in call.transcriptions] == [f"gw-{call_id}"]
    call.speak("My order number is 4411.")
    world.wait(lambda: world.services.views.transcript(call_id), what="transcript")
    world.settle()
    assert [line["text"] for line in world.services.views.transcript(call_id)] == ["My order number is 4411."]

    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="transfer completed")
    assert bob.post(f"/api/calls/{call_id}/hangup").status_code in (200, 204)
    world.wait(lambda: ("transcription_stopped", world.url + f"/twilio/transcription?call={call_id}") in call.events)
    assert [e for e in call.events if e[0] == "transcription_started"] == started
