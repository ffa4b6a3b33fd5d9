"""What real Twilio and LiveKit do on a first deployment that the doubles used to hide: self-hosted
LiveKit's MoveParticipant error, webhooks signed with another key or not sent at all."""

from __future__ import annotations

import logging
import time

from tests.e2e.test_transfer import connect_call, start_warm, wait_joined


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
    world.livekit.wait_webhooks_idle(5)

    refused = [w for w in world.livekit.webhook_log() if w["status"] == 401]
    assert len(refused) >= 3  # room_started, the caller's and alice's participant_joined, ...
    named = [r for r in caplog.records if "APIotherproject" in r.getMessage()]
    assert len(named) == 1, [r.getMessage() for r in caplog.records]
    assert world.settings.livekit_api_key in named[0].getMessage()
    call.hangup()
