"""One agent leg at a person's pace, with the gateway's real timers: the simulated phone is
answered after 8 s, Polly speaks at 0.35 s a word, the agent presses 1 a second and a half after
the prompt. The doubles used to answer in 0.02 s and speak twenty times faster, which hid a ring
timer that ran on through the answer and the announcement. Marked ``realtime`` (about 20 s each)."""

from __future__ import annotations

import pytest

from gateway.sandbox.twiml_exec import PERSON_SAY_SECONDS_PER_WORD
from tests.e2e.test_transfer import start_warm

CALLER = "+15557654321"
BOB = "+15551230042"

pytestmark = pytest.mark.realtime


def at_a_persons_pace(make_world, **settings):
    world = make_world(time_scale=1.0, **settings)
    world.twilio.say_seconds_per_word = PERSON_SAY_SECONDS_PER_WORD
    return world


def agent_phone(world, sid_of_caller: str):
    return next(c for c in world.twilio.calls() if c.to == BOB and c.direction == "outbound-api")


def test_a_phone_agent_who_answers_after_8_s_hears_the_whole_whisper_and_takes_the_call(make_world):
    """RING_TIMEOUT_S=10: the phone rings 8 s, so the ring timer must stop at the answer; the
    announcement and "press 1" take another ~8 s at a person's pace, on a budget of their own."""
    world = at_a_persons_pace(make_world, ring_timeout_s=10.0)
    world.twilio.script_phone(BOB, answer_after=8.0, digits="1", gather_delay=1.5)
    world.add_agent("bob", phone=BOB, browser=False)

    call = world.call(CALLER)
    call.wait_current("bridged", timeout=40)

    bob = agent_phone(world, call.sid)
    said = " ".join(text for kind, *rest in bob.events if kind == "say" for text in rest)
    assert "Incoming call from" in said and "Press 1 to accept" in said, bob.events
    assert ("gather", "1") in bob.events
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected", timeout=10)
    assert world.services.agents.get("bob")["status"] != "offline"
    call.hangup()


def test_phone_b_answering_after_8_s_with_detection_hears_the_summary_and_accepts(make_world):
    """The issue's case: B answers after 8 s, answering-machine detection holds the answer webhook
    for a few seconds, the whisper (the spoken summary) starts at ~11 s and takes longer than the
    rest of a 20 s ring timer. B must hear it to the end and be put through."""
    world = at_a_persons_pace(make_world, ring_timeout_s=20.0, summary_deadline_s=1.0)
    alice = world.add_agent("alice")
    world.twilio.script_phone(BOB, answer_after=8.0, digits="1", gather_delay=1.5)
    world.add_agent("bob", phone=BOB, browser=False)
    call = world.call(CALLER)
    offer = alice.wait_offer(timeout=20)
    alice.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=20)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected", timeout=10)

    transfer = start_warm(world, alice, offer["call_id"], {"target_agent_id": "bob"})
    world.wait(
        lambda: (
            world.services.views.transfer(transfer["id"])["state"] in ("target_accepted", "conferenced", "completed")
        ),
        what="B accepted the transfer",
        timeout=45,
    )

    bob = agent_phone(world, call.sid)
    assert bob.answered_by == "human" and ("gather", "1") in bob.events
    said = " ".join(text for kind, *rest in bob.events if kind == "say" for text in rest)
    assert "Press 1 to accept" in said
    call.hangup()
